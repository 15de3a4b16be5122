"""The P2D cell as the campaign's continuum engine: stop and resume through an HDF5 checkpoint give
the uninterrupted result; a whole campaign runs it on a 2-rank continuum group."""
import logging

import numpy as np
import pytest
import yaml

pytest.importorskip("petsc4py")
from mpi4py import MPI  # noqa: E402

from conftest import ROOT, run_pbahpc, write_campaign  # noqa: E402

from pbahpc.checkpoint import read_checkpoint_file, write_tree  # noqa: E402
from pbahpc.config import load  # noqa: E402
from pbahpc.continuum.p2d_engine import P2DEngine  # noqa: E402
from pbahpc.continuum.output import read_result  # noqa: E402
from pbahpc.driver.component import StepContext  # noqa: E402

FICKIAN = ROOT / "inputs" / "p2d-fickian.yaml"


def campaign(tmp_path, continuum_ranks=1, **continuum):
    return write_campaign(tmp_path / "c.yaml", {
        "campaign": {"name": "cell", "seed": 3, "iterations": 2, "run_dir": str(tmp_path / "run")},
        "layout": {"replicas": {"ranks_each": 1}, "continuum": {"ranks": continuum_ranks}},
        "replicas": {"temperatures_K": [300.0], "mu_eV": [-0.2], "cycles": 2, "lattice": 4},
        "continuum": {"engine": "p2d", **continuum}})


def context(iteration, stop):
    return StepContext(MPI.COMM_SELF, None, iteration, logging.getLogger("test"), stop, lambda cb: cb)


def test_stop_checkpoint_resume_matches_the_uninterrupted_protocol(tmp_path):
    cfg = load(campaign(tmp_path, parameters=str(FICKIAN)))
    whole = P2DEngine(cfg, None, MPI.COMM_SELF, None)
    assert whole.step(context(0, lambda: False), {}).keys() == {"summary"}  # no outgoing channel
    calls = []

    def stop_on_12th_check():  # mid-charge: checks come every 10 accepted steps
        calls.append(1)
        return len(calls) == 12

    first = P2DEngine(cfg, None, MPI.COMM_SELF, None)
    assert first.step(context(0, stop_on_12th_check), {}) is None
    assert 0 < first.cell.time_s < whole.cell.time_s and first.cell.step_index == 0
    write_tree(tmp_path / "ckpt.h5", {"p2d": first.state()}, meta={})
    state, _ = read_checkpoint_file(tmp_path / "ckpt.h5")
    second = P2DEngine(cfg, None, MPI.COMM_SELF, None)
    second.load_state(state["p2d"])
    assert second.step(context(0, lambda: False), {}).keys() == {"summary"}
    assert second.cell.ends == whole.cell.ends == ["cutoff", "time", "cutoff"]
    a, b = whole.results(), second.results()
    # The resumed run restarts BDF at order 1, so it takes other steps: compare on a common grid,
    # to a few times the solver's relative tolerance (1e-6) on ~3-4 V.
    t = np.linspace(0.0, a["time_s"][-1], 500)
    assert abs(a["time_s"][-1] - b["time_s"][-1]) < 1e-3 * a["time_s"][-1]
    dv = np.interp(t, a["time_s"], a["voltage_V"]) - np.interp(t, b["time_s"], b["voltage_V"])
    assert np.abs(dv[:-5]).max() < 1e-3
    assert np.array_equal(b["step"], np.sort(b["step"]))  # records continue across the stop
    out = read_result(tmp_path / "run" / "continuum" / "p2d-iter-000000.h5")
    np.testing.assert_array_equal(out["voltage_V"], b["voltage_V"])


def test_campaign_runs_the_cell_on_a_two_rank_continuum_group(tmp_path):
    out = run_pbahpc(3, "run", str(campaign(tmp_path, continuum_ranks=2, parameters=str(FICKIAN))))
    assert out.returncode == 0, out.stderr
    payload, _ = read_checkpoint_file(tmp_path / "run" / "results.h5")
    cont = payload["groups"]["continuum"]
    assert cont["voltage_V"][-1] == pytest.approx(2.5, abs=1e-5)  # the last step's cutoff
    for k in (0, 1):
        r = read_result(tmp_path / "run" / "continuum" / f"p2d-iter-{k:06d}.h5")
        assert r["meta"]["step_ends"] == "cutoff,time,cutoff"


def test_p2d_engine_without_parameters_is_refused_with_one_line(tmp_path):
    out = run_pbahpc(1, "check", str(campaign(tmp_path)))
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0 and "continuum.parameters" in out.stderr


def test_standalone_bad_parameter_file_names_key_and_writes_nothing(tmp_path):
    data = yaml.safe_load(FICKIAN.read_text())
    data["cathode"]["porosity"] = 1.5
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(data))
    out = run_pbahpc(1, "p2d", str(bad), "--out", str(tmp_path / "out"))
    assert out.returncode == 2
    assert "cathode.porosity" in out.stderr and str(bad) in out.stderr
    assert not (tmp_path / "out").exists()
