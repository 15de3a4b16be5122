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


def stop_when(path: Path, log: Path, ready, timeout: float = 600) -> tuple[int, str]:
    """``pbahpc run PATH`` on 2 ranks, stopped (SIGUSR1, as a batch system's warning) as soon as
    ``ready(text of log)`` holds: (exit code, stderr)."""
    import signal
    import time

    proc = subprocess.Popen(pbahpc_cmd(2, "run", str(path)), env=env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.monotonic() + timeout
    while not (log.exists() and ready(log.read_text())):
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        assert time.monotonic() < deadline
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGUSR1)  # MPICH's mpiexec forwards it to the ranks
    _, err = proc.communicate(timeout=300)
    return proc.returncode, err


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


def demo_campaign(tmp: Path) -> Path:
    """inputs/demo.yaml reduced (smaller runs, level-4 MTP), with properties and a P2D cell of one charge:
    tmp/e2e.yaml (returned) and tmp/p2d.yaml; the run directory is tmp/run."""
    cfg = yaml.safe_load((ROOT / "inputs" / "demo.yaml").read_text())
    cfg["campaign"].update(run_dir=str(tmp / "run"), iterations=8)
    cfg["layout"].update(properties={"ranks": 2, "shared": True}, continuum={"ranks": 1, "shared": True})
    cfg["replicas"].update(cycles=8)
    cfg["replicas"]["gcmc"].update(md_steps=100)
    cfg["trainer"].update(level=4, train_iterations=30)
    template = yaml.safe_load((ROOT / "inputs" / "p2d-demo.yaml").read_text())
    template["protocol"] = [{"charge": {"c_rate": 2.0, "until_V": 4.5}}]
    (tmp / "p2d.yaml").write_text(yaml.safe_dump(template))
    cfg["properties"] = {"free_energy": {"temperatures_K": [400.0], "cycles_per_window": 4},
                         "diffusion": {"temperatures_K": [800.0], "x_inserted": [0.5, 1.5], "production_ps": 1.0,
                                       "thermalise_ps": 0.2, "blocks": 4},
                         "interface": {"repeats": [1, 2, 3], "relax_ps": 0.2},
                         "na_reference_eV": -0.2188, "p2d_template": str(tmp / "p2d.yaml")}
    cfg["continuum"] = {"engine": "p2d", "parameters": str(tmp / "p2d.yaml")}
    return write_campaign(tmp / "e2e.yaml", cfg)


def report_campaign(tmp: Path) -> Path:
    """demo_campaign cut to one iteration of a level-2 MTP, the properties with their reference runs (the
    fidelity table) at two diffusion temperatures (an Arrhenius plot) and a 300 s P2D charge: every section
    of report.html from real files in about a minute on 2 cores (tests/test_report.py)."""
    path = demo_campaign(tmp)
    cfg = yaml.safe_load(path.read_text())
    cfg["campaign"].update(iterations=1)
    cfg["replicas"].update(cycles=3)
    cfg["replicas"]["gcmc"].update(md_steps=50)
    cfg["oracle"]["pretrain"].update(steps=10)
    cfg["trainer"].update(level=2, train_iterations=20)
    props = cfg["properties"]
    props["free_energy"].update(cycles_per_window=2)  # the teacher's windows analyse; a 1-iteration MTP's may not
    props["diffusion"].update(temperatures_K=[700.0, 900.0], x_inserted=[0.5], production_ps=1.5, thermalise_ps=0.1)
    props["interface"].update(relax_ps=0.1)
    props["reference"] = True
    props["grade"] = False  # the page, not relearning: a level-2 MTP leaves its domain, and rounds add iterations
    cell = yaml.safe_load((tmp / "p2d.yaml").read_text())
    cell["protocol"] = [{"charge": {"c_rate": 2.0, "until_V": 4.5, "for_s": 300.0}}]
    (tmp / "p2d.yaml").write_text(yaml.safe_dump(cell))
    return write_campaign(path, cfg)
