"""`pbahpc scaling`: efficiency arithmetic, spec validation, a 1- and 2-rank sweep end to end, merge."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import ROOT, env

from pbahpc.cli import main as cli
from pbahpc.scaling.launch import launcher_argv
from pbahpc.scaling.runner import collect_campaign, parse_lammps_log
from pbahpc.scaling.sweep import load_spec
from pbahpc.scaling.tables import (build_table, read_table, scaling_columns, speedup, strong_efficiency,
                                   weak_efficiency)


# ----------------------------------------------------------------------------- arithmetic
def test_strong_scaling_arithmetic():
    assert speedup(10.0, 4.0) == pytest.approx(2.5)
    assert strong_efficiency(10.0, 1, 4.0, 4) == pytest.approx(0.625)
    assert strong_efficiency(8.0, 2, 2.0, 8) == pytest.approx(1.0)  # baseline at N1 = 2: T1 N1 / (TN N)
    s, e = scaling_columns("strong", [4, 1, 2], [4.0, 10.0, 6.0])  # baseline = fewest ranks, any order
    np.testing.assert_allclose(s, [2.5, 1.0, 10 / 6])
    np.testing.assert_allclose(e, [0.625, 1.0, 10 / 12])


def test_weak_scaling_arithmetic():
    assert weak_efficiency(5.0, 10.0) == pytest.approx(0.5)
    s, e = scaling_columns("weak", [2, 4, 8], [5.0, 5.5, 10.0])
    np.testing.assert_allclose(e, [1.0, 5 / 5.5, 0.5])
    np.testing.assert_allclose(s, [1.0, 2 * 5 / 5.5, 2.0])  # scaled speed-up E N / N1
    with pytest.raises(ValueError):
        scaling_columns("sideways", [1], [1.0])


def _pt(kernel, mode, ranks, t, repeat=0, size=4, split="-", **metrics):
    return {"kernel": kernel, "mode": mode, "split": split, "size": size, "ranks": ranks, "repeat": repeat,
            "time_s": t, "metrics": metrics, "breakdown": {"compute_s": t / 2}}


def test_table_rows_repeats_and_series():
    pts = [_pt("label", "strong", 1, 12.0), _pt("label", "strong", 1, 10.0, repeat=1),
           _pt("label", "strong", 2, 6.0), _pt("label", "strong", 4, 5.0),
           _pt("label", "weak", 1, 2.0, size=8), _pt("label", "weak", 2, 4.0, size=8),
           _pt("train", "strong", 2, 3.0), {**_pt("train", "strong", 4, 1.0), "error": "exit code 1"}]
    t = build_table(pts)
    rows = {(r["kernel"], r["mode"], r["ranks"]): r for r in t["rows"]}
    assert len(t["rows"]) == 6  # repeats folded, the failed point left out
    r1 = rows["label", "strong", 1]
    assert (r1["time_s"], r1["time_mean_s"], r1["repeats"]) == (10.0, 11.0, 2)
    assert rows["label", "strong", 2]["efficiency"] == pytest.approx(10 / 12)
    assert rows["label", "strong", 4]["speedup"] == pytest.approx(2.0)
    assert rows["label", "weak", 2]["efficiency"] == pytest.approx(0.5)
    assert rows["train", "strong", 2]["efficiency"] == pytest.approx(1.0)  # its own series' baseline
    assert t["columns"]["ranks"] == [1, 2, 4, 1, 2, 2]
    assert "b_compute_s" in t["columns"]


def test_lammps_log_and_campaign_timings_parsing():
    log = """Loop time of 2.0 on 2 procs for 100 steps with 50 atoms
Section |  min time  |  avg time  |  max time  |%varavg| %total
---------------------------------------------------------------
Pair    | 1.0        | 1.2        | 1.4        |   0.0 | 60.0
Comm    | 0.1        | 0.3        | 0.5        |   0.0 | 15.0
Other   |            | 0.5        |            |       | 25.0
Loop time of 1.0 on 2 procs for 1 steps with 52 atoms
Pair    | 0.1        | 0.2        | 0.3        |   0.0 | 20.0
"""
    got = parse_lammps_log(log)
    assert got["loop_s"] == pytest.approx(3.0) and got["steps"] == 101 and got["runs"] == 2
    assert got["atom_steps"] == 100 * 50 + 52
    assert got["sections"] == pytest.approx({"Pair": 1.4, "Comm": 0.3, "Other": 0.5})
    timings = {"stages": ["sample", "select", "label", "train"],
               "rank0": {"compute": 8.0, "wait": 1.0, "route": 0.1, "checkpoint": 0.5, "wall": 10.0,
                         "stages": [[0, 0, 2.0, 0.0], [0, 2, 3.0, 0.5], [0, 3, 3.0, 0.5]]},
               "rank1": {"compute": 6.0, "wait": 3.0, "route": 0.3, "checkpoint": 0.5, "wall": 10.0,
                         "stages": [[0, 0, 1.0, 1.0], [0, 2, 4.0, 0.0], [0, 3, 1.0, 2.0]]}}
    c = collect_campaign(timings)
    assert c["time_s"] == 10.0
    assert c["breakdown"]["stage_sample_s"] == 2.0 and c["breakdown"]["stage_label_s"] == 4.0
    assert c["metrics"]["retrain_latency_s"] == 3.0
    assert c["breakdown"]["wait_s"] == pytest.approx(2.0)
    assert c["metrics"]["idle_share"] == pytest.approx(1 - (0.8 + 0.6) / 2)


def test_launcher_template(monkeypatch):
    monkeypatch.delenv("PBAHPC_LAUNCHER", raising=False)
    argv = launcher_argv(3)
    assert argv[-2:] == ["-n", "3"] and argv[0].endswith("mpiexec")
    assert launcher_argv(4, "srun --nodes=2 -n {ranks}") == ["srun", "--nodes=2", "-n", "4"]
    monkeypatch.setenv("PBAHPC_LAUNCHER", "srun --exact")  # env wins; -n appended without {ranks}
    assert launcher_argv(2, "mpirun -np {ranks}") == ["srun", "--exact", "-n", "2"]


# ----------------------------------------------------------------------------- spec validation
GOOD = {"output": "out", "kernels": {"label": {"ranks": [1, 2], "strong": 4}}}


@pytest.mark.parametrize("change, key", [
    ({"kernels": {"label": {"ranks": [1, 0], "strong": 4}}}, "kernels.label.ranks"),
    ({"kernels": {"label": {"strong": 4}}}, "kernels.label.ranks"),
    ({"kernels": {"label": {"ranks": [1], "strong": "big"}}}, "kernels.label.strong"),
    ({"kernels": {"label": {"ranks": [1]}}}, "kernels.label.strong"),
    ({"kernels": {"label": {"ranks": [1], "weak": 2, "cells": 0}}}, "kernels.label.cells"),
    ({"kernels": {"label": {"ranks": [1], "weak": 2, "level": 4}}}, "kernels.label.level"),
    ({"kernels": {"fft": {"ranks": [1], "strong": 2}}}, "kernels.fft"),
    ({"kernels": {"p2d": {"ranks": [1], "strong": 20, "parameters": "nowhere.yaml"}}}, "kernels.p2d.parameters"),
    ({"kernels": {"campaign": {"ranks": [2], "strong": 1, "splits": [{"trainer": 1, "oracle": 1}]}}},
     "kernels.campaign.ranks"),
    ({"kernels": {"campaign": {"ranks": [3], "strong": 1, "splits": ["private"]}}}, "kernels.campaign.splits"),
    ({"repeats": 0}, "repeats"),
    ({"kernels": {}}, "kernels"),
    ({"walltime": 3}, "walltime"),
])
def test_spec_errors_are_one_line_naming_the_key(tmp_path, capsys, change, key):
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({**GOOD, **change}))
    assert cli(["scaling", "run", str(spec), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert f": {key}: " in err, err
    assert not (tmp_path / "o").exists()


def test_spec_points_and_cli_selection_errors(tmp_path, capsys):
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({"repeats": 2, "kernels": {
        "label": {"ranks": [2, 1], "strong": 4, "weak": [2, 3]},
        "campaign": {"ranks": [3], "strong": 1, "splits": ["shared", {"trainer": 1, "oracle": 1}]}}}))
    s = load_spec(spec)
    assert len(s.points) == 2 * (2 * 3) + 2 * 2
    assert {p.split for p in s.points if p.kernel == "campaign"} == {"shared", "t1o1"}
    assert cli(["scaling", "run", str(spec)]) == 2  # no output key, no --out
    assert "output" in capsys.readouterr().err
    assert cli(["scaling", "run", str(spec), "--out", str(tmp_path / "o"), "--ranks", "7"]) == 2
    assert "--ranks" in capsys.readouterr().err
    assert cli(["scaling", "run", str(spec), "--out", str(tmp_path / "o"), "--kernels", "gcmc"]) == 2
    assert "--kernels" in capsys.readouterr().err
    assert cli(["scaling", "merge", str(tmp_path / "missing"), "--out", str(tmp_path / "m")]) == 2


# ----------------------------------------------------------------------------- end to end
SMALL = {
    "repeats": 1,
    "kernels": {
        "gcmc": {"ranks": [1, 2], "strong": 2, "cycles": 2, "md_steps": 50},
        "train": {"ranks": [1, 2], "strong": 4, "level": 2, "iterations": 1},
        "label": {"ranks": [1, 2], "strong": 8, "weak": 4},
        "p2d": {"ranks": [1, 2], "strong": 20, "parameters": str(ROOT / "inputs" / "p2d-fickian.yaml")},
        "campaign": {"ranks": [1, 2], "strong": 1, "base": str(ROOT / "inputs" / "demo.yaml"), "cycles": 2,
                     "md_steps": 20, "level": 2, "train_iterations": 1},
    },
}


def scaling(*args: str, timeout: float = 400) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pbahpc", "scaling", *args], capture_output=True, text=True,
                          timeout=timeout, env=env(), cwd=ROOT)


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    d = tmp_path_factory.mktemp("scaling")
    spec = d / "small.yaml"
    spec.write_text(yaml.safe_dump(SMALL))
    out = scaling("run", str(spec), "--out", str(d / "out"))
    return d, out


def test_sweep_over_1_and_2_ranks_writes_tables_and_plots(sweep):
    d, out = sweep
    assert out.returncode == 0, out.stderr[-3000:]
    cols, points, meta = read_table(d / "out" / "scaling.h5")
    assert meta["rows"] == 12 and len(points) == 12
    got = sorted(zip(cols["kernel"], cols["mode"], cols["ranks"].tolist()))
    want = sorted([(k, "strong", r) for k in SMALL["kernels"] for r in (1, 2)] + [("label", "weak", 2)]
                  + [("label", "weak", 1)])
    assert got == want
    assert np.all(cols["time_s"] > 0)
    one = cols["ranks"] == 1
    np.testing.assert_allclose(cols["efficiency"][one], 1.0)
    np.testing.assert_allclose(cols["speedup"][one], 1.0)
    # efficiency follows the definition from the stored times
    for kernel in SMALL["kernels"]:
        sel = [i for i, k in enumerate(cols["kernel"]) if k == kernel and cols["mode"][i] == "strong"]
        t = {int(cols["ranks"][i]): cols["time_s"][i] for i in sel}
        i2 = [i for i in sel if cols["ranks"][i] == 2][0]
        assert cols["efficiency"][i2] == pytest.approx(t[1] / (2 * t[2]))
    i = [k for k, (kn, r) in enumerate(zip(cols["kernel"], cols["ranks"])) if kn == "gcmc" and r == 2][0]
    assert cols["m_atom_steps_per_s"][i] > 0 and cols["b_lammps_pair_s"][i] > 0
    assert np.nanmax(cols["m_labels_per_hour"]) > 0 and np.nanmax(cols["m_retrain_latency_s"]) > 0
    assert np.nanmax(cols["b_petsc_SNESSolve_s"]) > 0 and np.nanmax(cols["m_idle_share"]) > 0
    assert (d / "out" / "work" / "p2d-strong-s20-r2-k0" / "petsc-log.txt").exists()
    text = (d / "out" / "scaling.txt").read_text()
    assert text == out.stdout and "== campaign ==" in text and "labels_per_hour" in text
    assert sorted(p.name for p in (d / "out" / "plots").glob("*.png")) == sorted(
        f"scaling-{k}.png" for k in SMALL["kernels"])


def test_merge_of_two_result_dirs_is_the_union(sweep, tmp_path):
    d, _ = sweep
    spec = d / "small.yaml"
    a = scaling("run", str(spec), "--kernels", "label", "--ranks", "1", "--out", str(tmp_path / "a"), "--no-plots")
    assert a.returncode == 0, a.stderr[-2000:]
    b = scaling("run", str(spec), "--kernels", "label", "--ranks", "2", "--out", str(tmp_path / "b"), "--no-plots")
    assert b.returncode == 0, b.stderr[-2000:]
    assert set(read_table(tmp_path / "a" / "scaling.h5")[0]["ranks"].tolist()) == {1}
    m = scaling("merge", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "m"))
    assert m.returncode == 0, m.stderr[-2000:]
    cols, points, _ = read_table(tmp_path / "m" / "scaling.h5")
    assert sorted(zip(cols["mode"], cols["ranks"].tolist())) == [("strong", 1), ("strong", 2), ("weak", 1),
                                                                 ("weak", 2)]
    assert len(points) == 4
    t = {(mo, int(r)): x for mo, r, x in zip(cols["mode"], cols["ranks"], cols["time_s"])}
    e = {(mo, int(r)): x for mo, r, x in zip(cols["mode"], cols["ranks"], cols["efficiency"])}
    assert e["strong", 2] == pytest.approx(t["strong", 1] / (2 * t["strong", 2]))
    assert e["weak", 2] == pytest.approx(t["weak", 1] / t["weak", 2])
    assert "== label ==" in m.stdout and (tmp_path / "m" / "plots" / "scaling-label.png").exists()
    # a merged table merges again (from its scaling.h5) with a third directory: still the union
    again = scaling("merge", str(tmp_path / "m"), str(d / "out"), "--out", str(tmp_path / "m2"), "--no-plots")
    assert again.returncode == 0, again.stderr[-2000:]
    # the sweep's 4 label points are the same points (ids) as the merged ones: union = the sweep's 12
    assert read_table(tmp_path / "m2" / "scaling.h5")[2]["points"] == 12


def test_failed_points_are_recorded_and_exit_1(tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({"kernels": {"label": {"ranks": [1, 2], "strong": 2}}}))
    e = {**env(), "PBAHPC_LAUNCHER": "false"}
    out = subprocess.run([sys.executable, "-m", "pbahpc", "scaling", "run", str(spec), "--out", str(tmp_path / "o"),
                          "--no-plots"], capture_output=True, text=True, timeout=120, env=e, cwd=ROOT)
    assert out.returncode == 1, out.stderr
    assert "2 point(s) FAILED" in out.stderr
    points = sorted((tmp_path / "o" / "points").glob("*.json"))
    assert len(points) == 2 and all("exit code 1" in p.read_text() for p in points)
    assert read_table(tmp_path / "o" / "scaling.h5")[2]["rows"] == 0


FAKE_SRUN = """#!/usr/bin/env bash
# test stand-in for srun: drop its options, run the command under mpiexec -n N
n=1
while [ $# -gt 0 ]; do
    case $1 in -n) n=$2; shift 2;; -*) shift;; *) break;; esac
done
exec {mpiexec} -n "$n" "$@"
"""


def test_jobscript_one_job_with_sub_steps(tmp_path):
    """The allocation branch of jobscripts/scaling.sh with a stand-in srun: runs, skips what the
    allocation cannot hold, merges."""
    script = ROOT / "jobscripts" / "scaling.sh"
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "srun").write_text(FAKE_SRUN.format(mpiexec=Path(sys.executable).parent / "mpiexec"))
    (bindir / "srun").chmod(0o755)
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({"kernels": {"label": {"ranks": [1, 2], "strong": 2}}}))
    e = {**env(), "SLURM_JOB_ID": "1", "SLURM_JOB_NUM_NODES": "1", "TASKS_PER_NODE": "1",
         "SCALING_OUT": str(tmp_path / "out"), "PBAHPC_VENV": str(Path(sys.executable).parent.parent)}
    e["PATH"] = f"{bindir}:{e['PATH']}"
    out = subprocess.run(["bash", str(script), str(spec), "1", "2"], capture_output=True, text=True, timeout=180,
                         env=e, cwd=tmp_path)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert "skipping 2 node(s)" in out.stdout
    cols = read_table(tmp_path / "out" / "merged" / "scaling.h5")[0]
    assert cols["ranks"].tolist() == [1] and cols["kernel"] == ["label"]
    assert "srun" in (tmp_path / "out" / "nodes-1" / "work" / "label-strong-s2-r1-k0" / "command.txt").read_text()
