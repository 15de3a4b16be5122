"""Reference labels for lattice-gas configurations: the exact energy with the configured parameters."""
from __future__ import annotations

from typing import Any

import numpy as np

from ..atomistic.lattice_gas import descriptors
from ..driver.component import Inbox, StepContext, selected_batches


class LatticeGasOracle:
    def __init__(self, cfg, group, comm, seed):
        self.pair_eV, self.site_eV, self.L = cfg.oracle.pair_eV, cfg.oracle.site_eV, cfg.replicas.lattice
        self.labelled = 0

    def step(self, ctx: StepContext, inbox: Inbox) -> dict[str, Any]:
        configs = [c for _, batch in selected_batches(inbox) for c in batch]
        rank, size = ctx.comm.Get_rank(), ctx.comm.Get_size()
        mine = {i: descriptors(configs[i].reshape((self.L,) * 3)) for i in range(rank, len(configs), size)}
        merged: dict[int, tuple[int, int]] = {}
        for part in ctx.comm.gather(mine, root=0) or []:
            merged.update(part)
        self.labelled += len(configs)
        if rank != 0:
            return {"labels": None}
        X = np.array([merged[i] for i in range(len(configs))], dtype=np.float64).reshape(-1, 2)
        E = X @ np.array([self.pair_eV, self.site_eV])
        ctx.log.info("labelled %d configurations", len(configs))
        return {"labels": {"pairs": X[:, 0], "N": X[:, 1], "E_eV": E}, "summary": {"labelled": len(configs)}}

    def state(self) -> dict[str, Any]:
        return {"labelled": self.labelled}

    def load_state(self, s: dict[str, Any]) -> None:
        self.labelled = int(s["labelled"])

    def results(self) -> dict[str, Any]:
        return {"labelled": self.labelled}
