"""The teacher potential: LAMMPS and numpy agree, NPT keeps the framework, insertion energetics (real LAMMPS)."""
from __future__ import annotations


import numpy as np
import pytest
from ase import Atoms
from ase.geometry import find_mic
from ase.neighborlist import neighbor_list
from conftest import run_mpi_script
from mpi4py import MPI

import lammps
from lammps import LMP_STYLE_GLOBAL, LMP_TYPE_VECTOR
from pbahpc.atomistic.lammps_setup import atoms_from_lammps, lammps_cell, setup_lammps
from pbahpc.atomistic.structure import build_pba, na_sites, pba_cell
from pbahpc.oracle.teacher import TeacherCalculator, teacher_potential

ARGS = ["-log", "none", "-screen", "none", "-nocite"]
E_INS_EV, J_EV = -1.508, -0.0448  # documented in pbahpc/oracle/teacher.py


def open_lammps(atoms, pot=None, comm=MPI.COMM_SELF):
    pot = pot or teacher_potential()
    lmp = lammps.lammps(cmdargs=ARGS, comm=comm)
    setup_lammps(lmp, atoms, pot)
    return lmp, pot


def lammps_eval(atoms, pot=None):
    """(energy eV, forces eV/A by atom id, stress eV/A^3 as a 3x3 in the LAMMPS frame, ASE sign)."""
    lmp, _ = open_lammps(atoms, pot)
    lmp.command("compute pbahpc_pv all pressure NULL virial")  # no kinetic part
    lmp.command("thermo_style custom step pe c_pbahpc_pv[1]")
    lmp.command("run 0")
    e = lmp.get_thermo("pe")
    ids = lmp.numpy.extract_atom("id")[: len(atoms)]
    f = lmp.numpy.extract_atom("f")[: len(atoms)][np.argsort(ids)].copy()
    xx, yy, zz, xy, xz, yz = lmp.numpy.extract_compute("pbahpc_pv", LMP_STYLE_GLOBAL, LMP_TYPE_VECTOR)
    p = np.array([[xx, xy, xz], [xy, yy, yz], [xz, yz, zz]]) / lmp.extract_global("nktv2p")  # bar -> eV/A^3
    lmp.close()
    return e, f, -p


def voigt_to_matrix(s):
    xx, yy, zz, yz, xz, xy = s
    return np.array([[xx, xy, xz], [xy, yy, yz], [xz, yz, zz]])


def random_cell(strain=None):
    rng = np.random.default_rng(11)
    atoms = build_pba(1, x_na=1.0, rng=rng)
    atoms.rattle(0.1, rng=rng)
    if strain is not None:
        atoms.set_cell(atoms.cell.array @ (np.eye(3) + np.asarray(strain)), scale_atoms=True)
    return atoms


CASES = {"cubic x=1 rattled": None,
         "triclinic strained": [[0.03, 0.04, -0.02], [0.01, -0.02, 0.05], [0.03, -0.01, 0.02]]}


@pytest.mark.parametrize("strain", CASES.values(), ids=CASES.keys())
def test_lammps_and_numpy_agree(strain):
    atoms = random_cell(strain)
    e_l, f_l, s_l = lammps_eval(atoms)
    atoms.calc = TeacherCalculator()
    _, R = lammps_cell(atoms.cell.array)  # LAMMPS works in a rotated frame for a general cell
    e_a, f_a = atoms.get_potential_energy(), atoms.get_forces() @ R
    s_a = R.T @ voigt_to_matrix(atoms.get_stress()) @ R
    assert e_a < 0 and abs(e_l - e_a) <= 1e-8 * abs(e_a)
    assert np.abs(f_a).max() > 1.0 and np.abs(f_l - f_a).max() < 1e-6
    assert np.abs(s_a).max() > 1e-3 and np.abs(s_l - s_a).max() <= 1e-6 * np.abs(s_a).max()
    assert np.isclose(atoms.get_potential_energies().sum(), e_a)
    if strain is not None:
        assert not np.allclose(R, np.eye(3))  # the rotation was exercised


def test_forces_and_stress_are_derivatives_of_the_numpy_energy():
    atoms = random_cell(CASES["triclinic strained"])
    calc = TeacherCalculator()
    atoms.calc = calc
    forces, stress = atoms.get_forces(), voigt_to_matrix(atoms.get_stress())
    h = 1e-4
    for i in (0, 5, 20, 40, 56, len(atoms) - 1):  # Fe, Mn, C, N, Na
        for k in range(3):
            e = []
            for sign in (1, -1):
                moved = atoms.copy()
                moved.positions[i, k] += sign * h
                moved.calc = calc
                e.append(moved.get_potential_energy())
            assert abs(-(e[0] - e[1]) / (2 * h) - forces[i, k]) < 1e-5 * max(1.0, abs(forces[i, k]))
    for a, b in ((0, 0), (1, 2), (2, 2), (0, 1)):
        e = []
        for sign in (1, -1):
            eps = np.zeros((3, 3))
            eps[a, b] = eps[b, a] = sign * h / 2 if a != b else sign * h  # shear: engineering strain h
            strained = atoms.copy()
            strained.set_cell(atoms.cell.array @ (np.eye(3) + eps), scale_atoms=True)
            strained.calc = calc
            e.append(strained.get_potential_energy())
        assert abs((e[0] - e[1]) / (2 * h) / atoms.get_volume() - stress[a, b]) < 1e-6 + 1e-5 * abs(stress[a, b])


def test_isolated_atoms_have_zero_energy_and_inserted_species_is_a_role():
    far = Atoms("NaFeCN", positions=np.arange(4)[:, None] * [8.0, 0, 0], cell=[40, 40, 40], pbc=True)
    far.calc = TeacherCalculator()
    assert far.get_potential_energy() == 0.0 and not far.get_forces().any()
    na = build_pba(1, n_na=3, arrangement="first")
    k = na.copy()
    k.symbols[-3:] = "K3"
    na.calc, k.calc = TeacherCalculator(), TeacherCalculator(inserted="K")
    assert na.get_potential_energy() == k.get_potential_energy()
    pot = teacher_potential(inserted="K")
    assert pot.species == ("K", "Mn", "Fe", "C", "N") and np.isclose(pot.masses_amu[0], 39.098, atol=0.01)
    assert pot.cutoff_A == 7.0 and sum(c.startswith("pair_coeff") for c in pot.commands) == 15
    assert teacher_potential(("Fe", "C", "N", "Mn")).cutoff_A < 4.0  # no Na-Na pair, shorter range
    lmp, _ = open_lammps(k, pot)
    lmp.command("run 0")
    assert np.isclose(lmp.get_thermo("pe"), k.get_potential_energy(), rtol=1e-10)
    lmp.close()
    with pytest.raises(ValueError):
        TeacherCalculator().get_potential_energy(Atoms("NaCl", positions=[[0, 0, 0], [0, 0, 2.5]]))


def test_structure_and_velocities_round_trip_through_lammps():
    atoms = random_cell(CASES["triclinic strained"])
    rng = np.random.default_rng(2)
    atoms.set_velocities(rng.normal(scale=0.05, size=(len(atoms), 3)))  # ~500 K (A per ASE time unit)
    lmp, pot = open_lammps(atoms)
    lmp.command("run 0")
    assert np.isclose(lmp.get_thermo("ke"), atoms.get_kinetic_energy(), rtol=1e-6)  # velocity units
    back = atoms_from_lammps(lmp, pot.species)
    L, R = lammps_cell(atoms.cell.array)
    assert back.get_chemical_symbols() == atoms.get_chemical_symbols()
    assert np.allclose(back.cell.array, L) and np.allclose(L, np.tril(L))
    assert np.allclose(find_mic(back.positions - atoms.positions @ R, back.cell)[0], 0.0, atol=1e-9)
    assert np.allclose(back.get_velocities(), atoms.get_velocities() @ R)
    assert np.allclose(back.get_momenta(), atoms.get_momenta() @ R, rtol=1e-6)
    # GCMC deletions leave gaps in the ids; the order by id stays
    lmp.command("group gone id 2 30 61")
    lmp.command("delete_atoms group gone compress no")
    left = atoms_from_lammps(lmp, pot.species)
    keep = np.setdiff1d(np.arange(len(atoms)), [1, 29, 60])
    assert left.get_chemical_symbols() == [atoms.get_chemical_symbols()[i] for i in keep]
    assert np.allclose(left.positions, back.positions[keep])
    lmp.close()


MPI_SCRIPT = r"""
import json
import numpy as np
from mpi4py import MPI
import lammps
from pbahpc.atomistic.lammps_setup import atoms_from_lammps, setup_lammps
from pbahpc.atomistic.structure import build_pba
from pbahpc.oracle.teacher import teacher_potential

world = MPI.COMM_WORLD
rng = np.random.default_rng(5)
atoms = build_pba(2, x_na=1.0, rng=rng)
atoms.rattle(0.1, rng=rng)
atoms.set_cell(atoms.cell.array @ [[1.02, 0.03, 0.0], [0.0, 0.99, 0.02], [0.01, 0.0, 1.0]], scale_atoms=True)
pot = teacher_potential()

def evaluate(comm):
    lmp = lammps.lammps(cmdargs=["-log", "none", "-screen", "none", "-nocite"], comm=comm)
    setup_lammps(lmp, atoms, pot)
    lmp.command("run 0")
    e, nlocal = lmp.get_thermo("pe"), lmp.extract_global("nlocal")
    lmp.command("group gone id 3 100 200")
    lmp.command("delete_atoms group gone compress no")
    back = atoms_from_lammps(lmp, pot.species)
    lmp.close()
    return e, nlocal, back

e2, nlocal, back = evaluate(world)
e1, _, back1 = evaluate(MPI.COMM_SELF)
same = world.allgather((back.get_chemical_symbols(), back.positions.tobytes(), back.cell.array.tobytes()))
nlocals = world.gather(nlocal, root=0)
if world.rank == 0:
    print(json.dumps({"e1": e1, "e2": e2, "n": len(atoms), "nlocal": nlocals, "n_back": len(back),
                      "identical_ranks": all(s == same[0] for s in same),
                      "serial_equal": bool(np.allclose(back.positions, back1.positions, atol=1e-9))}))
"""


def test_two_ranks_give_the_serial_energy(tmp_path):
    r = run_mpi_script(tmp_path, MPI_SCRIPT, 2)
    assert abs(r["e2"] - r["e1"]) <= 1e-10 * abs(r["e1"])
    assert r["identical_ranks"] and r["serial_equal"] and r["n_back"] == r["n"] - 3
    assert sum(r["nlocal"]) == r["n"] and min(r["nlocal"]) > 0  # both ranks held atoms


def bonds(atoms):
    i, j = neighbor_list("ij", atoms, {("Fe", "C"): 2.3, ("C", "N"): 1.5, ("Mn", "N"): 2.5})
    return i[i < j], j[i < j]


@pytest.mark.parametrize("T_K", [300, 700])
def test_short_npt_keeps_the_framework(T_K):
    atoms = build_pba(1, x_na=1.0, rng=np.random.default_rng(3))
    i, j = bonds(atoms)
    assert len(i) == 72  # 24 Fe-C + 24 C-N + 24 N-Mn
    d0 = np.linalg.norm(find_mic(atoms.positions[j] - atoms.positions[i], atoms.cell)[0], axis=1)
    lmp, pot = open_lammps(atoms)
    lmp.command("timestep 0.0004")
    lmp.command(f"velocity all create {T_K} 4 dist gaussian mom yes rot yes")
    lmp.command(f"fix md all npt temp {T_K} {T_K} 0.1 iso 0.0 0.0 1.0")
    lmp.command("thermo_style custom step temp vol")
    worst, vols, temps = 0.0, [], []
    for _ in range(10):  # 2 ps
        lmp.command("run 500")
        now = atoms_from_lammps(lmp, pot.species)
        d = np.linalg.norm(find_mic(now.positions[j] - now.positions[i], now.cell)[0], axis=1)
        worst = max(worst, np.abs(d - d0).max())
        vols.append(lmp.get_thermo("vol"))
        temps.append(lmp.get_thermo("temp"))
    lmp.close()
    assert worst < 0.3
    assert np.all(np.abs(np.cbrt(vols) / 10.3 - 1) < 0.05)
    assert abs(np.mean(temps) / T_K - 1) < 0.25  # it did heat up: atoms moved


def test_insertion_energetics():
    calc = TeacherCalculator()

    def energy(atoms):
        atoms.calc = calc
        return atoms.get_potential_energy()

    host = pba_cell()
    e_host = energy(host)
    assert e_host < 0
    site = na_sites(host)[0]
    e_ins = energy(host + Atoms("Na", positions=[site])) - e_host
    assert e_ins < -0.5 and abs(e_ins - E_INS_EV) < 0.01
    big = pba_cell().repeat(2)
    sites = na_sites(big)
    d = np.linalg.norm(find_mic(sites - sites[0], big.cell)[0], axis=1)
    nn, far = int(np.argmin(np.where(d > 1, d, np.inf))), int(np.argmax(d))
    assert np.isclose(d[nn], 5.15) and d[far] > 8.0
    one = energy(big + Atoms("Na", positions=[sites[0]]))
    J = energy(big + Atoms("Na2", positions=sites[[0, nn]])) - 2 * one + energy(big)
    apart = energy(big + Atoms("Na2", positions=sites[[0, far]])) - 2 * one + energy(big)
    assert -0.06 < J < -0.03 and abs(J - J_EV) < 1e-3 and abs(apart) < 1e-9
    # an insertion overlapping the framework: a Na 0.5 A from an N
    n_pos = host.positions[host.get_chemical_symbols().index("N")]
    u = (site - n_pos) / np.linalg.norm(site - n_pos)
    clash = host + Atoms("Na", positions=[n_pos + 0.5 * u])
    clash.calc = calc
    assert np.linalg.norm(clash.get_forces()[-1]) > 50.0 and clash.get_potential_energy() > 0


@pytest.mark.parametrize("mu_eV, expected", [(-2.1, 0), (-1.3, 8)])
def test_gcmc_chemical_potential_window(mu_eV, expected):
    """Frozen 1x1x1 host at 300 K from x = 1: mu = -2.1 eV empties it, mu = -1.3 eV fills all 8 cages."""
    lmp, _ = open_lammps(build_pba(1, x_na=1.0, rng=np.random.default_rng(0)))
    lmp.command("group na type 1")
    lmp.command(f"fix gc na gcmc 1 200 50 1 29 300.0 {mu_eV} 0.5")
    lmp.command("variable nna equal count(na)")
    lmp.command("run 100")
    n = round(lmp.extract_variable("nna"))
    lmp.close()
    assert n == expected
