"""The P2D parameter file (``pbahpc p2d PARAMS.yaml``) -> model.Cell, protocol steps, solver settings.

Sections: cell, anode, separator, cathode, electrolyte, protocol, solver (inputs/p2d-*.yaml are
commented examples). SI units, named in the keys. Every problem is one ConfigError line
``<file>: <key.path>: <problem>``; sections are checked by pbahpc.config.validate, material functions
are FunctionSpecs (functions.py) where a bare number means a constant.

Cahn-Hilliard particles get their continuum parameters from the atomistic ones (mapping.py): the
miscibility gap from mu(x), k from an interface energy (Eq. 26) and M from per-phase diffusivities
(Eq. 24); the interface must span MIN_CELLS_PER_WIDTH radial cells, widened on request by inflating
the interface energy as the paper does.
"""
from __future__ import annotations

import dataclasses
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args, get_type_hints


import numpy as np
from scipy.special import ndtri

from ..config.load import read_yaml
from ..config.validate import ConfigError, build
from . import mapping
from .cell import one_c_current_density, rest_voltage_V
from .functions import EdgeBarrier, ExchangeCurrent, FunctionSpec, Scaled
from .model import (FARADAY_C_MOL, R_GAS_J_MOL_K, CahnHilliard2DParticle, CahnHilliardParticle, Cell, Electrode,
                    Electrolyte, FickianParticle, ParticleSizes, Separator, SolverSettings, Step)


class ParameterWarning(UserWarning):
    """A parameter set that runs but departs from the physical inputs (e.g. an inflated interface energy)."""


def _m(**meta) -> dict:
    return meta


# ---- schema -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class CellSection:
    temperature_K: float = field(metadata=_m(gt=0.0))
    area_m2: float = field(default=1.0, metadata=_m(gt=0.0))
    capacity_Ah: float | None = field(default=None, metadata=_m(gt=0.0))
    """Defines 1C; default: the cathode's charge over its stoichiometry window [0, x_max]."""


@dataclass(frozen=True)
class FickianSection:
    model: Literal["fickian"]
    diffusivity_m2_s: FunctionSpec
    """D(x), x the stoichiometry."""
    ocv_V: FunctionSpec
    """U(x) vs the metal."""


@dataclass(frozen=True)
class PhaseDiffusivities:
    poor: float = field(metadata=_m(gt=0.0))
    """D of the Na-poor phase (low-x binodal), m^2/s."""
    rich: float = field(metadata=_m(gt=0.0))


@dataclass(frozen=True)
class CahnHilliardSection:
    model: Literal["cahn-hilliard"]
    mu_eV: FunctionSpec
    """Chemical potential of the inserted ion vs the metal, eV per ion, of x (OCV = -mu)."""
    mobility: FunctionSpec | None = None
    """M(x) in mol^2/(J m s); or give diffusivity_m2_s."""
    diffusivity_m2_s: PhaseDiffusivities | None = None
    """Per-phase D mapped to M by Eq. 24 at each binodal (mapping.mobility_from_diffusivity)."""
    mobility_blend: Literal["log", "linear"] | None = None
    """With diffusivity_m2_s: how M crosses the miscibility gap, ln M (default) or M blended
    (mapping.PhaseMobility)."""
    kappa_J_m5_mol2: float | None = field(default=None, metadata=_m(gt=0.0))
    interface_energy_J_m2: float | None = field(default=None, metadata=_m(gt=0.0))
    """gamma mapped to k by Eq. 26; give this or kappa_J_m5_mol2."""
    physical_interface_energy_J_m2: float | None = field(default=None, metadata=_m(gt=0.0))
    """The atomistic value, if interface_energy_J_m2 is inflated: the factor is reported (and warned)."""
    inflate_interface: bool = False
    """true: widen an unresolved interface by raising gamma (k by its square) instead of failing."""
    edge_barrier_x: float | None = field(default=None, metadata=_m(gt=0.0))
    """Add RT ln terms within this distance of x = 0 and x_max (functions.EdgeBarrier) so that mu
    diverges at the composition ends; keep it inside the binodals."""

    def check(self, key: str) -> None:
        if (self.mobility is None) == (self.diffusivity_m2_s is None):
            raise ConfigError(key, "needs exactly one of mobility, diffusivity_m2_s")
        if self.mobility_blend is not None and self.diffusivity_m2_s is None:
            raise ConfigError(f"{key}.mobility_blend", "applies to diffusivity_m2_s only (mobility gives M(x) itself)")
        if (self.kappa_J_m5_mol2 is None) == (self.interface_energy_J_m2 is None):
            raise ConfigError(key, "needs exactly one of kappa_J_m5_mol2, interface_energy_J_m2")
        if self.physical_interface_energy_J_m2 is not None and self.interface_energy_J_m2 is None:
            raise ConfigError(f"{key}.physical_interface_energy_J_m2", "needs interface_energy_J_m2")


@dataclass(frozen=True)
class CahnHilliard2DSection(CahnHilliardSection):
    """The same law on an axisymmetric (r, theta) sphere with Butler-Volmer per surface cell (particles2d.py)."""

    model: Literal["cahn-hilliard-2d"]
    cells_theta: int = field(default=16, metadata=_m(min=4))
    """Polar cells over [0, pi] (the radial ones are the electrode's cells_r)."""
    perturbation_x: float = field(default=1e-3, metadata=_m(min=0.0))
    """Amplitude of the seeded zero-mean initial stoichiometry noise that breaks the symmetry."""
    seed: int = field(default=0, metadata=_m(min=0))
    exchange_current_variation: float = field(default=0.0, metadata=_m(min=0.0, max=0.5))
    """Seeded zero-mean relative variation of j0 between surface cells (persistent symmetry breaking);
    a uniform [-1, 1] draw minus its mean stays within [-2, 2], so <= 0.5 keeps every j0 >= 0."""


PARTICLE_MODELS = {"fickian": FickianSection, "cahn-hilliard": CahnHilliardSection,
                   "cahn-hilliard-2d": CahnHilliard2DSection}


@dataclass(frozen=True)
class ExchangeCurrentSection:
    """j0 = k_A_m2 (c_e / [1 mol/m^3])^a x^b (x_max - x)^c exp(-Ea/R (1/T - 1/T_ref)) (functions.ExchangeCurrent),
    x the particle's surface stoichiometry. PyBaMM's concentration form m_ref c_e^a c_s^b (c_max - c_s)^c
    is k_A_m2 = m_ref c_max^(b + c) with x_max = 1."""

    form: Literal["standard"]
    k_A_m2: float = field(metadata=_m(gt=0.0))
    """A/m^2 with c_e counted in mol/m^3 (so k's own unit is A/m^2 per (mol/m^3)^a)."""
    a: float = field(default=0.5, metadata=_m(min=0.0))
    b: float = field(default=0.5, metadata=_m(min=0.0))
    c: float = field(default=0.5, metadata=_m(min=0.0))
    Ea_J_mol: float = field(default=0.0, metadata=_m(min=0.0))
    """Activation energy; 0: no temperature dependence."""
    T_ref_K: float = field(default=298.15, metadata=_m(gt=0.0))
    """Temperature at which j0 is k c_e^a x^b (x_max - x)^c."""


@dataclass(frozen=True)
class LogNormalSizes:
    """The active volume's radius distribution is log-normal: ln R normal with median ln(median_radius_m)
    and standard deviation sigma. Discretised deterministically into `count` sizes at its quantiles
    (k + 1/2) / count, k = 0 .. count - 1, each holding 1 / count of the active volume."""

    median_radius_m: float = field(metadata=_m(gt=0.0))
    sigma: float = field(metadata=_m(gt=0.0))
    count: int = field(metadata=_m(min=2))

    def sizes(self) -> ParticleSizes:
        q = (np.arange(self.count) + 0.5) / self.count
        return ParticleSizes(tuple(float(r) for r in self.median_radius_m * np.exp(self.sigma * ndtri(q))),
                             (1.0 / self.count,) * self.count)


FRACTION_SUM_TOLERANCE = 1e-9


@dataclass(frozen=True)
class ParticleSizesSection:
    """Several particle sizes at every node (particles.SizeMix): radii_m with fractions (of the active
    volume, > 0, summing to 1), or log_normal."""

    radii_m: tuple[float, ...] | None = field(default=None, metadata=_m(gt=0.0, nonempty=True))
    fractions: tuple[float, ...] | None = field(default=None, metadata=_m(gt=0.0, nonempty=True))
    log_normal: LogNormalSizes | None = None

    def check(self, key: str) -> None:
        if (self.radii_m is None) == (self.log_normal is None):
            raise ConfigError(key, "needs exactly one of radii_m (with fractions), log_normal")
        if self.log_normal is not None:
            if self.fractions is not None:
                raise ConfigError(f"{key}.fractions", "goes with radii_m only (log_normal sets its own)")
            return
        if self.fractions is None:
            raise ConfigError(f"{key}.fractions", f"required with radii_m: one volume fraction per radius "
                                                  f"({len(self.radii_m)})")
        if len(self.fractions) != len(self.radii_m):
            raise ConfigError(f"{key}.fractions", f"needs one entry per radius ({len(self.radii_m)}), "
                                                  f"got {len(self.fractions)}")
        if abs(sum(self.fractions) - 1.0) > FRACTION_SUM_TOLERANCE:
            raise ConfigError(f"{key}.fractions", f"must sum to 1, got {sum(self.fractions):.12g}")

    def sizes(self) -> ParticleSizes:
        return self.log_normal.sizes() if self.log_normal is not None else ParticleSizes(self.radii_m, self.fractions)


@dataclass(frozen=True)
class ElectrodeSection:
    """Also takes ``particle: {model: fickian | cahn-hilliard, ...}`` (built apart: its fields depend on model)."""

    thickness_m: float = field(metadata=_m(gt=0.0))
    porosity: float = field(metadata=_m(gt=0.0, max=1.0))
    formula_units_mol_m3: float = field(metadata=_m(gt=0.0))
    """Host formula units per m^3 of active material: c = x * formula_units."""
    x_initial: float = field(metadata=_m(min=0.0))
    conductivity_S_m: float = field(metadata=_m(gt=0.0))
    exchange_current_A_m2: float | None = field(default=None, metadata=_m(gt=0.0))
    """j0_ref of Eq. 29, j0 = j0_ref sqrt(c_e / c_ref) (no x or T dependence); or give exchange_current."""
    exchange_current: ExchangeCurrentSection | None = None
    """j0(c_e, x_surf, T) in the standard form (ExchangeCurrentSection)."""
    x_max: float = field(default=1.0, metadata=_m(gt=0.0))
    """Stoichiometry window [0, x_max] (2 for Na2Mn[Fe(CN)6]); bounds x_initial and the binodal search."""
    active_fraction: float | None = field(default=None, metadata=_m(gt=0.0, max=1.0))
    """Default 1 - porosity: an all-active solid (no binder/carbon volume given in the paper)."""
    reference_electrolyte_mol_m3: float | None = field(default=None, metadata=_m(gt=0.0))
    """c_ref of Eq. 29 (with exchange_current_A_m2); default the electrolyte's initial concentration (the
    paper's 'average' c_0)."""
    bruggeman: float = field(default=1.5, metadata=_m(min=0.0))
    bruggeman_solid: float = field(default=1.5, metadata=_m(min=0.0))
    transfer_coefficient: float = field(default=0.5, metadata=_m(gt=0.0, max=1.0))
    cells_x: int = field(default=10, metadata=_m(min=2))
    cells_r: int = field(default=20, metadata=_m(min=3))
    particle_radius_m: float | None = field(default=None, metadata=_m(gt=0.0))
    """One particle size; or give particle_sizes."""
    particle_sizes: ParticleSizesSection | None = None
    """Several sizes per node, each with cells_r radial cells."""

    def check(self, key: str) -> None:
        if (self.particle_radius_m is None) == (self.particle_sizes is None):
            raise ConfigError(key, "needs exactly one of particle_radius_m, particle_sizes")
        if (self.exchange_current_A_m2 is None) == (self.exchange_current is None):
            raise ConfigError(key, "needs exactly one of exchange_current_A_m2 (Eq. 29), exchange_current "
                                   "(form: standard)")
        if self.exchange_current is not None and self.reference_electrolyte_mol_m3 is not None:
            raise ConfigError(f"{key}.reference_electrolyte_mol_m3",
                              "applies to exchange_current_A_m2 only (exchange_current counts c_e in mol/m^3)")
        if self.porosity >= 1.0:
            raise ConfigError(f"{key}.porosity", f"must be < 1, got {self.porosity}")
        if self.active_fraction is not None and self.active_fraction > 1.0 - self.porosity:
            raise ConfigError(f"{key}.active_fraction",
                              f"must be <= 1 - porosity ({1.0 - self.porosity:g}), got {self.active_fraction}")
        if self.x_initial > self.x_max:
            raise ConfigError(f"{key}.x_initial", f"must be <= x_max ({self.x_max}), got {self.x_initial}")
        if self.transfer_coefficient >= 1.0:
            raise ConfigError(f"{key}.transfer_coefficient", f"must be < 1, got {self.transfer_coefficient}")

    def sizes(self) -> ParticleSizes | None:
        return None if self.particle_sizes is None else self.particle_sizes.sizes()

    @property
    def largest_radius_m(self) -> float:
        """The radius whose radial cells are coarsest (the interface-resolution check's)."""
        sizes = self.sizes()
        return self.particle_radius_m if sizes is None else max(sizes.radii_m)


@dataclass(frozen=True)
class SeparatorSection:
    thickness_m: float = field(metadata=_m(gt=0.0))
    porosity: float = field(metadata=_m(gt=0.0, max=1.0))
    bruggeman: float = field(default=1.5, metadata=_m(min=0.0))
    cells_x: int = field(default=5, metadata=_m(min=2))


@dataclass(frozen=True)
class ElectrolyteSection:
    initial_mol_m3: float = field(metadata=_m(gt=0.0))
    diffusivity_m2_s: FunctionSpec
    """Functions of c_e in mol/m^3."""
    conductivity_S_m: FunctionSpec
    transference_number: float = field(metadata=_m(min=0.0, max=1.0))
    thermodynamic_factor: FunctionSpec = FunctionSpec(constant=1.0)


@dataclass(frozen=True)
class CurrentStep:
    c_rate: float = field(metadata=_m(gt=0.0))
    until_V: float | None = field(default=None, metadata=_m(gt=0.0))
    for_s: float | None = field(default=None, metadata=_m(gt=0.0))

    def check(self, key: str) -> None:
        if self.until_V is None and self.for_s is None:
            raise ConfigError(key, "needs until_V or for_s (or both)")


@dataclass(frozen=True)
class HoldStep:
    voltage_V: float = field(metadata=_m(gt=0.0))
    until_C: float | None = field(default=None, metadata=_m(gt=0.0))
    """Ends when |I| falls below this C-rate."""
    for_s: float | None = field(default=None, metadata=_m(gt=0.0))

    def check(self, key: str) -> None:
        if self.until_C is None and self.for_s is None:
            raise ConfigError(key, "needs until_C or for_s (or both)")


@dataclass(frozen=True)
class RestStep:
    for_s: float = field(metadata=_m(gt=0.0))


@dataclass(frozen=True)
class ProtocolEntry:
    charge: CurrentStep | None = None
    discharge: CurrentStep | None = None
    hold: HoldStep | None = None
    rest: RestStep | None = None

    def check(self, key: str) -> None:
        given = [f.name for f in dataclasses.fields(self) if getattr(self, f.name) is not None]
        if len(given) != 1:
            got = f", got {' and '.join(given)}" if given else ""
            raise ConfigError(key, f"needs exactly one of charge, discharge, hold, rest{got}")

    def step(self) -> Step:
        inf = float("inf")
        if self.charge or self.discharge:
            s, sign, label = (self.charge, -1.0, "charge") if self.charge else (self.discharge, 1.0, "discharge")
            return Step("current", c_rate=sign * s.c_rate, duration_s=s.for_s or inf, cutoff_V=s.until_V, label=label)
        if self.hold:
            return Step("voltage", voltage_V=self.hold.voltage_V, duration_s=self.hold.for_s or inf,
                        current_cutoff_C=self.hold.until_C, label="hold")
        return Step("rest", duration_s=self.rest.for_s, label="rest")


@dataclass(frozen=True)
class SolverSection:
    ts_type: Literal["bdf", "arkimex", "theta", "beuler"] = "bdf"
    rtol: float = field(default=1e-6, metadata=_m(gt=0.0, max=0.1))
    atol_fraction: float = field(default=1e-8, metadata=_m(gt=0.0, max=0.1))
    dt_initial_s: float = field(default=1e-3, metadata=_m(gt=0.0))
    dt_max_s: float | None = field(default=None, metadata=_m(gt=0.0))
    """Default: no limit."""
    output_interval_s: float = field(default=60.0, metadata=_m(gt=0.0))
    petsc_options: tuple[str, ...] = ()
    record_positions: tuple[float, ...] = field(default=(0.0, 0.5, 1.0), metadata=_m(min=0.0, max=1.0, nonempty=True))

    def settings(self) -> SolverSettings:
        return SolverSettings(ts_type=self.ts_type, rtol=self.rtol, atol_fraction=self.atol_fraction,
                              dt_initial_s=self.dt_initial_s, dt_max_s=self.dt_max_s or float("inf"),
                              petsc_options=self.petsc_options, output_interval_s=self.output_interval_s,
                              record_positions=self.record_positions)


@dataclass(frozen=True)
class ParameterFile:
    cell: CellSection
    anode: ElectrodeSection
    separator: SeparatorSection
    cathode: ElectrodeSection
    electrolyte: ElectrolyteSection
    protocol: tuple[ProtocolEntry, ...] = field(metadata=_m(nonempty=True))
    solver: SolverSection = SolverSection()


# ---- loading ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ParameterSet:
    cell: Cell
    protocol: tuple[Step, ...]
    solver: SolverSettings
    derived: dict[str, Any]
    """Plain numbers worth printing: one_c_A_m2, and per Cahn-Hilliard electrode (key 'anode' /
    'cathode') binodal_x, spinodal_x, plateau_V, kappa_J_m5_mol2, interface_energy_J_m2,
    interface_width_m, cells_per_width, inflation_factor (vs the physical energy, or the automatic
    widening), mobility_poor / mobility_rich (mol^2/(J m s), when mapped from diffusivities)."""
    source: Path


def load_parameters(path: str | Path) -> ParameterSet:
    """Read and resolve a P2D parameter file; every problem is a one-line ConfigError naming file and key."""
    path = Path(path)
    data = read_yaml(path)
    try:
        return _resolve(data, path)
    except ConfigError as exc:
        raise ConfigError(exc.key, exc.problem, str(path)) from None


def _numbers_as_constants(cls: type, data: Any) -> Any:
    """validate.build takes only mappings for nested dataclasses, so a bare number where the schema
    wants a FunctionSpec becomes {constant: number}; recurses into nested sections."""
    if not isinstance(data, dict):
        return data
    hints, out = get_type_hints(cls), dict(data)
    for f in dataclasses.fields(cls):
        tp = next((a for a in (get_args(hints[f.name]) or (hints[f.name],)) if dataclasses.is_dataclass(a)), None)
        if f.name not in data or tp is None:
            continue
        value = data[f.name]
        if tp is FunctionSpec and isinstance(value, (int, float)) and not isinstance(value, bool):
            out[f.name] = {"constant": value}
        else:
            out[f.name] = _numbers_as_constants(tp, value)
    return out


def _build(cls: type, data: Any, key: str) -> Any:
    return build(cls, _numbers_as_constants(cls, data), key)


def _resolve(data: Any, path: Path) -> ParameterSet:
    if not isinstance(data, dict):
        raise ConfigError("", "expected a mapping with sections cell, anode, separator, cathode, electrolyte, "
                              "protocol, solver")
    data, particles = dict(data), {}
    for side in ("anode", "cathode"):
        if isinstance(data.get(side), dict) and "particle" in data[side]:
            section = dict(data[side])
            particles[side] = section.pop("particle")
            data[side] = section
    doc: ParameterFile = _build(ParameterFile, data, "")

    electrolyte = Electrolyte(
        initial_mol_m3=doc.electrolyte.initial_mol_m3,
        diffusivity_m2_s=doc.electrolyte.diffusivity_m2_s.resolve(),
        conductivity_S_m=doc.electrolyte.conductivity_S_m.resolve(),
        transference_number=doc.electrolyte.transference_number,
        thermodynamic_factor=doc.electrolyte.thermodynamic_factor.resolve())
    derived: dict[str, Any] = {}
    electrodes = {}
    for side in ("anode", "cathode"):
        if side not in particles:
            raise ConfigError(f"{side}.particle", "required key is missing (mapping with model: "
                                                  f"{' or '.join(PARTICLE_MODELS)})")
        sec: ElectrodeSection = getattr(doc, side)
        particle, info = _particle(particles[side], f"{side}.particle", sec, path, doc.cell.temperature_K)
        if info:
            derived[side] = info
        electrodes[side] = Electrode(
            thickness_m=sec.thickness_m, porosity=sec.porosity,
            active_fraction=sec.active_fraction if sec.active_fraction is not None else 1.0 - sec.porosity,
            particle_radius_m=_radius_m(sec), sizes=sec.sizes(), formula_units_mol_m3=sec.formula_units_mol_m3,
            x_initial=sec.x_initial, particle=particle,
            exchange_current_A_m2=_exchange_current(sec, doc.electrolyte.initial_mol_m3),
            conductivity_S_m=sec.conductivity_S_m, bruggeman=sec.bruggeman,
            bruggeman_solid=sec.bruggeman_solid, transfer_coefficient=sec.transfer_coefficient,
            x_max=sec.x_max, cells_x=sec.cells_x, cells_r=sec.cells_r)
    separator = Separator(thickness_m=doc.separator.thickness_m, porosity=doc.separator.porosity,
                          bruggeman=doc.separator.bruggeman, cells_x=doc.separator.cells_x)
    cell = Cell(anode=electrodes["anode"], separator=separator, cathode=electrodes["cathode"],
                electrolyte=electrolyte, temperature_K=doc.cell.temperature_K, area_m2=doc.cell.area_m2,
                capacity_Ah=doc.cell.capacity_Ah, x_window=(0.0, doc.cathode.x_max))
    derived["one_c_A_m2"] = one_c_current_density(cell)
    _check_first_cutoff(doc.protocol, cell)
    return ParameterSet(cell=cell, protocol=tuple(e.step() for e in doc.protocol), solver=doc.solver.settings(),
                        derived=derived, source=path.resolve())


def _radius_m(sec: ElectrodeSection) -> float:
    """The particle radius, or with several sizes their Sauter mean 1 / sum(f_k / R_k) (model.Electrode)."""
    sizes = sec.sizes()
    if sizes is None:
        return sec.particle_radius_m
    return 1.0 / sum(f / r for r, f in zip(sizes.radii_m, sizes.fractions))


def _check_first_cutoff(protocol: tuple[ProtocolEntry, ...], cell: Cell) -> None:
    """The first current step (after any rests) starts at the initial state's open-circuit voltage: a
    charge until_V at or below it, or a discharge until_V at or above it, would never be crossed (the
    cell would run to the x-limit). Later steps are checked when they start (P2DCell.run_step)."""
    for i, entry in enumerate(protocol):
        if entry.rest is not None:
            continue
        s = entry.charge or entry.discharge
        if s is None or s.until_V is None:
            return
        ocv = rest_voltage_V(cell)
        if entry.charge is not None and s.until_V <= ocv:
            raise ConfigError(f"protocol[{i}].charge.until_V", f"{s.until_V:g} V is at or below the starting "
                              f"open-circuit voltage {ocv:.4f} V: a charge raises the voltage, set until_V above it")
        if entry.discharge is not None and s.until_V >= ocv:
            raise ConfigError(f"protocol[{i}].discharge.until_V", f"{s.until_V:g} V is at or above the starting "
                              f"open-circuit voltage {ocv:.4f} V: a discharge lowers the voltage, set until_V below it")
        return


def _exchange_current(sec: ElectrodeSection, ce0_mol_m3: float) -> ExchangeCurrent:
    if sec.exchange_current is None:  # Eq. 29
        return ExchangeCurrent(sec.exchange_current_A_m2, c_ref_mol_m3=sec.reference_electrolyte_mol_m3 or ce0_mol_m3,
                               a=0.5, b=0.0, c=0.0, x_max=sec.x_max)
    j = sec.exchange_current
    return ExchangeCurrent(j.k_A_m2, c_ref_mol_m3=1.0, a=j.a, b=j.b, c=j.c, x_max=sec.x_max, Ea_J_mol=j.Ea_J_mol,
                           T_ref_K=j.T_ref_K)


def _particle(data: Any, key: str, electrode: ElectrodeSection, path: Path, temperature_K: float):
    """The particle model of one electrode and what was derived for it (empty for Fickian)."""
    if not isinstance(data, dict):
        raise ConfigError(key, f"expected a mapping with model: {' or '.join(PARTICLE_MODELS)}, got {data!r}")
    if data.get("model") not in PARTICLE_MODELS:
        raise ConfigError(f"{key}.model",
                          f"must be one of {', '.join(map(repr, PARTICLE_MODELS))}, got {data.get('model')!r}")
    sec = _build(PARTICLE_MODELS[data["model"]], data, key)
    if isinstance(sec, FickianSection):
        return FickianParticle(diffusivity_m2_s=sec.diffusivity_m2_s.resolve(), ocv_V=sec.ocv_V.resolve()), {}
    return _cahn_hilliard(sec, key, electrode, path, temperature_K)


def _cahn_hilliard(sec: CahnHilliardSection, key: str, electrode: ElectrodeSection, path: Path,
                   temperature_K: float):
    fu = electrode.formula_units_mol_m3
    mu = Scaled(sec.mu_eV.resolve(), FARADAY_C_MOL)  # eV per ion -> J/mol
    if sec.edge_barrier_x is not None:
        mu = EdgeBarrier(mu, electrode.x_max, sec.edge_barrier_x, R_GAS_J_MOL_K * temperature_K)
    try:
        gap = mapping.common_tangent(mu, 0.0, electrode.x_max)
    except ValueError as exc:
        if sec.interface_energy_J_m2 is not None or sec.diffusivity_m2_s is not None:
            raise ConfigError(f"{key}.mu_eV", f"no miscibility gap to map from: {exc}") from None
        gap = None  # k and M given directly: a CH particle without a gap is a valid (Fickian-like) model
    info: dict[str, Any] = {}
    kappa, gamma = sec.kappa_J_m5_mol2, sec.interface_energy_J_m2
    if gap is not None:
        if kappa is None:
            kappa = mapping.kappa_from_interface_energy(gamma, mu, gap, fu)
        else:
            gamma = mapping.interface_energy_from_kappa(kappa, mu, gap, fu)
        width = mapping.interface_width_m(kappa, mu, gap, fu)
        dr = electrode.largest_radius_m / electrode.cells_r
        factor = mapping.check_interface_resolution(width, dr)
        side = key.split(".")[0]
        if factor > 1.0 and not sec.inflate_interface:
            need = math.ceil(mapping.MIN_CELLS_PER_WIDTH * electrode.largest_radius_m / width)
            raise ConfigError(f"{side}.cells_r",
                              f"the interface ({width * 1e9:.3g} nm) spans {width / dr:.2g} radial cells"
                              f"{' of the largest particle' if electrode.particle_sizes else ''}, needs "
                              f">= {mapping.MIN_CELLS_PER_WIDTH:g}: set cells_r >= {need}, raise the interface "
                              f"energy >= {gamma * factor:.3g} J/m^2, or set {key}.inflate_interface: true")
        inflation = factor
        if factor > 1.0:
            kappa, gamma, width = kappa * factor ** 2, gamma * factor, width * factor
            warnings.warn(f"{path}: {key}: interface energy raised x{factor:.3g} to {gamma:.3g} J/m^2 so that "
                          f"the interface spans {mapping.MIN_CELLS_PER_WIDTH:g} radial cells", ParameterWarning,
                          stacklevel=5)
        if sec.physical_interface_energy_J_m2 is not None:
            inflation = gamma / sec.physical_interface_energy_J_m2
            if inflation > 1.0:
                warnings.warn(f"{path}: {key}.interface_energy_J_m2: {gamma:.3g} J/m^2 is x{inflation:.3g} the "
                              f"physical {sec.physical_interface_energy_J_m2:g} J/m^2 (for mesh resolution)",
                              ParameterWarning, stacklevel=5)
        info = {"binodal_x": gap.binodal_x, "spinodal_x": gap.spinodal_x,
                "plateau_V": -gap.mu_coexistence_J_mol / FARADAY_C_MOL, "kappa_J_m5_mol2": float(kappa),
                "interface_energy_J_m2": float(gamma), "interface_width_m": float(width),
                "cells_per_width": float(width / dr), "inflation_factor": float(inflation)}
    if sec.mobility is not None:
        mobility = sec.mobility.resolve()
    else:
        mobility = mapping.mobility_from_diffusivity(sec.diffusivity_m2_s.poor, sec.diffusivity_m2_s.rich, mu, gap, fu,
                                                      sec.mobility_blend or "log")
        info.update(mobility_poor=float(mobility(gap.binodal_x[0])), mobility_rich=float(mobility(gap.binodal_x[1])))
    if isinstance(sec, CahnHilliard2DSection):
        return CahnHilliard2DParticle(mu_hom_J_mol=mu, mobility=mobility, kappa_J_m5_mol2=kappa,
                                      cells_theta=sec.cells_theta, perturbation_x=sec.perturbation_x,
                                      seed=sec.seed, exchange_current_variation=sec.exchange_current_variation), info
    return CahnHilliardParticle(mu_hom_J_mol=mu, mobility=mobility, kappa_J_m5_mol2=kappa), info
