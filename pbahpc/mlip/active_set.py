"""MaxVol active sets and per-atom extrapolation grades of an MTP (mlip.md §1.7, neighbourhood mode).

Row of an atom: b_i = dE_i / d moment_coeffs = (B_1(i), ..., B_m(i)), the values of the m scalar basis
functions on its neighbourhood (the linear part of the MTP only: free during an energy evaluation, unlike
the derivatives with respect to the radial coefficients). Each species has its own active set: the m rows A
(m x m) of its training neighbourhoods with the largest |det A|, found by MaxVol. The grade of an atom is
gamma_i = max_j |(b_i A^-1)_j|, the largest coefficient of b_i in the basis of the active rows: gamma <= 1
for every training neighbourhood (to the MaxVol tolerance), > 1 means extrapolation.

File format (text, numbers with 17 significant digits; read by pair_style mtp ... active_set FILE)::

    pbahpc-active-set 1
    basis_size m            # = alpha_scalar_moments of the potential
    species_count S
    species 0
    rows                    # A, m lines of m numbers (row j = b of the j-th active neighbourhood)
    ...
    inverse                 # A^-1, m lines of m numbers
    ...
    species 1
    ...

The rows are kept so that a later selection can start from them (``maxvol(np.vstack([rows, new]))``); the
pair style reads only the inverses.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.neighborlist import neighbor_list

from .mtp_file import MTPData
from .templates import moments, radial_functions

MAGIC = "pbahpc-active-set"
VERSION = 1


def basis_rows(data: MTPData, atoms: Atoms, species: np.ndarray) -> np.ndarray:
    """(len(atoms), m): the row b_i of every atom; ``species[i]`` is the MTP species index of atom i."""
    species = np.asarray(species)
    i, j, d = neighbor_list("ijD", atoms, data.max_dist)
    rows = np.zeros((len(atoms), data.alpha_scalar_moments))
    for a in range(len(atoms)):
        vectors = d[i == a]
        if len(vectors) == 0:  # every basis function is a product of sums over neighbours
            continue
        r = np.linalg.norm(vectors, axis=1)
        values = moments(data, (vectors / r[:, None])[None], radial_functions(data, r, species[a], species[j[i == a]])[None])
        rows[a] = values[data.alpha_moment_mapping, 0]
    return rows


def maxvol(candidates: np.ndarray, tolerance: float = 1e-3, start: np.ndarray | None = None) -> np.ndarray:
    """Indices of m rows of ``candidates`` (n x m) whose |det| is locally maximal: no candidate has a
    coefficient above 1 + tolerance in their basis.

    Start: the given row indices (an existing active set), else greedy (pivoted Gram-Schmidt: the row
    farthest from the span of those taken). Then swaps: the row i with the largest |c_ij| replaces active
    row j, which multiplies |det A| by |c_ij| > 1, so it ends."""
    candidates = np.asarray(candidates, dtype=float)
    # MaxVol is invariant to column scaling (c = X A^-1 is unchanged by X -> X D): scaled, the rank test below and
    # the solves see comparable columns. The MTP's basis functions differ by up to 7 orders of magnitude (C in a
    # PBA, a level-8 MTP trained on CHGNet labels: column norms 7e3 ... 2e10), so unscaled a spanning set of
    # neighbourhoods failed the relative test (singular values to 1e-10 of the largest; scaled 3e-5)
    columns = np.linalg.norm(candidates, axis=0)
    candidates = candidates / np.where(columns > 0.0, columns, 1.0)
    n, m = candidates.shape
    if start is not None:
        return _swap(candidates, np.array(start), tolerance)
    residual = candidates.copy()
    scale = np.linalg.norm(candidates, axis=1).max(initial=0.0)
    chosen: list[int] = []
    for _ in range(m):
        norms = np.linalg.norm(residual, axis=1)
        best = int(np.argmax(norms)) if n else 0
        if n == 0 or norms[best] <= 1e-9 * scale:
            raise ValueError(f"the {n} neighbourhoods span only {len(chosen)} of the {m} basis dimensions: "
                             "add training neighbourhoods")
        chosen.append(best)
        q = residual[best] / norms[best]
        residual -= np.outer(residual @ q, q)
    return _swap(candidates, np.array(chosen), tolerance)


def _swap(candidates: np.ndarray, chosen_arr: np.ndarray, tolerance: float) -> np.ndarray:
    while True:
        c = np.linalg.solve(candidates[chosen_arr].T, candidates.T).T  # c = candidates A^-1
        i, j = np.unravel_index(np.argmax(np.abs(c)), c.shape)
        if abs(c[i, j]) <= 1.0 + tolerance:
            return chosen_arr
        chosen_arr[j] = i


@dataclass
class ActiveSet:
    rows: list[np.ndarray]  # per species: A (m x m)
    inverse: list[np.ndarray]  # per species: A^-1

    @classmethod
    def from_rows(cls, rows: list[np.ndarray]) -> ActiveSet:
        return cls([np.asarray(a, dtype=float) for a in rows], [np.linalg.inv(a) for a in rows])

    @classmethod
    def select(cls, data: MTPData, configurations: list[tuple[Atoms, np.ndarray]], tolerance: float = 1e-3
               ) -> ActiveSet:
        """Per species the MaxVol rows among all neighbourhoods of ``configurations`` ((atoms, species))."""
        rows = [basis_rows(data, atoms, species) for atoms, species in configurations]
        centres = np.concatenate([np.asarray(species) for _, species in configurations])
        everything = np.vstack(rows)
        active = []
        for s in range(data.species_count):
            of_s = everything[centres == s]
            active.append(of_s[maxvol(of_s, tolerance)])
        return cls.from_rows(active)

    def grades(self, rows: np.ndarray, species: np.ndarray) -> np.ndarray:
        """gamma of each row (n x m) of the given species (n)."""
        species = np.asarray(species)
        gamma = np.zeros(len(rows))
        for s, inverse in enumerate(self.inverse):
            mask = species == s
            gamma[mask] = np.abs(rows[mask] @ inverse).max(axis=1, initial=0.0)
        return gamma


def _matrix(a: np.ndarray) -> str:
    return "".join(" ".join(f"{v:.17g}" for v in row) + "\n" for row in a)


def write_active_set(path: str | Path, active: ActiveSet) -> None:
    m = active.rows[0].shape[0]
    parts = [f"{MAGIC} {VERSION}\nbasis_size {m}\nspecies_count {len(active.rows)}\n"]
    for s, (rows, inverse) in enumerate(zip(active.rows, active.inverse)):
        parts.append(f"species {s}\nrows\n{_matrix(rows)}inverse\n{_matrix(inverse)}")
    Path(path).write_text("".join(parts))


def read_active_set(path: str | Path) -> ActiveSet:
    words = Path(path).read_text().split()
    if words[:2] != [MAGIC, str(VERSION)] or words[2] != "basis_size" or words[4] != "species_count":
        raise ValueError(f"{path}: not a {MAGIC} {VERSION} file")
    m, count = int(words[3]), int(words[5])
    pos, rows, inverse = 6, [], []
    for s in range(count):
        if words[pos:pos + 3] != ["species", str(s), "rows"] or words[pos + 3 + m * m] != "inverse":
            raise ValueError(f"{path}: species {s} block is malformed")
        rows.append(np.array(words[pos + 3:pos + 3 + m * m], dtype=float).reshape(m, m))
        inverse.append(np.array(words[pos + 4 + m * m:pos + 4 + 2 * m * m], dtype=float).reshape(m, m))
        pos += 4 + 2 * m * m
    return ActiveSet(rows, inverse)
