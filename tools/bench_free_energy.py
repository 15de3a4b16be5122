#!/usr/bin/env python
"""Eq. 17 (per-window mean response) vs MBAR (all windows, integer N grid) on the exact mean-field
lattice gas A(N) = -kT ln C(M,N) + Omega N (M-N)/M (analysis.md A5.2).

Windows N_t = every ``--spacing`` sites, phi = 0.02 kT; samples drawn i.i.d. from each window's exact
biased distribution. For each sample size per window and each estimator, over ``--repeats`` data sets:
  * RMS error of the raw mu points against the exact finite-M mu (digamma continuation of A'(N));
  * RMS error of the fitted mu(x) on x in [0.05, 0.95];
  * binodal error (Na-poor side) against the common tangent of the exact finite-M G;
  * wall time of the whole analysis (estimator + fit + common tangent + spinodals), one pass.
Prints the MBAR/Eq.17 ratios of error and time.

    .venv/bin/python tools/bench_free_energy.py [--sites 400] [--omega 3] [--sizes 250 1000 4000] [--repeats 5]
"""
from __future__ import annotations

import argparse
import time

import numpy as np
from scipy.special import digamma, gammaln

from pbahpc.properties.free_energy import Window, analyse, common_tangent
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
    print(f"mean-field lattice gas: M={M}, Omega/kT={args.omega}, phi/kT={args.phi}, {len(targets)} windows, "
          f"T={T_K} K; exact finite-M binodal {exact_b:.5f}, repeats {args.repeats}")
    print(f"\n{'n/window':>8} {'method':>6} {'rms pts/kT':>11} {'rms fit/kT':>11} {'|dx_bin|':>9} "
          f"{'sd x_bin':>9} {'time ms':>8}")
    summary = []
    for n in args.sizes:
        res: dict[str, dict[str, list]] = {m: {"pts": [], "fit": [], "bin": [], "t": []} for m in ("eq17", "mbar")}
        for _ in range(args.repeats):
            ws = [Window(float(t), phi, T_K, rng.choice(N, n, p=p).astype(float)) for t, p in zip(targets, probs)]
            for m in ("eq17", "mbar"):
                t0 = time.perf_counter()
                a = analyse(ws, M, m)
                res[m]["t"].append(time.perf_counter() - t0)
                res[m]["pts"].append(np.sqrt(np.mean((a.mu_eV - mu_exact(a.x * M)) ** 2)) / kT)
                res[m]["fit"].append(np.sqrt(np.mean((a.fit.mu(xg) - mu_exact(xg * M)) ** 2)) / kT)
                res[m]["bin"].append(a.binodal[0] - exact_b if a.binodal else np.nan)
        row = {}
        for m in ("eq17", "mbar"):
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


if __name__ == "__main__":
    main()
