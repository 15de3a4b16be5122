"""The P2D cell as the campaign's continuum engine (``continuum.engine: p2d``).

Each iteration runs the parameter set's protocol from the initial state on the continuum group's
communicator. A stop request is checked every few time steps; the solver state (fields, time,
protocol position, records) goes into the driver's checkpoint and the run continues from there.
Each finished iteration writes run_dir/continuum/p2d-iter-<k>.h5 (output.py) on the group root.

With a properties group that fills a template (``properties.p2d_template``), the engine waits for its
``cell_parameters`` ({"path": parameter file}) and runs that file's protocol once, in the iteration it
arrives (the campaign's last).
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from ..driver.component import Inbox, StepContext


class P2DEngine:
    def __init__(self, cfg, group, comm, seed):
        self.out_dir = Path(cfg.campaign.run_dir) / "continuum"
        self.comm, self.params = comm, None
        self._use(cfg.continuum.parameters)
        self.iteration = -1  # the iteration whose protocol the cell is running
        self.wait = bool(cfg.layout.properties.ranks and cfg.properties.p2d_template)

    def _use(self, path: str) -> None:
        """Build the cell from a parameter file, unless it is the one in use (collective)."""
        from .cell import P2DCell
        from .parameters import load_parameters

        if self.params is not None and Path(path) == Path(self.params.source):
            return
        with warnings.catch_warnings():  # the inflation warning is for `pbahpc p2d`, not every campaign rank
            warnings.simplefilter("ignore")
            self.params = load_parameters(path)
        self.cell = P2DCell(self.params.cell, self.params.solver, self.comm)

    def step(self, ctx: StepContext, inbox: Inbox) -> dict[str, Any] | None:
        filled = [p["path"] for _, p in sorted(inbox.get("cell_parameters", {}).items()) if p]
        if self.wait and not filled:
            return {}
        if filled:
            self._use(filled[-1])
        if self.iteration != ctx.iteration:
            self.cell.set_initial_state()
            self.iteration = ctx.iteration
        self.cell.should_stop = ctx.stop_requested
        steps = self.params.protocol
        self.cell.progress = lambda k, t, V, I: ctx.progress(step=f"{k + 1}/{len(steps)} {steps[k].label}",
                                                             t=f"{t:.1f} s", voltage=f"{V:.4f} V")
        if not self.cell.advance(steps):
            return None
        result = self.cell.result()
        if ctx.comm.Get_rank() == 0:
            from .output import write_result

            self.out_dir.mkdir(parents=True, exist_ok=True)
            write_result(self.out_dir / f"p2d-iter-{ctx.iteration:06d}.h5", result,
                         {"parameters": str(self.params.source), "iteration": ctx.iteration,
                          "step_ends": ",".join(self.cell.ends)},
                         record_positions=self.params.solver.record_positions)
        ctx.log.info("p2d: protocol done at t = %.1f s, V = %.4f V (%s)", self.cell.time_s,
                     result["voltage_V"][-1], ",".join(self.cell.ends))
        return {"summary": {"t": f"{self.cell.time_s:.1f} s", "final voltage": f"{result['voltage_V'][-1]:.4f} V",
                            "steps ended by": ",".join(self.cell.ends)}}

    def state(self) -> dict[str, Any]:
        return {"iteration": self.iteration, "cell": self.cell.state(), "parameters": str(self.params.source)}

    def load_state(self, s: dict[str, Any]) -> None:
        self.iteration = int(s["iteration"])
        self._use(str(s.get("parameters", self.params.source)))
        self.cell.load_state(s["cell"])

    def results(self) -> dict[str, Any]:
        r = self.cell.result()
        return {k: r[k] for k in ("time_s", "voltage_V", "current_A_m2", "step", "throughput_Ah_m2")}
