#!/usr/bin/env python
"""Calibrated performance model of an active-learning campaign (pbahpc.scaling.model).

1. calibrate (micro-measurements here, ~1-3 min on 2 cores) or load the stored coefficients;
2. validate: every measurement vs the model's prediction, relative error, calibration and held-out points;
3. predict the paper-scale campaign (inputs/production-mnfepba.yaml) on 1-1024 nodes: wall time, time per
   stage, idle share per role, the suggested role split, and ratios against 1 node, the production file's
   own layout and naive splits.

    .venv/bin/python tools/scaling_model.py [--calibrate] [--coefficients runs/scaling-model/coefficients.json]
        [--cores-per-node 32|128] [--nodes 1 4 16 64 256 1024] [--label-node-hours 1.0] [--objective wall|idle]
        [--repeats 3]
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pbahpc.scaling.model import (CampaignSpec, Layout, calibrate, load, naive_layouts, predict,  # noqa: E402
                                  suggest_split, validate)


WARM_FRACTION = 0.31  # tests/test_mtp_train.py warm start: level 4, 10 -> 11 cells, tol 1e-2: 36 of 117 passes


def hours(s: float) -> str:
    return f"{s / 3600:9.1f} h" if s < 5 * 86400 else f"{s / 86400:9.1f} d"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--coefficients", default=str(ROOT / "runs" / "scaling-model" / "coefficients.json"))
    ap.add_argument("--calibrate", action="store_true", help="measure again even if the file exists")
    ap.add_argument("--repeats", type=int, default=3, help="repeats per measurement (the minimum is kept)")
    ap.add_argument("--cores-per-node", type=int, default=32, choices=(32, 128))
    ap.add_argument("--nodes", type=int, nargs="+", default=[1, 4, 16, 64, 256, 1024])
    ap.add_argument("--label-node-hours", type=float, default=1.0,
                    help="VASP node-hours per ~480-atom frame (NOT measured here: an input)")
    ap.add_argument("--objective", choices=("wall", "idle"), default="wall")
    ap.add_argument("--warm-fraction", type=float, default=WARM_FRACTION,
                    help="passes of a warm-started retraining / a cold one (tools/bench_train.py section 2)")
    args = ap.parse_args()

    path = Path(args.coefficients)
    if path.exists() and not args.calibrate:
        coeffs, points = load(path)
        print(f"coefficients: {path} ({coeffs.note or coeffs.machine})")
    else:
        print(f"calibrating (micro-measurements, min of {args.repeats}) ...", flush=True)
        coeffs, points = calibrate(path, repeats=args.repeats)
        print(f"coefficients stored in {path}")
    print("  " + ", ".join(f"{k}={v:.3g}" for k, v in vars(coeffs).items() if isinstance(v, float)))

    # ------------------------------------------------------------------ validation
    rows = validate(coeffs, points)
    print("\nvalidation: measured vs predicted (seconds per MD step / trial / frame / training pass / selection /"
          " allreduce / P2D solve)")
    print(f"  {'point':<44} {'set':<9} {'measured':>10} {'predicted':>10} {'pred/meas':>9} {'error':>8}")
    for r in rows:
        ratio = r["predicted_s"] / r["measured_s"]
        print(f"  {r['point']:<44} {'held-out' if r['held_out'] else 'calib':<9} {r['measured_s']:10.4g} "
              f"{r['predicted_s']:10.4g} {ratio:9.2f} {100 * r['rel_error']:+7.1f}%")
    for held in (False, True):
        errs = [abs(r["rel_error"]) for r in rows if r["held_out"] == held]
        if errs:
            name = "held-out" if held else "calibration"
            print(f"  {name}: {len(errs)} points, mean |error| {100 * sum(errs) / len(errs):.1f} %, "
                  f"max {100 * max(errs):.1f} %")

    # ------------------------------------------------------------------ paper scale
    spec = CampaignSpec(cores_per_node=args.cores_per_node, label_node_hours=args.label_node_hours)
    sel = spec.selections()
    print(f"\npaper-scale campaign (inputs/production-mnfepba.yaml): {spec.replicas} replicas of {spec.atoms:.0f} atoms, "
          f"level {spec.level}, {spec.cycles} cycles x ({spec.md_steps} MD steps + {spec.exchanges + spec.translations} "
          f"full-energy trials), {spec.iterations} iterations selecting {sel[0]}..{sel[-1]} ({sum(sel)} in all) "
          f"after {spec.pretrain_frames} pre-training frames, {spec.passes} training passes per retraining, "
          f"VASP {spec.label_node_hours} node-h/frame on {spec.vasp_nodes} node, {spec.cores_per_node} cores/node")
    prod = Layout(4, 28, 16, 4)
    p0 = predict(coeffs, spec, prod)
    print(f"  production file's layout ({prod.describe(spec.replicas)}; {p0.nodes} nodes): wall {hours(p0.wall_s)}, "
          f"idle {100 * p0.idle_total:.0f} %")
    stage_line = ", ".join(f"{k} {hours(v).strip()}" for k, v in p0.stages_s.items() if v)
    print(f"    stages: {stage_line}")
    warm = replace(spec, warm_passes=round(args.warm_fraction * spec.passes))
    pw = predict(coeffs, warm, prod)
    print(f"  the same with warm-started retrainings ({warm.warm_passes} passes after the first): wall "
          f"{hours(pw.wall_s).strip()} (train {hours(pw.stages_s['train']).strip()} instead of "
          f"{hours(p0.stages_s['train']).strip()}); the suggested splits below keep cold retrainings")

    print(f"\n  {'nodes':>5} {'wall':>11} {'vs 1 node':>9} {'vs prod':>8} {'idle':>5} {'idle rep/trn/orc/cont':>22}  "
          f"suggested split / stage times")
    first = None
    for n in args.nodes:
        try:
            lay, pr = suggest_split(coeffs, spec, n, args.objective)
        except ValueError as exc:
            print(f"  {n:>5} {exc}")
            continue
        first = first or pr.wall_s
        idle = "/".join(f"{100 * pr.idle[r]:.0f}" for r in ("replicas", "trainer", "oracle", "continuum"))
        print(f"  {n:>5} {hours(pr.wall_s)} {first / pr.wall_s:8.1f}x {p0.wall_s / pr.wall_s:7.2f}x "
              f"{100 * pr.idle_total:4.0f}% {idle:>22}  {lay.describe(spec.replicas)} ({pr.nodes} nodes)")
        st = ", ".join(f"{k} {hours(v).strip()}" for k, v in pr.stages_s.items() if v > 0.005 * pr.wall_s)
        print(f"  {'':>5} {'':>11} {'':>9} {'':>8} {'':>5} {'':>22}  stages: {st}")
        for name, nl in naive_layouts(spec, n).items():
            q = predict(coeffs, spec, nl)
            print(f"  {'':>5} {hours(q.wall_s)} {'':>9} {'':>8} {100 * q.idle_total:4.0f}% {'':>22}  naive "
                  f"{name}: {nl.describe(spec.replicas)} ({q.wall_s / pr.wall_s:.2f}x the suggested)")
    print("\nidle = 1 - busy core-seconds / (cores x wall); the oracle's cores are its VASP nodes. Everything above "
          "the coefficients is an assumption of pbahpc/scaling/model.py (module docstring): above all the VASP "
          "cost per frame and the level-12 extrapolation of the MTP cost.")


if __name__ == "__main__":
    main()
