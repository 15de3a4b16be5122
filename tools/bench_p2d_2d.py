"""The 2-D particle cell (inputs/p2d-mnfepba-2d.yaml) on this machine, everything measured in this run:

1. a window of its 0.1C charge (or with --full the whole charge + discharge protocol) on 1 and 2 ranks
   (mpiexec subprocesses): wall time, time steps, Newton and linear iterations, unknowns, speed-up, and
   the per-rank split of the particle unknowns (what the 64-rank projection needs: the particle work
   is local, the condensed 4-unknowns-per-node system is factored redundantly);
2. cost per time step vs the particle mesh (cells_theta x cells_r) on 1 rank, same window.

3. with --scaling, strong scaling 1 -> 2 ranks of a large cell (default 100 cathode x-nodes of a
   48 x 20 particle: 202k unknowns) over a short fixed window, the 1- and 2-rank runs alternated
   (--repeat pairs; the box is shared, so each speed-up pairs neighbouring runs): wall per step, Newton
   and linear iterations, and per rank what the 64-rank projection needs: the particle unknowns, the
   time in the batched residual (FD Jacobian and function evaluations), the condensation (SuperLU of
   the particle blocks, S = A_ee - A_ep A_pp^-1 A_pe) and the preconditioner's application, and the
   communication per step: PETSc's own messages, bytes and reductions (counted by -log_view: DMDA
   ghost updates, the redundant factorisation of S, norms) and pbahpc's mpi4py collectives (counted).

    .venv/bin/python tools/bench_p2d_2d.py [--window 1200] [--full] [--thetas 4 8 16]
    .venv/bin/python tools/bench_p2d_2d.py --scaling [--cells-x 100] [--theta 20] [--window 0.02] [--repeat 2]
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
from pathlib import Path

from pbahpc.scaling.launch import launch

ROOT = Path(__file__).resolve().parents[1]

RUN = """
import dataclasses, json, time, warnings
from mpi4py import MPI
from pbahpc.continuum.cell import P2DCell
from pbahpc.continuum.parameters import load_parameters

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    ps = load_parameters({path!r})
cathode = ps.cell.cathode
law = dataclasses.replace(cathode.particle, cells_theta={theta}) if {theta} else cathode.particle
cells_x = {cells_x} or cathode.cells_x
cell = dataclasses.replace(ps.cell, cathode=dataclasses.replace(cathode, particle=law, cells_x=cells_x))
comm = MPI.COMM_WORLD
m = P2DCell(cell, ps.solver, comm)
steps = list(ps.protocol) if {full} else [dataclasses.replace(ps.protocol[0], duration_s={window})]
t0 = time.perf_counter()
ends = m.run(steps)
wall = comm.allreduce(time.perf_counter() - t0, op=MPI.MAX)
ts = m.ts
own = comm.allgather(sum(max(0, min(r.stop, m.xe) - max(r.start, m.xs)) * r.particle.slots for r in m.regions))
r = m.result()
if comm.rank == 0:
    print(json.dumps({{"wall": wall, "steps": len(r["time_s"]) - 1, "newton": ts.getSNESIterations(),
                      "linear": ts.getKSPIterations(), "ends": ends, "t_end": float(r["time_s"][-1]),
                      "unknowns": m.n_nodes * m.dof, "particle_unknowns_per_rank": own,
                      "V_end": float(r["voltage_V"][-1]), "throughput_Ah_m2": float(r["throughput_Ah_m2"][-1])}}))
"""


SCALING = """
import cProfile, dataclasses, json, pickle, pstats, time, warnings
from mpi4py import MPI
from pbahpc.continuum.cell import P2DCell
from pbahpc.continuum.parameters import load_parameters

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    ps = load_parameters({path!r})
cathode = ps.cell.cathode
law = dataclasses.replace(cathode.particle, cells_theta={theta})
cell = dataclasses.replace(ps.cell, cathode=dataclasses.replace(cathode, particle=law, cells_x={cells_x}))
solver = dataclasses.replace(ps.solver, petsc_options=("-log_view", ":" + {log!r}))
comm = MPI.COMM_WORLD
m = P2DCell(cell, solver, comm)
clock = {{}}


def timed(name, f):
    # (calls, wall s, CPU s of this rank: the CPU time is what the load of a shared box leaves alone)
    def wrapped(*a, **k):
        t0, c0 = time.perf_counter(), time.process_time()
        try:
            return f(*a, **k)
        finally:
            n, s, c = clock.get(name, (0, 0.0, 0.0))
            clock[name] = (n + 1, s + time.perf_counter() - t0, c + time.process_time() - c0)
    return wrapped


class Counted:
    # pbahpc's own mpi4py collectives on the cell's communicator (the pickled payload per call)
    def __init__(self, comm):
        self._comm, self.calls = comm, {{}}

    def __getattr__(self, name):
        f = getattr(self._comm, name)
        if name not in ("allreduce", "bcast", "allgather", "gather", "reduce"):
            return f
        def wrapped(obj=None, *a, **k):
            n, b = self.calls.get(name, (0, 0))
            self.calls[name] = (n + 1, b + len(pickle.dumps(obj)))
            return f(obj, *a, **k)
        return wrapped


m.residual = timed("residual", m.residual)
m._condensed.update = timed("condense", m._condensed.update)
m._condensed.apply = timed("pc_apply", m._condensed.apply)
m.comm = counted = Counted(comm)
step = dataclasses.replace(ps.protocol[0], duration_s={window})
profile = cProfile.Profile(time.process_time) if {profile} else None
comm.Barrier()
t0, c0 = time.perf_counter(), time.process_time()
if profile:
    profile.enable()
m.run([step])
mine, cpu = time.perf_counter() - t0, time.process_time() - c0
top = []
if profile:
    profile.disable()
    stats = pstats.Stats(profile).stats  # (file, line, name) -> (calls, ncalls, tottime, cumtime, callers)
    top = sorted(((v[2], f"{{k[2]}} ({{k[0].rsplit('/', 1)[-1]}}:{{k[1]}})") for k, v in stats.items()),
                 reverse=True)[:12]
wall = comm.allreduce(mine, op=MPI.MAX)
own = sum(max(0, min(r.stop, m.xe) - max(r.start, m.xs)) * r.particle.slots for r in m.regions)
per_rank = comm.gather({{"nodes": m.xe - m.xs, "particle_unknowns": own, "wall": mine, "cpu": cpu, "clock": clock,
                        "mpi4py": counted.calls, "top": top}}, root=0)
r = m.result()
if comm.rank == 0:
    print(json.dumps({{"wall": wall, "steps": len(r["time_s"]) - 1, "newton": m.ts.getSNESIterations(),
                      "linear": m.ts.getKSPIterations(), "unknowns": m.n_nodes * m.dof, "nodes": m.n_nodes,
                      "dof": m.dof, "kept_S": m._condensed.n_e if comm.size == 1 else None,
                      "colours": m.n_colours, "t_end": float(r["time_s"][-1]),
                      "V_end": float(r["voltage_V"][-1]), "ranks": per_rank}}))
"""

# what -log_view counts over all ranks (its summary: max, max/min, avg, total) and the events that split the work
_LOG_TOTALS = {"messages": r"MPI Msg Count:\s+\S+\s+\S+\s+\S+\s+(\S+)",
               "bytes": r"MPI Msg Len \(bytes\):\s+\S+\s+\S+\s+\S+\s+(\S+)",
               "reductions": r"MPI Reductions:\s+(\S+)"}
_LOG_EVENTS = ("SNESJacobianEval", "TSFunctionEval", "PCApply", "MatLUFactorNum", "MatSolve", "VecScatterBegin",
               "VecNorm")


def _petsc_log(path: Path) -> dict:
    text = path.read_text()
    out = {k: float(m.group(1)) for k, rx in _LOG_TOTALS.items() if (m := re.search(rx, text))}
    for ev in _LOG_EVENTS:  # name, count (max, ratio), time (max, max/min ratio), flop (max, ratio), messages...
        hit = re.search(rf"^{ev}\s+(\d+)\s+\S+\s+(\S+)\s+(\S+)\s+\S+\s+\S+\s+(\S+)\s+(\S+)\s+(\S+)",
                        text, re.M)
        if hit:
            out[ev] = {"count": int(hit.group(1)), "time_max_s": float(hit.group(2)),
                       "time_ratio": float(hit.group(3)), "messages": float(hit.group(4)),
                       "avg_bytes": float(hit.group(5)), "reductions": float(hit.group(6))}
    return out


def run_scaling(ranks: int, *, window: float, theta: int, cells_x: int, profile: bool = False) -> dict:
    tmp = Path(tempfile.mkdtemp())
    script = tmp / "p2d_2d_scaling.py"
    log = tmp / "petsc.log"
    script.write_text(SCALING.format(path=str(ROOT / "inputs" / "p2d-mnfepba-2d.yaml"), theta=theta,
                                     cells_x=cells_x, window=window, log=str(log),
                                     profile=profile))
    out = launch(ranks, [sys.executable, str(script)], capture_output=True, text=True, check=True)
    res = json.loads(out.stdout.strip().splitlines()[-1])
    res["petsc"] = _petsc_log(log)
    return res


def _report_scaling(n: int, r: dict, base: dict) -> None:
    steps = max(r["steps"], 1)
    cpu = max(rk["cpu"] for rk in r["ranks"])
    print(f"{n} rank(s): {r['unknowns']} unknowns ({r['nodes']} nodes x {r['dof']}, {r['colours']} colours), "
          f"{r['steps']} steps to t = {r['t_end']:.3g} s, {r['newton']} Newton, {r['linear']} linear, "
          f"{r['wall']:.1f} s wall, {r['wall'] / steps:.2f} s/step, speed-up {base['wall'] / r['wall']:.2f}; "
          f"CPU of the busiest rank {cpu:.1f} s, CPU speed-up {base['cpu'] / cpu:.2f}; V_end {r['V_end']:.6f} V",
          flush=True)
    for k, rk in enumerate(r["ranks"]):
        c = rk["clock"]
        busy, busy_cpu = sum(v[1] for v in c.values()), sum(v[2] for v in c.values())
        parts = ", ".join(f"{name} {c[name][1]:.1f} / {c[name][2]:.1f} s ({c[name][0]} calls)"
                          for name in ("residual", "condense", "pc_apply") if name in c)
        py = ", ".join(f"{name} {v[0] / steps:.1f} x {v[1] / max(v[0], 1):.0f} B"
                       for name, v in sorted(rk["mpi4py"].items()))
        print(f"  rank {k}: {rk['nodes']} nodes, {rk['particle_unknowns']} particle unknowns; wall / CPU "
              f"{rk['wall']:.1f} / {rk['cpu']:.1f} s: {parts}, "
              f"rest {rk['wall'] - busy:.1f} / {rk['cpu'] - busy_cpu:.1f} s; "
              f"mpi4py collectives per step: {py or 'none'}", flush=True)
        if rk["top"]:
            print("    CPU by function (cProfile tottime): "
                  + "; ".join(f"{name} {t:.2f} s" for t, name in rk["top"]), flush=True)
    p = r["petsc"]
    print(f"  PETSc per step (all ranks, counted): {p.get('messages', 0) / steps:.1f} messages, "
          f"{p.get('bytes', 0) / steps / 1e3:.1f} kB, {p.get('reductions', 0) / steps:.1f} reductions; by event: "
          + "; ".join(f"{e} {p[e]['count'] / steps:.1f}/step max {p[e]['time_max_s']:.2f} s (max/min "
                      f"{p[e]['time_ratio']:.2f}), {p[e]['messages'] / steps:.1f} msgs x {p[e]['avg_bytes']:.0f} B"
                      for e in _LOG_EVENTS if e in p), flush=True)


def scaling(args) -> None:
    print(f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())}", flush=True)
    for pair in range(args.repeat):
        base = None
        for n in (1, 2):
            r = run_scaling(n, window=args.window, theta=args.theta, cells_x=args.cells_x or 100,
                            profile=args.profile)
            base = base or {"wall": r["wall"], "cpu": max(rk["cpu"] for rk in r["ranks"])}
            print(f"pair {pair + 1}, load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}:", flush=True)
            _report_scaling(n, r, base)


def run(ranks: int, *, window: float, theta: int = 0, cells_x: int = 0, full: bool = False) -> dict:
    script = Path(tempfile.mkdtemp()) / "p2d_2d.py"
    script.write_text(RUN.format(path=str(ROOT / "inputs" / "p2d-mnfepba-2d.yaml"), theta=theta, cells_x=cells_x,
                                 full=full, window=window))
    out = launch(ranks, [sys.executable, str(script)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--window", type=float, default=None,
                    help="simulated seconds of the 0.1C charge (default 1200; --scaling 0.02)")
    ap.add_argument("--full", action="store_true", help="the whole protocol (charge + discharge) instead")
    ap.add_argument("--thetas", type=int, nargs="*", default=[4, 8, 16])
    ap.add_argument("--cells-x", type=int, default=0, help="cathode x-cells (default: the input's)")
    ap.add_argument("--scaling", action="store_true", help="1 vs 2 ranks on a large cell instead (see 3.)")
    ap.add_argument("--theta", type=int, default=20, help="--scaling: polar cells of the particle")
    ap.add_argument("--repeat", type=int, default=2, help="--scaling: 1-and-2-rank pairs")
    ap.add_argument("--profile", action="store_true", help="--scaling: each rank's CPU by function (cProfile)")
    args = ap.parse_args()
    if args.scaling:
        args.window = 0.02 if args.window is None else args.window
        scaling(args)
        return
    args.window = 1200.0 if args.window is None else args.window
    base = None
    for n in (1, 2):
        r = run(n, window=args.window, cells_x=args.cells_x, full=args.full)
        base = base or r["wall"]
        print(f"{n} rank(s): {r['wall']:.2f} s wall, {r['steps']} steps, {r['newton']} Newton, {r['linear']} linear, "
              f"{r['unknowns']} unknowns (particle per rank {r['particle_unknowns_per_rank']}), ends {r['ends']}, "
              f"t_end {r['t_end']:.0f} s, V_end {r['V_end']:.4f} V, speed-up {base / r['wall']:.2f}", flush=True)
    for theta in args.thetas:
        r = run(1, window=args.window, theta=theta, cells_x=args.cells_x)
        print(f"cells_theta {theta:3d}: {r['unknowns']} unknowns, {r['steps']} steps, {r['wall']:.2f} s, "
              f"{1e3 * r['wall'] / max(r['steps'], 1):.1f} ms/step, {r['newton'] / max(r['steps'], 1):.2f} Newton/step",
              flush=True)


if __name__ == "__main__":
    main()
