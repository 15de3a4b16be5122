"""MLIP `.cfg` files (MLIP-2/3, motep) as lists of ASE Atoms with energy, forces and stress.

A file is a sequence of blocks::

    BEGIN_CFG
     Size
        N
     Supercell                # three cell vectors (rows); absent for a non-periodic configuration
        ax ay az
        ...
     AtomData:  id type cartes_x cartes_y cartes_z fx fy fz
        1 0 x y z fx fy fz    # type: 0-based index into the caller's species tuple
     Energy
        E                     # eV
     PlusStress:  xx yy zz yz xz xy
        ...                   # eV
     Feature   key value
    END_CFG

Units: positions and cell in A, energy in eV, forces in eV/A.

PlusStress convention: PlusStress = -V * stress, where ``stress`` is ASE's (eV/A^3, Voigt order xx yy zz
yz xz xy, positive under tension, = (1/V) dE/d(strain)) and V the cell volume. It is the virial
W = -dE/d(strain) = sum_i r_i (x) f_i (for a pair potential), which is what MLIP stores and what motep's
``motep.io.mlip.cfg`` reads (``stress = -PlusStress / V``) and writes (``-stress * V``). The columns are
read by name, so their order in the header does not matter. A non-periodic configuration has no volume:
its PlusStress is skipped on reading and never written.

Feature lines: read into ``atoms.info["features"]`` (an ordered dict key -> value text, the words after
the key joined by one space) unless ``features=False``, and written back from there; they round-trip as
text. Extra AtomData columns (MLIP-3's ``nbh_grades``) are read into ``atoms.arrays``; only
``nbh_grades`` is written back.

Numbers are written in fixed-point notation (motep's reader refuses exponents) with ``digits`` decimals,
so a file read and written again is unchanged, and values read back equal the written ones rounded to
``digits`` decimals. Broken files raise :class:`CfgError` with a one-line message ``FILE:LINE: problem``.
"""
from __future__ import annotations

from pathlib import Path
from collections.abc import Callable, Iterable, Sequence

import numpy as np
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from ase.stress import full_3x3_to_voigt_6_stress

VOIGT = ("xx", "yy", "zz", "yz", "xz", "xy")  # ASE's stress order
CARTESIAN = ("cartes_x", "cartes_y", "cartes_z")
DIRECT = ("direct_x", "direct_y", "direct_z")
FORCES = ("fx", "fy", "fz")
WRITTEN_COLUMNS = ("nbh_grades",)  # per-atom extras written back from atoms.arrays


class CfgError(ValueError):
    """A malformed `.cfg` file; the message is ``FILE:LINE: problem``."""


class Lines:
    """A text file's non-blank lines (less those ``skip`` matches) as (1-based line number, words), read in
    order; ``error`` makes the one-line ``FILE:LINE: problem`` exception (CfgError here)."""

    def __init__(self, text: str, name: str, skip: Callable[[str], bool] | None = None):
        lines = text.splitlines()
        self.items = [(no, line.split()) for no, line in enumerate(lines, start=1)
                      if line.strip() and not (skip and skip(line.strip()))]
        self.pos = 0
        self.name = name
        self.last = len(lines)

    def at_end(self) -> bool:
        return self.pos >= len(self.items)

    def next(self, inside: str) -> tuple[int, list[str]]:
        if self.at_end():
            raise self.error(self.last, f"file ends inside {inside}")
        self.pos += 1
        return self.items[self.pos - 1]

    def error(self, no: int, message: str) -> ValueError:
        return CfgError(f"{self.name}:{no}: {message}")

    def numbers(self, inside: str, count: int) -> tuple[int, list[float]]:
        no, words = self.next(inside)
        if len(words) != count:
            raise self.error(no, f"{inside}: expected {count} numbers, found {len(words)} words")
        try:
            return no, [float(w) for w in words]
        except ValueError:
            raise self.error(no, f"{inside}: not a number in {' '.join(words)!r}") from None


def read_cfg(path: str | Path, species: Sequence[str], *, features: bool = True) -> list[Atoms]:
    """All configurations in ``path``; type k becomes element ``species[k]``."""
    path = Path(path)
    return parse_cfg(path.read_text(encoding="utf-8"), species, name=str(path), features=features)


def parse_cfg(text: str, species: Sequence[str], *, name: str = "<cfg>", features: bool = True) -> list[Atoms]:
    """:func:`read_cfg` on file content; ``name`` labels error messages."""
    lines = Lines(text, name)
    images = []
    while not lines.at_end():
        no, words = lines.next("the file")
        if words[0] != "BEGIN_CFG":
            raise lines.error(no, f"expected BEGIN_CFG, found {words[0]!r}")
        images.append(_parse_one(lines, tuple(species), features))
    return images


def _parse_one(lines: Lines, species: tuple[str, ...], features: bool) -> Atoms:
    size = cell = columns = rows = energy = plus = None
    feature_values: dict[str, str] = {}
    while True:
        no, words = lines.next("a configuration (no END_CFG)")
        key = words[0]
        if key == "END_CFG":
            break
        if key == "Size":
            n_no, n_words = lines.next("Size")
            if len(n_words) != 1 or not n_words[0].isdigit():
                raise lines.error(n_no, f"Size: expected a non-negative integer, found {' '.join(n_words)!r}")
            size = int(n_words[0])
        elif key in ("Supercell", "SuperCell"):
            cell = [lines.numbers("Supercell", 3)[1] for _ in range(3)]
        elif key in ("AtomData:", "Atomic_data:"):
            if size is None:
                raise lines.error(no, "AtomData before Size")
            columns = words[1:]
            for needed in ("id", "type"):
                if needed not in columns:
                    raise lines.error(no, f"AtomData has no {needed!r} column")
            if not (set(CARTESIAN) <= set(columns) or set(DIRECT) <= set(columns)):
                raise lines.error(no, "AtomData has neither cartes_x/y/z nor direct_x/y/z columns")
            if any(f in columns for f in FORCES) and not set(FORCES) <= set(columns):
                raise lines.error(no, "AtomData has only some of fx fy fz")
            if len(set(columns)) != len(columns):
                raise lines.error(no, "AtomData repeats a column")
            rows = []
            for _ in range(size):
                row_no, row = lines.numbers("AtomData", len(columns))
                t = row[columns.index("type")]
                if not (t.is_integer() and 0 <= t < len(species)):
                    raise lines.error(row_no, f"type {t:g} is not an index into the {len(species)} species")
                rows.append(row)
        elif key == "Energy":
            energy = lines.numbers("Energy", 1)[1][0]
        elif key == "PlusStress:":
            if sorted(words[1:]) != sorted(VOIGT):
                raise lines.error(no, f"PlusStress: expected the columns {' '.join(VOIGT)}")
            plus = dict(zip(words[1:], lines.numbers("PlusStress", 6)[1]))
        elif key == "Feature":
            if len(words) < 2:
                raise lines.error(no, "Feature without a name")
            feature_values[words[1]] = " ".join(words[2:])
        else:
            raise lines.error(no, f"unknown section {key!r}")
    if rows is None:
        raise lines.error(no, "configuration without AtomData")

    data = np.array(rows, dtype=float).reshape(len(rows), len(columns))
    col = {c: data[:, k] for k, c in enumerate(columns)}
    symbols = [species[int(t)] for t in col["type"]]
    if set(CARTESIAN) <= set(columns):
        atoms = Atoms(symbols, positions=np.column_stack([col[c] for c in CARTESIAN]), cell=cell,
                      pbc=cell is not None)
    elif cell is None:
        raise lines.error(no, "direct coordinates need a Supercell")
    else:
        atoms = Atoms(symbols, scaled_positions=np.column_stack([col[c] for c in DIRECT]), cell=cell, pbc=True)
    known = {"id", "type", *CARTESIAN, *DIRECT, *FORCES}
    for c in columns:
        if c not in known:
            atoms.arrays[c] = col[c].copy()

    results = {}
    if energy is not None:
        results["energy"] = energy
    if "fx" in col:
        results["forces"] = np.column_stack([col[c] for c in FORCES])
    if plus is not None and cell is not None:
        results["stress"] = -np.array([plus[k] for k in VOIGT]) / atoms.get_volume()
    if results:
        atoms.calc = SinglePointCalculator(atoms, **results)
    if features and feature_values:
        atoms.info["features"] = feature_values
    return atoms


def write_cfg(path: str | Path, images: Atoms | Iterable[Atoms], species: Sequence[str], *,
              digits: int = 10) -> None:
    """Write ``images`` (energy, forces, stress from their calculators' stored results, where present)."""
    Path(path).write_text(format_cfg(images, species, digits=digits), encoding="utf-8")


def format_cfg(images: Atoms | Iterable[Atoms], species: Sequence[str], *, digits: int = 10) -> str:
    """The `.cfg` text of ``images``; see :func:`write_cfg`."""
    if isinstance(images, Atoms):
        images = [images]
    species = tuple(species)
    return "".join(_format_one(atoms, species, digits) for atoms in images)


def _format_one(atoms: Atoms, species: tuple[str, ...], digits: int) -> str:
    width = digits + 8

    def fixed(values) -> str:
        return "".join(f" {v:{width}.{digits}f}" for v in np.ravel(values))

    unknown = sorted(set(atoms.get_chemical_symbols()) - set(species))
    if unknown:
        raise ValueError(f"elements {unknown} are not in the species {species}")
    if any(atoms.pbc) and not all(atoms.pbc):
        raise ValueError(f".cfg files are periodic in all directions or none, not pbc={atoms.pbc.tolist()}")
    results = atoms.calc.results if atoms.calc is not None else {}
    energy = results.get("energy", results.get("free_energy"))
    forces = results.get("forces")
    extras = [c for c in WRITTEN_COLUMNS if c in atoms.arrays]

    out = ["BEGIN_CFG\n", " Size\n", f"    {len(atoms)}\n"]
    if all(atoms.pbc):
        out.append(" Supercell\n")
        out.extend(f"   {fixed(v)}\n" for v in atoms.cell.array)
    header = ["id", "type", *CARTESIAN, *(FORCES if forces is not None else ()), *extras]
    out.append(" AtomData:  " + " ".join(header) + "\n")
    types = [species.index(s) for s in atoms.get_chemical_symbols()]
    positions = atoms.get_positions()
    for i, t in enumerate(types):
        row = fixed(positions[i])
        if forces is not None:
            row += fixed(forces[i])
        row += "".join(fixed(atoms.arrays[c][i]) for c in extras)
        out.append(f"    {i + 1:6d} {t:4d}{row}\n")
    if energy is not None:
        out.append(f" Energy\n    {fixed(energy)}\n")
    if "stress" in results and all(atoms.pbc):
        stress = np.asarray(results["stress"])
        if stress.shape == (3, 3):
            stress = full_3x3_to_voigt_6_stress(stress)
        plus = -stress * atoms.get_volume()
        out.append(" PlusStress:  " + " ".join(VOIGT) + f"\n    {fixed(plus)}\n")
    for key, value in atoms.info.get("features", {}).items():
        out.append(f" Feature   {key}\t{value}\n")
    out.append("END_CFG\n\n")
    return "".join(out)
