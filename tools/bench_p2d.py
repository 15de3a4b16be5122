"""P2D cell solver speed, everything measured in this run on this machine:

1. the MnFePBA | hard-carbon charges of inputs/p2d-mnfepba.yaml at 0.1C and 0.5C (default mesh);
2. the all-Fickian cell (tests' PyBaMM comparison cell) vs PyBaMM's DFN with IDAKLU on the same mesh
   and comparable tolerances: wall and CPU times (our build + run vs PyBaMM's build + solve), their
   ratios (goal <= 1.0, issue 17) and the largest voltage difference;
3. 1 -> 2 rank scaling of the Fickian cell on a fine x mesh (220k unknowns; mpiexec subprocesses).

    .venv/bin/python tools/bench_p2d.py [--skip-mnfepba] [--fine-cells 400]
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from pbahpc.scaling.launch import launch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the PyBaMM reference and its test cell live with the tests


def mnfepba(rates) -> None:
    from mpi4py import MPI

    from pbahpc.continuum.cell import P2DCell
    from pbahpc.continuum.parameters import load_parameters

    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ps = load_parameters(ROOT / "inputs" / "p2d-mnfepba.yaml")
    for rate in rates:
        step = dataclasses.replace(ps.protocol[0], c_rate=-rate, label=f"{rate}C charge")
        cell = P2DCell(ps.cell, ps.solver, MPI.COMM_SELF)
        t0 = time.perf_counter()
        ends = cell.run([step])
        wall = time.perf_counter() - t0
        r = cell.result()
        print(f"MnFePBA {rate:4.2f}C charge: {wall:7.2f} s wall, {len(r['time_s'])} steps, ends {ends}, "
              f"{r['time_s'][-1] / 3600:.2f} h simulated, final V {r['voltage_V'][-1]:.3f} V, "
              f"{cell.n_nodes} x {cell.dof} unknowns", flush=True)


def versus_pybamm(rate: float, cells_r: int, rtol: float) -> None:
    from mpi4py import MPI
    from pybamm_reference import cell_points, pybamm_dfn
    from test_pybamm_reference import CUTOFF_V, make_cell

    from pbahpc.continuum.cell import P2DCell
    from pbahpc.continuum.model import SolverSettings, Step

    cell = make_cell(None)
    cell = dataclasses.replace(cell, anode=dataclasses.replace(cell.anode, cells_r=cells_r),
                               cathode=dataclasses.replace(cell.cathode, cells_r=cells_r))
    # CPU time too (process-wide, PyBaMM's threads included): on a shared box the wall ratio follows the load
    c0, t0 = time.process_time(), time.perf_counter()
    ours = P2DCell(cell, SolverSettings(rtol=rtol), MPI.COMM_SELF)
    ours.run([Step("current", c_rate=rate, cutoff_V=CUTOFF_V)])
    ours_s, ours_cpu = time.perf_counter() - t0, time.process_time() - c0
    r = ours.result()
    c0 = time.process_time()
    ref = pybamm_dfn(cell, rate, CUTOFF_V, points=cell_points(cell), rtol=rtol, atol=rtol * 1e-2)
    ref_cpu = time.process_time() - c0
    ref_s = ref["build_s"] + ref["solve_s"]
    # (0, 99%] of the discharge: at the cutoff itself V falls so steeply that a 0.05 s difference in
    # the end time alone is millivolts; the end times are compared separately
    t = np.linspace(0.0, 0.99 * min(r["time_s"][-1], ref["t_s"][-1]), 500)[1:]  # t = 0: the rest state
    dv = np.interp(t, r["time_s"], r["voltage_V"]) - np.interp(t, ref["t_s"], ref["voltage_V"])
    print(f"Fickian DFN {rate:g}C discharge, {ours.n_nodes} x-cells, {cells_r} r-cells, rtol {rtol:g}: "
          f"pbahpc {ours_s:.2f} s ({len(r['time_s'])} steps), PyBaMM IDAKLU {ref_s:.2f} s "
          f"(build {ref['build_s']:.2f} + solve {ref['solve_s']:.2f}), ratio {ours_s / ref_s:.2f} "
          f"(vs solve only {ours_s / ref['solve_s']:.2f}), CPU {ours_cpu:.2f} / {ref_cpu:.2f} s = "
          f"{ours_cpu / ref_cpu:.2f}; max |dV| {1e3 * np.abs(dv).max():.3f} mV, "
          f"end times {r['time_s'][-1]:.2f} / {ref['t_s'][-1]:.2f} s", flush=True)


SCALING = """
import json, sys, time, dataclasses
sys.path.insert(0, {tests!r})
from mpi4py import MPI
from test_pybamm_reference import CUTOFF_V, make_cell
from pbahpc.continuum.cell import P2DCell
from pbahpc.continuum.model import SolverSettings, Step
n = {cells}
cell = make_cell(None)
cell = dataclasses.replace(cell, anode=dataclasses.replace(cell.anode, cells_x=n),
                           separator=dataclasses.replace(cell.separator, cells_x=n // 2),
                           cathode=dataclasses.replace(cell.cathode, cells_x=n))
m = P2DCell(cell, SolverSettings(), MPI.COMM_WORLD)
t0 = time.perf_counter()
m.run([Step("current", c_rate=1.0, cutoff_V=CUTOFF_V, duration_s={duration})])
wall = MPI.COMM_WORLD.allreduce(time.perf_counter() - t0, op=MPI.MAX)
if MPI.COMM_WORLD.rank == 0:
    r = m.result()
    print(json.dumps({{"wall": wall, "steps": len(r["time_s"]), "t_end": float(r["time_s"][-1]),
                      "unknowns": m.n_nodes * m.dof}}), flush=True)
"""


def scaling(cells: int, duration_s: float, ranks=(1, 2)) -> None:
    script = Path(tempfile.mkdtemp()) / "p2d_scaling.py"
    script.write_text(SCALING.format(tests=str(ROOT / "tests"), cells=cells, duration=duration_s))
    base = None
    for n in ranks:
        out = launch(n, [sys.executable, str(script)], capture_output=True, text=True, check=True)
        res = json.loads(out.stdout.strip().splitlines()[-1])
        base = base or res["wall"]
        print(f"fine mesh, first {duration_s:g} s of a 1C discharge, {res['unknowns']} unknowns, {n} rank(s): {res['wall']:.2f} s, "
              f"{res['steps']} steps, t_end {res['t_end']:.1f} s, speed-up {base / res['wall']:.2f}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--skip-mnfepba", action="store_true")
    ap.add_argument("--rates", type=float, nargs="+", default=[0.1, 0.5])
    ap.add_argument("--fine-cells", type=int, default=2000, help="x-cells per electrode for the scaling run")
    ap.add_argument("--fine-duration", type=float, default=600.0, help="simulated seconds of the scaling run")
    args = ap.parse_args()
    if not args.skip_mnfepba:
        mnfepba(args.rates)
    for rtol in (1e-6, 1e-8):
        versus_pybamm(1.0, 20, rtol)
    scaling(args.fine_cells, args.fine_duration)


if __name__ == "__main__":
    main()
