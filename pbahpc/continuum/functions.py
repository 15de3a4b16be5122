"""Scalar material functions (OCV(x), D(c_e), ...) from the parameter file, with their derivatives.

YAML forms of a function spec (parameters.py turns a bare number into ``{constant: v}``):

    {constant: v}
    {polynomial: [a0, a1, a2, ...]}        a0 + a1 v + a2 v^2 + ...
    {table: {x: [...], y: [...]}}          monotone cubic (PCHIP) through the points

A table is extrapolated linearly with its end slopes, not held constant: a flat OCV beyond the table
would give the solver no restoring force (and a zero derivative) when a surface stoichiometry
overshoots the tabulated range.

Every resolved function is a picklable ``Function``: ``f(v)`` and ``f.derivative(v)`` take and return
numpy arrays of any shape.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy.interpolate import PchipInterpolator

from ..config.validate import ConfigError
from .model import R_GAS_J_MOL_K

Array = np.ndarray


class Function:
    """A vectorised scalar function of one variable and its derivative."""

    def __call__(self, v) -> Array:
        raise NotImplementedError

    def derivative(self, v) -> Array:
        raise NotImplementedError


class Constant(Function):
    def __init__(self, value: float):
        self.value = float(value)

    def __call__(self, v) -> Array:
        return np.full(np.shape(v), self.value)

    def derivative(self, v) -> Array:
        return np.zeros(np.shape(v))


class Polynomial(Function):
    """a0 + a1 v + a2 v^2 + ... (coefficients in increasing order)."""

    def __init__(self, coefficients):
        self.poly = np.polynomial.Polynomial(np.asarray(coefficients, dtype=float))
        self.slope = self.poly.deriv()

    def __call__(self, v) -> Array:
        return self.poly(np.asarray(v, dtype=float))

    def derivative(self, v) -> Array:
        return self.slope(np.asarray(v, dtype=float))


class Table(Function):
    """PCHIP through (x, y), x strictly increasing; linear beyond the ends with the end slopes."""

    def __init__(self, x, y):
        self.x, self.y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
        self.lo, self.hi = float(x[0]), float(x[-1])
        self.interp = PchipInterpolator(self.x, self.y)
        self.slope = self.interp.derivative()

    def __call__(self, v) -> Array:
        v = np.asarray(v, dtype=float)
        inside = np.clip(v, self.lo, self.hi)
        return self.interp(inside) + self.slope(inside) * (v - inside)

    def derivative(self, v) -> Array:
        return self.slope(np.clip(np.asarray(v, dtype=float), self.lo, self.hi))


class Scaled(Function):
    """factor * f(v), e.g. a chemical potential in eV per ion -> J/mol."""

    def __init__(self, f: Function, factor: float):
        self.f, self.factor = f, float(factor)

    def __call__(self, v) -> Array:
        return self.factor * self.f(v)

    def derivative(self, v) -> Array:
        return self.factor * self.f.derivative(v)


class EdgeBarrier(Function):
    """f(x) + RT g(x / w) for x < w and - RT g((x_max - x) / w) for x > x_max - w (f in J/mol), with
    g(s) = ln s + (1 - s) + (1 - s)^2 / 2, the logarithm less its Taylor polynomial at s = 1.

    The ideal-solution entropy of the last ions / vacancies near a composition end, which makes mu
    diverge there (like RT ln x); a polynomial fit of sampled mu(x) cannot carry it. Zero inside
    [w, x_max - w], so binodals inside that range are unchanged. g, g' = (1 - s)^2 / s and g'' vanish
    at s = 1, so mu is C2 at x = w: a bare RT ln(x / w) has a kink there (dmu/dx jumped x28 with the
    MnFePBA set), where Newton cycled and the discharge crawled at dt ~ 5e-4 s through x = w.
    x is floored at 1e-12 w from each end.
    """

    def __init__(self, f: Function, x_max: float, width: float, rt_J_mol: float):
        self.f, self.x_max, self.width, self.rt = f, float(x_max), float(width), float(rt_J_mol)

    def _ends(self, v):
        v = np.asarray(v, dtype=float)
        lo = np.clip(v, 1e-12 * self.width, self.width) / self.width
        hi = np.clip(self.x_max - v, 1e-12 * self.width, self.width) / self.width
        return v, lo, hi

    @staticmethod
    def _g(s):
        return np.log(s) + (1.0 - s) + 0.5 * (1.0 - s) ** 2

    def __call__(self, v) -> Array:
        v, lo, hi = self._ends(v)
        return self.f(v) + self.rt * (self._g(lo) - self._g(hi))

    def derivative(self, v) -> Array:
        v, lo, hi = self._ends(v)
        return self.f.derivative(v) + self.rt / self.width * ((1.0 - lo) ** 2 / lo + (1.0 - hi) ** 2 / hi)


@dataclass(frozen=True)
class TableSpec:
    x: tuple[float, ...] = field(metadata={"nonempty": True})
    y: tuple[float, ...] = field(metadata={"nonempty": True})

    def check(self, key: str) -> None:
        if len(self.y) != len(self.x):
            raise ConfigError(f"{key}.y", f"needs one value per x ({len(self.x)}), got {len(self.y)}")
        if len(self.x) < 2:
            raise ConfigError(f"{key}.x", "needs at least 2 points")
        for i in range(1, len(self.x)):
            if self.x[i] <= self.x[i - 1]:
                raise ConfigError(f"{key}.x", f"must be strictly increasing, got {self.x[i]} after {self.x[i - 1]}")


@dataclass(frozen=True)
class FunctionSpec:
    """Exactly one of constant, polynomial, table (see the module docstring)."""

    constant: float | None = None
    polynomial: tuple[float, ...] | None = field(default=None, metadata={"nonempty": True})
    table: TableSpec | None = None

    def check(self, key: str) -> None:
        given = [name for name in ("constant", "polynomial", "table") if getattr(self, name) is not None]
        if len(given) != 1:
            got = f", got {' and '.join(given)}" if given else ""
            raise ConfigError(key, f"needs exactly one of constant, polynomial, table{got}")

    def resolve(self) -> Function:
        if self.constant is not None:
            return Constant(self.constant)
        if self.polynomial is not None:
            return Polynomial(self.polynomial)
        return Table(self.table.x, self.table.y)


class ExchangeCurrent:
    """Butler-Volmer exchange current density j0(c_e, x, T) in A/m^2 (c_e in mol/m^3, x the particle's
    surface stoichiometry, T in K):

        j0 = k (c_e / c_ref)^a x^b (x_max - x)^c exp(-Ea/R (1/T - 1/T_ref))

    The paper's Eq. 29 is k = j0_ref, c_ref = the electrolyte's c_0, a = 1/2, b = c = 0, Ea = 0; the
    standard form (PyBaMM's parameter sets, Dualfoil) has c_ref = 1 mol/m^3 and b = c = 1/2 (there
    k x_max^(b+c) is m_ref c_max^(b+c) of the concentration form). c_e and x are clipped into [0, inf)
    and [0, x_max] first: a Newton iterate that overshoots must not raise a negative base to a
    fractional power (NaN). The cell's Jacobian is built by coloured finite differences, so no
    derivative is needed here; the Butler-Volmer row's pattern already holds the surface slots.
    """

    def __init__(self, k_A_m2: float, *, c_ref_mol_m3: float = 1.0, a: float = 0.5, b: float = 0.0,
                 c: float = 0.0, x_max: float = 1.0, Ea_J_mol: float = 0.0, T_ref_K: float = 298.15):
        self.k, self.c_ref, self.a, self.b, self.c = float(k_A_m2), float(c_ref_mol_m3), float(a), float(b), float(c)
        self.x_max, self.Ea, self.T_ref = float(x_max), float(Ea_J_mol), float(T_ref_K)

    def arrhenius(self, T_K: float) -> float:
        return math.exp(-self.Ea / R_GAS_J_MOL_K * (1.0 / T_K - 1.0 / self.T_ref))

    def __call__(self, c_e, x, T_K: float) -> Array:
        j0 = self.k * (np.maximum(np.asarray(c_e, dtype=float), 0.0) / self.c_ref) ** self.a
        if self.b or self.c:  # Eq. 29 does not depend on x: skip the work (the residual runs ~20x per Jacobian)
            x = np.clip(np.asarray(x, dtype=float), 0.0, self.x_max)
            j0 = j0 * x ** self.b * (self.x_max - x) ** self.c
        return j0 * self.arrhenius(T_K) if self.Ea else j0
