"""G(N) and mu(N) of Na from harmonic-bias GCMC windows (paper Sec. II.F, Eqs. 7-18; Fig. 8).

Units: eV, K, A^3, bar; N counts inserted Na, M is the number of Na sites of the cell and x = N/M the
site fraction (the paper's Na_x stoichiometry is x * sites per formula unit, e.g. 2 x for Na_2).

Sign conventions (as in the paper):
  * window k samples P_k(N) ∝ exp(-beta [F(N) - mu_b N + phi (N - N_t)^2]) (Eqs. 7, 15), with
    F(N) = G(N) - P V(N) (Eq. 12) the free energy the GCMC sees and phi >= 0 in eV;
  * mu(N) = dG/dN (Eq. 6), the free energy of inserting one Na at fixed T, P (eV, on LAMMPS's mu_b
    scale: relative to the ideal gas the replicas insert from). Eq. 17:
    mu(<N>) = mu_b + P dV/dN - 2 phi (<N> - N_t): a window pulled above its target (<N> > N_t) has a
    mu lower than mu_b, and P dV/dN (>0 for a swelling lattice) is added because the GCMC weight
    carries F = G - PV, not G;
  * G(x) per site: g(x) = G/M = g(0) + integral_0^x mu dx' (Eq. 18 with dN = M dx, g(0) := 0);
    mixing energy dg_mix(x) = g(x) - [(1 - x) g(0) + x g(1)] (eV per site).

Two estimators of mu: Eq. 17 per window (mean response), and MBAR over all windows on the integer N
grid (bins are exact for an integer variable, so MBAR = WHAM here). Both feed a weighted polynomial
fit of the excess mu_ex(x) = mu - kT ln(x / (1 - x)) (Redlich-Kister form of g), from which g, the
common tangent (binodals), spinodals (dmu/dx = 0) and the mixing energy follow analytically.
Error bars: bootstrap over each window's decorrelated samples, the whole pipeline per replicate.

``pbahpc.continuum.mapping.common_tangent`` is not reused: it needs a mu(x) with exactly one loop on
the whole interval and raises otherwise, whereas here a convex G must give ``None`` cleanly, a noisy
bootstrap fit may wiggle, and the binodal of a strongly asymmetric G can sit within 1e-6 of x = 0
(paper, 300 K); a lower convex hull on a logit-spaced grid handles all three. Its units are J/mol.
"""
from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from itertools import pairwise
from pathlib import Path
from typing import Any, Literal

import numpy as np
from numpy.polynomial import Polynomial
from scipy.optimize import brentq, root
from scipy.special import expit, logit, logsumexp

from ..units import KB_EV_PER_K

EV_PER_A3_PER_BAR = 6.241509e-7
"""1 bar = 1e5 Pa = 1e5 J/m^3 = 1e5 / 1.602176634e-19 eV / 1e30 A^3."""

Array = np.ndarray
Estimator = Literal["eq17", "mbar", "pymbar"]
ESTIMATORS = ("eq17", "mbar", "pymbar")
"""eq17: per-window mean response; mbar: ours (mbar_free_energy); pymbar: the same MBAR by pymbar."""


# ---------------------------------------------------------------------------------------- windows
@dataclass(frozen=True)
class Window:
    """Samples of one bias window (Eq. 7): N per cycle and, optionally, the cell volume per cycle."""

    target_N: float
    phi_eV: float
    T_K: float
    N: Array
    """Na count per kept cycle (integers stored as float or int)."""
    mu_bias_eV: float = 0.0
    volume_A3: Array | None = None
    pressure_bar: float = 0.0
    segments: tuple[int, ...] = (0,)
    """Start index of each contiguous visit (a window revisited in several rounds): autocorrelation is
    measured within a visit, never across the join."""
    g: float = 1.0
    """Statistical inefficiency assumed for the samples held in error estimates (1: independent, as
    after ``decorrelated``)."""
    g_raw: float | None = None
    """The g measured on the raw series by ``decorrelated`` (the subsampling stride)."""

    @property
    def kT(self) -> float:
        return KB_EV_PER_K * self.T_K

    def _pieces(self) -> list[slice]:
        bounds = list(self.segments) + [len(self.N)]
        return [slice(a, b) for a, b in pairwise(bounds) if b > a]

    def decorrelated(self, mintime: int = 3) -> Window:
        """The window subsampled every g cycles within each visit (g from ``statistical_inefficiency``)."""
        keep, gs = [], []
        for s in self._pieces():
            g = statistical_inefficiency(self.N[s], mintime=mintime)
            gs.append(g)
            keep.append(s.start + subsample_indices(s.stop - s.start, g))
        idx = np.concatenate(keep) if keep else np.zeros(0, dtype=int)
        return replace(self, N=self.N[idx], volume_A3=None if self.volume_A3 is None else self.volume_A3[idx],
                       segments=(0,), g=1.0, g_raw=float(max(gs)) if gs else 1.0)

    def resampled(self, rng: np.random.Generator) -> Window:
        """i.i.d. bootstrap replicate (valid for decorrelated samples)."""
        idx = rng.integers(0, len(self.N), len(self.N))
        return replace(self, N=self.N[idx], volume_A3=None if self.volume_A3 is None else self.volume_A3[idx],
                       segments=(0,))


def windows_from_observables(obs: Mapping[str, Any], *, phi_eV: float, T_K: float, mu_bias_eV: float,
                             pressure_bar: float = 0.0, equilibration_fraction: float = 0.2,
                             use_volume: bool = True) -> list[Window]:
    """Windows from the per-cycle arrays the replicas write (``N``, ``target_N``, ``volume_A3``).

    Cycles are grouped by ``target_N`` (-1 = unbiased, dropped). Each contiguous run of one target is a
    visit that starts from the previous window's state, so the first ``equilibration_fraction`` of
    every visit is dropped (not just of the first). Windows are returned sorted by target.
    """
    N = np.asarray(obs["N"], dtype=float)
    target = np.asarray(obs["target_N"], dtype=float)
    vol = np.asarray(obs["volume_A3"], dtype=float) if use_volume and "volume_A3" in obs else None
    starts = np.flatnonzero(np.r_[True, target[1:] != target[:-1]])
    ends = np.r_[starts[1:], len(target)]
    visits: dict[float, list[Array]] = {}
    for a, b in zip(starts, ends):
        t = float(target[a])
        if t < 0:
            continue
        a = a + int(np.ceil(equilibration_fraction * (b - a)))
        if b > a:
            visits.setdefault(t, []).append(np.arange(a, b))
    out = []
    for t in sorted(visits):
        idx = np.concatenate(visits[t])
        seg = tuple(np.cumsum([0] + [len(v) for v in visits[t][:-1]]).tolist())
        out.append(Window(target_N=t, phi_eV=phi_eV, T_K=T_K, N=N[idx], mu_bias_eV=mu_bias_eV,
                          volume_A3=None if vol is None else vol[idx], pressure_bar=pressure_bar, segments=seg))
    return out


def load_windows(path: str | Path, group: str | None = None, *, pressure_bar: float = 0.0,
                 phi_eV: float | None = None, equilibration_fraction: float = 0.2,
                 use_volume: bool = True) -> list[Window]:
    """Windows from a campaign's ``results.h5`` (``groups/<replica>/``: T_K, mu_eV, N, target_N,
    volume_A3, windows/phi_eV) or one replica's ``iter-*.h5`` (meta T_K, mu_eV; ``observables/``;
    phi_eV must then be given). ``group`` picks the replica in results.h5 (needed if several)."""
    from ..checkpoint import read_checkpoint_file

    payload, header = read_checkpoint_file(Path(path))
    if "groups" in payload:
        groups = payload["groups"]
        if group is None:
            if len(groups) != 1:
                raise ValueError(f"{path}: several groups {sorted(groups)}; pass group=")
            group = next(iter(groups))
        obs = groups[group]
        T_K, mu = float(obs["T_K"]), float(obs["mu_eV"])
        if phi_eV is None:
            phi_eV = float(obs["windows"]["phi_eV"])
    else:
        obs = payload["observables"]
        T_K, mu = float(header.meta["T_K"]), float(header.meta["mu_eV"])
        if phi_eV is None:
            raise ValueError(f"{path}: an iteration file does not record phi_eV; pass it")
    return windows_from_observables(obs, phi_eV=phi_eV, T_K=T_K, mu_bias_eV=mu, pressure_bar=pressure_bar,
                                    equilibration_fraction=equilibration_fraction, use_volume=use_volume)


# ---------------------------------------------------------------------------------- decorrelation
def statistical_inefficiency(a: Array, mintime: int = 3) -> float:
    """g = 1 + 2 sum_t (1 - t/T) C(t) of a time series (Chodera et al. JCTC 3, 26 (2007); pymbar's
    ``statistical_inefficiency``): the sum stops at the first C(t) <= 0 after ``mintime`` lags, because
    past that the estimate is noise. Autocorrelation by FFT (O(T log T)). g >= 1; n/g samples are
    effectively independent."""
    a = np.asarray(a, dtype=float)
    T = len(a)
    d = a - a.mean()
    var = float(d @ d) / T
    if T < 2 or var == 0.0:
        return 1.0
    nfft = 1 << int(np.ceil(np.log2(2 * T)))
    f = np.fft.rfft(d, nfft)
    acov = np.fft.irfft(f * np.conj(f), nfft)[:T] / np.arange(T, 0, -1)
    C = acov / var
    g = 1.0
    for t in range(1, T - 1):
        if C[t] <= 0.0 and t > mintime:
            break
        g += 2.0 * C[t] * (1.0 - t / T)
    return max(1.0, g)


def subsample_indices(T: int, g: float) -> Array:
    """Indices 0, g, 2g, ... (rounded, unique) of a series of length T: ~T/g nearly independent samples."""
    idx = np.unique(np.round(np.arange(0.0, T, max(g, 1.0))).astype(int))
    return idx[idx < T]


# ------------------------------------------------------------------------------- Eq. 17 estimator
@dataclass(frozen=True)
class WindowEstimate:
    """Eq. 17 per window, arrays over windows (sorted as given)."""

    mean_N: Array
    var_N: Array
    mu_eV: Array
    """mu(<N>) by Eq. 17."""
    sigma_eV: Array
    """2 phi sqrt(g var(N) / n): the standard error of mu from that of <N>."""
    curvature_eV: Array
    """d mu/dN of F at <N> in the Gaussian approximation, kT/var(N) - 2 phi (a by-product of var)."""
    dV_dN_A3: Array
    """Within-window regression slope cov(N, V)/var(N) (0 without volumes)."""


def eq17_estimate(windows: Sequence[Window]) -> WindowEstimate:
    """mu(<N>) = mu_b + P dV/dN - 2 phi (<N> - N_t) for every window (Eq. 17).

    dV/dN is the slope of V on N inside the window: V's distribution given N does not depend on the
    bias, so the regression is a local, unbiased d<V>/dN that needs no neighbouring windows.
    """
    rows = []
    for w in windows:
        n = len(w.N)
        m, v = float(np.mean(w.N)), float(np.var(w.N, ddof=1)) if n > 1 else 0.0
        dvdn = 0.0
        if w.volume_A3 is not None and v > 0.0:
            dvdn = float(np.cov(w.N, w.volume_A3)[0, 1] / v)
        mu = w.mu_bias_eV + w.pressure_bar * EV_PER_A3_PER_BAR * dvdn - 2.0 * w.phi_eV * (m - w.target_N)
        sig = 2.0 * w.phi_eV * np.sqrt(w.g * v / max(n, 1))
        curv = w.kT / v - 2.0 * w.phi_eV if v > 0 else np.nan
        rows.append((m, v, mu, sig, curv, dvdn))
    a = np.array(rows, dtype=float).reshape(-1, 6).T
    return WindowEstimate(*a)


# ------------------------------------------------------------------------------------------ MBAR
@dataclass(frozen=True)
class MbarResult:
    """Unbiased free energy on the integer N grid from all windows (MBAR on exact integer bins)."""

    N: Array
    """Grid N_min..N_max of the samples."""
    counts: Array
    """Samples per N over all windows."""
    F_eV: Array
    """F(N) = G - PV (Eq. 12) up to a constant (min 0); +inf where no sample fell."""
    G_eV: Array
    """F + P <V>(N) (Eq. 12); equals F without volumes."""
    f_k: Array
    """Dimensionless window free energies (f_0 = 0)."""
    iterations: int

    def mu_points(self, kT: float, min_count: int = 10) -> tuple[Array, Array, Array]:
        """(N + 1/2, mu = G(N+1) - G(N), sigma) where both bins hold >= min_count samples.

        sigma = kT sqrt(1/h(N) + 1/h(N+1)) is the Poisson error of the log-ratio of neighbouring
        counts: only a fit weight (the bootstrap gives the real error bars)."""
        h = self.counts
        ok = (h[:-1] >= min_count) & (h[1:] >= min_count)
        mu = (self.G_eV[1:][ok] - self.G_eV[:-1][ok])  # only finite bins: inf - inf elsewhere
        sig = kT * np.sqrt(1.0 / h[:-1][ok] + 1.0 / h[1:][ok])
        return self.N[:-1][ok] + 0.5, mu, sig


def mbar_free_energy(windows: Sequence[Window], tol: float = 1e-10, max_iter: int = 200) -> MbarResult:
    """Solve the MBAR/WHAM self-consistent equations for the 1-D bias in N (Shirts & Chodera 2008):

        ln p(N) = ln H(N) - logsumexp_k [ln n_k + f_k - w_k(N)],   f_k = -logsumexp_N [ln p(N) - w_k(N)],
        w_k(N) = beta [phi_k (N - N_t,k)^2 - mu_b,k N],   beta F(N) = -ln p(N) + const,

    as Newton's method on MBAR's convex objective L(f) = sum_N H(N) logsumexp_k(ln n_k + f_k - w_k(N))
    - sum_k n_k f_k (f_0 = 0 fixed: L is flat along a common shift). Newton converges in ~10 steps
    where the plain WHAM iteration needs thousands (analysis.md A2). All windows must share T.
    """
    beta, grid, h, wk = _biases(windows)
    H, n = h.sum(0), h.sum(1)
    K = len(windows)
    vis = H > 0
    Hv, wv, ln_n = H[vis], wk[:, vis], np.log(n)

    def objective(f: Array) -> tuple[float, Array, Array]:
        z = ln_n[:, None] + f[:, None] - wv
        lse = logsumexp(z, axis=0)
        pi = np.exp(z - lse)  # share of window k in the mixture at each N
        grad = pi @ Hv - n
        hess = np.diag(pi @ Hv) - (pi * Hv) @ pi.T
        return float(Hv @ lse - n @ f), grad, hess

    def wham_step(f: Array) -> Array:
        """One self-consistent (WHAM) iteration: stable from any start, but slow near the solution."""
        lnp = np.log(Hv) - logsumexp(ln_n[:, None] + f[:, None] - wv, axis=0)
        f = -logsumexp(lnp[None, :] - wv, axis=1)
        return f - f[0]

    f = np.zeros(K)
    for _ in range(10):  # a few WHAM steps put Newton in its basin (a bad start can make it stall)
        f = wham_step(f)
    it = 0
    L, grad, hess = objective(f)
    for it in range(1, max_iter + 1):
        if np.max(np.abs(grad)) < tol * n.sum():
            break
        step = np.zeros(K)
        step[1:] = -np.linalg.lstsq(hess[1:, 1:], grad[1:], rcond=None)[0]
        t, accepted = 1.0, False
        while t > 1e-8:  # backtracking (Armijo); L is large, so allow its round-off
            L_new, g_new, h_new = objective(f + t * step)
            if L_new <= L + 1e-4 * t * (grad @ step) + 1e-13 * abs(L):
                accepted = True
                break
            t *= 0.5
        if accepted:
            f, L, grad, hess = f + t * step, L_new, g_new, h_new
        else:  # no descent along Newton's direction: fall back to a WHAM step
            f = wham_step(f)
            L, grad, hess = objective(f)
    lnp = np.full(len(grid), -np.inf)
    lnp[vis] = np.log(Hv) - logsumexp(ln_n[:, None] + f[:, None] - wv, axis=0)
    return _result(windows, grid, H, -lnp / beta, f, it)


def _biases(windows: Sequence[Window]) -> tuple[float, Array, Array, Array]:
    """beta (1/eV), the integer grid N_min..N_max of the samples, histograms h[k, N] and reduced bias
    energies w_k(N) = beta [phi_k (N - N_t,k)^2 - mu_b,k N] on the grid."""
    T = {w.T_K for w in windows}
    if len(T) != 1:
        raise ValueError(f"MBAR over windows at different temperatures {sorted(T)} needs energies; "
                         "analyse each temperature separately")
    beta = 1.0 / (KB_EV_PER_K * T.pop())
    allN = np.concatenate([np.rint(w.N).astype(int) for w in windows])
    lo, hi = int(allN.min()), int(allN.max())
    grid = np.arange(lo, hi + 1)
    h = np.array([np.bincount(np.rint(w.N).astype(int) - lo, minlength=len(grid)) for w in windows], float)
    wk = np.array([beta * (w.phi_eV * (grid - w.target_N) ** 2 - w.mu_bias_eV * grid) for w in windows])
    return beta, grid, h, wk


def _result(windows: Sequence[Window], grid: Array, H: Array, F: Array, f: Array, iterations: int) -> MbarResult:
    """MbarResult from F(N) in eV (+inf where H = 0): shifted to min 0, and G = F + P <V>(N)."""
    vis = H > 0
    lo = int(grid[0])
    F = np.where(vis, F, np.inf)
    F -= F[vis].min()
    G = F.copy()
    vols = [w for w in windows if w.volume_A3 is not None]
    if vols and any(w.pressure_bar for w in vols):
        # V given N does not depend on the bias: pool all samples per N bin (Eq. 12, <PV> at N)
        Nn = np.concatenate([np.rint(w.N).astype(int) - lo for w in vols])
        Vn = np.concatenate([w.volume_A3 for w in vols])
        cnt = np.bincount(Nn, minlength=len(grid))
        Vbar = np.bincount(Nn, weights=Vn, minlength=len(grid)) / np.maximum(cnt, 1)
        P = vols[0].pressure_bar * EV_PER_A3_PER_BAR
        G = np.where(cnt > 0, F + P * Vbar, np.inf)
        G -= G[np.isfinite(G)].min()
    return MbarResult(grid, H, F, G, f, iterations)


@contextlib.contextmanager
def quiet_pymbar_import():
    """pymbar's first import prints a banner (stdout) and logs 'JAX not found' (a warning; without JAX
    it runs on numpy, as timed in tools/bench_free_energy.py): neither belongs in a run's log."""
    log = logging.getLogger("pymbar")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        log.setLevel(level)


def pymbar_free_energy(windows: Sequence[Window], relative_tolerance: float = 1e-12) -> MbarResult:
    """mbar_free_energy's result from pymbar (optional: ``pip install pbahpc[pymbar]``), as a cross-check
    and for ``method: pymbar``: MBAR over every sample with u_kn = w_k(N_n), then F(N) from pymbar's
    histogram FES of the unbiased state (bins = the integer N). Same windows, same equations, so the
    two agree to the solvers' tolerance (tests/test_free_energy.py holds them to 1e-6 kT);
    tools/bench_free_energy.py times both. ``iterations`` is 0 (pymbar does not report it)."""
    with quiet_pymbar_import():
        from pymbar import FES  # noqa: PLC0415 - optional dependency

    beta, grid, h, wk = _biases(windows)
    idx = np.concatenate([np.rint(w.N).astype(int) - int(grid[0]) for w in windows])
    u_kn = wk[:, idx]  # every sample's reduced bias energy in every window
    N_k = h.sum(1).astype(int)
    fes = FES(u_kn, N_k, mbar_options={"relative_tolerance": relative_tolerance, "maximum_iterations": 100000})
    edges = np.append(grid - 0.5, grid[-1] + 0.5)
    fes.generate_fes(np.zeros(idx.size), (idx + grid[0]).astype(float), fes_type="histogram",
                     histogram_parameters={"bin_edges": edges})
    H = h.sum(0)
    f_N = fes.get_fes(grid[H > 0].astype(float), reference_point="from-lowest", uncertainty_method=None)["f_i"]
    F = np.full(len(grid), np.inf)
    F[H > 0] = np.asarray(f_N, float) / beta
    f_k = np.asarray(fes.get_mbar().f_k, float)
    return _result(windows, grid, H, F, f_k - f_k[0], 0)


# ------------------------------------------------------------------------------------ fit and G
@dataclass(frozen=True)
class MuFit:
    """mu(x) = kT ln(x/(1-x)) + P(x): ideal (site-entropy) part on M sites plus a polynomial excess.

    g(x) = kT [x ln x + (1-x) ln(1-x)] + integral_0^x P (eV per site, Eq. 18 with g(0) = 0): the
    ideal part is integrated analytically so that g stays finite and exact at the ends.
    """

    T_K: float
    sites: int
    excess: Polynomial
    """Excess mu in eV as a polynomial in x (domain-scaled)."""
    x_range: tuple[float, float]
    """Range of the fitted data (the fit extrapolates outside)."""

    @property
    def kT(self) -> float:
        return KB_EV_PER_K * self.T_K

    def mu(self, x) -> Array:
        x = np.asarray(x, dtype=float)
        return self.kT * (np.log(x) - np.log1p(-x)) + self.excess(x)

    def dmu_dx(self, x) -> Array:
        x = np.asarray(x, dtype=float)
        return self.kT / (x * (1.0 - x)) + self.excess.deriv()(x)

    def g(self, x) -> Array:
        x = np.asarray(x, dtype=float)
        with np.errstate(divide="ignore", invalid="ignore"):
            ideal = self.kT * (np.where(x > 0, x * np.log(np.where(x > 0, x, 1.0)), 0.0)
                               + np.where(x < 1, (1 - x) * np.log(np.where(x < 1, 1 - x, 1.0)), 0.0))
        Q = self.excess.integ()
        return ideal + Q(x) - Q(0.0)

    def mixing(self, x) -> Array:
        """g(x) - [(1-x) g(0) + x g(1)], eV per site (g(0) = 0)."""
        x = np.asarray(x, dtype=float)
        return self.g(x) - x * self.g(1.0)


def fit_mu(x: Array, mu_eV: Array, sigma_eV: Array | None, T_K: float, sites: int, degree: int = 3) -> MuFit:
    """Weighted (1/sigma) least-squares fit of mu_ex = mu - kT ln(x/(1-x)) with a polynomial in x.

    The excess, not mu, is fitted: the ideal log diverges at x -> 0, 1 and no polynomial follows it,
    while the excess of a regular solution is exactly linear (Omega (1 - 2x)). Degree 3 = Redlich-
    Kister with three terms; raise it only with dense, precise data (higher orders make loops)."""
    x, mu = np.asarray(x, float), np.asarray(mu_eV, float)
    kT = KB_EV_PER_K * T_K
    ex = mu - kT * (np.log(x) - np.log1p(-x))
    w = None if sigma_eV is None else 1.0 / np.maximum(np.asarray(sigma_eV, float), 1e-12)
    poly = Polynomial.fit(x, ex, deg=min(degree, len(x) - 1), w=w)
    return MuFit(T_K, sites, poly, (float(x.min()), float(x.max())))


# ---------------------------------------------------------------------- common tangent, spinodal
@dataclass(frozen=True)
class Gap:
    """One miscibility gap: the common tangent touches g at x1 < x2 with slope mu_coexistence_eV."""

    x1: float
    x2: float
    mu_coexistence_eV: float
    refined: bool
    """False if the root refinement failed and the hull's grid points are returned."""


def lower_hull(x: Array, y: Array, tol: float = 0.0) -> Array:
    """Indices of the lower convex hull of points sorted by x (Andrew's monotone chain). Unlike Qhull
    it has no trouble with collinear input (an exactly linear g); points within ``tol`` of a chord
    count as on it, so round-off does not split a convex curve."""
    hull: list[int] = []
    for i in range(len(x)):
        while len(hull) >= 2:
            a, b = hull[-2], hull[-1]
            cross = (x[b] - x[a]) * (y[i] - y[a]) - (y[b] - y[a]) * (x[i] - x[a])
            if cross <= tol * (x[i] - x[a]):
                hull.pop()
            else:
                break
        hull.append(i)
    return np.array(hull)


def common_tangent(g: Callable[[Array], Array], mu: Callable[[Array], Array], lo: float = 1e-9,
                   hi: float = 1.0 - 1e-9, points: int = 4001, min_height_eV: float = 1e-9) -> tuple[Gap, ...]:
    """All miscibility gaps of g(x) on [lo, hi], widest first; () when g is convex there.

    Seeds from the lower convex hull of g on a logit-spaced grid (dense at both ends, where binodals
    of strongly segregating systems sit), then refines mu(x1) = mu(x2), g(x2) - g(x1) = mu(x1)(x2 - x1)
    with ``scipy.optimize.root`` in logit variables (keeps 0 < x < 1). A hull edge counts as a gap only
    if g rises more than ``min_height_eV`` above the chord between its ends (round-off is not a gap).
    """
    u = np.linspace(logit(lo), logit(hi), points)
    xs = expit(u)
    gs = np.asarray(g(xs), float)
    scale = max(1.0, float(np.max(np.abs(gs))))
    hull = lower_hull(xs, gs, tol=1e-13 * scale)
    gaps = []
    for a, b in pairwise(hull):
        if b - a < 2:
            continue
        inner = slice(a + 1, b)
        chord = gs[a] + (gs[b] - gs[a]) * (xs[inner] - xs[a]) / (xs[b] - xs[a])
        if np.max(gs[inner] - chord) <= min_height_eV:
            continue

        def eqs(v: Array) -> Array:
            x1, x2 = expit(v)
            m1, m2 = float(mu(x1)), float(mu(x2))
            return np.array([m1 - m2, (float(g(x2)) - float(g(x1))) / (x2 - x1) - m1])

        x1, x2 = xs[a], xs[b]
        refined = False
        sol = root(eqs, np.array([u[a], u[b]]), method="hybr")
        if sol.success:
            r1, r2 = expit(sol.x)
            # the trivial solution x1 = x2 always solves the equations: reject a collapse
            if r2 - r1 > 0.5 * (x2 - x1) and xs[max(a - 2, 0)] <= r1 and r2 <= xs[min(b + 2, points - 1)]:
                x1, x2, refined = float(r1), float(r2), True
        gaps.append(Gap(float(x1), float(x2), float((g(x2) - g(x1)) / (x2 - x1)), refined))
    return tuple(sorted(gaps, key=lambda G: G.x1 - G.x2))


def spinodals(dmu_dx: Callable[[Array], Array], lo: float = 1e-6, hi: float = 1.0 - 1e-6,
              points: int = 4001) -> tuple[float, ...]:
    """Roots of dmu/dx (d2g/dx2 = 0), ascending: a bracket scan then ``brentq``; () if none."""
    xs = expit(np.linspace(logit(lo), logit(hi), points))
    d = np.asarray(dmu_dx(xs), float)
    out = []
    for i in np.flatnonzero(np.sign(d[1:]) != np.sign(d[:-1])):
        out.append(float(brentq(lambda v: float(dmu_dx(v)), xs[i], xs[i + 1], xtol=1e-14)))
    return tuple(out)


# ---------------------------------------------------------------------------------- the pipeline
@dataclass(frozen=True)
class Analysis:
    """Result of one pass of the pipeline: mu points -> fit -> g -> gap, spinodals, mixing."""

    method: str
    x: Array
    """Site fractions of the mu points (window means for Eq. 17, N + 1/2 for MBAR), divided by M."""
    mu_eV: Array
    sigma_eV: Array
    fit: MuFit
    binodal: tuple[float, float] | None
    """Widest gap's (x1, x2), None without a miscibility gap."""
    mu_coexistence_eV: float | None
    spinodal: tuple[float, float] | None
    """Outermost pair of dmu/dx roots (the loop's maximum and minimum), None if mu is monotonic."""
    max_mixing_eV: float
    """max_x dg_mix(x), eV per site."""
    gaps: tuple[Gap, ...] = field(default=())
    mbar: MbarResult | None = None


def analyse(windows: Sequence[Window], sites: int, method: Estimator = "eq17", degree: int = 3,
            min_count: int = 10, x_range: tuple[float, float] = (1e-9, 1.0 - 1e-9)) -> Analysis:
    """mu points by Eq. 17 or MBAR, fitted (``fit_mu``), then common tangent, spinodals, mixing."""
    T_K = windows[0].T_K
    kT = KB_EV_PER_K * T_K
    mb = None
    if method == "eq17":
        est = eq17_estimate(windows)
        N, mu, sig = est.mean_N, est.mu_eV, est.sigma_eV
    elif method in ("mbar", "pymbar"):
        mb = mbar_free_energy(windows) if method == "mbar" else pymbar_free_energy(windows)
        N, mu, sig = mb.mu_points(kT, min_count)
    else:
        raise ValueError(f"method must be one of {', '.join(ESTIMATORS)}, not {method!r}")
    x = np.asarray(N, float) / sites
    ok = (x > 0) & (x < 1)  # the ideal log is undefined at an empty or full lattice
    x, mu, sig = x[ok], mu[ok], sig[ok]
    if not len(x):  # e.g. windows whose insertions were never accepted: N stayed at 0 whatever the target
        seen = np.unique(np.concatenate([np.asarray(w.N) for w in windows]).astype(int))
        raise ValueError(f"mu(N) at {len(x)} N strictly between 0 and {sites} with >= {min_count} "
                         f"samples; the windows sampled N = {', '.join(map(str, seen))} only: they did not hold N "
                         f"near their targets (more exchanges per call or cycles per window)")
    fit = fit_mu(x, mu, sig if np.all(sig > 0) else None, T_K, sites, degree)  # unweighted if any sigma is 0
    gaps = common_tangent(fit.g, fit.mu, *x_range)
    sp = spinodals(fit.dmu_dx, max(x_range[0], 1e-6), min(x_range[1], 1 - 1e-6))
    xm = np.linspace(0.0, 1.0, 2001)
    return Analysis(method, x, mu, sig, fit, (gaps[0].x1, gaps[0].x2) if gaps else None,
                    gaps[0].mu_coexistence_eV if gaps else None, (sp[0], sp[-1]) if len(sp) >= 2 else None,
                    float(np.max(fit.mixing(xm))), gaps, mb)


@dataclass(frozen=True)
class Bootstrap:
    """Bootstrap replicates of the pipeline and their standard deviations (NaN where undefined)."""

    x_eval: Array
    mu_eV: Array
    """(n_boot, len(x_eval)) fitted mu at x_eval."""
    points_mu_eV: Array
    """(n_boot, n_points) raw mu points (Eq. 17 per window, or MBAR per N + 1/2 of the full data)."""
    binodal: Array
    """(n_boot, 2), NaN where a replicate had no gap."""
    spinodal: Array
    mixing_eV: Array
    """(n_boot, len(x_eval)) dg_mix at x_eval."""
    max_mixing_eV: Array
    gap_fraction: float
    """Share of replicates with a miscibility gap."""

    @staticmethod
    def _sd(a: Array) -> Array:
        """Sample SD over the replicates, NaN where fewer than two are finite (without numpy's warning)."""
        a = np.asarray(a, dtype=float)
        flat = a.reshape(len(a), -1)
        ok = np.sum(~np.isnan(flat), axis=0) >= 2
        out = np.full(flat.shape[1], np.nan)
        out[ok] = np.nanstd(flat[:, ok], axis=0, ddof=1)
        return out.reshape(a.shape[1:])

    @property
    def sigma_mu(self) -> Array:
        return self._sd(self.mu_eV)

    @property
    def sigma_points(self) -> Array:
        return self._sd(self.points_mu_eV)

    @property
    def sigma_binodal(self) -> Array:
        return self._sd(self.binodal)

    @property
    def sigma_spinodal(self) -> Array:
        return self._sd(self.spinodal)

    @property
    def sigma_mixing(self) -> Array:
        return self._sd(self.mixing_eV)


def bootstrap(windows: Sequence[Window], sites: int, rng: np.random.Generator, n_boot: int = 200,
              method: Estimator = "eq17", degree: int = 3, x_eval: Array | None = None,
              reference: Analysis | None = None, **kw: Any) -> Bootstrap:
    """Resample every window's samples with replacement and rerun ``analyse`` per replicate.

    The samples must be decorrelated first (``Window.decorrelated``): i.i.d. resampling of a correlated
    series underestimates the error by sqrt(g). Windows are resampled independently (they are
    independent simulations' stretches); the seeded ``rng`` makes the error bars reproducible."""
    x_eval = np.linspace(0.05, 0.95, 19) if x_eval is None else np.asarray(x_eval, float)
    ref = reference or analyse(windows, sites, method, degree, **kw)
    rows: dict[str, list] = {k: [] for k in ("mu", "pts", "bin", "sp", "mix", "mmax")}
    for _ in range(n_boot):
        a = analyse([w.resampled(rng) for w in windows], sites, method, degree, **kw)
        rows["mu"].append(a.fit.mu(x_eval))
        pts = np.full(len(ref.x), np.nan)
        if method == "eq17":
            pts[:] = a.mu_eV
        else:  # align replicate N + 1/2 points with the reference's
            pos = np.searchsorted(a.x, ref.x)
            hit = (pos < len(a.x)) & (a.x[np.minimum(pos, len(a.x) - 1)] == ref.x)
            pts[hit] = a.mu_eV[pos[hit]]
        rows["pts"].append(pts)
        rows["bin"].append(a.binodal or (np.nan, np.nan))
        rows["sp"].append(a.spinodal or (np.nan, np.nan))
        rows["mix"].append(a.fit.mixing(x_eval))
        rows["mmax"].append(a.max_mixing_eV)
    b = np.array(rows["bin"], float)
    return Bootstrap(x_eval, np.array(rows["mu"]), np.array(rows["pts"]), b, np.array(rows["sp"], float),
                     np.array(rows["mix"]), np.array(rows["mmax"]), float(np.mean(np.isfinite(b[:, 0]))))


# ------------------------------------------------------------------------------------------ plot
def plot_free_energy(analysis: Analysis, path: str | Path, boot: Bootstrap | None = None,
                     x_scale: float = 1.0, title: str | None = None) -> Path:
    """Fig. 8 (a, b) style PNG: mu(x) points and fit with spinodals and the coexistence plateau; g(x)
    with the common tangent (dashed) and the mixing energy (green) with binodals. ``x_scale`` converts
    the site fraction to the plotted stoichiometry (2 for Na_x with x in [0, 2])."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fit = analysis.fit
    xs = np.linspace(1e-4, 1 - 1e-4, 1000)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    ax1.errorbar(analysis.x * x_scale, analysis.mu_eV,
                 yerr=boot.sigma_points if boot is not None else analysis.sigma_eV,
                 fmt="o", ms=3, color="tab:blue", label=f"sampled ({analysis.method})")
    ax1.plot(xs * x_scale, fit.mu(xs), color="tab:red", label="fit")
    if boot is not None:
        ax1.fill_between(boot.x_eval * x_scale, fit.mu(boot.x_eval) - boot.sigma_mu,
                         fit.mu(boot.x_eval) + boot.sigma_mu, color="tab:red", alpha=0.2)
    if analysis.spinodal:
        s = np.array(analysis.spinodal)
        ax1.plot(s * x_scale, fit.mu(s), "ko", label="spinodal")
    if analysis.mu_coexistence_eV is not None:
        ax1.axhline(analysis.mu_coexistence_eV, ls="--", color="tab:blue", lw=0.8)
    lo, hi = np.percentile(analysis.mu_eV, [1, 99])
    if hi > lo:  # one sampled mu (or all equal): matplotlib's own limits
        ax1.set_ylim(lo - 0.2 * (hi - lo), hi + 0.2 * (hi - lo))
    ax1.set_xlabel("x")
    ax1.set_ylabel("mu (eV)")
    ax1.legend(fontsize=8)
    ax2.plot(xs * x_scale, fit.g(xs), color="tab:red", label="g(x)")
    ax2.plot(xs * x_scale, fit.mixing(xs), color="tab:green", label="mixing")
    for gap in analysis.gaps:
        t = np.array([gap.x1, gap.x2])
        ax2.plot(t * x_scale, fit.g(t), "--", color="tab:blue")
        ax2.plot(t * x_scale, fit.mixing(t), "o", color="tab:green")
    ax2.set_xlabel("x")
    ax2.set_ylabel("g (eV per site)")
    ax2.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
