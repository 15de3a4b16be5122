"""Candidate selection (pbahpc.mlip.selection): MaxVol against the active set, no repeats, a cap."""
import numpy as np

from test_mtp_grade import TOLERANCE, compressed, species_of
from test_pair_mtp import random_atoms, random_potential

from pbahpc.mlip.active_set import ActiveSet, basis_rows
from pbahpc.mlip.selection import fingerprint, select


def setup(seed=3):
    rng = np.random.default_rng(seed)
    data = random_potential(8, 2, rng)
    training = [random_atoms(rng, 30, 2) for _ in range(6)]
    active = ActiveSet.select(data, [(a, species_of(a)) for a in training], TOLERANCE)
    return rng, data, training, active


def test_selection_extends_the_active_set_until_every_candidate_is_inside():
    rng, data, training, active = setup()
    # extrapolating candidates: compressed cells (short distances the training never saw)
    candidates = [compressed(random_atoms(rng, 30, 2), 0.85) for _ in range(5)]
    pairs = [(a, species_of(a)) for a in candidates]
    sel = select(data, active, pairs, seen=set(), tolerance=TOLERANCE)
    assert sel.selected and max(sel.grades) > 1.5
    assert list(sel.grades[sel.selected]) == sorted(sel.grades[sel.selected], reverse=True)
    # the extended active set consists of rows of the training set and of the selected configurations
    # only, and grades every candidate neighbourhood (recomputed here) inside the MaxVol tolerance
    allowed = [active.rows[s] for s in range(2)] + [basis_rows(data, *pairs[k]) for k in sel.selected]
    allowed = np.vstack(allowed)
    for s, a in enumerate(sel.active.rows):
        for row in a:
            assert np.min(np.abs(allowed - row).max(axis=1)) == 0.0
    for atoms, species in pairs:
        assert sel.active.grades(basis_rows(data, atoms, species), species).max() <= 1 + TOLERANCE + 1e-9


def test_inside_candidates_repeats_and_cap():
    rng, data, training, active = setup()
    inside = [(a, species_of(a)) for a in training[:2]]  # neighbourhoods of the training set: gamma <= 1
    outside = [(compressed(random_atoms(rng, 30, 2), 0.85),) for _ in range(4)]
    outside = [(a, species_of(a)) for (a,) in outside]
    seen: set[str] = set()
    sel = select(data, active, inside + outside + [outside[0]], seen, cap=2, tolerance=TOLERANCE)
    assert sel.skipped[0] == sel.skipped[1] == "inside"
    assert sel.skipped[6] == "repeat"  # the same configuration twice in one batch
    assert len(sel.selected) == 2 and sum(v == "cap" for v in sel.skipped.values()) >= 1
    capped = [k for k, v in sel.skipped.items() if v == "cap"]
    assert min(sel.grades[sel.selected]) >= max(sel.grades[capped])  # the cap keeps the largest grades
    assert seen == {fingerprint(outside[k - 2][0]) for k in sel.selected}
    again = select(data, active, outside, seen, tolerance=TOLERANCE)  # nothing is selected twice
    assert not set(fingerprint(outside[k][0]) for k in again.selected) & {fingerprint(outside[k - 2][0])
                                                                           for k in sel.selected}
    assert all(again.skipped[k - 2] == "repeat" for k in sel.selected)


def test_basis_rows_only_for_fresh_candidates(monkeypatch):
    import pbahpc.mlip.selection as selection

    rng, data, training, active = setup()
    outside = [compressed(random_atoms(rng, 30, 2), 0.85) for _ in range(3)]
    pairs = [(a, species_of(a)) for a in outside]
    seen = {fingerprint(outside[0])}  # selected in an earlier iteration
    computed = []
    monkeypatch.setattr(selection, "basis_rows", lambda d, a, s: computed.append(a) or basis_rows(d, a, s))
    sel = select(data, active, pairs + [pairs[1]], seen, tolerance=TOLERANCE)
    assert sel.skipped[0] == sel.skipped[3] == "repeat"
    assert [id(a) for a in computed] == [id(outside[1]), id(outside[2])]
    assert np.isnan(sel.grades[[0, 3]]).all() and np.isfinite(sel.grades[[1, 2]]).all()


def test_without_an_active_set_every_fresh_candidate_in_order_up_to_the_cap():
    rng = np.random.default_rng(4)
    frames = [random_atoms(rng, 30, 2) for _ in range(4)]
    pairs = [(a, species_of(a)) for a in frames]
    seen = {fingerprint(frames[1])}
    sel = select(None, None, pairs + [pairs[0]], seen, cap=2)
    assert sel.selected == [0, 2] and sel.skipped == {1: "repeat", 3: "cap", 4: "repeat"}
    assert sel.active is None and np.isnan(sel.grades).all()
    assert seen == {fingerprint(frames[k]) for k in (0, 1, 2)}
