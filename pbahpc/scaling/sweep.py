"""The scaling sweep: read a spec YAML, run every point as its own MPI job, write the tables.

Spec (see inputs/scaling-demo.yaml)::

    output: runs/scaling-demo     # result directory (``--out`` overrides)
    repeats: 1                    # runs per point (the table keeps the fastest, mean and spread)
    launcher: mpiexec -n {ranks}  # optional; env PBAHPC_LAUNCHER overrides; default: the venv's mpiexec
    timeout_s: 900                # per point
    kernels:
      gcmc:     {ranks: [1, 2], strong: 3, weak: 2, cycles: 5, md_steps: 200}
      train:    {ranks: [1, 2], strong: 16, weak: 8, level: 4, iterations: 2}
      label:    {ranks: [1, 2], strong: 64, weak: 32}
      p2d:      {ranks: [1, 2], strong: 200, weak: 100, parameters: p2d-fickian.yaml}
      campaign: {ranks: [1, 2], strong: 1, weak: 1, base: demo.yaml, splits: [shared]}

``strong: S`` runs problem size S on every rank count, ``weak: S`` runs S per rank (either may be a
list). Sizes: gcmc n (n^3 PBA cells; weak: n^3 cells per rank, stacked along x), train/label frames,
p2d x-cells per electrode, campaign replicas. Campaign ``splits``: ``shared`` (trainer and oracle
time-shared on all ranks) or ``{trainer: T, oracle: O}`` (dedicated ranks; the replicas get the rest).
Relative paths (parameters, base) are taken from the spec file's directory; the defaults
(p2d-fickian.yaml, demo.yaml) from the repository's inputs/.

Layout of the result directory: points/<id>.json (one per run; kept between sweeps into the same
directory, so the table is the union), work/<id>/ (logs: LAMMPS, PETSc -log_view, the campaign's
run directory), scaling.h5, scaling.txt, plots/.
"""
from __future__ import annotations

import json
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import ConfigError
from .launch import launch_env, launcher_argv, reduced_campaign

COMMON = ("ranks", "strong", "weak", "repeats")
OPTIONS: dict[str, dict[str, Any]] = {  # kernel -> option -> default
    "gcmc": {"cycles": 5, "md_steps": 200, "exchanges": 20, "translations": 20, "temperature_K": 300.0,
             "mu_eV": -1.70, "timestep_fs": 0.5, "seed": 1},
    "train": {"level": 4, "iterations": 2, "radial_steps": 5, "cells": 1, "seed": 1},
    "label": {"cells": 1, "seed": 1},
    "p2d": {"parameters": "p2d-fickian.yaml", "protocol_steps": 1},
    "campaign": {"base": "demo.yaml", "splits": ["shared"], "cycles": 4, "md_steps": 50, "level": 4,
                 "train_iterations": 2, "iterations": 1},
}
INPUTS = Path(__file__).resolve().parents[2] / "inputs"
TOP = ("output", "repeats", "launcher", "timeout_s", "kernels")


@dataclass(frozen=True)
class Point:
    kernel: str
    mode: str
    split: str
    size: int
    ranks: int
    repeat: int
    options: dict = field(hash=False, compare=False)

    @property
    def id(self) -> str:
        from .tables import point_id
        return point_id(self.__dict__)


@dataclass
class Spec:
    path: Path
    output: Path | None
    repeats: int
    launcher: str | None
    timeout_s: float
    kernels: dict[str, dict]
    points: list[Point]


def _int_list(value, key: str, src: str) -> list[int]:
    items = value if isinstance(value, list) else [value]
    if not items or any(type(v) is not int or v < 1 for v in items):
        raise ConfigError(key, f"must be a positive integer or a non-empty list of them, got {value!r}", src)
    return items


def _split_label(split, key: str, src: str) -> tuple[str, dict | None]:
    if split == "shared":
        return "shared", None
    if isinstance(split, dict) and set(split) <= {"trainer", "oracle"} and split \
            and all(type(v) is int and v >= 1 for v in split.values()):
        t, o = split.get("trainer", 1), split.get("oracle", 1)
        return f"t{t}o{o}", {"trainer": t, "oracle": o}
    raise ConfigError(key, f"must be 'shared' or {{trainer: T, oracle: O}} with T, O >= 1, got {split!r}", src)


def load_spec(path: Path) -> Spec:
    """Read and validate a sweep spec; every problem is a one-line ConfigError naming the key."""
    import yaml

    src = str(path)
    try:
        data = yaml.safe_load(Path(path).read_text())
    except OSError as exc:
        raise ConfigError("", f"cannot read ({exc.strerror})", src) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError("", f"not valid YAML{where}", src) from None
    if not isinstance(data, dict):
        raise ConfigError("", "must be a mapping with a 'kernels' key", src)
    for k in data:
        if k not in TOP:
            raise ConfigError(str(k), f"unknown key (expected one of {', '.join(TOP)})", src)
    repeats = data.get("repeats", 1)
    if type(repeats) is not int or repeats < 1:
        raise ConfigError("repeats", f"must be an integer >= 1, got {repeats!r}", src)
    timeout = data.get("timeout_s", 900)
    if not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or timeout <= 0:
        raise ConfigError("timeout_s", f"must be a number > 0, got {timeout!r}", src)
    launcher = data.get("launcher")
    if launcher is not None and (not isinstance(launcher, str) or not launcher.strip()):
        raise ConfigError("launcher", f"must be a command line such as 'srun -n {{ranks}}', got {launcher!r}", src)
    output = data.get("output")
    if output is not None and not isinstance(output, str):
        raise ConfigError("output", f"must be a directory path, got {output!r}", src)
    kernels = data.get("kernels")
    if not isinstance(kernels, dict) or not kernels:
        raise ConfigError("kernels", f"must be a non-empty mapping of {', '.join(OPTIONS)}", src)
    base = Path(path).resolve().parent
    resolved: dict[str, dict] = {}
    points: list[Point] = []
    for name, ks in kernels.items():
        key = f"kernels.{name}"
        if name not in OPTIONS:
            raise ConfigError(key, f"unknown kernel (expected one of {', '.join(OPTIONS)})", src)
        if not isinstance(ks, dict):
            raise ConfigError(key, "must be a mapping with ranks and strong and/or weak", src)
        for k in ks:
            if k not in COMMON and k not in OPTIONS[name]:
                raise ConfigError(f"{key}.{k}", f"unknown key (expected one of "
                                  f"{', '.join((*COMMON, *OPTIONS[name]))})", src)
        if "ranks" not in ks:
            raise ConfigError(f"{key}.ranks", "missing (a list of MPI rank counts, e.g. [1, 2])", src)
        ranks = sorted(set(_int_list(ks["ranks"], f"{key}.ranks", src)))
        if "strong" not in ks and "weak" not in ks:
            raise ConfigError(f"{key}.strong", "missing: give strong (fixed size) and/or weak (size per rank)", src)
        modes = {m: _int_list(ks[m], f"{key}.{m}", src) for m in ("strong", "weak") if m in ks}
        reps = ks.get("repeats", repeats)
        if type(reps) is not int or reps < 1:
            raise ConfigError(f"{key}.repeats", f"must be an integer >= 1, got {reps!r}", src)
        opts = {**OPTIONS[name], **{k: v for k, v in ks.items() if k in OPTIONS[name]}}
        for k, default in OPTIONS[name].items():
            v = opts[k]
            if type(default) is int and (type(v) is not int or v < (0 if k == "seed" else 1)):
                raise ConfigError(f"{key}.{k}", f"must be an integer >= {0 if k == 'seed' else 1}, got {v!r}", src)
            if type(default) is float and (type(v) not in (int, float) or (k != "mu_eV" and v <= 0)):
                raise ConfigError(f"{key}.{k}", f"must be a number{'' if k == 'mu_eV' else ' > 0'}, got {v!r}", src)
        splits = [("-", None)]
        if name == "campaign":
            if not isinstance(opts["splits"], list) or not opts["splits"]:
                raise ConfigError(f"{key}.splits", f"must be a non-empty list, got {opts['splits']!r}", src)
            splits = [_split_label(s, f"{key}.splits", src) for s in opts["splits"]]
        for k in ("parameters", "base"):
            if k in opts:
                if not isinstance(opts[k], str):
                    raise ConfigError(f"{key}.{k}", f"must be a file path, got {opts[k]!r}", src)
                p = Path(opts[k])  # the spec's own: from its directory; the defaults: from inputs/
                p = p if p.is_absolute() else (base if k in ks else INPUTS) / p
                if not p.is_file():
                    raise ConfigError(f"{key}.{k}", f"no such file: {p}", src)
                opts[k] = str(p)
        resolved[name] = {"ranks": ranks, **modes, **opts}
        for mode, sizes in modes.items():
            for label, split in splits:
                for size in sizes:
                    for r in ranks:
                        if name == "campaign" and split and r <= split["trainer"] + split["oracle"]:
                            raise ConfigError(f"{key}.ranks", f"{r} rank(s) leave none for the replicas with "
                                              f"split {label}", src)
                        for k in range(reps):
                            points.append(Point(name, mode, label, size, r, k, {**opts, "split": split}))
    return Spec(Path(path), Path(output) if output else None, repeats, launcher, float(timeout), resolved, points)


# ----------------------------------------------------------------------------- running
def campaign_config(pt: Point, run_dir: Path) -> tuple[dict, int]:
    """The reduced campaign of a campaign point: one short iteration, ``size`` replicas (weak: per
    replica rank) at temperatures spread over 300-600 K."""
    import numpy as np

    o = pt.options
    split = o["split"]
    replica_ranks = pt.ranks if split is None else pt.ranks - split["trainer"] - split["oracle"]
    n = pt.size * (replica_ranks if pt.mode == "weak" else 1)
    cfg = reduced_campaign(o["base"], run_dir, ranks=pt.ranks, iterations=o["iterations"], cycles=o["cycles"],
                           md_steps=o["md_steps"], service=split,
                           temperatures_K=np.linspace(300.0, 600.0, n) if n > 1 else [300.0],
                           level=o["level"], train_iterations=o["train_iterations"])
    return cfg, n


def run_point(pt: Point, out_dir: Path, launcher: str | None, timeout_s: float) -> dict:
    """Run one point; returns its result (with ``error`` set if it failed) and writes points/<id>.json."""
    import yaml

    from .runner import collect_campaign

    work = out_dir / "work" / pt.id
    work.mkdir(parents=True, exist_ok=True)
    result_file = work / "result.json"
    result_file.unlink(missing_ok=True)
    res: dict[str, Any] = {"kernel": pt.kernel, "mode": pt.mode, "split": pt.split, "size": pt.size,
                           "ranks": pt.ranks, "repeat": pt.repeat}
    if pt.kernel == "campaign":
        cfg, replicas = campaign_config(pt, work / "run")
        cfg_path = work / "campaign.yaml"
        cfg_path.write_text(yaml.safe_dump(cfg, sort_keys=False))
        tail = [sys.executable, "-m", "pbahpc", "run", str(cfg_path)]
    else:
        params = {k: v for k, v in pt.options.items() if k != "split"}
        params.update(mode=pt.mode, size=pt.size)
        tail = [sys.executable, "-m", "pbahpc.scaling.runner", pt.kernel, "--params", json.dumps(params),
                "--out", str(result_file), "--work", str(work)]
    cmd = launcher_argv(pt.ranks, launcher) + tail
    (work / "command.txt").write_text(shlex.join(cmd) + "\n")
    t0 = time.perf_counter()
    try:
        with open(work / "run.log", "w") as log:
            proc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, env=launch_env(), timeout=timeout_s)
        rc = proc.returncode
    except subprocess.TimeoutExpired:
        rc = None
    except OSError as exc:
        rc, res["error"] = -1, f"cannot launch {cmd[0]}: {exc.strerror}"
    launch_s = time.perf_counter() - t0
    if "error" not in res:
        if rc is None:
            res["error"] = f"timed out after {timeout_s:g} s (see {work / 'run.log'})"
        elif rc != 0:
            res["error"] = f"exit code {rc} (see {work / 'run.log'})"
        else:
            try:
                if pt.kernel == "campaign":
                    got = collect_campaign(yaml.safe_load((work / "run" / "timings.yaml").read_text()))
                    got["replicas"] = replicas
                else:
                    got = json.loads(result_file.read_text())
                    got.pop("ranks", None)
                res.update(got)
            except (OSError, ValueError, KeyError, TypeError, yaml.YAMLError) as exc:
                res["error"] = f"no usable result ({type(exc).__name__}: {exc}; see {work / 'run.log'})"
    res.setdefault("metrics", {})["launch_s"] = launch_s
    points = out_dir / "points"
    points.mkdir(parents=True, exist_ok=True)
    tmp = points / f".{pt.id}.json.tmp"
    tmp.write_text(json.dumps(res, indent=1))
    tmp.replace(points / f"{pt.id}.json")
    return res


def select(points: list[Point], ranks: list[int] | None, kernels: list[str] | None) -> list[Point]:
    return [p for p in points if (not ranks or p.ranks in ranks) and (not kernels or p.kernel in kernels)]


def run_sweep(spec: Spec, out_dir: Path, ranks: list[int] | None = None, kernels: list[str] | None = None,
              plots: bool = True, echo=print) -> tuple[dict, int]:
    """Run the selected points, then write the tables over every point in ``out_dir``/points.

    Returns (table, number of failed points)."""
    from .tables import load_points, write_outputs

    todo = select(spec.points, ranks, kernels)
    failed = 0
    for i, pt in enumerate(todo, 1):
        res = run_point(pt, out_dir, spec.launcher, spec.timeout_s)
        if res.get("error"):
            failed += 1
            echo(f"[scaling] {i}/{len(todo)} {pt.id}: FAILED: {res['error']}")
        else:
            echo(f"[scaling] {i}/{len(todo)} {pt.id}: {res['time_s']:.3f} s "
                 f"(launch {res['metrics']['launch_s']:.1f} s)")
    table = write_outputs(out_dir, load_points(out_dir), {"spec": str(spec.path.resolve())}, plots)
    return table, failed
