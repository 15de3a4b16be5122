"""The campaign driver: role groups, stages with synchronisation points, checkpoint/restart.

Every stage is run by the groups of one role; at its end all ranks meet at a synchronisation point
(one non-blocking allreduce of [failed, stop requested, unfinished, write failed, converged]). A
finished stage's outputs are routed point-to-point from the producing group roots to the consuming
group roots and broadcast in the consuming groups; then the next stage starts. Checkpoints are taken
at synchronisation points.

An iteration: replicas sample (candidates -> trainer), the trainer selects (selected -> oracle; an
engine without ``select`` passes every candidate on), the oracle labels (labels and screening reasons
-> trainer), the trainer retrains (potential -> replicas and properties, parameters -> continuum), the
properties group computes properties with the final potential (cell parameters -> continuum), the
continuum solves. A group root whose output carries ``"converged": True`` ends the campaign after that
iteration (``campaign.stop_when_converged``); ``campaign.iterations`` is the budget.
"""
from __future__ import annotations

import logging
import os
import time
import traceback
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from ..checkpoint import BackgroundWriter, CheckpointError, CheckpointStore, CheckpointWarning, checkpoint_name, write_tree
from ..config import Campaign, to_plain
from . import component
from .layout import Group, RankLayout, split
from .progress import Reporter
from .signals import StopSignal

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_REQUEUE = 0, 1, 2, 75
_FAILED, _STOP, _UNFINISHED, _WRITE_FAILED, _CONVERGED, _REOPEN = range(6)
_FLAGS = _REOPEN + 1  # length of the flag vector agreed at each sync point


@dataclass(frozen=True)
class Stage:
    name: str
    role: str
    sends: tuple[tuple[str, str], ...]  # (channel, destination role)
    method: str = "step"  # the component method the stage calls


PIPELINE = (
    Stage("sample", "replicas", (("candidates", "trainer"), ("sampling", "trainer"))),
    Stage("select", "trainer", (("selected", "oracle"),), method="select"),
    Stage("label", "oracle", (("labels", "trainer"), ("screened", "trainer"))),
    Stage("train", "trainer", (("potential", "replicas"), ("potential", "properties"), ("parameters", "continuum"))),
    Stage("properties", "properties", (("cell_parameters", "continuum"), ("candidates", "trainer"))),
    Stage("continuum", "continuum", ()),
)


def pipeline(layout: RankLayout) -> tuple[Stage, ...]:
    """PIPELINE for this layout: without trainer ranks the candidates go straight to the oracle."""
    if layout.of_role("trainer"):
        return PIPELINE
    sample = Stage("sample", "replicas", (("candidates", "oracle"),))
    return (sample,) + PIPELINE[1:]


def syncs_per_iteration(cfg: Campaign, size: int) -> int:
    """Synchronisation points per iteration: one per stage whose role has ranks in this layout."""
    from .layout import plan

    layout = plan(cfg, size)
    return sum(1 for s in pipeline(layout) if layout.of_role(s.role))


def pass_on(ctx: component.StepContext, inbox: component.Inbox) -> dict[str, Any]:
    """``select`` of an engine without its own: every candidate is selected, grouped by replica."""
    return {"selected": dict(inbox.get("candidates", {}))}


class StartupFailed(RuntimeError):
    """Some rank could not build its components; already reported on rank 0 (exit code 1)."""


class ResumeRefused(RuntimeError):
    """The run directory's checkpoint cannot be resumed with this launch (exit code 2)."""


class Driver:
    """Runs one campaign on ``world`` (an mpi4py intracommunicator passed in by the caller); ``quiet``:
    no stage and progress lines on rank 0's terminal (``pbahpc.driver.progress``)."""

    def __init__(self, cfg: Campaign, world, layout: RankLayout, stop: StopSignal, log: logging.Logger,
                 quiet: bool = False):
        from mpi4py.util import pkl5

        self.cfg, self.world, self.layout, self.stop, self.log = cfg, world, layout, stop, log
        self.p2p = pkl5.Intracomm(world)  # pickled p2p without the 2 GiB message limit
        self.rank = world.Get_rank()
        self.run_dir = Path(cfg.campaign.run_dir)
        self.store = CheckpointStore(self.run_dir / "checkpoints", keep=cfg.checkpoint.keep)
        self.writer = BackgroundWriter(self.store)  # used on rank 0 only
        self.comms = split(world, layout)
        self.pipeline = pipeline(layout)
        self.reporter = Reporter(world, layout, [(s.name, s.role) for s in self.pipeline if layout.of_role(s.role)],
                                 cfg.campaign.iterations, log, None if quiet else cfg.campaign.progress_interval_s)
        self.mine = layout.groups_of(self.rank)
        seeds = dict(zip((g.name for g in layout.groups),
                         np.random.SeedSequence(cfg.campaign.seed).spawn(len(layout.groups))))
        self.logs = {g.name: self._group_logger(g) for g in self.mine}
        # Per group: messages received for its next step, outputs held until its whole stage is done.
        self.inbox: dict[str, component.Inbox] = {g.name: {} for g in self.mine}
        self.outbox: dict[str, dict[str, Any] | None] = {g.name: None for g in self.mine}
        self.iteration = self.stage = self.syncs = 0
        self.converged = False  # agreed at a sync point of the current iteration
        self.extra_iterations = 0  # added to campaign.iterations by properties that reopened active learning
        self.last_checkpoint: Path | None = None
        self._write_error: str | None = None  # rank 0: a background write failed; agreed on at the next sync
        self._last_ckpt_time = time.monotonic()
        self.timers = dict.fromkeys(("compute", "wait", "route", "checkpoint", "wall"), 0.0)
        self.stage_times: list[tuple[int, int, float, float]] = []  # (iteration, stage, compute s, wait s) per sync
        self.components: dict[str, component.Component] = {}
        error = None
        try:
            for g in self.mine:
                self.components[g.name] = component.create(cfg, g, self.comms[g.name], seeds[g.name])
        except Exception as exc:  # noqa: BLE001 - agreed on below, like a failed stage
            error = f"rank {self.rank}: creating components failed: {type(exc).__name__}: {exc}"
            self._report_traceback(error)
        flags = np.zeros(_FLAGS, dtype=np.int64)
        flags[_FAILED] = error is not None
        if self._agree(flags, error)[_FAILED]:
            self._fail(error)
            raise StartupFailed("components could not be created")

    # ----------------------------------------------------------------------------- logging
    def _group_logger(self, g: Group) -> logging.Logger:
        logger = logging.getLogger(f"pbahpc.{g.name}")
        logger.propagate = False
        logger.setLevel(logging.INFO)
        if not logger.handlers:
            # The group root writes the group's log. Another rank's warnings (its own retries, failures) go
            # to a file of its own, created only if there are any: without a handler Python would print
            # them, one per rank and unprefixed, on the terminal rank 0 reports on.
            root = self.rank == g.root
            handler = logging.FileHandler(self.run_dir / "logs" / (f"{g.name}.log" if root else
                                                                   f"{g.name}-rank{self.rank}.log"), delay=not root)
            handler.setLevel(logging.INFO if root else logging.WARNING)
            handler.setFormatter(logging.Formatter("%(asctime)s %(name)s: %(message)s"))
            logger.addHandler(handler)
        return logger

    # ----------------------------------------------------------------------------- main loop
    def run(self) -> int:
        """The campaign from where it stands (collective). However it ends (complete, stopped, failed), the
        timers are gathered once, for timings.yaml and, when complete, results.h5."""
        self.timers = dict.fromkeys(self.timers, 0.0)  # time spent in the campaign loop only
        t0 = time.perf_counter()
        try:
            code = self._loop()
            self.reporter.close()
        finally:
            self.timers["wall"] += time.perf_counter() - t0
        timings = self._gather_timings()
        if code == EXIT_OK:
            self._write_results(timings)
        if self.rank == 0:
            self._write_timings(timings)
        return code

    @property
    def budget(self) -> int:
        """Iterations this campaign may run: campaign.iterations, plus those granted to properties runs that
        left the learned domain (at most properties.max_relearn)."""
        return self.cfg.campaign.iterations + self.extra_iterations

    def _loop(self) -> int:
        while self.iteration < self.budget and not (self.converged and self.stage == 0):
            stage = self.pipeline[self.stage]
            groups = [g for g in self.mine if g.role == stage.role]
            if not self.layout.of_role(stage.role):
                self._advance()  # a role with no ranks: its stage is skipped everywhere
                continue
            flags = np.zeros(_FLAGS, dtype=np.int64)
            error = None
            self.reporter.begin(self.iteration, stage.name)
            t = time.perf_counter()
            try:
                for g in groups:
                    if self.outbox[g.name] is None:
                        run = getattr(self.components[g.name], stage.method, None)
                        if run is None:
                            run = pass_on
                        self.outbox[g.name] = run(self._context(g, stage), self.inbox[g.name])
                    flags[_UNFINISHED] |= self.outbox[g.name] is None
                    flags[_CONVERGED] |= self.rank == g.root and bool((self.outbox[g.name] or {}).get("converged"))
                    flags[_REOPEN] |= self.rank == g.root and bool((self.outbox[g.name] or {}).get("relearn"))
            except Exception as exc:  # noqa: BLE001 - reported to every rank at the sync point
                flags[_FAILED] = 1
                error = f"rank {self.rank} ({'/'.join(g.name for g in groups)}) failed in stage " \
                        f"'{stage.name}' of iteration {self.iteration}: {type(exc).__name__}: {exc}"
                self._report_traceback(error)
            compute = time.perf_counter() - t
            self.timers["compute"] += compute
            flags[_STOP] = self.stop.requested
            flags[_WRITE_FAILED] = self._write_error is not None
            waited = self.timers["wait"]
            agreed = self._agree(flags, error)
            self.stage_times.append((self.iteration, self.stage, compute, self.timers["wait"] - waited))
            if agreed[_FAILED] or agreed[_WRITE_FAILED]:
                return self._fail(error or self._write_error)
            if not agreed[_UNFINISHED]:
                self.converged |= bool(agreed[_CONVERGED]) and self.cfg.campaign.stop_when_converged
                if agreed[_REOPEN]:
                    self._reopen()
                self._route(stage)
                self._advance()
            self.syncs += 1
            if agreed[_STOP]:
                if self._checkpoint(wait=True):
                    return EXIT_FAILED
                if self.rank == 0:
                    self.log.warning("stop requested: checkpoint %s written; exit %d (requeue)",
                                     self.last_checkpoint.name, EXIT_REQUEUE)
                return EXIT_REQUEUE
            if self._checkpoint_due():
                self._checkpoint()
        if self._checkpoint(wait=True):
            return EXIT_FAILED
        return EXIT_OK

    def _reopen(self) -> None:
        """A properties run left the learned domain and sent candidates to the trainer: active learning goes on
        (the potential is no longer final), for one more iteration at least, even beyond the budget."""
        self.converged = False
        if self.iteration + 1 >= self.budget and self.extra_iterations < self.cfg.properties.max_relearn:
            self.extra_iterations += 1
            self.reporter.iterations = self.budget
        if self.rank == 0:
            self.log.info("iteration %d/%d: properties left the learned domain; active learning reopened",
                          self.iteration + 1, self.budget)

    def _advance(self) -> None:
        self.stage += 1
        if self.stage == len(PIPELINE):
            self.stage = 0
            self.iteration += 1
            if self.rank == 0:
                self.log.info("iteration %d/%d done%s", self.iteration, self.budget,
                              ": converged" if self.converged else "")

    def _context(self, g: Group, stage: Stage) -> component.StepContext:
        # converged: agreed at an earlier stage of this iteration, which then ends the campaign (_loop)
        last = self.iteration == self.budget - 1 or self.converged
        return component.StepContext(self.comms[g.name], g, self.iteration, self.logs[g.name],
                                     lambda: self.stop.requested, self.stop.add_interrupt,
                                     self.reporter.sender(g, stage.name, self.iteration), last_iteration=last)

    # ----------------------------------------------------------------------------- synchronisation
    def _agree(self, flags: np.ndarray, error: str | None) -> np.ndarray:
        """Allreduce(MAX) of the flags; a failed rank gives up after ``abort_timeout_s`` and aborts the
        job, because the others may be blocked in a collective with it and would wait for ever."""
        from mpi4py import MPI

        t = time.perf_counter()
        out = np.zeros_like(flags)
        req = self.world.Iallreduce(flags, out, op=MPI.MAX)
        deadline = time.monotonic() + self.cfg.campaign.abort_timeout_s if error else None
        pause = 1e-4
        while not req.Test():
            if deadline is not None and time.monotonic() > deadline:
                self._abort(error)
            self.reporter.poll()
            time.sleep(pause)
            pause = min(2 * pause, 0.002)  # idle ranks must not spin on shared cores
        self.timers["wait"] += time.perf_counter() - t
        return out

    def _route(self, stage: Stage) -> None:
        """Deliver the finished stage's outputs; every rank calls this, only roots communicate."""
        t = time.perf_counter()
        producers = self.layout.of_role(stage.role)
        for tag, (channel, dest_role) in enumerate(stage.sends, start=100):
            consumers = self.layout.of_role(dest_role)
            reqs = [self.p2p.isend(self.outbox[p.name].get(channel), dest=c.root, tag=tag)
                    for p in producers if p.root == self.rank for c in consumers]
            for c in consumers:
                if c.name not in self.inbox:
                    continue
                received = {p.name: self.p2p.recv(source=p.root, tag=tag) for p in producers} \
                    if self.rank == c.root else None
                # merged: a channel may be fed by two stages before its consumer runs (candidates from the
                # properties of one iteration and the replicas of the next)
                self.inbox[c.name].setdefault(channel, {}).update(self.comms[c.name].bcast(received, root=0))
            for r in reqs:
                r.wait()
        self.reporter.end(producers, self.outbox)
        for p in producers:
            if p.name in self.outbox:
                self.outbox[p.name] = None
                self.inbox[p.name] = {}  # consumed by the finished step
        self.timers["route"] += time.perf_counter() - t

    # ----------------------------------------------------------------------------- failure
    def _report_traceback(self, error: str) -> None:
        path = self.run_dir / "logs" / f"error-rank{self.rank}.log"
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {error}\n{traceback.format_exc()}\n")
        for name in self.logs:
            self.logs[name].error("%s (traceback in %s)", error, path.name)

    def _resume_hint(self) -> str:
        last = self.last_checkpoint or (self.store.list()[-1][1] if self.store.list() else None)
        return f"last checkpoint {last}; rerun the same command to resume" if last else "no checkpoint was written yet"

    def _fail(self, error: str | None) -> int:
        if self.rank == 0:
            try:
                self.writer.drain()  # the last checkpoint is complete before we report it
            except Exception as exc:  # noqa: BLE001
                self.log.error("the last checkpoint write failed too: %s", exc)
                self.last_checkpoint = None
        errors = [e for e in self.world.gather(error, root=0) or [] if e]
        if self.rank == 0:
            for e in errors:
                self.log.error("%s", e)
            self.log.error("campaign stopped (%s; tracebacks in %s)", self._resume_hint(), self.run_dir / "logs")
        return EXIT_FAILED

    def _abort(self, error: str) -> None:
        import sys

        message = (f"pbahpc: {error}\npbahpc: other ranks did not reach the synchronisation point within "
                   f"{self.cfg.campaign.abort_timeout_s:g} s; aborting the job ({self._resume_hint()})\n")
        with open(self.run_dir / "logs" / f"error-rank{self.rank}.log", "a", encoding="utf-8") as fh:
            fh.write(message)  # stderr may be lost when the launcher kills the job
        sys.stderr.write(message)
        sys.stderr.flush()
        time.sleep(0.5)  # let the launcher forward stderr before MPI_Abort tears everything down
        self.world.Abort(EXIT_FAILED)

    # ----------------------------------------------------------------------------- checkpoints
    def _checkpoint_due(self) -> bool:
        ck = self.cfg.checkpoint
        if self.syncs % ck.every or ck.min_interval_s == 0:
            return self.syncs % ck.every == 0
        due = time.monotonic() - self._last_ckpt_time >= ck.min_interval_s
        return bool(self.world.bcast(due, root=0))  # clocks differ: rank 0's decides for all

    def _collect(self, make) -> dict[str, Any] | None:
        """Gather ``make(group, component)`` from every rank of every group to rank 0 (layout order)."""
        parts = {}
        for g in self.mine:  # same global order on every rank: no cross-group deadlock
            gathered = self.comms[g.name].gather(make(g, self.components[g.name]), root=0)
            if self.rank == g.root:
                parts[g.name] = gathered
        reqs = [self.p2p.isend(parts[g.name], dest=0, tag=7) for g in self.layout.groups if g.root == self.rank]
        out = {g.name: self.p2p.recv(source=g.root, tag=7) for g in self.layout.groups} if self.rank == 0 else None
        for r in reqs:
            r.wait()
        return out

    def _checkpoint(self, wait: bool = False) -> str | None:
        """Gather all state to rank 0 and hand it to the background writer (collective).

        Without ``wait`` the other ranks go on at once; a failed write is agreed on at the next
        synchronisation point. With ``wait`` (before exiting) the file is on disk when this returns,
        and the error message, the same on every rank, is returned if this or an earlier write failed.
        """
        t = time.perf_counter()
        gathered = self._collect(lambda g, c: {"component": c.state(), "inbox": self.inbox[g.name],
                                               "outbox": self.outbox[g.name]})
        if self.rank == 0:
            # ``gathered`` went through pickling (p2p to rank 0, even from itself): a private copy
            # that the writer thread may read while the components go on.
            payload = {"driver": {"iteration": self.iteration, "stage": self.stage, "syncs": self.syncs,
                                  "converged": int(self.converged), "extra_iterations": self.extra_iterations,
                                  # a copy: the reporter replaces (never changes) its entries later
                                  "summaries": dict(self.reporter.summaries)},
                       "groups": {name: {"inbox": ranks[0]["inbox"], "outbox": ranks[0]["outbox"],
                                         "ranks": {str(i): r["component"] for i, r in enumerate(ranks)}}
                                  for name, ranks in gathered.items()}}
            meta = {"layout": self.layout.signature(), "size": self.layout.size, "stage": PIPELINE[self.stage].name,
                    "iteration": self.iteration, "seed": self.cfg.campaign.seed}
            try:
                self.writer.submit(payload, step=self.syncs, meta=meta)
                if wait:
                    self.writer.drain()
            except Exception as exc:  # noqa: BLE001 - every rank must learn that the write failed
                self._write_error = self._write_error or \
                    f"writing a checkpoint in {self.store.directory} failed: {type(exc).__name__}: {exc}"
        error = self.world.bcast(self._write_error, root=0) if wait else None
        if error is None:
            self.last_checkpoint = self.store.directory / checkpoint_name(self.syncs)
            self._last_ckpt_time = time.monotonic()
        elif self.rank == 0:
            self.log.error("%s", error)
        self.timers["checkpoint"] += time.perf_counter() - t
        return error

    def resume(self) -> bool:
        """Load the newest valid checkpoint if there is one (collective). Returns whether it did."""
        found = problem = None
        if self.rank == 0:
            self.store.cleanup_temp()
            try:
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always", CheckpointWarning)
                    found = self.store.load_latest()
                for w in caught:  # e.g. newest checkpoint corrupt, previous one used
                    self.log.warning("%s", w.message)
            except CheckpointError as exc:
                problem = f"cannot resume: {exc}"
            if found is not None:
                want, have = found.meta["layout"], self.layout.signature()
                if want != have:
                    problem = (f"checkpoint {found.path} was written with {found.meta['size']} ranks in layout "
                               f"{_fmt(want)}; this launch gives {_fmt(have)}. Relaunch with "
                               f"{found.meta['size']} ranks (or the same layout), or use a new campaign.run_dir")
        problem, driver, path = self.world.bcast(
            (problem, found.payload["driver"] if found else None, found.path if found else None), root=0)
        if problem:
            raise ResumeRefused(problem)
        if driver is None:
            return False
        groups = found.payload["groups"] if self.rank == 0 else None
        reqs = [self.p2p.isend(groups[g.name], dest=g.root, tag=8) for g in self.layout.groups] if self.rank == 0 else []
        for g in self.mine:
            part = self.p2p.recv(source=0, tag=8) if self.rank == g.root else None
            comm = self.comms[g.name]
            mine = comm.scatter([part["ranks"][str(i)] for i in range(comm.Get_size())] if part else None, root=0)
            self.components[g.name].load_state(mine)
            self.inbox[g.name], self.outbox[g.name] = comm.bcast((part["inbox"], part["outbox"]) if part else None)
        for r in reqs:
            r.wait()
        self.iteration, self.stage, self.syncs = (int(driver[k]) for k in ("iteration", "stage", "syncs"))
        self.converged = bool(driver.get("converged", 0))
        self.extra_iterations = int(driver.get("extra_iterations", 0))
        self.reporter.iterations = self.budget
        self.reporter.summaries = dict(driver.get("summaries", {}))  # for the closing summary
        self.last_checkpoint = path
        if self.rank == 0:
            self.log.info("resumed from %s (iteration %d, stage '%s')", path.name, self.iteration,
                          PIPELINE[self.stage].name)
        return True

    # ----------------------------------------------------------------------------- results
    def _gather_timings(self) -> list[dict[str, Any]] | None:
        """Every rank's timers, by rank, on rank 0 (collective): seconds computing, waiting at sync points,
        routing, checkpointing and in the loop (wall); ``stages``: one (iteration, stage index (``PIPELINE``),
        compute s, wait s) per synchronisation point of this launch; on rank 0 also the background writer's
        writes and seconds. Always on: a few perf_counter calls per sync point."""
        mine: dict[str, Any] = {k: float(v) for k, v in self.timers.items()}
        mine["stages"] = [(int(i), int(s), float(c), float(w)) for i, s, c, w in self.stage_times]
        if self.writer.writes:
            mine.update(checkpoint_writes=self.writer.writes, checkpoint_write_s=float(self.writer.write_seconds))
        return self.world.gather(mine, root=0)

    def _write_results(self, timings: list[dict[str, Any]] | None) -> None:
        gathered = self._collect(lambda g, c: c.results() if self.rank == g.root else None)
        if self.rank == 0:
            ranks = {f"rank{r:05d}": {**t, "stages": np.array(t["stages"], dtype=np.float64).reshape(-1, 4)}
                     for r, t in enumerate(timings)}
            write_tree(self.run_dir / "results.h5", {"groups": {n: r[0] for n, r in gathered.items()},
                                                     "timings": ranks},
                       meta={"campaign": self.cfg.campaign.name, "iterations": self.iteration,
                             "converged": int(self.converged), "stages": [s.name for s in self.pipeline],
                             "stage_columns": "iteration stage compute_s wait_s"})
            self.log.info("campaign complete: %s", self.run_dir / "results.h5")

    def _write_timings(self, timings: list[dict[str, Any]]) -> None:
        """timings.yaml (rank 0): the gathered timers, to the microsecond, with each rank's groups."""

        def rounded(t: dict[str, Any]) -> dict[str, Any]:
            return {k: [[i, s, round(c, 6), round(w, 6)] for i, s, c, w in v] if k == "stages" else
                    round(v, 6) if isinstance(v, float) else v for k, v in t.items()}

        groups = {r: [g.name for g in self.layout.groups_of(r)] for r in range(self.layout.size)}
        (self.run_dir / "timings.yaml").write_text(yaml.safe_dump(
            {"stages": [s.name for s in self.pipeline],
             **{f"rank{r}": {"groups": groups[r], **rounded(t)} for r, t in enumerate(timings)}},
            sort_keys=False, default_flow_style=None))


def _fmt(sig: dict[str, int]) -> str:
    return ", ".join(f"{k}:{v}" for k, v in sig.items())


def prepare_run_dir(cfg: Campaign) -> None:
    """Create the run directory tree and keep the validated configuration beside the results."""
    run_dir = Path(cfg.campaign.run_dir)
    (run_dir / "logs").mkdir(parents=True, exist_ok=True)
    (run_dir / "checkpoints").mkdir(exist_ok=True)
    target = run_dir / "campaign.yaml"
    tmp = target.with_suffix(".yaml.tmp")
    tmp.write_text(yaml.safe_dump(to_plain(cfg), sort_keys=False))
    os.replace(tmp, target)
