"""Launching MPI jobs of this checkout (scaling sweeps, the model's calibration, tools/bench_*.py) and
the reduced active-learning campaign that the timed campaign runs launch."""
from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def launcher_argv(ranks: int, template: str | None = None) -> list[str]:
    """The launch command for ``ranks`` MPI ranks: env PBAHPC_LAUNCHER, else ``template``, else the venv's
    mpiexec. ``{ranks}`` is substituted; without it ``-n RANKS`` is appended."""
    template = os.environ.get("PBAHPC_LAUNCHER") or template
    if not template:
        exe = Path(sys.executable).parent / "mpiexec"
        template = f"{shlex.quote(str(exe)) if exe.exists() else 'mpiexec'} -n {{ranks}}"
    if "{ranks}" not in template:
        template += " -n {ranks}"
    return shlex.split(template.replace("{ranks}", str(ranks)))


def launch_env(**extra: str) -> dict[str, str]:
    """This environment plus ``extra``, with the venv's bin first on PATH (mpiexec starts its proxies from
    there) and this checkout first on PYTHONPATH (the ranks import the same pbahpc as the caller)."""
    env = {**os.environ, **extra}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    return env


def launch(ranks: int, argv: Sequence[str], *, launcher: str | None = None, env: dict[str, str] | None = None,
           **run) -> subprocess.CompletedProcess:
    """``argv`` on ``ranks`` MPI ranks (``launcher_argv``) in ``launch_env()`` (or ``env``); ``run`` goes to
    subprocess.run (capture_output, text, timeout, check, ...)."""
    return subprocess.run([*launcher_argv(ranks, launcher), *argv], env=env or launch_env(), **run)


def run_campaign(cfg: dict, path: Path, ranks: int, **run) -> tuple[float, subprocess.CompletedProcess]:
    """Write ``cfg`` to ``path`` and ``pbahpc run`` it on ``ranks`` ranks (output captured as text);
    returns the wall seconds, launch included, and the finished process."""
    import yaml

    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    t = time.perf_counter()
    done = launch(ranks, [sys.executable, "-m", "pbahpc", "run", str(path)], capture_output=True, text=True, **run)
    return time.perf_counter() - t, done


def reduced_campaign(base: str | Path, run_dir: Path, *, ranks: int, iterations: int, cycles: int, md_steps: int,
                     service: dict[str, int] | None = None, temperatures_K: Sequence[float] | None = None,
                     **trainer) -> dict:
    """The active-learning part of the campaign file ``base``, to time: properties and continuum removed
    (the layout below has no ranks for them), ``iterations`` budget, ``cycles`` x ``md_steps`` per
    replica and iteration, replicas on ``ranks_each: auto``; trainer and oracle time-shared on ``ranks``
    ranks, or (``service``: {"trainer": T, "oracle": O}) on ranks of their own. ``temperatures_K`` (with
    the file's first mu only) and ``trainer`` options (level, train_iterations) replace the file's."""
    import yaml

    cfg = yaml.safe_load(Path(base).read_text())
    for section in ("properties", "continuum"):
        cfg.pop(section, None)
    cfg["campaign"].update(run_dir=str(run_dir), iterations=int(iterations))
    rep = cfg["replicas"]
    rep["cycles"] = int(cycles)
    rep["gcmc"]["md_steps"] = int(md_steps)
    if temperatures_K is not None:
        rep["temperatures_K"] = [float(t) for t in temperatures_K]
        rep["mu_eV"] = [float(rep["mu_eV"][0])]
    cfg["trainer"].update({k: int(v) for k, v in trainer.items()})
    if service is None:
        roles = {role: {"ranks": ranks, "shared": True} for role in ("trainer", "oracle")}
    else:
        roles = {role: {"ranks": service[role], "shared": False} for role in ("trainer", "oracle")}
    cfg["layout"] = {"replicas": {"ranks_each": "auto"}, **roles}
    return cfg
