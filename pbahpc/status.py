"""``pbahpc status RUNDIR``: where a campaign stands, read-only and without MPI.

Reads what the driver leaves in a run directory (driver/campaign.py): ``campaign.yaml`` (the validated
config), ``checkpoints/manifest.json`` + ``ckpt-*.h5`` (header meta: iteration, next stage, layout),
``results.h5`` (written only when the campaign completed), ``logs/driver.log``,
``logs/error-rank*.log``, ``timings.yaml``, and engine outputs under ``replicas/`` and ``continuum/``.
Checkpoints are verified by the restart's own code (``CheckpointStore.verified``: whole-file sha256
against the manifest, then every leaf and the tree digest), newest first, down to the one a rerun stops
at: the first valid one, which it resumes from, or one it refuses (a too-old schema).
Nothing is written, moved or deleted.
"""
from __future__ import annotations

import re
import sys
import warnings
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TextIO

import yaml

from .checkpoint import CheckpointError, CheckpointStore, CorruptCheckpointError, read_checkpoint_file
from .checkpoint.store import MANIFEST_NAME

EXIT_OK, EXIT_USAGE = 0, 2
TAIL_LINES = 5
_ERROR_HEAD = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d |pbahpc: )")


@dataclass
class CheckpointInfo:
    step: int
    path: Path
    size: int
    created: str | None = None  # from the verified header, else the manifest's time
    meta: dict[str, Any] | None = None
    ok: bool | None = None  # None: not checked (older than the one a resume stops at)
    problem: str = ""
    refused: bool = False  # valid or not, a resume refuses it (e.g. a too-old schema) and stops there


def is_run_dir(path: Path) -> bool:
    """What prepare_run_dir creates: campaign.yaml, or at least logs/ and checkpoints/."""
    return path.is_dir() and ((path / "campaign.yaml").is_file()
                              or ((path / "logs").is_dir() and (path / "checkpoints").is_dir()))


def main(run_dir: Path, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    run_dir = Path(run_dir)
    if not is_run_dir(run_dir):
        print(f"pbahpc: status: {run_dir} is not a pbahpc run directory (no campaign.yaml, logs/ or "
              "checkpoints/ in it)", file=sys.stderr)
        return EXIT_USAGE
    for line in report(run_dir):
        print(line, file=out)
    return EXIT_OK


def report(run_dir: Path) -> list[str]:
    lines: list[str] = [f"run directory {run_dir.resolve()}"]
    cfg = _config(run_dir, lines)
    total = _get(cfg, "campaign", "iterations")
    ckpts = _checkpoints(run_dir, lines)
    resume = next((c for c in ckpts if c.ok), None)
    _progress(run_dir, total, resume, ckpts, lines)
    _logs(run_dir, lines)
    _outputs(run_dir, lines)
    _learning(run_dir, lines)
    _timings(run_dir, lines)
    return lines


# --------------------------------------------------------------------------------------------- config
def _get(d: Any, *keys: str) -> Any:
    for k in keys:
        if not isinstance(d, dict):
            return None
        d = d.get(k)
    return d


def _config(run_dir: Path, lines: list[str]) -> dict | None:
    path = run_dir / "campaign.yaml"
    try:
        cfg = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        lines.append("campaign: ? (no campaign.yaml)")
        return None
    except (OSError, yaml.YAMLError) as exc:
        lines.append(f"campaign: ? (campaign.yaml unreadable: {type(exc).__name__}: {exc})")
        return None
    if not isinstance(cfg, dict):
        lines.append("campaign: ? (campaign.yaml is not a mapping)")
        return None
    c = cfg.get("campaign") or {}
    lines.append(f"campaign '{c.get('name', '?')}': {c.get('iterations', '?')} iteration(s), "
                 f"seed {c.get('seed', '?')}")
    engines = ", ".join(f"{role}={_get(cfg, role, 'engine')}" for role in ("replicas", "oracle", "trainer",
                                                                          "continuum") if _get(cfg, role, "engine"))
    layout = cfg.get("layout") or {}
    ranks = ", ".join(f"{role} {_fmt_ranks(v)}" for role, v in layout.items() if isinstance(v, dict))
    ck = cfg.get("checkpoint") or {}
    lines.append(f"  engines: {engines or '?'}")
    lines.append(f"  layout: {ranks or '?'}")
    lines.append(f"  checkpoint: keep {ck.get('keep', '?')}, every {ck.get('every', '?')} sync point(s), "
                 f"min interval {ck.get('min_interval_s', '?')} s")
    return cfg


def _fmt_ranks(v: dict) -> str:
    if "ranks_each" in v:
        return f"{v['ranks_each']} rank(s) each"
    return f"{v.get('ranks', '?')} rank(s){' shared' if v.get('shared') else ''}"


# --------------------------------------------------------------------------------------------- checkpoints
def _checkpoints(run_dir: Path, lines: list[str]) -> list[CheckpointInfo]:
    """Checkpoints on disk, newest first, verified as a resume does, down to (and including) the one it
    stops at: the first valid one, or one it refuses."""
    store = CheckpointStore(run_dir / "checkpoints")  # constructing it touches nothing
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        entries, on_disk = store.listing()
    manifest = store.directory / MANIFEST_NAME
    if entries is None:
        lines.append("checkpoints: " + ("no manifest.json" if not manifest.exists() else
                                         f"manifest.json unusable ({caught[-1].message if caught else '?'})"))
        entries = {}
    by_path = {}
    for step in sorted(on_disk, reverse=True):
        path = on_disk[step]
        try:
            size = path.stat().st_size
        except OSError:
            size = -1
        entry = entries.get(step)
        by_path[path] = CheckpointInfo(step, path, size, created=entry.time if entry else None)
    for step in sorted(entries.keys() - on_disk.keys()):
        lines.append(f"checkpoints: {entries[step].file} is listed in manifest.json but missing on disk")
    if not by_path:
        lines.append(f"checkpoints: none in {store.directory}")
        return []
    for path, found in store.verified(entries, on_disk):
        info = by_path[path]
        if isinstance(found, CheckpointError):
            info.ok, info.problem = False, str(found)
            info.refused = not isinstance(found, CorruptCheckpointError)
            continue
        info.ok, info.created, info.meta = True, found.created, found.meta
        if info.step not in entries:
            info.problem = "not in manifest.json (verified without the whole-file sha256)"
    infos = list(by_path.values())
    lines.append(f"checkpoints: {len(infos)} in {store.directory} (newest first)")
    for info in infos:
        state = "CANNOT BE RESUMED" if info.refused else \
            {True: "sha256 OK", False: "FAILS VERIFICATION", None: "not checked"}[info.ok]
        where = ""
        if info.meta:
            where = f", iteration {info.meta.get('iteration', '?')}, next stage '{info.meta.get('stage', '?')}'"
        lines.append(f"  {info.path.name}: step {info.step}{where}, {_size(info.size)}, "
                     f"{_age(info.created, info.path)}, {state}")
        if info.problem:
            lines.append(f"    {info.problem}")
    return infos


# --------------------------------------------------------------------------------------------- progress
def _progress(run_dir: Path, total: Any, resume: CheckpointInfo | None, ckpts: list[CheckpointInfo],
              lines: list[str]) -> None:
    of = f"/{total}" if total is not None else ""
    results = run_dir / "results.h5"
    refused = next((c for c in ckpts if c.refused), None)
    if resume is not None:
        lines.append(f"iteration reached: {resume.meta.get('iteration', '?')}{of} "
                     f"(checkpoint step {resume.step}, next stage '{resume.meta.get('stage', '?')}')")
    else:
        lines.append(f"iteration reached: ?{of} (no valid checkpoint)")
    if results.exists():
        try:
            _, header = read_checkpoint_file(results)
            detail = f"{header.meta.get('iterations', '?')} iteration(s), written {header.created}, verified"
        except CheckpointError as exc:
            detail = f"FAILS VERIFICATION: {exc}"
        lines.append(f"status: complete (results.h5: {detail})")
        return
    lines.append("status: not complete (no results.h5)")
    if resume is not None:
        lines.append(f"  resume from {resume.path.name} (step {resume.step}): rerun the same "
                     f"`pbahpc run` command on {resume.meta.get('size', 'the same number of')} rank(s)")
    elif refused is not None:
        lines.append(f"  a rerun refuses to resume from {refused.path.name} (step {refused.step}): {refused.problem}")
    elif ckpts:
        lines.append("  no checkpoint verifies: a rerun cannot resume (use a new campaign.run_dir)")
    else:
        lines.append("  no checkpoint: a rerun starts from the beginning")


# --------------------------------------------------------------------------------------------- logs
def _logs(run_dir: Path, lines: list[str]) -> None:
    logs = run_dir / "logs"
    driver = logs / "driver.log"
    tail = _tail(driver, TAIL_LINES)
    if tail is None:
        lines.append("driver.log: missing")
    else:
        lines.append(f"driver.log: last {len(tail)} line(s)")
        lines.extend(f"  {t}" for t in tail)
    errors = sorted(logs.glob("error-rank*.log"), key=lambda p: _rank_of(p.name)) if logs.is_dir() else []
    if not errors:
        lines.append("errors: none (no logs/error-rank*.log)")
    for p in errors:
        heads = [t for t in (_tail(p, None) or []) if _ERROR_HEAD.match(t)]
        last = heads[-1] if heads else ((_tail(p, 1) or ["(empty)"]) or ["(empty)"])[-1]
        lines.append(f"error in {p.name} ({len(heads)} entr{'y' if len(heads) == 1 else 'ies'}), last: {last}")


def _rank_of(name: str) -> int:
    m = re.search(r"(\d+)", name)
    return int(m[1]) if m else -1


def _tail(path: Path, n: int | None) -> list[str] | None:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    rows = [t for t in text.splitlines() if t.strip()]
    return rows if n is None else rows[-n:]


# --------------------------------------------------------------------------------------------- outputs
def _outputs(run_dir: Path, lines: list[str]) -> None:
    replicas = run_dir / "replicas"
    if replicas.is_dir():
        for d in sorted(p for p in replicas.iterdir() if p.is_dir()):
            files = sorted(d.glob("iter-*.h5"))
            newest = f", newest {files[-1].name}" if files else ""
            lines.append(f"replicas/{d.name}: {len(files)} iteration file(s){newest}")
    else:
        lines.append("replicas/: none (engine writes no per-iteration files)")
    report = run_dir / "properties" / "report.txt"
    lines.append(f"properties/: report.txt ({_age(None, report)})" if report.exists()
                 else "properties/: no report (written after the final potential's properties runs)")
    p2d = sorted((run_dir / "continuum").glob("p2d-iter-*.h5"))
    if p2d:
        lines.append(f"continuum/: {len(p2d)} P2D output(s), newest {p2d[-1].name}")
    else:
        lines.append("continuum/: no P2D outputs")


def _learning(run_dir: Path, lines: list[str]) -> None:
    """The active-learning table (statistics.h5, written by the MTP trainer after each train stage)."""
    from .mlip.statistics import read_statistics

    path = run_dir / "statistics.h5"
    if not path.exists():
        lines.append("statistics.h5: none (no MTP trainer, or no iteration trained yet)")
        return
    try:
        rows = read_statistics(path)["rows"]
    except Exception as exc:  # noqa: BLE001 - status reports, it does not fail
        lines.append(f"statistics.h5: unreadable ({type(exc).__name__}: {exc})")
        return
    lines.append(f"statistics.h5 ({_age(None, path)}): active learning per iteration")
    lines.append("  iter  cand   sel  inside  screened  halted  n_train  rmse_new F (eV/A)  rmse_train F (eV/A)")
    for r in rows:
        lines.append(f"  {r['iteration']:4.0f}  {r['candidates']:4.0f}  {r['selected']:4.0f}  {r['inside']:6.0f}  "
                     f"{r['screened'] + r['quarantined']:8.0f}  {r['replicas_halted']:6.0f}  {r['n_train']:7.0f}  "
                     f"{r['rmse_new_forces_eV_A']:17.4g}  {r['rmse_train_forces_eV_A']:19.4g}"
                     + ("  converged" if r["converged"] else ""))


def _timings(run_dir: Path, lines: list[str]) -> None:
    path = run_dir / "timings.yaml"
    if not path.exists():
        lines.append("timings.yaml: none (written when a launch ends)")
        return
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        lines.append(f"timings.yaml: unreadable ({type(exc).__name__})")
        return
    if not isinstance(doc, dict):
        lines.append("timings.yaml: not a mapping")
        return
    lines.append(f"timings.yaml ({_age(None, path)}, seconds):")
    for rank, row in doc.items():
        if not isinstance(row, dict):
            continue
        nums = " ".join(f"{k} {v:g}" for k, v in row.items() if isinstance(v, (int, float)) and k != "checkpoint_writes")
        groups = ",".join(row.get("groups") or [])
        lines.append(f"  {rank} [{groups}]: {nums}")


# --------------------------------------------------------------------------------------------- formatting
def _size(n: int) -> str:
    if n < 0:
        return "size ?"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


def _age(created: str | None, path: Path) -> str:
    when = None
    if created:
        try:
            when = datetime.fromisoformat(created)
        except ValueError:
            when = None
    if when is None:
        try:
            when = datetime.fromtimestamp(path.stat().st_mtime, timezone.utc)
        except OSError:
            return "age ?"
    s = max(0.0, (datetime.now(timezone.utc) - when).total_seconds())
    if s < 120:
        text = f"{s:.0f} s"
    elif s < 7200:
        text = f"{s / 60:.0f} min"
    elif s < 172800:
        text = f"{s / 3600:.1f} h"
    else:
        text = f"{s / 86400:.1f} d"
    return f"{text} old"
