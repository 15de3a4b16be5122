"""Pre-training data (pbahpc.mlip.dataset): readers, training-set writer, oracle MD."""
from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms, units
from ase.calculators.singlepoint import SinglePointCalculator

from pbahpc.mlip.cfg_file import CfgError
from pbahpc.mlip.dataset import (DEFAULT_SPECIES, detect_format, generate_oracle_md, parse_ml_ab,
                                 read_labelled, write_training_set)
from pbahpc.oracle.teacher import TeacherCalculator

RTOL = 1e-12


def labelled(seed: int = 0) -> list[Atoms]:
    """Two periodic configurations (different sizes and elements) with awkward label values."""
    rng = np.random.default_rng(seed)
    out = []
    for symbols in (["Na", "Fe", "C", "N"], ["Mn", "Fe", "C", "N", "Na", "Na", "C"]):
        cell = np.diag([7.3, 8.1, 9.7]) + rng.normal(0, 0.2, (3, 3))
        atoms = Atoms(symbols, positions=rng.uniform(0, 7, (len(symbols), 3)), cell=cell, pbc=True)
        atoms.calc = SinglePointCalculator(atoms, energy=float(rng.normal(-123.456, 10)),
                                           forces=rng.normal(0, 1.3, (len(symbols), 3)),
                                           stress=rng.normal(0, 0.01, 6))
        out.append(atoms)
    return out


def assert_same_labels(got: list[Atoms], want: list[Atoms]) -> None:
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g.get_chemical_symbols() == w.get_chemical_symbols()
        np.testing.assert_allclose(g.positions, w.positions, rtol=RTOL, atol=1e-14)
        np.testing.assert_allclose(g.cell.array, w.cell.array, rtol=RTOL, atol=1e-14)
        for key in ("energy", "forces", "stress"):
            np.testing.assert_allclose(g.calc.results[key], w.calc.results[key], rtol=RTOL, atol=1e-15,
                                       err_msg=key)


def one_line_error(excinfo, *needles: str) -> None:
    message = str(excinfo.value)
    assert "\n" not in message, message
    for needle in needles:
        assert needle in message, message


# --------------------------------------------------------------------------- extxyz / cfg

def test_write_training_set_round_trips_extxyz_and_cfg(tmp_path):
    """Both files, read back (ASE's extxyz reader, our .cfg reader), give the labels to 1e-12 relative."""
    images = labelled()
    xyz, cfg = write_training_set(images, tmp_path / "set")
    assert (xyz.name, cfg.name) == ("train.extxyz", "train.cfg")
    assert sorted(p.name for p in (tmp_path / "set").iterdir()) == ["train.cfg", "train.extxyz"]  # no temp left
    assert_same_labels(read_labelled(xyz), images)
    assert_same_labels(read_labelled(cfg), images)  # DEFAULT_SPECIES both ways
    assert_same_labels(read_labelled(cfg, "cfg", species=DEFAULT_SPECIES), images)


def test_write_training_set_is_atomic_and_refuses_unlabelled(tmp_path):
    xyz, cfg = write_training_set(labelled(), tmp_path)
    before = (xyz.read_text(), cfg.read_text())
    bare = Atoms("Na", cell=[5, 5, 5], pbc=True)
    with pytest.raises(ValueError) as e:
        write_training_set([*labelled(), bare], tmp_path)
    one_line_error(e, "configuration 3", "no energy")
    with pytest.raises(ValueError, match="not in the species"):
        write_training_set(labelled(), tmp_path, species=("Na", "Fe"))
    assert (xyz.read_text(), cfg.read_text()) == before  # failed writes left the old files whole


# --------------------------------------------------------------------------- ML_AB

HEADER = """ 1.0 Version
**************************************************
     The number of configurations
--------------------------------------------------
          2
**************************************************
     The maximum number of atom type
--------------------------------------------------
       2
**************************************************
     The atom types in the data file
--------------------------------------------------
     Na Fe
**************************************************
     The maximum number of atoms per system
--------------------------------------------------
              3
**************************************************
     The maximum number of atoms per atom type
--------------------------------------------------
              2
**************************************************
     Reference atomic energy (eV)
--------------------------------------------------
   0.000000000000000E+000   0.000000000000000E+000
**************************************************
     Atomic mass
--------------------------------------------------
   22.9900000000000        55.8450000000000
**************************************************
     The numbers of basis sets per atom type
--------------------------------------------------
        1    1
**************************************************
     Basis set for Na
--------------------------------------------------
          1      1
**************************************************
     Basis set for Fe
--------------------------------------------------
          1      1
"""


def ml_ab_block(num, name, types, cell, positions, energy, forces, stress6):
    sep_eq, sep_dash, star = "=" * 50, "-" * 50, "*" * 50
    lines = [star, f"     Configuration num.      {num}", sep_eq, "     System name", sep_dash, f"     {name}",
             sep_eq, "     The number of atom types", sep_dash, f"       {len(types)}", sep_eq,
             "     The number of atoms", sep_dash, f"         {len(positions)}", star,
             "     Atom types and atom numbers", sep_dash, *[f"     {s}   {n}" for s, n in types], sep_eq,
             "     Primitive lattice vectors (ang.)", sep_dash, *["  " + "  ".join(r) for r in cell], sep_eq,
             "     Atomic positions (ang.)", sep_dash, *["  " + "  ".join(r) for r in positions], sep_eq,
             "     Total energy (eV)", sep_dash, f"  {energy}", sep_eq,
             "     Forces (eV ang.^-1)", sep_dash, *["  " + "  ".join(r) for r in forces], sep_eq,
             "     Stress (kbar)", sep_dash, "     XX YY ZZ", sep_dash, "  " + "  ".join(stress6[:3]), sep_dash,
             "     XY YZ ZX", sep_dash, "  " + "  ".join(stress6[3:])]
    return "\n".join(lines) + "\n"


BLOCK1 = ml_ab_block(
    1, "NaFe_dimer", [("Na", 1), ("Fe", 1)],
    [["5.00000000000000", "0.000000000000000E+000", "0.0"], ["0.0", "6.0", "0.0"], ["0.1", "0.0", "7.0"]],
    [["0.5", "0.25", "0.125"], ["2.5", "3.0", "3.5"]],
    "-12.3456789012345",
    [["0.111", "-0.222", "0.333"], ["-0.111", "0.222", "-0.333"]],
    ["10.0", "20.0", "-30.0", "1.5", "-2.5", "3.25"])
BLOCK2 = ml_ab_block(
    2, "Na2Fe bulk", [("Na", 2), ("Fe", 1)],
    [["4.0", "0.0", "0.0"], ["0.0", "4.0", "0.0"], ["0.0", "0.0", "4.0"]],
    [["0.0", "0.0", "0.0"], ["2.0", "2.0", "2.0"], ["1.0", "1.0", "3.0"]],
    "-0.314159265358979E+002",
    [["1.0E-001", "0.0", "0.0"], ["0.0", "-0.2", "0.0"], ["-0.1", "0.2", "0.0"]],
    ["-100.0", "0.0", "50.0", "0.0", "7.0", "-8.0"])
ML_AB = HEADER + BLOCK1 + BLOCK2 + "*" * 50 + "\n"


def test_ml_ab_parsed_to_exact_numbers(tmp_path):
    path = tmp_path / "ML_AB"
    path.write_text(ML_AB)
    first, second = read_labelled(path)
    assert first.get_chemical_symbols() == ["Na", "Fe"] and second.get_chemical_symbols() == ["Na", "Na", "Fe"]
    assert first.info["system_name"] == "NaFe_dimer" and second.info["system_name"] == "Na2Fe bulk"
    assert first.pbc.all()
    assert first.cell.array.tolist() == [[5.0, 0.0, 0.0], [0.0, 6.0, 0.0], [0.1, 0.0, 7.0]]
    assert first.positions.tolist() == [[0.5, 0.25, 0.125], [2.5, 3.0, 3.5]]
    assert first.get_potential_energy() == -12.3456789012345
    assert second.get_potential_energy() == -31.4159265358979
    assert first.get_forces().tolist() == [[0.111, -0.222, 0.333], [-0.111, 0.222, -0.333]]
    assert second.get_forces().tolist() == [[0.1, 0.0, 0.0], [0.0, -0.2, 0.0], [-0.1, 0.2, 0.0]]
    # kbar, OUTCAR "in kB" sign (pressure) -> ASE: -value * 1e8 Pa in eV/A^3; XX YY ZZ XY YZ ZX -> xx yy zz yz xz xy
    kbar = 1e8 / (units._e * 1e30)
    np.testing.assert_allclose(first.get_stress(), -kbar * np.array([10.0, 20.0, -30.0, -2.5, 3.25, 1.5]),
                               rtol=1e-12)
    np.testing.assert_allclose(second.get_stress(), -kbar * np.array([-100.0, 0.0, 50.0, 7.0, -8.0, 0.0]),
                               rtol=1e-12, atol=0)
    assert abs(kbar - 6.241509e-4) < 1e-9  # 1 kbar = 0.1 GPa
    # the same six numbers as an OUTCAR "in kB" line convert identically in ASE's OUTCAR reader
    from ase.io.vasp_parsers.vasp_outcar_parsers import convert_vasp_outcar_stress

    np.testing.assert_allclose(first.get_stress(), convert_vasp_outcar_stress([10.0, 20.0, -30.0, 1.5, -2.5, 3.25]),
                               rtol=1e-15)


@pytest.mark.parametrize("broken, needle", [
    (ML_AB.replace("     The number of atoms\n", "     The number of atomz\n", 1), "expected 'The number of atoms'"),
    (ML_AB.replace("     Na   2\n", "     Na   3\n"), "add up to 4"),
    (ML_AB.replace("  -12.3456789012345", "  -12.34x"), "not a number"),
    (ML_AB.replace("  2.5  3.0  3.5", "  2.5  3.0"), "expected 3 numbers"),
    (HEADER + BLOCK1 + "*" * 50 + "\n", "declares 2 configurations"),
    (ML_AB.replace(" 1.0 Version", " Hello"), "1.0 Version"),
    (ML_AB.replace("     Na   2\n", "     Xx   2\n"), "expected 'Element count'"),
    (HEADER + BLOCK1 + BLOCK2[: BLOCK2.index("     Forces")], "file ends inside"),
])
def test_broken_ml_ab_gives_one_line_error_with_line_number(tmp_path, broken, needle):
    path = tmp_path / "ML_ABN"
    path.write_text(broken)
    with pytest.raises(ValueError) as e:
        read_labelled(path)
    one_line_error(e, f"{path}:", needle)
    line = int(str(e.value).split(f"{path}:")[1].split(":")[0])
    assert 1 <= line <= len(broken.splitlines())


def test_ml_ab_error_points_at_the_bad_line():
    broken = ML_AB.replace("  -12.3456789012345", "  -12.34x")
    no = broken.splitlines().index("  -12.34x") + 1
    with pytest.raises(ValueError, match=rf"^F:{no}: "):
        parse_ml_ab(broken, name="F")


# --------------------------------------------------------------------------- OUTCAR / vasprun

def test_format_from_name():
    assert detect_format("a/OUTCAR") == "outcar" and detect_format("OUTCAR.3") == "outcar"
    assert detect_format("run/vasprun.xml") == "vasprun"
    assert detect_format("ML_AB") == "ml_ab" and detect_format("ML_ABN") == "ml_ab"
    assert detect_format("x.cfg") == "cfg"
    assert detect_format("x.xyz") == "extxyz" and detect_format("x.extxyz") == "extxyz"
    with pytest.raises(ValueError) as e:
        detect_format("data/POSCAR")
    one_line_error(e, "data/POSCAR", "allowed: extxyz, outcar, vasprun, cfg, ml_ab")


def test_garbage_vasp_outputs_give_one_line_errors(tmp_path):
    for name in ("OUTCAR", "vasprun.xml"):
        path = tmp_path / name
        path.write_text("this is not\na VASP file\n")
        with pytest.raises(ValueError) as e:
            read_labelled(path)
        one_line_error(e, str(path), "not a readable")


# --------------------------------------------------------------------------- other bad input

def test_bad_files_give_one_line_errors(tmp_path):
    unlabelled = tmp_path / "u.xyz"
    unlabelled.write_text("1\nLattice=\"5 0 0 0 5 0 0 0 5\" Properties=species:S:1:pos:R:3 pbc=\"T T T\"\nNa 0 0 0\n")
    with pytest.raises(ValueError) as e:
        read_labelled(unlabelled)
    one_line_error(e, str(unlabelled), "no energy label")

    broken_xyz = tmp_path / "b.extxyz"
    broken_xyz.write_text("3\ncomment\nNa 0 0\n")
    with pytest.raises(ValueError) as e:
        read_labelled(broken_xyz)
    one_line_error(e, str(broken_xyz), "extxyz")

    broken_cfg = tmp_path / "b.cfg"
    broken_cfg.write_text("BEGIN_CFG\n Size\n    two\nEND_CFG\n")
    with pytest.raises(CfgError) as e:
        read_labelled(broken_cfg)
    one_line_error(e, f"{broken_cfg}:3:")

    binary = tmp_path / "ML_AB"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ValueError) as e:
        read_labelled(binary)
    one_line_error(e, str(binary), "not a text file")

    with pytest.raises(ValueError) as e:
        read_labelled(broken_cfg, fmt="poscar")
    one_line_error(e, str(broken_cfg), "unknown format 'poscar'", "allowed:")
    with pytest.raises(ValueError) as e:
        read_labelled(tmp_path / "CONTCAR")
    one_line_error(e, "CONTCAR", "allowed:")


# --------------------------------------------------------------------------- oracle MD

def test_oracle_md_frames_carry_fresh_teacher_labels(tmp_path):
    frames = generate_oracle_md(compositions_x=(0.5, 2.0), temperature_K=600.0, steps=6, seed=3, every=3)
    assert [f.info["step"] for f in frames] == [0, 3, 6, 0, 3, 6]
    assert [f.info["x_na"] for f in frames] == [0.5] * 3 + [2.0] * 3
    assert [f.get_chemical_symbols().count("Na") for f in frames] == [2] * 3 + [8] * 3
    assert not np.allclose(frames[0].positions, frames[2].positions)  # the MD moved
    teacher = TeacherCalculator()
    for frame in frames:
        fresh = frame.copy()
        fresh.calc = teacher
        np.testing.assert_allclose(frame.get_potential_energy(), fresh.get_potential_energy(), rtol=1e-12)
        np.testing.assert_allclose(frame.get_forces(), fresh.get_forces(), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(frame.get_stress(), fresh.get_stress(), rtol=1e-12, atol=1e-15)
    again = generate_oracle_md(compositions_x=(0.5, 2.0), temperature_K=600.0, steps=6, seed=3, every=3)
    assert all(np.array_equal(a.positions, b.positions) for a, b in zip(frames, again))  # seeded
    other = generate_oracle_md(compositions_x=(0.5,), temperature_K=600.0, steps=3, seed=4, every=3)
    assert not np.array_equal(other[1].positions, frames[1].positions)
    # and they make a training set
    xyz, cfg = write_training_set(frames, tmp_path)
    assert_same_labels(read_labelled(cfg), frames)
    assert [f.info["x_na"] for f in read_labelled(xyz)] == [f.info["x_na"] for f in frames]


def test_oracle_md_refuses_fractional_ion_counts():
    with pytest.raises(ValueError, match="x = 0.125"):
        generate_oracle_md(compositions_x=(0.125,), steps=0)
