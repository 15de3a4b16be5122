"""pbahpc.properties.voltage (Eq. 31, V(x); a bcc-Na reference relaxed here) and pbahpc.properties.structure
(RDF, angles, Na coordination, lattice classification, volume change) against constructed and analytic cases."""
from __future__ import annotations

import itertools
from typing import NamedTuple

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from ase.calculators.calculator import BaseCalculator
from ase.calculators.lj import LennardJones
from ase.neighborlist import neighbor_list
from scipy.optimize import minimize_scalar

from pbahpc.atomistic.structure import C_N_A, FE_C_A, build_pba
from pbahpc.properties import structure as S
from pbahpc.properties import voltage as V


# ------------------------------------------------------------------------------------------ voltage
def test_eq31_literal_numbers():
    # E_f - E_i = -10.5 eV for 3 Na, E_Na = -1.3 eV/atom: V = -(-10.5 + 3.9) / 3 = 2.2 V
    assert V.insertion_voltage_V(-100.0, -110.5, 3, -1.3) == pytest.approx(2.2, abs=1e-12)
    with pytest.raises(ValueError):
        V.insertion_voltage_V(-100.0, -110.5, 0, -1.3)


@pytest.mark.parametrize("slope", [-4.5, -1.0, 0.7])
def test_average_voltage_linear_energy_is_constant(slope):
    """E(x) = E0 + s x per formula unit -> V = -(s - mu_Na) for every pair of contents, either order."""
    E0, mu_na = -50.0, -1.3

    def E(x):
        return E0 + slope * x

    expected = -(slope - mu_na)
    for x1, x2 in [(0.0, 2.0), (0.25, 0.5), (1.2, 1.9), (0.0, 0.02)]:
        assert V.average_voltage(E(x1), x1, E(x2), x2, mu_na) == pytest.approx(expected, abs=1e-9)
        assert V.average_voltage(E(x2), x2, E(x1), x1, mu_na) == pytest.approx(expected, abs=1e-9)
        # the same states as whole 2x2x2 cells (32 formula units)
        n_fu = 32
        assert V.average_voltage(n_fu * E(x1), x1, n_fu * E(x2), x2, mu_na, formula_units=n_fu) == \
            pytest.approx(expected, abs=1e-9)
    # sign: inserting Na lowers the energy more than the metal binds it -> positive voltage
    assert (expected > 0) == (slope < mu_na)
    with pytest.raises(ValueError):
        V.average_voltage(E(1.0), 1.0, E(1.0), 1.0, mu_na)


def test_average_voltage_paper_scale():
    # a host that binds each Na 3.34 eV more strongly than bcc Na gives the paper's 3.34 V
    mu_na = -1.31
    E_low, E_high = -300.0, -300.0 + 2 * (mu_na - 3.34)
    assert V.average_voltage(E_low, 0.0, E_high, 2.0, mu_na) == pytest.approx(3.34)


def test_voltage_profile_from_G_and_mu():
    mu_na = -1.3
    a, b = -4.0, 0.35  # G = a x + b x^2 -> mu = a + 2 b x, exactly on any grid (second-order FD)
    x = np.sort(np.r_[0.0, 2.0, np.random.default_rng(1).uniform(0, 2, 15)])
    G = a * x + b * x**2
    np.testing.assert_allclose(V.chemical_potential_from_G(x, G), a + 2 * b * x, atol=1e-10)
    np.testing.assert_allclose(V.voltage_profile_from_G(x, G, mu_na), -(a + 2 * b * x - mu_na), atol=1e-10)
    np.testing.assert_allclose(V.voltage_profile_from_mu([-1.3, -4.0], mu_na), [0.0, 2.7])
    # the x-average of V(x) between two contents is Eq. 31 between the same two states
    xf = np.linspace(0.2, 1.7, 2001)
    Gf = a * xf + b * xf**2 + 0.1 * xf**3
    Vf = V.voltage_profile_from_G(xf, Gf, mu_na)
    mean_V = np.sum(0.5 * (Vf[1:] + Vf[:-1]) * np.diff(xf)) / (xf[-1] - xf[0])
    assert mean_V == pytest.approx(V.average_voltage(Gf[0], xf[0], Gf[-1], xf[-1], mu_na), abs=1e-6)
    with pytest.raises(ValueError):
        V.chemical_potential_from_G([0.0, 1.0, 0.5], [0.0, 1.0, 2.0])


# the metallic-Na reference relaxed with a calculator (production takes properties.na_reference_eV as a number)
NA_BCC_A_A = 4.23  # experimental lattice constant of bcc Na near 0 K (A), the default scan centre


class SodiumReference(NamedTuple):
    energy_eV_per_atom: float
    a_A: float | None  # relaxed conventional bcc lattice constant (A); None for a given number
    source: str


def bcc_sodium_energy_eV_per_atom(calculator: BaseCalculator, a_A: float, symbol: str = "Na") -> float:
    """Energy per atom (eV) of the 2-atom conventional bcc cell of lattice constant ``a_A`` (A)."""
    atoms: Atoms = bulk(symbol, "bcc", a=a_A, cubic=True)
    atoms.calc = calculator
    return float(atoms.get_potential_energy()) / len(atoms)


def relax_bcc_sodium(calculator: BaseCalculator, a_guess_A: float = NA_BCC_A_A, rel_window: float = 0.15,
                     n_scan: int = 31, xtol_A: float = 1e-6, symbol: str = "Na",
                     max_expand: int = 6) -> SodiumReference:
    """Relax the lattice constant of bcc Na with ``calculator``: 1-D scan, then bounded Brent refine.

    The energy per atom of the conventional cubic cell (atoms at the ideal bcc positions, which are
    fixed by symmetry, so only the lattice constant is free) is scanned on ``n_scan`` points over
    ``a_guess_A * (1 +- rel_window)``; if the lowest point lies on an edge the window is moved there
    (up to ``max_expand`` times). The minimum is then refined with ``scipy.optimize.minimize_scalar``
    (bounded Brent) between the scan neighbours of the lowest point, to ``xtol_A`` (A). Returns the
    energy per atom (eV) at the relaxed lattice constant (A). The scan protects against a local
    minimum next to the guess; a calculator whose energy jumps (shifted, truncated pair potentials
    whose neighbour shells cross the cutoff) may still put the refined minimum at such a jump.
    """
    if n_scan < 5:
        raise ValueError("n_scan must be at least 5")

    def energy(a: float) -> float:
        return bcc_sodium_energy_eV_per_atom(calculator, a, symbol)

    centre = float(a_guess_A)
    for _ in range(max_expand + 1):
        grid = centre * (1 + np.linspace(-rel_window, rel_window, n_scan))
        e = np.array([energy(a) for a in grid])
        k = int(np.argmin(e))
        if 0 < k < n_scan - 1:
            break
        centre = float(grid[k])
    else:
        raise RuntimeError(f"no minimum of the bcc {symbol} energy found near a = {a_guess_A} A")
    res = minimize_scalar(energy, bounds=(grid[k - 1], grid[k + 1]), method="bounded",
                          options={"xatol": xtol_A})
    a_min, e_min = (float(res.x), float(res.fun)) if res.fun <= e[k] else (float(grid[k]), float(e[k]))
    return SodiumReference(e_min, a_min, f"bcc {symbol} relaxed with {type(calculator).__name__}")


def sodium_reference(reference: float | BaseCalculator | SodiumReference, **relax_kwargs) -> SodiumReference:
    """The metallic-Na reference E_Na: a number (eV/atom), or relaxed bcc Na with an ASE calculator.

    ``relax_kwargs`` go to :func:`relax_bcc_sodium` (``a_guess_A``, ``rel_window``, ``n_scan``, ...).
    Use the same potential as for the host energies; a DFT value is only meaningful with DFT host
    energies (the paper uses DFT E_Na with MTP host energies that are fitted to the same DFT).
    """
    if isinstance(reference, SodiumReference):
        return reference
    if isinstance(reference, BaseCalculator):
        return relax_bcc_sodium(reference, **relax_kwargs)
    if relax_kwargs:
        raise TypeError("relaxation options only apply to a calculator reference")
    value = float(reference)
    if not np.isfinite(value):
        raise ValueError(f"reference energy must be finite, not {reference!r}")
    return SodiumReference(value, None, "given")


def _bcc_lattice_sums(nmax: int = 30) -> tuple[float, float]:
    """sum_j (d_nn / r_j)^12 and ^6 over the infinite bcc lattice (direct sum, converged to < 1e-6)."""
    g = np.arange(-nmax, nmax + 1, dtype=float)
    p = np.stack(np.meshgrid(g, g, g, indexing="ij"), -1).reshape(-1, 3)
    r = np.linalg.norm(np.vstack([p, p + 0.5]), axis=1)
    r = r[r > 0] / (np.sqrt(3) / 2)
    return float(np.sum(r**-12)), float(np.sum(r**-6))


def test_sodium_reference_number_and_lj_bcc():
    ref = sodium_reference(-1.31)
    assert ref.energy_eV_per_atom == -1.31 and ref.a_A is None
    with pytest.raises(TypeError):
        sodium_reference(-1.31, n_scan=11)

    sigma, eps, rc = 3.43, 0.05, 8 * 3.43  # A, eV, A: a bcc minimum near Na's 4.23 A
    A12, A6 = _bcc_lattice_sums()
    assert (A12, A6) == (pytest.approx(9.11418, abs=1e-4), pytest.approx(12.2536, abs=1e-4))
    a_exact = 2 / np.sqrt(3) * (2 * A12 / A6) ** (1 / 6) * sigma  # infinite-range LJ bcc minimum
    calc = LennardJones(sigma=sigma, epsilon=eps, rc=rc)
    ref = sodium_reference(calc, a_guess_A=3.9)  # start 8 % off: the scan must find the minimum
    # truncation at 8 sigma moves the minimum by ~2e-4 relative; the 1-D scan alone is 1 % coarse
    assert ref.a_A == pytest.approx(a_exact, rel=4e-4)
    # dense scan of the same calculator around it
    grid = np.linspace(ref.a_A - 0.01, ref.a_A + 0.01, 21)
    e = np.array([bcc_sodium_energy_eV_per_atom(calc, a) for a in grid])
    assert ref.energy_eV_per_atom <= e.min() + 1e-12
    assert abs(grid[np.argmin(e)] - ref.a_A) <= 0.0005 + 1e-9
    # energy per atom against an independent lattice sum with ASE's shifted, truncated pair energy

    def u(r):
        return 4 * eps * ((sigma / r) ** 12 - (sigma / r) ** 6)

    g = np.arange(-8, 9, dtype=float)
    p = np.stack(np.meshgrid(g, g, g, indexing="ij"), -1).reshape(-1, 3)
    r = np.linalg.norm(np.vstack([p, p + 0.5]), axis=1) * ref.a_A
    r = r[(r > 0) & (r < rc)]
    assert ref.energy_eV_per_atom == pytest.approx(0.5 * np.sum(u(r) - u(rc)), rel=1e-9)
    assert ref.energy_eV_per_atom == pytest.approx(-eps * A6**2 / (2 * A12), rel=0.01)


# -------------------------------------------------------------------------------------------- RDF
def test_rdf_ideal_gas_is_one():
    rng = np.random.default_rng(7)
    L, n, n_frames = 15.0, 300, 30
    frames = [Atoms(["Na"] * n + ["N"] * n, positions=rng.uniform(0, L, (2 * n, 3)), cell=[L] * 3, pbc=True)
              for _ in range(n_frames)]
    edges = np.linspace(0, 7.0, 36)
    shell = 4 / 3 * np.pi * np.diff(edges**3)
    for pair, pairs_per_frame, factor in [(("Na", "N"), n * n, 1.0), (("N", "N"), n * (n - 1), 2.0)]:
        r, g = S.rdf(frames, pair=pair, r_max_A=7.0, bins=35)
        np.testing.assert_allclose(r, 0.5 * (edges[1:] + edges[:-1]))
        expected = pairs_per_frame / L**3 * shell * n_frames  # ordered pairs per bin
        ok = expected > 200
        z = (g - 1) / np.sqrt(factor / expected)  # like pairs are counted twice
        assert np.all(np.abs(z[ok]) < 5), (pair, z[ok])
        w = expected[ok]
        assert np.sum(w * g[ok]) / np.sum(w) == pytest.approx(1.0, abs=3e-3)


@pytest.mark.parametrize("lattice, a, d1, z1, d2, z2", [
    ("fcc", 3.6, 3.6 / np.sqrt(2), 12, 3.6, 6),
    ("sc", 3.0, 3.0, 6, 3.0 * np.sqrt(2), 12),
])
def test_rdf_crystal_first_peak_and_coordination(lattice, a, d1, z1, d2, z2):
    atoms = bulk("Cu", lattice, a=a, cubic=True).repeat(3) if lattice == "fcc" else \
        bulk("Po", "sc", a=a).repeat(4)
    sym = atoms[0].symbol
    r, g = S.rdf([atoms, atoms], pair=(sym, sym), r_max_A=5.1, bins=200)
    dr = r[1] - r[0]
    assert abs(r[np.argmax(g)] - d1) <= dr / 2
    rho = (len(atoms) - 1) / atoms.get_volume()  # the rdf's like-pair convention
    n_r = S.running_coordination(r, g, rho)
    between = (d1 + d2) / 2
    assert n_r[np.searchsorted(r, between)] == pytest.approx(z1, abs=1e-9)
    assert n_r[np.searchsorted(r, d2 + 0.1)] == pytest.approx(z1 + z2, abs=1e-9)
    assert np.all(g[r < d1 - dr] == 0)


def test_rdf_triclinic_long_range_matches_ase_neighbor_list():
    """Pair counts in a sheared, rattled cell with r_max beyond the cell width, against ASE."""
    atoms = build_pba(1, x_na=1.0, rhombohedral_deg=4, rng=np.random.default_rng(2))
    atoms.rattle(0.2, seed=5)
    sym = np.array(atoms.get_chemical_symbols())
    edges = np.linspace(0, 12.0, 61)
    shell = 4 / 3 * np.pi * np.diff(edges**3)
    i, j, d = neighbor_list("ijd", atoms, 12.0)
    for A, B in (("Na", "N"), ("Na", "Na"), ("Fe", "Mn")):
        r, g = S.rdf(atoms, pair=(A, B), r_max_A=12.0, bins=60)
        ref = np.histogram(d[(sym[i] == A) & (sym[j] == B)], bins=edges)[0]
        n_a, n_b = np.sum(sym == A), np.sum(sym == B) - (A == B)
        np.testing.assert_allclose(g * n_a * n_b / atoms.get_volume() * shell, ref, atol=1e-9)


def test_rdf_pba_fe_c_first_shell():
    atoms = build_pba(2, x_na=1.0, rng=np.random.default_rng(0))
    r, g = S.rdf(atoms, pair=("Fe", "C"), r_max_A=3.0, bins=140)
    assert abs(r[np.argmax(g)] - FE_C_A) <= (r[1] - r[0]) / 2
    n_c = sum(s == "C" for s in atoms.get_chemical_symbols())
    n_r = S.running_coordination(r, g, n_c / atoms.get_volume())
    assert n_r[-1] == pytest.approx(6.0, abs=1e-9)
    with pytest.raises(ValueError):
        S.rdf(atoms, pair=("Li", "N"))


# ----------------------------------------------------------------------------------------- angles
def test_angles_ideal_pba_single_peak_at_180():
    for rh in (0.0, 2.0):  # a homogeneous (affine) strain keeps the chains straight
        atoms = build_pba(2, x_na=0, rhombohedral_deg=rh)
        for angles in (S.mn_n_c_angles(atoms), S.fe_c_n_angles(atoms)):
            assert len(angles) == 24 * 8  # one per cyanide
            np.testing.assert_allclose(angles, 180.0, atol=1e-6)
    centres, h = S.angle_histogram(S.mn_n_c_angles(build_pba(1, x_na=0)), bins=90)
    assert np.argmax(h) == len(h) - 1 and np.count_nonzero(h) == 1
    assert np.sum(h) * (centres[1] - centres[0]) == pytest.approx(1.0)


def test_angles_of_a_bent_chain():
    atoms = build_pba(1, x_na=0)
    sym = np.array(atoms.get_chemical_symbols())
    pos = atoms.positions
    # the N of the chain from the Fe at the origin along +x: Fe (0) - C (1.92) - N (3.07) - Mn (5.15)
    k = int(np.flatnonzero((sym == "N") & np.all(np.isclose(pos, [FE_C_A + C_N_A, 0, 0]), axis=1))[0])
    delta = 0.4
    atoms.positions[k] += [0.0, delta, 0.0]
    a_mn_n = 10.3 / 2 - FE_C_A - C_N_A
    v_mn, v_c = np.array([a_mn_n, -delta]), np.array([-C_N_A, -delta])
    mnc = np.degrees(np.arccos(v_mn @ v_c / np.linalg.norm(v_mn) / np.linalg.norm(v_c)))
    fcn = 180.0 - np.degrees(np.arctan(delta / C_N_A))
    for angles, bent in ((S.mn_n_c_angles(atoms), mnc), (S.fe_c_n_angles(atoms), fcn)):
        off = angles[np.abs(angles - 180.0) > 1e-6]
        assert len(angles) == 24 and len(off) == 1
        assert off[0] == pytest.approx(bent, abs=1e-9)
    assert mnc < fcn < 180.0  # bending at N tilts the Mn-N bond more


def test_angles_same_species_ends():
    # C-Fe-C around octahedral Fe: 12 cis (90) and 3 trans (180) pairs per Fe
    angles = S.bond_angles(build_pba(1, x_na=0), ("C", "Fe", "C"))
    assert np.sum(np.isclose(angles, 90.0)) == 4 * 12 and np.sum(np.isclose(angles, 180.0)) == 4 * 3


# ----------------------------------------------------------------------------------- coordination
def _brute_force_coordination(atoms: Atoms, r_cut: float) -> np.ndarray:
    sym = np.array(atoms.get_chemical_symbols())
    cell = atoms.cell.array
    shifts = [np.array(s) @ cell for s in itertools.product((-1, 0, 1), repeat=3)]
    out = []
    for i in np.flatnonzero(sym == "Na"):
        n = 0
        for j in np.flatnonzero(sym == "N"):
            for s in shifts:
                if np.linalg.norm(atoms.positions[j] + s - atoms.positions[i]) < r_cut:
                    n += 1
        out.append(n)
    return np.array(out)


def test_na_coordination_matches_brute_force():
    ideal = build_pba(1, x_na=2)  # 8 Na at the cage centres: 12 N at 3.675 A each
    np.testing.assert_array_equal(S.na_coordination(ideal, 3.5), 0)
    np.testing.assert_array_equal(S.na_coordination(ideal, 3.7), 12)
    distorted = build_pba(1, x_na=1.5, rhombohedral_deg=3, rng=np.random.default_rng(3))
    distorted.rattle(0.35, seed=11)
    for atoms in (ideal, distorted):
        for r_cut in (3.5, 3.7, 4.2):
            np.testing.assert_array_equal(S.na_coordination(atoms, r_cut), _brute_force_coordination(atoms, r_cut))
    counts = S.na_coordination(distorted, 3.7)
    assert len(np.unique(counts)) > 1  # the check above is not trivial
    stats = S.coordination_distribution([counts, S.na_coordination(ideal, 3.7)])
    pooled = np.r_[counts, np.full(8, 12)]
    assert stats.mean == pytest.approx(pooled.mean()) and stats.std == pytest.approx(pooled.std())
    assert np.sum(stats.fraction) == pytest.approx(1.0)
    assert stats.fraction[stats.values == 12][0] == pytest.approx(np.mean(pooled == 12))
    assert len(S.na_coordination(build_pba(1, x_na=0), 3.5)) == 0


# ----------------------------------------------------------------------------- lattice and volume
def test_lattice_parameters_and_classification():
    cubic = build_pba(2)
    assert S.pba_repeat(cubic) == (2, 2, 2)
    p = S.lattice_parameters(cubic)
    assert p == pytest.approx((10.3, 10.3, 10.3, 90.0, 90.0, 90.0))
    assert S.lattice_parameters(cubic, repeat=2) == pytest.approx(p)
    assert S.classify_cell(cubic) == "cubic"

    rh = build_pba(2, rhombohedral_deg=2)
    p = S.lattice_parameters(rh)
    assert p[3:] == pytest.approx((92.0, 92.0, 92.0))
    assert p[0] == pytest.approx(p[1]) and p[0] == pytest.approx(p[2])
    assert S.classify_cell(rh) == "rhombohedral"
    assert S.classify_cell(build_pba(2, rhombohedral_deg=-1.0)) == "rhombohedral"
    assert S.classify_cell(build_pba(2, rhombohedral_deg=0.3)) == "cubic"  # within the 0.5 deg tolerance

    tet = build_pba(2)
    tet.set_cell(tet.cell.array @ np.diag([1.0, 1.0, 1.03]), scale_atoms=True)
    assert S.pba_repeat(tet) == (2, 2, 2)
    assert S.lattice_parameters(tet)[2] == pytest.approx(1.03 * 10.3)
    assert S.classify_cell(tet) == "tetragonal"

    ortho = build_pba(2)
    ortho.set_cell(ortho.cell.array @ np.diag([1.0, 1.02, 1.04]), scale_atoms=True)
    assert S.classify_cell(ortho) == "other"
    # a 1 x 1 x 3 interface-style cell: the repeat is inferred per axis
    long = build_pba(1).repeat((1, 1, 3))
    assert S.pba_repeat(long) == (1, 1, 3)
    assert S.classify_cell(long) == "cubic"
    assert S.classify_cell(long, repeat=1) == "tetragonal"  # c of the whole cell is 3 a


def test_volume_change_isotropic_strain():
    small = build_pba(1)
    big = build_pba(2)
    big.set_cell(big.cell.array * 1.02, scale_atoms=True)
    assert S.volume_per_formula_unit_A3(small) == pytest.approx(10.3**3 / 4)
    assert S.volume_change_percent(small, big) == pytest.approx(100 * (1.02**3 - 1))
    assert S.volume_change_percent(small, big) == pytest.approx(6.12, abs=0.005)
    assert S.volume_change_percent(big, small) == pytest.approx(100 * (1.02**-3 - 1))
    assert S.volume_change_percent(100.0, 112.0) == pytest.approx(12.0)
    # Na content does not count as formula units
    assert S.volume_change_percent(build_pba(1, x_na=2), small) == pytest.approx(0.0, abs=1e-12)
