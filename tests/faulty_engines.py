"""Engines that fail on purpose, loaded by campaigns as ``faulty_engines:...`` (tests/ is on PYTHONPATH)."""
from __future__ import annotations

from pbahpc.atomistic.lattice_gas import LatticeGasReplica


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
