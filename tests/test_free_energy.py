"""pbahpc.properties.free_energy against exactly solvable lattice gases (analysis.md A5).

Samples are drawn exactly from each window's biased distribution p_k(N) ∝ exp(-(A(N) + phi (N - N_t)^2)/kT)
over N = 0..M (i.i.d., or a Metropolis chain for the decorrelation tests). Where a test needs "exact"
finite-M values it computes them from the exact A(N) (gammaln / digamma continuation), and it splits
the error into a systematic part (the estimator run on exact expectations, no noise) and a statistical
part (noisy run vs the noise-free one, bounded by 4 bootstrap sigma).
"""
from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy.special import digamma, gammaln, logsumexp

from pbahpc.properties.free_energy import (
    EV_PER_A3_PER_BAR,
    Window,
    analyse,
    bootstrap,
    common_tangent,
    eq17_estimate,
    fit_mu,
    load_windows,
    mbar_free_energy,
    plot_free_energy,
    spinodals,
    statistical_inefficiency,
    windows_from_observables,
)
from pbahpc.units import KB_EV_PER_K

T = 300.0
kT = KB_EV_PER_K * T


# ------------------------------------------------------------------------------------- models
def ln_binom(M: int, N):
    N = np.asarray(N, float)
    return gammaln(M + 1) - gammaln(N + 1) - gammaln(M - N + 1)


def langmuir(M: int, eps: float):
    """A(N), mu(N) (continuous, digamma) of the ideal lattice gas."""
    return (lambda N: -kT * ln_binom(M, N) + eps * np.asarray(N, float),
            lambda N: kT * (digamma(np.asarray(N, float) + 1) - digamma(M - np.asarray(N, float) + 1)) + eps)


def mean_field(M: int, omega: float):
    """A(N) = -kT ln C(M,N) + Omega N (M-N)/M and its continuous derivative."""
    A0, mu0 = langmuir(M, 0.0)
    return (lambda N: A0(N) + omega * np.asarray(N, float) * (M - np.asarray(N, float)) / M,
            lambda N: mu0(N) + omega * (M - 2 * np.asarray(N, float)) / M)


def ring_lnZ(M: int, N: int, bJ: float) -> float:
    """Canonical ln Z(N) of E = -J sum n_i n_{i+1} on a ring of M sites (analysis.md A5.3)."""
    if N == 0:
        return 0.0
    if N == M:
        return bJ * M
    k = np.arange(1, min(N, M - N) + 1)
    t = (np.log(M / k) + gammaln(N) - gammaln(k) - gammaln(N - k + 1) + gammaln(M - N) - gammaln(k)
         - gammaln(M - N - k + 1) + bJ * (N - k))
    return float(logsumexp(t))


def biased_p(A: np.ndarray, phi: float, target: float) -> np.ndarray:
    N = np.arange(len(A))
    e = -(A + phi * (N - target) ** 2) / kT
    p = np.exp(e - e.max())
    return p / p.sum()


def iid_windows(A, phi, targets, n, rng, mu_b=0.0):
    N = np.arange(len(A))
    # mu_b enters p_k as -mu_b N: fold it into A so the samples are those of (mu_b, phi, N_t)
    Ab = A - mu_b * N
    return [Window(t, phi, T, rng.choice(N, n, p=biased_p(Ab, phi, t)).astype(float), mu_bias_eV=mu_b)
            for t in targets]


def exact_eq17(A, phi, targets, mu_b=0.0):
    """(<N>_k, Eq. 17 evaluated on the exact window distributions): the noise-free estimator."""
    N = np.arange(len(A))
    means = np.array([biased_p(A - mu_b * N, phi, t) @ N for t in targets])
    return means, mu_b - 2 * phi * (means - np.asarray(targets, float))


def expected_windows(A, phi, targets, n):
    """Windows whose samples are the N values with counts rint(n p_k(N)): the noise-free input."""
    N = np.arange(len(A))
    return [Window(t, phi, T, np.repeat(N, np.rint(n * biased_p(A, phi, t)).astype(int)).astype(float))
            for t in targets]


def metropolis(A, phi, target, n, rng, start):
    """Birth-death Metropolis chain in N (one +-1 proposal per step): strongly correlated samples."""
    M = len(A) - 1
    E = A + phi * (np.arange(M + 1) - target) ** 2
    out = np.empty(n)
    cur = start
    steps = rng.choice([-1, 1], n)
    u = rng.random(n)
    for i in range(n):
        new = cur + steps[i]
        if 0 <= new <= M and u[i] < np.exp(-(E[new] - E[cur]) / kT):
            cur = new
        out[i] = cur
    return out


M_MF, OMEGA, PHI = 400, 3 * kT, 0.02 * kT
TARGETS_MF = list(range(8, 393, 8))


@pytest.fixture(scope="module")
def mf():
    A_f, mu_f = mean_field(M_MF, OMEGA)
    A = A_f(np.arange(M_MF + 1))
    g = lambda x: A_f(M_MF * np.asarray(x)) / M_MF
    mu = lambda x: mu_f(M_MF * np.asarray(x))
    exact_gap = common_tangent(g, mu)[0]
    h = 1e-6
    exact_sp = spinodals(lambda x: (mu(np.asarray(x) + h) - mu(np.asarray(x) - h)) / (2 * h), 1e-3, 1 - 1e-3)
    ws = iid_windows(A, PHI, TARGETS_MF, 2000, np.random.default_rng(11))
    return {"A": A, "mu": mu_f, "gap": exact_gap, "sp": exact_sp, "windows": ws}


# ------------------------------------------------------------------------------ tangent, spinodal
def test_regular_solution_thermodynamic_limit():
    """Omega/kT = 3: binodal 0.07072 (Omega(1-2x) + kT ln(x/(1-x)) = 0), spinodal 1/2(1 ± sqrt(1/3))."""
    g = lambda x: kT * (x * np.log(x) + (1 - x) * np.log(1 - x)) + OMEGA * x * (1 - x)
    mu = lambda x: kT * np.log(x / (1 - x)) + OMEGA * (1 - 2 * x)
    gaps = common_tangent(g, mu)
    assert len(gaps) == 1 and gaps[0].refined
    x_b = brentq_binodal()
    assert gaps[0].x1 == pytest.approx(x_b, abs=1e-9) and gaps[0].x2 == pytest.approx(1 - x_b, abs=1e-9)
    assert x_b == pytest.approx(0.07072, abs=1e-5)
    # the fit recovers the regular solution's excess Omega (1 - 2x) exactly (no noise)
    xs = np.linspace(0.05, 0.95, 30)
    fit = fit_mu(xs, mu(xs), None, T, 400)
    assert fit.excess.convert().coef / kT == pytest.approx([3.0, -6.0, 0.0, 0.0], abs=1e-9)
    assert fit.g(0.3) == pytest.approx(g(0.3), abs=1e-12)
    sp = spinodals(lambda x: kT / (x * (1 - x)) - 2 * OMEGA)
    assert sp == pytest.approx((0.5 * (1 - np.sqrt(1 / 3)), 0.5 * (1 + np.sqrt(1 / 3))), abs=1e-10)
    # convex (Omega < 2kT) and exactly linear g: no gap, no QhullError
    assert common_tangent(lambda x: kT * (x * np.log(x) + (1 - x) * np.log(1 - x)),
                          lambda x: kT * np.log(x / (1 - x))) == ()
    assert common_tangent(lambda x: 0.3 * np.asarray(x), lambda x: 0.3 + 0 * np.asarray(x)) == ()


def brentq_binodal() -> float:
    from scipy.optimize import brentq
    return brentq(lambda x: OMEGA * (1 - 2 * x) + kT * np.log(x / (1 - x)), 1e-6, 0.2)


def test_asymmetric_gap_near_zero():
    """A binodal at x ~ 1e-7 (paper, 300 K: 'x = 0') is found and refined, not pinned to a grid point."""
    c = [6.0, -14.0, 4.0]  # excess mu / kT: strongly asymmetric, deep loop at low x
    ex = lambda x: kT * (c[0] + c[1] * x + c[2] * x ** 2)
    mu = lambda x: kT * np.log(x / (1 - x)) + ex(x)
    g = lambda x: kT * (x * np.log(x) + (1 - x) * np.log(1 - x) + c[0] * x + c[1] * x ** 2 / 2
                        + c[2] * x ** 3 / 3)
    gap = common_tangent(g, mu)[0]
    assert gap.refined and gap.x1 < 1e-2
    assert mu(gap.x1) == pytest.approx(mu(gap.x2), abs=1e-9)
    assert (g(gap.x2) - g(gap.x1)) / (gap.x2 - gap.x1) == pytest.approx(mu(gap.x1), abs=1e-9)


# ------------------------------------------------------------------------------- decorrelation
def test_statistical_inefficiency_ar1():
    """AR(1) with rho: g = (1 + rho)/(1 - rho) = 9 for rho = 0.8."""
    rng = np.random.default_rng(3)
    rho, n = 0.8, 200_000
    e = rng.normal(size=n)
    a = np.empty(n)
    a[0] = e[0]
    for i in range(1, n):
        a[i] = rho * a[i - 1] + e[i]
    assert statistical_inefficiency(a) == pytest.approx(9.0, rel=0.1)
    assert statistical_inefficiency(rng.normal(size=20000)) == pytest.approx(1.0, abs=0.15)


def test_metropolis_chains_decorrelated_errors_calibrated():
    """Correlated birth-death chains (Langmuir): after subsampling, Eq. 17 is within 4 sigma of the
    exact expectation in every window, and the naive (g ignored) sigma is far too small."""
    M, eps = 100, -0.05
    A = langmuir(M, eps)[0](np.arange(M + 1))
    rng = np.random.default_rng(5)
    targets = [20, 40, 60, 80]
    raw = [Window(t, PHI, T, metropolis(A, PHI, t, 40000, rng, t)) for t in targets]
    dec = [w.decorrelated() for w in raw]
    assert all(w.g_raw > 3 for w in dec)
    _, exact = exact_eq17(A, PHI, targets)
    est = eq17_estimate(dec)
    z = (est.mu_eV - exact) / est.sigma_eV
    assert np.all(np.abs(z) < 4)
    naive = eq17_estimate([Window(w.target_N, w.phi_eV, T, w.N) for w in raw])
    assert np.all(naive.sigma_eV * np.sqrt([w.g_raw for w in dec]) == pytest.approx(est.sigma_eV, rel=0.3))


# ------------------------------------------------------------------------------------ Langmuir
def test_langmuir_eq17_and_mbar():
    M, eps = 200, -0.1
    A_f, mu_f = langmuir(M, eps)
    A = A_f(np.arange(M + 1))
    targets = list(range(10, 191, 6))
    mu_b = -0.08  # any bias chemical potential: it must drop out of mu(N)
    rng = np.random.default_rng(7)
    ws = iid_windows(A, PHI, targets, 1500, rng, mu_b=mu_b)
    means, noise_free = exact_eq17(A, PHI, targets, mu_b)
    # systematic: Eq. 17 on exact expectations vs the exact mu at <N> (A''' var(N) bias, small)
    assert np.max(np.abs(noise_free - mu_f(means))) < 0.01 * kT
    a = analyse(ws, M, "eq17")
    boot = bootstrap(ws, M, np.random.default_rng(8), n_boot=60, method="eq17", reference=a)
    err = a.mu_eV - noise_free
    assert np.all(np.abs(err) < 4 * boot.sigma_points)
    assert np.all(np.abs(a.mu_eV - mu_f(means)) < 0.1 * kT)
    assert boot.sigma_points == pytest.approx(a.sigma_eV, rel=0.35)  # bootstrap = analytic 2 phi sd/sqrt(n)
    assert a.binodal is None and a.spinodal is None and a.fit.mixing(0.5) < 0
    # MBAR: A(N+1) - A(N) against the exact discrete difference
    mb = mbar_free_energy(ws)
    Nh, mu, sig = mb.mu_points(kT, min_count=50)
    exact = np.diff(A)[(Nh - 0.5).astype(int)]
    assert np.sqrt(np.mean((mu - exact) ** 2)) < 0.1 * kT
    assert np.all(np.abs(mu - exact) < 5 * sig)
    b = analyse(ws, M, "mbar")
    assert b.binodal is None and b.spinodal is None
    xe = np.linspace(0.1, 0.9, 9)
    assert np.max(np.abs(b.fit.mu(xe) - mu_f(M * xe))) < 0.03 * kT


def test_mbar_equals_exact_on_expected_histograms():
    """MBAR fed with exact (expected, non-integer) histograms returns the exact A(N) (the fixed point
    of the self-consistent equations is exact): a test of the solver without noise."""
    M = 120
    A = mean_field(M, OMEGA)[0](np.arange(M + 1))
    targets = list(range(0, M + 1, 6))
    n = 10 ** 6
    ws = []
    for t in targets:  # a window whose samples are N values with integer counts ~ n p_k(N)
        counts = np.rint(n * biased_p(A, PHI, t)).astype(int)
        ws.append(Window(t, PHI, T, np.repeat(np.arange(M + 1), counts).astype(float)))
    mb = mbar_free_energy(ws)
    ok = mb.counts > 1000
    F = mb.F_eV[ok] - (A[mb.N[ok]] - A[mb.N[ok]].min())
    assert np.ptp(F) < 1e-3 * kT


# ---------------------------------------------------------------------------- mean-field gas
def test_mean_field_binodal_spinodal(mf):
    """M = 400, Omega/kT = 3. Finite-M exact (common tangent of the exact A(N)/M): binodal 0.0689,
    spinodal 0.2099 (thermodynamic limit 0.0707, 0.2113). The fitted model kT ln(x/(1-x)) + cubic
    cannot represent the finite-M 1/(2Mx) terms, so the noise-free pipeline (expected histograms) is
    biased by up to ~2e-3 (tolerance 3e-3); the statistical part (noisy - noise-free) is bounded by
    4 bootstrap sigma (+1e-3 for the scatter of a 40-replicate sigma), the total error by 0.01."""
    A, gap, sp = mf["A"], mf["gap"], mf["sp"]
    assert gap.x1 == pytest.approx(0.0689, abs=5e-4) and sp[0] == pytest.approx(0.2099, abs=5e-4)
    for method in ("eq17", "mbar"):
        nf = analyse(expected_windows(A, PHI, TARGETS_MF, 2000), M_MF, method)  # noise-free pipeline
        assert np.all(np.abs(np.subtract(nf.binodal, (gap.x1, gap.x2))) < 3e-3)
        assert np.all(np.abs(np.subtract(nf.spinodal, (sp[0], sp[-1]))) < 3e-3)
        a = analyse(mf["windows"], M_MF, method)
        boot = bootstrap(mf["windows"], M_MF, np.random.default_rng(9), n_boot=40, method=method, reference=a)
        assert boot.gap_fraction == 1.0
        for found, ref, s in ((a.binodal, nf.binodal, boot.sigma_binodal),
                              (a.spinodal, nf.spinodal, boot.sigma_spinodal)):
            assert np.all(np.abs(np.subtract(found, ref)) < 4 * s + 1e-3), (method, found, ref, s)
            assert np.all(np.abs(np.subtract(found, ref)) < 0.01)
        assert np.all(np.abs(np.subtract(a.binodal, (gap.x1, gap.x2))) < 0.01)
        assert a.mu_coexistence_eV == pytest.approx(0.0, abs=0.02 * kT)  # symmetric model: mu_coex = 0
        # mixing energy at x = 1/2 of the exact model: Omega/4 - kT ln 2 (+ O(ln M / M))
        i = np.argmin(np.abs(boot.x_eval - 0.5))
        exact_mix = float(A[M_MF // 2] / M_MF)
        assert abs(a.fit.mixing(0.5) - exact_mix) < 4 * boot.sigma_mixing[i] + 0.01 * kT


def test_mean_field_eq17_points(mf):
    means, mu_nf = exact_eq17(mf["A"], PHI, TARGETS_MF)
    assert np.max(np.abs(mu_nf - mf["mu"](means))[2:-2]) < 0.03 * kT  # systematic, interior windows
    est = eq17_estimate(mf["windows"])
    assert np.all(np.abs(est.mu_eV - mu_nf) < 4 * est.sigma_eV + 1e-12)


def test_bootstrap_sigma_scales_inverse_sqrt_n():
    M = 400
    A = mean_field(M, OMEGA)[0](np.arange(M + 1))
    targets = TARGETS_MF[::2]
    s = []
    for n in (250, 1000):
        ws = iid_windows(A, PHI, targets, n, np.random.default_rng(n))
        s.append(bootstrap(ws, M, np.random.default_rng(1), n_boot=60, method="eq17"))
    ratio_mu = np.median(s[0].sigma_points / s[1].sigma_points)
    assert ratio_mu == pytest.approx(2.0, rel=0.2)
    assert np.nanmean(s[0].sigma_binodal / s[1].sigma_binodal) == pytest.approx(2.0, rel=0.35)


# -------------------------------------------------------------------------- 1-D lattice gas
def test_ring_partition_function_brute_force():
    M, bJ = 10, 1.3
    lnZ = np.full(M + 1, -np.inf)
    for occ in itertools.product((0, 1), repeat=M):
        o = np.array(occ)
        lnZ[o.sum()] = np.logaddexp(lnZ[o.sum()], bJ * np.sum(o * np.roll(o, 1)))
    assert [ring_lnZ(M, N, bJ) for N in range(M + 1)] == pytest.approx(lnZ, abs=1e-10)


def test_1d_lattice_gas_has_no_gap():
    """Strong attraction (J = 1.5 kT) makes mu flat but never decreasing: no gap, no spinodal."""
    M, bJ = 200, 1.5
    A = np.array([-kT * ring_lnZ(M, N, bJ) for N in range(M + 1)])
    assert np.all(np.diff(A, 2) > 0)  # exact A is convex
    # mu_b = -J: the particle-hole symmetric point (x = 1/2), so that every window holds its target
    ws = iid_windows(A, PHI, list(range(5, 196, 5)), 2000, np.random.default_rng(13), mu_b=-bJ * kT)
    for method in ("eq17", "mbar"):
        a = analyse(ws, M, method)
        assert a.binodal is None and a.spinodal is None and a.gaps == ()
        boot = bootstrap(ws, M, np.random.default_rng(14), n_boot=20, method=method, reference=a)
        assert boot.gap_fraction == 0.0


# --------------------------------------------------------------------------------- P dV/dN term
def test_pressure_volume_term():
    """V = V0 + v N (+ noise): mu = dF/dN + P v with P in bar -> eV/A^3."""
    M, eps, v, P = 200, -0.1, 12.0, 5e4
    A_f = langmuir(M, eps)[0]
    A = A_f(np.arange(M + 1))
    targets = [50, 100, 150]
    rng = np.random.default_rng(21)
    ws = []
    for w in iid_windows(A, PHI, targets, 4000, rng):
        V = 1000.0 + v * w.N + rng.normal(0, 2.0, len(w.N))
        ws.append(Window(w.target_N, PHI, T, w.N, volume_A3=V, pressure_bar=P))
    term = P * EV_PER_A3_PER_BAR * v
    assert term == pytest.approx(0.3744905, rel=1e-6)
    with_v, without = eq17_estimate(ws), eq17_estimate([Window(w.target_N, PHI, T, w.N) for w in ws])
    assert with_v.dV_dN_A3 == pytest.approx(v, rel=0.01)
    assert with_v.mu_eV - without.mu_eV == pytest.approx(np.full(3, term), rel=0.01)
    mb = mbar_free_energy(ws)
    Nh, mu, _ = mb.mu_points(kT, 200)
    assert np.mean(mu - np.diff(A)[(Nh - 0.5).astype(int)]) == pytest.approx(term, abs=0.03 * kT)


# ------------------------------------------------------------------------------- I/O and plot
def test_windows_from_replica_output(tmp_path, mf):
    """Per-cycle arrays as the replicas write them: targets revisited in rounds, -1 unbiased cycles,
    equilibration dropped per visit; round trip through results.h5."""
    from pbahpc.checkpoint import write_tree

    a, b = mf["windows"][5].N[:100], mf["windows"][6].N[:100]
    N = np.r_[np.zeros(10), a[:50], b[:50], a[50:], b[50:]]
    tgt = np.r_[-np.ones(10), np.full(50, 48.0), np.full(50, 56.0), np.full(50, 48.0), np.full(50, 56.0)]
    obs = {"N": N, "target_N": tgt, "volume_A3": 1000 + N, "pe_eV": np.zeros_like(N), "T_K": T, "mu_eV": 0.0,
           "windows": {"phi_eV": PHI, "summary": np.zeros((0, 7))}}
    ws = windows_from_observables(obs, phi_eV=PHI, T_K=T, mu_bias_eV=0.0, equilibration_fraction=0.2)
    assert [w.target_N for w in ws] == [48.0, 56.0]
    assert np.array_equal(ws[0].N, np.r_[a[10:50], a[60:]]) and ws[0].segments == (0, 40)
    write_tree(tmp_path / "results.h5", {"groups": {"r0": obs}}, meta={})
    loaded = load_windows(tmp_path / "results.h5")
    assert np.array_equal(loaded[1].N, ws[1].N) and loaded[1].phi_eV == PHI
    assert loaded[1].decorrelated().segments == (0,)


def test_plot(tmp_path, mf):
    a = analyse(mf["windows"], M_MF, "eq17")
    boot = bootstrap(mf["windows"], M_MF, np.random.default_rng(0), n_boot=10, method="eq17", reference=a)
    out = plot_free_energy(a, tmp_path / "fig8.png", boot, x_scale=2.0)
    assert out.stat().st_size > 10_000


# ------------------------------------------------------------------------------ pymbar cross-check
def test_mbar_equals_pymbar_on_the_same_windows():
    """Our MBAR (Newton on the convex objective, integer bins) and pymbar 4 (its own solver over every
    sample, histogram FES of the unbiased state) solve the same equations: free energies within 1e-6 kT
    (both solvers run to ~1e-12; measured 7e-12 kT). Mean-field gas with a gap, a reservoir mu_b != 0 so
    the linear bias term acts, 25 windows of 400 samples (the tails leave single-count bins, where the
    two must agree as well)."""
    pytest.importorskip("pymbar")
    from pbahpc.properties.free_energy import pymbar_free_energy

    A_f, _ = mean_field(M_MF, OMEGA)
    mu_b = 0.01
    ws = iid_windows(A_f(np.arange(M_MF + 1)), PHI, TARGETS_MF[::2], 400, np.random.default_rng(5), mu_b=mu_b)
    ours, theirs = mbar_free_energy(ws), pymbar_free_energy(ws)
    np.testing.assert_array_equal(ours.N, theirs.N)
    np.testing.assert_array_equal(ours.counts, theirs.counts)
    finite = np.isfinite(ours.F_eV)
    np.testing.assert_array_equal(np.isfinite(theirs.F_eV), finite)
    assert np.ptp(ours.F_eV[finite]) > 20 * kT  # a real free-energy landscape, not a flat one
    assert np.max(np.abs(ours.F_eV[finite] - theirs.F_eV[finite])) < 1e-6 * kT
    assert np.max(np.abs(ours.f_k - theirs.f_k)) < 1e-6
    a, b = analyse(ws, M_MF, "mbar"), analyse(ws, M_MF, "pymbar")
    np.testing.assert_array_equal(a.x, b.x)
    assert np.max(np.abs(a.mu_eV - b.mu_eV)) < 2e-6 * kT  # a difference of two G's
    assert b.method == "pymbar"


def test_statistical_inefficiency_equals_pymbar():
    """Ours (FFT autocovariance) and pymbar.timeseries.statistical_inefficiency (direct sums, fast=False,
    the same mintime 3) evaluate the same truncated sum of the same C(t): equal to round-off. 1e-9
    relative allows the FFT's ~1e-15 per lag summed over a few hundred lags; a different stopping lag
    (C(t) within round-off of 0) would differ at the 1e-3 level and fail."""
    pytest.importorskip("pymbar")
    from pbahpc.properties.free_energy import quiet_pymbar_import

    with quiet_pymbar_import():
        from pymbar.timeseries import statistical_inefficiency as pymbar_g
    rng = np.random.default_rng(8)
    series = []
    for rho in (0.0, 0.5, 0.9, 0.98):
        e = rng.normal(size=5000)
        a = np.empty_like(e)
        a[0] = e[0]
        for i in range(1, len(e)):
            a[i] = rho * a[i - 1] + e[i]
        series.append(a)
    A_f, _ = mean_field(M_MF, OMEGA)
    series.append(metropolis(A_f(np.arange(M_MF + 1)), PHI, 200, 5000, rng, 200))  # integer N, many ties
    gs = []
    for a in series:
        ours, theirs = statistical_inefficiency(a), pymbar_g(a, mintime=3)
        assert ours == pytest.approx(theirs, rel=1e-9)
        gs.append(ours)
    assert gs[0] < 1.2 and gs[3] > 30 and gs[4] > 5  # the cases span uncorrelated to strongly correlated


@pytest.mark.parametrize("method", ["eq17", "mbar"])
def test_windows_that_never_left_n0_are_reported_not_fitted(method):
    """Windows whose insertions were never accepted (N = 0 in every cycle, whatever the target; the demo's
    reference windows did this) leave no mu(N) strictly inside (0, sites): the analysis says so and what
    was sampled, instead of numpy's "Coefficient array is empty"."""
    T = 400.0
    ws = [Window(target_N=t, phi_eV=0.05, T_K=T, N=np.zeros(20)) for t in range(9)]
    with pytest.raises(ValueError, match=r"sampled N = 0 only: they did not hold N near their targets"):
        analyse(ws, 8, method, min_count=3)
