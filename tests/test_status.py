"""``pbahpc status RUNDIR`` on real run directories (tiny 2-rank lattice-gas campaigns)."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pbahpc.cli import main
from pbahpc.config import load
from pbahpc.driver import EXIT_FAILED, EXIT_OK, EXIT_USAGE, syncs_per_iteration

from conftest import ROOT, env, run_pbahpc, write_campaign

ITERATIONS = 3
# one sync point per stage with ranks (smoke on 2 ranks: no properties group); the final checkpoint is at the last
SYNCS = syncs_per_iteration(load(ROOT / "inputs" / "smoke.yaml"), 4)  # the runs below: the same stages on 2
FINAL_STEP = SYNCS * ITERATIONS


def _campaign(tmp: Path, smoke: dict, name: str, **replicas) -> Path:
    cfg = {**smoke, "campaign": {**smoke["campaign"], "name": name, "run_dir": str(tmp / name),
                                 "iterations": ITERATIONS},
           "layout": {**smoke["layout"], "trainer": {"ranks": 1, "shared": True},
                      "oracle": {"ranks": 1, "shared": True}},
           "replicas": {**smoke["replicas"], **replicas}}
    return write_campaign(tmp / f"{name}.yaml", cfg)


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """A completed run, and one stopped by an exception in iteration 1 (FailingReplica)."""
    import yaml

    smoke = yaml.safe_load((ROOT / "inputs" / "smoke.yaml").read_text())
    tmp = tmp_path_factory.mktemp("status")
    out = run_pbahpc(2, "run", str(_campaign(tmp, smoke, "done")), timeout=120)
    assert out.returncode == EXIT_OK, out.stderr
    out = run_pbahpc(2, "run", str(_campaign(tmp, smoke, "failed", engine="faulty_engines:FailingReplica")),
                     timeout=120)
    assert out.returncode == EXIT_FAILED, out.stderr
    return {"done": tmp / "done", "failed": tmp / "failed"}


def _snapshot(d: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(d)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(d.rglob("*"))}


def status(run_dir: Path, capsys) -> tuple[int, str, str]:
    before = _snapshot(run_dir) if run_dir.is_dir() else None
    code = main(["status", str(run_dir)])
    out, err = capsys.readouterr()
    if before is not None:
        assert _snapshot(run_dir) == before, "status modified the run directory"
    return code, out, err


def _copy(run_dir: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(run_dir, tmp_path / run_dir.name))


def test_completed_run(runs, capsys):
    code, out, err = status(runs["done"], capsys)
    assert code == EXIT_OK, err
    assert "campaign 'done': 3 iteration(s)" in out
    assert f"ckpt-{FINAL_STEP:08d}.h5: step {FINAL_STEP}, iteration {ITERATIONS}," in out
    assert f"iteration reached: {ITERATIONS}/{ITERATIONS} (checkpoint step {FINAL_STEP}" in out
    assert "status: complete (results.h5: 3 iteration(s)" in out and "not complete" not in out
    assert "sha256 OK" in out and "FAILS VERIFICATION" not in out
    assert "campaign complete" in out  # driver.log tail
    assert "errors: none" in out
    assert "rank0 [" in out and "rank1 [" in out  # timings.yaml


def test_stopped_run_names_the_checkpoint_to_resume_from(runs, capsys):
    code, out, err = status(runs["failed"], capsys)
    assert code == EXIT_OK, err
    # FailingReplica raises in iteration 1's first stage: the last sync point passed ends iteration 0
    step = SYNCS
    assert f"iteration reached: 1/3 (checkpoint step {step}, next stage 'sample')" in out
    assert "status: not complete (no results.h5)" in out
    assert f"resume from ckpt-{step:08d}.h5 (step {step})" in out
    assert "error in error-rank1.log (1 entry), last:" in out and "injected failure" in out
    assert "campaign stopped" in out  # driver.log tail


def test_missing_results_is_not_complete(runs, tmp_path, capsys):
    run_dir = _copy(runs["done"], tmp_path)
    (run_dir / "results.h5").unlink()
    code, out, _ = status(run_dir, capsys)
    assert code == EXIT_OK
    assert "status: not complete" in out
    assert f"resume from ckpt-{FINAL_STEP:08d}.h5 (step {FINAL_STEP})" in out


def test_corrupt_newest_checkpoint_fails_verification(runs, tmp_path, capsys):
    run_dir = _copy(runs["done"], tmp_path)
    (run_dir / "results.h5").unlink()
    newest = run_dir / "checkpoints" / f"ckpt-{FINAL_STEP:08d}.h5"
    data = bytearray(newest.read_bytes())
    mid = len(data) // 2
    data[mid:mid + 64] = bytes(b ^ 0xFF for b in data[mid:mid + 64])  # flip bytes, same size
    newest.write_bytes(bytes(data))
    code, out, _ = status(run_dir, capsys)
    assert code == EXIT_OK
    line = next(t for t in out.splitlines() if newest.name in t and "step" in t)
    assert "FAILS VERIFICATION" in line
    assert "whole-file sha256 differs from the manifest" in out
    prev = FINAL_STEP - 1
    assert f"ckpt-{prev:08d}.h5: step {prev}" in out and "sha256 OK" in out
    assert f"resume from ckpt-{prev:08d}.h5 (step {prev})" in out
    assert "status: not complete" in out


def test_too_old_schema_is_refused_as_resume_refuses_it(runs, tmp_path, capsys):
    """A newest checkpoint of an older schema (its manifest entry matching, as the older version wrote it)
    stops a rerun; status says so instead of naming an older checkpoint to resume from."""
    import hashlib
    import json

    import h5py

    from pbahpc.checkpoint import CheckpointError, CheckpointStore
    from pbahpc.checkpoint.h5format import MIN_SCHEMA_VERSION

    run_dir = _copy(runs["done"], tmp_path)
    (run_dir / "results.h5").unlink()
    newest = run_dir / "checkpoints" / f"ckpt-{FINAL_STEP:08d}.h5"
    with h5py.File(newest, "r+") as f:
        f.attrs["schema_version"] = MIN_SCHEMA_VERSION - 1
    manifest = run_dir / "checkpoints" / "manifest.json"
    doc = json.loads(manifest.read_text())
    entry = next(e for e in doc["checkpoints"] if e["step"] == FINAL_STEP)
    entry.update(sha256=hashlib.sha256(newest.read_bytes()).hexdigest(), size=newest.stat().st_size)
    manifest.write_text(json.dumps(doc))
    with pytest.raises(CheckpointError, match="older than the oldest supported"):
        CheckpointStore(run_dir / "checkpoints").load_latest()  # what a rerun's resume does
    code, out, _ = status(run_dir, capsys)
    assert code == EXIT_OK
    line = next(t for t in out.splitlines() if newest.name in t and "step" in t and "refuses" not in t)
    assert "CANNOT BE RESUMED" in line and "older than the oldest supported" in out
    prev = FINAL_STEP - 1
    assert f"ckpt-{prev:08d}.h5: step {prev}" in out and "not checked" in out
    assert not any(t.strip().startswith("resume from") for t in out.splitlines())
    assert f"a rerun refuses to resume from {newest.name} (step {FINAL_STEP})" in out
    assert "iteration reached: ?/3 (no valid checkpoint)" in out


def test_not_a_run_directory(tmp_path, capsys):
    for path in (tmp_path, tmp_path / "missing"):
        code, out, err = status(path, capsys)
        assert code == EXIT_USAGE and out == ""
        assert err.count("\n") == 1 and str(path) in err and "not a pbahpc run directory" in err


def test_cli_without_mpi(runs):
    """Through ``python -m pbahpc``-style entry, and mpi4py is never imported."""
    code = ("import sys; from pbahpc.cli import main; rc = main(['status', sys.argv[1]]); "
            "assert 'mpi4py' not in sys.modules, 'mpi4py imported'; sys.exit(rc)")
    out = subprocess.run([sys.executable, "-c", code, str(runs["done"])], capture_output=True, text=True,
                         env=env(), timeout=60)
    assert out.returncode == EXIT_OK, out.stderr
    assert "status: complete" in out.stdout


def test_results_carry_the_driver_timers(runs):
    """results.h5 holds every rank's timers and one (iteration, stage, compute, wait) row per sync point."""
    from pbahpc.checkpoint import read_checkpoint_file

    payload, meta = read_checkpoint_file(runs["done"] / "results.h5")
    timings = payload["timings"]
    assert sorted(timings) == ["rank00000", "rank00001"]
    for t in timings.values():
        rows = t["stages"]
        assert rows.shape == (FINAL_STEP, 4)
        assert sorted(set(rows[:, 0])) == list(range(ITERATIONS))
        assert float(rows[:, 2].sum()) <= float(t["compute"]) + 1e-9 and float(rows[:, 3].sum()) <= float(t["wait"]) + 1e-9
        assert 0 < float(t["compute"]) + float(t["wait"]) <= float(t["wall"])
    assert meta.meta["stage_columns"] == "iteration stage compute_s wait_s"
