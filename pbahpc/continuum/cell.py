"""Pseudo-2D (Doyle-Fuller-Newman) cell with Cahn-Hilliard or Fickian particles on PETSc TS.

Along x (0 at the anode current collector, L at the cathode's): anode | separator | cathode in
cell-centred finite volumes. Every x-cell ("node") carries the same block of unknowns

    [c_e, phi_e, phi_s, j, c_0, mu_0, c_1, mu_1, ...]

c_e electrolyte concentration (mol/m^3), phi_e / phi_s electrolyte / solid potential (V), j the
interfacial current density (A/m^2, > 0 takes the ion out of the particle), and the representative
particle's unknowns, whose rows and equilibrium potential come from its discretisation (particles.py;
the split c/mu sphere: c in mol/m^3, mu in J/mol for Cahn-Hilliard or mu = c for Fickian). Separator
nodes and unused particle slots carry identity rows. Equations per node:

    eps dc_e/dt + div N_e - a j / F = 0,      N_e = -D_eff grad c_e + t+ i_e / F
    div i_e - a j = 0,     i_e = -kappa_eff grad phi_e + kappa_eff (2RT/F)(1 - t+) TF grad ln c_e
    div i_s + a j = 0,     i_s = -sigma_eff grad phi_s
    j = j0(c_e, x_surf, T) [exp(alpha F eta / RT) - exp(-(1 - alpha) F eta / RT)],  eta = phi_s - phi_e - U (Eq. 29)
    particle: dc/dt = div(M grad mu) with inward surface flux -j/F, mu = mu_hom(c) - k lap c

with U = -mu_surf / F for Cahn-Hilliard (Eq. 30: the overpotential sees the full variational chemical
potential) and U = OCV(c_surf) for Fickian particles; the surface value is extrapolated from the last
cell with the flux condition. Collectors: phi_s = 0 at x = 0; at x = L either i_s = I (current and rest
steps) or phi_s = V (voltage steps); no electrolyte flux through either. Faces between cells use the
series (harmonic) mean of the two cells' effective properties.

Every equation is in flux form and the particle loses exactly what the electrolyte gains (a j / F), so
the moles of ion in particles plus electrolyte are conserved to round-off whatever the state of the
potentials; the IFunction is M udot + R(u) with a constant diagonal M.

Parallel: the nodes are distributed by a 1-D DMDA over the communicator passed in (one ghost node);
the residual of the owned nodes needs only the ghosted local vector. The Jacobian dR/du is built by
finite differences with a colouring of the known block pattern (each particle discretisation colours
its own block; 19 colours with 1-D spheres); each rank differences its own rows, perturbing ghost
columns too, so no extra communication; plus shift * M. The
Butler-Volmer row's pattern holds the particle's surface slots, through which both U and the
exchange current's surface stoichiometry enter, so j0(c_e, x_surf, T) needs no derivative of its own.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .model import (FARADAY_C_MOL, R_GAS_J_MOL_K, Cell, Electrode, SolverSettings,
                    Step, butler_volmer_A_m2)
from .condensed import NODE_UNKNOWNS, CondensedLU
from .particle import petsc
from .particles import discretise, mean_x_per_size, sizes_of

Array = np.ndarray
CE, PE, PS, JJ = 0, 1, 2, 3
NE = NODE_UNKNOWNS  # electrolyte/solid/interface unknowns per node
ANODE, SEPARATOR, CATHODE = 0, 1, 2
# Measured on the MnFePBA-like and Fickian test cells (see tools/bench_p2d.py): BDF3 takes half of
# BDF2's steps; reusing the coloured-FD Jacobian within a Newton solve (a fresh one every step: a
# Jacobian kept across steps has the wrong shift after a step-size cut, and line searches then fail)
# saves another third. snes_stol 0 and snes_max_fail: newtonls declares CONVERGED_SNORM_RELATIVE when a
# line search fails with its last step below snes_stol * |x|, bypassing _snes_converged: it accepted
# |F| ~ 1e14 in Ecker2015 at t = 1 ms and the TS diverged. A failed line search must instead go on to
# _snes_converged, which accepts it only when the full Newton step is converged (residual at round-off,
# where bt cannot decrease |F| any more: 67 line searches of the Fickian cell's 1C discharge), else
# Newton iterates to max_it and the TS cuts dt. Command-line options override these.
_DEFAULT_OPTIONS = {"ts_bdf_order": "3", "snes_lag_jacobian": "4",
                    "snes_stol": "0", "snes_max_fail": "1000000"}
# LU without pivoting in the natural (node-major, banded) order: nested dissection met exact zero
# pivots in a redundant factorisation, and natural is no slower here (220k unknowns: 18 vs 20 s).
_LU_ORDERING = {"pc_factor_mat_ordering_type": "natural"}  # prefixed condensed_redundant_ on several ranks
# Newton stops when every unknown's last update is below this fraction of its step-error tolerance
# (rtol |u| + atol_fraction * its typical scale): PETSc's own tests are fooled here (a first residual
# of e^100 from the clipped Butler-Volmer exponent; |u| dominated by concentrations ~1e4), and an
# absolute residual test has a floor that grows with mesh refinement.
NEWTON_FRACTION = 0.1
# ... or when the error a convergence rate leaves (_snes_converged) is below this fraction of that: as
# converged as one more Newton step leaves it. At 1 the mosaic cell's Butler-Volmer rows at its x-limit
# held only to 1.6e-5 of the current (tests/test_p2d_mosaic.py asks 1e-5, met before and at 0.1).
NEWTON_RATE_MARGIN = 0.1
_FD_CHUNK_BYTES = 8 << 20  # copies of the ghosted state per residual call in the FD Jacobian (_pattern)
# A step ends by the x-limit when a particle cell comes within this fraction of x_max of an end of its
# window. Not at 0: inside an edge barrier (mu ~ RT ln x) the last cells approach x = 0 only
# exponentially; located at 0 within the event tolerance, a MnFePBA charge ended at x ~ 4e-9, where
# Newton can raise x only by a factor ~(1 + ln ratio) per iteration, and the next discharge's first step
# failed (50 iterations, 10 rejections). 1e-6 is 100 times the concentrations' absolute tolerance.
X_LIMIT = 1e-6
_FIELDS = ("anode_x", "cathode_x", "c_e_mol_m3", "phi_e_V")


def _mpi_min():
    from mpi4py import MPI
    return MPI.MIN


def _mpi_max():
    from mpi4py import MPI
    return MPI.MAX


def one_c_current_density(cell: Cell) -> float:
    """1C in A/m^2: the stated capacity per area, else the cathode's charge over its x window in 1 h."""
    if cell.capacity_Ah is not None:
        return cell.capacity_Ah / cell.area_m2
    e = cell.cathode
    x0, x1 = cell.x_window
    return FARADAY_C_MOL * e.thickness_m * e.active_fraction * e.formula_units_mol_m3 * (x1 - x0) / 3600.0


def rest_voltage_V(cell: Cell) -> float:
    """The cell voltage of the initial state (uniform particles at x_initial, at rest): where a
    protocol that begins with rests or a current step starts."""
    T = cell.temperature_K
    return discretise(cell.cathode, T).initial()[1] - discretise(cell.anode, T).initial()[1]


@dataclass
class _Region:
    """One electrode: its nodes [start, stop) and its particle discretisation (particles.py)."""

    electrode: Electrode
    start: int
    stop: int
    particle: object


class P2DCell:
    """The DFN cell on `comm`; run(steps) integrates a protocol and records voltage and fields."""

    def __init__(self, cell: Cell, settings: SolverSettings, comm):
        self.cell, self.settings, self.comm = cell, settings, comm
        self.PETSc = PETSc = petsc(comm, settings.petsc_options)
        self.T = cell.temperature_K
        self.f = FARADAY_C_MOL / (R_GAS_J_MOL_K * self.T)
        self._one_rank = comm.Get_size() == 1  # skips the per-iteration collectives (pickled on COMM_SELF too)
        self.i1c = one_c_current_density(cell)
        self._build_grid()
        self.da = da = PETSc.DMDA().create([self.n_nodes], dof=self.dof, stencil_width=1, comm=comm,
                                           ownership_ranges=(self._ownership(comm.Get_size()),))
        (self.xs, self.xe), = da.getRanges()
        (self.gs, self.ge), = da.getGhostRanges()
        self.u = da.createGlobalVec()
        self._uloc = da.createLocalVec()
        self._scales()
        self._pattern()
        nloc = (self.xe - self.xs) * self.dof
        self.J = PETSc.Mat().createAIJ([[nloc, None], [nloc, None]], comm=comm)
        self.J.setPreallocationCSR((self._indptr, self._cols))
        self.J.setOption(PETSc.Mat.Option.NEW_NONZERO_ALLOCATION_ERR, True)
        self.mode, self.current_A_m2, self.voltage_V = "current", 0.0, 0.0
        self.should_stop = None
        """Optional collective callable checked every stop_check_steps accepted steps."""
        self.progress = None
        """Optional callable(step_index, t_s, V, I_A_m2) called after every accepted step."""
        self.stop_check_steps, self._steps_since_check = 10, 0
        self._lag = None  # the Jacobian lag to restore after a step's first time step (_fresh_jacobians)
        self._make_ts()
        self.set_initial_state()

    # ---- grid and constant data -------------------------------------------------------------
    def _build_grid(self) -> None:
        c = self.cell
        parts = [(c.anode, c.anode.cells_x), (c.separator, c.separator.cells_x), (c.cathode, c.cathode.cells_x)]
        self.n_nodes = sum(n for _, n in parts)
        self.region = np.repeat([ANODE, SEPARATOR, CATHODE], [n for _, n in parts])
        self.dx = np.concatenate([np.full(n, p.thickness_m / n) for p, n in parts])
        self.eps = np.concatenate([np.full(n, p.porosity) for p, n in parts])
        self.tort = np.concatenate([np.full(n, p.porosity ** p.bruggeman) for p, n in parts])
        self.area = np.zeros(self.n_nodes)
        self.sigma = np.zeros(self.n_nodes)
        self.regions: list[_Region] = []
        start = 0
        for kind, (p, n) in zip((ANODE, SEPARATOR, CATHODE), parts):
            if kind != SEPARATOR:
                self.regions.append(_Region(p, start, start + n, discretise(p, self.T)))
                self.area[start:start + n] = p.specific_area_m
                self.sigma[start:start + n] = p.solid_conductivity_eff_S_m
            start += n
        self.dof = NE + max(r.particle.slots for r in self.regions)
        # finite-difference colours: the node's 4 unknowns by node mod 3, particle slots by their
        # discretisation's colouring (nodes' particles never share a row); unused slots are identity rows
        self._particle_colours = max(r.particle.n_colours for r in self.regions)
        self.n_colours = 3 * NE + self._particle_colours
        slot = np.arange(self.dof)
        colour = np.where(slot < NE, NE * (np.arange(self.n_nodes)[:, None] % 3) + slot,
                          3 * NE + (slot - NE) % self._particle_colours)
        for r in self.regions:
            colour[r.start:r.stop, NE:NE + r.particle.slots] = 3 * NE + r.particle.colours
        self._colour_of = colour
        faces = np.concatenate([[0.0], np.cumsum(self.dx)])
        self.x_centres_m = 0.5 * (faces[1:] + faces[:-1])

    def _ownership(self, size: int) -> list[int]:
        """Nodes per rank, contiguous, balancing NE + the node's particle unknowns (its work): an even
        split put all 2-D particles of a thin cathode on one rank."""
        w = np.full(self.n_nodes, float(NE))
        for r in self.regions:
            w[r.start:r.stop] += r.particle.slots
        cum = np.cumsum(w)
        cuts = [0]
        for k in range(1, size):
            cut = int(np.argmin(np.abs(cum - cum[-1] * k / size))) + 1
            cuts.append(min(max(cut, cuts[-1] + 1), self.n_nodes - (size - k)))
        return np.diff(cuts + [self.n_nodes]).tolist()

    def _scales(self) -> None:
        """Typical magnitudes per unknown (finite-difference steps, tolerances) and per row (scaling)."""
        n, dof = self.n_nodes, self.dof
        typ = np.ones((n, dof))
        row = np.ones((n, dof))
        ce0 = self.cell.electrolyte.initial_mol_m3
        typ[:, CE], row[:, CE] = ce0, 1.0 / ce0
        row[:, PE] = row[:, PS] = 1.0 / self.i1c
        self._mass = np.zeros((n, dof))
        self._mass[:, CE] = self.eps / ce0
        self._atol = np.full((n, dof), 1e300)
        self._rtol = np.zeros((n, dof))
        self._atol[:, CE] = self.settings.atol_fraction * ce0
        self._rtol[:, CE] = self.settings.rtol
        for r in self.regions:
            p = r.particle
            s, q = slice(r.start, r.stop), slice(NE, NE + p.slots)
            # at mid-window, not x_initial: a j0 with x^b (x_max - x)^c vanishes at an empty or full start
            j0_fn, mid = r.electrode.exchange_current_A_m2, np.array([0.5 * r.electrode.x_max])
            j0 = float(np.asarray(j0_fn(np.array([ce0]), mid, self.T)).ravel()[0])
            typ[s, JJ], row[s, JJ] = j0, 1.0 / j0
            typ[s, q], row[s, q], self._mass[s, q] = p.typical, p.row_scale, p.mass
            currents = NE + np.array(getattr(p, "current_slots", ()), dtype=int)  # a size's own j (SizeMix)
            typ[s, currents], row[s, currents] = j0, 1.0 / j0
            self._atol[s, q] = np.where(p.differential, self.settings.atol_fraction * p.typical, 1e300)
            self._rtol[s, q] = np.where(p.differential, self.settings.rtol, 0.0)
        self._typ, self._row = typ, row
        self._newton_scale = (self.settings.atol_fraction * typ[self.xs:self.xe]).ravel()

    def _pattern(self) -> None:
        """CSR pattern of the owned rows (global columns) and each entry's colour."""
        dof, nslots = self.dof, self.dof - NE
        last, read, block = {}, {}, {}  # rows that read the node's unknowns; slots the j row reads
        for r in self.regions:
            p_rows, p_cols = r.particle.pattern()
            per_row = [[] for _ in range(nslots)]
            for a, b in zip(p_rows.tolist(), p_cols.tolist()):
                per_row[a].append(NE + b)
            for p in range(r.particle.slots, nslots):  # unused slots: identity rows
                per_row[p].append(NE + p)
            for n in range(r.start, r.stop):
                last[n] = tuple(NE + q for q in r.particle.surface_slots)
                read[n] = tuple(NE + q for q in getattr(r.particle, "reaction_slots", r.particle.surface_slots))
                block[n] = per_row
        identity = [[NE + p] for p in range(nslots)]
        rows, cols = [], []
        for n in range(self.xs, self.xe):
            nb = [m for m in (n - 1, n, n + 1) if 0 <= m < self.n_nodes]
            for v in range(NE):
                cset = [m * dof + w for m in nb for w in range(NE)]
                if v == JJ and n in read:
                    cset += [n * dof + p for p in read[n]]
                rows.append(n * dof + v)
                cols.append(sorted(cset))
            surface = set(last.get(n, ()))
            for p, reach in enumerate(block.get(n, identity)):
                q = NE + p
                cset = [n * dof + w for w in reach]
                if q in surface:
                    cset += [n * dof + w for w in range(NE)]
                rows.append(n * dof + q)
                cols.append(sorted(set(cset)))
        self._indptr = np.concatenate([[0], np.cumsum([len(c) for c in cols])]).astype(self.PETSc.IntType)
        self._cols = np.concatenate(cols).astype(self.PETSc.IntType)
        self._rows = np.repeat(np.arange(len(cols)), [len(c) for c in cols])  # owned-local row index
        self._colour = self._colour_of[self._cols // dof, self._cols % dof]
        # The same columns in the ghosted local array (offset by the ghost start).
        self._cols_local = self._cols - self.gs * dof
        self._colour_local = self._colour_of[self.gs:self.ge]
        # The differenced copies go through the residual a chunk of colours at a time (copy 0 unperturbed,
        # copy c + 1 colour c): a batch of all 62 colours of a 200k-unknown rank made 100 MB temporaries,
        # and their fresh pages took more system than user time (glibc maps blocks > 32 MB anew each time).
        # Per chunk: (c0, c1, the perturbed local slots and their copy, the pattern entries it fills with
        # their copy, row and column): index arrays built once, the Jacobian runs every time step.
        per_copy = 8 * self._colour_local.size
        size = int(max(1, min(self.n_colours + 1, _FD_CHUNK_BYTES // per_copy)))
        copy_of_slot, copy_of_entry = self._colour_local.ravel() + 1, self._colour + 1
        self._fd_chunks = []
        for c0 in range(0, self.n_colours + 1, size):
            c1 = min(c0 + size, self.n_colours + 1)
            slots = np.nonzero((copy_of_slot >= c0) & (copy_of_slot < c1))[0]
            entries = np.nonzero((copy_of_entry >= c0) & (copy_of_entry < c1))[0]
            self._fd_chunks.append((c0, c1, slots, copy_of_slot[slots] - c0, entries,
                                    copy_of_entry[entries] - c0, self._rows[entries], self._cols_local[entries]))
        # the diagonal entries, which receive shift * M
        self._diag = np.nonzero(self._cols == self._rows + self.xs * dof)[0]
        self._diag_mass = self._mass[self.xs:self.xe].ravel()[self._rows[self._diag]]
        # Solid conductance of the faces between ghosted nodes (series mean; 0 next to the separator).
        sig, half = self.sigma[self.gs:self.ge], 0.5 * self.dx[self.gs:self.ge]
        both = (sig[1:] > 0) & (sig[:-1] > 0)
        self._sigma_face = np.zeros(both.size)
        self._sigma_face[both] = ((half[1:] + half[:-1])[both]
                                  / (half[1:][both] / sig[1:][both] + half[:-1][both] / sig[:-1][both]))
        # the residual's constant arrays over the ghosted (g) and owned (o) nodes, sliced once: it runs
        # ~5x per time step plus once per Jacobian, and its numpy calls on small arrays are its cost
        o = slice(self.xs - self.gs, self.xe - self.gs)
        self._o, self._half_l, self._half_r = o, half[:-1], half[1:]
        self._face_dist = half[1:] + half[:-1]
        self._tort_g = self.tort[self.gs:self.ge]
        self._dx_o, self._area_o = self.dx[self.xs:self.xe], self.area[self.xs:self.xe]
        self._sep_o = np.nonzero(self.region[self.xs:self.xe] == SEPARATOR)[0]
        self._row_o = self._row[self.xs:self.xe]
        self._sigma_end, self._half_end = sig[[0, -1]], half[[0, -1]]

    # ---- residual ---------------------------------------------------------------------------
    def residual(self, ug: Array) -> Array:
        """R(u) of the owned nodes, shape (..., owned, dof), from ghosted local block arrays ug of
        shape (..., ghosted, dof); leading axes are a batch (the Jacobian's colours in one call)."""
        el = self.cell.electrolyte
        gs, xs, xe, o = self.gs, self.xs, self.xe, self._o
        ce, pe, ps = ug[..., CE], ug[..., PE], ug[..., PS]
        ce_pos = np.maximum(ce, 1e-12 * el.initial_mol_m3)
        De, kap = el.diffusivity_m2_s(ce_pos) * self._tort_g, el.conductivity_S_m(ce_pos) * self._tort_g
        # Faces between consecutive ghosted nodes; index k is the face between local k and k+1.
        hl, hr, dist = self._half_l, self._half_r, self._face_dist

        def series(p):  # p > 0: electrolyte properties
            return dist / (hr / p[..., 1:] + hl / p[..., :-1])

        def grad(v):
            return (v[..., 1:] - v[..., :-1]) / dist

        tf = el.thermodynamic_factor(0.5 * (ce_pos[..., 1:] + ce_pos[..., :-1]))
        two_rt_f = 2.0 * (1.0 - el.transference_number) / self.f
        kf = series(kap)
        m = ce.shape[-1]
        # Face arrays padded to m + 1: entry k is the left face of local node k.
        faces = np.zeros((3,) + ce.shape[:-1] + (m + 1,))
        faces[1, ..., 1:m] = -kf * grad(pe) + kf * two_rt_f * tf * grad(np.log(ce_pos))
        # ion flux: diffusion plus the current's share carried by the cation, t+ i_e / F
        faces[0, ..., 1:m] = -series(De) * grad(ce) + el.transference_number * faces[1, ..., 1:m] / FARADAY_C_MOL
        faces[2, ..., 1:m] = -self._sigma_face * grad(ps)
        Sf = faces[2]
        if gs == 0:  # anode collector: phi_s = 0 half a cell away
            Sf[..., 0] = -self._sigma_end[0] * ps[..., 0] / self._half_end[0]
        if self.ge == self.n_nodes:  # cathode collector
            if self.mode == "voltage":
                Sf[..., m] = -self._sigma_end[1] * (self.voltage_V - ps[..., -1]) / self._half_end[1]
            else:
                Sf[..., m] = self.current_A_m2
        div = faces[..., o.start + 1:o.stop + 1] - faces[..., o.start:o.stop]
        R = np.empty(ug.shape[:-2] + (xe - xs, self.dof))
        j = ug[..., o, JJ]
        aj = self._area_o * j
        R[..., CE] = div[0] / self._dx_o - aj / FARADAY_C_MOL
        R[..., PE] = div[1] - aj * self._dx_o
        R[..., PS] = div[2] + aj * self._dx_o
        sep = self._sep_o
        if sep.size:
            R[..., sep, PS] = ps[..., o][..., sep]
            R[..., sep, JJ:] = ug[..., o, :][..., sep, JJ:]
        for r in self.regions:
            lo, hi = max(r.start, xs), min(r.stop, xe)
            if lo < hi:
                self._electrode_rows(r, ug[..., lo - gs:hi - gs, :], R[..., lo - xs:hi - xs, :])
        R *= self._row_o
        return R

    def _electrode_rows(self, r: _Region, u: Array, R: Array) -> None:
        """Particle, Butler-Volmer (Eq. 29) and unused-slot rows of one electrode's nodes (in place)."""
        p, e, j = r.particle, r.electrode, u[..., JJ]
        R[..., NE + p.slots:] = u[..., NE + p.slots:]
        if getattr(p, "local_reaction", False):  # Butler-Volmer per surface point (particles2d.py)
            R[..., NE:NE + p.slots], R[..., JJ] = p.reaction_rows(u[..., NE:NE + p.slots], j, u[..., CE],
                                                                  u[..., PS] - u[..., PE], self.f)
            return
        R[..., NE:NE + p.slots], U, x_surf = p.rows(u[..., NE:NE + p.slots], j)
        R[..., JJ] = j - butler_volmer_A_m2(e, u[..., CE], u[..., PS] - u[..., PE], U, x_surf, self.f, self.T)

    # ---- PETSc callbacks --------------------------------------------------------------------
    def _local(self, X) -> Array:
        self.da.globalToLocal(X, self._uloc)
        return self._uloc.getArray(readonly=True).reshape(-1, self.dof)

    def _ifunction(self, ts, t, X, Xdot, F):
        ug = self._local(X)
        udot = Xdot.getArray(readonly=True).reshape(-1, self.dof)
        R = self.residual(ug) + self._mass[self.xs:self.xe] * udot
        F.getArray()[:] = R.ravel()

    def _ijacobian(self, ts, t, X, Xdot, shift, J, P):
        vals = self._differenced(X)
        vals[self._diag] += shift * self._diag_mass
        if self._condensed is not None:
            self._condensed.update(vals)
        P.setValuesCSR(self._indptr, self._cols, vals)
        P.assemble()
        if J != P:
            J.assemble()

    def _differenced(self, X) -> Array:
        """dR/du at X by coloured finite differences, in the pattern's order."""
        ug = np.array(self._local(X))
        h = (np.sqrt(np.finfo(float).eps) * np.maximum(np.abs(ug), self._typ[self.gs:self.ge])).ravel()
        vals = np.empty(self._cols.size)
        for c0, c1, slots, slot_copy, entries, copy, rows, cols in self._fd_chunks:
            batch = np.repeat(ug[None], c1 - c0, axis=0)
            batch.reshape(c1 - c0, -1)[slot_copy, slots] += h[slots]
            res = self.residual(batch).reshape(c1 - c0, -1)
            if c0 == 0:
                base = res[0]
            vals[entries] = (res[copy, rows] - base[rows]) / h[cols]
        return vals

    def _make_ts(self) -> None:
        PETSc, s = self.PETSc, self.settings
        self.ts = ts = PETSc.TS().create(comm=self.comm)
        ts.setProblemType(PETSc.TS.ProblemType.NONLINEAR)
        ts.setType(s.ts_type)
        if s.ts_type == "arkimex":
            ts.setARKIMEXFullyImplicit(True)
        ts.setIFunction(self._ifunction, self.u.duplicate())
        ts.setIJacobian(self._ijacobian, self.J)
        ts.setExactFinalTime(PETSc.TS.ExactFinalTime.MATCHSTEP)
        atol, rtol = self.u.duplicate(), self.u.duplicate()
        atol.getArray()[:] = self._atol[self.xs:self.xe].ravel()
        rtol.getArray()[:] = self._rtol[self.xs:self.xe].ravel()
        ts.setTolerances(rtol=rtol, atol=atol)
        ts.setMaxSteps(10**8)
        ts.setMaxSNESFailures(-1)
        if math.isfinite(s.dt_max_s):
            ts.getAdapt().setStepLimits(hmax=s.dt_max_s)
        snes = ts.getSNES()
        snes.setConvergenceTest(self._snes_converged)
        snes.setLineSearchPreCheck(self._newton_direction)
        ksp = snes.getKSP()
        ksp.setType("preonly")
        # Direct solves. One rank: LU of the whole Jacobian. Several (this PETSc has no parallel direct
        # solver): condense the node-local particle unknowns on each rank and factor only the 4
        # unknowns per node redundantly (condensed.py). 220k unknowns, 600 s of 1C: LU 18 s on 1 rank;
        # 2 ranks: condensed 15 s, redundant LU of everything 19-22 s, GMRES + ASM 180 s. With MUMPS:
        # -pc_type lu -pc_factor_mat_solver_type mumps. Any -pc_type overrides.
        pc = ksp.getPC()
        self._condensed = None
        # an unbanded particle (2-D) would fill a whole-Jacobian LU, and so would several sizes' currents,
        # which read every size of their node: condense on one rank too
        banded = all(r.particle.bandwidth is not None and not hasattr(r.particle, "current_slots")
                     for r in self.regions)
        if self.comm.Get_size() == 1 and banded:
            pc.setType("lu")
        else:
            pc.setType("python")
            self._condensed = CondensedLU(self)
            pc.setPythonContext(self._condensed)
        ts.setEventHandler([0, -1], [True, True], self._indicator, self._postevent)
        ts.setEventTolerances(tol=1e-7)
        ts.setMonitor(self._monitor)
        ts.setPostStep(self._poststep)
        opts = PETSc.Options()
        prefix = ("" if self._condensed is None else
                  "condensed_" if self.comm.Get_size() == 1 else "condensed_redundant_")
        defaults = {**_DEFAULT_OPTIONS, **{prefix + k: v for k, v in _LU_ORDERING.items()}}
        for name, value in defaults.items():
            if not opts.hasName(name):
                opts.setValue(name, value)
        ts.setFromOptions()
        if pc.getType() != "python":
            self._condensed = None
        elif self._condensed is not None:  # the inner solver reads its options now that they are set
            self._condensed.ksp.setFromOptions()

    def _newton_direction(self, x, y) -> None:
        """Line-search pre-check: judge the full Newton step y, before the line search shrinks it. The
        step the iteration took (SNES's solution update) is lambda * y: a line search that backtracked
        to a tiny lambda (bt ends once lambda * |y| < snes_stol * |x|) made it small at any residual, and
        judging it would accept states that are no solution. Where Newton has converged the full step is
        small too."""
        tol = NEWTON_FRACTION * (self.settings.rtol * np.abs(x.getArray(readonly=True)) + self._newton_scale)
        step = np.abs(y.getArray(readonly=True))
        worst = float(np.max(step / tol, initial=0.0))
        self._newton_worst = worst if self._one_rank else self.comm.allreduce(worst, op=_mpi_max())
        self._newton_step = float(np.max(step, initial=0.0))  # this rank's, to see whether it was taken whole

    def _snes_converged(self, snes, it, norms):
        """Converged when the last full Newton step (_newton_direction) is below NEWTON_FRACTION of the
        TS's error tolerance in every unknown, or when the convergence rate says what is left is smaller
        (IDA's test): after two whole steps with contraction rate = |step k| / |step k-1|, the error left
        is at most rate / (1 - rate) |step k|. Waiting for the step that is itself converged costs one more
        residual, linear solve and line search, and the line search then backtracks on round-off (|F|
        cannot decrease) with a residual per try: 36 % of the Fickian cell's residuals in its 1C
        discharge (2405 -> 1540, same steps)."""
        reason = self.PETSc.SNES.ConvergedReason
        if not np.isfinite(norms[2]):
            return reason.DIVERGED_FNORM_NAN
        if it == 0:
            self._newton_worst = self._newton_last = None
            return reason.ITERATING
        if self._newton_worst is None:  # a SNES type without a line search (-snes_type): its step is full
            self._newton_direction(snes.getSolution(), snes.getSolutionUpdate())
        worst, self._newton_worst = self._newton_worst, None  # each iteration's own step
        if worst < 1.0:
            return reason.CONVERGED_SNORM_RELATIVE
        # the line search took the whole step iff the update it applied is as large as the step
        taken = np.max(np.abs(snes.getSolutionUpdate().getArray(readonly=True)), initial=0.0)
        whole = abs(float(taken) - self._newton_step) <= 1e-12 * self._newton_step
        whole = whole if self._one_rank else self.comm.allreduce(whole, op=_mpi_min())
        last, self._newton_last = self._newton_last, (worst if whole else None)
        if whole and last is not None:
            rate = worst / last
            if rate < 0.9 and rate / (1.0 - rate) * worst < NEWTON_RATE_MARGIN:
                return reason.CONVERGED_SNORM_RELATIVE
        return reason.DIVERGED_MAX_IT if it >= snes.getTolerances()[3] else reason.ITERATING

    # ---- state ------------------------------------------------------------------------------
    def set_initial_state(self) -> None:
        """Uniform particles at x_initial and c_e0; potentials that put both electrodes at rest."""
        u = np.zeros((self.n_nodes, self.dof))
        u[:, CE] = self.cell.electrolyte.initial_mol_m3
        ocv = {}
        for r in self.regions:
            u0, ocv[r.start] = r.particle.initial()
            u[r.start:r.stop, NE:NE + r.particle.slots] = u0
        a, c = self.regions
        u[:, PE] = -ocv[a.start]
        u[c.start:c.stop, PS] = ocv[c.start] - ocv[a.start]
        self._set_global(u)
        self.time_s = 0.0
        self.start()

    def _set_global(self, u: Array) -> None:
        self.u.getArray()[:] = u[self.xs:self.xe].ravel()

    def gather(self, X=None) -> Array:
        """The whole block array (n_nodes, dof) of X (default: the state) on every rank."""
        mine = (X or self.u).getArray(readonly=True).reshape(-1, self.dof)
        return np.concatenate(self.comm.allgather(np.array(mine)))

    # ---- observables ------------------------------------------------------------------------
    def _from_last(self, value: float | None) -> float:
        return value if self._one_rank else self.comm.bcast(value, root=self.comm.Get_size() - 1)

    def terminal(self, X=None) -> tuple[float, float]:
        """(cell voltage V, applied current density A/m^2 > 0 discharging) at the current state."""
        value = None
        if self.xe == self.n_nodes:
            ps = (X or self.u).getArray(readonly=True).reshape(-1, self.dof)[-1, PS]
            half = 0.5 * self.dx[-1]
            sig = self.sigma[-1]
            if self.mode == "voltage":
                value = (self.voltage_V, -sig * (self.voltage_V - ps) / half)
            else:
                value = (ps - self.current_A_m2 * half / sig, self.current_A_m2)
        return self._from_last(value)

    def _indicator(self, ts, t, X, fvalue):
        V, I = self.terminal(X)
        step = self._step
        if step.mode == "current" and step.cutoff_V is not None:
            fvalue[0] = V - step.cutoff_V
        elif step.mode == "voltage" and step.current_cutoff_C is not None:
            fvalue[0] = abs(I) / self.i1c - step.current_cutoff_C
        else:
            fvalue[0] = 1.0
        margin = self._x_margin(X)
        fvalue[1] = margin if self._one_rank else self.comm.allreduce(margin, op=_mpi_min())

    def _x_margin(self, X) -> float:
        """min over this rank's particle cells of min(x, x_max - x) / x_max - X_LIMIT (inf if it owns none)."""
        u = X.getArray(readonly=True).reshape(-1, self.dof)
        margin = np.inf
        for r in self.regions:
            lo, hi = max(r.start, self.xs), min(r.stop, self.xe)
            if lo < hi:
                x = r.particle.stoichiometry(u[lo - self.xs:hi - self.xs, NE:NE + r.particle.slots])
                margin = min(margin, float(np.min(np.minimum(x, r.electrode.x_max - x))) / r.electrode.x_max)
        return margin - X_LIMIT

    def _postevent(self, ts, events, t, X, forward):
        self._fired = [int(e) for e in events]

    def _monitor(self, ts, k, t, X):
        if k == 0:  # a step's start: the previous step's end (recorded), or the initial rest state
            if not self.trace:  # its voltage, with the current applied from t = 0+ (for integrals of I)
                ps = X.getArray(readonly=True).reshape(-1, self.dof)[-1, PS] if self.xe == self.n_nodes else None
                self.trace.append((t, self._from_last(ps), self.current_A_m2, self.step_index))
        else:
            V, I = self.terminal(X)
            self.trace.append((t, V, I, self.step_index))
            if self.progress is not None:
                self.progress(self.step_index, t, V, I)
        if t >= self._next_output or (k == 0 and not self.snapshots):
            self.snapshots.append((t, self.fields(X)))
            self._next_output = t + self.settings.output_interval_s

    def fields(self, X=None) -> dict:
        """Particle concentrations per electrode as x (stoichiometry), shape (cells_x, cells_r), and c_e."""
        u = self.gather(X)
        out = {"c_e_mol_m3": u[:, CE].copy(), "phi_e_V": u[:, PE].copy()}
        for name, r in zip(("anode", "cathode"), self.regions):
            out[f"{name}_x"] = r.particle.stoichiometry(u[r.start:r.stop, NE:NE + r.particle.slots])
        return out

    def inventory_mol_m2(self) -> float:
        """Moles of ion per m^2 of cell in particles and electrolyte (conserved up to what flows out)."""
        u = self.gather()
        total = float(np.sum(self.eps * self.dx * u[:, CE]))
        for r in self.regions:
            p, e = r.particle, r.electrode
            x = mean_x_per_size(p, p.stoichiometry(u[r.start:r.stop, NE:NE + p.slots])) @ sizes_of(p)[2]
            total += float(np.sum(x * e.active_fraction * e.formula_units_mol_m3 * self.dx[r.start:r.stop]))
        return total

    # ---- protocol ---------------------------------------------------------------------------
    def run_step(self, step: Step) -> str:
        """Integrate one protocol step from the current state up to its end time (counted from
        step_start_s); returns why it ended: 'cutoff', 'time', 'x-limit' (a particle cell came
        within X_LIMIT of x = 0 or x_max) or 'stopped' (should_stop said so). RuntimeError if the TS failed or the
        step's cutoff lies behind its start (_cutoff_behind)."""
        self._step = step
        self.mode = "voltage" if step.mode == "voltage" else "current"
        self.current_A_m2 = step.c_rate * self.i1c if step.mode == "current" else 0.0
        self.voltage_V = step.voltage_V
        ts = self.ts
        ts.setTime(self.time_s)
        ts.setStepNumber(0)
        ts.setTimeStep(self.settings.dt_initial_s)
        end = self.step_start_s + step.duration_s
        ts.setMaxTime(end if math.isfinite(end) else 1e300)
        self._fired, self._refused = [], None
        self._fresh_jacobians(True)
        try:
            ts.solve(self.u)
        finally:  # the options database is the process's: never leave the lag changed
            self._fresh_jacobians(False)
        reason = ts.getConvergedReason()
        self.time_s = ts.getTime()
        if not self.snapshots or self.snapshots[-1][0] < self.time_s:
            self.snapshots.append((self.time_s, self.fields()))
        if self._refused is not None:
            raise RuntimeError(self._refused)
        if reason < 0:
            raise RuntimeError(f"P2D step {step.label or step.mode}: TS diverged (reason {reason}) at "
                               f"t = {self.time_s:.6g} s")
        if reason == self.PETSc.TS.ConvergedReason.CONVERGED_EVENT:
            return "x-limit" if 1 in self._fired else "cutoff"
        return "stopped" if reason == self.PETSc.TS.ConvergedReason.CONVERGED_USER else "time"

    def _fresh_jacobians(self, on: bool) -> None:
        """A fresh Jacobian every Newton iteration (on) or the configured lag (off). The first step of a
        new current or voltage moves the algebraic unknowns (potentials, j) far from the previous
        state; with the Jacobian lagged over iterations there Newton's line search failed at every dt
        (PyBaMM's Chen2020 on 20 x-cells or 40 radial, OKane2022). petsc4py has no SNESSetLagJacobian,
        so the options database carries it; _poststep turns it off after the first accepted step."""
        opts = self.PETSc.Options()
        if on:
            lag = opts.getInt("snes_lag_jacobian", 1)
            self._lag = lag if lag > 1 else None
            if self._lag is None:
                return
            opts["snes_lag_jacobian"] = 1
        elif self._lag is None:
            return
        else:
            opts["snes_lag_jacobian"], self._lag = self._lag, None
        self.ts.getSNES().setFromOptions()

    def _poststep(self, ts) -> None:
        self._fresh_jacobians(False)
        if ts.getStepNumber() == 1 and not self._fired:
            self._refused = self._cutoff_behind()
            if self._refused is not None:
                ts.setConvergedReason(self.PETSc.TS.ConvergedReason.CONVERGED_USER)
                return
        self._steps_since_check += 1
        if self.should_stop is not None and self._steps_since_check >= self.stop_check_steps:
            self._steps_since_check = 0
            if self.should_stop():  # collective over the cell's communicator
                ts.setConvergedReason(self.PETSc.TS.ConvergedReason.CONVERGED_USER)

    def _cutoff_behind(self) -> str | None:
        """Why a current step cannot reach its cutoff, judged after its first time step (the ohmic jump
        of the new current is in V by then): a charge whose until_V is already at or below V, or a
        discharge whose until_V is at or above it, would never cross it and run to the x-limit."""
        step = self._step
        if step.mode != "current" or step.cutoff_V is None or step.c_rate == 0.0:
            return None
        V, _ = self.terminal()
        charge = step.c_rate < 0.0
        if (V < step.cutoff_V) if charge else (V > step.cutoff_V):
            return None
        return (f"P2D step {self.step_index + 1} ({step.label or step.mode}): until_V {step.cutoff_V:g} V is "
                f"{'at or below' if charge else 'at or above'} the voltage it starts at, {V:.4f} V; a "
                f"{'charge raises' if charge else 'discharge lowers'} it, so it would run to the x-limit")

    def start(self) -> None:
        """Begin a protocol at the current state: records empty, first step next."""
        self.trace, self.snapshots, self._next_output = [], [], self.time_s
        self.step_index, self.step_start_s, self.ends = 0, self.time_s, []

    def advance(self, steps) -> bool:
        """Run the protocol from where it stands; False if should_stop interrupted it (resumable)."""
        while self.step_index < len(steps):
            why = self.run_step(steps[self.step_index])
            if why == "stopped":
                return False
            self.ends.append(why)
            self.step_index += 1
            self.step_start_s = self.time_s
        return True

    def run(self, steps) -> list[str]:
        """Run the whole protocol from the current state; why each step ended."""
        self.start()
        self.advance(steps)
        return self.ends

    def state(self) -> dict:
        """Everything needed to continue (same on every rank; independent of the rank count)."""
        res = self.result()
        return {"u": self.gather(), "time_s": self.time_s, "step_index": self.step_index,
                "step_start_s": self.step_start_s, "ends": ",".join(self.ends),
                "next_output_s": self._next_output,
                "trace": np.array(self.trace, dtype=float).reshape(-1, 4),
                "snapshots": {k: res[k] for k in ("snapshot_time_s",) + _FIELDS}}

    def load_state(self, s: dict) -> None:
        """Continue from state(); the BDF history restarts (first step of order 1)."""
        u = np.asarray(s["u"], dtype=float)
        if u.shape != (self.n_nodes, self.dof):
            raise ValueError(f"P2D state has shape {u.shape}, this mesh needs {(self.n_nodes, self.dof)}")
        self._set_global(u)
        self.time_s, self.step_index = float(s["time_s"]), int(s["step_index"])
        self.step_start_s, self._next_output = float(s["step_start_s"]), float(s["next_output_s"])
        self.ends = [e for e in str(s["ends"]).split(",") if e]
        self.trace = [tuple(row) for row in np.asarray(s["trace"])]
        snaps = s["snapshots"]
        self.snapshots = [(float(t), {k: np.asarray(snaps[k])[i] for k in _FIELDS})
                          for i, t in enumerate(np.asarray(snaps["snapshot_time_s"]))]

    def result(self) -> dict:
        """Recorded series as arrays: every accepted TS step (t, V, I, step, throughput) and the
        field snapshots (times, stoichiometry maps x(x-node, r-cell) per electrode, c_e(x)), and per
        electrode its particle sizes (radii_m, size_fractions) and each size's mean x per snapshot and
        node (particle_x: snapshot, x-node, size; one size unless the electrode has `sizes`)."""
        tr = np.array(self.trace, dtype=float).reshape(-1, 4)
        t, I = tr[:, 0], tr[:, 2]
        dq = np.concatenate([[0.0], 0.5 * (np.abs(I[1:]) + np.abs(I[:-1])) * np.diff(t)])
        out = {"time_s": t, "voltage_V": tr[:, 1], "current_A_m2": I, "step": tr[:, 3].astype(int),
               "throughput_Ah_m2": np.cumsum(dq) / 3600.0, "one_c_A_m2": self.i1c,
               "x_centres_m": self.x_centres_m, "snapshot_time_s": np.array([s[0] for s in self.snapshots])}
        for key in _FIELDS:
            out[key] = np.array([s[1][key] for s in self.snapshots])
        for name, r in zip(("anode", "cathode"), self.regions):
            out[f"{name}_r_centres_m"] = r.particle.centres_m
            out[f"{name}_x_range_m"] = self.x_centres_m[[r.start, r.stop - 1]]
            _, out[f"{name}_radii_m"], out[f"{name}_size_fractions"] = sizes_of(r.particle)
            x = out[f"{name}_x"].reshape(len(self.snapshots), r.stop - r.start, r.particle.cells)
            out[f"{name}_particle_x"] = mean_x_per_size(r.particle, x)
        return out
