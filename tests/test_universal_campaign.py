"""The reduced universal-oracle campaign (inputs/mnfepba-universal-reduced.yaml: CHGNet 0.3.0 labels, one cell,
2 ranks) converges, its final MTP stands in for the model on held-out frames within stated RMSEs, and the fidelity
table's Eq. 31 row is each side's Eq. 31 of its own relaxed cells (issue 16). The numbers come from the campaign's
properties.h5 (its runs and fidelity table); the held-out labels from CHGNet's own calculator here. Measured: 3 min
44 s for the module on 2 cores shared with other jobs, load ~3 (the campaign 206 s, the held-out frames 18 s).

Not asserted: the issue's relaxed volumes within 2 % and voltage within 50 mV of the model's. The input's seed (11)
meets both here (-0.54 % / -0.18 %, 2.311 V against CHGNet's 2.313 V); with seed 12 the same input relaxes the MTP's
x = 2 cell into a distorted basin (volume -4.6 %, 76 meV/atom off CHGNet, MaxVol grade 4.7 < gamma_stop, so no
relearning) and the voltage is 154 mV off, and two other inputs passed one seed in two. Which path a campaign
takes follows the machine's floating point, so asserting them would pass here and fail elsewhere; they are
printed (pytest -s) and stay open in the issue."""
from __future__ import annotations

import subprocess

import numpy as np
import pytest
import yaml

from conftest import ROOT, env, pbahpc_cmd, write_campaign

pytest.importorskip("chgnet", reason="the universal extra is not installed (tools/setup.sh --universal)")

# the campaign's numbers: its relaxed single-phase runs by the MTP and by the model (properties.reference)
MTP_RUN, MODEL_RUN = "interface|reference|x{x:g}", "reference|interface|reference|x{x:g}"


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("universal-reduced")
    data = yaml.safe_load((ROOT / "inputs" / "mnfepba-universal-reduced.yaml").read_text())
    data["campaign"]["run_dir"] = str(tmp / "run")
    path = write_campaign(tmp / "c.yaml", data)
    # one BLAS thread per rank: the training's floating-point order then does not depend on the machine's cores
    # (with pytest's default threads the same seed took another trajectory: 5 iterations, +33 mV, against 4, -2 mV)
    out = subprocess.run(pbahpc_cmd(2, "run", str(path)), capture_output=True, text=True, timeout=1500,
                         env={**env(), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}, cwd=tmp)
    assert out.returncode == 0, out.stderr[-3000:]
    return {"dir": tmp / "run", "cfg": data}


def properties(run) -> tuple[dict, dict]:
    """(runs, numbers) of the campaign's properties.h5."""
    from pbahpc.checkpoint import read_checkpoint_file

    payload = read_checkpoint_file(run["dir"] / "properties" / "properties.h5")[0]
    return payload["runs"], payload["numbers"]


def cell(r):
    from ase import Atoms

    return Atoms(numbers=r["numbers"], positions=r["positions_A"], cell=r["cell_A"], pbc=True)


def test_the_reduced_campaign_converges(run):
    """Active learning ends by convergence inside the budget (no replica halted, nothing selected, the properties'
    runs stayed in the learned domain), every properties run finished, the model's relaxations converged."""
    from pbahpc.checkpoint import read_checkpoint_file

    meta = read_checkpoint_file(run["dir"] / "results.h5")[1].meta
    assert meta["converged"] == 1 and meta["iterations"] <= run["cfg"]["campaign"]["iterations"]
    runs, _ = properties(run)
    assert not [name for name, r in runs.items() if "failed" in r]
    for x in (0, 2):
        assert runs[MODEL_RUN.format(x=x)]["converged"] == 1
        assert MTP_RUN.format(x=x) in runs


def test_final_mtp_against_the_model_on_held_out_frames(run):
    """Frames the MTP never saw, where the properties live: 300 K Langevin MD (1 fs) with CHGNet from the model's
    relaxed x = 0 and x = 2 cells (a seed the campaign does not use), labelled by CHGNet's calculator here (the
    MTP's own relaxed cells too, printed: they depend on the campaign's path). Stated RMSEs: energy <= 5 meV/atom
    (in Eq. 31 an error of e per atom in one 64-atom cell moves the voltage by 64 e / 8 Na: 40 mV, inside the
    voltage's 50 mV); forces on the MD frames <= a quarter of those frames' own RMS force (the fit explains >= 94 %
    of the force variance). Measured (seed 11): MD frames 0.6 / 0.9 meV/atom, 0.06 / 0.07 eV/A (x = 0 / 2) against
    RMS forces of 0.63 / 0.56 eV/A, the MTP's relaxed cells 0.8 / 0.6 meV/atom; MTPs whose x = 2 cell relaxed into a
    wrong basin gave 10-76 meV/atom there."""
    import glob

    import torch
    from chgnet.model import CHGNetCalculator

    from pbahpc.mlip.dataset import generate_oracle_md, labelled_copy
    from pbahpc.mlip.mtp_file import read_mtp
    from pbahpc.mlip.train import rmse

    torch.set_num_threads(1)  # the loaded 2-core case: one thread is the faster
    calc = CHGNetCalculator(use_device="cpu")
    runs, _ = properties(run)
    mtp = read_mtp(sorted(glob.glob(str(run["dir"] / "potentials" / "potential-*.mtp")))[-1])
    species = tuple(run["cfg"]["trainer"].get("species", ("Na", "Mn", "Fe", "C", "N")))
    for x in (0, 2):
        md = generate_oracle_md(calculator=calc, compositions_x=(x,), start=cell(runs[MODEL_RUN.format(x=x)]),
                                steps=20, every=5, timestep_fs=1.0, seed=2027)
        relaxed = cell(runs[MTP_RUN.format(x=x)])
        relaxed.calc = calc
        got = rmse(mtp, species, md)
        own = rmse(mtp, species, [labelled_copy(relaxed)])
        scale = float(np.sqrt(np.mean([np.mean(a.get_forces() ** 2) for a in md])))
        print(f"x = {x:g}: held-out MD {got}, the MTP's relaxed cell {own} (path-dependent, not asserted)")
        assert got["energy"] <= 5e-3, (x, got)
        assert got["forces"] <= 0.25 * scale, (x, got, scale)


def test_relaxed_volumes_against_the_model(run):
    """The MTP's relaxed x = 0 and x = 2 cells (NPT MD at 300 K, then minimised with the box) against the model's
    own relaxation of the same cells (BFGS, a, b, c and positions, 1 bar): printed, not asserted (see the module's
    docstring; the issue's tolerance is 2 %). The stored volumes are the stored cells'."""
    runs, _ = properties(run)
    for x in (0, 2):
        learned, model = runs[MTP_RUN.format(x=x)], runs[MODEL_RUN.format(x=x)]
        print(f"x = {x:g}: V(MTP) / V(model) - 1 = {float(learned['volume_A3']) / float(model['volume_A3']) - 1:+.2%}")
        for r in (learned, model):
            assert float(r["volume_A3"]) == pytest.approx(np.linalg.det(np.asarray(r["cell_A"])), rel=1e-9)


def test_fidelity_voltage_row_is_eq31_of_each_side(run):
    """Eq. 31 between the relaxed x = 0 and x = 2 cells, by the MTP (properties.na_reference_eV) and by the model
    (its own bcc Na): the fidelity table's row is Eq. 31 of each side's stored energies, with the input's 50 mV
    tolerance (properties.fidelity.voltage_V) and its pass flag consistent with the difference. Measured (seed 11):
    2.311 V against CHGNet's 2.313 V; whether it passes depends on the path (module docstring)."""
    from pbahpc.properties.voltage import average_voltage

    runs, numbers = properties(run)
    learned, _, model, _, tolerance, passed = numbers["fidelity"]["average voltage (Eq. 31)"]
    print(f"voltage: MTP {learned:.3f} V, model {model:.3f} V")
    assert tolerance == pytest.approx(0.05) and passed == (abs(learned - model) <= 0.05)
    na = {"learned": run["cfg"]["properties"]["na_reference_eV"], "model": runs["reference|na_metal"]["eV_per_atom"]}
    for side, template, value in (("learned", MTP_RUN, learned), ("model", MODEL_RUN, model)):
        e0, e2 = (float(runs[template.format(x=x)]["energy_eV"]) for x in (0, 2))
        assert value == pytest.approx(average_voltage(e0, 0.0, e2, 2.0, float(na[side]), formula_units=4))
