"""Shared helpers: run pbahpc under a real ``mpiexec`` (MPICH oversubscribes 2 cores without flags)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def mpiexec() -> str:
    exe = BIN / "mpiexec"
    return str(exe) if exe.exists() else (shutil.which("mpiexec") or pytest.skip("no mpiexec on PATH"))


def env() -> dict[str, str]:
    e = dict(os.environ)
    e["PATH"] = f"{BIN}{os.pathsep}{e.get('PATH', '')}"
    # the tests' own engines (faulty_engines) must import in the ranks, whatever the cwd
    e["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "tests"), e.get("PYTHONPATH", "")])
    return e


def pbahpc_cmd(n: int, *args: str) -> list[str]:
    """The command line that runs ``pbahpc ARGS`` on ``n`` MPI ranks."""
    return [mpiexec(), "-n", str(n), sys.executable, "-m", "pbahpc", *args]


def run_pbahpc(n: int, *args: str, timeout: float = 300, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(pbahpc_cmd(n, *args), capture_output=True, text=True, timeout=timeout,
                          env=env(), cwd=cwd)


def write_campaign(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.fixture
def smoke_config() -> dict:
    return yaml.safe_load((ROOT / "inputs" / "smoke.yaml").read_text())


def run_mpi_script(tmp_path: Path, source: str, n: int = 2, *args: str):
    """Run ``source`` as a script on ``n`` ranks; return the JSON its rank 0 printed last."""
    import json

    script = tmp_path / "mpi_script.py"
    script.write_text(source)
    out = subprocess.run([mpiexec(), "-n", str(n), sys.executable, str(script), *args], capture_output=True,
                         text=True, timeout=180, env=env(), cwd=ROOT)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])
