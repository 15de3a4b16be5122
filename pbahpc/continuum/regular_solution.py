"""Mean-field (regular-solution) chemical potential of the lattice gas and its spinodal.

mu(x) = e_site + z J x + kT ln(x / (1 - x)) with z = 6 neighbours: the light continuum engine that
consumes the trainer's parameters until the P2D solver is chosen. The x grid is split over the group.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..driver.component import Inbox, StepContext
from ..units import KB_EV_PER_K

Z_NEIGHBOURS = 6


class RegularSolution:
    def __init__(self, cfg, group, comm, seed):
        self.points, self.T_K = cfg.continuum.points, cfg.continuum.temperature_K
        self.params: dict[str, float] | None = None
        self.mu: np.ndarray = np.zeros(0)
        self.spinodal = np.array([np.nan, np.nan])

    def step(self, ctx: StepContext, inbox: Inbox) -> dict[str, Any]:
        for payload in inbox.get("parameters", {}).values():
            if payload is None:  # a trainer that sends no parameters (e.g. mtp)
                continue
            self.params = {k: float(v) for k, v in payload.items()}
        if self.params is None:
            return {}
        kT = KB_EV_PER_K * self.T_K
        x = np.linspace(0.0, 1.0, self.points + 2)[1:-1]
        rank, size = ctx.comm.Get_rank(), ctx.comm.Get_size()
        chunks = np.array_split(np.arange(x.size), size)
        mine = x[chunks[rank]]
        part = self.params["site_eV"] + Z_NEIGHBOURS * self.params["pair_eV"] * mine + kT * np.log(mine / (1 - mine))
        self.mu = np.concatenate(ctx.comm.allgather(part))
        # d mu/dx = zJ + kT / (x (1 - x)) = 0  ->  x (1 - x) = -kT / (zJ)
        c = -kT / (Z_NEIGHBOURS * self.params["pair_eV"]) if self.params["pair_eV"] < 0 else np.inf
        if c <= 0.25:
            r = np.sqrt(0.25 - c)
            self.spinodal = np.array([0.5 - r, 0.5 + r])
        else:
            self.spinodal = np.array([np.nan, np.nan])
        ctx.log.info("spinodal x = %s", self.spinodal)
        return {"summary": {"spinodal": "x = " + ", ".join(f"{x:.3f}" for x in self.spinodal)}}

    def state(self) -> dict[str, Any]:
        return {"params": dict(self.params) if self.params else {}, "mu": self.mu, "spinodal": self.spinodal}

    def load_state(self, s: dict[str, Any]) -> None:
        self.params = {k: float(v) for k, v in s["params"].items()} or None
        self.mu, self.spinodal = s["mu"], s["spinodal"]

    def results(self) -> dict[str, Any]:
        return {"mu_eV": self.mu, "spinodal_x": self.spinodal, "T_K": self.T_K}
