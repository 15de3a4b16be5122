"""Grand-canonical lattice gas: Na on the sites of a periodic simple-cubic lattice.

H = J * sum_<ij> n_i n_j + (e_site - mu) * sum_i n_i   (eV), sampled with checkerboard Metropolis.
It is the light engine for the replica role (tests, smoke campaigns) until a LAMMPS engine is chosen;
each rank of a replica runs an independent chain, and the replica averages over its ranks.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..checkpoint import decode_rng, encode_rng
from ..driver.component import Inbox, StepContext
from ..units import KB_EV_PER_K


def neighbour_count(occ: np.ndarray) -> np.ndarray:
    """Occupied nearest neighbours of every site (periodic)."""
    nn = np.zeros(occ.shape, dtype=np.int16)
    for axis in range(3):
        nn += np.roll(occ, 1, axis)
        nn += np.roll(occ, -1, axis)
    return nn


def descriptors(occ: np.ndarray) -> tuple[int, int]:
    """(occupied nearest-neighbour pairs, occupied sites): the features the energy is linear in."""
    pairs = sum(int(np.sum(occ & np.roll(occ, 1, axis))) for axis in range(3))
    return pairs, int(occ.sum())


def energy_eV(occ: np.ndarray, pair_eV: float, site_eV: float) -> float:
    pairs, n = descriptors(occ)
    return pair_eV * pairs + site_eV * n


class LatticeGasReplica:
    def __init__(self, cfg, group, comm, seed: np.random.SeedSequence):
        rc = cfg.replicas
        self.T_K, self.mu_eV = rc.point(group.index)
        self.cycles, self.sweeps, L = rc.cycles, rc.sweeps_per_cycle, rc.lattice
        self.rng = np.random.Generator(np.random.PCG64(seed.spawn(comm.Get_size())[comm.Get_rank()]))
        self.occ = np.zeros((L, L, L), dtype=np.uint8)
        idx = np.indices(self.occ.shape).sum(axis=0)
        self.parity = [(idx % 2) == p for p in (0, 1)]
        self.potential = {"pair_eV": 0.0, "site_eV": 0.0}  # until the trainer sends one
        self.cycle = 0  # cycles done in the current iteration
        self.snapshots: list[np.ndarray] = []
        self.history = {"N": [], "E_eV": []}  # replica means per finished cycle

    def _sweep(self) -> None:
        beta = 1.0 / (KB_EV_PER_K * self.T_K)
        J, e = self.potential["pair_eV"], self.potential["site_eV"] - self.mu_eV
        for mask in self.parity:  # sites of one parity have no neighbours of the same parity
            nn = neighbour_count(self.occ)
            dE = (1 - 2 * self.occ.astype(np.int8)) * (J * nn + e)
            accept = mask & (self.rng.random(self.occ.shape) < np.exp(np.minimum(0.0, -beta * dE)))
            self.occ ^= accept.astype(np.uint8)

    def step(self, ctx: StepContext, inbox: Inbox) -> dict[str, Any] | None:
        for payload in inbox.get("potential", {}).values():
            self.potential = {k: float(v) for k, v in payload.items()}
        while self.cycle < self.cycles:
            if ctx.stop_requested():
                return None
            for _ in range(self.sweeps):
                self._sweep()
            pairs, n = descriptors(self.occ)
            e = self.potential["pair_eV"] * pairs + self.potential["site_eV"] * n
            size = ctx.comm.Get_size()
            self.history["N"].append(ctx.comm.allreduce(n) / size)
            self.history["E_eV"].append(ctx.comm.allreduce(e) / size)
            self.snapshots.append(self.occ.reshape(-1).copy())
            self.cycle += 1
            ctx.progress(cycles=(self.cycle, self.cycles))
        ctx.log.info("T=%g K mu=%g eV: <N>=%.2f over %d cycles", self.T_K, self.mu_eV,
                     float(np.mean(self.history["N"][-self.cycles:])), self.cycles)
        out = {"candidates": np.array(self.snapshots), "summary": {"cycles": self.cycles}}
        self.cycle, self.snapshots = 0, []
        return out

    def state(self) -> dict[str, Any]:
        return {"rng": encode_rng(self.rng), "occ": self.occ, "potential": dict(self.potential),
                "cycle": self.cycle,
                "snapshots": np.array(self.snapshots).reshape(len(self.snapshots), self.occ.size),
                "history": {k: np.array(v, dtype=np.float64) for k, v in self.history.items()}}

    def load_state(self, s: dict[str, Any]) -> None:
        self.rng, self.occ, self.cycle = decode_rng(s["rng"]), s["occ"], int(s["cycle"])
        self.potential = {k: float(v) for k, v in s["potential"].items()}
        self.snapshots = list(s["snapshots"])
        self.history = {k: list(v) for k, v in s["history"].items()}

    def results(self) -> dict[str, Any]:
        return {"T_K": self.T_K, "mu_eV": self.mu_eV,
                **{k: np.array(v, dtype=np.float64) for k, v in self.history.items()}}
