"""Exchange current j0(c_e, x_surf, T) in the standard form k c_e^a x^b (x_max - x)^c with an Arrhenius
factor (functions.ExchangeCurrent, the P2D file's ``exchange_current: {form: standard, ...}``).

1. The form against PyBaMM's own Marquis2019 functions (Dualfoil's LiCoO2 and graphite j0) on a grid of
   c_e, c_s and T, to round-off.
2. The whole Marquis2019 cell (its j0 in the standard form, converted by ``pbahpc p2d --from-pybamm``)
   against PyBaMM's DFN at 1C, and a wrong exponent moving beyond 5 mV: tests/test_p2d_from_pybamm.py.
"""
from __future__ import annotations

import os

import numpy as np
import pytest
import yaml

from pbahpc.config import ConfigError
from pbahpc.continuum.functions import ExchangeCurrent
from pbahpc.continuum.parameters import load_parameters

from conftest import ROOT

FICKIAN = ROOT / "inputs" / "p2d-fickian.yaml"


def _fickian(tmp_path, **cathode):
    data = yaml.safe_load(FICKIAN.read_text())
    data["cathode"].update(cathode)
    data["cathode"] = {k: v for k, v in data["cathode"].items() if v is not None}
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_eq29_form_is_the_default_and_ignores_x(tmp_path):
    ps = load_parameters(FICKIAN)
    j0 = ps.cell.cathode.exchange_current_A_m2
    ce = np.array([0.0, 250.0, 1000.0, 4000.0])
    c0 = ps.cell.electrolyte.initial_mol_m3
    j0_ref = yaml.safe_load(FICKIAN.read_text())["cathode"]["exchange_current_A_m2"]
    for x in (0.0, 0.3, 1.0):
        np.testing.assert_allclose(j0(ce, np.full(4, x), 350.0), j0_ref * np.sqrt(ce / c0), rtol=1e-14)


def test_standard_form_from_the_file(tmp_path):
    spec = {"form": "standard", "k_A_m2": 0.03, "a": 0.4, "b": 0.6, "c": 0.7, "Ea_J_mol": 30000.0,
            "T_ref_K": 300.0}
    ps = load_parameters(_fickian(tmp_path, exchange_current_A_m2=None, exchange_current=spec))
    e = ps.cell.cathode
    j0 = e.exchange_current_A_m2
    ce, x = np.array([500.0, 1000.0, 2000.0]), np.array([0.1, 0.5, 0.9]) * e.x_max
    R = 8.314462618
    for T in (300.0, 330.0):
        want = 0.03 * ce**0.4 * x**0.6 * (e.x_max - x) ** 0.7 * np.exp(-30000.0 / R * (1 / T - 1 / 300.0))
        np.testing.assert_allclose(j0(ce, x, T), want, rtol=1e-13)
    assert j0(ce, x, 330.0)[0] / j0(ce, x, 300.0)[0] == pytest.approx(3.0, rel=0.05)  # ~3x per 30 K at 30 kJ/mol
    # an overshooting Newton iterate: clipped, not NaN
    assert np.all(np.isfinite(j0(np.array([-5.0, 1000.0, 1000.0]), np.array([0.5, -0.01, 1.01 * e.x_max]), 300.0)))


@pytest.mark.parametrize("change, key, words", [
    ({"exchange_current_A_m2": None}, "cathode", "exactly one of exchange_current_A_m2"),
    ({"exchange_current": {"form": "standard", "k_A_m2": 1e-3}}, "cathode", "exactly one of"),
    ({"exchange_current_A_m2": None, "exchange_current": {"form": "tafel", "k_A_m2": 1e-3}},
     "cathode.exchange_current.form", "'standard'"),
    ({"exchange_current_A_m2": None, "exchange_current": {"form": "standard", "k_A_m2": 1e-3, "b": -1}},
     "cathode.exchange_current.b", ">= 0"),
    ({"exchange_current_A_m2": None, "exchange_current": {"form": "standard", "k_A_m2": 1e-3, "E_a": 3e4}},
     "cathode.exchange_current.E_a", "allowed: form, k_A_m2, a, b, c, Ea_J_mol, T_ref_K"),
    ({"exchange_current_A_m2": None, "reference_electrolyte_mol_m3": 1000.0,
      "exchange_current": {"form": "standard", "k_A_m2": 1e-3}},
     "cathode.reference_electrolyte_mol_m3", "exchange_current_A_m2 only"),
])
def test_bad_exchange_current_is_one_line(tmp_path, change, key, words):
    path = _fickian(tmp_path, **change)
    with pytest.raises(ConfigError) as err:
        load_parameters(path)
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith(f"{path}: {key}:") and words in msg, msg


# ---- against PyBaMM's Marquis2019 ----------------------------------------------------------------

os.environ.setdefault("PYBAMM_DISABLE_TELEMETRY", "true")  # before any import of pybamm

MARQUIS = {  # PyBaMM's Dualfoil j0: m_ref c_e^0.5 c_s^0.5 (c_max - c_s)^0.5 (A/m^2, m_ref includes units)
    "Negative": {"m_ref": 2e-5, "Ea_J_mol": 37480.0},
    "Positive": {"m_ref": 6e-7, "Ea_J_mol": 39570.0},
}


def _evaluate(symbol) -> np.ndarray:
    return np.asarray(symbol.evaluate(), dtype=float).ravel()


def test_standard_form_equals_marquis2019_j0():
    pybamm = pytest.importorskip("pybamm")
    p = pybamm.ParameterValues("Marquis2019")
    ce = np.array([100.0, 700.0, 1000.0, 1600.0, 3000.0])
    for D, m in MARQUIS.items():
        domain = D.lower()
        c_max = p[f"Maximum concentration in {domain} electrode [mol.m-3]"]
        fn = p[f"{D} electrode exchange-current density [A.m-2]"]
        ours = ExchangeCurrent(m["m_ref"] * c_max, a=0.5, b=0.5, c=0.5, x_max=1.0, Ea_J_mol=m["Ea_J_mol"],
                               T_ref_K=298.15)
        for x in (0.05, 0.5, 0.93):
            for T in (263.15, 298.15, 333.15):
                theirs = _evaluate(fn(pybamm.Vector(ce), pybamm.Scalar(x * c_max), pybamm.Scalar(c_max),
                                      pybamm.Scalar(T)))
                # 1e-9: PyBaMM's R = N_A k_B to all digits, ours to 10 (2e-11 relative), times Ea/RT ~ 16
                np.testing.assert_allclose(ours(ce, np.full_like(ce, x), T), theirs, rtol=1e-9)
