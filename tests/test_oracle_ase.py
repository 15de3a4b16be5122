"""The ASE oracle: any calculator by configuration, retries, timeouts, quarantine, the VASP preset."""
from __future__ import annotations

import copy
import logging
import os
import time

import numpy as np
import pytest
import yaml
from ase import Atoms
from ase.build import bulk
from ase.calculators.calculator import Calculator, all_changes
from ase.calculators.emt import EMT
from mpi4py import MPI

from pbahpc.checkpoint.h5format import read_checkpoint_file, write_checkpoint_file
from pbahpc.config import Campaign, ConfigError
from pbahpc.config.load import load
from pbahpc.config.validate import build
from pbahpc.driver.component import StepContext
from pbahpc.oracle.ase_oracle import AseOracle
from pbahpc.oracle.calculators import CalculatorSource, write_vasp_inputs_without_potcar

from conftest import ROOT

BASE = yaml.safe_load((ROOT / "inputs" / "smoke.yaml").read_text())


def config(tmp_path, properties: dict | None = None, **oracle) -> Campaign:
    data = copy.deepcopy(BASE)
    data["campaign"]["run_dir"] = str(tmp_path / "run")
    data["oracle"] = {"engine": "teacher", **oracle}
    if properties is not None:
        data["properties"] = properties
    data["layout"]["trainer"] = {"ranks": 0}  # pair-fit does not take the teacher's labels
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(data))
    return load(path)


def ctx() -> StepContext:
    return StepContext(MPI.COMM_SELF, None, 0, logging.getLogger("test-oracle"), lambda: False, lambda cb: cb)


def frame(atoms: Atoms) -> dict:
    return {"numbers": atoms.numbers.copy(), "positions_A": atoms.positions.copy(),
            "cell_A": np.array(atoms.cell), "N": 0}


def cu(a=3.6, rattle=0.0, seed=0, swap: str | None = None) -> Atoms:
    atoms = bulk("Cu", "fcc", a=a, cubic=True).repeat(2)
    if rattle:
        atoms.rattle(rattle, seed=seed)
    if swap:
        atoms[0].symbol = swap
    return atoms


def run(oracle: AseOracle, frames: dict[str, Atoms]) -> dict:
    return oracle.step(ctx(), {"selected": {"trainer": {"r0": {k: frame(a) for k, a in frames.items()}}}})["labels"]


# --- test calculators (failure behaviour only) ----------------------------------------------------------

class Flaky(Calculator):
    """EMT, but the first ``fail`` calls raise (counted over all instances)."""

    implemented_properties = ["energy", "forces", "stress"]
    calls = 0

    def __init__(self, fail: int = 0, **kw):
        super().__init__(**kw)
        self.fail = fail

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        Flaky.calls += 1
        if Flaky.calls <= self.fail:
            raise RuntimeError(f"SCF did not converge\n(call {Flaky.calls})")
        self.results = emt_results(self.atoms)


class Sleepy(Calculator):
    """EMT, but hangs on cells with a lattice constant above 3.7 A."""

    implemented_properties = ["energy", "forces", "stress"]

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        if self.atoms.cell[0, 0] > 2 * 3.7:
            time.sleep(30)
        self.results = emt_results(self.atoms)


def emt_results(atoms: Atoms) -> dict:
    atoms = atoms.copy()
    atoms.calc = EMT()
    return {"energy": atoms.get_potential_energy(), "forces": atoms.get_forces(), "stress": atoms.get_stress()}


def strict(cutoff: float = 1.0):
    return EMT()


# --- tests --------------------------------------------------------------------------------------------

def test_factory_emt_labels_like_direct_emt_and_quarantines_unsupported(tmp_path):
    cfg = config(tmp_path, calculator={"factory": "ase.calculators.emt:EMT"}, retries=2, max_energy_eV=100.0)
    oracle = AseOracle(cfg, None, MPI.COMM_SELF, None)
    frames = {"f0": cu(rattle=0.05, seed=1), "f1": cu(swap="Mn"), "f2": cu(a=3.55, rattle=0.05, seed=2)}
    kept = run(oracle, frames)
    assert sorted(kept) == ["r0:f0", "r0:f2"]
    for key in ("f0", "f2"):
        ref = frames[key].copy()
        ref.calc = EMT()
        assert kept[f"r0:{key}"]["energy_eV"] == pytest.approx(ref.get_potential_energy(), rel=1e-12, abs=1e-12)
        np.testing.assert_allclose(kept[f"r0:{key}"]["forces_eV_A"], ref.get_forces(), atol=1e-12)
        np.testing.assert_allclose(kept[f"r0:{key}"]["stress_eV_A3"], ref.get_stress(), atol=1e-12)
    s = oracle.state()
    assert s["quarantined"] == {"r0:f1": "NotImplementedError: No EMT-potential for Mn"}
    assert s["failed_attempts"] == 3  # 1 + retries
    assert s["labelled"] == 2 and s["discarded"] == 0 and "r0:f1" not in s["energies"]


def test_retry_recovers_then_quarantine_after_retries(tmp_path):
    Flaky.calls = 0
    cfg = config(tmp_path, calculator={"factory": "test_oracle_ase:Flaky", "kwargs": {"fail": 2}},
                 retries=2, max_energy_eV=100.0)
    oracle = AseOracle(cfg, None, MPI.COMM_SELF, None)
    assert sorted(run(oracle, {"a": cu()})) == ["r0:a"]  # failed twice, third attempt labelled it
    assert oracle.state()["quarantined"] == {}

    Flaky.calls = 0
    cfg = config(tmp_path, calculator={"factory": "test_oracle_ase:Flaky", "kwargs": {"fail": 2}},
                 retries=1, max_energy_eV=100.0)
    oracle = AseOracle(cfg, None, MPI.COMM_SELF, None)
    assert sorted(run(oracle, {"a": cu(), "b": cu(a=3.55)})) == ["r0:b"]  # a used up both attempts
    assert oracle.state()["quarantined"] == {"r0:a": "RuntimeError: SCF did not converge (call 2)"}


def test_timeout_quarantines_hanging_frame(tmp_path):
    cfg = config(tmp_path, calculator={"factory": "test_oracle_ase:Sleepy"}, retries=1, timeout_s=0.3,
                 max_energy_eV=100.0)
    oracle = AseOracle(cfg, None, MPI.COMM_SELF, None)
    t0 = time.perf_counter()
    kept = run(oracle, {"ok": cu(), "hang": cu(a=3.8)})
    assert time.perf_counter() - t0 < 5
    assert sorted(kept) == ["r0:ok"]
    assert oracle.state()["quarantined"] == {"r0:hang": "LabelTimeout: no result within 0.3 s"}
    assert oracle.state()["failed_attempts"] == 2


def test_screening_reasons_recorded(tmp_path):
    cfg = config(tmp_path, calculator={"factory": "ase.calculators.emt:EMT"}, max_force_eV_A=1.0,
                 max_energy_eV=0.5)
    oracle = AseOracle(cfg, None, MPI.COMM_SELF, None)
    kept = run(oracle, {"calm": cu(), "hot": cu(rattle=0.3, seed=3), "squeezed": cu(a=3.3)})
    reasons = oracle.state()["reasons"]
    assert sorted(kept) == ["r0:calm"]
    assert reasons["r0:hot"].startswith("max |F|") and reasons["r0:hot"].endswith("eV/A > 1")
    assert reasons["r0:squeezed"].startswith("E ") and reasons["r0:squeezed"].endswith("eV > 0.5")
    assert oracle.state()["discarded"] == 2


def test_state_round_trip_through_checkpoint_file_keeps_quarantine(tmp_path):
    cfg = config(tmp_path, calculator={"factory": "ase.calculators.emt:EMT"}, retries=0, max_energy_eV=0.5)
    oracle = AseOracle(cfg, None, MPI.COMM_SELF, None)
    run(oracle, {"bad": cu(swap="Mn"), "good": cu(), "squeezed": cu(a=3.3)})
    state = oracle.state()
    assert state["quarantined"] and state["reasons"]
    path = tmp_path / "ckpt.h5"
    write_checkpoint_file(path, {"oracle": state}, step=1, meta={})
    loaded, _ = read_checkpoint_file(path)
    fresh = AseOracle(cfg, None, MPI.COMM_SELF, None)
    fresh.load_state(loaded["oracle"])
    assert fresh.state() == state
    run(fresh, {"bad2": cu(swap="Fe")})  # goes on, accumulating
    assert set(fresh.state()["quarantined"]) == {"r0:bad", "r0:bad2"}
    old = {k: v for k, v in state.items() if k not in ("quarantined", "failed_attempts")}
    fresh.load_state(old)  # a checkpoint from before quarantine existed
    assert fresh.state()["quarantined"] == {}


@pytest.mark.parametrize("calculator,key,words", [
    ({"factory": "nocolon"}, "oracle.calculator.factory", "expected 'package.module:Class'"),
    ({"factory": "no_such_module_xyz:Calc"}, "oracle.calculator.factory", "ModuleNotFoundError"),
    ({"factory": "ase.calculators.emt:NOPE"}, "oracle.calculator.factory", "AttributeError"),
    ({"factory": "ase.calculators.emt:__doc__"}, "oracle.calculator.factory", "is not callable"),
    ({"factory": "ase.calculators.emt:EMT", "kwargs": [1, 2]}, "oracle.calculator", "mapping"),  # union: generic
    ({"factory": "test_oracle_ase:strict", "kwargs": {"cutof": 2}}, "oracle.calculator.kwargs", "cutof"),
    ({"factory": "ase.calculators.emt:EMT", "colour": 1}, "oracle.calculator", ""),
    ("dft", "oracle.calculator", ""),
    ("vasp", "oracle.vasp.command", "required"),
])
def test_bad_calculator_config_is_one_line(tmp_path, calculator, key, words):
    with pytest.raises(ConfigError) as err:
        config(tmp_path, calculator=calculator)
    text = str(err.value)
    assert "\n" not in text and f": {key}: " in text and words in text, text


def test_good_factory_config_builds(tmp_path):
    cfg = config(tmp_path, calculator={"factory": "test_oracle_ase:strict", "kwargs": {"cutoff": 2.0}})
    assert cfg.oracle.calculator.factory == "test_oracle_ase:strict" and cfg.oracle.retries == 2
    default = config(tmp_path).oracle
    assert default.calculator == "teacher" and default.retries == 2 and default.timeout_s is None
    assert build(Campaign, BASE).oracle.vasp.encut_eV == 700.0


def incar(path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        if "=" in line:
            k, v = line.split("=", 1)
            out[k.strip().upper()] = v.split("#")[0].strip()
    return out


def expand(magmom: str) -> list[float]:
    out = []
    for tok in magmom.split():
        n, v = tok.split("*") if "*" in tok else ("1", tok)
        out += [float(v)] * int(n)
    return out


def test_vasp_preset_inputs_match_paper_settings(tmp_path):
    from pbahpc.atomistic.structure import build_pba

    cfg = config(tmp_path, calculator="vasp", timeout_s=3600.0,
                 vasp={"command": "srun -n 64 vasp_std", "directory": "dft"})
    atoms = build_pba(1, n_na=4, arrangement="first")

    source = CalculatorSource(cfg)
    calc = source.get("r0/f0003")
    assert calc.directory == str(tmp_path / "run" / "dft" / "r0_f0003")
    assert calc.command == "timeout --kill-after=30 3600 srun -n 64 vasp_std"
    source.prepare(atoms)
    write_vasp_inputs_without_potcar(calc, atoms, tmp_path / "in")
    tags = incar(tmp_path / "in" / "INCAR")
    species = (tmp_path / "in" / "POSCAR").read_text().splitlines()[5].split()
    counts = [int(c) for c in (tmp_path / "in" / "POSCAR").read_text().splitlines()[6].split()]
    assert sorted(species) == ["C", "Fe", "Mn", "N", "Na"]
    assert float(tags["ENCUT"]) == 700.0 and tags["GGA"] == "PS"
    assert tags["ISPIN"] == "2" and tags["LDAU"] == ".TRUE." and tags["LDAUTYPE"] == "2"
    want_l = {"Mn": 2, "Fe": 2}
    want_u = {"Mn": 5.5, "Fe": 5.5}
    assert [int(v) for v in tags["LDAUL"].split()] == [want_l.get(s, -1) for s in species]
    assert [float(v) for v in tags["LDAUU"].split()] == [want_u.get(s, 0.0) for s in species]
    assert [float(v) for v in tags["LDAUJ"].split()] == [0.0] * len(species)
    moments = {"Mn": 5.0, "Fe": 1.0}
    assert expand(tags["MAGMOM"]) == [moments.get(s, 0.0) for s, n in zip(species, counts) for _ in range(n)]
    assert sum(counts) == len(atoms) == len(expand(tags["MAGMOM"]))
    kp = (tmp_path / "in" / "KPOINTS").read_text().splitlines()
    assert kp[1].strip() == "0" and kp[2].strip().lower().startswith("g") and kp[3].split() == ["1", "1", "1"]
    if os.environ.get("VASP_PP_PATH"):  # the complete input set, POTCAR included, where POTCARs exist
        calc.write_input(atoms)
        assert (tmp_path / "run" / "dft" / "r0_f0003" / "POTCAR").stat().st_size > 0
        assert incar(tmp_path / "run" / "dft" / "r0_f0003" / "INCAR") == tags


def test_vasp_without_potcars_is_quarantined_not_fatal(tmp_path, monkeypatch):
    """A real failure of the real calculator: no POTCARs here -> retried, quarantined, campaign goes on."""
    from ase.config import cfg as ase_cfg

    monkeypatch.delenv("VASP_PP_PATH", raising=False)
    if "VASP_PP_PATH" in ase_cfg:
        pytest.skip("POTCARs are configured here (ASE config file)")
    cfg = config(tmp_path, calculator="vasp", retries=1, vasp={"command": "vasp_std"})
    oracle = AseOracle(cfg, None, MPI.COMM_SELF, None)
    atoms = Atoms("MnFeC2N2", positions=np.random.default_rng(0).random((6, 3)) * 5, cell=[6, 6, 6], pbc=True)
    assert run(oracle, {"f0": atoms}) == {}
    reason = oracle.state()["quarantined"]["r0:f0"]
    assert "\n" not in reason and reason.startswith("RuntimeError: ") and "No pseudopotential for Mn" in reason
    assert (tmp_path / "run" / "oracle-vasp" / "r0_f0").is_dir()
    assert oracle.state()["failed_attempts"] == 2


def test_pretraining_md_in_iteration_0_is_labelled_screened_and_reported(tmp_path):
    """oracle.pretrain: iteration 0 adds short teacher MD frames (step 0, 5, 10 at x = 0.5), labelled with
    the configured calculator (checked against the teacher directly) and screened like any other frame."""
    from pbahpc.oracle.teacher import TeacherCalculator

    cfg = config(tmp_path, pretrain={"compositions_x": [0.5], "steps": 10, "every": 5}, max_force_eV_A=2.0)
    oracle = AseOracle(cfg, None, MPI.COMM_SELF, np.random.SeedSequence(3))
    out = oracle.step(ctx(), {"selected": {}})
    names = sorted(set(out["labels"]) | set(out["screened"]["screened"]))
    assert names == ["pretrain:x0.5:000000", "pretrain:x0.5:000005", "pretrain:x0.5:000010"]
    calc = TeacherCalculator()
    for name, lab in out["labels"].items():
        atoms = Atoms(numbers=lab["numbers"], positions=lab["positions_A"], cell=lab["cell_A"], pbc=True)
        atoms.calc = calc
        assert lab["energy_eV"] == pytest.approx(atoms.get_potential_energy(), rel=1e-12)
        assert np.linalg.norm(lab["forces_eV_A"], axis=1).max() <= 2.0
    for name, reason in out["screened"]["screened"].items():
        assert reason.startswith("max |F|")
    assert oracle.state()["labelled"] == 3
    # later iterations do not repeat it
    later = StepContext(MPI.COMM_SELF, None, 1, logging.getLogger("test-oracle"), lambda: False, lambda cb: cb)
    assert oracle.step(later, {"selected": {}})["labels"] == {}


def test_pretraining_strains_label_each_composition_at_each_lattice(tmp_path):
    """oracle.pretrain.strains: x = 0.5 at a = 10.3 (names as without strains) and at a = 10.3 * 0.97."""
    cfg = config(tmp_path, pretrain={"compositions_x": [0.5], "steps": 0, "every": 5, "strains": [0.0, -0.03]})
    out = AseOracle(cfg, None, MPI.COMM_SELF, np.random.SeedSequence(3)).step(ctx(), {"selected": {}})
    assert sorted(out["labels"]) == ["pretrain:x0.5:000000", "pretrain:x0.5s-0.03:000000"]
    for name, a in (("pretrain:x0.5:000000", 10.3), ("pretrain:x0.5s-0.03:000000", 10.3 * 0.97)):
        np.testing.assert_allclose(np.diag(out["labels"][name]["cell_A"]), a, rtol=1e-12)


def test_pretraining_relaxation_labels_the_path_and_starts_the_md_from_its_end(tmp_path):
    """oracle.pretrain.relax: x = 2 relaxed with the teacher (path every 5 steps and its end, each labelled with
    the teacher), converged below the pre-training fmax; the MD frames start from the relaxed cell, scaled by each
    strain (the same fractional positions)."""
    from pbahpc.oracle.ase_oracle import PRETRAIN_FMAX_EV_A
    from pbahpc.oracle.teacher import TeacherCalculator

    pretrain = {"compositions_x": [2.0], "steps": 0, "every": 5, "strains": [0.0, 0.02], "relax": True}
    out = AseOracle(config(tmp_path, pretrain=pretrain), None, MPI.COMM_SELF, np.random.SeedSequence(3)).step(
        ctx(), {"selected": {}})["labels"]
    path = sorted(n for n in out if n.startswith("pretrain:x2relax:"))
    steps = [int(n.rsplit(":", 1)[1]) for n in path]
    assert steps[:-1] == list(range(0, 5 * (len(steps) - 1), 5)) and 0 < steps[-1] - steps[-2] <= 5
    assert sorted(set(out) - set(path)) == ["pretrain:x2:000000", "pretrain:x2s+0.02:000000"]
    calc = TeacherCalculator()
    for lab in out.values():
        atoms = Atoms(numbers=lab["numbers"], positions=lab["positions_A"], cell=lab["cell_A"], pbc=True)
        atoms.calc = calc
        assert lab["energy_eV"] == pytest.approx(atoms.get_potential_energy(), rel=1e-12)
    start, end = out[path[0]], out[path[-1]]
    assert np.linalg.norm(end["forces_eV_A"], axis=1).max() <= PRETRAIN_FMAX_EV_A
    assert end["energy_eV"] < start["energy_eV"] - 1.0  # the rattled, cubic start relaxed (teacher: 12 eV lower)
    for name, strain in (("pretrain:x2:000000", 0.0), ("pretrain:x2s+0.02:000000", 0.02)):
        md = out[name]
        np.testing.assert_allclose(md["cell_A"], np.asarray(end["cell_A"]) * (1 + strain), rtol=1e-12)
        frac = lambda f: np.linalg.solve(np.asarray(f["cell_A"]).T, np.asarray(f["positions_A"]).T).T  # noqa: E731
        np.testing.assert_allclose(frac(md), frac(end), atol=1e-12)


@pytest.mark.parametrize("barostat", ["aniso", "tri"])
def test_pretraining_relaxation_has_the_properties_cell_freedom(tmp_path, barostat):
    """oracle.pretrain.relax relaxes with properties.interface.barostat's cell mask (the path the properties'
    relaxed cells take): aniso keeps the cell orthogonal exactly, tri lets the rattled start shear it."""
    pretrain = {"compositions_x": [2.0], "steps": 0, "every": 50, "relax": True}
    cfg = config(tmp_path, properties={"interface": {"barostat": barostat}}, pretrain=pretrain)
    out = AseOracle(cfg, None, MPI.COMM_SELF, np.random.SeedSequence(3)).step(ctx(), {"selected": {}})["labels"]
    cell = np.asarray(out["pretrain:x2:000000"]["cell_A"])  # the MD's start: the relaxation's end
    assert np.all(cell[[0, 0, 1, 1, 2, 2], [1, 2, 0, 2, 0, 1]] == 0.0) == (barostat == "aniso")
