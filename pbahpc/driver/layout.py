"""Rank layout: which MPI ranks serve which role group, and the sub-communicators for them.

Replica groups take the first ranks (contiguous, so a replica sits on as few nodes as possible),
then the dedicated trainer, oracle, properties and continuum groups in that order. A ``shared`` role runs on
the first ``ranks`` ranks of the job, time-shared with the groups there (stages are synchronous).
"""
from __future__ import annotations

from dataclasses import dataclass

from ..config import Campaign, ConfigError

SERVICE_ROLES = ("trainer", "oracle", "properties", "continuum")


@dataclass(frozen=True)
class Group:
    name: str  # "replica-3", "trainer", ...
    role: str  # one of config.ROLES
    index: int  # replica index (0 for the service roles)
    ranks: tuple[int, ...]  # ranks of the launching communicator, ascending

    @property
    def root(self) -> int:
        return self.ranks[0]


@dataclass(frozen=True)
class RankLayout:
    size: int
    groups: tuple[Group, ...]

    def of_role(self, role: str) -> tuple[Group, ...]:
        return tuple(g for g in self.groups if g.role == role)

    def groups_of(self, rank: int) -> tuple[Group, ...]:
        return tuple(g for g in self.groups if rank in g.ranks)

    @property
    def idle(self) -> tuple[int, ...]:
        used = {r for g in self.groups for r in g.ranks}
        return tuple(r for r in range(self.size) if r not in used)

    def signature(self) -> dict[str, int]:
        """Group name -> rank count: what a checkpoint must match to be resumed."""
        return {g.name: len(g.ranks) for g in self.groups}

    def describe(self) -> str:
        lines = [f"rank layout for {self.size} ranks:"]
        for g in self.groups:
            lo, hi = g.ranks[0], g.ranks[-1]
            span = f"{lo}" if lo == hi else f"{lo}-{hi}"
            lines.append(f"  {g.name:<14} {len(g.ranks):>6} rank(s)  [{span}]")
        if self.idle:
            lines.append(f"  {'idle':<14} {len(self.idle):>6} rank(s)  (not needed by this layout)")
        return "\n".join(lines)


def plan(cfg: Campaign, size: int) -> RankLayout:
    """Lay out ``size`` ranks as ``cfg.layout`` asks, or raise ConfigError naming the key."""
    lay = cfg.layout
    dedicated = {r: getattr(lay, r).ranks for r in SERVICE_ROLES if not getattr(lay, r).shared}
    n_rep = cfg.replicas.count
    m = lay.replicas.ranks_each
    if m == "auto":
        m = (size - sum(dedicated.values())) // n_rep
        if m < 1:
            raise ConfigError("layout.replicas.ranks_each",
                              f"'auto' leaves no rank for {n_rep} replica(s): {size} rank(s) launched, "
                              f"{sum(dedicated.values())} taken by trainer/oracle/continuum")
    needed = n_rep * m + sum(dedicated.values())
    if needed > size:
        parts = [f"{n_rep} replica(s) x {m}"] + [f"{r} {n}" for r, n in dedicated.items() if n]
        raise ConfigError("layout", f"needs {needed} ranks ({' + '.join(parts)}) but {size} were launched; "
                                    f"launch at least {needed} or reduce the layout")
    groups = [Group(f"replica-{i}", "replicas", i, tuple(range(i * m, (i + 1) * m))) for i in range(n_rep)]
    nxt = n_rep * m
    for role in SERVICE_ROLES:
        spec = getattr(lay, role)
        if spec.ranks == 0:
            continue  # not configured: no ranks, its stage is skipped
        if spec.shared:
            if spec.ranks > needed:
                raise ConfigError(f"layout.{role}.ranks",
                                  f"a shared role can use at most the {needed} rank(s) the layout occupies, "
                                  f"got {spec.ranks}")
            ranks = tuple(range(spec.ranks))
        else:
            ranks = tuple(range(nxt, nxt + spec.ranks))
            nxt += spec.ranks
        groups.append(Group(role, role, 0, ranks))
    return RankLayout(size, tuple(groups))


def split(world, layout: RankLayout) -> dict[str, object]:
    """One sub-communicator per group this rank belongs to (collective over ``world``).

    One ``Split`` per role suffices because a rank is in at most one group of each role.
    """
    from mpi4py import MPI

    rank = world.Get_rank()
    comms: dict[str, object] = {}
    for role in ("replicas", *SERVICE_ROLES):
        mine = [g for g in layout.of_role(role) if rank in g.ranks]
        color = mine[0].index if mine else MPI.UNDEFINED
        sub = world.Split(color, rank)
        if mine:
            comms[mine[0].name] = sub
    return comms
