"""The MTP trainer engine: oracle-shaped labels in, a potential and active set on disk that reproduce the
reported training RMSEs, a training set that grows without repeats, and an exact checkpoint round trip."""
from __future__ import annotations

import logging

import numpy as np
import pytest

pytest.importorskip("motep")

from mpi4py import MPI  # noqa: E402

from conftest import write_campaign  # noqa: E402

from pbahpc.atomistic.structure import build_pba  # noqa: E402
from pbahpc.checkpoint import read_checkpoint_file, write_tree  # noqa: E402
from pbahpc.config import ConfigError, load  # noqa: E402
from pbahpc.driver.component import StepContext, create  # noqa: E402
from pbahpc.mlip.active_set import read_active_set  # noqa: E402
from pbahpc.mlip.mtp_file import read_mtp  # noqa: E402
from pbahpc.mlip.train import rmse  # noqa: E402
from pbahpc.mlip.trainer_engine import MTPTrainer  # noqa: E402
from pbahpc.oracle.ase_oracle import label  # noqa: E402
from pbahpc.oracle.teacher import TeacherCalculator  # noqa: E402

SPECIES = ("Na", "Mn", "Fe", "C", "N")


def campaign(tmp_path, **trainer):
    return write_campaign(tmp_path / "c.yaml", {
        "campaign": {"name": "mtp", "seed": 5, "iterations": 2, "run_dir": str(tmp_path / "run")},
        "trainer": {"engine": "mtp", "level": 4, "train_iterations": 2, **trainer}})


def context(iteration):
    return StepContext(MPI.COMM_SELF, None, iteration, logging.getLogger("test"), lambda: False, lambda cb: cb)


def oracle_labels(count, seed, oracle="oracle"):
    """What the oracle sends on "labels": {group: {"<replica>:<key>": labelled frame}}."""
    rng = np.random.default_rng(seed)
    calc = TeacherCalculator()
    kept = {}
    for k in range(count):
        atoms = build_pba(1, n_na=int(rng.integers(0, 5)), rng=rng)
        atoms.rattle(0.05, seed=int(rng.integers(1 << 30)))
        frame = {"numbers": atoms.numbers, "positions_A": atoms.positions, "cell_A": np.asarray(atoms.cell)}
        kept[f"replica-{seed}:{k:08d}"] = label(calc, frame)
    return {"labels": {oracle: kept}}


def engine(cfg, seed=np.random.SeedSequence(11)):
    return MTPTrainer(cfg, None, MPI.COMM_SELF, seed)


@pytest.fixture(scope="module")
def labels():
    return oracle_labels(4, 1), oracle_labels(3, 2)


def test_potential_on_disk_reproduces_the_reported_rmse_and_set_grows_without_repeats(tmp_path, labels):
    cfg = load(campaign(tmp_path))
    trainer = engine(cfg)
    first, second = labels
    out = trainer.step(context(0), first)["potential"]
    assert out["n_train"] == 4 and set(out) == {"mtp", "active_set", "iteration", "n_train", "rmse_energy_eV_atom",
                                                "rmse_forces_eV_A", "rmse_stress_GPa"}
    mtp = read_mtp(out["mtp"])
    assert out["mtp"].endswith("potentials/potential-000000.mtp")
    again = rmse(mtp, SPECIES, trainer.atoms())
    assert again["energy"] == pytest.approx(out["rmse_energy_eV_atom"], rel=1e-6, abs=1e-9)
    assert again["forces"] == pytest.approx(out["rmse_forces_eV_A"], rel=1e-6)
    active = read_active_set(out["active_set"])
    assert len(active.rows) == len(SPECIES)
    # the same frames again (another oracle group too) add nothing; new frames grow the set
    assert trainer.step(context(1), {"labels": {**first["labels"], "other": first["labels"]["oracle"]}}
                        )["potential"] == out
    both = {"labels": {"a": first["labels"]["oracle"], "b": second["labels"]["oracle"]}}
    out2 = trainer.step(context(2), both)["potential"]
    assert out2["n_train"] == 7 and out2["mtp"].endswith("potential-000002.mtp")
    assert len({trainer.species_indices(a).tobytes() + a.positions.tobytes() for a in trainer.atoms()}) == 7
    res = trainer.results()
    np.testing.assert_array_equal(res["history"][:, :2], [[0, 4], [2, 7]])
    assert res["history"][1, 2] == out2["rmse_energy_eV_atom"]


def test_checkpoint_resume_gives_the_same_next_potential(tmp_path, labels):
    cfg = load(campaign(tmp_path))
    first, second = labels
    whole = engine(cfg)
    whole.step(context(0), first)
    write_tree(tmp_path / "ckpt.h5", {"trainer": whole.state()}, meta={})
    state, _ = read_checkpoint_file(tmp_path / "ckpt.h5")
    resumed = engine(cfg, np.random.SeedSequence(999))  # its own seed is overwritten by the state
    resumed.load_state(state["trainer"])
    a, b = whole.step(context(1), second)["potential"], resumed.step(context(1), second)["potential"]
    assert a == b
    x, y = whole.state(), resumed.state()
    for key in ("radial_coeffs", "moment_coeffs", "species_coeffs"):
        np.testing.assert_array_equal(x["mtp"][key], y["mtp"][key])
    assert x["rng"] == y["rng"] and sorted(x["configs"]) == sorted(y["configs"])
    np.testing.assert_array_equal(whole.results()["history"], resumed.results()["history"])


def test_registered_and_no_labels_sends_nothing(tmp_path):
    cfg = load(campaign(tmp_path))

    class G:
        role = "trainer"

    trainer = create(cfg, G(), MPI.COMM_SELF, np.random.SeedSequence(1))
    assert isinstance(trainer, MTPTrainer)
    assert trainer.step(context(0), {}) == {}
    assert trainer.step(context(0), {"labels": {"oracle": None}}) == {}


@pytest.mark.parametrize("bad, key", [({"level": 1}, "trainer.level"), ({"species": ["Na", "Xx"]}, "trainer.species[1]"),
                                      ({"species": ["Na", "Na"]}, "trainer.species"),
                                      ({"train_iterations": -1}, "trainer.train_iterations")])
def test_bad_trainer_config_is_one_line(tmp_path, bad, key):
    with pytest.raises(ConfigError) as err:
        load(campaign(tmp_path, **bad))
    assert err.value.key == key and "\n" not in str(err.value)
