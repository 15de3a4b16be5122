"""``pbahpc p2d PARAMS.yaml --out DIR``: one cell simulation without a campaign.

Rank 0 reads and validates the parameter set and broadcasts it; the cell runs on the communicator
passed in. Outputs (rank 0): DIR/p2d.h5 (see output.py) and the plots. A stop signal ends the run
at the next check (every few steps), writes what was computed with ``complete = 0`` and exits 75.
"""
from __future__ import annotations

import sys
import time
import warnings
from pathlib import Path

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_STOPPED = 0, 1, 2, 75


def run_p2d(params_path: Path, out_dir: Path, comm, stop, plots: bool = True, progress_s: float = 10.0) -> int:
    """``stop.requested`` turns true on a stop signal (``pbahpc.driver.signals.StopSignal``, entered by the caller)."""
    import numpy as np

    from ..config import ConfigError, read_on_root
    from .cell import P2DCell
    from .output import plot_result, write_result
    from .parameters import load_parameters

    rank = comm.Get_rank()

    def read():
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            ps = load_parameters(params_path)
        for w in caught:
            print(f"pbahpc p2d: warning: {w.message}", file=sys.stderr)
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError("--out", f"cannot create directory {out_dir} ({exc.strerror})") from None
        return ps

    ps = read_on_root(comm, read, "pbahpc p2d")
    if ps is None:
        return EXIT_USAGE
    cell = P2DCell(ps.cell, ps.solver, comm)
    steps = ps.protocol
    last = [time.monotonic()]

    def report(k, t, V, I):
        if rank == 0 and time.monotonic() - last[0] >= progress_s:
            last[0] = time.monotonic()
            print(f"[p2d] step {k + 1}/{len(steps)} {steps[k].label}: t = {t:9.1f} s  V = {V:.4f} V  "
                  f"I = {I / cell.i1c:+.3f} C", file=sys.stderr, flush=True)

    cell.progress = report
    if rank == 0:
        print(f"[p2d] {params_path}: {cell.n_nodes} x-cells x {cell.dof} unknowns on {comm.Get_size()} rank(s), "
              f"1C = {cell.i1c:.4g} A/m^2, {len(steps)} step(s)", file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    cell.should_stop = lambda: comm.allreduce(stop.requested)
    try:
        complete = cell.advance(steps)
    except RuntimeError as exc:
        if rank == 0:
            print(f"pbahpc p2d: {exc}", file=sys.stderr)
        return EXIT_FAILED
    wall = time.perf_counter() - t0
    result = cell.result()
    if rank == 0:
        meta = {"parameters": str(params_path.resolve()), "ranks": comm.Get_size(), "wall_s": wall,
                "complete": int(complete), "step_ends": ",".join(cell.ends),
                "temperature_K": ps.cell.temperature_K,
                **{f"derived_{k}": v for k, v in ps.derived.items() if isinstance(v, (int, float))}}
        if "binodal_x" in ps.derived.get("cathode", {}):  # phase-separating: a particle has transformed past
            meta["cathode_transform_x"] = float(np.mean(ps.derived["cathode"]["binodal_x"]))  # the binodals' middle
        write_result(out_dir / "p2d.h5", result, meta, record_positions=ps.solver.record_positions)
        files = plot_result(result, out_dir, record_positions=ps.solver.record_positions,
                            transform_x=meta.get("cathode_transform_x")) if plots else []
        V = result["voltage_V"]
        print(f"[p2d] {'done' if complete else 'stopped'} in {wall:.1f} s: {len(V)} steps, ends {cell.ends}, "
              f"final V = {V[-1]:.4f} V, throughput {result['throughput_Ah_m2'][-1]:.4g} Ah/m^2 -> "
              f"{out_dir / 'p2d.h5'}" + (f" + {len(files)} plots" if files else ""), file=sys.stderr)
    return EXIT_OK if complete else EXIT_STOPPED
