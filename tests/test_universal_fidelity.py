"""``properties.reference`` with ``oracle.calculator: universal``: the universal model is the reference, its
relaxed single-phase cells are direct ASE relaxations with the package's own calculator, and the report's
fidelity table fills the rows that model affords (voltage, lattice, angles, volume change) and says which it
does not compute. CHGNet 0.3.0 (the cheapest shipped model)."""
from __future__ import annotations

import copy
import logging

import numpy as np
import pytest
import yaml

from conftest import ROOT, write_campaign

pytest.importorskip("chgnet", reason="the universal extra is not installed (tools/setup.sh --universal)")

CHGNET_NA_EV = -1.289048  # bcc Na relaxed with chgnet-0.3.0 (tools/na_reference.py chgnet-0.3.0)


def universal_campaign(tmp_path, **properties):
    data = yaml.safe_load((ROOT / "inputs" / "mnfepba-universal.yaml").read_text())
    data["campaign"]["run_dir"] = str(tmp_path / "run")
    data["oracle"]["universal"] = {"model": "chgnet-0.3.0"}
    data["properties"] = {"reference": True, "na_reference_eV": CHGNET_NA_EV, **properties}
    return write_campaign(tmp_path / "c.yaml", data)


def test_reference_relaxation_is_the_packages_direct_ase_relaxation(tmp_path):
    """The engine's reference run at x = 0 against BFGS + FrechetCellFilter written out here with
    CHGNet's own calculator (loaded its own way), the same start (the built cell, rattled with the run's
    seed), the same cell degrees of freedom (a, b, c: the MTP side's aniso barostat), 1 bar, the same fmax."""
    from ase.filters import FrechetCellFilter
    from ase.optimize import BFGS
    from ase.units import bar
    from chgnet.model import CHGNetCalculator
    from mpi4py import MPI

    from pbahpc.config.load import load
    from pbahpc.driver.component import StepContext
    from pbahpc.properties.engine import UNIVERSAL_FMAX_EV_A, UNIVERSAL_RATTLE_A, PropertiesEngine
    from pbahpc.properties.interface import two_phase_supercell

    cfg = load(universal_campaign(tmp_path))
    engine = PropertiesEngine(cfg, None, MPI.COMM_SELF, 5)
    ctx = StepContext(MPI.COMM_SELF, None, 0, logging.getLogger("properties"), lambda: False, lambda cb: cb)
    got = engine._run(ctx, "reference", {"x": 0.0}, True)
    assert got["converged"]

    atoms = two_phase_supercell(1, (1, 1, 1), a_A=cfg.replicas.gcmc.a_A, x_high=0.0, x_low=0.0)
    atoms.rattle(UNIVERSAL_RATTLE_A, seed=int(got["rattle_seed"]))
    atoms.calc = CHGNetCalculator(use_device="cpu")
    assert BFGS(FrechetCellFilter(atoms, mask=[1, 1, 1, 0, 0, 0], scalar_pressure=1.0 * bar),
                logfile=None).run(fmax=UNIVERSAL_FMAX_EV_A, steps=1000)
    # to the optimiser's tolerance: |F| <= fmax on the cell's generalised force (virial / N atoms) is a
    # stress of fmax N / V ~ 6e-4 eV/A^3 (0.1 GPa), over a PBA bulk modulus of >= 20 GPa a volume within 0.5 %
    # of the minimum, each side; the energy is quadratic in those residuals (<= N fmax^2 / k ~ meV)
    V = atoms.get_volume()
    assert float(got["volume_A3"]) == pytest.approx(V, rel=1e-2)
    np.testing.assert_allclose(np.asarray(got["cell_A"]).diagonal(), atoms.cell.array.diagonal(),
                               rtol=4e-3)
    assert np.allclose(np.asarray(got["cell_A"]) - np.diag(np.asarray(got["cell_A"]).diagonal()), 0.0)
    assert float(got["energy_eV"]) == pytest.approx(atoms.get_potential_energy(), abs=5e-3 * len(atoms) / 64)
    # the relaxation did something: the cell left the start's 10.3 A
    assert abs(V ** (1 / 3) - cfg.replicas.gcmc.a_A) > 0.1
