"""The jobscripts under a real SLURM: a 2-node cluster on this host (tools/slurm_localhost.sh: munge,
slurmctld, one slurmd per node, MPI across the nodes through srun's pmi2).

- jobscripts/slurm.sh: the time-limit warning (USR1) comes mid-campaign -> pbahpc checkpoints and exits
  75 -> the script requeues the job -> SLURM restarts it -> pbahpc resumes -> the finished campaign's
  results are bitwise those of an uninterrupted run.
- jobscripts/scaling.sh: one job per node count (1 and 2 nodes) and the afterany merge job.

Skipped only where SLURM is not installed or cannot be started here (the reason is given); .ci/run
installs and starts it and sets PBAHPC_REQUIRE_SLURM=1, which turns such a skip into a failure.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, env, pbahpc_cmd, run_pbahpc, write_campaign
from test_campaign import assert_bitwise_equal, results
from test_scaling import read_table

TOOL = ROOT / "tools" / "slurm_localhost.sh"
NODES = 2


def _unavailable(reason: str):
    if os.environ.get("PBAHPC_REQUIRE_SLURM") == "1":
        pytest.fail(f"SLURM required (PBAHPC_REQUIRE_SLURM=1) but {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def slurm_env():
    """The environment of a client of the running cluster (started here if it was not running)."""
    if not all(shutil.which(c) for c in ("slurmctld", "slurmd", "sbatch", "munged")):
        _unavailable("SLURM is not installed (tools/slurm_localhost.sh start installs it from the distribution)")
    if os.geteuid() != 0 and subprocess.run(["sudo", "-n", "true"], capture_output=True).returncode != 0:
        _unavailable("starting SLURM's daemons needs root or password-less sudo")
    e = {k: v for k, v in env().items() if not k.startswith("SLURM_")}  # no allocation of an outer SLURM
    e["PBAHPC_SLURM_NODES"] = str(NODES)
    was_running = subprocess.run(["bash", str(TOOL), "status"], env=e, capture_output=True).returncode == 0
    out = subprocess.run(["bash", str(TOOL), "start"], env=e, capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        _unavailable(f"tools/slurm_localhost.sh start failed: {out.stderr.strip()[-500:]}")
    e["SLURM_CONF"] = out.stderr.rsplit("SLURM_CONF=", 1)[1].split()[0]
    e["PBAHPC_VENV"] = sys.prefix  # the jobscripts activate this venv
    yield e
    if not was_running:
        subprocess.run(["bash", str(TOOL), "stop"], env=e, capture_output=True, timeout=120)


def job(e: dict, jobid: str) -> dict[str, str]:
    """`scontrol show job` as a dict (finished jobs stay listed: MinJobAge=3600 in the cluster)."""
    out = subprocess.run(["scontrol", "show", "job", "-o", jobid], env=e, capture_output=True, text=True,
                         check=True).stdout
    return dict(kv.split("=", 1) for kv in out.split() if "=" in kv)


def sbatch(e: dict, cwd: Path, *args: str) -> str:
    out = subprocess.run(["sbatch", "--parsable", *args], env=e, cwd=cwd, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip().split(";")[0]


def test_singletons_under_srun_are_refused(slurm_env, tmp_path, smoke_config):
    """srun with a PMI that this MPI does not speak: each task is its own 1-rank world; pbahpc stops
    (exit 2, one line) instead of running the campaign N times into one run directory."""
    path = write_campaign(tmp_path / "c.yaml", {**smoke_config, "campaign": {
        **smoke_config["campaign"], "run_dir": str(tmp_path / "c")}})
    out = subprocess.run(["srun", "--mpi=none", f"--nodes={NODES}", "--ntasks-per-node=1",
                          *pbahpc_cmd(1, "run", str(path))[3:]], env=slurm_env, cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2, out.stderr
    assert "MPI sees 1 rank in each" in out.stderr and "--mpi=pmi2" in out.stderr
    assert not (tmp_path / "c").exists()


def submit_campaign(e: dict, tmp_path: Path, path: Path, out: Path) -> str:
    """jobscripts/slurm.sh on 2 nodes x 1 rank with a 1 minute limit and the warning 20 s before it.
    SLURM checks the limits every 30 s and sends the warning at the first check within 30 s of its
    time, so it comes 10-40 s after the start."""
    return sbatch(e, tmp_path, f"--nodes={NODES}", "--ntasks-per-node=1", "--time=1", "--signal=B:USR1@20",
                  f"--output={out}", str(ROOT / "jobscripts" / "slurm.sh"), str(path))


def wait_for_cycle(e: dict, jobid: str, log: Path) -> tuple[dict, bool]:
    """Wait until the job has ended: (its `scontrol` record, whether pbahpc was stopped by the warning).
    After the first checkpoint-and-requeue the time limit is raised, so the resumed job finishes."""
    requeued = False
    deadline = time.monotonic() + 400
    while (info := job(e, jobid))["JobState"] not in ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT"):
        text = log.read_text() if log.exists() else ""
        if not requeued and "pbahpc exited with 75" in text:
            subprocess.run(["scontrol", "update", f"jobid={jobid}", "TimeLimit=10"], env=e, check=True)
            requeued = True
        assert time.monotonic() < deadline, f"job {jobid} {info['JobState']}:\n{text[-3000:]}"
        time.sleep(0.5)
    return info, requeued


def test_slurm_sh_warning_checkpoint_requeue_resume(slurm_env, tmp_path, smoke_config):
    # The smoke campaign on 2 ranks (replicas on both, trainer and oracle time-shared), with as many
    # iterations as take ~25 s alone here (two short runs measure the time per iteration); beside the
    # uninterrupted run it takes ~twice that, so the warning lands mid-campaign. Should the campaign
    # still end first (the machine's load changed), it is run again twice as long.
    smoke = smoke_config
    cfg = {**smoke, "layout": {**smoke["layout"], "trainer": {"ranks": 1, "shared": True},
                               "oracle": {"ranks": 1, "shared": True}},
           "replicas": {**smoke["replicas"], "lattice": 10, "cycles": 10, "sweeps_per_cycle": 8}}

    def campaign(name: str, iterations: int) -> Path:
        return write_campaign(tmp_path / f"{name}.yaml", {**cfg, "campaign": {
            **cfg["campaign"], "name": name, "run_dir": str(tmp_path / name), "iterations": iterations}})

    wall = []
    for n in (2, 6):
        t = time.perf_counter()
        assert run_pbahpc(2, "run", str(campaign(f"calibrate{n}", n))).returncode == 0
        wall.append(time.perf_counter() - t)
    iterations = int(min(200, max(20, 25 / max(wall[1] - wall[0], 0.1) * 4)))
    for attempt in range(3):
        name = f"try{attempt}"
        path, log = campaign(name, iterations), tmp_path / f"{name}.out"
        jobid = submit_campaign(slurm_env, tmp_path, path, log)
        ref = subprocess.Popen(pbahpc_cmd(2, "run", str(campaign(f"{name}-ref", iterations))), env=env(),
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        info, requeued = wait_for_cycle(slurm_env, jobid, log)
        _, err = ref.communicate(timeout=300)
        assert ref.returncode == 0, err[-3000:]
        if requeued or info["JobState"] != "COMPLETED":
            break
        iterations *= 2
    text = log.read_text()
    assert info["JobState"] == "COMPLETED" and info["ExitCode"] == "0:0", text[-3000:]
    assert requeued, f"{iterations // 2} iterations finished before the warning 3 times\n" + text[-3000:]

    # the whole cycle, in order, in the job's (appended) output
    cycle = ["restart count 0", "doctor: OK", "USR1: the time limit is near; asking pbahpc to checkpoint",
             "stop requested: checkpoint ckpt-", "exit 75 (requeue)", "pbahpc exited with 75",
             f"requeueing job {jobid}", "restart count ", "resumed from ckpt-", "campaign complete",
             "pbahpc exited with 0"]
    pos = 0
    for line in cycle:
        found = text.find(line, pos)
        assert found >= 0, f"{line!r} missing after position {pos}:\n{text[-3000:]}"
        pos = found + len(line)
    assert int(info["Restarts"]) >= 1
    assert_bitwise_equal(results(tmp_path / name), results(tmp_path / f"{name}-ref"))


def test_scaling_sh_one_job_per_node_count_and_merge(slurm_env, tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({"kernels": {"label": {"ranks": [1, 2], "strong": 2}}}))
    e = {**slurm_env, "TASKS_PER_NODE": "1", "SCALING_OUT": str(tmp_path / "out"), "SCALING_TIME": "5"}
    out = subprocess.run(["bash", str(ROOT / "jobscripts" / "scaling.sh"), str(spec), "1", "2"], env=e,
                         cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    ids = [line.split()[-1] for line in out.stdout.splitlines() if "submitted" in line]
    merge = out.stdout.split("merge job ")[1].split()[0]
    first = job(e, merge)  # the points take seconds: the merge job still waits for them
    assert len(ids) == 2 and first["JobState"] == "PENDING", first
    assert all(f"afterany:{i}" in first["Dependency"] for i in ids), first
    deadline = time.monotonic() + 240
    while (m := job(e, merge))["JobState"] in ("PENDING", "RUNNING"):
        assert time.monotonic() < deadline, m
        time.sleep(0.5)
    assert m["JobState"] == "COMPLETED", [p.read_text() for p in (tmp_path / "out").glob("merge-*.out")]
    points = [job(e, i) for i in ids]
    for k, p in zip((1, 2), points):
        assert p["JobState"] == "COMPLETED" and p["NumNodes"] == str(k), p
        # the merge job started only after both points had ended
        assert m["StartTime"] >= p["EndTime"]
    cols = read_table(tmp_path / "out" / "merged" / "scaling.h5")[0]
    # ranks as the point's MPI world counted them: 2 means one world across both nodes, not 2 singletons
    assert cols["ranks"].tolist() == [1, 2] and cols["kernel"] == ["label", "label"]
    assert "srun --exact" in next((tmp_path / "out" / "nodes-2" / "work").glob("*/command.txt")).read_text()


def test_scaling_sh_one_allocation_with_sub_steps(slurm_env, tmp_path):
    """`sbatch --nodes=2 scaling.sh SPEC 1 2 4`: each point a job step of K of the allocation's nodes,
    4 skipped, then the merge, in one job."""
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({"kernels": {"label": {"ranks": [1, 2], "strong": 2}}}))
    e = {**slurm_env, "TASKS_PER_NODE": "1", "SCALING_OUT": str(tmp_path / "out")}
    jobid = sbatch(e, tmp_path, f"--nodes={NODES}", "--ntasks-per-node=1", "--time=5", f"--output={tmp_path}/job.out",
                   str(ROOT / "jobscripts" / "scaling.sh"), str(spec), "1", "2", "4")
    deadline = time.monotonic() + 240
    while (info := job(e, jobid))["JobState"] in ("PENDING", "RUNNING"):
        assert time.monotonic() < deadline, info
        time.sleep(0.5)
    text = (tmp_path / "job.out").read_text()
    assert info["JobState"] == "COMPLETED", text[-3000:]
    assert "skipping 4 node(s): the allocation has 2" in text
    cols = read_table(tmp_path / "out" / "merged" / "scaling.h5")[0]
    assert cols["ranks"].tolist() == [1, 2]
