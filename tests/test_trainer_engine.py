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


def context(iteration, last_iteration=False):
    return StepContext(MPI.COMM_SELF, None, iteration, logging.getLogger("test"), lambda: False, lambda cb: cb,
                       last_iteration=last_iteration)


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
                                                "rmse_forces_eV_A", "rmse_stress_GPa", "final"}
    assert out["final"] is False  # iteration 0 of a budget of 2
    mtp = read_mtp(out["mtp"])
    assert out["mtp"].endswith("potentials/potential-000000.mtp")
    again = rmse(mtp, SPECIES, trainer.atoms())
    assert again["energy"] == pytest.approx(out["rmse_energy_eV_atom"], rel=1e-6, abs=1e-9)
    assert again["forces"] == pytest.approx(out["rmse_forces_eV_A"], rel=1e-6)
    active = read_active_set(out["active_set"])
    assert len(active.rows) == len(SPECIES)
    # the same frames again (another oracle group too) add nothing; new frames grow the set
    same = trainer.step(context(1, last_iteration=True),
                        {"labels": {**first["labels"], "other": first["labels"]["oracle"]}})["potential"]
    assert same == {**out, "final": True}  # the budget's last iteration: the campaign ends after it
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
    nothing = {"summary": {"configurations": 0, "new": 0}}  # no potential
    assert trainer.step(context(0), {}) == nothing
    assert trainer.step(context(0), {"labels": {"oracle": None}}) == nothing


@pytest.mark.parametrize("bad, key", [({"level": 1}, "trainer.level"), ({"species": ["Na", "Xx"]}, "trainer.species[1]"),
                                      ({"species": ["Na", "Na"]}, "trainer.species"),
                                      ({"train_iterations": -1}, "trainer.train_iterations"),
                                      ({"train_tolerance": 0.0}, "trainer.train_tolerance")])
def test_bad_trainer_config_is_one_line(tmp_path, bad, key):
    with pytest.raises(ConfigError) as err:
        load(campaign(tmp_path, **bad))
    assert err.value.key == key and "\n" not in str(err.value)


def candidates_from(labels_payload, replica="replica-0"):
    """The replicas' "candidates" shape, from labelled frames (labels dropped)."""
    frames = {k.split(":")[1]: {f: v[f] for f in ("numbers", "positions_A", "cell_A")}
              for k, v in labels_payload["labels"]["oracle"].items()}
    return {replica: frames}


def sampling(graded=1, halted=0, n=3):
    return {"graded": graded, "halted": halted, "halt_gamma": 12.0 if halted else np.nan,
            "gamma_max": np.linspace(1.0, 3.0, n)}


def test_select_before_a_potential_takes_fresh_frames_up_to_the_cap(tmp_path, labels):
    cfg = load(campaign(tmp_path, max_selected=3))
    trainer = engine(cfg)
    first, _ = labels
    cands = candidates_from(first)  # 4 frames
    twice = {**cands, "replica-1": {"x": cands["replica-0"]["00000000"]}}  # the same configuration again
    out = trainer.select(context(0), {"candidates": twice, "sampling": {"replica-0": sampling(graded=0)}})
    assert not out["converged"]
    assert sorted(out["selected"]["replica-0"]) == ["00000000", "00000001", "00000002"]
    row = trainer.stats[-1]
    assert (row["candidates"], row["selected"], row["repeat"], row["cap"]) == (5, 3, 1, 1)
    # next iteration: the three chosen are repeats now, the fourth is fresh
    again = trainer.select(context(1), {"candidates": cands})["selected"]
    assert {r: sorted(f) for r, f in again.items()} == {"replica-0": ["00000003"]}


def test_select_with_a_potential_keeps_only_extrapolative_frames_and_reports_convergence(tmp_path, labels):
    from pbahpc.mlip.selection import fingerprint
    from pbahpc.mlip.trainer_engine import frame_atoms

    cfg = load(campaign(tmp_path))
    trainer = engine(cfg)
    first, second = labels
    pot = trainer.step(context(0), first)["potential"]
    mtp, active = read_mtp(pot["mtp"]), read_active_set(pot["active_set"])
    # the training frames themselves are inside the active set's span; the new ones may not be
    cands = {**candidates_from(first, "replica-0"), **candidates_from(second, "replica-1")}
    trained = {fingerprint(frame_atoms(c)) for c in trainer.configs.values()}
    out = trainer.select(context(1), {"candidates": cands, "sampling": {"replica-0": sampling(),
                                                                         "replica-1": sampling()}})
    from pbahpc.mlip.active_set import basis_rows

    for rep, frames in cands.items():
        for key, frame in frames.items():
            atoms = frame_atoms(frame)
            species = trainer.species_indices(atoms)
            gamma = active.grades(basis_rows(mtp, atoms, species), species).max()
            chosen = key in out["selected"].get(rep, {})
            if chosen:  # MaxVol adds a frame only if one of its rows extends the active set
                assert gamma > 1 + 1e-3 and fingerprint(atoms) not in trained, (rep, key, gamma)
            if rep == "replica-0":
                assert not chosen and gamma <= 1 + 1e-6  # trained on: inside
    assert out["selected"] and not out["converged"]
    # nothing new and every replica graded without halting: converged; a halt or an ungraded replica: not
    inside = {"replica-0": cands["replica-0"]}
    assert trainer.select(context(2), {"candidates": inside, "sampling": {"replica-0": sampling()}})["converged"]
    assert not trainer.select(context(3), {"candidates": inside,
                                           "sampling": {"replica-0": sampling(halted=1)}})["converged"]
    assert not trainer.select(context(4), {"candidates": inside,
                                           "sampling": {"replica-0": sampling(graded=0)}})["converged"]


def test_held_out_error_and_statistics_file(tmp_path, labels):
    from pbahpc.mlip.statistics import read_statistics

    cfg = load(campaign(tmp_path))
    trainer = engine(cfg)
    first, second = labels
    pot = trainer.step(context(0), first)["potential"]
    before = read_mtp(pot["mtp"])
    screened = {"oracle": {"screened": {"replica-9:00000001": "E 1 eV > 0"}, "quarantined": {}}}
    trainer.select(context(1), {"candidates": candidates_from(second), "sampling": {"replica-0": sampling()}})
    trainer.step(context(1), {**second, "screened": screened})
    new_atoms = trainer.atoms()[4:]
    expected = rmse(before, SPECIES, new_atoms)  # the potential before retraining, on the new frames
    rows = read_statistics(tmp_path / "run" / "statistics.h5")
    last = rows["rows"][-1]
    assert last["rmse_new_forces_eV_A"] == pytest.approx(expected["forces"], rel=1e-10)
    assert last["rmse_new_energy_eV_atom"] == pytest.approx(expected["energy"], rel=1e-10)
    assert (last["labelled"], last["screened"], last["n_train"]) == (3, 1, 7)
    assert rows["reasons"] == {"iter-000001": {"replica-9:00000001": "E 1 eV > 0"}}
    assert rows["gamma_histogram"][-1].sum() == 3  # three per-cycle grades reported
    assert (tmp_path / "run" / "statistics.png").stat().st_size > 0


def test_initial_data_is_fitted_in_the_first_train_stage(tmp_path, labels):
    from pbahpc.mlip.dataset import write_training_set

    first, _ = labels
    images = [to_atoms_of(lab) for lab in first["labels"]["oracle"].values()]
    for a in images[:2]:  # two frames without a stress label: kept, the stress term skips them
        a.calc.results.pop("stress")
    write_training_set(images, tmp_path, name="initial", species=SPECIES)
    cfg = load(campaign(tmp_path, initial_data=[str(tmp_path / "initial.extxyz")]))
    trainer = engine(cfg)
    assert len(trainer.configs) == 4
    out = trainer.step(context(0), {})["potential"]
    assert out["n_train"] == 4
    again = rmse(read_mtp(out["mtp"]), SPECIES, images)
    assert again["forces"] == pytest.approx(out["rmse_forces_eV_A"], rel=1e-6)


def to_atoms_of(lab):
    from pbahpc.mlip.trainer_engine import to_atoms

    return to_atoms({k: np.asarray(v) for k, v in lab.items()})
