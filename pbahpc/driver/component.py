"""The contract between the driver and the engines that fill each role.

An engine is constructed once per rank of its group by the factory that ``pbahpc.config.engines``
names for (role, engine name), imported only then. The driver calls ``step`` in the role's stage, ``state``/``load_state`` at
checkpoints, ``results`` at the end. States are nested dicts of numpy arrays, scalars and strings
(see ``pbahpc.checkpoint``); RNG states go through ``encode_rng``/``decode_rng``.
"""
from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from ..config import Campaign
from ..config.engines import engine_factory
from .layout import Group

Inbox = dict[str, dict[str, Any]]  # channel -> {sending group name -> payload}


@dataclass
class StepContext:
    """What a component sees during one ``step``."""

    comm: Any  # the group's intracommunicator (mpi4py)
    group: Group
    iteration: int  # 0-based campaign iteration
    log: logging.Logger
    _stop: Callable[[], bool]
    _interrupt: Callable[[Callable[[], None]], Callable[[], None]]
    _report: Callable[[dict[str, Any]], None] | None = None  # given by the driver unless run with --quiet
    last_iteration: bool = False  # the campaign ends after this iteration: the budget's last, or converged

    def stop_requested(self) -> bool:
        """Collective over ``comm``: True on every rank of the group if a stop was requested on any.

        A component that returns early (``None`` from ``step``) must keep its progress in ``state()``.
        """
        from mpi4py import MPI

        return bool(self.comm.allreduce(self._stop(), op=MPI.LOR))

    def on_interrupt(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Register ``callback`` to run from the watcher thread as soon as a stop signal arrives on
        this rank. It must not be collective (see ``pbahpc.atomistic.lammps_stop`` for LAMMPS)."""
        return self._interrupt(callback)

    def progress(self, **fields: Any) -> None:
        """Tell rank 0's terminal how far this step has got, e.g. ``progress(cycles=(12, 40), candidates=3)``:
        (done, total) pairs and ints are summed over the role's groups, floats and strings shown per group
        (see ``pbahpc.driver.progress``). Only the group root's calls count; cheap, throttled, never blocks."""
        if self._report is not None and self.comm.Get_rank() == 0:
            self._report(fields)

    def with_progress(self, **fields: Any) -> StepContext:
        """A context whose progress reports also carry ``fields`` (e.g. which of several runs is going on)."""
        report = self._report
        return dataclasses.replace(self, _report=None if report is None else lambda more: report({**fields, **more}))


class Component(Protocol):
    def step(self, ctx: StepContext, inbox: Inbox) -> dict[str, Any] | None:
        """Do this iteration's work. Return the outgoing payloads by channel (only the group root's
        are sent), or ``None`` when interrupted before the work was done (it is then called again).
        Optionally ``"summary"``: a few numbers and strings about what it did, for rank 0's terminal
        (``pbahpc.driver.progress``)."""

    def state(self) -> dict[str, Any]: ...

    def load_state(self, state: dict[str, Any]) -> None: ...

    def results(self) -> dict[str, Any]:
        """Final results of this rank (the group root's are written to results.h5)."""


def selected_batches(inbox: Inbox) -> list[tuple[str, Any]]:
    """(replica group, batch) pairs an oracle is to label, in a fixed order: the trainer's selection
    (``selected``: {trainer group: {replica group: batch}}), or, in a layout without trainer ranks, the
    replicas' candidates as they are (``candidates``: {replica group: batch})."""
    by_replica = {rep: batch for _, sel in sorted(inbox.get("selected", {}).items()) for rep, batch in (sel or {}).items()}
    by_replica.update(inbox.get("candidates", {}))
    return sorted((rep, batch) for rep, batch in by_replica.items() if batch is not None)


Factory = Callable[[Campaign, Group, Any, np.random.SeedSequence], Component]


def create(cfg: Campaign, group: Group, comm: Any, seed: np.random.SeedSequence) -> Component:
    """Build the configured engine of ``group.role`` (names are checked when the config is loaded)."""
    factory: Factory = engine_factory(group.role, getattr(cfg, group.role).engine)
    return factory(cfg, group, comm, seed)
