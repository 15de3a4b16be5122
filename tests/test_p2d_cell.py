"""The P2D cell solver (pbahpc.continuum.cell) against things it must get right independently of its
parameters: ion conservation, Coulomb counting, exact cutoff events, the equilibrium start, the
single-particle limit (analytic constant-flux sphere + Butler-Volmer), 1/2/3 ranks, and the
Cahn-Hilliard cathode's two-phase physics.

The cells are small (a few x-cells, 3-8 radial cells) so the whole file runs in well under a minute;
the builders are importable (``from test_p2d_cell import ch_cell``) by the MPI scripts.
Everything that is compared is recomputed here from the fields and the model's inputs (radial volumes,
electrode geometry, OCV functions, mu_hom), not read from the solver's own bookkeeping.
"""
from __future__ import annotations


import numpy as np
import pytest
from scipy.optimize import brentq

pytest.importorskip("mpi4py")
pytest.importorskip("petsc4py")
from conftest import run_mpi_script  # noqa: E402
from mpi4py import MPI  # noqa: E402

from pbahpc.continuum.cell import JJ, P2DCell  # noqa: E402
from pbahpc.continuum.functions import ExchangeCurrent  # noqa: E402
from pbahpc.continuum.model import (FARADAY_C_MOL, R_GAS_J_MOL_K, CahnHilliardParticle, Cell,  # noqa: E402
                                    Electrode, Electrolyte, FickianParticle, Separator, SolverSettings,
                                    Step)

T = 298.15
RT = R_GAS_J_MOL_K * T
F = FARADAY_C_MOL


# ---- cells --------------------------------------------------------------------------------------
def const(v):
    return lambda x: np.full_like(np.asarray(x, dtype=float), v)


def _in_01(x):  # Newton iterates and finite-difference probes may step outside (0, 1)
    return np.clip(x, 1e-12, 1 - 1e-12)


def ocv_anode(x):
    x = _in_01(x)
    return 0.1 + 0.5 * (1 - x) - 0.02 * np.log(x / (1 - x))


def ocv_cathode(x):
    x = _in_01(x)
    return 4.2 - 0.8 * x - 0.05 * np.log(x / (1 - x))


def j0_sqrt(j0_ref):
    return lambda ce, x, T: j0_ref * np.sqrt(np.maximum(ce, 0.0) / 1000.0)


# Cahn-Hilliard cathode: symmetric regular solution with Omega = 4.5 RT (phase-separating), interface
# width sqrt(kappa fu / Omega) = R / 10, mobility M = D fu x (1 - x) / RT (Fickian limit D).
OMEGA = 4.5 * RT
U0_CH = 3.45
FU_CH, R_CH, D_CH = 20000.0, 1e-6, 1e-15
KAPPA_CH = (R_CH / 10) ** 2 * OMEGA / FU_CH


def mu_ch(x):
    x = _in_01(x)
    return -U0_CH * F + RT * np.log(x / (1 - x)) + OMEGA * (1 - 2 * x)


def mob_ch(x):
    x = np.clip(x, 1e-6, 1 - 1e-6)
    return D_CH * FU_CH * x * (1 - x) / RT


def in_process_comm():
    """The communicator PETSc was first initialised with in this process, else COMM_SELF:
    pbahpc.continuum.particle.petsc refuses a second, different one, and the other test modules use
    COMM_SELF or COMM_WORLD (both one rank under pytest). The MPI script passes COMM_WORLD."""
    from pbahpc.continuum import particle
    init = getattr(particle, "_init_args", None)
    return init[0] if init else MPI.COMM_SELF


def electrolyte(D=3e-10, kappa=1.0):
    return Electrolyte(1000., const(D), const(kappa), 0.38, const(1.0))


def anode(x0, cells_x, cells_r, **kw):
    p = dict(thickness_m=80e-6, porosity=0.3, active_fraction=0.6, particle_radius_m=5e-6,
             formula_units_mol_m3=30000., x_initial=x0, particle=FickianParticle(const(1e-14), ocv_anode),
             exchange_current_A_m2=j0_sqrt(1.0), conductivity_S_m=100., cells_x=cells_x, cells_r=cells_r)
    p.update(kw)
    return Electrode(**p)


def ch_cell(nx=4, nr=8, x0=0.95, settings=None, comm=None):
    """Fickian anode | separator | Cahn-Hilliard cathode starting Na-rich (x0 outside the spinodal)."""
    ca = Electrode(thickness_m=60e-6, porosity=0.3, active_fraction=0.6, particle_radius_m=R_CH,
                   formula_units_mol_m3=FU_CH, x_initial=x0,
                   particle=CahnHilliardParticle(mu_ch, mob_ch, KAPPA_CH),
                   exchange_current_A_m2=j0_sqrt(1.0), conductivity_S_m=10., cells_x=nx, cells_r=nr)
    cell = Cell(anode=anode(0.1, 2, 3), separator=Separator(25e-6, 0.45, cells_x=2), cathode=ca,
                electrolyte=electrolyte(), temperature_K=T)
    return P2DCell(cell, settings or SolverSettings(), comm or in_process_comm())


def fick_cell(x0_c=0.5, x0_a=0.5, settings=None, comm=None):
    """All-Fickian cell (the monotonic OCVs above)."""
    ca = Electrode(thickness_m=70e-6, porosity=0.3, active_fraction=0.6, particle_radius_m=4e-6,
                   formula_units_mol_m3=40000., x_initial=x0_c,
                   particle=FickianParticle(const(4e-15), ocv_cathode), exchange_current_A_m2=j0_sqrt(1.0),
                   conductivity_S_m=10., cells_x=3, cells_r=6)
    cell = Cell(anode=anode(x0_a, 3, 6), separator=Separator(25e-6, 0.45, cells_x=2), cathode=ca,
                electrolyte=electrolyte(), temperature_K=T, x_window=(0.2, 0.9))
    return P2DCell(cell, settings or SolverSettings(), comm or in_process_comm())


# ---- independent bookkeeping ---------------------------------------------------------------------
def shell_volumes(e: Electrode) -> np.ndarray:
    faces = np.linspace(0.0, e.particle_radius_m, e.cells_r + 1)
    return 4.0 / 3.0 * np.pi * np.diff(faces**3)


def mean_x(e: Electrode, x_map: np.ndarray) -> float:
    """Volume-weighted mean stoichiometry over the particles and the (uniform) x-cells of an electrode."""
    v = shell_volumes(e)
    return float(np.mean(x_map @ v) / v.sum())


def inventory(cell: Cell, fields: dict) -> float:
    """mol/m^2 of ion: electrolyte (porosity * dx * c_e) plus both electrodes' particles."""
    parts = (cell.anode, cell.separator, cell.cathode)
    dx = np.concatenate([np.full(p.cells_x, p.thickness_m / p.cells_x) for p in parts])
    eps = np.concatenate([np.full(p.cells_x, p.porosity) for p in parts])
    total = float(np.sum(eps * dx * fields["c_e_mol_m3"]))
    for e, x_map in ((cell.anode, fields["anode_x"]), (cell.cathode, fields["cathode_x"])):
        total += e.thickness_m * e.active_fraction * e.formula_units_mol_m3 * mean_x(e, x_map)
    return total


def capacity_per_x(e: Electrode) -> float:
    """Coulombs per m^2 per unit of mean stoichiometry: F L eps_s fu."""
    return F * e.thickness_m * e.active_fraction * e.formula_units_mol_m3


def charge_passed(trace: np.ndarray, upto: int) -> float:
    """int I dt (C/m^2, > 0 discharging) over trace rows [0, upto] by the trapezoid rule: exact for
    piecewise-constant current (a step change shows up as two rows at the same time)."""
    t, i = trace[:upto + 1, 0], trace[:upto + 1, 2]
    return float(np.sum(0.5 * (i[1:] + i[:-1]) * np.diff(t)))


def binodal_and_spinodal():
    """Symmetric regular solution: the common tangent is horizontal at mu(1/2), so the binodal solves
    RT ln(x / (1 - x)) = Omega (2x - 1); the spinodal x (1 - x) = RT / (2 Omega)."""
    a = OMEGA / RT
    lo = brentq(lambda x: np.log(x / (1 - x)) - a * (2 * x - 1), 1e-9, 0.5 - 1e-3)
    s = 0.5 * (1 - np.sqrt(1 - 2 / a))
    return (lo, 1 - lo), (s, 1 - s)


# ---- shared runs ---------------------------------------------------------------------------------
CH_CUTOFF_V = 3.5


@pytest.fixture(scope="module")
def ch_charge():
    """C/2 charge of the Cahn-Hilliard cell from x = 0.95 to a 3.5 V cutoff (past the plateau)."""
    return charge_to_cutoff(ch_cell(settings=SolverSettings(output_interval_s=20.0)))


def charge_to_cutoff(m) -> dict:
    """Run a C/2 charge of cell ``m`` to CH_CUTOFF_V; its fields, inventories, trace and snapshots."""
    f0, n0 = m.fields(), m.inventory_mol_m2()
    ends = m.run([Step("current", c_rate=-0.5, cutoff_V=CH_CUTOFF_V, label="charge")])
    return dict(m=m, ends=ends, f0=f0, n0=n0, n1=m.inventory_mol_m2(), f1=m.fields(),
                trace=np.array(m.trace, dtype=float), snapshots=list(m.snapshots))


FICK_STEPS = [
    Step("current", c_rate=-1.0, cutoff_V=4.0, label="CC charge"),
    Step("rest", duration_s=3 * 3600.0, label="rest"),
    Step("current", c_rate=-1.0, cutoff_V=4.0, label="CC charge again"),
    Step("voltage", voltage_V=4.0, current_cutoff_C=0.05, label="CV hold"),
    Step("current", c_rate=0.5, duration_s=600.0, label="discharge"),
]


@pytest.fixture(scope="module")
def fick_protocol():
    m = fick_cell(settings=SolverSettings(output_interval_s=60.0))
    f0, n0 = m.fields(), m.inventory_mol_m2()
    ends = m.run(FICK_STEPS)
    return dict(m=m, ends=ends, f0=f0, n0=n0, n1=m.inventory_mol_m2(), trace=np.array(m.trace, dtype=float),
                snapshots=list(m.snapshots))


# ---- 1. conservation ------------------------------------------------------------------------------
def test_ion_inventory_is_conserved_to_round_off_through_a_ch_charge(ch_charge):
    m, f0 = ch_charge["m"], ch_charge["f0"]
    ref = inventory(m.cell, f0)
    assert ref == pytest.approx(ch_charge["n0"], rel=1e-14, abs=0)  # our bookkeeping = the solver's
    assert ch_charge["ends"] == ["cutoff"]
    assert len(ch_charge["snapshots"]) > 100
    drift = [abs(inventory(m.cell, s) / ref - 1) for _, s in ch_charge["snapshots"]]
    assert max(drift) < 1e-12, max(drift)
    assert abs(ch_charge["n1"] / ch_charge["n0"] - 1) < 1e-12
    # and the charge really moved ions: the cathode lost most of its sodium
    assert mean_x(m.cell.cathode, ch_charge["f1"]["cathode_x"]) < 0.1


def test_ion_inventory_is_conserved_through_rest_and_cv_hold(fick_protocol):
    m, snaps = fick_protocol["m"], fick_protocol["snapshots"]
    ref = fick_protocol["n0"]
    drift = [abs(inventory(m.cell, s) / ref - 1) for _, s in snaps]
    assert max(drift) < 1e-12, max(drift)
    assert abs(fick_protocol["n1"] / ref - 1) < 1e-12


def test_ion_inventory_ch_protocol_with_rest_and_cv():
    m = ch_cell(nx=3, nr=6, settings=SolverSettings(output_interval_s=30.0))
    n0 = m.inventory_mol_m2()
    ends = m.run([Step("current", c_rate=-1.0, duration_s=900.0), Step("rest", duration_s=300.0),
                  Step("voltage", voltage_V=3.05, duration_s=300.0),
                  Step("current", c_rate=1.0, duration_s=300.0)])
    assert ends == ["time"] * 4
    drift = [abs(inventory(m.cell, s) / n0 - 1) for _, s in m.snapshots]
    assert max(drift) < 1e-12, max(drift)


# ---- 2. Coulomb counting ----------------------------------------------------------------------------
def test_coulomb_counting_ch_charge(ch_charge):
    m, tr = ch_charge["m"], ch_charge["trace"]
    an, ca = m.cell.anode, m.cell.cathode
    x0c, x0a = mean_x(ca, ch_charge["f0"]["cathode_x"]), mean_x(an, ch_charge["f0"]["anode_x"])
    times = tr[:, 0]
    worst = 0.0
    for t, s in ch_charge["snapshots"][1:]:
        k = int(np.flatnonzero(times == t)[-1])
        q = charge_passed(tr, k)  # < 0: charging
        dxc, dxa = mean_x(ca, s["cathode_x"]) - x0c, mean_x(an, s["anode_x"]) - x0a
        for got, want in ((dxc, q / capacity_per_x(ca)), (dxa, -q / capacity_per_x(an))):
            worst = max(worst, abs(got / want - 1))
    assert worst < 1e-6, worst
    # the whole charge: I t exactly (constant current to the located cutoff)
    q = tr[-1, 2] * tr[-1, 0]
    dxc = mean_x(ca, ch_charge["f1"]["cathode_x"]) - x0c
    assert dxc == pytest.approx(q / capacity_per_x(ca), rel=1e-6, abs=0)


def test_coulomb_counting_through_rest(fick_protocol):
    m, tr = fick_protocol["m"], fick_protocol["trace"]
    an, ca = m.cell.anode, m.cell.cathode
    x0c, x0a = mean_x(ca, fick_protocol["f0"]["cathode_x"]), mean_x(an, fick_protocol["f0"]["anode_x"])
    times, steps = tr[:, 0], tr[:, 3]
    worst, n = 0.0, 0
    for t, s in fick_protocol["snapshots"][1:]:
        k = int(np.flatnonzero(times == t)[-1])
        if steps[k] > 2:  # the CV hold's current is not piecewise constant
            break
        q = charge_passed(tr, k)
        if q == 0.0:
            continue
        n += 1
        dxc, dxa = mean_x(ca, s["cathode_x"]) - x0c, mean_x(an, s["anode_x"]) - x0a
        for got, want in ((dxc, q / capacity_per_x(ca)), (dxa, -q / capacity_per_x(an))):
            worst = max(worst, abs(got / want - 1))
    assert n > 10
    assert worst < 1e-6, worst


# ---- 3. cutoffs and rest ------------------------------------------------------------------------------
def step_rows(trace, k):
    return trace[trace[:, 3] == k]


def test_voltage_and_current_cutoffs_end_steps_on_the_cutoff(fick_protocol):
    m, tr = fick_protocol["m"], fick_protocol["trace"]
    assert fick_protocol["ends"] == ["cutoff", "time", "cutoff", "cutoff", "time"]
    # CC charges: the event is located on V = 4.0 (event tolerance 1e-7 on V - cutoff)
    for k in (0, 2):
        rows = step_rows(tr, k)
        assert np.all(rows[:, 2] == -m.i1c)
        assert np.all(rows[:-1, 1] < 4.0)
        assert abs(rows[-1, 1] - 4.0) < 1e-5, rows[-1, 1] - 4.0
    # CV hold: V is the set point on every row, |I| decays to C/20 (event tolerance 1e-7 on |I|/I_1C - 0.05)
    rows = step_rows(tr, 3)
    assert np.all(rows[:, 1] == 4.0)
    c = np.abs(rows[:, 2]) / m.i1c
    assert np.all(c[:-1] > 0.05)
    assert abs(c[-1] - 0.05) < 1e-5, c[-1] - 0.05
    # the last step ran its full duration
    assert step_rows(tr, 4)[-1, 0] == pytest.approx(step_rows(tr, 3)[-1, 0] + 600.0, rel=1e-12)


def rest_analysis(fp):
    """Rest rows (the first row is the end of the charge re-evaluated at I = 0: skipped) and the
    equilibrium OCV of the electrodes' mean stoichiometries at the end of the rest."""
    m, tr = fp["m"], fp["trace"]
    rows = step_rows(tr, 1)
    t_end = rows[-1, 0]
    f = next(s for t, s in fp["snapshots"] if t == t_end)
    ocv = ocv_cathode(mean_x(m.cell.cathode, f["cathode_x"])) - ocv_anode(mean_x(m.cell.anode, f["anode_x"]))
    return rows, float(ocv)


def test_rest_has_zero_current_and_relaxes_towards_the_ocv(fick_protocol):
    rows, ocv = rest_analysis(fick_protocol)
    assert np.all(rows[:, 2] == 0.0)
    v = rows[1:, 1]
    gap0, gap1 = v[0] - ocv, v[-1] - ocv
    # After a charge the cell sits above its OCV. 3 h of rest are > 2.7 R^2/D of both particles: the
    # slowest radial mode has decayed by exp(-20.2 * 2.7) ~ 1e-24, so what is left of the ~60 mV gap is
    # the integration tolerance (rtol 1e-6 on x, ~1e-6 V); never below the equilibrium value either.
    assert gap0 > 0.03
    assert np.all(v > ocv - 1e-6)
    assert abs(gap1) < 1e-6, (gap0, gap1)
    assert v[-1] < v[0]


def test_rest_voltage_decreases_monotonically(fick_protocol):
    rows, _ = rest_analysis(fick_protocol)
    dv = np.diff(rows[1:, 1])
    assert dv.max() <= 1e-8, dv.max()


# ---- 4. equilibrium start -----------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["fickian", "cahn-hilliard"])
def test_equilibrium_start_is_at_rest_on_the_open_circuit_voltage(kind):
    if kind == "fickian":
        m = fick_cell(x0_c=0.3, x0_a=0.7)
        expected = ocv_cathode(0.3) - ocv_anode(0.7)
    else:
        m = ch_cell(nx=3, nr=6, x0=0.95)
        expected = -mu_ch(0.95) / F - ocv_anode(0.1)
    V0, I0 = m.terminal()
    assert I0 == 0.0
    assert abs(V0 - expected) < 1e-9, V0 - expected
    n0 = m.inventory_mol_m2()
    assert m.run([Step("rest", duration_s=600.0)]) == ["time"]
    tr = np.array(m.trace)
    assert tr[-1, 0] == pytest.approx(600.0, rel=1e-12)
    assert np.max(np.abs(tr[:, 1] - expected)) < 1e-9
    u = m.gather()
    j0 = 1.0  # j0(c_e0) of both electrodes, A/m^2
    assert np.max(np.abs(u[:, JJ])) < 1e-9 * j0
    f = m.fields()
    assert np.ptp(f["c_e_mol_m3"]) < 1e-9 * 1000.0
    assert np.ptp(f["cathode_x"]) < 1e-12 and np.ptp(f["anode_x"]) < 1e-12
    assert m.inventory_mol_m2() == pytest.approx(n0, rel=1e-12, abs=0)


# ---- 5. single-particle limit ---------------------------------------------------------------------------
# Thin electrodes, fast electrolyte, highly conducting solid, constant j0: every particle sees the same
# j = I / (a L) and c_e stays at c_e0, so V = U_c(x_s,c) - U_a(x_s,a) + eta_c - eta_a with
# eta = (2RT/F) asinh(j / 2 j0) (alpha = 1/2) and x_s from the constant-flux sphere series.
SPM = dict(Ra=5e-6, Da=1e-14, fua=30000., La=20e-6, xa=0.8, Rc=4e-6, Dc=4e-15, fuc=40000., Lc=10e-6, xc=0.2,
           eps_s=0.6, j0=0.5)
SPM_T_MIN = 60.0  # s; the surface boundary layer sqrt(D t) spans > 3 radial cells at 20 cells after this


def spm_j0(ce, x, T):
    return np.full_like(ce, SPM["j0"])


def spm_cell(nr, j0=spm_j0, cathode_particle=None):
    """cathode_particle: default Fickian with SPM's Dc and ocv_cathode."""
    s = SPM
    common = dict(porosity=0.3, active_fraction=s["eps_s"], conductivity_S_m=1e4,
                  exchange_current_A_m2=j0, cells_x=2, cells_r=nr)
    an = Electrode(thickness_m=s["La"], particle_radius_m=s["Ra"], formula_units_mol_m3=s["fua"], x_initial=s["xa"],
                   particle=FickianParticle(const(s["Da"]), ocv_anode), **common)
    ca = Electrode(thickness_m=s["Lc"], particle_radius_m=s["Rc"], formula_units_mol_m3=s["fuc"], x_initial=s["xc"],
                   particle=cathode_particle or FickianParticle(const(s["Dc"]), ocv_cathode), **common)
    cell = Cell(anode=an, separator=Separator(5e-6, 0.45, cells_x=1), cathode=ca,
                electrolyte=electrolyte(D=1e-7, kappa=1e3), temperature_K=T, x_window=(0.2, 0.9))
    return P2DCell(cell, SolverSettings(), in_process_comm())


def sphere_surface_excess(tau, terms=400):
    """(c_s - c0) D / (q R) for a constant inward flux q into a sphere (Carslaw & Jaeger):
    3 tau + 1/5 - 2 sum exp(-l_n^2 tau) / l_n^2, tan l_n = l_n."""
    lam = np.array([brentq(lambda x: np.tan(x) - x, k * np.pi + 1e-9, k * np.pi + np.pi / 2 - 1e-9)
                    for k in range(1, terms + 1)])
    tau = np.asarray(tau, dtype=float)[:, None]
    return 3 * tau[:, 0] + 0.2 - 2 * np.sum(np.exp(-lam**2 * tau) / lam**2, axis=1)


def spm_voltage(t, current, j0=spm_j0, cathode=(SPM["Dc"], ocv_cathode)):
    """cathode: its (D, U(x)); j0(c_e, x_surf, T) at c_e0 = 1000 mol/m^3."""
    s = SPM
    out = []
    for sign, R, D, fu, L, x0, ocv in ((1, s["Rc"], cathode[0], s["fuc"], s["Lc"], s["xc"], cathode[1]),
                                       (-1, s["Ra"], s["Da"], s["fua"], s["La"], s["xa"], ocv_anode)):
        j = -sign * current / (3 * s["eps_s"] / R * L)  # > 0 takes ions out; discharge inserts into the cathode
        q = -j / F  # inward molar flux
        xs = x0 + q * R / D * sphere_surface_excess(D * np.asarray(t) / R**2) / fu
        eta = 2 * RT / F * np.arcsinh(j / (2 * j0(np.full_like(xs, 1000.0), xs, T)))
        out.append(sign * (ocv(xs) + eta))
    return out[0] + out[1]


@pytest.fixture(scope="module")
def spm_runs():
    runs = {}
    for nr in (20, 40):
        m = spm_cell(nr)
        ends = m.run([Step("current", c_rate=0.2, duration_s=3600.0)])
        tr = np.array(m.trace)
        runs[nr] = dict(m=m, ends=ends, t=tr[:, 0], V=tr[:, 1], I=tr[:, 2], u=m.gather())
    return runs


def test_single_particle_limit_matches_the_analytic_sphere_and_butler_volmer(spm_runs):
    errs = {}
    for nr, r in spm_runs.items():
        assert r["ends"] == ["time"] and r["t"][-1] == pytest.approx(3600.0, rel=1e-12)
        I = r["I"][0]
        assert I == pytest.approx(0.2 * r["m"].i1c, rel=1e-14, abs=0)
        late = r["t"] >= SPM_T_MIN
        errs[nr] = np.max(np.abs(r["V"][late] - spm_voltage(r["t"][late], I)))
        # the premise: uniform reaction, j = I / (a L) in every electrode node to 1e-4
        cell, j = r["m"].cell, r["u"][:, JJ]  # nodes: anode | separator | cathode
        na, nc = cell.anode.cells_x, cell.cathode.cells_x
        for e, jj, sign in ((cell.anode, j[:na], 1), (cell.cathode, j[-nc:], -1)):
            assert np.allclose(jj, sign * I / (e.specific_area_m * e.thickness_m), rtol=1e-4, atol=0)
    # Second-order radial finite volumes: ~1e-4 V at 20 cells (the voltage spans ~0.1 V over the hour,
    # overpotentials ~10 mV, the diffusion-limited surface excess ~15 mV), 4x smaller at 40.
    assert errs[20] < 2e-4, errs
    assert 3.0 < errs[20] / errs[40] < 5.5, errs


def test_single_particle_limit_holds_from_the_first_step(spm_runs):
    # Before the boundary layer is resolved the surface extrapolation c_N + (h/2) q / D overshoots by at
    # most (h/2) q / D per electrode: 1.4 mV (cathode) + 0.3 mV (anode) at 20 cells.
    r = spm_runs[20]
    early = (r["t"] > 0) & (r["t"] < SPM_T_MIN)
    err = np.abs(r["V"][early] - spm_voltage(r["t"][early], r["I"][0]))
    assert err.max() < 3e-3, err.max()


# The same limit with j0 = k c_e^a x_s^b (1 - x_s)^c and an Arrhenius factor (functions.ExchangeCurrent) in
# both particle models: the analytic eta then follows x_s(t) of the sphere series, and T != T_ref scales j0
# by 0.47. The Cahn-Hilliard cathode is the ideal solution (Omega = 0, mu = -U0 F + RT ln(x/(1-x))) with
# M = D fu x(1-x)/RT, i.e. Fick with D exactly, U = -mu/F; its j0 sees the outer shell's x, which at
# D = 1e-13 is within (h/2) q/(D fu) = 5e-5 of the surface (1e-4 of j0, < 1 uV). kappa is set to a
# width R/10 interface; kappa lap c is ~1e-4 J/mol here, negligible.
J0_STANDARD = ExchangeCurrent(0.03, a=0.5, b=0.5, c=0.5, Ea_J_mol=30000.0, T_ref_K=318.15)
D_IDEAL_CH = 1e-13


def mu_ideal(x):
    x = _in_01(x)
    return -U0_CH * F + RT * np.log(x / (1 - x))


@pytest.mark.parametrize("model", ["fickian", "cahn-hilliard"])
def test_single_particle_limit_with_the_standard_exchange_current(model):
    if model == "fickian":
        particle, cathode = None, (SPM["Dc"], ocv_cathode)
    else:
        fu = SPM["fuc"]
        particle = CahnHilliardParticle(mu_ideal, lambda x: D_IDEAL_CH * fu * _in_01(x) * (1 - _in_01(x)) / RT,
                                        (SPM["Rc"] / 10) ** 2 * RT / fu)
        cathode = (D_IDEAL_CH, lambda x: -mu_ideal(x) / F)
    m = spm_cell(20, J0_STANDARD, particle)
    assert m.run([Step("current", c_rate=0.2, duration_s=3600.0)]) == ["time"]
    tr = np.array(m.trace)
    t, V, I = tr[:, 0], tr[:, 1], tr[:, 2]
    late = t >= SPM_T_MIN
    err = np.max(np.abs(V[late] - spm_voltage(t[late], I[0], J0_STANDARD, cathode)))
    # the radial discretisation's 2e-4 V of the constant-j0 test above; eta is ~20-30 mV here
    assert err < 2e-4, err
    # without the Arrhenius factor or the x-dependence, the analytic voltage moves by millivolts
    no_T = ExchangeCurrent(0.03, a=0.5, b=0.5, c=0.5)
    no_x = ExchangeCurrent(0.03 * J0_STANDARD.arrhenius(T) * 0.5, a=0.5)  # x^b (1-x)^c at its x = 1/2 value
    for wrong in (no_T, no_x):
        assert np.max(np.abs(V[late] - spm_voltage(t[late], I[0], wrong, cathode))) > 2e-3


# ---- 6. rank-count independence --------------------------------------------------------------------------
MPI_SCRIPT = """
import json

import numpy as np
from mpi4py import MPI
from test_p2d_cell import SolverSettings, Step, ch_cell

m = ch_cell(nx=4, nr=6, settings=SolverSettings(output_interval_s=1e9), comm=MPI.COMM_WORLD)
ends = m.run([Step("current", c_rate=-1.0, duration_s=900.0)])
tr = np.array(m.trace)
f = m.fields()
V, I = m.terminal()
n = m.inventory_mol_m2()
if MPI.COMM_WORLD.rank == 0:
    print(json.dumps({"ranks": MPI.COMM_WORLD.size, "ends": ends, "t": tr[:, 0].tolist(), "V": tr[:, 1].tolist(),
                      "V_end": V, "cathode_x": f["cathode_x"].tolist(), "anode_x": f["anode_x"].tolist(),
                      "c_e": f["c_e_mol_m3"].tolist(), "phi_e": f["phi_e_V"].tolist(), "inventory": n}))
"""


@pytest.fixture(scope="module")
def rank_runs(tmp_path_factory):
    out = {}
    for n in (1, 2, 3):
        r = run_mpi_script(tmp_path_factory.mktemp(f"ranks{n}"), MPI_SCRIPT, n)
        assert r["ranks"] == n and r["ends"] == ["time"]
        out[n] = {k: np.array(v) if isinstance(v, list) else v for k, v in r.items()}
    return out


@pytest.mark.parametrize("n", [2, 3])
def test_two_and_three_ranks_reproduce_the_serial_run(rank_runs, n):
    # The serial run factors the Jacobian (LU); in parallel GMRES+ASM solves it to 1e-12, so the
    # Newton iterates differ at round-off and the adaptive steps may differ: what must agree is the
    # solution to within the integration tolerance (rtol 1e-6).
    a, b = rank_runs[1], rank_runs[n]
    assert b["t"][-1] == a["t"][-1] == pytest.approx(900.0, rel=1e-12)
    # through a nucleation (the separator-side particles phase-separate within the 900 s)
    assert a["cathode_x"][0, -1] < 0.1 and a["cathode_x"][-1, -1] > 0.5
    assert abs(b["V_end"] - a["V_end"]) < 1e-6
    V_on_a = np.interp(a["t"], b["t"], b["V"])
    late = a["t"] > 1.0  # the first second jumps from OCV to the loaded voltage: linear interpolation is poor
    assert np.max(np.abs(V_on_a[late] - a["V"][late])) < 1e-6
    for key, tol in (("cathode_x", 1e-6), ("anode_x", 1e-6), ("c_e", 1e-6 * 1000.0), ("phi_e", 1e-6)):
        assert np.max(np.abs(b[key] - a[key])) < tol, key
    assert b["inventory"] == pytest.approx(a["inventory"], rel=1e-12, abs=0)


# ---- 7. Cahn-Hilliard cathode: two-phase physics -------------------------------------------------------------
def test_ch_desodiation_front_moves_from_separator_to_collector(ch_charge):
    (x_lo, x_hi), (s_lo, s_hi) = binodal_and_spinodal()
    snaps = ch_charge["snapshots"]
    times = np.array([t for t, _ in snaps])
    surface = np.array([s["cathode_x"][:, -1] for _, s in snaps])  # (time, node); node 0 at the separator
    # "reached the Na-poor phase": surface cell within 0.02 of the Na-poor binodal (under extraction it
    # sits slightly below it)
    reached = surface < x_lo + 0.02
    assert reached[-1].all()
    first = np.array([times[np.argmax(col)] for col in reached.T])
    assert np.all(np.diff(first) > 0), first
    # before its turn every node stays on the Na-rich branch (no early nucleation at the collector)
    assert np.all(surface[times < first[0], -1] > s_hi - 0.2)


def test_ch_cathode_holds_both_binodal_phases_late_on_the_plateau(ch_charge):
    (x_lo, x_hi), _ = binodal_and_spinodal()
    m = ch_charge["m"]
    # the last snapshot with a quarter of the sodium left
    late = [s for _, s in ch_charge["snapshots"] if mean_x(m.cell.cathode, s["cathode_x"]) > 0.25][-1]["cathode_x"]
    # Coexisting compositions may leave the flat-interface binodal by what the extraction drives and the
    # interface curvature costs: 0.015 in x is 1.1 RT of chemical potential at f''(x_b) = 75 RT.
    near_lo, near_hi = np.abs(late - x_lo) < 0.015, np.abs(late - x_hi) < 0.015
    assert near_lo.any() and near_hi.any()
    # core-shell particles: Na-rich core and Na-poor surface in the same particle
    assert np.any(near_hi[:, 0] & near_lo[:, -1])


# ---- a step whose cutoff lies behind its start -------------------------------------------------
def test_a_step_whose_cutoff_is_behind_its_start_is_refused_after_one_time_step():
    m = fick_cell()
    V0 = m.terminal()[0]
    # from rest: a charge to below the start (or a discharge to above it) would never cross its cutoff
    for step in (Step("current", c_rate=-1.0, cutoff_V=V0 - 0.05, label="charge"),
                 Step("current", c_rate=1.0, cutoff_V=V0 + 0.05, label="discharge")):
        m.set_initial_state()
        with pytest.raises(RuntimeError, match=r"^P2D step 1 \((dis)?charge\): until_V [0-9.]+ V is at or "
                                               r"(below|above) the voltage it starts at"):
            m.run([step])
        assert len(m.trace) == 2 and m.trace[-1][0] == pytest.approx(SolverSettings().dt_initial_s)
    # a second charge to the same cutoff at a lower rate starts below it (smaller ohmic drop): it runs
    m.set_initial_state()
    ends = m.run([Step("current", c_rate=-2.0, cutoff_V=4.0), Step("current", c_rate=-0.5, cutoff_V=4.0)])
    assert ends == ["cutoff", "cutoff"]
    m.set_initial_state()
    with pytest.raises(RuntimeError, match=r"^P2D step 2 \(charge\): until_V 3.9 V is at or below"):
        m.run([Step("current", c_rate=-1.0, cutoff_V=4.0), Step("current", c_rate=-1.0, cutoff_V=3.9, label="charge")])
