"""The 2-D particle cell (inputs/p2d-mnfepba-2d.yaml) on this machine, everything measured in this run:

1. a window of its 0.1C charge (or with --full the whole charge + discharge protocol) on 1 and 2 ranks
   (mpiexec subprocesses): wall time, time steps, Newton and linear iterations, unknowns, speed-up, and
   the per-rank split of the particle unknowns (what the 64-rank projection needs: the particle work
   is local, the condensed 4-unknowns-per-node system is factored redundantly);
2. cost per time step vs the particle mesh (cells_theta x cells_r) on 1 rank, same window.

    .venv/bin/python tools/bench_p2d_2d.py [--window 1200] [--full] [--thetas 4 8 16]
"""
from __future__ import annotations

import argparse
import json
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


def run(ranks: int, *, window: float, theta: int = 0, cells_x: int = 0, full: bool = False) -> dict:
    script = Path(tempfile.mkdtemp()) / "p2d_2d.py"
    script.write_text(RUN.format(path=str(ROOT / "inputs" / "p2d-mnfepba-2d.yaml"), theta=theta, cells_x=cells_x,
                                 full=full, window=window))
    out = launch(ranks, [sys.executable, str(script)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--window", type=float, default=1200.0, help="simulated seconds of the 0.1C charge")
    ap.add_argument("--full", action="store_true", help="the whole protocol (charge + discharge) instead")
    ap.add_argument("--thetas", type=int, nargs="*", default=[4, 8, 16])
    ap.add_argument("--cells-x", type=int, default=0, help="cathode x-cells (default: the input's)")
    args = ap.parse_args()
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
