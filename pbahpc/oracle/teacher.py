"""Teacher potential: a pairwise stand-in for DFT (placeholder docstring, parameters under design)."""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes
from ase.data import atomic_masses, atomic_numbers
from ase.neighborlist import neighbor_list

from ..atomistic.lammps_setup import LammpsPotential

ROLE_INSERTED = "Na"  # the table's name for the inserted ion, whatever element plays it


class Morse(NamedTuple):
    D0_eV: float
    alpha_per_A: float
    r0_A: float
    cutoff_A: float


PARAMS: dict[tuple[str, str], Morse] = {
    ("Fe", "C"): Morse(3.5, 2.0, 1.9, 3.5),
    ("C", "N"): Morse(8.0, 2.6, 1.15, 3.3),
    ("Mn", "N"): Morse(2.0, 1.8, 2.1, 4.0),
    ("Fe", "N"): Morse(1.0, 2.0, 4.0, 3.6),
    ("Mn", "C"): Morse(1.0, 2.0, 4.0, 3.8),
    ("C", "C"): Morse(0.5, 2.0, 4.5, 4.3),
    ("N", "N"): Morse(0.5, 2.0, 4.5, 4.25),
    ("Fe", "Mn"): Morse(1.0, 2.0, 3.5, 3.0),
    ("Fe", "Fe"): Morse(1.0, 2.0, 3.5, 3.0),
    ("Mn", "Mn"): Morse(1.0, 2.0, 3.5, 3.0),
    ("Na", "N"): Morse(0.1, 1.5, 3.5, 5.0),
    ("Na", "C"): Morse(0.1, 1.5, 3.5, 5.0),
    ("Na", "Fe"): Morse(1.0, 2.0, 4.5, 4.0),
    ("Na", "Mn"): Morse(1.0, 2.0, 4.5, 4.0),
    ("Na", "Na"): Morse(0.06, 1.2, 5.0, 6.5),
}


def _pair(a: str, b: str) -> Morse:
    p = PARAMS.get((a, b)) or PARAMS.get((b, a))
    if p is None:
        raise ValueError(f"the teacher potential has no {a}-{b} interaction")
    return p


def _role(symbol: str, inserted: str) -> str:
    return ROLE_INSERTED if symbol == inserted else symbol


def morse_smooth_linear(r: np.ndarray, p: Morse) -> tuple[np.ndarray, np.ndarray]:
    """(E, dE/dr) of LAMMPS ``morse/smooth/linear``: Morse minus its value and tangent at the cutoff."""
    def morse(x):
        e = np.exp(-p.alpha_per_A * (x - p.r0_A))
        return p.D0_eV * (e * e - 2 * e), -2 * p.alpha_per_A * p.D0_eV * (e * e - e)

    e_c, de_c = morse(p.cutoff_A)
    e, de = morse(r)
    return e - e_c - (r - p.cutoff_A) * de_c, de - de_c


def teacher_potential(species: tuple[str, ...] | None = None, inserted: str = "Na") -> LammpsPotential:
    """The teacher as LAMMPS commands; ``species`` defaults to (inserted, Mn, Fe, C, N)."""
    species = species or (inserted, "Mn", "Fe", "C", "N")
    roles = [_role(s, inserted) for s in species]
    cmds = [f"pair_style morse/smooth/linear {max(p.cutoff_A for p in PARAMS.values())}"]
    cutoff = 0.0
    for i, a in enumerate(roles):
        for j in range(i, len(roles)):
            p = _pair(a, roles[j])
            cmds.append(f"pair_coeff {i + 1} {j + 1} {p.D0_eV!r} {p.alpha_per_A!r} {p.r0_A!r} {p.cutoff_A!r}")
            cutoff = max(cutoff, p.cutoff_A)
    masses = tuple(float(atomic_masses[atomic_numbers[s]]) for s in species)
    return LammpsPotential(tuple(species), masses, tuple(cmds), cutoff)


class TeacherCalculator(Calculator):
    """The same function as ``teacher_potential`` in numpy (an independent code path)."""

    implemented_properties = ["energy", "energies", "forces", "stress"]

    def __init__(self, inserted: str = "Na", **kwargs):
        super().__init__(**kwargs)
        self.inserted = inserted

    def calculate(self, atoms: Atoms | None = None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        atoms = self.atoms
        symbols = atoms.get_chemical_symbols()
        kinds = sorted(set(symbols))
        cut = {(a, b): _pair(_role(a, self.inserted), _role(b, self.inserted)).cutoff_A
               for a in kinds for b in kinds}
        i, j, r, D = neighbor_list("ijdD", atoms, cut)
        e_pair = np.zeros(len(i))
        de_pair = np.zeros(len(i))
        sym = np.array(symbols)
        for a in kinds:
            for b in kinds:
                m = (sym[i] == a) & (sym[j] == b)
                if m.any():
                    e_pair[m], de_pair[m] = morse_smooth_linear(
                        r[m], _pair(_role(a, self.inserted), _role(b, self.inserted)))
        n = len(atoms)
        energies = 0.5 * np.bincount(i, weights=e_pair, minlength=n)  # every pair is listed twice
        g = (de_pair / r)[:, None] * D  # dE/dr_j for the pair, = -dE/dr_i
        forces = np.zeros((n, 3))
        for k in range(3):
            forces[:, k] = np.bincount(i, weights=g[:, k], minlength=n)
        virial = 0.5 * (g.T @ D)
        self.results = {"energy": float(energies.sum()), "energies": energies, "forces": forces}
        if atoms.cell.rank == 3:
            s = virial / atoms.get_volume()
            self.results["stress"] = s[[0, 1, 2, 1, 0, 0], [0, 1, 2, 2, 2, 1]]
