"""The campaign configuration: one YAML file -> one frozen, validated ``Campaign``.

Units are LAMMPS metal units throughout (eV, A, ps, K, bar); keys carry the unit as a suffix.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from .validate import ConfigError

ROLES = ("replicas", "trainer", "oracle", "continuum")


def _m(**meta) -> dict:
    return meta


@dataclass(frozen=True)
class CampaignSection:
    name: str
    seed: int = field(default=0, metadata=_m(min=0, max=2**63 - 1))
    run_dir: Path | None = field(default=None, metadata=_m(cwd=True))
    """Where checkpoints, logs and results go; relative to the working directory; default runs/<name>."""
    iterations: int = field(default=3, metadata=_m(min=1, max=1_000_000))
    abort_timeout_s: float = field(default=60.0, metadata=_m(gt=0.0))
    """How long a failed rank waits for the others to reach the next sync point before MPI_Abort."""


@dataclass(frozen=True)
class RoleRanks:
    ranks: int = field(default=0, metadata=_m(min=0, max=1_000_000))
    shared: bool = False
    """True: the role runs on the first ``ranks`` ranks of the job, time-shared with other roles."""


@dataclass(frozen=True)
class ReplicaRanks:
    ranks_each: int | Literal["auto"] = field(default=1, metadata=_m(min=1, max=1_000_000))
    """MPI ranks per replica; ``auto`` gives each replica an equal share of the unused ranks."""


@dataclass(frozen=True)
class Layout:
    replicas: ReplicaRanks = ReplicaRanks()
    trainer: RoleRanks = RoleRanks()
    oracle: RoleRanks = RoleRanks()
    continuum: RoleRanks = RoleRanks()


@dataclass(frozen=True)
class CheckpointSection:
    keep: int = field(default=3, metadata=_m(min=1, max=1000))
    every: int = field(default=1, metadata=_m(min=1))
    """Write a checkpoint at every ``every``-th synchronisation point (and always at stop)."""
    min_interval_s: float = field(default=0.0, metadata=_m(min=0.0))
    """Skip a scheduled checkpoint if the previous one is younger than this (wall seconds)."""


@dataclass(frozen=True)
class ReplicasSection:
    engine: str = field(default="lattice-gas", metadata=_m(engine="replicas"))
    """A built-in engine name, or ``package.module:Factory`` for your own."""
    temperatures_K: tuple[float, ...] = field(default=(300.0,), metadata=_m(gt=0.0, nonempty=True))
    mu_eV: tuple[float, ...] = field(default=(0.0,), metadata=_m(min=-100.0, max=100.0, nonempty=True))
    cycles: int = field(default=10, metadata=_m(min=1, max=10_000_000))
    """Sampling cycles per iteration and replica."""
    sweeps_per_cycle: int = field(default=5, metadata=_m(min=1, max=1_000_000))
    lattice: int = field(default=6, metadata=_m(min=2, max=512))
    """Lattice-gas engine: sites per edge of the periodic cubic lattice (even)."""

    def check(self, key: str) -> None:
        if self.lattice % 2:
            raise ConfigError(f"{key}.lattice", f"must be even (checkerboard updates), got {self.lattice}")

    @property
    def count(self) -> int:
        return len(self.temperatures_K) * len(self.mu_eV)


@dataclass(frozen=True)
class OracleSection:
    engine: str = field(default="lattice-gas", metadata=_m(engine="oracle"))
    """A built-in engine name, or ``package.module:Factory`` for your own."""
    pair_eV: float = field(default=-0.05, metadata=_m(min=-10.0, max=10.0))
    """Lattice-gas reference: nearest-neighbour Na-Na interaction (eV), negative = attractive."""
    site_eV: float = field(default=-0.1, metadata=_m(min=-10.0, max=10.0))
    """Lattice-gas reference: energy of one inserted Na relative to the reservoir (eV)."""


@dataclass(frozen=True)
class TrainerSection:
    engine: str = field(default="pair-fit", metadata=_m(engine="trainer"))
    """A built-in engine name, or ``package.module:Factory`` for your own."""
    ridge: float = field(default=1e-12, metadata=_m(min=0.0))


@dataclass(frozen=True)
class ContinuumSection:
    engine: str = field(default="regular-solution", metadata=_m(engine="continuum"))
    """A built-in engine name, or ``package.module:Factory`` for your own."""
    points: int = field(default=201, metadata=_m(min=5, max=10_000_000))
    temperature_K: float = field(default=300.0, metadata=_m(gt=0.0))


@dataclass(frozen=True)
class Campaign:
    campaign: CampaignSection
    layout: Layout = Layout()
    checkpoint: CheckpointSection = CheckpointSection()
    replicas: ReplicasSection = ReplicasSection()
    oracle: OracleSection = OracleSection()
    trainer: TrainerSection = TrainerSection()
    continuum: ContinuumSection = ContinuumSection()
    source: Path | None = field(default=None, metadata=_m(internal=True))
