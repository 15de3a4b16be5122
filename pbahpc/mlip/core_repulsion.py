"""The optional core repulsion (``trainer.core_repulsion``): a fixed short-range wall beside the MTP.

Why: the MTP's radial basis has no data below the closest labelled pairs, so there it extrapolates freely and
MD or GCMC under it can push atoms through each other (the cathode2 teacher's 20-50 ps properties runs brought
a Na to 0.34 A from an N). Frames of such runs carry teacher forces of 1e3-1e7 eV/A, which the oracle screens
out (``oracle.max_force_eV_A``), so relearning cannot close the hole. The wall is LAMMPS's ``pair_style zbl
inner outer`` (the Ziegler-Biersack-Littmark screened nuclear repulsion; a switching polynomial takes its
energy and first two derivatives to exactly zero at ``outer_A``) between each listed species and every species
of the MTP, added to the MTP with ``pair_style hybrid/overlay`` in every LAMMPS instance that runs it
(``pbahpc.mlip.plugin.mtp_potential``). The fit needs no subtraction: the wall is zero on every configuration
the MTP is trained on, because labelled frames with a wall pair closer than ``outer_A`` are discarded
(``violation``: the oracle's screening and ``trainer.initial_data``). Distances in A, energies in eV.
"""
from __future__ import annotations

import numpy as np
from ase import Atoms
from ase.data import atomic_numbers


def lammps_terms(core, lammps_types: tuple[str, ...]) -> tuple[str, tuple[str, ...]]:
    """(``zbl inner outer``, the ``pair_coeff i j zbl Zi Zj`` commands) of the wall under ``pair_style
    hybrid/overlay`` for an instance whose types 1..n are the elements ``lammps_types``: every type pair with
    a listed species on either side (i <= j, as pair_coeff wants); the other pairs get no zbl at all."""
    n = len(lammps_types)
    coeffs = tuple(f"pair_coeff {i} {j} zbl {atomic_numbers[lammps_types[i - 1]]} {atomic_numbers[lammps_types[j - 1]]}"
                   for i in range(1, n + 1) for j in range(i, n + 1)
                   if {lammps_types[i - 1], lammps_types[j - 1]} & set(core.species))
    return f"zbl {core.inner_A!r} {core.outer_A!r}", coeffs


def violation(atoms: Atoms, core) -> str | None:
    """Why ``atoms`` cannot be a training configuration under the wall ``core`` (None: no wall): its closest
    wall pair (periodic minimum image) nearer than ``outer_A``, as "Na-N 1.21 A < trainer.core_repulsion.outer_A
    1.6"; None: the wall is zero on it."""
    from ase.neighborlist import neighbor_list

    if core is None or len(atoms) < 2:
        return None
    i, j, d = neighbor_list("ijd", atoms, core.outer_A)
    symbols = np.array(atoms.get_chemical_symbols())
    wall = np.isin(symbols[i], core.species) | np.isin(symbols[j], core.species)
    if not wall.any():
        return None
    k = np.flatnonzero(wall)[np.argmin(d[wall])]
    a, b = sorted((symbols[i[k]], symbols[j[k]]), key=lambda s: s not in core.species)
    return f"{a}-{b} {d[k]:.3g} A < trainer.core_repulsion.outer_A {core.outer_A:g}"
