"""Properties inside the learned domain (pbahpc/properties/domain.py): a properties run graded beyond
gamma_stop sends its most extrapolative frames back to the trainer, the campaign runs another
active-learning iteration, and the run is redone with the improved potential."""
from __future__ import annotations

import re

import pytest
import yaml

from conftest import ROOT, demo_campaign, run_pbahpc, write_campaign
from pbahpc.checkpoint import read_checkpoint_file
from pbahpc.driver import EXIT_OK


def test_replicas_cover_the_properties_temperatures_by_default(tmp_path):
    from pbahpc.config import load

    cfg = yaml.safe_load((ROOT / "inputs" / "demo.yaml").read_text())
    for key in ("p2d_template",):
        cfg["properties"][key] = str(ROOT / "inputs" / "p2d-demo.yaml")
    cfg["continuum"]["parameters"] = str(ROOT / "inputs" / "p2d-demo.yaml")
    del cfg["replicas"]["temperatures_K"]
    loaded = load(write_campaign(tmp_path / "c.yaml", cfg))
    # free energy 400 K, diffusion 700 and 900 K, interface 300 K (its default)
    assert loaded.replicas.temperatures_K == (300.0, 400.0, 700.0, 900.0)
    cfg["replicas"]["temperatures_K"] = [450.0]  # given: kept as it is
    assert load(write_campaign(tmp_path / "c.yaml", cfg)).replicas.temperatures_K == (450.0,)


def test_a_diffusion_run_far_above_the_sampled_temperature_is_relearned_and_redone(tmp_path):
    """The replicas sample 300 K only; the diffusion MD runs at 1500 K with the first MTP (one iteration of
    pre-training and 300 K frames). Its grade must pass gamma_stop, its frames go to the trainer, one more
    iteration labels and retrains, and the diffusion run is done again with the new MTP: the campaign ends
    with exit 0 and the run has a result (or its reason, once properties.max_relearn is spent)."""
    pytest.importorskip("motep")
    path = demo_campaign(tmp_path)
    cfg = yaml.safe_load(path.read_text())
    cfg["campaign"]["iterations"] = 1
    cfg["replicas"]["temperatures_K"] = [300.0]
    cfg["properties"] = {"free_energy": {"temperatures_K": []}, "interface": {"repeats": []},
                         "diffusion": {"temperatures_K": [1500.0], "x_inserted": [1.0], "production_ps": 1.0,
                                       "thermalise_ps": 0.2},
                         "max_relearn": 3}
    cfg["continuum"] = {"engine": "regular-solution"}
    write_campaign(path, cfg)
    out = run_pbahpc(2, "run", str(path), timeout=600)
    assert out.returncode == EXIT_OK, out.stderr[-3000:]

    run_dir = tmp_path / "run"
    log = (run_dir / "logs" / "properties.log").read_text()
    left = re.findall(r"left the learned domain \((.*)\): (\d+) candidates for the trainer", log)
    assert left, log[-3000:]
    assert all(int(n) > 0 for _, n in left)
    props, _ = read_checkpoint_file(run_dir / "properties" / "properties.h5")
    run = props["runs"]["diffusion|x1|T1500"]
    # redone with a potential trained after the first one (iteration 0)
    assert int(run["potential_iteration"]) == len(left), (left, run)
    assert "failed" not in run or not str(run["failed"]), run
    # the trainer selected among the properties' frames in the iterations that followed
    trainer = (run_dir / "logs" / "trainer.log").read_text()
    assert re.search(r"iteration 1: \d+ candidates, [1-9]\d* selected", trainer), trainer[-3000:]
