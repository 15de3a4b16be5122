"""Engines that fail on purpose or report what the driver tells them, loaded by campaigns as
``faulty_engines:...`` (tests/ is on PYTHONPATH)."""
from __future__ import annotations

import numpy as np

from pbahpc.atomistic.lattice_gas import LatticeGasReplica
from pbahpc.continuum.regular_solution import RegularSolution
from pbahpc.oracle.lattice_gas import LatticeGasOracle


class FailingReplica(LatticeGasReplica):
    """Raises in iteration 1 on the last rank of the last replica. If that replica has more ranks,
    its other ranks are left blocked in the per-cycle allreduce, which only an abort can end."""

    def __init__(self, cfg, group, comm, seed):
        super().__init__(cfg, group, comm, seed)
        self.fails = group.index == cfg.replicas.count - 1 and comm.Get_rank() == comm.Get_size() - 1

    def step(self, ctx, inbox):
        if ctx.iteration == 1 and self.fails:
            raise FloatingPointError("injected failure")
        return super().step(ctx, inbox)


class ConvergingOracle(LatticeGasOracle):
    """Reports convergence in iteration 1 (as the MTP trainer's select does once nothing is selected)."""

    def step(self, ctx, inbox):
        return {**super().step(ctx, inbox), "converged": ctx.iteration == 1}


class RecordingContinuum(RegularSolution):
    """Records ``ctx.last_iteration`` of every step: results ``last_iteration``, one 0/1 per iteration."""

    def __init__(self, cfg, group, comm, seed):
        super().__init__(cfg, group, comm, seed)
        self.last: list[int] = []

    def step(self, ctx, inbox):
        self.last.append(int(ctx.last_iteration))
        return super().step(ctx, inbox)

    def results(self):
        return {**super().results(), "last_iteration": np.array(self.last, dtype=np.int64)}
