#!/usr/bin/env python
"""Eq. 17 (per-window mean response) vs MBAR (all windows, integer N grid) on the exact mean-field
lattice gas A(N) = -kT ln C(M,N) + Omega N (M-N)/M (analysis.md A5.2).

Windows N_t = every ``--spacing`` sites, phi = 0.02 kT; samples drawn i.i.d. from each window's exact
biased distribution. For each sample size per window and each estimator, over ``--repeats`` data sets:
  * RMS error of the raw mu points against the exact finite-M mu (digamma continuation of A'(N));
  * RMS error of the fitted mu(x) on x in [0.05, 0.95];
  * binodal error (Na-poor side) against the common tangent of the exact finite-M G;
  * wall time of the whole analysis (estimator + fit + common tangent + spinodals), one pass.
Prints the MBAR/Eq.17 ratios of error and time. With pymbar installed (pbahpc[pymbar]) it also runs
``method: pymbar`` on the same data sets and prints, per size, the largest |F_ours - F_pymbar| in kT and
the pymbar/ours ratios of the estimator's time alone (mbar_free_energy vs pymbar_free_energy) and of
statistical_inefficiency's (pymbar.timeseries, 4000-sample series), all measured in this run (pymbar
on numpy: without JAX, as pbahpc[pymbar] installs it).

    .venv/bin/python tools/bench_free_energy.py [--sites 400] [--omega 3] [--sizes 250 1000 4000] [--repeats 5]
"""
from __future__ import annotations

import argparse
import importlib.util
import time

import numpy as np
from scipy.special import digamma, gammaln

from pbahpc.properties.free_energy import (Window, analyse, common_tangent, mbar_free_energy, pymbar_free_energy,
                                           quiet_pymbar_import, statistical_inefficiency)
from pbahpc.units import KB_EV_PER_K

T_K = 300.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sites", type=int, default=400, help="lattice sites M")
    ap.add_argument("--omega", type=float, default=3.0, help="Omega / kT (> 2: miscibility gap)")
    ap.add_argument("--phi", type=float, default=0.02, help="bias stiffness phi / kT")
    ap.add_argument("--spacing", type=int, default=8, help="N_t spacing between windows")
    ap.add_argument("--sizes", type=int, nargs="+", default=[250, 1000, 4000], help="samples per window")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--seed", type=int, default=2026)
    args = ap.parse_args()
    kT = KB_EV_PER_K * T_K
    M, omega, phi = args.sites, args.omega * kT, args.phi * kT
    N = np.arange(M + 1)
    A = -kT * (gammaln(M + 1) - gammaln(N + 1) - gammaln(M - N + 1)) + omega * N * (M - N) / M

    def mu_exact(n):
        n = np.asarray(n, float)
        return kT * (digamma(n + 1) - digamma(M - n + 1)) + omega * (M - 2 * n) / M

    def g_exact(x):  # eV per site, continuous in x through gammaln
        x = np.asarray(x, float)
        return (-kT * (gammaln(M + 1) - gammaln(M * x + 1) - gammaln(M - M * x + 1)) + omega * M * x * (1 - x)) / M

    gap = common_tangent(g_exact, lambda x: mu_exact(M * np.asarray(x)))
    exact_b = gap[0].x1 if gap else float("nan")
    targets = np.arange(args.spacing, M - args.spacing + 1, args.spacing)
    probs = []
    for t in targets:
        e = -(A + phi * (N - t) ** 2) / kT
        p = np.exp(e - e.max())
        probs.append(p / p.sum())
    rng = np.random.default_rng(args.seed)
    xg = np.linspace(0.05, 0.95, 181)
    methods = ("eq17", "mbar") + (("pymbar",) if importlib.util.find_spec("pymbar") else ())
    print(f"mean-field lattice gas: M={M}, Omega/kT={args.omega}, phi/kT={args.phi}, {len(targets)} windows, "
          f"T={T_K} K; exact finite-M binodal {exact_b:.5f}, repeats {args.repeats}")
    print(f"\n{'n/window':>8} {'method':>6} {'rms pts/kT':>11} {'rms fit/kT':>11} {'|dx_bin|':>9} "
          f"{'sd x_bin':>9} {'time ms':>8}")
    summary = []
    for n in args.sizes:
        res: dict[str, dict[str, list]] = {m: {"pts": [], "fit": [], "bin": [], "t": []} for m in methods}
        cross: dict[str, list] = {"dF": [], "ours": [], "pymbar": []}
        for _ in range(args.repeats):
            ws = [Window(float(t), phi, T_K, rng.choice(N, n, p=p).astype(float)) for t, p in zip(targets, probs)]
            if "pymbar" in methods:
                cross["dF"].append(_cross_check(ws, cross) / kT)
            for m in methods:
                t0 = time.perf_counter()
                a = analyse(ws, M, m)
                res[m]["t"].append(time.perf_counter() - t0)
                res[m]["pts"].append(np.sqrt(np.mean((a.mu_eV - mu_exact(a.x * M)) ** 2)) / kT)
                res[m]["fit"].append(np.sqrt(np.mean((a.fit.mu(xg) - mu_exact(xg * M)) ** 2)) / kT)
                res[m]["bin"].append(a.binodal[0] - exact_b if a.binodal else np.nan)
        row = {"cross": cross}
        for m in methods:
            r = res[m]
            row[m] = (np.mean(r["pts"]), np.mean(r["fit"]), np.nanmean(np.abs(r["bin"])), np.nanstd(r["bin"]),
                      1000 * np.median(r["t"]))
            print(f"{n:8d} {m:>6} {row[m][0]:11.4f} {row[m][1]:11.4f} {row[m][2]:9.5f} {row[m][3]:9.5f} "
                  f"{row[m][4]:8.1f}")
        summary.append((n, row))
    print(f"\n{'n/window':>8} {'MBAR/Eq17: rms pts':>19} {'rms fit':>8} {'|dx_bin|':>9} {'time':>7}")
    for n, row in summary:
        e, b = row["eq17"], row["mbar"]
        print(f"{n:8d} {b[0] / e[0]:19.2f} {b[1] / e[1]:8.2f} {b[2] / e[2]:9.2f} {b[4] / e[4]:7.2f}")
    if "pymbar" not in methods:
        print("\npymbar not installed (pip install 'pbahpc[pymbar]'): no cross-check")
        return
    print(f"\n{'n/window':>8} {'max|dF| ours-pymbar kT':>23} {'pymbar/ours: MBAR time':>23} {'analyse time':>13}")
    for n, row in summary:
        c = row["cross"]
        print(f"{n:8d} {max(c['dF']):23.1e} {np.median(c['pymbar']) / np.median(c['ours']):23.1f} "
              f"{row['pymbar'][4] / row['mbar'][4]:13.1f}")
    series = [_ar1(rho, 4000, rng) for rho in (0.0, 0.5, 0.9, 0.98)]
    with quiet_pymbar_import():
        from pymbar.timeseries import statistical_inefficiency as pymbar_g
    t_ours = _best_time(lambda: [statistical_inefficiency(a) for a in series])
    t_theirs = _best_time(lambda: [pymbar_g(a, mintime=3) for a in series])
    print(f"statistical inefficiency (4 AR(1) series of 4000): ours {1e3 * t_ours:.2f} ms, pymbar "
          f"{1e3 * t_theirs:.2f} ms, pymbar/ours {t_theirs / t_ours:.1f}")


def _cross_check(ws: list[Window], times: dict[str, list]) -> float:
    """max |F_ours - F_pymbar| (eV) over the sampled N; appends each estimator's wall time (s)."""
    t0 = time.perf_counter()
    ours = mbar_free_energy(ws)
    t1 = time.perf_counter()
    theirs = pymbar_free_energy(ws)
    times["ours"].append(t1 - t0)
    times["pymbar"].append(time.perf_counter() - t1)
    ok = np.isfinite(ours.F_eV)
    return float(np.max(np.abs(ours.F_eV[ok] - theirs.F_eV[ok])))


def _ar1(rho: float, n: int, rng: np.random.Generator) -> np.ndarray:
    e = rng.normal(size=n)
    for i in range(1, n):
        e[i] += rho * e[i - 1]
    return e


def _best_time(fn, repeats: int = 5) -> float:
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


if __name__ == "__main__":
    main()
