"""Active learning -> properties -> P2D cell under one mpiexec, stopped by a signal inside the properties
stage and resumed: every run is done once, the report's numbers follow from the stored runs (Eqs. 4 and
31 recomputed here), and the continuum group runs the parameter file the properties group wrote."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from conftest import demo_campaign, run_pbahpc, stop_when
from pbahpc.checkpoint import read_checkpoint_file
from pbahpc.driver import EXIT_OK, EXIT_REQUEUE

pytest.importorskip("motep")


def test_whole_campaign_with_a_stop_inside_the_properties_stage(tmp_path):
    path = demo_campaign(tmp_path)
    run_dir = tmp_path / "run"
    log = run_dir / "logs" / "properties.log"
    code, err = stop_when(path, log, lambda text: "properties: diffusion/" in text)
    assert code == EXIT_REQUEUE, err[-3000:]
    out = run_pbahpc(2, "run", str(path), timeout=900)
    assert out.returncode == EXIT_OK, out.stderr[-3000:]
    assert "resumed from ckpt-" in out.stderr

    # every run once, across both launches
    # run starts only ("properties: <kind>/<point>"): a warning such as a free energy given up after halts
    # (the trained MTP differs with the machine's BLAS) is not a run
    text = log.read_text()
    names = re.findall(r"pbahpc\.properties: properties: ([a-z_]+/\S+)$", text, re.M)
    # a relearning round (a run left the learned domain) redoes every MTP run once more; the stop never does
    rounds = len(re.findall(r"relearning round \d+/\d+$", text, re.M))
    assert len(set(names)) == 1 + 2 + 2 + 3 and all(names.count(n) == rounds + 1 for n in set(names)), names

    results, meta = read_checkpoint_file(run_dir / "results.h5")
    assert meta.meta["converged"] == 1
    props, _ = read_checkpoint_file(run_dir / "properties" / "properties.h5")
    runs = props["runs"]
    report = (run_dir / "properties" / "report.txt").read_text()
    for section in ("Free energy", "Na diffusion", "Interface and strain", "Voltage", "Continuum parameters"):
        assert section in report

    assert all(int(runs[f"diffusion|x{x:g}|T800"]["blocks"]) == 4 for x in (0.5, 1.5))  # properties.diffusion.blocks
    # Eq. 31 from the stored single-phase energies: 2 Na per formula unit, 4 formula units per cell
    lo, hi = runs["interface|reference|x0"], runs["interface|reference|x2"]
    n_na = 2.0 * 4
    expected = -(float(hi["energy_eV"]) - float(lo["energy_eV"]) - n_na * -0.2188) / n_na
    assert float(props["numbers"]["average_voltage_V"]) == pytest.approx(expected, rel=1e-12)
    assert f"{expected:.3f} V" in report
    # Eq. 4 from the stored supercell energies
    e_hi, e_lo = float(hi["energy_eV"]), float(lo["energy_eV"])
    for k, n in enumerate((1, 2, 3)):
        cell = runs[f"interface|n{n}"]
        excess = float(cell["energy_eV"]) - n * (e_hi + e_lo) / 2
        assert float(props["numbers"]["interface"]["excess_eV"][k]) == pytest.approx(excess, rel=1e-9, abs=1e-9)

    # the continuum group ran the file the properties group wrote
    from pbahpc.continuum.parameters import load_parameters

    written = run_dir / "properties" / "p2d-parameters.yaml"
    if re.search(r"interface_energy_J_m2 +template's", report):  # path-dependent (BLAS): either may be written
        with pytest.warns(UserWarning):  # the template's inflated interface energy is reported
            load_parameters(written)
    else:
        load_parameters(written)
    outputs = sorted((run_dir / "continuum").glob("p2d-iter-*.h5"))
    assert len(outputs) == 1
    from pbahpc.continuum.output import read_result

    data = read_result(outputs[0])
    assert Path(str(data["meta"]["parameters"])) == written
    assert np.all(np.isfinite(np.asarray(data["voltage_V"]))) and len(data["voltage_V"]) > 3
