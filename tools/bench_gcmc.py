#!/usr/bin/env python
"""MD steps/s and GCMC trials/s with the teacher potential vs system size, on 1 and 2 ranks.

For each n x n x n PBA supercell (Na_1Mn[Fe(CN)6] start) and rank count it runs, in LAMMPS through the
same set-up the GCMC-MD replica uses: NPT MD (0.4 fs), then fix gcmc trials with and without
``full_energy``. fix gcmc re-evaluates the whole system's energy per trial in full_energy mode, so the
cost of one trial grows ~linearly with the atom count: the fitted exponent is printed. The baseline
for the ratios is the 1x1x1 cell on 1 rank, measured in the same run.

    .venv/bin/python tools/bench_gcmc.py [--sizes 1 2 3 4] [--ranks 1 2] [--md-steps 200] [--trials 200]
"""
from __future__ import annotations

import argparse
import json
import sys
import time

from pbahpc.scaling.launch import launch


def worker(n: int, md_steps: int, trials: int) -> None:
    from mpi4py import MPI
    import lammps

    from pbahpc.atomistic.lammps_setup import setup_lammps
    from pbahpc.atomistic.structure import build_pba
    from pbahpc.oracle.teacher import teacher_potential

    import numpy as np

    comm = MPI.COMM_WORLD
    pot = teacher_potential()
    atoms = build_pba(n=n, x_na=1.0, rng=np.random.default_rng(1))
    out = {"cells": n, "atoms": len(atoms), "ranks": comm.Get_size()}
    lmp = lammps.lammps(cmdargs=["-log", "none", "-screen", "none", "-nocite"], comm=comm)
    setup_lammps(lmp, atoms, pot)
    lmp.commands_string("""
timestep 0.0004
velocity all create 300 4928 dist gaussian
fix md all npt temp 300 300 0.1 iso 1 1 1.0
group na type 1
""")
    lmp.command("run 20")  # set-up and neighbour lists outside the timing
    comm.Barrier()
    t = time.perf_counter()
    lmp.command(f"run {md_steps}")
    comm.Barrier()
    out["md_steps_per_s"] = md_steps / (time.perf_counter() - t)
    lmp.command("unfix md")
    for mode, extra in (("gcmc_full_trials_per_s", " full_energy"), ("gcmc_trials_per_s", "")):
        lmp.command(f"fix gc na gcmc 1 {trials // 2} {trials // 2} 1 8123 300 -3.0 0.5{extra}")
        comm.Barrier()
        t = time.perf_counter()
        lmp.command("run 1")
        comm.Barrier()
        out[mode] = trials / (time.perf_counter() - t)
        lmp.command("unfix gc")
    lmp.close()
    if comm.Get_rank() == 0:
        print("RESULT " + json.dumps(out), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[1, 2, 3, 4])
    ap.add_argument("--ranks", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--md-steps", type=int, default=200)
    ap.add_argument("--trials", type=int, default=200)
    ap.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args.worker, args.md_steps, args.trials)
        return
    rows = []
    for n in args.sizes:
        for p in args.ranks:
            res = launch(p, [sys.executable, __file__, "--worker", str(n), "--md-steps", str(args.md_steps),
                             "--trials", str(args.trials)], capture_output=True, text=True)
            line = [ln for ln in res.stdout.splitlines() if ln.startswith("RESULT ")]
            if res.returncode or not line:
                sys.exit(f"bench_gcmc: {n}x{n}x{n} on {p} rank(s) failed:\n{res.stderr[-2000:]}")
            rows.append(json.loads(line[0][7:]))
            print(f"measured {n}x{n}x{n} on {p} rank(s)", file=sys.stderr, flush=True)
    base = rows[0]
    print(f"{'cells':>5} {'atoms':>6} {'ranks':>5} {'MD steps/s':>11} {'katom-step/s':>12} "
          f"{'GCMC full/s':>12} {'GCMC single/s':>14} {'full vs base':>12}")
    for r in rows:
        print(f"{r['cells']:>5} {r['atoms']:>6} {r['ranks']:>5} {r['md_steps_per_s']:11.1f} "
              f"{r['md_steps_per_s'] * r['atoms'] / 1000:12.1f} {r['gcmc_full_trials_per_s']:12.1f} "
              f"{r['gcmc_trials_per_s']:14.1f} {r['gcmc_full_trials_per_s'] / base['gcmc_full_trials_per_s']:12.3f}")
    import numpy as np

    one = [r for r in rows if r["ranks"] == args.ranks[0]]
    if len(one) > 1:
        slope = np.polyfit(np.log([r["atoms"] for r in one]), np.log([1 / r["gcmc_full_trials_per_s"] for r in one]), 1)[0]
        print(f"\ncost of one full_energy GCMC trial ~ N^{slope:.2f} (atoms N, {args.ranks[0]} rank(s))")


if __name__ == "__main__":
    main()
