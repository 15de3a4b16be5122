"""Read a campaign YAML file into a validated ``Campaign``."""
from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import yaml

from .schema import Campaign
from .validate import ConfigError, build

T = TypeVar("T")


def load(path: str | Path) -> Campaign:
    """Parse and validate ``path``; every problem is a one-line ``ConfigError`` naming file and key."""
    path = Path(path)
    data = read_yaml(path)
    try:
        cfg = build(Campaign, data, base_dir=path.resolve().parent)
    except ConfigError as exc:
        raise ConfigError(exc.key, exc.problem, str(path)) from None
    run_dir = cfg.campaign.run_dir or Path.cwd() / "runs" / cfg.campaign.name
    return dataclasses.replace(
        cfg, source=path.resolve(), campaign=dataclasses.replace(cfg.campaign, run_dir=run_dir.resolve()))


def read_yaml(path: Path) -> Any:
    """The YAML document in ``path``; unreadable files and syntax errors as one-line ConfigErrors."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError("", f"cannot read file ({exc.strerror})", str(path)) from None
    except UnicodeDecodeError:
        raise ConfigError("", "not a UTF-8 text file", str(path)) from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError("", f"{where}YAML syntax error: {problem}", str(path)) from None


def read_on_root(comm, read: Callable[[], T], who: str = "pbahpc") -> T | None:
    """``read()`` on rank 0 only (one reader, not thousands hitting the file system), broadcast.

    A ``ConfigError`` becomes one line on stderr (rank 0) and None on every rank."""
    value = problem = None
    if comm.Get_rank() == 0:
        try:
            value = read()
        except ConfigError as exc:
            problem = str(exc)
    value, problem = comm.bcast((value, problem), root=0)
    if problem and comm.Get_rank() == 0:
        print(f"{who}: {problem}", file=sys.stderr)
    return None if problem else value


def to_plain(obj) -> object:
    """A validated config back to plain YAML-able data (for the copy kept in the run directory)."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)
                if not f.metadata.get("internal")}
    if isinstance(obj, tuple):
        return [to_plain(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    return obj
