#!/usr/bin/env python
"""Wall time of the demo campaign by stage, and of the reference-side properties vs the learned side.

Reads a finished run directory (default runs/demo; ``--run`` first runs the README's demo command,
``jobscripts/laptop.sh inputs/demo.yaml``, and times it): per stage the seconds of its synchronisation
points summed over the iterations (each point's slowest rank: the stage's critical path, from
timings.yaml), then per properties workflow the seconds of the runs with the final MTP and with the
reference potential (``properties.reference``; properties.h5, each run's ``wall_s``) and their ratio.

    .venv/bin/python tools/bench_demo.py [--run] [--run-dir runs/demo]
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    sys.path.insert(0, str(ROOT))
    from pbahpc.checkpoint import read_checkpoint_file
    from pbahpc.properties.report import REFERENCE

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", action="store_true", help="run the demo first (from the repository root)")
    ap.add_argument("--run-dir", type=Path, default=ROOT / "runs" / "demo")
    args = ap.parse_args()
    if args.run:
        t = time.perf_counter()
        done = subprocess.run([str(ROOT / "jobscripts" / "laptop.sh"), "inputs/demo.yaml"], cwd=ROOT)
        print(f"demo: exit {done.returncode}, {time.perf_counter() - t:.1f} s wall")
        if done.returncode:
            return done.returncode

    timings = yaml.safe_load((args.run_dir / "timings.yaml").read_text())
    names = timings["stages"]
    ranks = [v for k, v in timings.items() if k.startswith("rank")]
    per_point: dict[tuple[int, int], float] = {}  # (iteration, stage) -> slowest rank's compute s
    for r in ranks:
        for it, stage, compute, _ in r["stages"]:
            per_point[(it, stage)] = max(per_point.get((it, stage), 0.0), compute)
    total = sum(per_point.values())
    print(f"\n{'stage':<12} {'seconds':>9} {'share':>7}   (critical path, {len(ranks)} ranks)")
    for i, name in enumerate(names):
        s = sum(v for (_, st), v in per_point.items() if st == i)
        print(f"{name:<12} {s:9.1f} {s / total:7.1%}")
    print(f"{'all':<12} {total:9.1f}")

    props = args.run_dir / "properties" / "properties.h5"
    if not props.exists():
        print("\nno properties/properties.h5: the properties stage did not run")
        return 0
    runs = {k.replace("|", "/"): v for k, v in read_checkpoint_file(props)[0]["runs"].items()}
    kinds = sorted({k.removeprefix(REFERENCE).split("/")[0] for k in runs})
    print(f"\n{'properties':<12} {'MTP s':>9} {'reference s':>12} {'ratio':>7}")
    for kind in kinds + ["all"]:
        mine = [k for k in runs if kind == "all" or k.removeprefix(REFERENCE).startswith(kind + "/")]
        learned = sum(float(runs[k].get("wall_s", 0.0)) for k in mine if not k.startswith(REFERENCE))
        ref = sum(float(runs[k].get("wall_s", 0.0)) for k in mine if k.startswith(REFERENCE))
        ratio = f"{ref / learned:7.2f}" if learned and ref else "      -"
        print(f"{kind:<12} {learned:9.1f} {ref:12.1f} {ratio}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
