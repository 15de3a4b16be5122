"""What the pseudo-2D cell solver needs, as plain runtime objects (PyBaMM keeps model, parameters and
solver apart; so do we): the YAML parameter set (parameters.py) resolves into these, the solver (cell.py)
only reads them.

SI units throughout: m, s, mol, A, V, J, K. Particle concentrations are c in mol/m^3 with the
stoichiometry x = c / formula_units_mol_m3 (x is what the paper and the OCV tables use). Sign
convention (PyBaMM's): the applied current density I > 0 discharges the cell; the interfacial current
density j > 0 takes the inserted ion out of the particle (anodic).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

FARADAY_C_MOL = 96485.33212
R_GAS_J_MOL_K = 8.314462618

Array = np.ndarray
Fn = Callable[[Array], Array]
"""A vectorised scalar function, e.g. OCV(x) in V or D(c_e) in m^2/s."""


def slot_scales(slots: int, fu: float, ch: bool, temperature_K: float) -> tuple[Array, Array, Array, Array]:
    """Per-slot (differential, mass, typical, row_scale) of interleaved [c, mu] unknowns: c rows carry
    the time derivative (scaled by 1/fu like the row), mu rows are algebraic (scale RT, or fu if mu = c)."""
    c_slot = np.arange(slots) % 2 == 0
    typical = np.where(c_slot, fu, R_GAS_J_MOL_K * temperature_K if ch else fu)
    return c_slot, np.where(c_slot, 1.0 / fu, 0.0), typical, 1.0 / typical


def butler_volmer_A_m2(e: "Electrode", c_e: Array, dphi_V: Array, U_V: Array, x_surf: Array, f: float,
                      temperature_K: float) -> Array:
    """Eq. 29: j0(c_e, x_surf, T) [exp(alpha f eta) - exp(-(1 - alpha) f eta)], eta = dphi - U (A/m^2,
    > 0 takes the ion out); f eta clipped to +-200 so that wild Newton iterates stay finite."""
    eta = np.minimum(np.maximum(f * (dphi_V - U_V), -200.0), 200.0)  # np.clip's wrappers cost more here
    alpha = e.transfer_coefficient
    j0 = e.exchange_current_A_m2(np.maximum(c_e, 0.0), x_surf, temperature_K)
    return j0 * (np.exp(alpha * eta) - np.exp(-(1.0 - alpha) * eta))


@dataclass(frozen=True)
class FickianParticle:
    """dc/dt = div(D grad c) in a sphere; equilibrium potential from a tabulated OCV."""

    diffusivity_m2_s: Fn
    """D(x), x the stoichiometry."""
    ocv_V: Fn
    """Open-circuit potential U(x) vs the metal (V)."""


@dataclass(frozen=True)
class CahnHilliardParticle:
    """Eqs. 19-22 split into c and mu: dc/dt = div(M grad mu), mu = mu_hom(c) - kappa lap c."""

    mu_hom_J_mol: Fn
    """Homogeneous chemical potential of the inserted ion vs the metal, mu(x) in J/mol (OCV = -mu/F)."""
    mobility: Fn
    """M(x) in mol^2/(J m s): the molar flux is -M grad mu."""
    kappa_J_m5_mol2: float
    """Gradient-energy coefficient k of Eq. 19, J m^5/mol^2."""


@dataclass(frozen=True)
class CahnHilliard2DParticle(CahnHilliardParticle):
    """The same law on an axisymmetric (r, theta) sphere with Butler-Volmer at every surface cell
    (particles2d.py): a Na-poor patch can stay open at the surface while the Na-rich phase grows."""

    cells_theta: int = 16
    """Polar cells over [0, pi]."""
    perturbation_x: float = 1e-3
    """Amplitude of the seeded zero-mean stoichiometry noise of the initial state (breaks the symmetry)."""
    seed: int = 0
    exchange_current_variation: float = 0.0
    """Seeded zero-mean relative variation of j0 between surface cells (facets of different reactivity):
    unlike the initial noise, it survives a single-phase state and so breaks the symmetry on discharge too."""


Particle = FickianParticle | CahnHilliardParticle


@dataclass(frozen=True)
class ParticleSizes:
    """Several particle sizes at every node of an electrode (the 'mosaic'): each size is its own particle
    with its own surface current, all sharing the node's c_e, phi_e and phi_s (particles.SizeMix)."""

    radii_m: tuple[float, ...]
    fractions: tuple[float, ...]
    """Share of the electrode's active volume held by each size (> 0, summing to 1)."""


@dataclass(frozen=True)
class Electrode:
    """A porous electrode of spherical particles of one size, or of several (`sizes`)."""

    thickness_m: float
    porosity: float
    active_fraction: float
    """Volume fraction of active material (the rest of the solid, 1 - porosity - active, is binder/carbon)."""
    particle_radius_m: float
    formula_units_mol_m3: float
    """Host formula units per m^3 of active material: c = x * formula_units_mol_m3."""
    x_initial: float
    particle: Particle
    exchange_current_A_m2: Callable[[Array, Array, float], Array]
    """j0(c_e, x_surf, T) in A/m^2: c_e in mol/m^3, x_surf the particle's surface stoichiometry, T in K
    (functions.ExchangeCurrent: Eq. 29's j0_ref sqrt(c_e / c_ref), or k c_e^a x^b (x_max - x)^c with
    an Arrhenius factor)."""
    conductivity_S_m: float
    """Solid-phase (electronic) conductivity; the effective one is sigma * (1 - porosity)^bruggeman_solid."""
    bruggeman: float = 1.5
    bruggeman_solid: float = 1.5
    transfer_coefficient: float = 0.5
    x_max: float = 1.0
    """Stoichiometry window [0, x_max]: a step ends when any particle cell leaves it."""
    cells_x: int = 20
    cells_r: int = 20
    sizes: ParticleSizes | None = None
    """None: one size, particle_radius_m. Else those sizes, each with cells_r radial cells;
    particle_radius_m is then their Sauter mean 1 / sum(f_k / R_k) (the one radius with the same area)."""

    @property
    def specific_area_m(self) -> float:
        """a = 3 eps_s / R (sum over sizes of 3 eps_s f_k / R_k), interfacial area per electrode volume (1/m)."""
        if self.sizes is None:
            return 3.0 * self.active_fraction / self.particle_radius_m
        return 3.0 * self.active_fraction * sum(f / r for r, f in zip(self.sizes.radii_m, self.sizes.fractions))

    @property
    def solid_conductivity_eff_S_m(self) -> float:
        return self.conductivity_S_m * (1.0 - self.porosity) ** self.bruggeman_solid


@dataclass(frozen=True)
class Separator:
    thickness_m: float
    porosity: float
    bruggeman: float = 1.5
    cells_x: int = 10


@dataclass(frozen=True)
class Electrolyte:
    """Binary electrolyte by concentrated-solution theory; functions of c_e in mol/m^3."""

    initial_mol_m3: float
    diffusivity_m2_s: Fn
    conductivity_S_m: Fn
    transference_number: float
    thermodynamic_factor: Fn
    """1 + dln f/dln c_e."""


@dataclass(frozen=True)
class Cell:
    """Anode | separator | cathode along x, x = 0 at the anode current collector."""

    anode: Electrode
    separator: Separator
    cathode: Electrode
    electrolyte: Electrolyte
    temperature_K: float
    area_m2: float = 1.0
    capacity_Ah: float | None = None
    """Nominal capacity that defines 1C; None: the cathode's between x_initial and the other end of its
    stoichiometry window (see cell.one_c_current_density)."""
    x_window: tuple[float, float] = (0.0, 1.0)
    """Cathode stoichiometry range cycled, used for the nominal capacity."""


@dataclass(frozen=True)
class Step:
    """One protocol step. mode 'current': constant current density (C-rate, > 0 discharges);
    'voltage': constant cell voltage; 'rest': zero current. It ends at duration_s or when its cutoff
    is crossed: the voltage for 'current' steps, |I| below current_cutoff_C (in C) for 'voltage'."""

    mode: Literal["current", "voltage", "rest"]
    c_rate: float = 0.0
    voltage_V: float = 0.0
    duration_s: float = float("inf")
    cutoff_V: float | None = None
    current_cutoff_C: float | None = None
    label: str = ""


@dataclass(frozen=True)
class SolverSettings:
    ts_type: str = "bdf"
    rtol: float = 1e-6
    atol_fraction: float = 1e-8
    """Absolute tolerance of concentrations as a fraction of their scale (formula units, c_e0)."""
    dt_initial_s: float = 1e-3
    dt_max_s: float = float("inf")
    petsc_options: tuple[str, ...] = ()
    output_interval_s: float = 60.0
    """How often c(x, r, t) is recorded (the voltage is recorded every step)."""
    record_positions: tuple[float, ...] = field(default=(0.0, 0.5, 1.0))
    """Cathode positions (fraction of its thickness from the separator) whose surface x is recorded."""
