"""Structure analysis of Na_xMn[Fe(CN)6] snapshots (paper Sec. III B): RDFs, Mn-N-C / Fe-C-N angles,
Na coordination, lattice parameters and symmetry class, volume change.

Pure functions on ``ase.Atoms`` or lists of frames; all periodic (ASE neighbour lists, so cutoffs may
exceed half the cell). Lengths in A, angles in degrees, volumes in A^3.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import NamedTuple

import numpy as np
from ase import Atoms
from ase.neighborlist import neighbor_list
from scipy.spatial import cKDTree

# Bonded-neighbour cutoffs (A) for the chain angles. Ideal (a = 10.3 A) and sodiated bond lengths are
# Fe-C 1.92, C-N 1.15, Mn-N 2.08 (2.17 in the sodiated MTP structure); the nearest non-bonded
# distances of the same pairs are >= 3.0 A (Fe...N 3.07, Mn...C 3.1-3.2 even at a 138 deg Mn-N-C
# tilt, C...N of neighbouring chains 3.6), so the cutoffs sit well inside the gap and tolerate
# thermal stretching of ~0.3 A.
BOND_CUTOFFS_A: dict[tuple[str, str], float] = {("Fe", "C"): 2.4, ("C", "N"): 1.5, ("Mn", "N"): 2.7}
NA_N_COORDINATION_CUTOFF_A = 3.5  # paper: coordination = number of N within 3.5 A of a Na


def _frames(frames: Atoms | Iterable[Atoms]) -> list[Atoms]:
    out = [frames] if isinstance(frames, Atoms) else list(frames)
    if not out:
        raise ValueError("no frames")
    return out


def _require_periodic(atoms: Atoms) -> None:
    if not atoms.pbc.all():
        raise ValueError("structure analysis needs a fully periodic cell (pbc=True along all axes)")


def _pair_distances(atoms: Atoms, idx_a: np.ndarray, idx_b: np.ndarray, r_max_A: float) -> np.ndarray:
    """Distances (A) of all periodic (a, b) pairs with 0 < d <= r_max_A, a in idx_a, b in idx_b.

    k-d tree over the b atoms and those periodic images of them that lie within r_max_A of the cell
    (any triclinic cell, any r_max_A: the image shells grow with r_max_A / cell width). Ordered pairs:
    for idx_a == idx_b each unordered pair appears twice; an atom with its own images counts. (ASE's
    neighbour list becomes very slow when the cutoff approaches half the cell.)
    """
    cell = atoms.cell.array
    frac = atoms.positions @ np.linalg.inv(cell)
    frac -= np.floor(frac)
    widths = atoms.get_volume() / np.linalg.norm(np.cross(cell[[1, 2, 0]], cell[[2, 0, 1]]), axis=1)
    reach = r_max_A / widths  # how far (in cell fractions) images are needed beyond the cell
    m = np.ceil(reach).astype(int)
    shifts = np.array(list(np.ndindex(*(2 * m + 1)))) - m
    fb = (frac[idx_b][None, :, :] + shifts[:, None, :]).reshape(-1, 3)
    src = np.tile(np.arange(len(idx_b)), len(shifts))
    inside = np.all((fb >= -reach - 1e-9) & (fb <= 1 + reach + 1e-9), axis=1)
    fb, src = fb[inside], src[inside]
    pairs = cKDTree(frac[idx_a] @ cell).sparse_distance_matrix(cKDTree(fb @ cell), r_max_A,
                                                               output_type="ndarray")
    d = pairs["v"]
    same = idx_a[pairs["i"]] == idx_b[src[pairs["j"]]]
    return d[~(same & (d < 1e-8))]  # drop each atom paired with itself (zero shift)


# ---------------------------------------------------------------------------------------------- RDF
def rdf(frames: Atoms | Iterable[Atoms], pair: tuple[str, str] = ("Na", "N"), r_max_A: float = 8.0,
        bins: int = 200) -> tuple[np.ndarray, np.ndarray]:
    """Partial radial distribution function g_AB(r) averaged over frames -> (r_A bin centres, g).

    g_AB(r) = <n_AB(r)> / (N_A rho_B 4 pi r^2 dr), with n_AB(r) the number of (A, B) pairs at distance
    r in the shell and rho_B = (N_B - delta_AB) / V, so g -> 1 at all r for an ideal gas (uniform,
    uncorrelated points), including A == B. Shell volumes are exact (4/3 pi (r2^3 - r1^3)); the
    per-frame normalisations are summed, so cells of varying volume (NPT) and varying N_A (GCMC) are
    weighted by their pair counts. Frames without A or B atoms contribute nothing.
    """
    A, B = pair
    if r_max_A <= 0 or bins < 1:
        raise ValueError("r_max_A must be > 0 and bins >= 1")
    edges = np.linspace(0.0, r_max_A, bins + 1)
    counts = np.zeros(bins)
    norm = 0.0  # sum over frames of N_A * rho_B (1/A^3)
    for atoms in _frames(frames):
        _require_periodic(atoms)
        sym = np.asarray(atoms.get_chemical_symbols())
        n_a, n_b = int(np.sum(sym == A)), int(np.sum(sym == B))
        n_b_other = n_b - 1 if A == B else n_b
        if n_a == 0 or n_b_other <= 0:
            continue
        d = _pair_distances(atoms, np.flatnonzero(sym == A), np.flatnonzero(sym == B), r_max_A)
        counts += np.histogram(d, bins=edges)[0]
        norm += n_a * n_b_other / atoms.get_volume()
    if norm == 0.0:
        raise ValueError(f"no frame holds the pair {A}-{B}")
    shell = 4.0 / 3.0 * np.pi * (edges[1:] ** 3 - edges[:-1] ** 3)
    return 0.5 * (edges[1:] + edges[:-1]), counts / (norm * shell)


def running_coordination(r_A: np.ndarray, g: np.ndarray, rho_B_per_A3: float) -> np.ndarray:
    """n(r) = integral_0^r 4 pi r'^2 rho_B g(r') dr' at the upper bin edges (bins of equal width).

    Uses the same exact shell volumes as :func:`rdf`, so integrating an rdf reproduces its pair
    counts per A atom exactly.
    """
    r_A = np.asarray(r_A, dtype=float)
    dr = r_A[1] - r_A[0] if len(r_A) > 1 else 2 * r_A[0]
    upper = r_A + dr / 2
    lower = r_A - dr / 2
    shell = 4.0 / 3.0 * np.pi * (upper**3 - np.clip(lower, 0, None) ** 3)
    return np.cumsum(rho_B_per_A3 * np.asarray(g, dtype=float) * shell)


# ------------------------------------------------------------------------------------------- angles
def _cutoff(cutoffs_A: dict[tuple[str, str], float], a: str, b: str) -> float:
    for key in ((a, b), (b, a)):
        if key in cutoffs_A:
            return float(cutoffs_A[key])
    raise KeyError(f"no bond cutoff for the pair {a}-{b}")


def bond_angles(frames: Atoms | Iterable[Atoms], chain: tuple[str, str, str] = ("Mn", "N", "C"),
                cutoffs_A: dict[tuple[str, str], float] | None = None) -> np.ndarray:
    """Angles (deg) end1-centre-end2 over all bonded triples, e.g. Mn-N-C (centre N), Fe-C-N (centre C).

    A bond is a pair within the cutoff of :data:`BOND_CUTOFFS_A` (overridable per pair by
    ``cutoffs_A``). Every centre atom contributes one angle per (end1, end2) pair of its bonded
    neighbours, so a regular framework gives one angle per cyanide. Periodic images are handled by
    the neighbour list. Returns a 1-D array over all frames (concatenated). Note the solid-angle
    Jacobian: a thermally isotropic bend gives a density ~ sin(theta) that vanishes at exactly 180.
    """
    end1, centre, end2 = chain
    cut = {**BOND_CUTOFFS_A, **(cutoffs_A or {})}
    pair_cut = {(centre, end1): _cutoff(cut, centre, end1), (centre, end2): _cutoff(cut, centre, end2)}
    out = []
    for atoms in _frames(frames):
        _require_periodic(atoms)
        sym = np.asarray(atoms.get_chemical_symbols())
        i, j, D = neighbor_list("ijD", atoms, pair_cut)
        is_c = sym[i] == centre
        m1 = is_c & (sym[j] == end1)
        m2 = is_c & (sym[j] == end2)
        i2, D2 = i[m2], D[m2]
        order = np.argsort(i2, kind="stable")
        i2, D2 = i2[order], D2[order]
        if end1 == end2:
            i1, D1 = i2, D2
        else:
            i1, D1 = i[m1], D[m1]
        cnt = np.bincount(i2, minlength=len(atoms))
        start = np.cumsum(cnt) - cnt
        rep = cnt[i1]
        row1 = np.repeat(np.arange(len(i1)), rep)
        row2 = np.repeat(start[i1], rep) + (np.arange(rep.sum()) - np.repeat(np.cumsum(rep) - rep, rep))
        if end1 == end2:  # distinct unordered pairs of neighbours of the same species
            keep = row1 < row2
            row1, row2 = row1[keep], row2[keep]
        v1, v2 = D1[row1], D2[row2]
        cos = np.einsum("ij,ij->i", v1, v2) / (np.linalg.norm(v1, axis=1) * np.linalg.norm(v2, axis=1))
        out.append(np.degrees(np.arccos(np.clip(cos, -1.0, 1.0))))
    return np.concatenate(out)


def mn_n_c_angles(frames: Atoms | Iterable[Atoms], **kw) -> np.ndarray:
    """Mn-N-C angles (deg), centre N; see :func:`bond_angles`."""
    return bond_angles(frames, ("Mn", "N", "C"), **kw)


def fe_c_n_angles(frames: Atoms | Iterable[Atoms], **kw) -> np.ndarray:
    """Fe-C-N angles (deg), centre C; see :func:`bond_angles`."""
    return bond_angles(frames, ("Fe", "C", "N"), **kw)


def angle_histogram(angles_deg: np.ndarray, bins: int = 90, range_deg: tuple[float, float] = (90.0, 180.0),
                    density: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(bin centres in deg, histogram) of angles; ``density`` normalises to unit area (1/deg).

    The last bin includes its upper edge, so exactly 180 deg falls into the last bin.
    """
    h, edges = np.histogram(np.asarray(angles_deg, dtype=float), bins=bins, range=range_deg, density=density)
    return 0.5 * (edges[1:] + edges[:-1]), h


# -------------------------------------------------------------------------------------- coordination
class CoordinationStats(NamedTuple):
    values: np.ndarray  # coordination numbers that occur
    fraction: np.ndarray  # fraction of centre atoms with that coordination
    mean: float
    std: float


def na_coordination(atoms: Atoms, r_cut_A: float = NA_N_COORDINATION_CUTOFF_A, center: str = "Na",
                    neighbor: str = "N") -> np.ndarray:
    """Number of ``neighbor`` atoms within ``r_cut_A`` of each ``center`` atom (in index order), periodic."""
    _require_periodic(atoms)
    sym = np.asarray(atoms.get_chemical_symbols())
    centres = np.flatnonzero(sym == center)
    if len(centres) == 0:
        return np.zeros(0, dtype=int)
    i, j = neighbor_list("ij", atoms, {(center, neighbor): r_cut_A})
    sel = (sym[i] == center) & (sym[j] == neighbor)
    return np.bincount(i[sel], minlength=len(atoms))[centres]


def coordination_distribution(counts: np.ndarray | Sequence[np.ndarray]) -> CoordinationStats:
    """Distribution of coordination numbers pooled over one or several frames (list of arrays)."""
    if isinstance(counts, np.ndarray):
        flat = counts.ravel()
    else:
        parts = [np.asarray(c).ravel() for c in counts]
        flat = np.concatenate(parts) if parts else np.zeros(0, dtype=int)
    flat = flat.astype(int)
    if flat.size == 0:
        return CoordinationStats(np.zeros(0, dtype=int), np.zeros(0), float("nan"), float("nan"))
    values, n = np.unique(flat, return_counts=True)
    return CoordinationStats(values, n / flat.size, float(flat.mean()), float(flat.std()))


# ----------------------------------------------------------------------------------- lattice, volume
class LatticeParameters(NamedTuple):
    a_A: float
    b_A: float
    c_A: float
    alpha_deg: float
    beta_deg: float
    gamma_deg: float


def pba_repeat(atoms: Atoms, metals: tuple[str, ...] = ("Fe", "Mn")) -> tuple[int, int, int]:
    """How many conventional (4 f.u., pseudo-cubic) PBA cells the cell holds along each cell vector.

    Inferred from the framework: a metal's chain neighbour along +cell vector k is 1/(2 n_k) of that
    vector away (median over metals). Needs cell vectors along the chains (true for build_pba cells).
    """
    _require_periodic(atoms)
    frame = atoms[np.isin(atoms.get_chemical_symbols(), metals)]
    if len(frame) == 0:
        raise ValueError(f"no framework metals {metals}: give the repeat explicitly")
    a_est = (8 * frame.get_volume() / len(frame)) ** (1 / 3)
    i, D = neighbor_list("iD", frame, 0.6 * a_est)
    frac = D @ np.linalg.inv(frame.cell.array)
    best = np.full((len(frame), 3), -np.inf)
    for k in range(3):
        np.maximum.at(best[:, k], i, frac[:, k])
    half_step = np.median(best, axis=0)
    if np.any(half_step <= 0):
        raise ValueError("could not find chain neighbours along every cell vector")
    return tuple(int(round(1 / (2 * h))) for h in half_step)


def lattice_parameters(atoms: Atoms, repeat: int | Sequence[int] | None = None) -> LatticeParameters:
    """a, b, c (A) and alpha, beta, gamma (deg) of the conventional PBA cell: the (super)cell vector
    lengths divided by ``repeat`` (int or 3 ints; inferred with :func:`pba_repeat` when None)."""
    if repeat is None:
        repeat = pba_repeat(atoms)
    rep = np.broadcast_to(np.asarray(repeat, dtype=float), (3,))
    if np.any(rep <= 0):
        raise ValueError(f"repeat must be positive, not {repeat}")
    par = atoms.cell.cellpar()
    return LatticeParameters(*(float(v) for v in par[:3] / rep), *(float(v) for v in par[3:]))


def classify_lattice(p: LatticeParameters, length_rtol: float = 0.005, angle_tol_deg: float = 0.5) -> str:
    """'cubic' | 'rhombohedral' | 'tetragonal' | 'other' from lattice parameters.

    Two lengths are equal when they differ by at most ``length_rtol`` relative to the larger, two
    angles when they differ by at most ``angle_tol_deg``; an angle is right within ``angle_tol_deg``
    of 90. Rules, in order: all lengths equal and all angles right -> cubic; all lengths equal, all
    angles equal and not right -> rhombohedral; all angles right and exactly one pair of equal lengths
    (the third differing) -> tetragonal; anything else (orthorhombic, monoclinic, ...) -> other.
    """
    lengths = np.array(p[:3], dtype=float)
    angles = np.array(p[3:], dtype=float)

    def same(x: float, y: float) -> bool:
        return abs(x - y) <= length_rtol * max(x, y)

    equal_pairs = [same(lengths[m], lengths[n]) for m, n in ((0, 1), (1, 2), (0, 2))]
    all_equal = all(equal_pairs)
    right = bool(np.all(np.abs(angles - 90.0) <= angle_tol_deg))
    if all_equal and right:
        return "cubic"
    if all_equal and np.ptp(angles) <= angle_tol_deg:
        return "rhombohedral"
    if right and sum(equal_pairs) == 1:
        return "tetragonal"
    return "other"


def classify_cell(atoms: Atoms, repeat: int | Sequence[int] | None = None, **tolerances) -> str:
    """:func:`classify_lattice` of :func:`lattice_parameters` (tolerances passed through)."""
    return classify_lattice(lattice_parameters(atoms, repeat), **tolerances)


def volume_per_formula_unit_A3(atoms: Atoms, formula_unit_symbol: str = "Fe") -> float:
    """Cell volume per formula unit Na_xMn[Fe(CN)6] (A^3), counting one ``formula_unit_symbol`` per unit."""
    n_fu = int(np.sum(np.asarray(atoms.get_chemical_symbols()) == formula_unit_symbol))
    if n_fu == 0:
        raise ValueError(f"no {formula_unit_symbol} atoms to count formula units")
    return float(atoms.get_volume()) / n_fu


def volume_change_percent(initial: Atoms | float, final: Atoms | float, formula_unit_symbol: str = "Fe") -> float:
    """100 (V_final / V_initial - 1), volumes per formula unit (A^3 given directly, or from Atoms).

    Per formula unit, so cells of different size (or a supercell against its unit cell) compare.
    E.g. desodiation: initial = sodiated, final = desodiated (the paper reports +12 %).
    """
    def v(s: Atoms | float) -> float:
        return volume_per_formula_unit_A3(s, formula_unit_symbol) if isinstance(s, Atoms) else float(s)

    v0, v1 = v(initial), v(final)
    if v0 <= 0 or v1 <= 0:
        raise ValueError("volumes must be positive")
    return 100.0 * (v1 / v0 - 1.0)
