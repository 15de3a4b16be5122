"""Atomistic -> continuum parameters of the Cahn-Hilliard particle (paper Sec. II.G, Eqs. 24-28, App. A).

Units: stoichiometry x (per formula unit), concentration N = x * formula_units in mol/m^3, chemical
potential mu in J/mol, bulk free energy G(N) = integral of mu dN in J/m^3, gradient coefficient k in
J m^5/mol^2, interface energy gamma in J/m^2, mobility M in mol^2/(J m s), diffusivity D in m^2/s.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.integrate import cumulative_simpson, quad, simpson
from scipy.optimize import brentq

from .functions import Function

Array = np.ndarray

MIN_CELLS_PER_WIDTH = 4.0
"""Radial cells an interface width (Eq. 28) must span for the particle mesh to resolve it."""

_BARRIER_POINTS = 4001  # x samples across the gap for p(N): k of the quartic well to ~1e-12


@dataclass(frozen=True)
class MiscibilityGap:
    binodal_x: tuple[float, float]
    """Na-poor and Na-rich phase stoichiometries of the common tangent."""
    spinodal_x: tuple[float, float]
    """Where dmu/dx = 0 (the loop's local maximum, then minimum)."""
    mu_coexistence_J_mol: float
    """The common tangent's slope: the two-phase plateau, OCV = -mu / F."""


def common_tangent(mu_J_mol: Function, x_lo: float, x_hi: float, samples: int = 2001) -> MiscibilityGap:
    """Binodals of G = integral mu dx on [x_lo, x_hi] by Maxwell's equal-area rule for a mu(x) with one
    loop (rising, falling, rising). Raises ValueError if mu has no single loop or a binodal lies outside.

    In x rather than N: N = x * formula_units is linear, so the construction gives the same points.
    """
    xs = np.linspace(x_lo, x_hi, samples)
    rising = np.asarray(mu_J_mol.derivative(xs)) > 0.0
    turns = np.flatnonzero(rising[1:] != rising[:-1])
    if len(turns) != 2 or not rising[0]:
        raise ValueError(f"mu(x) must rise, fall and rise again on [{x_lo}, {x_hi}] (one loop); "
                         f"it changes direction {len(turns)} time(s)")
    dmu = lambda v: float(mu_J_mol.derivative(v))  # noqa: E731 (scalar views for brentq/quad)
    mu = lambda v: float(mu_J_mol(v))  # noqa: E731
    s1, s2 = (brentq(dmu, xs[i], xs[i + 1]) for i in turns)

    def binodals(m: float) -> tuple[float, float]:
        return brentq(lambda v: mu(v) - m, x_lo, s1), brentq(lambda v: mu(v) - m, s2, x_hi)

    m_lo, m_hi = max(mu(s2), mu(x_lo)), min(mu(s1), mu(x_hi))
    # the area vanishes at the answer, so only an absolute tolerance (relative to the loop) is reachable
    tol = 1e-10 * abs(mu(s1) - mu(s2)) * (x_hi - x_lo)

    def area(m: float) -> float:  # decreasing in m: d(area)/dm = -(x2 - x1)
        a, b = binodals(m)
        return quad(lambda v: mu(v) - m, a, b, epsabs=tol, epsrel=0.0, limit=200)[0]

    if not (m_lo < m_hi and area(m_lo) > 0.0 > area(m_hi)):
        raise ValueError(f"a binodal of mu(x) lies outside [{x_lo}, {x_hi}]")
    m = brentq(area, m_lo, m_hi, xtol=1e-12 * max(1.0, abs(m_lo)), rtol=4 * np.finfo(float).eps)
    return MiscibilityGap(binodals(m), (s1, s2), m)


def _barrier(mu_J_mol: Function, gap: MiscibilityGap, formula_units_mol_m3: float):
    """x across the gap and p(N(x)) of Eq. 27 in J/m^3: G above the common tangent."""
    x = np.linspace(*gap.binodal_x, _BARRIER_POINTS)
    excess_J_mol = mu_J_mol(x) - gap.mu_coexistence_J_mol
    p = formula_units_mol_m3 * cumulative_simpson(excess_J_mol, x=x, initial=0.0)
    return x, np.maximum(p, 0.0)  # round-off can dip below 0 next to the binodals


def _sqrt_p_integral(mu_J_mol, gap, formula_units_mol_m3) -> float:
    """Integral of sqrt(p(N)) dN over the gap, J^1/2 m^-3/2 mol/m^3."""
    x, p = _barrier(mu_J_mol, gap, formula_units_mol_m3)
    return formula_units_mol_m3 * simpson(np.sqrt(p), x=x)


def kappa_from_interface_energy(gamma_J_m2: float, mu_J_mol: Function, gap: MiscibilityGap,
                                formula_units_mol_m3: float) -> float:
    """k in J m^5/mol^2 from Eq. 26 inverted: gamma = sqrt(2 k) * integral sqrt(p(N)) dN."""
    return 0.5 * (gamma_J_m2 / _sqrt_p_integral(mu_J_mol, gap, formula_units_mol_m3)) ** 2


def interface_energy_from_kappa(kappa_J_m5_mol2: float, mu_J_mol: Function, gap: MiscibilityGap,
                                formula_units_mol_m3: float) -> float:
    """gamma in J/m^2 from Eq. 26."""
    return np.sqrt(2.0 * kappa_J_m5_mol2) * _sqrt_p_integral(mu_J_mol, gap, formula_units_mol_m3)


def interface_width_m(kappa_J_m5_mol2: float, mu_J_mol: Function, gap: MiscibilityGap,
                      formula_units_mol_m3: float) -> float:
    """Interface width l = (N2 - N1) sqrt(k / (2 max p)) in m.

    Eq. 28 as printed divides by N2 - N1, which does not give a length (m^7/mol^2); multiplying does.
    For the quartic well G = W c^2 (1 - c)^2, c = (N - N1)/(N2 - N1), l = 2 delta with
    delta = (N2 - N1) sqrt(2 k / W) the tanh length: the profile's rise from 12% to 88% of the jump.
    """
    _, p = _barrier(mu_J_mol, gap, formula_units_mol_m3)
    delta_N = formula_units_mol_m3 * (gap.binodal_x[1] - gap.binodal_x[0])
    return delta_N * np.sqrt(kappa_J_m5_mol2 / (2.0 * p.max()))


class PhaseMobility(Function):
    """M(x) in mol^2/(J m s): M_poor below the Na-poor binodal, M_rich above the Na-rich one, and across
    the gap a smoothstep h = 3t^2 - 2t^3 in t = (x - x1)/(x2 - x1) (C1 at the binodals) blends
    ln M (blend 'log') or M itself (blend 'linear').

    The paper (Eq. 24) fixes M only inside each phase. 'log' keeps neither phase's value dominant inside
    the gap when they differ by orders of magnitude; 'linear' is the phase-field practice of
    interpolating a property by the local phase fraction h (the phases side by side conduct in
    parallel), so a composition inside the gap keeps the fast phase's mobility and decomposes as fast.
    """

    def __init__(self, mobility_poor: float, mobility_rich: float, binodal_x: tuple[float, float],
                 blend: str = "log"):
        if blend not in ("log", "linear"):
            raise ValueError(f"blend must be 'log' or 'linear', not {blend!r}")
        self.poor, self.rich, self.blend = mobility_poor, mobility_rich, blend
        self.log_poor, self.log_ratio = np.log(mobility_poor), np.log(mobility_rich / mobility_poor)
        self.x1, self.width = binodal_x[0], binodal_x[1] - binodal_x[0]

    def _t(self, v) -> Array:
        return np.clip((np.asarray(v, dtype=float) - self.x1) / self.width, 0.0, 1.0)

    def __call__(self, v) -> Array:
        t = self._t(v)
        h = t * t * (3.0 - 2.0 * t)
        if self.blend == "linear":
            return self.poor + (self.rich - self.poor) * h
        return np.exp(self.log_poor + self.log_ratio * h)

    def derivative(self, v) -> Array:
        t = self._t(v)
        dh = 6.0 * t * (1.0 - t) / self.width
        if self.blend == "linear":
            return (self.rich - self.poor) * dh
        return self(v) * self.log_ratio * dh


def mobility_from_diffusivity(diffusivity_poor_m2_s: float, diffusivity_rich_m2_s: float,
                              mu_J_mol: Function, gap: MiscibilityGap,
                              formula_units_mol_m3: float, blend: str = "log") -> PhaseMobility:
    """Eq. 24, D = M dmu/dN, applied at each phase's binodal: M_i = D_i / (dmu/dN)(x_i); `blend` across
    the gap as PhaseMobility."""
    slopes = np.asarray(mu_J_mol.derivative(np.array(gap.binodal_x))) / formula_units_mol_m3  # J m^3/mol^2
    m_poor, m_rich = diffusivity_poor_m2_s / slopes[0], diffusivity_rich_m2_s / slopes[1]
    return PhaseMobility(m_poor, m_rich, gap.binodal_x, blend)


def check_interface_resolution(width_m: float, dr_m: float,
                               cells_per_width: float = MIN_CELLS_PER_WIDTH) -> float:
    """The factor (>= 1) by which the interface must widen to span ``cells_per_width`` radial cells.

    At fixed mu(x) both gamma and l scale as sqrt(k), so this is also the interface-energy inflation
    needed (the paper used 0.5 J/m^2 instead of ~5 mJ/m^2 to get l ~ R/10); k scales by its square.
    """
    return max(1.0, cells_per_width * dr_m / width_m)
