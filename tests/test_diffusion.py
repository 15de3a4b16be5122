"""Diffusion analysis (FFT MSD, linear window, block errors, Arrhenius) on exact/synthetic data; MD runner on
the teacher potential (real LAMMPS)."""
from __future__ import annotations

import numpy as np
import pytest
from conftest import run_mpi_script
from mpi4py import MPI
from scipy.signal import lfilter

from pbahpc.atomistic.structure import build_pba
from pbahpc.oracle.teacher import teacher_potential
from pbahpc.properties.diffusion import (A2_PER_PS_TO_CM2_PER_S, arrhenius, diffusion_coefficient, msd_direct,
                                         msd_fft, run_md, tor_unwrap)
from pbahpc.units import KB_EV_PER_K


def random_walk(rng, D, dt, n_t, n_a):
    return rng.normal(scale=np.sqrt(2 * D * dt), size=(n_t, n_a, 3)).cumsum(axis=0)


def test_msd_fft_equals_direct_loop():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 9, 3)).cumsum(axis=0) + 100.0  # offset: FFT must not lose precision
    ref = msd_direct(x)
    # FFT round-off scales with the squared coordinates (~1e4 A^2 here), not with the MSD: 1e-14 of that
    # (measured 5e-17); an FFT without the offset removed would lose ~eps x 1e4 x n_t
    tol = 1e-14 * np.max(x ** 2)
    assert np.max(np.abs(msd_fft(x) - ref)) < tol
    per = msd_fft(x, per_direction=True)
    assert per.shape == (64, 3)
    assert np.max(np.abs(per.sum(axis=1) - ref)) < tol
    assert np.max(np.abs(msd_fft(x, chunk_atoms=2) - ref)) < tol
    for k in range(3):  # each direction on its own
        assert np.max(np.abs(per[:, k] - msd_direct(x[:, :, k:k + 1]))) < tol


def test_random_walk_recovers_D():
    rng = np.random.default_rng(1)
    D, dt = 0.05, 0.1  # A^2/ps, ps
    fit = diffusion_coefficient(random_walk(rng, D, dt, 2000, 200), dt)
    assert fit.linear_ok
    assert abs(fit.D_A2_per_ps - D) < 3 * fit.sigma_A2_per_ps
    assert abs(fit.D_A2_per_ps / D - 1) < 0.05
    assert fit.sigma_A2_per_ps / D < 0.05
    assert fit.D_cm2_per_s == pytest.approx(fit.D_A2_per_ps * 1e-4)
    assert A2_PER_PS_TO_CM2_PER_S == 1e-4
    # one direction: d = 1
    fx = diffusion_coefficient(random_walk(rng, D, dt, 2000, 200), dt, dims=(0,))
    assert fx.dim == 1 and abs(fx.D_A2_per_ps / D - 1) < 0.08


def test_block_sigma_matches_spread_over_repeats():
    """The stated sigma must describe the scatter of D over independent trajectories."""
    rng = np.random.default_rng(2)
    D, dt = 0.05, 0.1
    fits = [diffusion_coefficient(random_walk(rng, D, dt, 1600, 60), dt) for _ in range(40)]
    d = np.array([f.D_A2_per_ps for f in fits])
    s = np.array([f.sigma_A2_per_ps for f in fits])
    assert abs(d.mean() - D) < 3 * d.std(ddof=1) / np.sqrt(len(d))
    ratio = d.std(ddof=1) / np.sqrt(np.mean(s**2))
    print("spread/sigma", ratio)
    assert 0.75 < ratio < 1.3, ratio


def test_ballistic_start_is_skipped():
    """Langevin particles: MSD ~ t^2 for t << tau, linear beyond; the window must start beyond the
    ballistic part and give the exact D of the discrete process."""
    rng = np.random.default_rng(3)
    dt, tau, c0 = 0.01, 0.5, 1.0  # ps, ps, A^2/ps^2
    rho = np.exp(-dt / tau)
    d_exact = dt * c0 / 2 * (1 + rho) / (1 - rho)  # = c0 tau to O(dt^2)
    n_t, n_a = 6000, 200
    xi = rng.normal(size=(n_t, n_a, 3)) * np.sqrt(c0 * (1 - rho**2))
    xi[0] = rng.normal(size=(n_a, 3)) * np.sqrt(c0)
    x = np.cumsum(lfilter([1.0], [1.0, -rho], xi, axis=0) * dt, axis=0)
    fit = diffusion_coefficient(x, dt, n_blocks=4)
    assert fit.linear_ok
    # MSD = 6 c0 tau (t - tau (1 - exp(-t / tau))): a line of intercept -6 c0 tau^2 once exp(-t / tau) is
    # small; before tau the curvature of MSD - intercept is plain
    assert fit.t_start_ps > tau
    i = int(round(fit.t_start_ps / dt))
    t = np.arange(len(fit.msd_A2)) * dt
    alpha = np.gradient(np.log(fit.msd_A2[1:]), np.log(t[1:]))
    y = fit.msd_A2 - fit.intercept_A2
    assert alpha[0] > 1.9 and abs(np.log(y[2 * i] / y[i]) / np.log(2) - 1) < 0.25  # straight from the start
    assert abs(fit.D_A2_per_ps / d_exact - 1) < 0.05
    assert abs(fit.D_A2_per_ps - d_exact) < 3.5 * fit.sigma_A2_per_ps


def test_hopping_with_a_cage_plateau_is_linear():
    """Ions hopping between cages (Poisson, 5.1 A jumps) and rattling in them (MSD plateau 2 A^2, like
    the cathode teacher's Na): MSD = 2 + 6 D t. d ln MSD / d ln t stays far below 1 over the window
    (6 D t < 2 A^2), yet the MSD is a straight line and D comes out exact within its error."""
    rng = np.random.default_rng(5)
    dt, n_t, n_a, jump, rate = 0.01, 8000, 64, 5.1, 0.02  # ps, frames, ions, A, hops per ps per ion
    D = rate * jump**2 / 6  # 0.087 A^2/ps
    hops = rng.poisson(rate * dt, size=(n_t, n_a)) * rng.choice([-1, 1], size=(n_t, n_a))
    axis = rng.integers(0, 3, size=(n_t, n_a))
    steps = np.zeros((n_t, n_a, 3))
    np.put_along_axis(steps, axis[..., None], (hops * jump)[..., None], axis=2)
    x = np.cumsum(steps, axis=0) + rng.normal(scale=np.sqrt(2.0 / 6), size=(n_t, n_a, 3))  # <|u(t)-u(0)|^2> = 2
    fit = diffusion_coefficient(x, dt)
    t = np.arange(len(fit.msd_A2)) * dt
    end = int(round(fit.t_end_ps / dt))
    assert np.log(fit.msd_A2[end] / fit.msd_A2[end // 2]) / np.log(2) < 0.75  # the old rule: not linear
    assert fit.linear_ok
    assert abs(fit.D_A2_per_ps - D) < 3 * fit.sigma_A2_per_ps and fit.D_A2_per_ps > 2 * fit.sigma_A2_per_ps
    assert abs(fit.intercept_A2 - 2.0) < 0.3  # the plateau


def test_no_linear_regime_is_flagged():
    rng = np.random.default_rng(4)
    v = rng.normal(size=(50, 3))
    x = np.arange(400)[:, None, None] * 0.01 * v[None]  # purely ballistic: alpha = 2 everywhere
    fit = diffusion_coefficient(x, 0.01, n_blocks=4)
    assert not fit.linear_ok


def test_arrhenius_exact_and_uncertainties():
    kb = KB_EV_PER_K
    T = np.array([500.0, 600.0, 700.0, 800.0, 900.0, 1000.0])
    Ea, D0 = 0.35, 2e-3  # eV, cm^2/s
    D = D0 * np.exp(-Ea / (kb * T))
    f = arrhenius(T, D, 0.08 * D)
    assert f.Ea_eV == pytest.approx(Ea, rel=1e-10) and f.D0 == pytest.approx(D0, rel=1e-10)
    assert f.chi2 == pytest.approx(0, abs=1e-16)
    # 200 noisy synthetic sets: scatter of the estimates vs stated sigmas, and of the 300 K extrapolation
    rng = np.random.default_rng(5)
    rel = 0.08
    ea, lnd0, ln300, s_ea, s_lnd0, s300 = [], [], [], [], [], []
    for _ in range(200):
        Dn = D * np.exp(rel * rng.normal(size=T.size))  # lognormal noise, sigma(ln D) = rel
        fit = arrhenius(T, Dn, rel * Dn)
        ea.append(fit.Ea_eV)
        lnd0.append(fit.lnD0)
        s_ea.append(fit.sigma_Ea_eV)
        s_lnd0.append(fit.sigma_lnD0)
        d300, sd300, sln300 = fit.extrapolate(300.0)
        assert sd300 == pytest.approx(d300 * sln300)
        ln300.append(np.log(d300))
        s300.append(sln300)
    ea, lnd0, ln300 = map(np.array, (ea, lnd0, ln300))
    assert abs(ea.mean() - Ea) < 3 * ea.std() / np.sqrt(200)
    assert abs(ea.std(ddof=1) / np.mean(s_ea) - 1) < 0.2
    assert abs(lnd0.std(ddof=1) / np.mean(s_lnd0) - 1) < 0.2
    assert abs(ln300.std(ddof=1) / np.mean(s300) - 1) < 0.2
    assert abs(ln300.mean() - np.log(D0) + Ea / (kb * 300)) < 3 * ln300.std() / np.sqrt(200)
    # Monte Carlo propagation from the parameter covariance reproduces the analytic sigma at 300 K
    samp = rng.multivariate_normal([fit.Ea_eV, fit.lnD0], fit.cov, size=20000)
    mc = np.std(samp[:, 1] - samp[:, 0] / (kb * 300.0))
    assert mc == pytest.approx(s300[-1], rel=0.03)
    # Ea and ln D0 are strongly correlated
    assert fit.cov[0, 1] / np.sqrt(fit.cov[0, 0] * fit.cov[1, 1]) > 0.9


def test_arrhenius_scaled_sigma():
    T = np.array([400.0, 500.0, 600.0, 700.0])
    D = 1e-4 * np.exp(-0.3 / (KB_EV_PER_K * T)) * np.array([1.1, 0.9, 1.05, 0.97])
    a = arrhenius(T, D, 1e-3 * D, absolute_sigma=False)
    b = arrhenius(T, D, 1.0 * D, absolute_sigma=False)
    assert a.sigma_Ea_eV == pytest.approx(b.sigma_Ea_eV) and a.Ea_eV == pytest.approx(b.Ea_eV)


def test_tor_unwrap_orthorhombic_and_triclinic():
    rng = np.random.default_rng(6)
    for cell in (np.diag([5.0, 6.0, 7.0]), np.array([[5.0, 0, 0], [1.0, 6.0, 0], [0.5, -0.7, 7.0]])):
        u = random_walk(rng, 0.5, 0.1, 300, 5)
        cells = np.repeat(cell[None], 300, axis=0)
        frac = u @ np.linalg.inv(cell)
        w = (frac - np.floor(frac)) @ cell
        back = tor_unwrap(w, cells)
        assert np.max(np.abs(back - back[0] - (u - u[0]))) < 1e-9


def test_md_runner_teacher_unwraps():
    """1 cell, x = 1, Na placed next to the box faces so that they cross it while vibrating."""
    atoms = build_pba(1, x_na=1.0, arrangement="first")
    atoms.positions -= 2.55  # Na at the cage centre a/4 = 2.575 A -> within 0.03 A of the faces
    atoms.wrap()
    pot = teacher_potential()
    tr = run_md(atoms, pot, MPI.COMM_SELF, 600.0, thermalize_steps=0, production_steps=300, dump_every=2,
                timestep_fs=1.0, seed=7)
    assert tr.positions_A.shape == (151, 4, 3) and tr.cells_A.shape == (151, 3, 3)
    assert tr.dt_ps == pytest.approx(0.002)
    assert np.all(np.isfinite(tr.positions_A))
    frac = np.einsum("tij,tjk->tik", tr.positions_A, np.linalg.inv(tr.cells_A))
    assert np.any(np.diff(np.floor(frac), axis=0) != 0)  # wrapped coordinates did jump by a box length
    step = np.linalg.norm(np.diff(tr.positions_A, axis=0), axis=-1)
    assert step.max() < 0.5  # ... the unwrapped ones never do
    assert np.max(np.linalg.norm(tr.positions_A - tr.positions_A[0], axis=-1)) < 1.5  # caged Na
    # LAMMPS image-flag unwrapping agrees up to the (small) box fluctuation times the image flag
    off = tr.image_unwrapped_A - tr.positions_A
    assert np.max(np.abs(off - off[0])) < 0.5
    assert 200 < tr.temperature_K[1:].mean() < 1000
    assert np.all(tr.potential_energy_eV < 0)
    assert tr.drift_corrected().shape == tr.positions_A.shape


MPI_SCRIPT = """
import json
import numpy as np
from mpi4py import MPI
from pbahpc.atomistic.structure import build_pba
from pbahpc.oracle.teacher import teacher_potential
from pbahpc.properties.diffusion import run_md
comm = MPI.COMM_WORLD.Split(0, MPI.COMM_WORLD.rank)
atoms = build_pba(2, x_na=1.0, rng=np.random.default_rng(0))
tr = run_md(atoms, teacher_potential(), comm, 500.0, thermalize_steps=50, production_steps=100, dump_every=10)
all_pos = comm.allgather(tr.positions_A)
same = all(np.array_equal(all_pos[0], p) for p in all_pos)
if MPI.COMM_WORLD.rank == 0:
    step = float(np.linalg.norm(np.diff(tr.positions_A, axis=0), axis=-1).max())
    print(json.dumps({"size": comm.size, "same": same, "shape": list(tr.positions_A.shape), "step": step}))
"""


def test_md_runner_two_ranks(tmp_path):
    out = run_mpi_script(tmp_path, MPI_SCRIPT, 2)
    assert out["size"] == 2 and out["same"]
    assert out["shape"] == [11, 32, 3] and out["step"] < 1.0
