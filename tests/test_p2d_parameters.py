"""P2D parameter files: material functions, the atomistic -> continuum mapping (Eqs. 24-28) against
closed forms, the shipped parameter sets, and one-line errors for bad input."""
from __future__ import annotations

import copy
import math
import warnings

import numpy as np
import pytest
import yaml
from scipy.optimize import brentq

from pbahpc.config import ConfigError
from pbahpc.continuum import mapping
from pbahpc.continuum.functions import Constant, EdgeBarrier, Function, Polynomial, Table
from pbahpc.continuum.model import R_GAS_J_MOL_K, CahnHilliardParticle, FickianParticle
from pbahpc.continuum.parameters import ParameterWarning, load_parameters

from conftest import ROOT

MNFEPBA = ROOT / "inputs" / "p2d-mnfepba.yaml"
FICKIAN = ROOT / "inputs" / "p2d-fickian.yaml"


def _fd(f: Function, v: np.ndarray, h: float = 1e-6) -> np.ndarray:
    return (f(v + h) - f(v - h)) / (2 * h)


# ---- functions ----------------------------------------------------------------------------------

def test_polynomial_matches_numpy():
    coef = [1.5, -2.0, 0.25, 3.0]
    v = np.linspace(-2, 2, 7).reshape(7, 1) * np.ones((1, 3))  # any array shape
    p = Polynomial(coef)
    assert p(v).shape == v.shape
    np.testing.assert_allclose(p(v), np.polyval(coef[::-1], v), rtol=1e-14)
    np.testing.assert_allclose(p.derivative(v), np.polyval(np.polyder(coef[::-1]), v), rtol=1e-14)


def test_table_interpolates_monotonically_and_extrapolates_linearly():
    x, y = [0.0, 0.5, 1.0, 2.0], [4.0, 3.6, 3.5, 3.0]
    t = Table(x, y)
    np.testing.assert_allclose(t(np.array(x)), y, rtol=1e-14)
    inside = np.linspace(0.01, 1.99, 199)
    assert np.all(np.diff(t(inside)) < 0)  # PCHIP keeps the data's monotonicity
    np.testing.assert_allclose(t.derivative(inside), _fd(t, inside), rtol=1e-5, atol=1e-8)
    for end, beyond in ((0.0, np.array([-0.5, -0.1])), (2.0, np.array([2.1, 3.0]))):
        slope = float(t.derivative(end))
        assert slope < 0
        np.testing.assert_allclose(t(beyond), float(t(end)) + slope * (beyond - end), rtol=1e-13)
        np.testing.assert_allclose(t.derivative(beyond), slope, rtol=1e-13)


def test_constant():
    v = np.array([[0.0, 250.0], [1000.0, 4000.0]])
    assert Constant(2.5)(v).shape == v.shape and np.all(Constant(2.5)(v) == 2.5)
    assert np.all(Constant(2.5).derivative(v) == 0.0)


# ---- mapping ------------------------------------------------------------------------------------

class RegularSolution(Function):
    """mu = RT ln(x/(1-x)) + Omega (1 - 2x), J/mol."""

    def __init__(self, omega_over_RT: float, T: float = 300.0):
        self.RT, self.omega = R_GAS_J_MOL_K * T, omega_over_RT * R_GAS_J_MOL_K * T

    def __call__(self, x):
        x = np.asarray(x, dtype=float)
        return self.RT * np.log(x / (1 - x)) + self.omega * (1 - 2 * x)

    def derivative(self, x):
        x = np.asarray(x, dtype=float)
        return self.RT / (x * (1 - x)) - 2 * self.omega


def test_edge_barrier_diverges_at_the_ends_and_keeps_inner_binodals():
    rt = R_GAS_J_MOL_K * 400.0
    # mu = W (u^3 - 0.09 u), u = x - 1/2: one loop, binodals at u = +-0.3 (equal areas by symmetry)
    u = np.polynomial.Polynomial([-0.5, 1.0])
    well = Polynomial(list((3.0e4 * (u**3 - 0.09 * u)).coef))
    f = EdgeBarrier(well, 1.0, 0.02, rt)
    x = np.array([1e-6, 0.005, 0.0199, 0.5, 0.9801, 0.995])
    h = 1e-9
    np.testing.assert_allclose(f.derivative(x), (f(x + h) - f(x - h)) / (2 * h), rtol=1e-5, atol=1.0)
    np.testing.assert_array_equal(f(np.array([0.02, 0.3, 0.98])), well(np.array([0.02, 0.3, 0.98])))
    assert f(np.array([1e-9]))[0] < -10 * rt and f(np.array([1 - 1e-9]))[0] > 10 * rt
    # C2 where the barrier starts (a kink there stalled the cell's Newton): the jumps of f' and f''
    # across x = w +- d vanish like d^2 and d (a bare RT ln(x / w) jumps f' by RT / w = 1.7e5 J/mol)
    for w in (0.02, 0.98):
        d = 1e-4
        jump1 = abs(f.derivative(w + d) - well.derivative(w + d) - f.derivative(w - d) + well.derivative(w - d))
        assert jump1 < 2 * rt / 0.02 * (d / 0.02) ** 2
        curv = [(f.derivative(v + 1e-7) - f.derivative(v - 1e-7)) / 2e-7 - (well.derivative(v + 1e-7)
                - well.derivative(v - 1e-7)) / 2e-7 for v in (w - d, w + d)]
        assert abs(curv[0] - curv[1]) < 3 * rt / 0.02**2 * (d / 0.02)
    inner = mapping.common_tangent(well, 0.0, 1.0)
    assert np.allclose(inner.binodal_x, (0.2, 0.8), atol=1e-3)
    assert np.allclose(mapping.common_tangent(f, 0.0, 1.0).binodal_x, inner.binodal_x, atol=1e-3)


def test_common_tangent_of_the_regular_solution():
    a = 4.511  # Omega / kT of MPET's LFP (p2d.md 4.2)
    gap = mapping.common_tangent(RegularSolution(a), 1e-9, 1 - 1e-9)
    # symmetric: the binodal solves ln(x/(1-x)) = a (2x - 1), the spinodal x(1-x) = 1/(2a)
    x1 = brentq(lambda x: math.log(x / (1 - x)) - a * (2 * x - 1), 1e-9, 0.4)
    np.testing.assert_allclose(gap.binodal_x, (x1, 1 - x1), rtol=1e-8)
    np.testing.assert_allclose(gap.binodal_x, (0.0121, 0.9879), atol=5e-5)
    s = 0.5 * math.sqrt(1 - 2 / a)
    np.testing.assert_allclose(gap.spinodal_x, (0.5 - s, 0.5 + s), rtol=1e-8)
    np.testing.assert_allclose(gap.spinodal_x, (0.127, 0.873), atol=5e-4)
    assert abs(gap.mu_coexistence_J_mol) < 1e-6


def test_common_tangent_rejects_a_monotone_mu():
    with pytest.raises(ValueError, match="one loop"):
        mapping.common_tangent(RegularSolution(1.5), 1e-6, 1 - 1e-6)  # above the critical temperature


FU = 5700.0  # mol/m^3: N = x * FU
W = 2.0e6  # J/m^3


def _quartic() -> tuple[Polynomial, mapping.MiscibilityGap]:
    """G(N) = W c^2 (1-c)^2 with c = N / FU: mu = dG/dN = (2 W / FU) (c - 3c^2 + 2c^3) in J/mol."""
    mu = Polynomial(np.array([0.0, 1.0, -3.0, 2.0]) * 2 * W / FU)
    return mu, mapping.common_tangent(mu, -0.25, 1.25)


def test_kappa_from_interface_energy_of_the_quartic_well():
    mu, gap = _quartic()
    np.testing.assert_allclose(gap.binodal_x, (0.0, 1.0), atol=1e-9)
    gamma = 0.5
    # gamma = sqrt(2 kappa_c W) / 6 with kappa_c = k FU^2 the coefficient for the gradient of c
    exact = 18 * gamma ** 2 / (W * FU ** 2)
    k = mapping.kappa_from_interface_energy(gamma, mu, gap, FU)
    assert k == pytest.approx(exact, rel=1e-4)
    assert mapping.interface_energy_from_kappa(k, mu, gap, FU) == pytest.approx(gamma, rel=1e-10)


def test_interface_width_of_the_quartic_well():
    mu, gap = _quartic()
    k = 3e-15
    # tanh profile c = (1 + tanh(r / delta)) / 2, delta = FU sqrt(2 k / W); Eq. 28 gives 2 delta
    delta = FU * math.sqrt(2 * k / W)
    assert mapping.interface_width_m(k, mu, gap, FU) == pytest.approx(2 * delta, rel=1e-6)


@pytest.mark.parametrize("blend", ["log", "linear"])
def test_mobility_reproduces_each_phase_diffusivity(blend):
    mu, gap = _quartic()
    d_poor, d_rich = 6.13e-14, 1.9e-18
    m = mapping.mobility_from_diffusivity(d_poor, d_rich, mu, gap, FU, blend)
    ends = []
    for x, d in zip(gap.binodal_x, (d_poor, d_rich)):
        assert float(m(x) * mu.derivative(x) / FU) == pytest.approx(d, rel=1e-12)  # Eq. 24
        ends.append(float(m(x)))
    # mid-gap the smoothstep is 1/2: the geometric or the arithmetic mean of the phases' mobilities
    mid = float(m(np.mean(gap.binodal_x)))
    assert mid == pytest.approx(np.sqrt(ends[0] * ends[1]) if blend == "log" else np.mean(ends), rel=1e-12)
    x = np.linspace(-0.2, 1.2, 57) + 1e-3  # off the kinks at the binodals
    assert np.all(np.diff(m(x)) <= 0) and np.all(m(x) > 0)
    np.testing.assert_allclose(m.derivative(x), _fd(m, x, h=1e-7), rtol=1e-5, atol=1e-30)


def test_interface_resolution_factor():
    assert mapping.check_interface_resolution(100e-9, 10e-9) == 1.0
    assert mapping.check_interface_resolution(20e-9, 10e-9) == pytest.approx(mapping.MIN_CELLS_PER_WIDTH / 2)


# ---- the shipped parameter sets -----------------------------------------------------------------

def test_mnfepba_parameter_set():
    with pytest.warns(ParameterWarning, match="x100 the physical"):
        ps = load_parameters(MNFEPBA)
    cell, d = ps.cell, ps.derived["cathode"]
    assert isinstance(cell.cathode.particle, CahnHilliardParticle)
    assert isinstance(cell.anode.particle, FickianParticle)
    # the polynomial was built so that 0.02 / 1.58 are the binodals at 400 K (see the YAML comment)
    np.testing.assert_allclose(d["binodal_x"], (0.02, 1.58), atol=1e-6)
    assert d["plateau_V"] == pytest.approx(3.45, abs=1e-6)
    assert d["spinodal_x"][0] > 0.02 and d["spinodal_x"][1] < 1.58
    r = cell.cathode.particle_radius_m
    assert 0.08 * r < d["interface_width_m"] < 0.12 * r  # the paper's ~R/10 with 0.5 J/m^2
    assert d["cells_per_width"] >= mapping.MIN_CELLS_PER_WIDTH
    assert d["inflation_factor"] == pytest.approx(100.0)
    assert cell.cathode.active_fraction == pytest.approx(0.75) and cell.x_window == (0.0, 2.0)
    step, = ps.protocol
    assert (step.mode, step.c_rate, step.cutoff_V) == ("current", -0.1, 4.5)
    assert ps.derived["one_c_A_m2"] == pytest.approx(96485.33212 * 61e-6 * 0.75 * 5700 * 2 / 3600)


def test_fickian_parameter_set():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ps = load_parameters(FICKIAN)
    assert isinstance(ps.cell.cathode.particle, FickianParticle)
    assert float(ps.cell.cathode.particle.diffusivity_m2_s(np.array(1.0))) == 1e-14  # bare number -> constant
    assert [s.mode for s in ps.protocol] == ["current", "rest", "current"]
    assert [s.c_rate for s in ps.protocol] == [-1.0, 0.0, 1.0]


# ---- bad input: one line naming file and key ----------------------------------------------------

BASE = yaml.safe_load(MNFEPBA.read_text())


def _set(data: dict, path: str, value) -> None:
    *parents, last = path.split(".")
    for p in parents:
        data = data[p]
    if value is KeyError:
        del data[last]
    else:
        data[last] = value


def load_error(tmp_path, data: dict):
    """Write ``data`` as a cell file and load it; (the file, its one ConfigError's text)."""
    f = tmp_path / "bad.yaml"
    f.write_text(yaml.safe_dump(data))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ParameterWarning)
        with pytest.raises(ConfigError) as err:
            load_parameters(f)
    return f, str(err.value)


@pytest.mark.parametrize("path, value, key, problem", [
    ("cathode.thicknes_m", 1e-5, "cathode.thicknes_m", "unknown key (did you mean 'thickness_m'?)"),
    ("anode.thickness_m", -1e-5, "anode.thickness_m", "must be > 0.0"),
    ("anode.particle.ocv_V.table.x", [0.0, 0.5, 0.4] + [1.0] * 11, "anode.particle.ocv_V.table.x",
     "strictly increasing"),
    ("anode.particle.ocv_V", KeyError, "anode.particle.ocv_V", "required key is missing"),
    ("anode.particle.ocv_V", "steep", "anode.particle.ocv_V", "expected a mapping"),
    ("anode.particle.ocv_V", {"constant": 1.0, "polynomial": [1.0]}, "anode.particle.ocv_V", "exactly one of"),
    ("cathode.particle.model", "fick", "cathode.particle.model", "must be one of 'fickian', 'cahn-hilliard'"),
    ("cathode.particle", KeyError, "cathode.particle", "required key is missing"),
    ("cathode.particle.mobility", 1e-15, "cathode.particle", "exactly one of mobility, diffusivity_m2_s"),
    ("cathode.particle.mobility_blend", "cubic", "cathode.particle.mobility_blend", "must be one of 'log', 'linear'"),
    ("cathode.particle.mu_eV", {"polynomial": [-3.4, 0.1]}, "cathode.particle.mu_eV", "no miscibility gap"),
    ("cathode.cells_r", 20, "cathode.cells_r", "set cathode.particle.inflate_interface: true"),
    ("cathode.x_initial", 2.5, "cathode.x_initial", "must be <= x_max"),
    ("protocol", [{"charge": {"c_rate": 0.1}}], "protocol[0].charge", "needs until_V or for_s"),
    ("protocol", [{"rest": {"for_s": 1.0}, "hold": {"voltage_V": 4.0, "for_s": 1.0}}], "protocol[0]",
     "exactly one of"),
    ("solver.ts_type", "rk4", "solver.ts_type", "must be one of 'bdf'"),
    # the MnFePBA cell starts at rest at 3.4060 - 0.85 = 2.5560 V (cathode: minus the mu_eV polynomial at
    # x = 1.8; anode: its OCV table at 0.05)
    ("protocol", [{"charge": {"c_rate": 0.1, "until_V": 2.5}}], "protocol[0].charge.until_V",
     "2.5 V is at or below the starting open-circuit voltage 2.5560 V"),
    ("protocol", [{"rest": {"for_s": 10.0}}, {"discharge": {"c_rate": 0.1, "until_V": 2.6}}],
     "protocol[1].discharge.until_V", "at or above the starting open-circuit voltage 2.5560 V"),
])
def test_bad_input_is_one_line_naming_file_and_key(tmp_path, capsys, path, value, key, problem):
    data = copy.deepcopy(BASE)
    _set(data, path, value)
    f, text = load_error(tmp_path, data)
    assert text.startswith(f"{f}: {key}: ") and problem in text and "\n" not in text
    assert capsys.readouterr() == ("", "")


def test_unresolved_interface_is_widened_on_request(tmp_path):
    data = copy.deepcopy(BASE)
    data["cathode"]["cells_r"] = 20
    data["cathode"]["particle"]["inflate_interface"] = True
    del data["cathode"]["particle"]["physical_interface_energy_J_m2"]
    f = tmp_path / "wide.yaml"
    f.write_text(yaml.safe_dump(data))
    with pytest.warns(ParameterWarning, match="raised x"):
        ps = load_parameters(f)
    d = ps.derived["cathode"]
    dr = ps.cell.cathode.particle_radius_m / 20
    assert d["cells_per_width"] == pytest.approx(mapping.MIN_CELLS_PER_WIDTH)
    assert d["interface_width_m"] == pytest.approx(mapping.MIN_CELLS_PER_WIDTH * dr)
    # gamma and l both scale as sqrt(k)
    factor = d["interface_energy_J_m2"] / 0.5
    assert d["inflation_factor"] == pytest.approx(factor)
    assert ps.cell.cathode.particle.kappa_J_m5_mol2 == pytest.approx(1.6111e-15 * factor ** 2, rel=1e-3)


def test_unreadable_and_non_mapping_files(tmp_path):
    with pytest.raises(ConfigError, match="cannot read file"):
        load_parameters(tmp_path / "missing.yaml")
    f = tmp_path / "list.yaml"
    f.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match=r"list\.yaml: <top>: expected a mapping"):
        load_parameters(f)


def test_mobility_blend_needs_the_phase_diffusivities(tmp_path):
    data = copy.deepcopy(BASE)
    particle = data["cathode"]["particle"]
    del particle["diffusivity_m2_s"]
    particle.update(mobility={"constant": 1e-15}, mobility_blend="linear")
    f, text = load_error(tmp_path, data)
    assert text.startswith(f"{f}: cathode.particle.mobility_blend: ") and "diffusivity_m2_s only" in text
