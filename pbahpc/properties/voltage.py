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

import numpy as np


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
    metallic-Na reference energy in eV/atom (``properties.na_reference_eV``). The arguments may also be
    given in the opposite order (x_low > x_high): the result is the same.
    """
    n_na = (x_high - x_low) * formula_units
    if not np.isfinite(n_na) or abs(n_na) < 1e-12:
        raise ValueError(f"the two states must differ in Na content (x_low={x_low}, x_high={x_high})")
    return insertion_voltage_V(E_low_eV, E_high_eV, n_na, mu_Na_eV)


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
