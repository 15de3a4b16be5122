"""Particle discretisations for the P2D cell: what each x-node's representative particle contributes.

The cell (cell.py) treats a particle as a block of `slots` unknowns per node and asks its
discretisation for their rows, given the interfacial current density j (A/m^2, > 0 takes the ion out),
and for the equilibrium potential U (V vs the metal) that enters Butler-Volmer. A new particle model
(the paper's 1-D particle cannot discharge through its Na-rich shell; particles2d.py's can)
implements the same small interface and is chosen in `discretise` from the electrode's particle law.

Interface of a discretisation (all arrays may carry leading batch axes before `nodes`):
    slots, bandwidth        unknowns per node; a row depends on slots at most `bandwidth` away (but for
                            the current_slots, which the condensation keeps)
    surface_slots           the slots U depends on (besides j); their rows may see the node's 4 unknowns
    pattern() -> (rows, cols) the particle block's structural entries (slot pairs); colours, n_colours:
                            a colour per slot, distinct among the columns of any row (finite differences)
    local_reaction          optional, true: reaction_rows(u, j, c_e, phi_s - phi_e, F/RT) -> (R, j row)
                            replaces rows(); the particle computes Butler-Volmer per surface point
                            (particles2d.py) or per particle size (SizeMix); bandwidth None: not banded
                            (sparse LU in condensed.py)
    reaction_slots          optional: the slots the node's j row reads (default surface_slots)
    current_slots           optional: slots holding current densities (A/m^2), scaled like j by the cell
    rows(u, j) -> (R, U, x) residual rows (..., nodes, slots) without the time derivative, U, and the
                            surface stoichiometry x that the exchange current j0(c_e, x, T) sees
    mass, typical, row_scale, differential   per-slot arrays: M in M du/dt + R, magnitudes, row
                            scaling, and which slots carry the time-step error control
    initial() -> (u0, U0)   uniform state at the electrode's x_initial and its potential
    stoichiometry(u)        x per radial cell (..., nodes, cells); `volumes_m3` of those cells (one size;
                            SizeMix has `members`, and mean_x_per_size averages each)
"""
from __future__ import annotations

import dataclasses

import numpy as np

from .model import (FARADAY_C_MOL, CahnHilliard2DParticle, CahnHilliardParticle, Electrode,
                    FickianParticle, butler_volmer_A_m2, slot_scales)
from .particle import Mesh

Array = np.ndarray


class SplitSphere:
    """Radial finite volumes of a sphere, unknowns interleaved [c_0, mu_0, c_1, mu_1, ...].

    Cahn-Hilliard: dc/dt = div(M grad mu), mu = mu_hom(c) - k lap c, U = -mu_surf / F (Eq. 30).
    Fickian: the same with mu := c, M := D(x), U = OCV(c_surf). The surface value is extrapolated
    from the last cell with the flux condition; the inward surface flux is -j / F. The exchange
    current's surface stoichiometry is that extrapolated c_surf for Fickian particles and the last
    cell's c for Cahn-Hilliard ones, whose natural boundary condition dc/dr = 0 makes it the surface
    value to O(dr^2) (c is not extrapolated with the flux: the flux condition is on mu).
    """

    bandwidth = 3  # c_i's row reaches mu_{i+1} (3 slots on), mu_i's row c_{i-1} (3 slots back)

    def __init__(self, electrode: Electrode, temperature_K: float):
        self.electrode, law = electrode, electrode.particle
        self.ch = isinstance(law, CahnHilliardParticle)
        self.law = law
        self.mesh = Mesh(electrode.particle_radius_m, electrode.cells_r, "sphere")
        self.cells, self.slots = self.mesh.cells, 2 * self.mesh.cells
        self.fu = electrode.formula_units_mol_m3
        # the mesh's arrays, computed once (the residual runs ~20x per Jacobian)
        self.lap = self.mesh.laplacian()
        self.A, self.volumes_m3, self.h = self.mesh.areas_m2, self.mesh.volumes_m3, self.mesh.dr_m
        self.mobility = law.mobility if self.ch else law.diffusivity_m2_s
        self.surface_slots = (self.slots - 2, self.slots - 1)
        self.differential, self.mass, self.typical, self.row_scale = slot_scales(self.slots, self.fu, self.ch,
                                                                                 temperature_K)
        # finite-difference colours: slot mod (2 bandwidth + 1) is distinct within any row's reach
        self.n_colours = 2 * self.bandwidth + 1
        self.colours = np.arange(self.slots) % self.n_colours

    def pattern(self) -> tuple[Array, Array]:
        """(row slot, column slot) of every entry of the particle block: the band."""
        rows, cols = np.meshgrid(np.arange(self.slots), np.arange(-self.bandwidth, self.bandwidth + 1), indexing="ij")
        cols = rows + cols
        ok = (cols >= 0) & (cols < self.slots)
        return rows[ok], cols[ok]

    def rows(self, u: Array, j: Array) -> tuple[Array, Array, Array]:
        c, mu = u[..., 0::2], u[..., 1::2]
        fu, A, h = self.fu, self.A, self.h
        inward = -j / FARADAY_C_MOL  # mol/m^2/s into the particle
        G = np.empty(c.shape[:-1] + (self.cells + 1,))  # outward molar flow through each radial face, mol/s
        G[..., 0] = 0.0
        G[..., 1:-1] = (-A[1:-1] * self.mobility(0.5 * (c[..., 1:] + c[..., :-1]) / fu)
                        * (mu[..., 1:] - mu[..., :-1]) / h)
        G[..., -1] = -A[-1] * inward
        R = np.empty(u.shape)
        R[..., 0::2] = (G[..., 1:] - G[..., :-1]) / self.volumes_m3
        mu_surf = mu[..., -1] + 0.5 * h * inward / self.mobility(c[..., -1] / fu)
        if self.ch:
            R[..., 1::2] = mu - self.law.mu_hom_J_mol(c / fu) + self.law.kappa_J_m5_mol2 * (c @ self.lap.T)
            return R, -mu_surf / FARADAY_C_MOL, c[..., -1] / fu
        R[..., 1::2] = mu - c
        return R, self.law.ocv_V(mu_surf / fu), mu_surf / fu

    def initial(self) -> tuple[Array, float]:
        c0 = np.full(self.cells, self.electrode.x_initial * self.fu)
        u0 = np.empty(self.slots)
        u0[0::2] = c0
        if self.ch:
            u0[1::2] = self.law.mu_hom_J_mol(c0 / self.fu) - self.law.kappa_J_m5_mol2 * (self.lap @ c0)
            return u0, -float(u0[-1]) / FARADAY_C_MOL
        u0[1::2] = c0
        return u0, float(self.law.ocv_V(np.array([self.electrode.x_initial]))[0])

    def stoichiometry(self, u: Array) -> Array:
        return u[..., 0::2] / self.fu

    @property
    def centres_m(self) -> Array:
        return self.mesh.centres_m


class SizeMix:
    """Several particle sizes per node (model.ParticleSizes): each size is a particle of the electrode's
    law (any discretisation here) with its own interfacial current j_k, an unknown in A/m^2; all share
    the node's c_e, phi_e and phi_s.

    Slots: [size 0's, size 1's, ..., size P-1's, j_0 ... j_P-1]. The node's j (the cell's unknown) is
    the area mean of the j_k, weights w_k = (f_k / R_k) / sum_l (f_l / R_l) from the sizes' specific
    areas a_k = 3 eps_s f_k / R_k (they sum to the electrode's a). Rows:
        size k's particle rows at the surface current j_k - jbar + j, jbar = sum_l w_l j_l,
        j_k's row: j_k - Butler-Volmer(c_e, phi_s - phi_e, size k's U and x_surf)  (for a 2-D size, the
            area mean of its surface cells' currents), and the node's j row j - jbar.
    The surface currents' area mean is j at every Newton iterate, so the particles lose exactly the
    a j / F that the electrolyte gains: conservation to round-off, as in particles2d.py. The sizes
    couple only through j and the j_k, which the condensation keeps with the node's unknowns: it eliminates
    all sizes' blocks of a node together (condensed.py; band LU for 1-D sizes, SuperLU with 2-D ones).
    """

    local_reaction = True

    def __init__(self, electrode: Electrode, temperature_K: float):
        self.electrode, self.T = electrode, temperature_K
        sizes = electrode.sizes
        self.members = [discretise(dataclasses.replace(electrode, particle_radius_m=r, sizes=None), temperature_K)
                        for r in sizes.radii_m]
        bands = [m.bandwidth for m in self.members]
        # without the currents (condensed.py keeps them) the sizes' blocks follow one another: band LU
        self.bandwidth = None if None in bands else max(bands)
        self.radii_m, self.fractions = np.array(sizes.radii_m), np.array(sizes.fractions)
        a = self.fractions / self.radii_m
        self.area_weights = a / a.sum()
        n = len(self.members)
        self.offsets = np.concatenate([[0], np.cumsum([m.slots for m in self.members])])
        self.slots = int(self.offsets[-1]) + n
        self.current_slots = tuple(int(self.offsets[-1]) + k for k in range(n))
        self.reaction_slots = self.current_slots
        self.surface_slots = tuple(int(o) + q for o, m in zip(self.offsets, self.members) for q in m.surface_slots
                                   ) + self.current_slots
        self.cells = sum(m.cells for m in self.members)

        def per_slot(name, current):
            return np.concatenate([getattr(m, name) for m in self.members] + [np.full(n, current)])

        # currents: algebraic; typical / row scale 1 here, the cell sets them to the exchange current's
        self.differential, self.mass = per_slot("differential", False), per_slot("mass", 0.0)
        self.typical, self.row_scale = per_slot("typical", 1.0), per_slot("row_scale", 1.0)
        # colours: each size keeps its own (no row of one size reads another size's slots); the currents,
        # which the surface rows of every size read, one each above them
        base = max(m.n_colours for m in self.members)
        self.colours = per_slot("colours", 0).astype(int)
        self.colours[-n:] = base + np.arange(n)
        self.n_colours = base + n

    def _slice(self, k: int) -> slice:
        return slice(int(self.offsets[k]), int(self.offsets[k + 1]))

    def pattern(self) -> tuple[Array, Array]:
        """Each size's block; its surface rows read every current; j_k's row its surface and every current."""
        cur = np.array(self.current_slots)
        rows, cols = [np.repeat(cur, cur.size)], [np.tile(cur, cur.size)]
        for k, m in enumerate(self.members):
            r, c = m.pattern()
            off = int(self.offsets[k])
            surf = off + np.array(m.surface_slots)
            rows += [r + off, np.repeat(surf, cur.size), np.full(surf.size, cur[k])]
            cols += [c + off, np.tile(cur, surf.size), surf]
        pairs = np.unique(np.stack([np.concatenate(rows), np.concatenate(cols)]), axis=1)
        return pairs[0], pairs[1]

    def reaction_rows(self, u: Array, j: Array, c_e: Array, dphi_V: Array, f: float) -> tuple[Array, Array]:
        jk = u[..., self.slots - len(self.members):]
        jbar = jk @ self.area_weights
        R = np.empty(u.shape)
        for k, m in enumerate(self.members):
            s, q = self._slice(k), self.current_slots[k]
            surface_j = jk[..., k] - jbar + j
            if getattr(m, "local_reaction", False):  # its row: surface_j - (its surface cells' mean current)
                R[..., s], row = m.reaction_rows(u[..., s], surface_j, c_e, dphi_V, f)
                R[..., q] = row + jbar - j
            else:
                R[..., s], U, x_surf = m.rows(u[..., s], surface_j)
                R[..., q] = jk[..., k] - butler_volmer_A_m2(self.electrode, c_e, dphi_V, U, x_surf, f, self.T)
        return R, j - jbar

    def initial(self) -> tuple[Array, float]:
        """Each size's initial state, zero currents; the area-mean U of the sizes."""
        u0, U0 = np.zeros(self.slots), np.empty(len(self.members))
        for k, m in enumerate(self.members):
            u0[self._slice(k)], U0[k] = m.initial()
        return u0, float(U0 @ self.area_weights)

    def stoichiometry(self, u: Array) -> Array:
        """x per cell, the sizes' cells one after another (..., sum of cells)."""
        return np.concatenate([m.stoichiometry(u[..., self._slice(k)]) for k, m in enumerate(self.members)], axis=-1)

    @property
    def centres_m(self) -> Array:
        return np.concatenate([m.centres_m for m in self.members])


def sizes_of(p) -> tuple[list, Array, Array]:
    """(discretisations, radii m, active-volume fractions) of a particle discretisation's sizes (one
    for a single-size electrode)."""
    if isinstance(p, SizeMix):
        return p.members, p.radii_m, p.fractions
    return [p], np.array([p.electrode.particle_radius_m]), np.ones(1)


def mean_x_per_size(p, x: Array) -> Array:
    """Volume-mean stoichiometry of each particle size, (..., sizes), from x per cell (..., cells) as
    stoichiometry() gives it: the state of charge of every size."""
    members, _, _ = sizes_of(p)
    bounds = np.cumsum([0] + [m.cells for m in members])
    return np.stack([x[..., a:b] @ m.volumes_m3 / m.volumes_m3.sum()
                     for m, a, b in zip(members, bounds[:-1], bounds[1:])], axis=-1)


def discretise(electrode: Electrode, temperature_K: float):
    """The discretisation of an electrode's particle law (the place to add new particle models)."""
    if electrode.sizes is not None:
        return SizeMix(electrode, temperature_K)
    if isinstance(electrode.particle, CahnHilliard2DParticle):
        from .particles2d import AxisymmetricSphere
        return AxisymmetricSphere(electrode, temperature_K)
    if isinstance(electrode.particle, (CahnHilliardParticle, FickianParticle)):
        return SplitSphere(electrode, temperature_K)
    raise TypeError(f"no discretisation for particle law {type(electrode.particle).__name__}")
