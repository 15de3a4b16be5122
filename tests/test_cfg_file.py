"""pbahpc.mlip.cfg_file: round trips (ours <-> ours, ours <-> motep), periodic and non-periodic cells,
absent properties, Feature lines, and line-numbered refusal of broken files."""
from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from motep.io.mlip.cfg import read_cfg as motep_read_cfg
from motep.io.mlip.cfg import write_cfg as motep_write_cfg

from pbahpc.mlip.cfg_file import CfgError, format_cfg, parse_cfg, read_cfg, write_cfg

SPECIES = ("Na", "Mn", "Fe", "C", "N")


def labelled(rng, n: int = 7, periodic: bool = True, forces: bool = True, stress: bool = True,
             energy: bool = True) -> Atoms:
    cell = np.diag([6.0, 7.0, 8.0]) + rng.uniform(-0.5, 0.5, (3, 3)) if periodic else None
    atoms = Atoms([SPECIES[t] for t in rng.integers(0, len(SPECIES), n)], positions=rng.uniform(-3, 9, (n, 3)),
                  cell=cell, pbc=periodic)
    results = {}
    if energy:
        results["energy"] = float(rng.normal(-50, 10))
    if forces:
        results["forces"] = rng.normal(size=(n, 3))
    if stress:
        results["stress"] = rng.normal(scale=0.01, size=6)
    atoms.calc = SinglePointCalculator(atoms, **results)
    return atoms


def rounded(x, digits: int = 10):
    return np.vectorize(lambda v: float(f"{v:.{digits}f}"))(np.asarray(x, dtype=float))


def test_round_trip_ours_is_exact_to_written_precision(tmp_path):
    rng = np.random.default_rng(0)
    images = [labelled(rng), labelled(rng, periodic=False, stress=False), labelled(rng, n=1)]
    path = tmp_path / "a.cfg"
    write_cfg(path, images, SPECIES)
    back = read_cfg(path, SPECIES)
    assert len(back) == 3
    for a, b in zip(images, back):
        assert a.get_chemical_symbols() == b.get_chemical_symbols()
        assert list(b.pbc) == list(a.pbc)
        np.testing.assert_array_equal(b.positions, rounded(a.positions))
        np.testing.assert_array_equal(b.cell.array, rounded(a.cell.array))
        np.testing.assert_array_equal(b.get_forces(), rounded(a.get_forces()))
        assert b.get_potential_energy() == rounded(a.get_potential_energy())
    # stress goes through PlusStress = -V stress (V of the written cell): exact up to the division by V
    written = rounded(-images[0].get_stress() * images[0].get_volume())
    np.testing.assert_allclose(-back[0].get_stress() * back[0].get_volume(), written, rtol=1e-15, atol=0)
    # a second write of what was read reproduces the file byte for byte
    assert format_cfg(back, SPECIES) == path.read_text()


def test_ours_to_motep_and_back(tmp_path):
    rng = np.random.default_rng(1)
    images = [labelled(rng), labelled(rng, n=3)]
    ours = tmp_path / "ours.cfg"
    write_cfg(ours, images, SPECIES)
    theirs = motep_read_cfg(ours, index=":", species=list(SPECIES))
    for a, b in zip(images, theirs):
        assert a.get_chemical_symbols() == b.get_chemical_symbols()
        np.testing.assert_allclose(b.positions, a.positions, atol=1e-9)
        np.testing.assert_allclose(b.get_forces(), a.get_forces(), atol=1e-9)
        np.testing.assert_allclose(b.get_potential_energy(), a.get_potential_energy(), atol=1e-9)
        np.testing.assert_allclose(b.get_stress(), a.get_stress(), atol=1e-10)

    motep_file = tmp_path / "motep.cfg"
    motep_write_cfg(motep_file, images, species=list(SPECIES))
    back = read_cfg(motep_file, SPECIES)
    for a, b in zip(images, back):
        assert a.get_chemical_symbols() == b.get_chemical_symbols()
        np.testing.assert_allclose(b.positions, a.positions, atol=1e-6)  # motep writes 6 decimals
        np.testing.assert_allclose(b.get_forces(), a.get_forces(), atol=1e-6)
        np.testing.assert_allclose(b.get_potential_energy(), a.get_potential_energy(), atol=1e-11)
        np.testing.assert_allclose(b.get_stress() * a.get_volume(), a.get_stress() * a.get_volume(), atol=1e-5)


def test_plus_stress_is_minus_volume_times_ase_stress():
    rng = np.random.default_rng(2)
    atoms = labelled(rng, n=2)
    text = format_cfg(atoms, SPECIES)
    lines = text.splitlines()
    plus = np.array(lines[lines.index(" PlusStress:  xx yy zz yz xz xy") + 1].split(), dtype=float)
    np.testing.assert_allclose(plus, -atoms.get_stress() * atoms.get_volume(), atol=1e-9)


def test_non_periodic_has_no_supercell_and_no_stress():
    rng = np.random.default_rng(3)
    atoms = labelled(rng, periodic=False)
    text = format_cfg(atoms, SPECIES)
    assert "Supercell" not in text and "PlusStress" not in text
    (back,) = parse_cfg(text, SPECIES)
    assert not back.pbc.any()
    assert "stress" not in back.calc.results
    (theirs,) = motep_read_cfg(__import__("io").StringIO(text), index=":", species=list(SPECIES))
    assert not theirs.pbc.any()


def test_mixed_periodicity_is_refused():
    atoms = Atoms("Na", cell=[3, 3, 3], pbc=[True, True, False])
    with pytest.raises(ValueError, match="periodic in all directions or none"):
        format_cfg(atoms, SPECIES)


def test_optional_properties_absent():
    rng = np.random.default_rng(4)
    bare = labelled(rng, forces=False, stress=False, energy=False)
    text = format_cfg(bare, SPECIES)
    assert "fx" not in text and "Energy" not in text and "PlusStress" not in text
    (back,) = parse_cfg(text, SPECIES)
    assert back.calc is None
    (only_energy,) = parse_cfg(format_cfg(labelled(rng, forces=False, stress=False), SPECIES), SPECIES)
    assert set(only_energy.calc.results) == {"energy"}
    no_calc = Atoms("NaC", positions=[[0, 0, 0], [1, 1, 1]])
    (back,) = parse_cfg(format_cfg(no_calc, SPECIES), SPECIES)
    np.testing.assert_array_equal(back.positions, no_calc.positions)


def test_features_and_extra_columns():
    text = """BEGIN_CFG
 Size
    2
 Supercell
    5 0 0
    0 5 0
    0 0 5
 AtomData:  id type direct_x direct_y direct_z fx fy fz nbh_grades
    1 1 0.0 0.0 0.0 0.1 0.2 0.3 1.5
    2 4 0.5 0.5 0.5 -0.1 -0.2 -0.3 0.25
 Energy
    -3.5
 PlusStress:  xx yy zz yz xz xy
    1 2 3 4 5 6
 Feature   MV_grade\t1.5
 Feature   from VASP run 7
END_CFG
"""
    (atoms,) = parse_cfg(text, SPECIES)
    assert atoms.get_chemical_symbols() == ["Mn", "N"]
    np.testing.assert_allclose(atoms.positions[1], [2.5, 2.5, 2.5])
    np.testing.assert_array_equal(atoms.arrays["nbh_grades"], [1.5, 0.25])
    np.testing.assert_allclose(atoms.get_stress(), -np.arange(1, 7) / 125.0)
    assert atoms.info["features"] == {"MV_grade": "1.5", "from": "VASP run 7"}
    again = format_cfg(atoms, SPECIES)
    assert "Feature   MV_grade\t1.5\n Feature   from\tVASP run 7\n" in again
    assert "nbh_grades" in again
    (skipped,) = parse_cfg(text, SPECIES, features=False)
    assert "features" not in skipped.info


@pytest.mark.parametrize(("text", "line", "message"), [
    ("BEGIN_CFG\n Size\n  two\nEND_CFG\n", 3, "Size: expected a non-negative integer"),
    ("BEGIN_CFG\n Size\n 1\n AtomData: id type cartes_x cartes_y cartes_z\n 1 0 0 0\nEND_CFG\n", 5,
     "expected 5 numbers"),
    ("BEGIN_CFG\n Size\n 1\n AtomData: id type cartes_x cartes_y cartes_z\n 1 7 0 0 0\nEND_CFG\n", 5,
     "type 7 is not an index"),
    ("BEGIN_CFG\n Size\n 1\n AtomData: id type cartes_x cartes_y cartes_z\n 1 0 0 x 0\nEND_CFG\n", 5,
     "not a number"),
    ("BEGIN_CFG\n Size\n 1\n AtomData: id type cartes_x cartes_y cartes_z\n 1 0 0 0 0\n", 5, "file ends"),
    ("BEGIN_CFG\n Size\n 0\n Bogus\nEND_CFG\n", 4, "unknown section 'Bogus'"),
    ("\n\nSize\n", 3, "expected BEGIN_CFG"),
    ("BEGIN_CFG\n AtomData: id type cartes_x cartes_y cartes_z\nEND_CFG\n", 2, "AtomData before Size"),
])
def test_broken_file_names_the_line(tmp_path, text, line, message):
    path = tmp_path / "broken.cfg"
    path.write_text(text)
    with pytest.raises(CfgError) as caught:
        read_cfg(path, SPECIES)
    assert str(caught.value).startswith(f"{path}:{line}: ")
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_unknown_element_is_refused():
    with pytest.raises(ValueError, match="not in the species"):
        format_cfg(Atoms("Cu"), SPECIES)
