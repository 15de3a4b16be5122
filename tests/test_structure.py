"""The PBA structure builder: composition, geometry, Na sites, distortion, file round trip, speed."""
from __future__ import annotations

import time

import numpy as np
import pytest
from ase.geometry import get_distances
from ase.neighborlist import neighbor_list

from pbahpc.atomistic.structure import build_pba, host_from_file, na_sites, pba_cell


def counts(atoms) -> dict[str, int]:
    symbols, n = np.unique(atoms.get_chemical_symbols(), return_counts=True)
    return dict(zip(symbols.tolist(), n.tolist()))


def nearest(atoms, a: str, b: str, cutoff: float = 3.0) -> np.ndarray:
    """Distance from every ``a`` atom to its nearest ``b`` atom."""
    i, j, d = neighbor_list("ijd", atoms, cutoff)
    sym = np.array(atoms.get_chemical_symbols())
    m = (sym[i] == a) & (sym[j] == b)
    out = np.full(len(atoms), np.inf)
    np.minimum.at(out, i[m], d[m])
    return out[sym == a]


def test_conventional_cell_composition():
    cell = pba_cell(10.3)
    assert counts(cell) == {"Fe": 4, "Mn": 4, "C": 24, "N": 24}
    assert np.allclose(cell.cell.array, np.eye(3) * 10.3) and cell.pbc.all()
    assert np.all((cell.get_scaled_positions() >= 0) & (cell.get_scaled_positions() < 1))


@pytest.mark.parametrize("n", [1, 2, 3])
def test_supercells_scale_as_n_cubed(n):
    atoms = build_pba(n)
    assert counts(atoms) == {"Fe": 4 * n**3, "Mn": 4 * n**3, "C": 24 * n**3, "N": 24 * n**3}
    assert len(na_sites(atoms)) == 8 * n**3
    assert np.isclose(atoms.get_volume(), (10.3 * n) ** 3)


@pytest.mark.parametrize("a", [10.3, 10.6])
def test_chain_bond_lengths(a):
    atoms = build_pba(2, a_A=a)
    assert np.allclose(nearest(atoms, "C", "Fe"), 1.92)
    assert np.allclose(nearest(atoms, "C", "N"), 1.15)
    assert np.allclose(nearest(atoms, "N", "Mn"), a / 2 - 3.07)
    i, j = neighbor_list("ij", atoms, 2.2 if a < 10.5 else 2.4)
    sym = np.array(atoms.get_chemical_symbols())
    # every metal has six chain neighbours (Fe: C, Mn: N), every C and N two
    assert np.all(np.bincount(i, minlength=len(atoms))[np.isin(sym, ["Fe", "Mn"])] == 6)
    assert np.all(np.bincount(i, minlength=len(atoms))[np.isin(sym, ["C", "N"])] == 2)
    assert set(zip(sym[i], sym[j])) == {("Fe", "C"), ("C", "Fe"), ("C", "N"), ("N", "C"), ("N", "Mn"), ("Mn", "N")}


def test_sites_form_a_simple_cubic_lattice_of_spacing_half_a():
    atoms = build_pba(2, a_A=10.3)
    sites = na_sites(atoms)
    assert len(np.unique(np.round(sites, 6), axis=0)) == 64
    k = 2 * sites / 10.3 - 0.5  # sites at (k + 1/2) a/2 with integer k
    assert np.allclose(k, np.round(k))
    cage = build_pba(2, n_na=64)
    i, d = neighbor_list("id", cage[[s == "Na" for s in cage.get_chemical_symbols()]], 6.0)
    assert np.allclose(d, 5.15) and np.all(np.bincount(i) == 6)
    # the centre of a cage: 4 Fe and 4 Mn at a sqrt(3)/4, 24 C/N near 3.7 A
    assert np.allclose(np.sort(nearest(cage, "Na", "Fe", 5.0)), 10.3 * np.sqrt(3) / 4)
    assert np.allclose(np.sort(nearest(cage, "Na", "Mn", 5.0)), 10.3 * np.sqrt(3) / 4)


def test_sites_of_a_rattled_framework_stay_at_the_cage_centres():
    atoms = build_pba(2)
    ideal = na_sites(atoms)
    atoms.rattle(0.1, seed=3)
    assert np.abs(na_sites(atoms) - ideal).max() < 0.3


@pytest.mark.parametrize("n, x, expected", [(1, 1.0, 4), (1, 2.0, 8), (2, 0.5, 16), (2, 0.0, 0), (3, 1.37, 148)])
def test_x_na_sets_the_sodium_count(n, x, expected):
    atoms = build_pba(n, x_na=x, rng=np.random.default_rng(0))
    assert counts(atoms).get("Na", 0) == expected == round(x * 4 * n**3)
    assert atoms.get_chemical_symbols()[56 * n**3:] == ["Na"] * expected  # inserted ions last


def test_bad_compositions_are_refused():
    with pytest.raises(ValueError):
        build_pba(1, x_na=2.5)
    with pytest.raises(ValueError):
        build_pba(1, n_na=3, x_na=1.0)
    with pytest.raises(ValueError):
        build_pba(1, n_na=2, arrangement="ordered")
    with pytest.raises(ValueError):
        pba_cell(6.0)


def test_random_arrangement_is_reproducible_from_the_seed():
    a = build_pba(2, x_na=1.0, rng=np.random.default_rng(42))
    b = build_pba(2, x_na=1.0, rng=np.random.default_rng(42))
    c = build_pba(2, x_na=1.0, rng=np.random.default_rng(43))
    assert np.array_equal(a.positions, b.positions)
    assert not np.allclose(a.positions, c.positions)
    # every Na sits on a distinct cage centre
    na = a.positions[np.array(a.get_chemical_symbols()) == "Na"]
    sites = na_sites(build_pba(2))
    dist = np.linalg.norm(na[:, None] - sites[None], axis=2)
    assert np.allclose(dist.min(axis=1), 0.0, atol=1e-9) and len(set(dist.argmin(axis=1))) == len(na)


def test_first_arrangement_fills_sites_in_order():
    atoms = build_pba(2, n_na=5, arrangement="first", inserted="K")
    assert np.allclose(atoms.positions[-5:], na_sites(build_pba(2))[:5])
    assert atoms.get_chemical_symbols()[-5:] == ["K"] * 5


@pytest.mark.parametrize("deg", [1.5, -2.0])
def test_rhombohedral_distortion_sets_the_cell_angles(deg):
    cubic = build_pba(2, x_na=1.0, rng=np.random.default_rng(1))
    atoms = build_pba(2, x_na=1.0, rng=np.random.default_rng(1), rhombohedral_deg=deg)
    lengths, angles = atoms.cell.cellpar()[:3], atoms.cell.cellpar()[3:]
    assert np.allclose(angles, 90.0 + deg) and np.allclose(lengths, lengths[0])
    assert np.isclose(atoms.get_volume(), cubic.get_volume())  # a pure shear along [111]
    assert np.allclose(atoms.get_scaled_positions(), cubic.get_scaled_positions())
    # the Na still sits on the (sheared) cage centres
    na = atoms.positions[-16:]
    sites = na_sites(atoms[:-16])
    assert np.allclose(get_distances(na, sites, cell=atoms.cell, pbc=True)[1].min(axis=1), 0.0, atol=1e-8)


def test_host_from_file_round_trip(tmp_path):
    atoms = build_pba(2, x_na=1.2, rng=np.random.default_rng(7), rhombohedral_deg=1.0)
    path = tmp_path / "pba.extxyz"
    atoms.write(path)
    host, sites = host_from_file(path)
    framework = atoms[[s != "Na" for s in atoms.get_chemical_symbols()]]
    assert host.get_chemical_symbols() == framework.get_chemical_symbols()
    assert np.allclose(host.positions, framework.positions) and np.allclose(host.cell, atoms.cell)
    assert np.allclose(sites, atoms.positions[-len(sites):]) and len(sites) == round(1.2 * 32)
    # an empty host gives the cage centres; another inserted species is honoured
    framework.write(tmp_path / "empty.extxyz")
    host, sites = host_from_file(tmp_path / "empty.extxyz")
    assert len(host) == len(framework) and np.allclose(sites, na_sites(framework))
    k = build_pba(1, n_na=3, arrangement="first", inserted="K")
    k.write(tmp_path / "k.extxyz")
    host, sites = host_from_file(tmp_path / "k.extxyz", inserted="K")
    assert len(host) == 56 and np.allclose(sites, k.positions[-3:])


def test_paper_sized_cell_builds_in_seconds():
    t = time.perf_counter()
    atoms = build_pba(8, x_na=2.0)
    elapsed = time.perf_counter() - t
    assert counts(atoms) == {"Fe": 2048, "Mn": 2048, "C": 12288, "N": 12288, "Na": 4096}
    assert len(atoms) - 4096 == 28672 and np.allclose(atoms.cell.lengths(), 82.4)
    assert elapsed < 10.0, elapsed
