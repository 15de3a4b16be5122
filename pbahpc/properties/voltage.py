"""Average and open-circuit voltage of Na_xMn[Fe(CN)6] against metallic Na (paper Eq. 31).

Eq. 31 of the paper, for ``n_Na`` sodium atoms inserted into a cell of fixed framework,

    V_ave = -(E_f - E_i - n_Na E_Na) / (n_Na e),

with E_i, E_f the total energies (eV) of the cell before and after insertion and E_Na the energy of
metallic (bcc) Na per atom (eV/atom). The reaction is host(x_low) + n_Na Na(metal) -> host(x_high); a
voltage V > 0 means inserting Na from the metal lowers the energy. Desodiation between the same two
states gives the same average voltage (both numerator and n_Na change sign). Energies in eV, Na
contents ``x`` per formula unit Na_xMn[Fe(CN)6] (0..2), voltages in V: with energies in eV and one
elementary charge moved per Na, V (volt) has the value of the energy per Na in eV.

Sign convention of the profile: mu(x) = dG/dx is the chemical potential of Na in the host (eV per Na,
G per formula unit), and V(x) = -(mu(x) - mu_Na) / e, i.e. the open-circuit voltage falls as x rises
for a stable (convex G) solid solution. mu(x) and mu_Na must share the energy zero of the potential
that produced them (e.g. total energies of the same MLIP); a GCMC reservoir chemical potential in the
LAMMPS ``fix gcmc`` convention also contains the ideal-gas (de Broglie) term of the reservoir and is
not on that scale without conversion.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
from ase import Atoms
from ase.build import bulk
from ase.calculators.calculator import BaseCalculator
from scipy.optimize import minimize_scalar

NA_BCC_A_A = 4.23  # experimental lattice constant of bcc Na near 0 K (A), the default scan centre


def insertion_voltage_V(E_initial_eV: float, E_final_eV: float, n_na: float, E_na_eV_per_atom: float) -> float:
    """Eq. 31 literally: cell energies E_i, E_f (eV), ``n_na`` inserted Na atoms (E_f has n_na more Na)."""
    if n_na == 0:
        raise ValueError("n_na must be non-zero")
    return float(-(E_final_eV - E_initial_eV - n_na * E_na_eV_per_atom) / n_na)


def average_voltage(E_low_eV: float, x_low: float, E_high_eV: float, x_high: float, mu_Na_eV: float,
                    formula_units: float = 1.0) -> float:
    """Average voltage (V) between Na contents ``x_low`` and ``x_high`` per formula unit (Eq. 31).

    ``E_low_eV`` and ``E_high_eV`` are the energies of the two states *per formula unit* by default;
    pass energies of a whole cell together with ``formula_units`` (the number of Mn[Fe(CN)6] units in
    that cell, 4 per conventional PBA cell) so that n_Na = (x_high - x_low) * formula_units. Both
    energies must refer to the same framework (same number of formula units). ``mu_Na_eV`` is the
    metallic-Na reference energy in eV/atom (see :func:`sodium_reference`). The arguments may also be
    given in the opposite order (x_low > x_high): the result is the same.
    """
    n_na = (x_high - x_low) * formula_units
    if not np.isfinite(n_na) or abs(n_na) < 1e-12:
        raise ValueError(f"the two states must differ in Na content (x_low={x_low}, x_high={x_high})")
    return insertion_voltage_V(E_low_eV, E_high_eV, n_na, mu_Na_eV)


class SodiumReference(NamedTuple):
    energy_eV_per_atom: float
    a_A: float | None  # relaxed conventional bcc lattice constant (A); None for a given number
    source: str


def bcc_sodium_energy_eV_per_atom(calculator: BaseCalculator, a_A: float, symbol: str = "Na") -> float:
    """Energy per atom (eV) of the 2-atom conventional bcc cell of lattice constant ``a_A`` (A)."""
    atoms: Atoms = bulk(symbol, "bcc", a=a_A, cubic=True)
    atoms.calc = calculator
    return float(atoms.get_potential_energy()) / len(atoms)


def relax_bcc_sodium(calculator: BaseCalculator, a_guess_A: float = NA_BCC_A_A, rel_window: float = 0.15,
                     n_scan: int = 31, xtol_A: float = 1e-6, symbol: str = "Na",
                     max_expand: int = 6) -> SodiumReference:
    """Relax the lattice constant of bcc Na with ``calculator``: 1-D scan, then bounded Brent refine.

    The energy per atom of the conventional cubic cell (atoms at the ideal bcc positions, which are
    fixed by symmetry, so only the lattice constant is free) is scanned on ``n_scan`` points over
    ``a_guess_A * (1 +- rel_window)``; if the lowest point lies on an edge the window is moved there
    (up to ``max_expand`` times). The minimum is then refined with ``scipy.optimize.minimize_scalar``
    (bounded Brent) between the scan neighbours of the lowest point, to ``xtol_A`` (A). Returns the
    energy per atom (eV) at the relaxed lattice constant (A). The scan protects against a local
    minimum next to the guess; a calculator whose energy jumps (shifted, truncated pair potentials
    whose neighbour shells cross the cutoff) may still put the refined minimum at such a jump.
    """
    if n_scan < 5:
        raise ValueError("n_scan must be at least 5")

    def energy(a: float) -> float:
        return bcc_sodium_energy_eV_per_atom(calculator, a, symbol)

    centre = float(a_guess_A)
    for _ in range(max_expand + 1):
        grid = centre * (1 + np.linspace(-rel_window, rel_window, n_scan))
        e = np.array([energy(a) for a in grid])
        k = int(np.argmin(e))
        if 0 < k < n_scan - 1:
            break
        centre = float(grid[k])
    else:
        raise RuntimeError(f"no minimum of the bcc {symbol} energy found near a = {a_guess_A} A")
    res = minimize_scalar(energy, bounds=(grid[k - 1], grid[k + 1]), method="bounded",
                          options={"xatol": xtol_A})
    a_min, e_min = (float(res.x), float(res.fun)) if res.fun <= e[k] else (float(grid[k]), float(e[k]))
    return SodiumReference(e_min, a_min, f"bcc {symbol} relaxed with {type(calculator).__name__}")


def sodium_reference(reference: float | BaseCalculator | SodiumReference, **relax_kwargs) -> SodiumReference:
    """The metallic-Na reference E_Na: a number (eV/atom), or relaxed bcc Na with an ASE calculator.

    ``relax_kwargs`` go to :func:`relax_bcc_sodium` (``a_guess_A``, ``rel_window``, ``n_scan``, ...).
    Use the same potential as for the host energies; a DFT value is only meaningful with DFT host
    energies (the paper uses DFT E_Na with MTP host energies that are fitted to the same DFT).
    """
    if isinstance(reference, SodiumReference):
        return reference
    if isinstance(reference, BaseCalculator):
        return relax_bcc_sodium(reference, **relax_kwargs)
    if relax_kwargs:
        raise TypeError("relaxation options only apply to a calculator reference")
    value = float(reference)
    if not np.isfinite(value):
        raise ValueError(f"reference energy must be finite, not {reference!r}")
    return SodiumReference(value, None, "given")


def voltage_profile_from_mu(mu_eV: np.ndarray, mu_Na_eV: float) -> np.ndarray:
    """Open-circuit voltage V(x) = -(mu(x) - mu_Na) / e in V, mu in eV per Na (same energy zero)."""
    return -(np.asarray(mu_eV, dtype=float) - float(mu_Na_eV))


def chemical_potential_from_G(x: np.ndarray, G_eV_per_fu: np.ndarray) -> np.ndarray:
    """mu(x) = dG/dx (eV per Na) from G(x) per formula unit on a strictly increasing grid of x.

    Second-order finite differences (``numpy.gradient`` with one-sided second-order edges); smooth or
    fit a noisy G first (differentiating raw sampled free energies amplifies noise).
    """
    x = np.asarray(x, dtype=float)
    G = np.asarray(G_eV_per_fu, dtype=float)
    if x.ndim != 1 or x.shape != G.shape or len(x) < 3:
        raise ValueError("x and G must be 1-D arrays of equal length >= 3")
    if np.any(np.diff(x) <= 0):
        raise ValueError("x must be strictly increasing")
    return np.gradient(G, x, edge_order=2)


def voltage_profile_from_G(x: np.ndarray, G_eV_per_fu: np.ndarray, mu_Na_eV: float) -> np.ndarray:
    """V(x) in V from the free energy G(x) per formula unit (eV): V = -(dG/dx - mu_Na)."""
    return voltage_profile_from_mu(chemical_potential_from_G(x, G_eV_per_fu), mu_Na_eV)
