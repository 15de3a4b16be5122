"""Whole campaigns under real mpiexec: results, kill -9 + resume, signals, corruption, failures."""
from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from pbahpc.checkpoint import read_checkpoint_file
from pbahpc.continuum.regular_solution import Z_NEIGHBOURS
from pbahpc.driver import EXIT_FAILED, EXIT_OK, EXIT_REQUEUE, EXIT_USAGE
from pbahpc.units import KB_EV_PER_K

from conftest import env, pbahpc_cmd, run_pbahpc, write_campaign

NP = 4


def campaign(tmp_path: Path, smoke: dict, name: str = "c", **overrides) -> Path:
    """The smoke campaign, a bit longer so that kills land mid-run, in its own run directory."""
    cfg = {**smoke, "campaign": {**smoke["campaign"], "name": name, "run_dir": str(tmp_path / name),
                                 "iterations": 4},
           "replicas": {**smoke["replicas"], "lattice": 10, "cycles": 10, "sweeps_per_cycle": 8}}
    for section, values in overrides.items():
        cfg[section] = {**cfg.get(section, {}), **values}
    return write_campaign(tmp_path / f"{name}.yaml", cfg)


def results(run_dir: Path) -> dict:
    payload, _ = read_checkpoint_file(run_dir / "results.h5")
    return payload["groups"]


def assert_bitwise_equal(a, b, where="groups"):
    assert type(a) is type(b), where
    if isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            assert_bitwise_equal(a[k], b[k], f"{where}/{k}")
    elif isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes(), where
    else:
        assert a == b or (a != a and b != b), where


@pytest.fixture(scope="module")
def reference(tmp_path_factory, request):
    """One uninterrupted run: (campaign dict, results, wall seconds)."""
    import yaml
    from conftest import ROOT

    smoke = yaml.safe_load((ROOT / "inputs" / "smoke.yaml").read_text())
    tmp = tmp_path_factory.mktemp("ref")
    path = campaign(tmp, smoke, "ref")
    t = time.perf_counter()
    out = run_pbahpc(NP, "run", str(path))
    assert out.returncode == EXIT_OK, out.stderr
    return smoke, results(tmp / "ref"), time.perf_counter() - t


def test_smoke_campaign_physics(reference):
    """Data really flowed replicas -> oracle -> trainer -> continuum/replicas."""
    smoke, res, _ = reference
    pair, site = smoke["oracle"]["pair_eV"], smoke["oracle"]["site_eV"]
    hist = res["trainer"]["history"]
    assert hist.shape == (4, 3)
    # the energy is linear in (pairs, N): least squares on exact labels recovers the parameters
    np.testing.assert_allclose(hist[:, :2], [[pair, site]] * 4, rtol=0, atol=1e-9)
    n_candidates = 2 * 10 * 4  # replicas x cycles x iterations
    assert res["oracle"]["labelled"] == n_candidates and res["trainer"]["n_train"] == n_candidates
    kT = KB_EV_PER_K * smoke["continuum"]["temperature_K"]
    r = np.sqrt(0.25 + kT / (Z_NEIGHBOURS * pair))
    np.testing.assert_allclose(res["continuum"]["spinodal_x"], [0.5 - r, 0.5 + r], rtol=1e-12)
    for i, T in enumerate((300.0, 600.0)):
        rep = res[f"replica-{i}"]
        assert rep["T_K"] == T and rep["N"].shape == (40,)
    # Iteration 0 samples before any potential arrived (pair = site = 0): an ideal lattice gas with
    # occupation 1 / (1 + exp(-mu / kT)); at 600 K that is 7.9 of 1000 sites, Poisson-like with
    # sigma ~ 2.8 per cycle, so the 10-cycle mean is within 4 of it (> 4 sigma).
    mu, kT = smoke["replicas"]["mu_eV"][0], KB_EV_PER_K * 600.0
    expected = 1000 / (1 + np.exp(-mu / kT))
    assert abs(res["replica-1"]["N"][:10].mean() - expected) < 4.0


def _rank_pids(mpiexec_pid: int) -> list[int]:
    """Descendant processes of mpiexec that run pbahpc (what SLURM signals in a job step)."""
    children: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(d.name))
    out, todo = [], [mpiexec_pid]
    while todo:
        for c in children.get(todo.pop(), []):
            todo.append(c)
            try:
                if b"pbahpc" in (Path("/proc") / str(c) / "cmdline").read_bytes():
                    out.append(c)
            except OSError:
                pass
    return out


def _start(path: Path) -> subprocess.Popen:
    return subprocess.Popen(pbahpc_cmd(NP, "run", str(path)), env=env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


def _wait_for_checkpoint(run_dir: Path, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not list((run_dir / "checkpoints").glob("ckpt-*.h5")):
        assert proc.poll() is None, "campaign ended before its first checkpoint"
        assert time.monotonic() < deadline
        time.sleep(0.02)


def test_kill9_resume_is_bitwise_identical(tmp_path, reference):
    """kill -9 of the whole job at random moments, resume each time: same final results."""
    smoke, ref, wall = reference
    path = campaign(tmp_path, smoke, "killed")
    rng = np.random.default_rng(2026)
    kills = 0
    for attempt in range(12):
        proc = _start(path)
        if attempt < 4:  # four kills at random points, then let it finish
            time.sleep(rng.uniform(0.5, max(1.0, wall)))
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                kills += 1
            proc.wait()
            continue
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == EXIT_OK, err
        break
    assert kills >= 2, "the campaign was too short to be killed; lengthen it"
    assert_bitwise_equal(results(tmp_path / "killed"), ref)


@pytest.mark.parametrize("how", ["SIGTERM to every rank", "SIGUSR1 to mpiexec"])
def test_signal_checkpoints_and_requeues(tmp_path, reference, how):
    smoke, ref, _ = reference
    path = campaign(tmp_path, smoke, "sig")
    proc = _start(path)
    _wait_for_checkpoint(tmp_path / "sig", proc)
    if how.startswith("SIGTERM"):
        for pid in _rank_pids(proc.pid):
            os.kill(pid, signal.SIGTERM)
    else:
        os.kill(proc.pid, signal.SIGUSR1)  # MPICH's mpiexec forwards SIGUSR1 to the ranks
    t = time.monotonic()
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == EXIT_REQUEUE, err
    assert time.monotonic() - t < 30
    assert "stop requested" in err and "requeue" in err
    assert not (tmp_path / "sig" / "results.h5").exists()
    out = run_pbahpc(NP, "run", str(path), "--resume")
    assert out.returncode == EXIT_OK, out.stderr
    assert "resumed from ckpt-" in out.stderr
    assert_bitwise_equal(results(tmp_path / "sig"), ref)


def test_corrupt_newest_checkpoint_falls_back(tmp_path, reference):
    smoke, ref, _ = reference
    path = campaign(tmp_path, smoke, "corrupt", checkpoint={"keep": 3})
    assert run_pbahpc(NP, "run", str(path)).returncode == EXIT_OK
    ckpts = sorted((tmp_path / "corrupt" / "checkpoints").glob("ckpt-*.h5"))
    newest = ckpts[-1]
    data = bytearray(newest.read_bytes())
    data[len(data) // 2: len(data) // 2 + 64] = bytes(64)  # zero a block in the middle
    newest.write_bytes(bytes(data))
    (tmp_path / "corrupt" / "results.h5").unlink()
    out = run_pbahpc(NP, "run", str(path))
    assert out.returncode == EXIT_OK, out.stderr
    assert newest.name in out.stderr and ckpts[-2].name in out.stderr  # the warning names both
    assert_bitwise_equal(results(tmp_path / "corrupt"), ref)


def test_resume_with_other_rank_count_is_refused(tmp_path, reference):
    smoke, _, _ = reference
    path = campaign(tmp_path, smoke, "ranks", layout={"replicas": {"ranks_each": "auto"}})
    proc = _start(path)
    _wait_for_checkpoint(tmp_path / "ranks", proc)
    os.kill(proc.pid, signal.SIGUSR1)
    proc.communicate(timeout=120)
    assert proc.returncode == EXIT_REQUEUE
    out = run_pbahpc(NP + 2, "run", str(path))  # auto would now give 2 ranks per replica
    assert out.returncode == EXIT_USAGE
    assert "was written with 4 ranks" in out.stderr and "Relaunch with 4 ranks" in out.stderr
    assert "Traceback" not in out.stderr


def test_resume_flag_without_checkpoint(tmp_path, reference):
    smoke, _, _ = reference
    out = run_pbahpc(2, "run", str(campaign(tmp_path, smoke, "none", layout={
        "trainer": {"ranks": 1, "shared": True}, "oracle": {"ranks": 1, "shared": True}})), "--resume")
    assert out.returncode == EXIT_USAGE and "no checkpoint" in out.stderr


@pytest.mark.parametrize("oracle, expected", [("lattice-gas", [0, 0, 1]),
                                             ("faulty_engines:ConvergingOracle", [0, 1])])
def test_components_are_told_the_last_iteration(tmp_path, reference, oracle, expected):
    """StepContext.last_iteration: the budget's last iteration, or the one in which an earlier stage (here
    the oracle's) agreed on convergence; the campaign ends after it."""
    smoke, _, _ = reference
    path = campaign(tmp_path, smoke, "last", campaign={"iterations": 3}, oracle={"engine": oracle},
                    continuum={"engine": "faulty_engines:RecordingContinuum"})
    out = run_pbahpc(NP, "run", str(path), timeout=120)
    assert out.returncode == EXIT_OK, out.stderr
    assert results(tmp_path / "last")["continuum"]["last_iteration"].tolist() == expected


def test_exception_on_one_rank_stops_everyone(tmp_path, reference):
    """A failing single-rank replica: the others reach the sync point, all stop with exit 1."""
    smoke, _, _ = reference
    path = campaign(tmp_path, smoke, "fail", replicas={"engine": "faulty_engines:FailingReplica"})
    out = run_pbahpc(NP, "run", str(path), timeout=120)
    assert out.returncode == EXIT_FAILED, out.stderr
    assert "rank 1 (replica-1) failed in stage 'sample' of iteration 1: FloatingPointError: injected failure" \
        in out.stderr
    assert "last checkpoint" in out.stderr and "Traceback" not in out.stderr
    assert "FloatingPointError" in (tmp_path / "fail" / "logs" / "error-rank1.log").read_text()
    assert list((tmp_path / "fail" / "checkpoints").glob("ckpt-*.h5"))


def test_exception_inside_a_collective_aborts_instead_of_hanging(tmp_path, reference):
    """Rank 1 fails while rank 0 of the same replica waits in an allreduce with it: abort, no hang."""
    smoke, _, _ = reference
    path = campaign(tmp_path, smoke, "abort", campaign={"abort_timeout_s": 3.0},
                    layout={"replicas": {"ranks_each": 2}, "trainer": {"ranks": 1, "shared": True},
                            "oracle": {"ranks": 1, "shared": True}, "continuum": {"ranks": 0}},
                    replicas={"engine": "faulty_engines:FailingReplica", "temperatures_K": [300.0]})
    t = time.monotonic()
    out = run_pbahpc(2, "run", str(path), timeout=120)
    assert out.returncode != EXIT_OK
    assert time.monotonic() - t < 60
    log = (tmp_path / "abort" / "logs" / "error-rank1.log").read_text()
    assert "injected failure" in log and "aborting the job" in log  # stderr too, unless the launcher drops it
