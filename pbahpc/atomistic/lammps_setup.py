"""Moving structures between ASE and a LAMMPS instance (metal units: eV, A, ps, K, bar).

Nothing goes through files, so the same calls work on any number of ranks: every rank passes all
atoms to ``create_atoms`` and LAMMPS keeps the ones in its subdomain; reading back is a collective
gather. LAMMPS wants a right-handed cell with a lower-triangular matrix of cell vectors (rows a, b, c
with a along x and b in the xy plane); a general ASE cell is rotated into that frame, and structures
read back stay in the LAMMPS frame.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from ase import Atoms, units

# ASE velocities are in A per ASE time unit (A sqrt(amu/eV) = 10.18 fs), LAMMPS metal's in A/ps
_A_PER_PS = 1000.0 * units.fs


@dataclass(frozen=True)
class LammpsPotential:
    species: tuple[str, ...]  # LAMMPS atom types 1..n in this order (element symbols)
    masses_amu: tuple[float, ...]
    commands: tuple[str, ...]  # pair_style / pair_coeff / pair_modify ... issued after the box exists
    cutoff_A: float  # largest interaction range (for neighbour settings and ASE)
    prepare: Callable[[Any], None] | None = None  # called with the instance before the commands (a plugin load)


def apply_potential(lmp, potential: LammpsPotential) -> None:
    """The potential's commands on ``lmp`` (``prepare`` first): at set-up, after a restart, or to switch."""
    if potential.prepare is not None:
        potential.prepare(lmp)
    for c in potential.commands:
        lmp.command(c)


def lammps_cell(cell: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(L, R): the lower-triangular LAMMPS cell of ``cell`` (rows = vectors) and the rotation with
    cell @ R = L, so that positions @ R are the coordinates in the LAMMPS frame."""
    cell = np.asarray(cell, dtype=float)
    if np.linalg.det(cell) <= 0:
        raise ValueError("LAMMPS needs a right-handed cell with positive volume")
    a, b, c = cell
    ax = np.linalg.norm(a)
    bx = b @ a / ax
    by = np.sqrt(b @ b - bx**2)
    cx = c @ a / ax
    cy = (b @ c - bx * cx) / by
    cz = np.sqrt(c @ c - cx**2 - cy**2)
    L = np.array([[ax, 0.0, 0.0], [bx, by, 0.0], [cx, cy, cz]])
    return L, np.linalg.solve(cell, L)


def setup_lammps(lmp, atoms: Atoms, potential: LammpsPotential) -> None:
    """Box, atoms (ids 1..N in ``atoms`` order, velocities if set), masses, potential, neighbour lists."""
    symbols = atoms.get_chemical_symbols()
    unknown = sorted(set(symbols) - set(potential.species))
    if unknown:
        raise ValueError(f"species {unknown} are not in the potential's {potential.species}")
    L, R = lammps_cell(atoms.cell.array)
    (lx, _, _), (xy, ly, _), (xz, yz, lz) = L.tolist()  # python floats: repr gives all digits
    lmp.command("units metal")
    lmp.command("atom_style atomic")
    lmp.command("atom_modify map yes")  # fix gcmc and id lookups need the map
    lmp.command("boundary p p p")
    if np.allclose([xy, xz, yz], 0.0, atol=1e-12 * max(lx, ly, lz)):
        lmp.command(f"region pbahpc_box block 0 {lx!r} 0 {ly!r} 0 {lz!r}")
    else:
        lmp.command(f"region pbahpc_box prism 0 {lx!r} 0 {ly!r} 0 {lz!r} {xy!r} {xz!r} {yz!r}")
    lmp.command(f"create_box {len(potential.species)} pbahpc_box")
    for t, m in enumerate(potential.masses_amu, start=1):
        lmp.command(f"mass {t} {float(m)!r}")
    n = len(atoms)
    if n:
        # wrap into [0, 1) so that exactly one rank owns every atom
        frac = atoms.get_scaled_positions(wrap=False)
        frac -= np.floor(frac)
        frac[frac >= 1.0] = 0.0
        x = frac @ L
        v = atoms.get_velocities() @ R * _A_PER_PS
        types = np.array([potential.species.index(s) + 1 for s in symbols], dtype=np.int32)
        created = lmp.create_atoms(n, np.arange(1, n + 1), types, x.reshape(-1), v.reshape(-1))
        if created != n or lmp.get_natoms() != n:
            raise RuntimeError(f"LAMMPS created {lmp.get_natoms()} of {n} atoms")
    apply_potential(lmp, potential)
    lmp.command("neighbor 2.0 bin")
    lmp.command("neigh_modify every 1 delay 0 check yes")


def atoms_from_lammps(lmp, species: tuple[str, ...]) -> Atoms:
    """The instance's atoms sorted by id, with velocities, in the LAMMPS cell frame.

    Collective over the instance's communicator; every rank gets the same structure. Ids may have
    gaps (after GCMC deletions).
    """
    boxlo, boxhi, xy, yz, xz, _, _ = lmp.extract_box()
    lx, ly, lz = np.subtract(boxhi, boxlo)
    cell = np.array([[lx, 0.0, 0.0], [xy, ly, 0.0], [xz, yz, lz]])
    n = lmp.get_natoms()
    if n == 0:
        return Atoms(cell=cell, pbc=True)

    def gathered(name: str, dtype: int, count: int) -> np.ndarray:
        """Per-atom data, concatenated over ranks in the same order for every property."""
        return np.ctypeslib.as_array(lmp.gather_atoms_concat(name, dtype, count))[: n * count].reshape(n, count)

    order = np.argsort(gathered("id", 0, 1)[:, 0], kind="stable")
    types = gathered("type", 0, 1)[order, 0]
    x, v = gathered("x", 1, 3)[order], gathered("v", 1, 3)[order]
    atoms = Atoms([species[t - 1] for t in types], positions=x - np.asarray(boxlo), cell=cell, pbc=True)
    atoms.set_masses(np.asarray(lmp.numpy.extract_atom("mass"))[types])  # per type, index 0 unused
    atoms.set_velocities(v / _A_PER_PS)
    return atoms
