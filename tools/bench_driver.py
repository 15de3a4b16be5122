#!/usr/bin/env python
"""Driver and checkpoint overhead of a campaign run under mpiexec.

Runs the same campaign twice in one session:
  * baseline: checkpoints only at the end (checkpoint.every larger than the number of sync points);
  * measured: a checkpoint at every iteration (one checkpoint per iteration's sync points) -- the production setting.
Prints per-rank shares of wall time (compute, waiting at sync points, routing, checkpoint, other
driver bookkeeping), the time to write one checkpoint, and the measured/baseline wall ratio.
Goal: driver + checkpoint <= 2 % of wall time.

    .venv/bin/python tools/bench_driver.py [--ranks 4] [--lattice 16] [--iterations 4]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import yaml

from pbahpc.config import load
from pbahpc.driver import syncs_per_iteration
from pbahpc.scaling.launch import run_campaign

ROOT = Path(__file__).resolve().parents[1]


def run(campaign: dict, workdir: Path, ranks: int) -> tuple[float, dict]:
    wall, out = run_campaign(campaign, workdir / f"{campaign['campaign']['name']}.yaml", ranks)
    if out.returncode:
        sys.exit(f"bench: campaign failed ({out.returncode}):\n{out.stderr}")
    run_dir = Path(campaign["campaign"]["run_dir"])
    return wall, yaml.safe_load((run_dir / "timings.yaml").read_text())


def shares(timings: dict) -> list[dict]:
    rows = []
    for rank, t in timings.items():
        if not rank.startswith("rank"):
            continue
        other = t["wall"] - t["compute"] - t["wait"] - t["route"] - t["checkpoint"]
        rows.append({"rank": rank, "groups": "+".join(t["groups"]), "wall": t["wall"],
                     **{k: 100 * t[k] / t["wall"] for k in ("compute", "wait", "route", "checkpoint")},
                     "other": 100 * other / t["wall"]})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ranks", type=int, default=4)
    ap.add_argument("--lattice", type=int, default=32)
    ap.add_argument("--iterations", type=int, default=4)
    ap.add_argument("--sweeps", type=int, default=300, help="sweeps per cycle: sets the compute per iteration")
    args = ap.parse_args()
    base = yaml.safe_load((ROOT / "inputs" / "smoke.yaml").read_text())
    base["replicas"].update(lattice=args.lattice, cycles=10, sweeps_per_cycle=args.sweeps)
    base["campaign"]["iterations"] = args.iterations
    per_iteration = syncs_per_iteration(load(ROOT / "inputs" / "smoke.yaml"), args.ranks)
    syncs = per_iteration * args.iterations
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        results = {}
        for name, every in (("baseline", syncs + 1), ("measured", per_iteration)):
            cfg = {**base, "campaign": {**base["campaign"], "name": name, "run_dir": str(tmp / name)},
                   "checkpoint": {"keep": 3, "every": every}}
            results[name] = run(cfg, tmp, args.ranks)
            print(f"{name}: {results[name][0]:.2f} s wall (launch included), "
                  f"checkpoint every {every} sync points", flush=True)
    wall_b, _ = results["baseline"]
    wall_m, tm = results["measured"]
    print(f"\n{'rank':<6} {'groups':<22} {'wall s':>7} {'compute%':>9} {'wait%':>7} {'route%':>7} "
          f"{'ckpt%':>7} {'other%':>7}")
    rows = shares(tm)
    for r in rows:
        print(f"{r['rank']:<6} {r['groups']:<22} {r['wall']:7.2f} {r['compute']:9.1f} {r['wait']:7.1f} "
              f"{r['route']:7.2f} {r['checkpoint']:7.2f} {r['other']:7.2f}")
    per_ckpt = tm["rank0"]["checkpoint_write_s"] / tm["rank0"]["checkpoint_writes"]
    driver = max(r["route"] + r["other"] for r in rows)
    ckpt = max(r["checkpoint"] for r in rows)
    print(f"\ntime to write one checkpoint (HDF5 + fsync, background thread on rank 0): {1000 * per_ckpt:.1f} ms")
    print(f"driver share (routing + bookkeeping, worst rank): {driver:.2f} %")
    print(f"checkpoint share (worst rank): {ckpt:.2f} %")
    print(f"driver + checkpoint: {driver + ckpt:.2f} % (goal <= 2 %)")
    print(f"wall ratio measured/baseline (same session): {wall_m / wall_b:.3f}")


if __name__ == "__main__":
    main()
