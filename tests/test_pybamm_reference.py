"""Self-check of tests/pybamm_reference.py (the PyBaMM DFN that verifies pbahpc's cell solver): at
C/20 the DFN's voltage must follow the open-circuit voltage of Coulomb-counted stoichiometries, which
checks the translation of capacity, c_max, stoichiometry, volume fractions and area into PyBaMM."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

pytest.importorskip("pybamm")

from pybamm_reference import one_c_A_m2, pybamm_dfn  # noqa: E402

from pbahpc.continuum.model import (  # noqa: E402
    FARADAY_C_MOL,
    Cell,
    Electrode,
    Electrolyte,
    FickianParticle,
    Separator,
)

# Linear-ish OCV tables (np.interp, so the helper has to tabulate them); the cathode falls steeply
# above x = 0.85, which sets the discharge's end.
X_TABLE = np.array([0.1, 0.3, 0.5, 0.7, 0.85, 0.9])
U_CATHODE = np.array([4.25, 4.05, 3.90, 3.78, 3.65, 3.00])
U_ANODE = np.array([0.30, 0.22, 0.16, 0.12, 0.09, 0.08])
X_ANODE_0, X_CATHODE_0 = 0.85, 0.20
AREA_M2 = 0.05
CUTOFF_V = 3.3


def ocv_anode(x):
    return np.interp(x, X_TABLE, U_ANODE)


def ocv_cathode(x):
    return np.interp(x, X_TABLE, U_CATHODE)


def electrode(thickness_m, c_max, x0, ocv):
    return Electrode(
        thickness_m=thickness_m, porosity=0.3, active_fraction=0.6, particle_radius_m=2e-6,
        formula_units_mol_m3=c_max, x_initial=x0,
        particle=FickianParticle(diffusivity_m2_s=lambda x: np.full_like(x, 1e-13), ocv_V=ocv),
        exchange_current_A_m2=lambda c_e, x, T: 10.0 * np.sqrt(c_e / 1000.0), conductivity_S_m=50.0)


def make_cell(capacity_Ah):
    # cathode-limited: the anode holds 1.12x the cathode's charge per unit x, so it ends near x = 0.23
    cathode = electrode(50e-6, 40000.0, X_CATHODE_0, ocv_cathode)
    anode = electrode(70e-6, 32000.0, X_ANODE_0, ocv_anode)
    electrolyte = Electrolyte(
        initial_mol_m3=1000.0, diffusivity_m2_s=lambda c: np.full_like(c, 3e-10),
        conductivity_S_m=lambda c: np.full_like(c, 1.0), transference_number=0.38,
        thermodynamic_factor=lambda c: np.ones_like(c))
    return Cell(anode, Separator(20e-6, 0.4), cathode, electrolyte, temperature_K=298.15, area_m2=AREA_M2,
                capacity_Ah=capacity_Ah, x_window=(0.2, 0.9))


def charge_C_m2(e: Electrode) -> float:
    """Coulombs per m^2 of electrode per unit change of x."""
    return FARADAY_C_MOL * e.formula_units_mol_m3 * e.active_fraction * e.thickness_m


def coulomb_ocv(cell: Cell, i_A_m2: float, t_s):
    """U_p(x_p(t)) - U_n(x_n(t)) with x from Coulomb counting (discharge: cathode fills, anode empties)."""
    x_p = cell.cathode.x_initial + i_A_m2 * t_s / charge_C_m2(cell.cathode)
    x_n = cell.anode.x_initial - i_A_m2 * t_s / charge_C_m2(cell.anode)
    return cell.cathode.particle.ocv_V(x_p) - cell.anode.particle.ocv_V(x_n), x_p, x_n


@pytest.fixture(scope="module")
def slow_discharge():
    capacity_Ah = charge_C_m2(make_cell(None).cathode) * 0.7 / 3600.0 * AREA_M2  # window 0.2 -> 0.9
    cell = make_cell(capacity_Ah)
    return cell, pybamm_dfn(cell, 1 / 20, CUTOFF_V)


def test_low_rate_voltage_follows_coulomb_counted_ocv(slow_discharge):
    cell, run = slow_discharge
    assert run["termination"] == "event: Minimum voltage [V]"
    assert run["functions"]["cathode.ocv"] == "table" and run["table_error"]["cathode.ocv"] < 1e-3
    i = run["current_density_A_m2"]
    assert i == pytest.approx(charge_C_m2(cell.cathode) * 0.7 / 3600.0 / 20, rel=1e-12)
    t, v = run["t_s"], run["voltage_V"]
    ocv, x_p, x_n = coulomb_ocv(cell, i, t)
    # away from the first minute (transient) and the cathode's steep end (x_p > 0.84)
    body = (t > 60.0) & (x_p < 0.84)
    assert np.ptp(t[body]) > 0.85 * t[-1]
    gap = ocv[body] - v[body]
    assert np.all(gap > 0.0), "a discharge voltage must lie below the open-circuit voltage"
    assert np.max(gap) < 2.5e-3, f"max OCV - V = {1e3 * np.max(gap):.2f} mV"  # about 1.1 mV
    assert np.all((x_n[body] > 0.1) & (x_n[body] < 0.9))


def test_discharge_time_matches_limiting_electrode_capacity(slow_discharge):
    cell, run = slow_discharge
    i, t_cut = run["current_density_A_m2"], run["t_s"][-1]
    # where the Coulomb-counted OCV reaches the cutoff: the cathode's x at the cutoff
    t = np.linspace(0.0, 1.2 * 20 * 3600.0, 200001)
    ocv, x_p, _ = coulomb_ocv(cell, i, t)
    k = int(np.argmax(ocv < CUTOFF_V))
    swept_C_m2 = charge_C_m2(cell.cathode) * (x_p[k] - cell.cathode.x_initial)
    assert 0.85 < x_p[k] < 0.9
    assert i * t_cut == pytest.approx(swept_C_m2, rel=0.01)


def test_one_c_without_capacity_is_the_cathode_window():
    cell = make_cell(None)
    assert one_c_A_m2(cell) == pytest.approx(charge_C_m2(cell.cathode) * 0.7 / 3600.0, rel=1e-12)
    run = pybamm_dfn(dataclasses.replace(cell, area_m2=1.0), 1.0, CUTOFF_V, t_eval=np.linspace(0, 600, 7))
    assert run["current_density_A_m2"] == pytest.approx(one_c_A_m2(cell), rel=1e-12)
    assert run["t_s"] == pytest.approx(np.linspace(0, 600, 7))
    assert run["build_s"] > 0 and run["solve_s"] > 0
