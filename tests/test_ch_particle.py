"""Single-particle Cahn-Hilliard / Fickian solver (pbahpc.continuum.particle) against analytic results."""
import numpy as np
import pytest
from scipy.optimize import brentq

pytest.importorskip("mpi4py")
pytest.importorskip("petsc4py")
from mpi4py import MPI

from pbahpc.continuum.particle import CahnHilliardParticle, FickianParticle, Mesh

W = 1.0  # double-well height; the first two tests are nondimensional (c is a site fraction)


def f_well(c):
    return W * c**2 * (1 - c) ** 2


def mu_well(c):
    return W * 2 * c * (1 - c) * (1 - 2 * c)


def dmu_well(c):
    return W * (2 - 12 * c + 12 * c**2)


def const(value):
    return lambda c: np.full_like(c, value)


def ch(mesh, c0, kappa, **kw):
    return CahnHilliardParticle(mesh, mu_well, dmu_well, const(1.0), const(0.0), kappa, c0,
                                comm=MPI.COMM_WORLD, **kw)


def test_planar_interface_relaxes_to_tanh_with_analytic_excess_energy():
    # Equilibrium 1-D profile: mu = 0 and, integrated once, f = (k/2) c'^2 (equipartition), so
    # c' = sqrt(2 f / k) = sqrt(2W/k) c (1 - c)  ->  c = (1 + tanh(x / delta)) / 2, delta = sqrt(2k/W).
    # Excess energy sigma = int (f + k/2 c'^2) dx = int 2 f / c' dc = int sqrt(2 k f) dc
    #   = sqrt(2kW) int_0^1 c (1 - c) dc = sqrt(2kW) / 6.  Bulk f(0) = f(1) = 0: excess = total G.
    kappa = 2e-4
    delta = np.sqrt(2 * kappa / W)
    mesh = Mesh(radius_m=1.0, cells=400, geometry="planar")
    x = mesh.centres_m
    p = ch(mesh, np.where(x < 0.5, 0.0, 1.0), kappa, rtol=1e-6, atol_mol_m3=1e-8)
    p.advance(20.0)
    sigma = p.free_energy_J(f_well)
    exact = np.sqrt(2 * kappa * W) / 6
    assert abs(sigma - exact) / exact < 1e-2
    profile = 0.5 * (1 + np.tanh((x - 0.5) / delta))
    assert np.max(np.abs(p.c_mol_m3 - profile)) < 1e-2
    assert np.max(np.abs(p.mu_J_mol)) < 1e-6


def test_sphere_conserves_mass_under_flux_and_dissipates_energy_without():
    mesh = Mesh(radius_m=1.0, cells=60, geometry="sphere")
    rng = np.random.default_rng(5)
    c0 = 0.5 + 0.05 * rng.standard_normal(mesh.cells)
    flux = 0.02
    p = ch(mesh, np.clip(c0 - 0.2, 0.05, 0.95), 1e-3)
    m0 = p.total_mol()
    p.advance(1.0, surface_flux_mol_m2_s=flux)
    expected = flux * 4 * np.pi * mesh.radius_m**2 * p.time_s
    assert p.time_s == pytest.approx(1.0, rel=1e-14)
    assert abs((p.total_mol() - m0) - expected) <= 1e-12 * p.total_mol()

    q = ch(mesh, c0, 1e-3)
    energies, masses = [q.free_energy_J(f_well)], [q.total_mol()]
    for t in np.linspace(0.5, 20.0, 40):
        q.advance(t)
        energies.append(q.free_energy_J(f_well))
        masses.append(q.total_mol())
    assert np.all(np.diff(energies) <= 1e-12 * abs(energies[0]))
    assert energies[-1] < 0.5 * energies[0]  # it did phase-separate
    assert np.ptp(masses) <= 1e-12 * masses[0]


def crank_surface_excess(tau, terms=60):
    """(c_s - c0) D / (j R) for constant flux j into a sphere: 3 tau + 1/5 - 2 sum exp(-l^2 tau)/l^2."""
    lam = [brentq(lambda x: np.tan(x) - x, n * np.pi + 1e-9, n * np.pi + np.pi / 2 - 1e-9)
           for n in range(1, terms + 1)]
    lam = np.array(lam)
    return 3 * tau + 0.2 - 2 * np.sum(np.exp(-lam**2 * tau) / lam**2)


def test_fickian_sphere_matches_constant_flux_series():
    radius, D, flux, c0 = 2e-6, 1e-14, 1e-5, 100.0
    mesh = Mesh(radius_m=radius, cells=200, geometry="sphere")
    p = FickianParticle(mesh, const(D), const(0.0), np.full(mesh.cells, c0), comm=MPI.COMM_WORLD,
                        rtol=1e-8, atol_mol_m3=1e-8, dt0_s=1e-3)
    t_scale = radius**2 / D
    for tau in (0.05, 0.1, 0.2):
        p.advance(tau * t_scale, surface_flux_mol_m2_s=flux)
        exact = c0 + flux * radius / D * crank_surface_excess(tau)
        assert abs(p.surface_concentration_mol_m3() - exact) / exact < 1e-4, tau
