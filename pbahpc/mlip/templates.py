"""Level-N Moment Tensor Potential templates, generated from the definition of the basis.

Moment tensors M_{mu,nu} = sum_j f_mu(r_ij) r_hat_ij^{(x)nu} have level 2 + 4 mu + nu. A scalar basis
function contracts a multiset of them completely; it is a multigraph whose vertices are the factors (degree =
rank nu) and whose edge multiplicities count the indices two factors share. There are no self-loops: a
trace of M_{mu,nu} is M_{mu,nu-2}, a factor of lower level. Two graphs related by a vertex permutation that
keeps the labels (mu, nu) are the same function. The level-N basis is every such graph, connected or not,
whose factor levels sum to at most N, with at most four factors, mu <= 5 and nu <= 10 as in the published
MLIP templates (the last two limits bind only from level 26 on). These rules give, for every level 2..28,
the published templates' functions one to one (same values, not just the same number).

From level 16 on the basis is linearly dependent in three dimensions, in the published templates as here:
e.g. with A = M_{mu,2} and tr A = M_{mu,0}, Cayley-Hamilton gives tr A^4 = 4/3 trA trA^3 - (trA)^2 trA^2 +
1/2 (trA^2)^2 + 1/6 (trA)^4, all five being level-16 basis functions for mu = 0.

The MLIP `.mtp` program evaluates them: ``alpha_index_basic`` lists the components (mu, a, b, c) of every
moment tensor used, ``alpha_index_times`` entries {i, j, mult, k} do moment[k] += mult * moment[i] *
moment[j] in order, and ``alpha_moment_mapping`` names the scalars. Each connected graph is evaluated as a
binary tree of contractions over vertex subsets; the tensor of a subset keeps one symmetric index group per
vertex (the indices going out of the subset), stored once per orbit of the subset's label-preserving
automorphisms, and is shared by every graph that contains the same subset. Per graph the tree with the
fewest new entries is chosen (greedy, estimated). A disconnected graph is one product of two basis
functions. Up to level 12 the program has MLIP's size; from 14 on it needs fewer entries than MLIP's
(which contracts one basic tensor at a time into a chain) for the same functions.

``moments`` and ``site_energy`` are a small numpy reference evaluator of such files, for checks, not speed.
"""
from __future__ import annotations

from dataclasses import dataclass
from itertools import permutations
from math import comb, factorial, prod
from pathlib import Path

import numpy as np

from .mtp_file import MTPData, write_mtp

# limits of the published MLIP templates
MAX_FACTORS = 4
MAX_MU = 5
MAX_RANK = 10

Tensor = tuple[int, int]  # (mu, nu)
Monomial = tuple[int, int, int]  # powers of x, y, z


def tensor_level(t: Tensor) -> int:
    return 2 + 4 * t[0] + t[1]


@dataclass(frozen=True, order=True)
class Contraction:
    """One scalar basis function: sorted factors (mu, nu) and edges (i, j, shared indices), i < j."""

    factors: tuple[Tensor, ...]
    edges: tuple[tuple[int, int, int], ...]

    @property
    def level(self) -> int:
        return sum(tensor_level(t) for t in self.factors)

    def components(self) -> list[tuple[int, ...]]:
        """Vertex sets of the connected components, in order of their first vertex."""
        parent = list(range(len(self.factors)))

        def root(v: int) -> int:
            while parent[v] != v:
                v = parent[v]
            return v

        for i, j, _ in self.edges:
            parent[root(j)] = root(i)
        groups: dict[int, list[int]] = {}
        for v in range(len(self.factors)):
            groups.setdefault(root(v), []).append(v)
        return [tuple(g) for g in groups.values()]

    def sub(self, vertices: tuple[int, ...]) -> Contraction:
        """The contraction formed by some of the vertices (all edges among them kept)."""
        new = {v: n for n, v in enumerate(vertices)}
        return _canonical([self.factors[v] for v in vertices],
                          {(new[i], new[j]): m for i, j, m in self.edges if i in new and j in new})


def _canonical(factors: list[Tensor], mult: dict[tuple[int, int], int]) -> Contraction:
    order = sorted(range(len(factors)), key=lambda v: factors[v])
    labels = tuple(factors[v] for v in order)
    best = None
    for perm in permutations(order):
        if tuple(factors[v] for v in perm) != labels:
            continue
        pos = {v: n for n, v in enumerate(perm)}
        key = tuple(sorted((min(pos[i], pos[j]), max(pos[i], pos[j]), m) for (i, j), m in mult.items() if m))
        best = key if best is None or key < best else best
    return Contraction(labels, best)


def _tensors(level: int) -> list[Tensor]:
    return [(mu, nu) for mu in range(MAX_MU + 1) for nu in range(MAX_RANK + 1) if tensor_level((mu, nu)) <= level]


def _factor_sets(level: int) -> list[tuple[Tensor, ...]]:
    tensors, out = _tensors(level), []

    def extend(start: int, chosen: tuple[Tensor, ...], left: int) -> None:
        if chosen:
            out.append(chosen)
        if len(chosen) < MAX_FACTORS:
            for n in range(start, len(tensors)):
                if tensor_level(tensors[n]) <= left:
                    extend(n, chosen + (tensors[n],), left - tensor_level(tensors[n]))

    extend(0, (), level)
    return out


def _graphs(factors: tuple[Tensor, ...]) -> set[Contraction]:
    """Every loopless multigraph with vertex degrees nu, up to label-preserving permutations."""
    n, found = len(factors), set()

    def distribute(v: int, rest: list[int], mult: dict[tuple[int, int], int]) -> None:
        if v == n - 1:
            if rest[v] == 0:
                found.add(_canonical(list(factors), mult))
            return
        # split vertex v's remaining indices over the later vertices
        def share(w: int, left: int, rest: list[int], mult: dict) -> None:
            if w == n:
                if left == 0:
                    distribute(v + 1, rest, mult)
                return
            for m in range(min(left, rest[w]) + 1):
                rest2 = rest.copy()
                rest2[w] -= m
                share(w + 1, left - m, rest2, {**mult, (v, w): m})

        share(v + 1, rest[v], rest, mult)

    distribute(0, [t[1] for t in factors], {})
    return found


def basis_functions(level: int) -> list[Contraction]:
    """The scalar basis of a level, ordered by number of factors, level, then structure."""
    if level < 2:
        raise ValueError(f"MTP level must be >= 2, got {level}")
    found = set()
    for factors in _factor_sets(level):
        if sum(t[1] for t in factors) % 2 == 0:
            found |= _graphs(factors)
    return sorted(found, key=lambda c: (len(c.factors), c.level, c))


def _monomials(rank: int) -> list[Monomial]:
    """Components of a symmetric rank-`rank` tensor, in MLIP's order (x power descending, then y)."""
    return [(a, b, rank - a - b) for a in range(rank, -1, -1) for b in range(rank - a, -1, -1)]


def _weight(m: Monomial) -> int:
    """Number of index tuples with these x, y, z counts."""
    return factorial(sum(m)) // (factorial(m[0]) * factorial(m[1]) * factorial(m[2]))


def _add(a: Monomial, b: Monomial) -> Monomial:
    return (a[0] + b[0], a[1] + b[1], a[2] + b[2])


ZERO: Monomial = (0, 0, 0)


class _Subset:
    """The tensor of a vertex subset S of a graph: one symmetric index group per vertex, holding the
    indices that leave S. ``key`` identifies it across graphs; ``order`` lists S in key order."""

    def __init__(self, g: Contraction, vertices: tuple[int, ...]):
        mult = {}
        for i, j, m in g.edges:
            mult[i, j] = mult[j, i] = m
        inside = set(vertices)
        free = {v: sum(m for (i, w), m in mult.items() if i == v and w not in inside) for v in vertices}
        best, orders = None, []
        for perm in permutations(vertices):
            sig = (tuple((g.factors[v], free[v]) for v in perm),
                   tuple(mult.get((perm[a], perm[b]), 0) for a in range(len(perm)) for b in range(a + 1, len(perm))))
            if best is None or sig < best:
                best, orders = sig, [perm]
            elif sig == best:
                orders.append(perm)
        self.key, self.order = best, orders[0]
        self.free = [free[v] for v in self.order]
        # automorphisms as position permutations of the key order
        self.autos = [[self.order.index(v) for v in perm] for perm in orders]
        self.mult = mult

    def rep(self, comp: tuple[Monomial, ...]) -> tuple[Monomial, ...]:
        """Smallest equivalent component under the automorphisms."""
        return min(tuple(comp[p] for p in auto) for auto in self.autos)

    def components(self) -> list[tuple[Monomial, ...]]:
        comps = [()]
        for f in self.free:
            comps = [c + (m,) for c in comps for m in _monomials(f)]
        return sorted({self.rep(c) for c in comps})

    def size(self) -> int:
        """Number of stored components (Burnside: mean over automorphisms of the components they fix)."""
        fixed = 0
        for auto in self.autos:
            seen, count = set(), 1
            for start in range(len(auto)):
                if start not in seen:  # a cycle of positions shares one monomial
                    count *= comb(self.free[start] + 2, 2)
                    p = start
                    while p not in seen:
                        seen.add(p)
                        p = auto[p]
            fixed += count
        return fixed // len(self.autos)


class _Program:
    """Accumulates the basic moments and contraction entries shared by all basis functions."""

    def __init__(self, tensors: list[Tensor]):
        self.basic: list[tuple[int, int, int, int]] = []
        # moment index of each stored component, by subset key (a single vertex: its basic tensor)
        self.index: dict[tuple, dict[tuple[Monomial, ...], int]] = {}
        for t in tensors:
            self.index[((t, t[1]),), ()] = {(m,): len(self.basic) + n for n, m in enumerate(_monomials(t[1]))}
            self.basic += [(t[0], *m) for m in _monomials(t[1])]
        self.count = len(self.basic)
        self.times: list[tuple[int, int, int, int]] = []

    def _trees(self, vertices: tuple[int, ...]):
        """All binary trees (vertices, left, right) over the vertices; a leaf is a 1-tuple."""
        if len(vertices) == 1:
            yield vertices
            return
        first, rest = vertices[0], vertices[1:]
        for mask in range((1 << len(rest)) - 1):  # the left part holds the first vertex, the right is not empty
            left = (first,) + tuple(v for n, v in enumerate(rest) if mask >> n & 1)
            right = tuple(v for v in vertices if v not in left)
            for a in self._trees(left):
                for b in self._trees(right):
                    yield (vertices, a, b)

    def _cost(self, g: Contraction, tree, counted: set) -> tuple[int, int]:
        """Estimated new (entries, moments) of the nodes not built yet; an entry per component and
        combination of contracted components."""
        if len(tree) == 1:
            return 0, 0
        vertices, a, b = tree
        node = _Subset(g, vertices)
        entries = moments = 0
        if node.key not in self.index and node.key not in counted:
            counted.add(node.key)
            left = a if len(a) == 1 else a[0]
            right = b if len(b) == 1 else b[0]
            moments = node.size()
            entries = moments * prod(comb(node.mult[u, w] + 2, 2)
                                     for u in left for w in right if node.mult.get((u, w), 0))
        cost_a, cost_b = self._cost(g, a, counted), self._cost(g, b, counted)
        return entries + cost_a[0] + cost_b[0], moments + cost_a[1] + cost_b[1]

    def _build(self, g: Contraction, tree) -> _Subset:
        """Emit the entries of a tree's nodes (children first) unless already built."""
        if len(tree) == 1:
            return _Subset(g, tree)
        vertices, a, b = tree
        node = _Subset(g, vertices)
        if node.key in self.index:
            return node
        left, right = self._build(g, a), self._build(g, b)
        cross = [(u, w, node.mult[u, w]) for u in left.order for w in right.order if node.mult.get((u, w), 0)]
        comps = node.components()
        self.index[node.key] = {c: self.count + n for n, c in enumerate(comps)}
        for c in comps:
            k = self.index[node.key][c]
            mono = dict(zip(node.order, c))
            terms: dict[tuple[int, int], int] = {}
            for choice in _choices([m for _, _, m in cross]):
                mono_l = {v: mono.get(v, ZERO) for v in left.order}
                mono_r = {v: mono.get(v, ZERO) for v in right.order}
                weight = 1
                for (u, w, _), m in zip(cross, choice):
                    mono_l[u] = _add(mono_l[u], m)
                    mono_r[w] = _add(mono_r[w], m)
                    weight *= _weight(m)
                i = self.index[left.key][left.rep(tuple(mono_l[v] for v in left.order))]
                j = self.index[right.key][right.rep(tuple(mono_r[v] for v in right.order))]
                pair = (min(i, j), max(i, j))
                terms[pair] = terms.get(pair, 0) + weight
            self.times += [(i, j, w, k) for (i, j), w in sorted(terms.items())]
        self.count += len(comps)
        return node

    def add_connected(self, g: Contraction) -> int:
        """Moment index of a connected basis function, building the cheapest tree."""
        vertices = tuple(range(len(g.factors)))
        best = min(self._trees(vertices), key=lambda t: self._cost(g, t, set()))
        node = self._build(g, best)
        (k,) = self.index[node.key].values()  # a scalar has one component
        return k

    def add_product(self, i: int, j: int) -> int:
        self.times.append((min(i, j), max(i, j), 1, self.count))
        self.count += 1
        return self.count - 1


def _choices(ranks: list[int]):
    """Every tuple of monomials with the given degrees."""
    if not ranks:
        yield ()
        return
    for m in _monomials(ranks[0]):
        for rest in _choices(ranks[1:]):
            yield (m,) + rest


@dataclass(frozen=True)
class Template:
    """A level's basis functions and the MLIP program that evaluates them."""

    level: int
    functions: list[Contraction]  # in alpha_moment_mapping order
    alpha_index_basic: np.ndarray
    alpha_index_times: np.ndarray
    alpha_moment_mapping: np.ndarray
    radial_funcs_count: int

    def data(self, species_count: int = 1, min_dist: float = 2.0, max_dist: float = 5.0,
             radial_basis_size: int = 8) -> MTPData:
        """Untrained `.mtp` content for this template."""
        data = MTPData(species_count=species_count, min_dist=min_dist, max_dist=max_dist,
                       radial_basis_size=radial_basis_size, radial_funcs_count=self.radial_funcs_count,
                       alpha_index_basic=self.alpha_index_basic, alpha_index_times=self.alpha_index_times,
                       alpha_moment_mapping=self.alpha_moment_mapping)
        data.check()
        return data


def build_template(level: int) -> Template:
    """The basis of a level and its program."""
    functions = basis_functions(level)
    tensors = sorted({t for f in functions for t in f.factors})
    program = _Program(tensors)
    moment: dict[Contraction, int] = {}
    # fewer factors first: the parts of a disconnected function, and shareable subsets, already exist
    for f in functions:
        parts = f.components()
        if len(parts) == 1:
            moment[f] = program.add_connected(f)
        else:
            rest = tuple(v for p in parts[:-1] for v in p)
            moment[f] = program.add_product(moment[f.sub(rest)], moment[f.sub(parts[-1])])
    return Template(level=level, functions=functions,
                    alpha_index_basic=np.array(program.basic, dtype=np.int64).reshape(-1, 4),
                    alpha_index_times=np.array(program.times, dtype=np.int64).reshape(-1, 4),
                    alpha_moment_mapping=np.array([moment[f] for f in functions], dtype=np.int64),
                    radial_funcs_count=max(t[0] for t in tensors) + 1)


def write_template(level: int, species_count: int, path: str | Path, min_dist: float = 2.0,
                   max_dist: float = 5.0, radial_basis_size: int = 8) -> MTPData:
    """Write the untrained level-`level` `.mtp` file; returns what was written."""
    data = build_template(level).data(species_count, min_dist, max_dist, radial_basis_size)
    write_mtp(path, data)
    return data


def moments(data: MTPData, unit: np.ndarray, radial: np.ndarray) -> np.ndarray:
    """All moments of a batch of neighbourhoods by running the program.

    ``unit``: unit vectors to the neighbours, (batch, n, 3); ``radial``: f_mu at each neighbour,
    (batch, radial_funcs_count, n). Returns (alpha_moments_count, batch); the scalar basis functions are
    the rows ``data.alpha_moment_mapping``.
    """
    mu, a, b, c = data.alpha_index_basic.T
    values = np.zeros((data.alpha_moments_count, unit.shape[0]))
    x, y, z = (unit[:, None, :, axis] for axis in range(3))  # (batch, 1, n)
    angular = x ** a[:, None] * y ** b[:, None] * z ** c[:, None]  # (batch, basic, n)
    values[: len(mu)] = (radial[:, mu] * angular).sum(axis=-1).T
    for i, j, mult, k in data.alpha_index_times.tolist():
        values[k] += mult * values[i] * values[j]
    return values


def radial_functions(data: MTPData, r: np.ndarray, itype: int, jtypes: np.ndarray) -> np.ndarray:
    """f_mu(r) of the trained potential, (radial_funcs_count, n): Chebyshev polynomials of the scaled
    distance times scaling * (max_dist - r)^2, zero beyond max_dist."""
    s = (2 * r - (data.min_dist + data.max_dist)) / (data.max_dist - data.min_dist)
    cheb = np.polynomial.chebyshev.chebvander(s, data.radial_basis_size - 1)  # (n, rbs)
    q = cheb * np.where(r < data.max_dist, data.scaling * (data.max_dist - r) ** 2, 0.0)[:, None]
    return np.einsum("nmb,nb->mn", data.radial_coeffs[itype, jtypes], q)


def site_energy(data: MTPData, vectors: np.ndarray, itype: int, jtypes: np.ndarray) -> float:
    """Energy of one atom of type ``itype`` with neighbours at ``vectors`` (n, 3) of types ``jtypes``."""
    if len(vectors) == 0:
        return float(data.species_coeffs[itype])
    r = np.linalg.norm(vectors, axis=1)
    basis = moments(data, (vectors / r[:, None])[None], radial_functions(data, r, itype, jtypes)[None])
    return float(data.species_coeffs[itype] + data.moment_coeffs @ basis[data.alpha_moment_mapping, 0])
