"""Which candidate configurations to label: MaxVol against the training set's active set (MLIP-3's
select_add), without repeats, capped per iteration.

Candidates are the frames the replicas flagged (2 < gamma < 10 in LAMMPS). Their neighbourhood rows
are pooled per species with the current active rows; MaxVol picks the rows of largest |det|; a
candidate configuration is selected if any of its rows enters an active set. Configurations already
selected (by fingerprint: species, cell and positions rounded to 1e-6 A) are never selected again; a
cap keeps the configurations of largest grade.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np
from ase import Atoms

from .active_set import ActiveSet, basis_rows, maxvol
from .mtp_file import MTPData


def fingerprint(atoms: Atoms) -> str:
    """Content hash of a configuration (numbers, cell and positions to 1e-6 A)."""
    h = hashlib.sha256()
    h.update(np.asarray(atoms.numbers, dtype=np.int64).tobytes())
    for a in (atoms.cell.array, atoms.positions):
        h.update(np.round(np.asarray(a, dtype=float), 6).tobytes())
    return h.hexdigest()


@dataclass
class Selection:
    selected: list[int]
    """Indices into the candidate list, largest grade first (without an active set: in order)."""
    grades: np.ndarray
    """Largest gamma of each candidate under the current active set (NaN: a repeat, or no active set)."""
    skipped: dict[int, str] = field(default_factory=dict)
    """Candidate index -> why it was not selected: 'repeat', 'inside' (adds no active row), 'cap'."""
    active: ActiveSet | None = None
    """The extended active set (before the cap): it grades every fresh candidate <= 1 + tolerance."""


def select(data: MTPData | None, active: ActiveSet | None, candidates: list[tuple[Atoms, np.ndarray]],
           seen: set[str], cap: int | None = None, tolerance: float = 1e-3) -> Selection:
    """Select among ``candidates`` ((atoms, MTP species index per atom)); ``seen`` holds the fingerprints
    of everything selected before and is updated with the new selection. Without an active set (no
    potential yet: nothing to grade against) every fresh candidate is selected, in order."""
    keys = [fingerprint(atoms) for atoms, _ in candidates]
    skipped: dict[int, str] = {}
    fresh = []
    batch: set[str] = set()
    for k, key in enumerate(keys):
        if key in seen or key in batch:
            skipped[k] = "repeat"
        else:
            batch.add(key)
            fresh.append(k)
    grades = np.full(len(candidates), np.nan)
    extended = None
    if active is None:
        ranked = fresh
    else:
        rows = {k: basis_rows(data, *candidates[k]) for k in fresh}  # the costly part: repeats have none
        for k in fresh:
            grades[k] = active.grades(rows[k], candidates[k][1]).max(initial=0.0)
        chosen: set[int] = set()
        extended = []
        for s, current in enumerate(active.rows):
            owners = [(k, rows[k][np.asarray(candidates[k][1]) == s]) for k in fresh]
            pool = np.vstack([current] + [r for _, r in owners])
            owner = np.concatenate([np.full(len(current), -1)] + [np.full(len(r), k) for k, r in owners])
            # start from the current active rows: candidates they already span stay out
            picked = maxvol(pool, tolerance, start=np.arange(len(current)))
            chosen.update(int(k) for k in owner[picked] if k >= 0)
            extended.append(pool[picked])
        for k in fresh:
            if k not in chosen:
                skipped[k] = "inside"
        ranked = sorted(chosen, key=lambda k: -grades[k])
    if cap is not None:
        for k in ranked[cap:]:
            skipped[k] = "cap"
        ranked = ranked[:cap]
    seen.update(keys[k] for k in ranked)
    return Selection(ranked, grades, skipped, None if extended is None else ActiveSet.from_rows(extended))
