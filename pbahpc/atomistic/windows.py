"""Schedule of harmonic-bias windows (Eq. 7) with per-window convergence and resampling rounds.

Windows N_t are visited in the configured order, ``rounds`` times; each starts from the state the
previous one left. A window closes when it has at least ``min_cycles`` samples and the mean N of the
first and second half of them differ by less than ``tolerance_N`` (no drift left), or at ``max_cycles``.
After the last window the schedule stays on it.
"""
from __future__ import annotations

from typing import Any

import numpy as np

SUMMARY_COLUMNS = ("round", "window", "target_N", "cycles", "mean_N", "std_N", "converged")


class WindowSchedule:
    def __init__(self, bias):
        self.bias = bias
        self.position = 0  # index into the flattened (round, window) sequence
        self.samples: list[int] = []
        self.summary: list[tuple] = []

    @property
    def length(self) -> int:
        return len(self.bias.targets_N) * self.bias.rounds

    @property
    def finished(self) -> bool:
        return self.position >= self.length

    @property
    def target(self) -> int | None:
        if not self.bias.targets_N:
            return None
        targets = self.bias.targets_N
        return targets[min(self.position, self.length - 1) % len(targets)]

    def record(self, n: int) -> None:
        """Add one cycle's N; close the window when it has converged or used its cycles."""
        if self.finished or not self.bias.targets_N:
            return
        self.samples.append(n)
        k = len(self.samples)
        drift = abs(np.mean(self.samples[: k // 2]) - np.mean(self.samples[k // 2:])) if k >= 2 else np.inf
        converged = k >= self.bias.min_cycles and drift < self.bias.tolerance_N
        if converged or k >= self.bias.max_cycles:
            r, w = divmod(self.position, len(self.bias.targets_N))
            self.summary.append((r, w, self.target, k, float(np.mean(self.samples)), float(np.std(self.samples)),
                                 int(converged)))
            self.position += 1
            self.samples = []

    def state(self) -> dict[str, Any]:
        return {"position": self.position, "samples": np.array(self.samples, dtype=np.int64),
                "summary": np.array(self.summary, dtype=np.float64).reshape(-1, len(SUMMARY_COLUMNS))}

    def load_state(self, s: dict[str, Any]) -> None:
        self.position = int(s["position"])
        self.samples = [int(v) for v in s["samples"]]
        self.summary = [tuple(row) for row in s["summary"]]
