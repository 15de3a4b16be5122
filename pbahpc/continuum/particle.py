"""One active particle (sphere, or a planar slab for verification) solved with PETSc TS.

Cahn-Hilliard (paper Sec. II.G, Eqs. 19-22), split into the fields c and mu:

    dc/dt = -div J,   J = -M(c) grad mu,   mu = mu_hom(c) - k lap c

SI throughout: r in m, t in s, c in mol/m^3, mu in J/mol, k in J m^5/mol^2, mobility M in
mol^2/(J m s) (so J is mol/m^2/s), homogeneous free energy density f_hom in J/m^3 with
mu_hom = df_hom/dc. A mobility of the form M0 c is just mobility(c) = M0 * c.

Discretisation: cell-centred finite volumes on a uniform mesh of N cells in r in [0, R], face areas
4 pi r^2 (sphere) or 1 m^2 (slab), so the c rows telescope and total moles change only through the
surface face. Centre: symmetry (zero flux; the sphere's centre face has zero area anyway). Surface:
prescribed molar flux into the particle (mol/m^2/s, positive = insertion, later from Butler-Volmer);
lap c uses dc/dr = 0 at both ends (natural boundary). Face mobility M((c_i + c_i+1)/2).

The Fickian particle dc/dt = div(D(c) grad c) is the special case mu_hom(c) = c, k = 0, M = D
(then "mu" is c itself, in mol/m^3, and the surface value follows from the flux).

Time stepping: PETSc TS BDF (order 2, adaptive), IFunction form F(t, u, udot) = 0 with an analytic
Jacobian assembled from the caller's derivatives (mu_hom'(c), M'(c)); LU direct solve. The exact
Jacobian makes the linear mass balance hold after every Newton step, i.e. to round-off.

PETSc can be initialised only once per process: the first particle built initialises petsc4py with
the communicator and options its caller passes (see petsc()); later calls must pass the same ones.
A particle is owned by one rank: its Vec/Mat/TS live on COMM_SELF.
"""
from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

Array = np.ndarray
ScalarFn = Callable[[Array], Array]

_init_args: tuple | None = None


def petsc(comm, petsc_options: Sequence[str] = ()):
    """The PETSc module, initialised on the first call with `comm` (mpi4py) and `petsc_options`."""
    global _init_args
    # One rank per core: PETSc's threaded OpenBLAS (loaded with PETSc, read at load) made each VecNorm of
    # a 15k-unknown cell take 7 ms instead of 7 us on a loaded 2-core box. An explicit setting wins.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    import petsc4py
    args = (comm, tuple(petsc_options))
    if _init_args is None:
        if "petsc4py.PETSc" in sys.modules and petsc_options:
            # Someone else (e.g. doctor) initialised PETSc already; its options can no longer be set.
            raise RuntimeError("PETSc was initialised elsewhere in this process; cannot apply "
                               f"options {list(petsc_options)}")
        if "petsc4py.PETSc" not in sys.modules:
            petsc4py.init(sys.argv[:1] + list(petsc_options), comm=comm)
        _init_args = args
    elif _init_args[1] != args[1] or not _same_group(_init_args[0], comm):
        raise RuntimeError("PETSc can be initialised only once per process; it already was with "
                           f"options {list(_init_args[1])} on another communicator or options")
    from petsc4py import PETSc
    return PETSc


def _same_group(a, b) -> bool:
    """Same processes in the same order (e.g. COMM_SELF and a 1-rank COMM_WORLD)."""
    from mpi4py import MPI
    return a is b or MPI.Comm.Compare(a, b) in (MPI.IDENT, MPI.CONGRUENT)


@dataclass(frozen=True)
class Mesh:
    """Uniform cell-centred mesh: centres, face areas (m^2), cell volumes (m^3), spacing (m)."""

    radius_m: float
    cells: int
    geometry: str

    def __post_init__(self):
        if self.geometry not in ("sphere", "planar"):
            raise ValueError(f"geometry must be 'sphere' or 'planar', not {self.geometry!r}")

    @property
    def dr_m(self) -> float:
        return self.radius_m / self.cells

    @property
    def faces_m(self) -> Array:
        return np.linspace(0.0, self.radius_m, self.cells + 1)

    @property
    def centres_m(self) -> Array:
        f = self.faces_m
        return 0.5 * (f[1:] + f[:-1])

    @property
    def areas_m2(self) -> Array:
        f = self.faces_m
        return 4.0 * np.pi * f**2 if self.geometry == "sphere" else np.ones_like(f)

    @property
    def volumes_m3(self) -> Array:
        f = self.faces_m
        return 4.0 / 3.0 * np.pi * np.diff(f**3) if self.geometry == "sphere" else np.diff(f)

    def laplacian(self) -> Array:
        """Dense tridiagonal (1/V) sum_f A_f (c_nb - c)/h with dc/dr = 0 at both ends (N is small)."""
        n, A, V, h = self.cells, self.areas_m2, self.volumes_m3, self.dr_m
        L = np.zeros((n, n))
        for f in range(1, n):
            w = A[f] / h
            L[f - 1, f - 1] -= w
            L[f - 1, f] += w
            L[f, f] -= w
            L[f, f - 1] += w
        return L / V[:, None]


class CahnHilliardParticle:
    """Split Cahn-Hilliard particle; unknowns interleaved u = [c0, mu0, c1, mu1, ...]."""

    def __init__(self, mesh: Mesh, mu_hom: ScalarFn, dmu_hom_dc: ScalarFn, mobility: ScalarFn,
                 dmobility_dc: ScalarFn, kappa: float, c0_mol_m3: Array, comm,
                 petsc_options: Sequence[str] = (), rtol: float = 1e-6, atol_mol_m3: float = 1e-9,
                 dt0_s: float = 1e-6, options_prefix: str = "particle_"):
        self.PETSc = PETSc = petsc(comm, petsc_options)
        self.mesh, self.kappa = mesh, float(kappa)
        self.mu_hom, self.dmu_hom_dc = mu_hom, dmu_hom_dc
        self.mobility, self.dmobility_dc = mobility, dmobility_dc
        self.surface_flux_mol_m2_s = 0.0
        n = mesh.cells
        self._A, self._V, self._h = mesh.areas_m2, mesh.volumes_m3, mesh.dr_m
        self._lap = mesh.laplacian()
        self.u = PETSc.Vec().createSeq(2 * n, comm=PETSc.COMM_SELF)
        self._J = PETSc.Mat().createAIJ([2 * n, 2 * n], nnz=6, comm=PETSc.COMM_SELF)
        self._J.setOption(PETSc.Mat.Option.NEW_NONZERO_ALLOCATION_ERR, False)
        self.ts = ts = PETSc.TS().create(comm=PETSc.COMM_SELF)
        ts.setOptionsPrefix(options_prefix)
        ts.setProblemType(PETSc.TS.ProblemType.NONLINEAR)
        ts.setType(PETSc.TS.Type.BDF)
        ts.setIFunction(self._ifunction, self.u.duplicate())
        ts.setIJacobian(self._ijacobian, self._J)
        ts.setExactFinalTime(PETSc.TS.ExactFinalTime.MATCHSTEP)
        # mu is algebraic: its error follows from c's, so only c enters the step-size control.
        atol, rt = self.u.duplicate(), self.u.duplicate()
        atol.array[0::2], atol.array[1::2] = atol_mol_m3, 1e300
        rt.array[0::2], rt.array[1::2] = rtol, 0.0
        ts.setTolerances(rtol=rt, atol=atol)
        ts.setMaxSteps(10**7)
        ts.setMaxSNESFailures(-1)
        ts.getSNES().getKSP().setType("preonly")
        ts.getSNES().getKSP().getPC().setType("lu")
        self._dt0_s = dt0_s
        ts.setFromOptions()
        self.load_state(np.asarray(c0_mol_m3, dtype=float), 0.0)

    def chemical_potential(self, c: Array) -> Array:
        """mu = mu_hom(c) - k lap c (J/mol)."""
        return self.mu_hom(c) - self.kappa * (self._lap @ c)

    def _ifunction(self, ts, t, u, udot, F):
        c, mu = u.array_r[0::2], u.array_r[1::2]
        cdot = udot.array_r[0::2]
        A, V, h = self._A, self._V, self._h
        G = np.zeros(c.size + 1)  # outward molar flow through each face, mol/s
        G[1:-1] = -A[1:-1] * self.mobility(0.5 * (c[1:] + c[:-1])) * np.diff(mu) / h
        G[-1] = -A[-1] * self.surface_flux_mol_m2_s
        f = F.array
        f[0::2] = cdot + np.diff(G) / V
        f[1::2] = mu - self.chemical_potential(c)

    def _ijacobian(self, ts, t, u, udot, shift, J, P):
        c, mu = u.array_r[0::2], u.array_r[1::2]
        n, A, V, h = c.size, self._A, self._V, self._h
        cf = 0.5 * (c[1:] + c[:-1])
        Mf, dMf = self.mobility(cf), self.dmobility_dc(cf)
        dmu = np.diff(mu)
        rows, cols, vals = [], [], []

        def add(r, cc, v):
            rows.append(r)
            cols.append(cc)
            vals.append(v)

        ic, im = 2 * np.arange(n), 2 * np.arange(n) + 1
        add(ic, ic, np.full(n, shift))
        # Interior face f between cells f-1 and f: G = -A M(cf) (mu_f - mu_f-1)/h, enters +G/V[f-1], -G/V[f].
        fi = np.arange(1, n)
        left, right = fi - 1, fi
        w = A[fi] / h
        dG_dmuL, dG_dmuR = w * Mf, -w * Mf
        dG_dcL = dG_dcR = -w * 0.5 * dMf * dmu
        for cell, sign in ((left, 1.0), (right, -1.0)):
            s = sign / V[cell]
            add(2 * cell, 2 * left + 1, s * dG_dmuL)
            add(2 * cell, 2 * right + 1, s * dG_dmuR)
            add(2 * cell, 2 * left, s * dG_dcL)
            add(2 * cell, 2 * right, s * dG_dcR)
        add(im, im, np.ones(n))
        add(im, ic, -self.dmu_hom_dc(c) + self.kappa * np.diag(self._lap))
        add(im[:-1], ic[1:], self.kappa * np.diag(self._lap, 1))
        add(im[1:], ic[:-1], self.kappa * np.diag(self._lap, -1))
        r, cc, v = (np.concatenate(x) for x in (rows, cols, vals))
        order = np.lexsort((cc, r))
        r, cc, v = r[order], cc[order], v[order]
        # Sum duplicates (c-c entries from both faces) into CSR arrays.
        key = r * (2 * n) + cc
        uniq, start = np.unique(key, return_index=True)
        v = np.add.reduceat(v, start)
        r, cc = uniq // (2 * n), uniq % (2 * n)
        indptr = np.searchsorted(r, np.arange(2 * n + 1)).astype(self.PETSc.IntType)
        P.zeroEntries()
        P.setValuesCSR(indptr, cc.astype(self.PETSc.IntType), v)
        P.assemble()
        if J != P:
            J.assemble()

    def advance(self, t_end_s: float, surface_flux_mol_m2_s: float = 0.0) -> None:
        """Integrate to t_end_s with a constant surface flux into the particle (mol/m^2/s)."""
        self.surface_flux_mol_m2_s = float(surface_flux_mol_m2_s)
        self.ts.setMaxTime(t_end_s)
        self.ts.solve(self.u)
        reason = self.ts.getConvergedReason()
        if reason < 0:
            raise RuntimeError(f"TS failed (reason {reason}) at t = {self.ts.getTime()} s")

    @property
    def time_s(self) -> float:
        return self.ts.getTime()

    @property
    def c_mol_m3(self) -> Array:
        return self.u.array_r[0::2].copy()

    @property
    def mu_J_mol(self) -> Array:
        return self.u.array_r[1::2].copy()

    def total_mol(self) -> float:
        """Moles in the particle (per m^2 of slab for the planar geometry)."""
        return float(self._V @ self.u.array_r[0::2])

    def free_energy_J(self, f_hom: ScalarFn) -> float:
        """Discrete G = sum V f_hom(c) + k/2 sum_f A_f h (dc/dr)^2; its c-gradient is V mu."""
        c = self.u.array_r[0::2]
        grad = np.diff(c) / self._h
        return float(self._V @ f_hom(c) + 0.5 * self.kappa * np.sum(self._A[1:-1] * self._h * grad**2))

    def surface_mu_J_mol(self) -> float:
        """mu at r = R, extrapolated from the last cell with the prescribed flux (-M dmu/dr = -j)."""
        c, mu = self.u.array_r[0::2], self.u.array_r[1::2]
        return float(mu[-1] + 0.5 * self._h * self.surface_flux_mol_m2_s / self.mobility(c[-1:])[0])

    def state(self) -> tuple[Array, float]:
        """(c in mol/m^3 per cell, t in s) for checkpointing; mu is recomputed from c on load."""
        return self.c_mol_m3, self.time_s

    def load_state(self, c_mol_m3: Array, t_s: float) -> None:
        """Restart from (c, t): mu is set consistently so the DAE starts on its constraint."""
        c = np.asarray(c_mol_m3, dtype=float)
        if c.shape != (self.mesh.cells,):
            raise ValueError(f"c has shape {c.shape}, the mesh has {self.mesh.cells} cells")
        u = self.u.array
        u[0::2], u[1::2] = c, self.chemical_potential(c)
        self.ts.setTime(t_s)
        self.ts.setStepNumber(0)
        self.ts.setTimeStep(self._dt0_s)


class FickianParticle(CahnHilliardParticle):
    """dc/dt = div(D(c) grad c): Cahn-Hilliard with mu_hom(c) = c, k = 0, M = D (m^2/s)."""

    def __init__(self, mesh: Mesh, diffusivity: ScalarFn, ddiffusivity_dc: ScalarFn, c0_mol_m3: Array,
                 comm, **kwargs):
        super().__init__(mesh, mu_hom=lambda c: c, dmu_hom_dc=np.ones_like, mobility=diffusivity,
                         dmobility_dc=ddiffusivity_dc, kappa=0.0, c0_mol_m3=c0_mol_m3, comm=comm, **kwargs)

    def surface_concentration_mol_m3(self) -> float:
        """c at r = R from the flux condition -D dc/dr = -j."""
        return self.surface_mu_J_mol()
