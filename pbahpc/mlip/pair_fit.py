"""Least-squares fit of the lattice-gas parameters (pair and site energy) to labelled data.

The training set grows over iterations; each rank of the trainer group assembles the normal
equations of its share of the data and the group sums them (Allreduce).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..driver.component import Inbox, StepContext


class PairFit:
    def __init__(self, cfg, group, comm, seed):
        self.ridge = cfg.trainer.ridge
        self.X = np.zeros((0, 2))
        self.E = np.zeros(0)
        self.history: list[tuple[float, float, float]] = []  # (pair_eV, site_eV, rmse_eV)

    def step(self, ctx: StepContext, inbox: Inbox) -> dict[str, Any]:
        for _, lab in sorted(inbox.get("labels", {}).items()):
            if lab is not None:
                self.X = np.vstack([self.X, np.column_stack([lab["pairs"], lab["N"]])])
                self.E = np.concatenate([self.E, lab["E_eV"]])
        from mpi4py import MPI

        rank, size = ctx.comm.Get_rank(), ctx.comm.Get_size()
        Xr, Er = self.X[rank::size], self.E[rank::size]
        A, b = Xr.T @ Xr, Xr.T @ Er
        ctx.comm.Allreduce(MPI.IN_PLACE, A)
        ctx.comm.Allreduce(MPI.IN_PLACE, b)
        coef = np.linalg.solve(A + self.ridge * np.eye(2), b) if len(self.E) else np.zeros(2)
        rmse = float(np.sqrt(np.mean((self.X @ coef - self.E) ** 2))) if len(self.E) else 0.0
        self.history.append((float(coef[0]), float(coef[1]), rmse))
        ctx.log.info("fit on %d labels: pair %.6f eV, site %.6f eV, rmse %.3g eV", len(self.E), *self.history[-1])
        potential = {"pair_eV": float(coef[0]), "site_eV": float(coef[1])}
        return {"potential": potential, "parameters": potential,
                "summary": {"labels": len(self.E), "rmse": f"{rmse:.3g} eV"}}

    def state(self) -> dict[str, Any]:
        return {"X": self.X, "E": self.E, "history": np.array(self.history, dtype=np.float64).reshape(-1, 3)}

    def load_state(self, s: dict[str, Any]) -> None:
        self.X, self.E = s["X"], s["E"]
        self.history = [tuple(row) for row in s["history"]]

    def results(self) -> dict[str, Any]:
        return {"history": np.array(self.history, dtype=np.float64).reshape(-1, 3),
                "columns": "pair_eV site_eV rmse_eV", "n_train": len(self.E)}
