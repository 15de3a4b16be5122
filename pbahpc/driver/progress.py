"""What rank 0's terminal shows while a campaign runs: a line at each stage's start (with an estimate of
the time to the iteration's end) and end (what the stage did and its wall time), and in between at most
one progress line per ``campaign.progress_interval_s``.

No collective is added to a stage. A group root's ``StepContext.progress`` is throttled on that rank and
sent to world rank 0 with a non-blocking send on a communicator of its own; rank 0 drains them where it
waits anyway (the synchronisation point) and inside its own components' progress calls, so a line may
come late while rank 0 computes. A step's output may carry a ``summary``: one small message per
producing group root to rank 0 when the stage's outputs are routed. The newest summary of each stage
goes into the checkpoint (the closing summary of a resumed run still has them).

Fields of progress reports and summaries: a (done, total) pair or an int (a count) is summed over the
role's groups; a float or str is shown per group. A summary's str entries are its stage's headline
results, repeated by the closing summary (``headlines``).
"""
from __future__ import annotations

import logging
import numbers
import time
from collections.abc import Callable
from typing import Any

from .layout import Group, RankLayout

_PROGRESS, _SUMMARY = 1, 2  # tags on the reporter's own communicator


def render(parts: dict[str, dict[str, Any]]) -> str:
    """One phrase from the fields of several groups ({group: fields}), keys in first-seen order."""
    keys = dict.fromkeys(k for fields in parts.values() for k in fields)
    out = []
    for key in keys:
        values = {g: f[key] for g, f in parts.items() if key in f}
        first = next(iter(values.values()))
        if isinstance(first, (tuple, list)):
            out.append(f"{sum(v[0] for v in values.values())}/{sum(v[1] for v in values.values())} {key}")
        elif isinstance(first, numbers.Integral):
            out.append(f"{sum(values.values())} {key}")
        elif len(parts) == 1:
            out.append(f"{key} {_text(first)}")
        else:
            out.append(f"{key} " + ", ".join(f"{g} {_text(v)}" for g, v in values.items()))
    return ", ".join(out)


def _text(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, numbers.Real) else str(value)


def duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, s = divmod(round(seconds), 60)
    return f"{minutes // 60}h{minutes % 60:02d}m" if minutes >= 60 else f"{minutes}m{s:02d}s"


class Reporter:
    """One per rank (collective construction); ``interval_s`` None: silent, nothing is sent."""

    def __init__(self, world, layout: RankLayout, stages: list[tuple[str, str]], iterations: int,
                 log: logging.Logger, interval_s: float | None):
        self.on = interval_s is not None
        self.comm = world.Dup() if self.on else None  # Iprobe here never meets the driver's messages
        self.rank, self.layout, self.log = world.Get_rank(), layout, log
        self.stages, self.iterations, self.interval_s = stages, iterations, interval_s  # (name, role) in order
        self._sent_at: dict[str, float] = {}  # group root: when each of its groups last sent progress
        self._requests: list = []
        self._sent = 0
        # rank 0
        self._received: dict[int, int] = {}
        self._current: tuple[int, str] | None = None  # (iteration, stage name) now running
        self._started = self._printed = 0.0
        self._latest: dict[str, dict[str, Any]] = {}  # group -> its newest progress fields in this stage
        self._news = False
        self._durations: dict[int, dict[str, float]] = {}  # iteration -> stage -> wall s
        self.summaries: dict[str, dict[str, dict[str, Any]]] = {}  # stage -> group -> newest non-empty summary

    # --------------------------------------------------------------------- group roots
    def sender(self, group: Group, stage: str, iteration: int) -> Callable[[dict[str, Any]], None] | None:
        """What ``StepContext.progress`` calls on ``group``'s root (None when silent)."""
        if not self.on:
            return None

        def send(fields: dict[str, Any]) -> None:
            if self.rank == 0:
                self._take(iteration, stage, group.name, fields)
                self.poll()
                return
            now = time.monotonic()
            if now - self._sent_at.get(group.name, -float("inf")) < self.interval_s / 2:
                return  # twice per interval: rank 0 has fresh news when it prints
            self._sent_at[group.name] = now
            self._requests = [r for r in self._requests if not r.Test()]
            self._requests.append(self.comm.isend((iteration, stage, group.name, fields), dest=0, tag=_PROGRESS))
            self._sent += 1
        return send

    # --------------------------------------------------------------------- rank 0
    def _take(self, iteration: int, stage: str, group: str, fields: dict[str, Any]) -> None:
        if (iteration, stage) == self._current:  # a late one from a finished stage is dropped
            self._latest[group] = fields
            self._news = True

    def poll(self) -> None:
        """Rank 0: receive what arrived, print a progress line if one is due (anywhere else: nothing)."""
        if not self.on or self.rank != 0:
            return
        from mpi4py import MPI

        status = MPI.Status()
        while (msg := self.comm.improbe(source=MPI.ANY_SOURCE, tag=_PROGRESS, status=status)) is not None:
            source = status.Get_source()
            self._received[source] = self._received.get(source, 0) + 1
            self._take(*msg.recv())
        now = time.monotonic()
        if self._news and now - self._printed >= self.interval_s:
            self._printed, self._news = now, False
            role = dict(self.stages)[self._current[1]]
            groups = len(self.layout.of_role(role))
            reporting = f" ({len(self._latest)} of {groups} {role})" if groups > 1 else ""
            self.log.info("%s: %s%s", self._prefix(), render(self._latest), reporting)

    def _prefix(self) -> str:
        iteration, stage = self._current
        return f"iteration {iteration + 1}/{self.iterations} {stage}"

    def begin(self, iteration: int, stage: str) -> None:
        """Rank 0: a stage starts; the estimate is the rest of the previous iteration's stage times."""
        if not self.on or self.rank != 0 or self._current == (iteration, stage):
            return  # an unfinished stage that is run again is the same stage
        self._current, self._latest, self._news = (iteration, stage), {}, False
        self._started = self._printed = time.monotonic()
        before = self._durations.get(iteration - 1, {})
        names = [name for name, _ in self.stages]
        rest = names[names.index(stage):]
        left = sum(before[s] for s in rest) if all(s in before for s in rest) else 0.0
        eta = f", about {duration(left)} left in this iteration (as in iteration {iteration})" if left >= 1 else ""
        self.log.info("%s: started%s", self._prefix(), eta)

    def end(self, producers: tuple[Group, ...], outbox: dict[str, dict[str, Any] | None]) -> None:
        """Every rank, when the stage's outputs are routed: the producers' summaries go to rank 0 (one
        message per producing root), which prints the stage's end line."""
        if not self.on:
            return
        reqs = [self.comm.isend(self._summary(outbox, p), dest=0, tag=_SUMMARY)
                for p in producers if p.root == self.rank and self.rank != 0]
        if self.rank == 0:
            got = {p.name: self._summary(outbox, p) if p.root == 0 else self.comm.recv(source=p.root, tag=_SUMMARY)
                   for p in producers}
            got = {g: s for g, s in got.items() if s}
            iteration, stage = self._current
            wall = time.monotonic() - self._started
            self._durations.setdefault(iteration, {})[stage] = wall
            self._durations.pop(iteration - 2, None)
            if got:
                self.summaries[stage] = got
            self.log.info("%s: done in %s%s", self._prefix(), duration(wall), f": {render(got)}" if got else "")
        for r in reqs:
            r.wait()

    @staticmethod
    def _summary(outbox: dict[str, dict[str, Any] | None], producer: Group) -> dict[str, Any]:
        return dict((outbox[producer.name] or {}).get("summary") or {})

    def headlines(self) -> list[tuple[str, str]]:
        """Rank 0: (stage, its newest summary's str entries) for the stages that have any."""
        out = []
        for stage, _ in self.stages:
            parts = {g: {k: v for k, v in s.items() if isinstance(v, str)}
                     for g, s in self.summaries.get(stage, {}).items()}
            parts = {g: s for g, s in parts.items() if s}
            if parts:
                out.append((stage, render(parts)))
        return out

    # --------------------------------------------------------------------- end of the run
    def close(self) -> None:
        """Collective: every progress message sent is received before MPI_Finalize could wait for it."""
        if not self.on:
            return
        sent = self.comm.gather(self._sent, root=0)
        if self.rank == 0:
            for source, n in enumerate(sent):
                for _ in range(n - self._received.get(source, 0)):
                    self.comm.recv(source=source, tag=_PROGRESS)
        for r in self._requests:
            r.wait()
        self._requests, self.on = [], False
        self.comm.Free()
