"""Prussian-blue analogue frameworks A_x M[M'(CN)6]: the conventional cubic cell and its supercells.

The Fm-3m framework of the reference material Na_xMn[Fe(CN)6]: Fe on the fcc sites, Mn on the fcc
sites shifted by a/2 along x, and linear Fe-C≡N-Mn chains along x, y and z (4 formula units, 56 atoms
per conventional cell). The inserted ions sit in the 8 cage centres per cell (a/4, a/4, a/4) + a/2 * k,
a simple-cubic sublattice of spacing a/2. Lengths in A.
"""
from __future__ import annotations

from pathlib import Path
from typing import Literal

import ase.io
import numpy as np
from ase import Atoms
from ase.geometry import wrap_positions
from ase.neighborlist import neighbor_list

FE_C_A = 1.92  # d(Fe-C), low-spin Fe(II)-CN
C_N_A = 1.15  # d(C≡N)
FORMULA_UNITS_PER_CELL = 4
SITES_PER_CELL = 8

_FCC = np.array([[0.0, 0.0, 0.0], [0.0, 0.5, 0.5], [0.5, 0.0, 0.5], [0.5, 0.5, 0.0]])
_AXES = np.vstack([np.eye(3), -np.eye(3)])  # the six chain directions around a metal


def pba_cell(a_A: float = 10.3) -> Atoms:
    """Conventional cubic cell of the empty framework: 4 Fe, 4 Mn, 24 C, 24 N (in that order)."""
    if a_A / 2 <= FE_C_A + C_N_A:
        raise ValueError(f"a_A={a_A} too small for Fe-C-N-Mn chains of {FE_C_A}+{C_N_A} A")
    fe = _FCC * a_A
    mn = fe + [a_A / 2, 0.0, 0.0]
    c = (fe[:, None, :] + FE_C_A * _AXES[None]).reshape(-1, 3)
    n = (fe[:, None, :] + (FE_C_A + C_N_A) * _AXES[None]).reshape(-1, 3)
    atoms = Atoms(["Fe"] * 4 + ["Mn"] * 4 + ["C"] * 24 + ["N"] * 24, positions=np.vstack([fe, mn, c, n]),
                  cell=np.eye(3) * a_A, pbc=True)
    atoms.wrap()
    return atoms


def na_sites(atoms: Atoms, metals: tuple[str, ...] = ("Fe", "Mn")) -> np.ndarray:
    """Cartesian centres (A) of the cages, 8 per conventional cell, of any framework cell.

    Every cage is the (possibly distorted) cube of 8 metals whose corner with the lowest cell
    coordinates is a metal M; its centre is M + (v1 + v2 + v3) / 2, with v_k the vector from M to its
    chain neighbour along +cell vector k. This holds for relaxed, thermally displaced and sheared
    frameworks, as long as the cell vectors run along the chains (true for all cells built here).
    """
    is_metal = np.isin(atoms.get_chemical_symbols(), metals)
    frame = atoms[is_metal]
    if len(frame) == 0:
        raise ValueError(f"no framework metals {metals} in the structure")
    a_A = (8 * frame.get_volume() / len(frame)) ** (1 / 3)  # 4 Fe + 4 Mn per conventional cell
    # chain neighbours sit at a/2, the next metals at a/sqrt(2): cut in between
    i, D = neighbor_list("iD", frame, 0.6 * a_A)
    counts = np.bincount(i, minlength=len(frame))
    if not np.all(counts == 6):
        raise ValueError("framework metals do not each have 6 chain neighbours; not a PBA framework?")
    D = D[np.argsort(i, kind="stable")].reshape(len(frame), 6, 3)
    frac = D @ np.linalg.inv(frame.cell.array)  # displacement in cell-vector coordinates
    plus = np.take_along_axis(D, np.argmax(frac, axis=1)[:, :, None], axis=1)  # (n, 3 axes, 3)
    return wrap_positions(frame.positions + plus.sum(axis=1) / 2, atoms.cell, pbc=True)


def rhombohedral_strain(deg: float) -> np.ndarray:
    """Volume-preserving deformation F (row-vector convention: cell @ F) along [111].

    F = lambda (I + eps n n^T), n = [111]/sqrt(3), turns the three cubic angles into 90 + deg degrees
    (deg > 0 flattens the cell along [111], deg < 0 elongates it) with the volume kept.
    """
    cos_alpha = np.cos(np.radians(90.0 + deg))
    s = 3 * cos_alpha / (1 - cos_alpha)  # (F^2)_ij = delta_ij + s/3 gives cos(alpha) = s / (3 + s)
    eps = np.sqrt(1 + s) - 1
    n = np.ones(3) / np.sqrt(3)
    return (np.eye(3) + eps * np.outer(n, n)) / (1 + eps) ** (1 / 3)


def build_pba(n: int = 1, a_A: float = 10.3, n_na: int | None = None, x_na: float | None = None,
              arrangement: Literal["random", "first"] = "random", rng: np.random.Generator | None = None,
              rhombohedral_deg: float = 0.0, inserted: str = "Na") -> Atoms:
    """n x n x n conventional cells with ``n_na`` inserted ions (or ``x_na`` per formula unit, 0..2).

    ``arrangement="random"`` draws the occupied cages from ``rng`` (a fresh default generator if None),
    ``"first"`` fills them in site order. Framework atoms come first, inserted ions last.
    """
    if n_na is not None and x_na is not None:
        raise ValueError("give n_na or x_na, not both")
    n_sites = SITES_PER_CELL * n**3
    if x_na is not None:
        n_na = round(x_na * FORMULA_UNITS_PER_CELL * n**3)
    n_na = n_na or 0
    if not 0 <= n_na <= n_sites:
        raise ValueError(f"{n_na} inserted ions do not fit in {n_sites} cages")
    atoms = pba_cell(a_A).repeat(n)
    if rhombohedral_deg:
        atoms.set_cell(atoms.cell.array @ rhombohedral_strain(rhombohedral_deg), scale_atoms=True)
    sites = na_sites(atoms)
    if arrangement == "random":
        chosen = (rng or np.random.default_rng()).choice(n_sites, size=n_na, replace=False)
    elif arrangement == "first":
        chosen = np.arange(n_na)
    else:
        raise ValueError(f"arrangement must be 'random' or 'first', not {arrangement!r}")
    atoms += Atoms([inserted] * n_na, positions=sites[np.sort(chosen)], cell=atoms.cell, pbc=True)
    atoms.wrap()
    return atoms


def host_from_file(path: str | Path, inserted: str = "Na") -> tuple[Atoms, np.ndarray]:
    """(host without ``inserted``, sites): the positions the inserted ions held, or the cage centres."""
    atoms = ase.io.read(path)
    mask = np.array(atoms.get_chemical_symbols()) == inserted
    host = atoms[~mask]
    sites = atoms.positions[mask] if mask.any() else na_sites(host)
    return host, sites
