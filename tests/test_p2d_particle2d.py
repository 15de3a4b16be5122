"""The 2-D (axisymmetric r, theta) particle of pbahpc.continuum.particles2d: its reduction to the 1-D
sphere, the analytic constant-flux sphere with second-order mesh convergence, its finite-difference
colouring, the parameter file's model, and inside the P2D cell: inventory to round-off, Coulomb
counting, the area-mean Butler-Volmer current, symmetry (kept without the seeded noise, broken with
it) and 1 vs 2 ranks (real mpiexec).

Small meshes (8 radial x 6 polar cells, 3 cathode x-cells): the file runs in well under a minute.
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import yaml
from scipy.linalg import lu_factor, lu_solve
from scipy.optimize import brentq

pytest.importorskip("mpi4py")
pytest.importorskip("petsc4py")
from conftest import ROOT, run_mpi_script  # noqa: E402
from test_p2d_cell import (FU_CH, KAPPA_CH, R_CH, T, Cell, Electrode, P2DCell, Separator,  # noqa: E402
                           SolverSettings, Step, anode, capacity_per_x, charge_passed, const, electrolyte,
                           charge_to_cutoff, in_process_comm, j0_sqrt, mob_ch, mu_ch, ocv_cathode)
from test_p2d_parameters import load_error  # noqa: E402

from pbahpc.continuum.cell import JJ, NE  # noqa: E402
from pbahpc.continuum.model import (FARADAY_C_MOL, R_GAS_J_MOL_K, CahnHilliard2DParticle,  # noqa: E402
                                    CahnHilliardParticle, FickianParticle)
from pbahpc.continuum.parameters import ParameterWarning, load_parameters  # noqa: E402
from pbahpc.continuum.particles import SplitSphere  # noqa: E402
from pbahpc.continuum.particles2d import AxisymmetricSphere  # noqa: E402

F = FARADAY_C_MOL
D_FICK = 4e-15


def electrode(law, nr, x0=0.5, nx=3, fu=FU_CH, radius=R_CH):
    return Electrode(thickness_m=60e-6, porosity=0.3, active_fraction=0.6, particle_radius_m=radius,
                     formula_units_mol_m3=fu, x_initial=x0, particle=law, exchange_current_A_m2=j0_sqrt(1.0),
                     conductivity_S_m=10., cells_x=nx, cells_r=nr)


def ch2d_cell(nx=3, nr=8, nt=6, x0=0.95, perturbation=1e-3, settings=None, comm=None):
    """ch_cell of test_p2d_cell with the 2-D cathode particle."""
    law = CahnHilliard2DParticle(mu_ch, mob_ch, KAPPA_CH, cells_theta=nt, perturbation_x=perturbation, seed=3)
    cell = Cell(anode=anode(0.1, 2, 3), separator=Separator(25e-6, 0.45, cells_x=2),
                cathode=electrode(law, nr, x0=x0, nx=nx), electrolyte=electrolyte(), temperature_K=T)
    return P2DCell(cell, settings or SolverSettings(), comm or in_process_comm())


# ---- the particle alone ---------------------------------------------------------------------------
@pytest.mark.parametrize("law", [FickianParticle(const(D_FICK), ocv_cathode),
                                 CahnHilliardParticle(mu_ch, mob_ch, KAPPA_CH)], ids=["fickian", "cahn-hilliard"])
def test_theta_uniform_state_has_the_1d_sphere_rows(law):
    e = electrode(law, 7)
    one, two = SplitSphere(e, T), AxisymmetricSphere(e, T, cells_theta=5, perturbation_x=0.0)
    rng = np.random.default_rng(1)
    u1 = np.empty(one.slots)
    u1[0::2] = FU_CH * rng.uniform(0.2, 0.8, 7)
    u1[1::2] = rng.uniform(-1, 1, 7) * (1e3 if isinstance(law, CahnHilliardParticle) else FU_CH)
    u2 = np.empty(two.slots)  # the same radial profile in every polar cell
    u2[0::2], u2[1::2] = np.repeat(u1[0::2], 5), np.repeat(u1[1::2], 5)
    j = np.array([3.0, -2.0])
    R1, U1, x1 = one.rows(np.stack([u1, u1]), j)
    R2, U2, x2 = two.rows(np.stack([u2, u2]), j)
    scale = np.max(np.abs(R1), axis=-1, keepdims=True)
    for field in (0, 1):
        radial = R2[:, field::2].reshape(2, 7, 5)
        assert np.max(np.abs(radial - R1[:, field::2, None]) / scale[..., None]) < 1e-12
    np.testing.assert_allclose(U2, U1, rtol=1e-13)
    np.testing.assert_allclose(x2, x1, rtol=1e-13)
    np.testing.assert_allclose(two.volumes_m3.sum(), 4 / 3 * np.pi * R_CH**3, rtol=1e-13)


def _constant_flux_sphere(r_over_R, tau, n_terms=200):
    """(c - c0) D / (q R) for an inward molar flux q into a sphere (Carslaw-Jaeger; p2d.md sec. 4.5):
    3 tau + rho^2 / 2 - 3/10 - (2 / rho) sum sin(l rho) / (l^2 sin l) exp(-l^2 tau), tan l = l."""
    lam = np.array([brentq(lambda x: np.tan(x) - x, n * np.pi + 1e-9, (n + 0.5) * np.pi - 1e-9)
                    for n in range(1, n_terms + 1)])
    rho = np.asarray(r_over_R)[:, None]
    series = np.sum(np.sin(lam * rho) / (lam**2 * np.sin(lam)) * np.exp(-lam**2 * tau), axis=1)
    return 3 * tau + rho[:, 0]**2 / 2 - 0.3 - 2 / rho[:, 0] * series


def _fickian_uniform_flux_error(nr, nt=3, tau=0.05, steps=400):
    """Max |c - analytic| / (q R / D) over the cells after Crank-Nicolson (the rows are linear in u for
    constant D: their matrix is differenced exactly), and the mean-concentration error."""
    e = electrode(FickianParticle(const(D_FICK), ocv_cathode), nr, x0=0.5, fu=40000.0, radius=4e-6)
    p = AxisymmetricSphere(e, T, cells_theta=nt, perturbation_x=0.0)
    j = np.array(-2.0)  # A/m^2 into the particle
    q = -j / F  # inward mol/m^2/s
    u0, _ = p.initial()

    def res(u):
        return p.rows(u, j)[0]

    b = res(np.zeros(p.slots))
    A = np.stack([res(np.eye(p.slots)[k]) - b for k in range(p.slots)], axis=1)
    Mm = np.diag(p.differential.astype(float))  # rows are unscaled: dc/dt + R = 0 (the cell scales both)
    t_end = tau * e.particle_radius_m**2 / D_FICK
    dt = t_end / steps
    lhs, rhs = Mm / dt + 0.5 * A, Mm / dt - 0.5 * A
    lu = lu_factor(lhs)
    u = u0.copy()
    for _ in range(steps):
        u = lu_solve(lu, rhs @ u - b)
    c = u[0::2].reshape(nr, nt)
    scale = q * e.particle_radius_m / D_FICK
    exact = e.x_initial * e.formula_units_mol_m3 + scale * _constant_flux_sphere(p.rc / e.particle_radius_m, tau)
    mean = np.sum(c * p.V) / np.sum(p.V)
    mean_exact = e.x_initial * e.formula_units_mol_m3 + 3 * q * t_end / e.particle_radius_m
    return np.max(np.abs(c - exact[:, None])) / scale, abs(mean - mean_exact) / mean_exact, np.ptp(c, axis=1).max()


def test_uniform_flux_fickian_matches_the_analytic_sphere_at_second_order():
    errs = {}
    for nr in (8, 16, 32):
        err, mean_err, spread = _fickian_uniform_flux_error(nr)
        assert mean_err < 1e-12  # moles in = flux x area x time, to round-off
        assert spread < 1e-9 * 40000.0  # a uniform flux keeps every polar cell equal
        errs[nr] = err
    orders = [np.log2(errs[8] / errs[16]), np.log2(errs[16] / errs[32])]
    assert errs[32] < 2e-3
    assert all(1.7 < o < 2.3 for o in orders), (errs, orders)


def assert_coloured_pattern(p, u0: np.ndarray, residual) -> None:
    """A particle block's colouring separates every row's columns, and its pattern holds what
    ``residual(u)`` (the block's rows) actually touches: every column differenced from ``u0``."""
    rows, cols = p.pattern()
    assert p.colours.max() < p.n_colours
    for r in np.unique(rows):
        c = p.colours[cols[rows == r]]
        assert np.unique(c).size == c.size, r
    base = residual(u0)
    allowed = np.zeros((p.slots, p.slots), bool)
    allowed[rows, cols] = True
    for k in range(p.slots):
        du = np.zeros(p.slots)
        du[k] = 1e-6 * max(abs(u0[k]), 1.0)
        assert not np.any((residual(u0 + du) != base) & ~allowed[:, k]), k


def test_colouring_separates_every_row_s_columns():
    e = electrode(CahnHilliard2DParticle(mu_ch, mob_ch, KAPPA_CH, cells_theta=7), 6)
    p = AxisymmetricSphere(e, T)
    u0, U0 = p.initial()
    j, ce, dphi, f = np.array(0.3), np.array(1000.0), np.array(U0 + 0.01), F / (R_GAS_J_MOL_K * T)
    assert_coloured_pattern(p, u0, lambda u: p.reaction_rows(u, j, ce, dphi, f)[0])


def _flat_interface_energy(p: AxisymmetricSphere, x_of_z, W: float, k: float) -> float:
    """The particle mesh's discrete free energy (J) of x(z), z = r cos(theta): sum V W x^2 (1 - x)^2 over
    cells plus (k FU^2 / 2) sum w (dx)^2 over faces, w = area / distance (the gradient energy whose
    variation is -k lap c of the mu rows)."""
    z = p.rc[:, None] * np.cos(p.theta_c)[None, :]
    x = x_of_z(z)
    bulk = np.sum(p.V * W * x**2 * (1 - x) ** 2)
    grad = np.sum(p.wr * np.diff(x, axis=0) ** 2) + np.sum(p.wt * np.diff(x, axis=1) ** 2)
    return bulk + 0.5 * k * p.fu**2 * grad


def test_flat_interface_energy_is_eq26_gamma_times_its_area_to_mesh_accuracy():
    from scipy.integrate import quad

    from pbahpc.continuum import mapping
    from pbahpc.continuum.functions import Polynomial

    fu, W, radius = 5700.0, 2.0e6, 1e-6  # quartic well G = W x^2 (1 - x)^2 J/m^3 (test_p2d_parameters)
    mu = Polynomial(np.array([0.0, 1.0, -3.0, 2.0]) * 2 * W / fu)
    gap = mapping.common_tangent(mu, -0.25, 1.25)
    delta = radius / 12
    k = W * (delta / fu) ** 2 / 2  # tanh profile x = (1 + tanh(z / delta)) / 2, delta = fu sqrt(2 k / W)
    gamma = mapping.interface_energy_from_kappa(k, mu, gap, fu)  # Eq. 26

    def x_of_z(z):
        return 0.5 * (1 + np.tanh(z / delta))

    def density(z):  # the profile's energy per volume; equipartition: twice the bulk term
        return 2 * W * (x_of_z(z) * (1 - x_of_z(z))) ** 2

    # the plane through the centre cuts the sphere in discs of area pi (R^2 - z^2)
    exact = quad(lambda z: density(z) * np.pi * (radius**2 - z**2), -radius, radius, points=[0.0], epsabs=0)[0]
    curvature = quad(lambda z: density(z) * np.pi * z**2, -radius, radius, points=[0.0], epsabs=0)[0]
    assert exact + curvature == pytest.approx(gamma * np.pi * radius**2, rel=1e-6)
    errors = []
    for nr in (24, 48, 96):  # delta spans 2, 4, 8 radial cells
        e = electrode(CahnHilliard2DParticle(mu, const(1e-20), k, cells_theta=2 * nr), nr, fu=fu, radius=radius)
        p = AxisymmetricSphere(e, T, perturbation_x=0.0)
        errors.append(abs(_flat_interface_energy(p, x_of_z, W, k) / exact - 1))
    assert errors[-1] < 1e-3
    orders = np.log2(np.array(errors[:-1]) / np.array(errors[1:]))
    assert np.all((orders > 1.7) & (orders < 2.5)), (errors, orders)


def test_facet_exchange_currents_keep_the_mean_and_shift_current_to_the_fast_facets():
    law = CahnHilliard2DParticle(mu_ch, mob_ch, KAPPA_CH, cells_theta=6, exchange_current_variation=0.5)
    p = AxisymmetricSphere(electrode(law, 5), T, perturbation_x=0.0)
    assert p.j0_factor @ p.As / p.As.sum() == pytest.approx(1.0, rel=1e-14)
    assert np.ptp(p.j0_factor) > 0.3 and np.all(p.j0_factor >= 0.0)
    u0, U0 = p.initial()
    c, mu = p._fields(u0)
    f = F / (R_GAS_J_MOL_K * T)
    jk = p.surface_currents(c[-1], mu[-1], np.array(1000.0), np.array(U0 + 1e-4), f)
    # a uniform state at a small overpotential: j_k proportional to its facet's j0, same mean as j0 alone
    np.testing.assert_allclose(jk / jk.mean(), p.j0_factor / p.j0_factor.mean(), rtol=1e-12)


# ---- configuration --------------------------------------------------------------------------------
MNFEPBA_2D = ROOT / "inputs" / "p2d-mnfepba-2d.yaml"


def test_mnfepba_2d_input_builds_the_2d_particle():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ParameterWarning)
        ps = load_parameters(MNFEPBA_2D)
    law = ps.cell.cathode.particle
    assert isinstance(law, CahnHilliard2DParticle) and law.cells_theta == 4 and law.perturbation_x == 1e-3
    assert law.exchange_current_variation == 0.5
    assert [s.c_rate for s in ps.protocol] == [-0.1, 0.1]


@pytest.mark.parametrize("key, value, problem", [("cells_theta", 2, "must be >= 4"),
                                                 ("perturbation_x", -1e-3, "must be >= 0.0"),
                                                 ("cells_thetas", 8, "unknown key"),
                                                 ("exchange_current_variation", 0.6, "<= 0.5")])
def test_bad_2d_particle_keys_are_one_line_errors(tmp_path, key, value, problem):
    data = yaml.safe_load(MNFEPBA_2D.read_text())
    data["cathode"]["particle"][key] = value
    f, text = load_error(tmp_path, data)
    assert text.startswith(f"{f}: cathode.particle.{key}: ") and problem in text and "\n" not in text


# ---- inside the cell ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def charge2d():
    return charge_to_cutoff(ch2d_cell(settings=SolverSettings(output_interval_s=20.0)))


def _mean_x(p, x_map):
    return float(np.mean(x_map @ p.volumes_m3) / p.volumes_m3.sum())


def test_inventory_is_conserved_to_round_off_and_coulomb_counting_holds(charge2d):
    assert charge2d["ends"] in (["cutoff"], ["x-limit"])
    assert abs(charge2d["n1"] - charge2d["n0"]) / charge2d["n0"] < 1e-12
    m = charge2d["m"]
    p, e = m.regions[1].particle, m.cell.cathode
    dx_mean = _mean_x(p, charge2d["f1"]["cathode_x"]) - _mean_x(p, charge2d["f0"]["cathode_x"])
    q = charge_passed(charge2d["trace"], len(charge2d["trace"]) - 1)
    assert dx_mean * capacity_per_x(e) == pytest.approx(q, rel=1e-5)


def test_node_current_is_the_area_mean_of_the_local_butler_volmer_currents(charge2d):
    m = charge2d["m"]
    r = m.regions[1]
    p = r.particle
    u = m.gather()[r.start:r.stop]
    c, mu = p._fields(u[:, NE:NE + p.slots])
    jk = p.surface_currents(c[:, -1], mu[:, -1], u[:, 0], u[:, 2] - u[:, 1], m.f)
    mean = jk @ p.As / p.As.sum()
    # to the Newton tolerance on the j row (0.1 x rtol of the exchange current's scale)
    assert np.max(np.abs(mean - u[:, JJ])) < 1e-6 * np.max(np.abs(u[:, JJ]))


def test_seeded_noise_breaks_the_polar_symmetry_and_none_keeps_it(charge2d):
    p = charge2d["m"].regions[1].particle

    def polar_spread(x_map):  # largest spread of x along theta over all shells and nodes
        return np.ptp(x_map.reshape(-1, p.nr, p.nt), axis=-1).max()

    # the seeded 1e-3 noise survives into the two-phase stage (the end state is uniformly Na-poor)
    assert max(polar_spread(f["cathode_x"]) for _, f in charge2d["snapshots"]) > 1e-3
    m = ch2d_cell(perturbation=0.0, settings=SolverSettings(output_interval_s=1e9))
    m.run([Step("current", c_rate=-0.5, duration_s=600.0)])
    assert polar_spread(m.fields()["cathode_x"]) < 1e-8  # without it, theta-uniform to round-off


# ---- ranks ---------------------------------------------------------------------------------------
MPI_SCRIPT = """
import json

import numpy as np
from mpi4py import MPI
from test_p2d_particle2d import SolverSettings, Step, ch2d_cell

m = ch2d_cell(nx=4, nr=6, nt=5, settings=SolverSettings(output_interval_s=1e9), comm=MPI.COMM_WORLD)
ends = m.run([Step("current", c_rate=-1.0, duration_s=600.0)])
tr = np.array(m.trace)
f = m.fields()
n = m.inventory_mol_m2()
if MPI.COMM_WORLD.rank == 0:
    print(json.dumps({"ranks": MPI.COMM_WORLD.size, "ends": ends, "t": tr[:, 0].tolist(), "V": tr[:, 1].tolist(),
                      "cathode_x": f["cathode_x"].tolist(), "inventory": n}))
"""


def test_one_two_and_three_ranks_give_the_same_voltage_curve(tmp_path_factory):
    # 3 ranks cut the cell at other nodes than 2 ranks do, and own unequal numbers of particle blocks
    runs = {}
    for n in (1, 2, 3):
        r = run_mpi_script(tmp_path_factory.mktemp(f"ranks2d{n}"), MPI_SCRIPT, n)
        assert r["ranks"] == n and r["ends"] == ["time"]
        runs[n] = {k: np.array(v) if isinstance(v, list) else v for k, v in r.items()}
    a = runs[1]
    late = a["t"] > 1.0
    for b in (runs[2], runs[3]):
        assert np.max(np.abs(np.interp(a["t"], b["t"], b["V"])[late] - a["V"][late])) < 1e-6
        assert np.max(np.abs(b["cathode_x"] - a["cathode_x"])) < 1e-6
        assert b["inventory"] == pytest.approx(a["inventory"], rel=1e-12, abs=0)
