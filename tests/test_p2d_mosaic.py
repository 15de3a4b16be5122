"""Several particle sizes per electrode node (pbahpc.continuum.particles.SizeMix, `particle_sizes`):
identical sizes equal one particle (1-D Cahn-Hilliard, Fickian through current/rest/hold/discharge, 2-D),
inventory to round-off and Coulomb counting with different radii, the node's j as the sizes' area mean,
the mosaic order of transformation, the block pattern and colouring, the log-normal discretisation,
output, and one-line errors for bad input (exit 2 from `pbahpc p2d`).

Small cells (test_p2d_cell's builders, 3-4 cathode x-cells, 6-8 radial cells): ~30 s in all.
"""
from __future__ import annotations

import copy
import dataclasses
import warnings
from statistics import NormalDist

import numpy as np
import pytest
import yaml

pytest.importorskip("mpi4py")
pytest.importorskip("petsc4py")
from conftest import ROOT, run_mpi_script, run_pbahpc  # noqa: E402
from test_p2d_cell import (FU_CH, KAPPA_CH, R_CH, T, P2DCell, SolverSettings, Step, capacity_per_x,  # noqa: E402
                           charge_passed, ch_cell, charge_to_cutoff, fick_cell, in_process_comm, mob_ch, mu_ch)
from test_p2d_parameters import load_error  # noqa: E402
from test_p2d_particle2d import assert_coloured_pattern, ch2d_cell, electrode  # noqa: E402

from pbahpc.continuum.cell import JJ, NE  # noqa: E402
from pbahpc.continuum.model import (FARADAY_C_MOL, R_GAS_J_MOL_K, CahnHilliard2DParticle,  # noqa: E402
                                    CahnHilliardParticle, ParticleSizes)
from pbahpc.continuum.output import plot_result, read_result, transformed_fraction, write_result  # noqa: E402
from pbahpc.continuum.parameters import ParameterWarning, load_parameters  # noqa: E402
from pbahpc.continuum.particles import SizeMix, mean_x_per_size  # noqa: E402

MOSAIC = ROOT / "inputs" / "p2d-mosaic.yaml"


def with_sizes(m: P2DCell, radii, fractions, settings: SolverSettings, comm=None) -> P2DCell:
    """The cell of `m` with its cathode particles split into sizes."""
    c = m.cell
    cathode = dataclasses.replace(c.cathode, sizes=ParticleSizes(tuple(radii), tuple(fractions)))
    return P2DCell(dataclasses.replace(c, cathode=cathode), settings, comm or in_process_comm())


def _run(m: P2DCell, steps) -> dict:
    """Run `steps` (all ending on time); V at each step's end (same t in both cells) and the end state."""
    n0 = m.inventory_mol_m2()
    ends = m.run(steps)
    tr = np.array(m.trace)
    last = np.r_[np.nonzero(np.diff(tr[:, 3]))[0], len(tr) - 1]
    return dict(ends=ends, t=tr[last, 0], V=tr[last, 1], x=m.fields()["cathode_x"], dn=m.inventory_mol_m2() - n0,
                n0=n0, result=m.result())


FICK_STEPS = [Step("current", c_rate=-1.0, duration_s=1200.0), Step("rest", duration_s=600.0),
              Step("voltage", voltage_V=3.9, duration_s=600.0), Step("current", c_rate=0.5, duration_s=600.0)]


@pytest.mark.parametrize("make, steps, sizes", [
    (lambda s: ch_cell(settings=s), [Step("current", c_rate=-0.5, duration_s=600.0)] * 10, 3),
    (lambda s: fick_cell(settings=s), FICK_STEPS, 3),
    (lambda s: ch2d_cell(nx=3, nr=6, nt=5, settings=s), [Step("current", c_rate=-1.0, duration_s=600.0)] * 2, 2),
], ids=["cahn-hilliard", "fickian", "cahn-hilliard-2d"])
def test_identical_sizes_equal_one_particle(make, steps, sizes):
    """P equal radii with fractions 1/P (and the 2-D particle's same seeded noise in each) are the one-particle
    cell: same voltage at every step end (steps end on time, so at the same t) and the same particle fields.
    Tolerances: the step-error control is rtol 1e-6 on concentrations, so x agrees to a few 1e-7 and V to
    that times dU/dx (a few 1e-8 V measured); 1e-6 V and 2e-6 in x leave a factor ~10. A wrong area weight,
    specific area or current per size shifts V by mV."""
    s = SolverSettings(output_interval_s=1e9)
    one = make(s)
    mix = with_sizes(make(s), [one.cell.cathode.particle_radius_m] * sizes, [1.0 / sizes] * sizes, s)
    assert isinstance(mix.regions[1].particle, SizeMix)
    a, b = _run(one, steps), _run(mix, steps)
    assert a["ends"] == b["ends"] == ["time"] * len(steps)
    np.testing.assert_array_equal(a["t"], b["t"])
    assert np.max(np.abs(a["V"] - b["V"])) < 1e-6
    cells = a["x"].shape[-1]
    for k in range(sizes):  # each size's field is the one particle's
        assert np.max(np.abs(b["x"][..., k * cells:(k + 1) * cells] - a["x"])) < 2e-6
    assert abs(b["dn"]) < 1e-12 * b["n0"] and abs(a["dn"]) < 1e-12 * a["n0"]
    px = b["result"]["cathode_particle_x"]
    assert px.shape[-1] == sizes and np.max(np.ptp(px, axis=-1)) < 1e-9  # the sizes stay identical


# ---- different radii ------------------------------------------------------------------------------
RADII, FRACTIONS = (0.5e-6, 1e-6, 2e-6), (0.2, 0.5, 0.3)


@pytest.fixture(scope="module")
def mosaic_charge():
    """C/2 charge of test_p2d_cell's Cahn-Hilliard cell (x0 = 0.95) with three cathode sizes to 3.5 V."""
    s = SolverSettings(output_interval_s=20.0)
    return charge_to_cutoff(with_sizes(ch_cell(settings=s), RADII, FRACTIONS, s))


def test_inventory_is_conserved_to_round_off_and_coulomb_counting_holds(mosaic_charge):
    assert mosaic_charge["ends"] in (["cutoff"], ["x-limit"])
    assert abs(mosaic_charge["n1"] - mosaic_charge["n0"]) / mosaic_charge["n0"] < 1e-12
    m = mosaic_charge["m"]
    p, e = m.regions[1].particle, m.cell.cathode
    # the cathode's mean x, recomputed from the fields: each size's volume mean weighted by its fraction
    x0, x1 = (float(np.mean(mean_x_per_size(p, mosaic_charge[f]["cathode_x"]) @ np.array(FRACTIONS)))
              for f in ("f0", "f1"))
    q = charge_passed(mosaic_charge["trace"], len(mosaic_charge["trace"]) - 1)
    assert (x1 - x0) * capacity_per_x(e) == pytest.approx(q, rel=1e-5)


def test_both_electrodes_with_sizes_and_a_2d_cathode_with_sizes_conserve_the_inventory():
    """Sizes per electrode: a Fickian anode of 3 sizes with a Fickian cathode of 2 through current, rest, hold
    and discharge; and 2 sizes of the 2-D particle. Inventory to round-off, every size recorded."""
    s = SolverSettings(output_interval_s=1e9)
    c = fick_cell(settings=s).cell
    cell = dataclasses.replace(
        c, anode=dataclasses.replace(c.anode, sizes=ParticleSizes((2e-6, 5e-6, 8e-6), (0.2, 0.5, 0.3))),
        cathode=dataclasses.replace(c.cathode, sizes=ParticleSizes((2e-6, 4e-6), (0.5, 0.5))))
    r = _run(P2DCell(cell, s, in_process_comm()), FICK_STEPS)
    assert r["ends"] == ["time"] * 4 and abs(r["dn"]) < 1e-12 * r["n0"]
    assert r["result"]["anode_particle_x"].shape[1:] == (3, 3)
    assert r["result"]["cathode_particle_x"].shape[1:] == (3, 2)
    r = _run(with_sizes(ch2d_cell(nx=3, nr=6, nt=5, settings=s), (0.5e-6, 1e-6), (0.4, 0.6), s),
             [Step("current", c_rate=-1.0, duration_s=600.0)] * 2)
    assert r["ends"] == ["time"] * 2 and abs(r["dn"]) < 1e-12 * r["n0"]
    px = r["result"]["cathode_particle_x"][-1]
    assert px[0, 0] < 0.5 < px[-1, 1]  # the small 2-D particles at the separator transform first


def test_node_current_is_the_area_mean_of_the_sizes_butler_volmer_currents(mosaic_charge):
    """j = sum_k w_k j_k with w_k = (f_k / R_k) / sum(f / R), and each j_k is Butler-Volmer at its own size's
    surface (Eq. 30's U = -mu_surf / F, extrapolated with its own current), recomputed here."""
    m = mosaic_charge["m"]
    r = m.regions[1]
    p = r.particle
    u = m.gather()[r.start:r.stop]
    jk = u[:, NE + np.array(p.current_slots)]
    w = np.array(FRACTIONS) / np.array(RADII)
    assert np.max(np.abs(jk @ (w / w.sum()) - u[:, JJ])) < 1e-9 * np.max(np.abs(u[:, JJ]))
    assert r.electrode.specific_area_m == pytest.approx(3 * 0.6 * np.sum(w), rel=1e-14)
    f = FARADAY_C_MOL / (R_GAS_J_MOL_K * T)
    for k, (R, member) in enumerate(zip(RADII, p.members)):
        c, mu = u[:, NE + p.offsets[k]:NE + p.offsets[k + 1]:2], u[:, NE + p.offsets[k] + 1:NE + p.offsets[k + 1]:2]
        h = R / member.cells
        mu_s = mu[:, -1] - 0.5 * h * jk[:, k] / FARADAY_C_MOL / mob_ch(c[:, -1] / FU_CH)
        eta = f * (u[:, 2] - u[:, 1] + mu_s / FARADAY_C_MOL)
        bv = np.sqrt(u[:, 0] / 1000.0) * (np.exp(0.5 * eta) - np.exp(-0.5 * eta))
        # to the Newton tolerance: the charge ends by the x-limit, with the smallest size's surface at
        # x ~ 1e-6 (cell.X_LIMIT), where RT ln x makes U 1e6 times stiffer in x than mid-window and the
        # Newton test (on updates, 1e-9 in x there) leaves ~1e-6 of the largest current in its row
        assert np.max(np.abs(bv - jk[:, k])) < 1e-5 * np.max(np.abs(jk)), k


def test_small_particles_transform_first_one_by_one(mosaic_charge):
    """Before any particle nucleates, all sizes at a node see the same overpotential, hence the same current
    per area; x then falls at a rate 3 j / R per volume, so the smallest size reaches the spinodal first.
    Once it has nucleated its Na-poor shell its U sits at the coexistence plateau, below the Na-rich branch
    of the others: at the node's common potential it takes the current, and the larger sizes even take Na
    back (their mean x rises during the charge). So, at every node, the sizes cross the binodals' midpoint
    (x = 1/2 here) in order of size, well apart. Size-dependent nucleation barriers (gradient energy) could
    reverse the order only for particles a few interface widths across; these span 5-20."""
    res = mosaic_charge["m"].result()
    px, t = res["cathode_particle_x"], res["snapshot_time_s"]
    assert px.shape[1:] == (4, 3)
    for node in range(px.shape[1]):
        crossed = px[:, node, :] < 0.5
        assert crossed[-1].all(), node
        first = t[np.argmax(crossed, axis=0)]
        assert np.all(np.diff(first) > 0), (node, first)
        # one by one: when a size crosses, the next larger one is still Na-rich (above 3/4)
        for k in range(2):
            assert px[np.argmax(crossed[:, k]), node, k + 1] > 0.75, (node, k)
    largest = px[:, 0, 2]
    # the largest size re-sodiates while the others transform: x rises above its running minimum
    assert np.max(largest - np.minimum.accumulate(largest)) > 0.01
    # the by-number transformed fraction steps through the sizes' number shares
    frac = transformed_fraction(res, 0.5)
    number = np.array(FRACTIONS) / np.array(RADII) ** 3
    share = number / number.sum()
    assert set(np.round(np.unique(frac[:, 0]), 12)) <= set(np.round(np.cumsum(np.r_[0.0, share]), 12))
    assert frac[-1].tolist() == pytest.approx([1.0] * 4)


def test_particle_resolved_state_of_charge_round_trips_through_hdf5_and_is_plotted(mosaic_charge, tmp_path):
    res = mosaic_charge["m"].result()
    write_result(tmp_path / "run.h5", res, {"cathode_transform_x": 0.5})
    back = read_result(tmp_path / "run.h5")
    for key in ("cathode_particle_x", "cathode_radii_m", "cathode_size_fractions", "anode_particle_x"):
        np.testing.assert_array_equal(back[key], res[key], err_msg=key)
    assert back["anode_particle_x"].shape[-1] == 1
    np.testing.assert_array_equal(back["cathode_radii_m"], RADII)
    paths = plot_result(tmp_path / "run.h5", tmp_path / "png")  # the file's transform x: transformed.png too
    assert [p.name for p in paths][-1] == "transformed.png" and all(p.stat().st_size > 0 for p in paths)


MPI_SCRIPT = """
import json

import numpy as np
from mpi4py import MPI
from test_p2d_mosaic import RADII, FRACTIONS, SolverSettings, Step, ch_cell, with_sizes

s = SolverSettings(output_interval_s=1e9)
m = with_sizes(ch_cell(settings=s, comm=MPI.COMM_WORLD), RADII, FRACTIONS, s, comm=MPI.COMM_WORLD)
ends = m.run([Step("current", c_rate=-1.0, duration_s=900.0)])
tr = np.array(m.trace)
px = m.result()["cathode_particle_x"]
n = m.inventory_mol_m2()
if MPI.COMM_WORLD.rank == 0:
    print(json.dumps({"ranks": MPI.COMM_WORLD.size, "ends": ends, "t": tr[:, 0].tolist(), "V": tr[:, 1].tolist(),
                      "px": px[-1].tolist(), "inventory": n}))
"""


def test_one_and_two_ranks_give_the_same_voltage_curve(tmp_path_factory):
    """The condensation keeps each size's current with the node's 4 unknowns: 4 + 3 at cathode nodes, 4
    elsewhere, numbered across ranks (the anode's 4-unknown nodes on the first). 1C for 900 s takes the
    smallest size through its transformation. Tolerances as test_p2d_cell's ranks test: both runs meet
    the same step-error control (rtol 1e-6) with different round-off."""
    runs = {}
    for n in (1, 2):
        r = run_mpi_script(tmp_path_factory.mktemp(f"mosaic{n}"), MPI_SCRIPT, n)
        assert r["ranks"] == n and r["ends"] == ["time"]
        runs[n] = {k: np.array(v) if isinstance(v, list) else v for k, v in r.items()}
    a = runs[1]
    assert a["px"][0, 0] < 0.5 < a["px"][0, 2]  # the smallest size has transformed at the separator
    b = runs[2]
    late = a["t"] > 1.0
    dV = np.max(np.abs(np.interp(a["t"], b["t"], b["V"])[late] - a["V"][late]))
    dx = np.max(np.abs(b["px"] - a["px"]))
    assert dV < 1e-6 and dx < 1e-6, (dV, dx)
    assert b["inventory"] == pytest.approx(a["inventory"], rel=1e-12, abs=0)


# ---- the particle block ---------------------------------------------------------------------------
@pytest.mark.parametrize("law", [CahnHilliardParticle(mu_ch, mob_ch, KAPPA_CH),
                                 CahnHilliard2DParticle(mu_ch, mob_ch, KAPPA_CH, cells_theta=4)],
                         ids=["1-d", "2-d"])
def test_pattern_covers_the_residual_and_colours_separate_every_row(law):
    e = dataclasses.replace(electrode(law, 5, x0=0.6), sizes=ParticleSizes((0.5e-6, 1e-6, 1.5e-6), (0.3, 0.3, 0.4)))
    p = SizeMix(e, T)
    u0, U0 = p.initial()
    u0[list(p.current_slots)] = [0.2, -0.1, 0.3]
    f = FARADAY_C_MOL / (R_GAS_J_MOL_K * T)
    args = (np.array(0.25), np.array(1000.0), np.array(U0 + 0.01), f)
    assert_coloured_pattern(p, u0, lambda u: p.reaction_rows(u, *args)[0])
    jrow = p.reaction_rows(u0, *args)[1]
    for k in set(range(p.slots)) - set(p.current_slots):  # the node's j row reads the currents only
        du = np.zeros(p.slots)
        du[k] = 1e-6 * max(abs(u0[k]), 1.0)
        assert p.reaction_rows(u0 + du, *args)[1] == jrow, k


def test_log_normal_sizes_are_volume_quantiles():
    data = yaml.safe_load(MOSAIC.read_text())
    assert data["cathode"]["particle_sizes"]["log_normal"] == {"median_radius_m": 1.85e-6, "sigma": 0.25,
                                                                "count": 3}
    with warnings.catch_warnings():  # the MnFePBA set's inflated interface energy (its own test)
        warnings.simplefilter("ignore", ParameterWarning)
        ps = load_parameters(MOSAIC)
    sizes = ps.cell.cathode.sizes
    expected = [1.85e-6 * np.exp(0.25 * NormalDist().inv_cdf(q)) for q in (1 / 6, 1 / 2, 5 / 6)]
    np.testing.assert_allclose(sizes.radii_m, expected, rtol=1e-12)
    assert sizes.fractions == (1 / 3,) * 3
    # one radius with the same specific area: the Sauter mean
    assert ps.cell.cathode.particle_radius_m == pytest.approx(3 / sum(1 / r for r in expected), rel=1e-12)
    assert ps.cell.cathode.cells_r == 52 and ps.protocol[0].c_rate == -0.1


# ---- bad input ------------------------------------------------------------------------------------
BASE = yaml.safe_load(MOSAIC.read_text())


@pytest.mark.parametrize("sizes, key, problem", [
    ({"radii_m": [1e-6, 2e-6], "fractions": [0.3, 0.6]}, "fractions", "must sum to 1, got 0.9"),
    ({"radii_m": [1e-6, 2e-6], "fractions": [1.0]}, "fractions", "one entry per radius (2), got 1"),
    ({"radii_m": [1e-6, 2e-6]}, "fractions", "required with radii_m"),
    ({"radii_m": [1e-6, 2e-6], "fractions": [1.5, -0.5]}, "fractions[1]", "must be > 0.0"),
    ({"radii_m": [0.0, 2e-6], "fractions": [0.5, 0.5]}, "radii_m[0]", "must be > 0.0"),
    ({"radii_m": [], "fractions": []}, "radii_m", "must not be empty"),
    ({}, None, "needs exactly one of radii_m (with fractions), log_normal"),
    ({"log_normal": {"median_radius_m": 1e-6, "sigma": 0.2, "count": 1}}, "log_normal.count", "must be >= 2"),
    ({"log_normal": {"median_radius_m": 1e-6, "sigma": 0.0, "count": 3}}, "log_normal.sigma", "must be > 0.0"),
    ({"log_normal": {"median_radius_m": 1e-6, "sigma": 0.2, "count": 3}, "fractions": [1.0]}, "fractions",
     "goes with radii_m only"),
    ({"radius_m": [1e-6]}, "radius_m", "unknown key (did you mean 'radii_m'?)"),
])
def test_bad_particle_sizes_are_one_line_errors(tmp_path, sizes, key, problem):
    data = copy.deepcopy(BASE)
    data["cathode"]["particle_sizes"] = sizes
    f, text = load_error(tmp_path, data)
    where = "cathode.particle_sizes" + (f".{key}" if key else "")
    assert text.startswith(f"{f}: {where}: ") and problem in text and "\n" not in text


@pytest.mark.parametrize("change, key, problem", [
    (lambda c: c.update(particle_radius_m=1e-6), "cathode", "needs exactly one of particle_radius_m, particle_sizes"),
    (lambda c: c.pop("particle_sizes"), "cathode", "needs exactly one of particle_radius_m, particle_sizes"),
    # the largest size sets the radial cell: 2.6 um / 52 = 50 nm, 3.7 cells across the 187 nm interface
    (lambda c: c["particle_sizes"]["log_normal"].update(sigma=0.3), "cathode.cells_r",
     "radial cells of the largest particle, needs >= 4"),
])
def test_radius_and_sizes_exclude_each_other_and_the_largest_size_must_resolve_the_interface(
        tmp_path, change, key, problem):
    data = copy.deepcopy(BASE)
    change(data["cathode"])
    f, text = load_error(tmp_path, data)
    assert text.startswith(f"{f}: {key}: ") and problem in text and "\n" not in text


def test_pbahpc_p2d_refuses_bad_sizes_with_exit_2_and_one_line(tmp_path):
    data = copy.deepcopy(BASE)
    data["cathode"]["particle_sizes"] = {"radii_m": [1e-6, 2e-6], "fractions": [0.5, 0.4]}
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(data))
    out = run_pbahpc(1, "p2d", str(bad), "--out", str(tmp_path / "out"))
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0 and "cathode.particle_sizes.fractions: must sum to 1" in out.stderr
    assert not (tmp_path / "out").exists()
