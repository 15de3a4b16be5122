"""The campaign configuration: one YAML file -> one frozen, validated ``Campaign``.

Units are LAMMPS metal units throughout (eV, A, ps, K, bar); keys carry the unit as a suffix.
"""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from .engines import factory_problem
from .universal import model_problem
from .validate import ConfigError

ROLES = ("replicas", "trainer", "oracle", "properties", "continuum")


def _m(**meta) -> dict:
    return meta


@dataclass(frozen=True)
class CampaignSection:
    name: str
    seed: int = field(default=0, metadata=_m(min=0, max=2**63 - 1))
    run_dir: Path | None = field(default=None, metadata=_m(cwd=True))
    """Where checkpoints, logs and results go; relative to the working directory; default runs/<name>."""
    iterations: int = field(default=3, metadata=_m(min=1, max=1_000_000))
    """The budget: at most this many iterations (sample, select, label, train, continuum)."""
    stop_when_converged: bool = True
    """End the campaign after the first iteration whose selection reports convergence (active learning:
    every replica sampled with the MTP, none halted, nothing selected)."""
    abort_timeout_s: float = field(default=60.0, metadata=_m(gt=0.0))
    """How long a failed rank waits for the others to reach the next sync point before MPI_Abort."""
    progress_interval_s: float = field(default=10.0, metadata=_m(gt=0.0, max=86400.0))
    """At most one progress line per stage on rank 0's terminal this often (``pbahpc run --quiet``: none)."""


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
    properties: RoleRanks = RoleRanks()
    continuum: RoleRanks = RoleRanks()


@dataclass(frozen=True)
class CheckpointSection:
    keep: int = field(default=3, metadata=_m(min=1, max=1000))
    every: int = field(default=1, metadata=_m(min=1))
    """Write a checkpoint at every ``every``-th synchronisation point (and always at stop)."""
    min_interval_s: float = field(default=0.0, metadata=_m(min=0.0))
    """Skip a scheduled checkpoint if the previous one is younger than this (wall seconds)."""


@dataclass(frozen=True)
class BiasSection:
    """Harmonic bias B(N) = phi (N - N_t)^2 (Eq. 7), applied inside the GCMC acceptance rule."""

    phi_eV: float = field(default=0.0, metadata=_m(min=0.0))
    targets_N: tuple[int, ...] = field(default=(), metadata=_m(min=0))
    """Window schedule: N_t of each window in turn (each starts from the previous window's state)."""
    rounds: int = field(default=1, metadata=_m(min=1))
    """Passes over the schedule (resampling rounds, as in the paper's Fig. B4)."""
    min_cycles: int = field(default=10, metadata=_m(min=2))
    max_cycles: int = field(default=100, metadata=_m(min=2))
    tolerance_N: float = field(default=0.5, metadata=_m(gt=0.0))
    """A window is converged when the mean N of the first and second half of its cycles differ by less."""

    def check(self, key: str) -> None:
        if self.max_cycles < self.min_cycles:
            raise ConfigError(f"{key}.max_cycles", f"must be >= min_cycles ({self.min_cycles}), got {self.max_cycles}")


@dataclass(frozen=True)
class GcmcSection:
    """The LAMMPS GCMC-MD replica engine (``replicas.engine: lammps-gcmc``)."""

    structure: Literal["pba", "file", "box"] = "pba"
    """pba: built Na_xMn[Fe(CN)6]; file: any ASE-readable host (``structure_file``); box: empty cubic box."""
    structure_file: Path | None = field(default=None, metadata=_m(file=True))
    cells: int = field(default=1, metadata=_m(min=1, max=64))
    a_A: float = field(default=10.3, metadata=_m(min=5.0, max=20.0))
    x_inserted: float = field(default=0.0, metadata=_m(min=0.0, max=2.0))
    """Initial inserted atoms per formula unit (pba), placed on cage centres."""
    arrangement: Literal["random", "first"] = "random"
    """pba: which cages the initial inserted atoms occupy (random draw from the seed, or in site order)."""
    rhombohedral_deg: float = field(default=0.0, metadata=_m(min=-20.0, max=20.0))
    """pba: volume-preserving shear along [111]; the cubic angles become 90 + this (degrees)."""
    box_A: float = field(default=20.0, metadata=_m(gt=0.0))
    inserted: str = "Na"
    potential: Literal["teacher", "lammps"] = "teacher"
    teacher: Literal["basic", "cathode", "cathode2"] = "basic"
    """potential teacher: the built-in parameter set, here and in the teacher oracle (cathode: Na hops, a
    volume change; cathode2: the same with Na hops resolved in MD in both phases; see
    pbahpc/oracle/teacher.py)."""
    species: tuple[str, ...] = ()
    """potential: lammps -- element of each LAMMPS atom type, in type order."""
    masses_amu: tuple[float, ...] = field(default=(), metadata=_m(gt=0.0))
    pair_commands: tuple[str, ...] = ()
    """potential: lammps -- pair_style/pair_coeff/... commands issued after the box exists."""
    cutoff_A: float = field(default=6.0, metadata=_m(gt=0.0))
    ensemble: Literal["npt", "nvt", "mc"] = "npt"
    """mc: no time integration (a frozen host; GCMC moves only)."""
    md_steps: int = field(default=4000, metadata=_m(min=1))
    timestep_fs: float = field(default=0.4, metadata=_m(gt=0.0, max=10.0))
    thermostat_damp_ps: float = field(default=0.1, metadata=_m(gt=0.0))
    barostat_damp_ps: float = field(default=1.0, metadata=_m(gt=0.0))
    pressure_bar: float = 1.0
    exchanges: int = field(default=1000, metadata=_m(min=0))
    """Insertion/deletion attempts per cycle."""
    translations: int = field(default=500, metadata=_m(min=0))
    """MC translation attempts of inserted-species atoms per cycle."""
    max_displacement_A: float = field(default=1.0, metadata=_m(gt=0.0))
    full_energy: bool = True
    """Whole-system energy per trial (required for many-body/ML potentials and for the bias)."""
    overlap_cutoff_A: float = field(default=0.0, metadata=_m(min=0.0))
    """fix gcmc ``overlap_cutoff``: insertions and moves that bring two atoms closer than this are rejected
    outright (0: off). An MTP knows nothing below its training set's shortest distances, and an early one
    can make such overlaps look favourable. With ``full_energy`` (which LAMMPS uses under the MTP whatever
    this section says) it tests every pair of atoms, so it must stay below the structure's shortest bond
    (C-N: 1.15 A in a PBA); ``pbahpc check`` refuses it otherwise."""
    bias: BiasSection = BiasSection()
    frame_stride: int = field(default=1, metadata=_m(min=1))
    """Keep a frame (a labelling candidate) every this many cycles."""
    stop_check_steps: int = field(default=100, metadata=_m(min=1))
    """MD steps between the collective checks for a stop request inside a LAMMPS run."""
    gamma_select: float = field(default=2.0, metadata=_m(min=0.0))
    """Once the trainer's MTP drives the replica: a frame is a labelling candidate when gamma_select <
    gamma_max < gamma_stop (gamma_max: the largest per-atom MaxVol extrapolation grade of the frame)."""
    gamma_stop: float = field(default=10.0, metadata=_m(min=0.0))
    """A replica whose configuration grades above this halts softly for the iteration and rolls back to
    the end of its last good cycle (checked every ``gamma_check_steps`` MD steps by ``fix halt``)."""
    gamma_check_steps: int = field(default=1, metadata=_m(min=1))
    sample_without_mtp: bool = True
    """Before the first MTP arrives: sample with ``potential`` and send every kept frame (true), or wait
    and send nothing (false; e.g. when ``oracle.pretrain`` or ``trainer.initial_data`` provide the first fit)."""

    def check(self, key: str) -> None:
        if self.structure == "file" and self.structure_file is None:
            raise ConfigError(f"{key}.structure_file", "required when structure is 'file'")
        if self.potential == "lammps":
            if not self.species or not self.pair_commands:
                raise ConfigError(f"{key}.species", "potential 'lammps' needs species and pair_commands")
            if len(self.masses_amu) != len(self.species):
                raise ConfigError(f"{key}.masses_amu",
                                  f"needs one mass per species ({len(self.species)}), got {len(self.masses_amu)}")
            if self.inserted not in self.species:
                raise ConfigError(f"{key}.inserted", f"{self.inserted!r} is not one of species {list(self.species)}")
        if self.bias.targets_N and self.bias.phi_eV == 0.0:
            raise ConfigError(f"{key}.bias.phi_eV", "must be > 0 when targets_N are given")
        if self.bias.targets_N and not self.full_energy:
            raise ConfigError(f"{key}.full_energy", "must be true with a bias (the bias enters the full energy)")
        if self.gamma_stop <= self.gamma_select:
            raise ConfigError(f"{key}.gamma_stop", f"must be > gamma_select ({self.gamma_select}), got {self.gamma_stop}")


@dataclass(frozen=True)
class ReplicasSection:
    engine: str = field(default="lattice-gas", metadata=_m(engine="replicas"))
    """lattice-gas (light, for tests) or lammps-gcmc (section ``gcmc``)."""
    """A built-in engine name, or ``package.module:Factory`` for your own."""
    temperatures_K: tuple[float, ...] = field(default=(), metadata=_m(gt=0.0, nonempty=True))
    """Not given: the temperatures of the properties runs (``Campaign.__post_init__``), so that active learning
    samples where the properties will be computed; 300 K if there are none."""
    mu_eV: tuple[float, ...] = field(default=(), metadata=_m(min=-100.0, max=100.0, nonempty=True))
    """Not given: the free-energy windows' reservoir (``properties.free_energy.mu_eV``) if there are such runs,
    else 0. Compositions the replicas never reach are learned when a properties run there leaves the learned
    domain (``properties.max_relearn``)."""
    cycles: int = field(default=10, metadata=_m(min=1, max=10_000_000))
    """Sampling cycles per iteration and replica."""
    sweeps_per_cycle: int = field(default=5, metadata=_m(min=1, max=1_000_000))
    lattice: int = field(default=6, metadata=_m(min=2, max=512))
    """Lattice-gas engine: sites per edge of the periodic cubic lattice (even)."""
    gcmc: GcmcSection = GcmcSection()

    def check(self, key: str) -> None:
        if self.lattice % 2:
            raise ConfigError(f"{key}.lattice", f"must be even (checkerboard updates), got {self.lattice}")

    @property
    def count(self) -> int:
        return len(self.temperatures_K) * len(self.mu_eV)

    def point(self, index: int) -> tuple[float, float]:
        """(T in K, mu in eV) of replica ``index``: temperatures outer, chemical potentials inner."""
        t, m = divmod(index, len(self.mu_eV))
        return self.temperatures_K[t], self.mu_eV[m]


@dataclass(frozen=True)
class OracleSection:
    @dataclass(frozen=True)
    class Factory:
        """Any ASE calculator: ``factory`` is ``package.module:Class`` (or a function), called with ``kwargs``."""

        factory: str
        kwargs: dict[str, Any] = field(default_factory=dict)
        """Keyword arguments, e.g. ``{asap_cutoff: true}``."""

    @dataclass(frozen=True)
    class Vasp:
        """``calculator: vasp``: the paper's DFT settings (PBEsol+U, 700 eV, Gamma only, spin-polarised)."""

        command: str | None = None
        """How to launch VASP from an oracle rank, e.g. ``srun -n 64 vasp_std`` (required with calculator vasp)."""
        directory: str = "oracle-vasp"
        """Parent of the per-frame run directories; relative to the campaign's run_dir."""
        encut_eV: float = field(default=700.0, metadata=_m(gt=0.0))
        U_Mn_eV: float = field(default=5.5, metadata=_m(min=0.0, max=20.0))
        U_Fe_eV: float = field(default=5.5, metadata=_m(min=0.0, max=20.0))
        magmom_Mn: float = field(default=5.0, metadata=_m(min=-10.0, max=10.0))
        """Initial moment (mu_B) on Mn: high-spin Mn(II), d5."""
        magmom_Fe: float = field(default=1.0, metadata=_m(min=-10.0, max=10.0))
        """Initial moment (mu_B) on Fe in Fe-C6: low-spin Fe(III) t2g5 (1); low-spin Fe(II) would be 0."""

    @dataclass(frozen=True)
    class Universal:
        """``calculator: universal``: a pretrained universal potential whose weights ship in its wheel
        (``pip install 'pbahpc[universal]'``); energies are on that model's own zero, so Eq. 31 needs
        ``properties.na_reference_eV`` from the same model (``tools/na_reference.py``)."""

        model: str = "7net-mf-0"
        """A shipped model (``pbahpc.config.universal.SHIPPED``): 7net-0, 7net-mf-0, 7net-l3i5 (sevenn),
        chgnet-0.3.0, chgnet-0.2.0, chgnet-r2scan (chgnet)."""
        modal: str | None = None
        """Fidelity of a multi-fidelity model (7net-mf-0: PBE or R2SCAN); unset: its first (PBE)."""
        device: Literal["cpu"] = "cpu"
        """Torch device; cpu only (the CPU torch build that tools/setup.sh --universal installs)."""

    engine: str = field(default="lattice-gas", metadata=_m(engine="oracle"))
    """A built-in engine name, or ``package.module:Factory`` for your own."""
    pair_eV: float = field(default=-0.05, metadata=_m(min=-10.0, max=10.0))
    """Lattice-gas reference: nearest-neighbour Na-Na interaction (eV), negative = attractive."""
    site_eV: float = field(default=-0.1, metadata=_m(min=-10.0, max=10.0))
    """Lattice-gas reference: energy of one inserted Na relative to the reservoir (eV)."""
    max_force_eV_A: float = field(default=150.0, metadata=_m(gt=0.0))
    """Screening: frames with any |F| above this are discarded (paper: 150 eV/A)."""
    max_energy_eV: float = 0.0
    """Screening: frames with a total energy above this are discarded (paper: E > 0)."""
    calculator: Literal["teacher", "vasp", "universal"] | Factory = "teacher"
    """engine teacher: the ASE calculator that labels frames -- teacher (the built-in reference), vasp
    (section ``vasp``), universal (section ``universal``) or ``{factory: package.module:Class, kwargs: {...}}``."""
    vasp: Vasp = Vasp()
    universal: Universal = Universal()
    @dataclass(frozen=True)
    class Pretrain:
        """Iteration 0: label frames of short Langevin MD with the oracle's calculator at these Na contents
        (``pbahpc.mlip.dataset.generate_oracle_md``; the paper: 16 compositions x = 0.125 ... 2)."""

        compositions_x: tuple[float, ...] = field(default=(), metadata=_m(min=0.0, max=2.0))
        temperature_K: float = field(default=300.0, metadata=_m(gt=0.0))
        steps: int = field(default=20, metadata=_m(min=0))
        every: int = field(default=10, metadata=_m(min=1))
        """Keep a frame every this many MD steps."""
        timestep_fs: float = field(default=0.5, metadata=_m(gt=0.0, max=10.0))
        cells: int = field(default=1, metadata=_m(min=1, max=8))
        a_A: float = field(default=10.3, metadata=_m(gt=0.0))
        strains: tuple[float, ...] = field(default=(0.0,), metadata=_m(min=-0.2, max=0.2, nonempty=True))
        """Isotropic lattice strains: every composition also at a = a_A (1 + strain), so that the first
        potential has seen the lattice of each phase (an insertion cathode's lattice changes with x); with
        ``relax`` the strains scale the relaxed cell instead."""
        relax: bool = False
        """Before its MD, relax each composition's built cell with the oracle's calculator (positions rattled,
        then positions and the cell freedom of ``properties.interface.barostat`` at 1 bar;
        ``pbahpc.oracle.universal.relax``) and label every ``every``-th
        step of that path and its end; the MD then starts from the relaxed cell. The properties' relaxed cells
        pass along such paths to minima that MD from the built cell may never reach (a universal model's
        x = 2 cell distorts, 1.9 eV below its cubic stationary point with CHGNet)."""

    pretrain: Pretrain = Pretrain()
    retries: int = field(default=2, metadata=_m(min=0, max=100))
    """Extra attempts for a frame whose calculation raised or timed out; then it is quarantined."""
    timeout_s: float | None = field(default=None, metadata=_m(gt=0.0))
    """Wall-clock limit of one attempt (SIGALRM in the calling rank; VASP's command also runs under timeout(1))."""

    def check(self, key: str) -> None:
        # checked here, not in Factory.check: a union member's error would lose its message
        if isinstance(self.calculator, OracleSection.Factory):
            problem = factory_problem(self.calculator.factory, self.calculator.kwargs)
            if problem:
                raise ConfigError(f"{key}.calculator.{problem[0]}", problem[1])
        if self.calculator == "vasp" and not self.vasp.command:
            raise ConfigError(f"{key}.vasp.command", "required with calculator 'vasp' (e.g. 'srun -n 64 vasp_std')")
        if self.calculator == "universal":
            problem = model_problem(self.universal.model, self.universal.modal)
            if problem:
                raise ConfigError(f"{key}.universal.{problem[0]}", problem[1])


@dataclass(frozen=True)
class CoreRepulsion:
    """A fixed short-range wall beside the MTP (``pbahpc.mlip.core_repulsion``): LAMMPS ``pair_style zbl
    inner_A outer_A`` (the ZBL screened nuclear repulsion, switched smoothly to exactly zero at outer_A) between
    each of ``species`` and every species of trainer.species, in every LAMMPS run of the MTP. The MTP has no data
    below the closest labelled pairs and MD under it can push atoms through each other; the wall is zero
    wherever labels exist (the oracle discards labelled frames with a wall pair closer than outer_A), so the fit
    is unchanged. outer_A must lie below the reference's own closest such pairs (the cathode2 teacher in 10 ps
    of 900 K NPT MD at x = 0.25-2: Na-N >= 1.90 A, Na-C >= 1.96 A, Na-Fe/Mn >= 3.07 A, Na-Na ~5 A)."""

    species: tuple[str, ...] = field(default=("Na",), metadata=_m(nonempty=True))
    inner_A: float = field(default=1.0, metadata=_m(gt=0.0))
    """Where the switching function begins (A)."""
    outer_A: float = field(default=1.6, metadata=_m(gt=0.0))
    """Where the wall reaches zero, with its first two derivatives (A)."""

    def check(self, key: str) -> None:
        if self.outer_A <= self.inner_A:
            raise ConfigError(f"{key}.outer_A", f"must be > inner_A ({self.inner_A}), got {self.outer_A}")


@dataclass(frozen=True)
class TrainerSection:
    engine: str = field(default="pair-fit", metadata=_m(engine="trainer"))
    """A built-in engine name, or ``package.module:Factory`` for your own."""
    ridge: float = field(default=1e-12, metadata=_m(min=0.0))
    level: int = field(default=6, metadata=_m(min=2, max=28))
    """engine mtp: the MTP level (2..28; the published templates use even levels)."""
    train_iterations: int = field(default=200, metadata=_m(min=0, max=100_000))
    """engine mtp: L-BFGS iterations over the radial coefficients per retraining, the linear coefficients
    solved out at each evaluation (variable projection, pbahpc.mlip.train; 0: linear fit only)."""
    train_tolerance: float = field(default=1e-6, metadata=_m(gt=0.0, max=1.0))
    """engine mtp: a retraining ends when its last 10 iterations lowered the loss by less than 10 x this,
    relative; retrainings continue from the previous potential, so after a few % of new data a loose one
    (1e-2) ends them early (tools/bench_train.py prints passes cold vs warm)."""
    species: tuple[str, ...] = field(default=("Na", "Mn", "Fe", "C", "N"), metadata=_m(nonempty=True))
    """engine mtp: element symbols in MTP species order (index 0 first)."""
    min_dist_A: float = field(default=1.0, metadata=_m(gt=0.0))
    """engine mtp: the radial basis starts here (below the shortest bond: C-N is 1.15 A in a PBA)."""
    max_dist_A: float = field(default=5.0, metadata=_m(gt=0.0))
    """engine mtp: the cutoff radius."""
    radial_basis_size: int = field(default=8, metadata=_m(min=2, max=64))
    max_selected: int | None = field(default=None, metadata=_m(min=1))
    """engine mtp: at most this many configurations selected per iteration (largest grade first)."""
    initial_data: tuple[Path, ...] = field(default=(), metadata=_m(file=True))
    """engine mtp: labelled configurations to start the training set with (extxyz, OUTCAR, vasprun.xml,
    ML_AB, MLIP .cfg; ``pbahpc.mlip.dataset.read_labelled``); fitted in iteration 0's train stage."""
    isolated_energies_eV: tuple[float, ...] | None = None
    """engine mtp: each species' isolated-atom energy in the labels' energy zero (eV, ``species`` order),
    held as the MTP's species coefficients so that GCMC insertion energies are the reference's (VASP: the
    spin-polarised isolated atoms). Default: 0 for every species with the built-in teacher (its isolated
    atoms have E = 0), else fitted (MLIP's default; insertion energies are then not anchored)."""
    core_repulsion: CoreRepulsion | None = None
    """engine mtp: a ZBL wall added to the MTP in LAMMPS, e.g. ``{species: [Na], inner_A: 1.0, outer_A: 1.6}``
    (``CoreRepulsion``); unset: the MTP alone."""

    def check(self, key: str) -> None:
        from ase.data import atomic_numbers

        for i, symbol in enumerate(self.species):
            if symbol not in atomic_numbers or symbol == "X":
                raise ConfigError(f"{key}.species[{i}]", f"not an element symbol: {symbol!r}")
        if self.max_dist_A <= self.min_dist_A:
            raise ConfigError(f"{key}.max_dist_A", f"must be > min_dist_A ({self.min_dist_A}), got {self.max_dist_A}")
        if len(set(self.species)) != len(self.species):
            raise ConfigError(f"{key}.species", f"repeats an element: {list(self.species)}")
        if self.isolated_energies_eV is not None and len(self.isolated_energies_eV) != len(self.species):
            raise ConfigError(f"{key}.isolated_energies_eV", f"needs one value per species {list(self.species)}, "
                                                            f"got {len(self.isolated_energies_eV)}")
        core = self.core_repulsion
        if core is not None:
            for i, symbol in enumerate(core.species):
                if symbol not in self.species:
                    raise ConfigError(f"{key}.core_repulsion.species[{i}]",
                                      f"{symbol!r} is not one of trainer.species {list(self.species)}")
            if core.outer_A > self.max_dist_A:  # the LAMMPS potential's cutoff is the MTP's
                raise ConfigError(f"{key}.core_repulsion.outer_A",
                                  f"must be <= max_dist_A ({self.max_dist_A}), got {core.outer_A}")


@dataclass(frozen=True)
class PropertiesSection:
    """Properties with the final MTP (paper Secs. II.D-F), run once: after the iteration that converged
    or the last one of the budget. Each part is a list of independent runs, checkpointed one by one."""

    @dataclass(frozen=True)
    class Diffusion:
        """NPT MD of PBA cells; MSD of the inserted species -> D(T, x); Arrhenius per x (Eqs. 1-3)."""

        temperatures_K: tuple[float, ...] = field(default=(), metadata=_m(gt=0.0))
        """Empty: no diffusion runs."""
        x_inserted: tuple[float, ...] = field(default=(1.0,), metadata=_m(min=0.0, max=2.0, nonempty=True))
        cells: int = field(default=1, metadata=_m(min=1, max=64))
        thermalise_ps: float = field(default=1.0, metadata=_m(min=0.0))
        production_ps: float = field(default=5.0, metadata=_m(gt=0.0))
        timestep_fs: float = field(default=1.0, metadata=_m(gt=0.0, max=10.0))
        sample_every_steps: int = field(default=10, metadata=_m(min=1))
        blocks: int = field(default=8, metadata=_m(min=2, max=1000))
        """Contiguous time blocks of the MSD fit (D's error bar from their scatter); the fit's lags reach half
        a block, production_ps / (2 blocks): fewer blocks reach past the cage plateau in a short run."""

    @dataclass(frozen=True)
    class Interface:
        """Two-phase supercells of 1..n cells along x, upper half at x_low (Eqs. 4-5): interface and strain energy."""

        repeats: tuple[int, ...] = field(default=(), metadata=_m(min=1, max=256))
        """Empty: no interface runs. The paper: 1 ... 32."""
        unit_cells: int = field(default=1, metadata=_m(min=1, max=16))
        """The repeated unit is unit_cells^3 PBA cells (the paper: 8, an 80 A cube)."""
        x_high: float = field(default=2.0, metadata=_m(min=0.0, max=2.0))
        x_low: float = field(default=0.0, metadata=_m(min=0.0, max=2.0))
        temperature_K: float = field(default=300.0, metadata=_m(gt=0.0))
        relax_ps: float = field(default=2.0, metadata=_m(gt=0.0))
        timestep_fs: float = field(default=1.0, metadata=_m(gt=0.0, max=10.0))
        barostat: Literal["aniso", "tri"] = "aniso"
        """The cell freedom of every relaxed cell of this section (the single-phase x cells of the voltage,
        structure and volume-change rows, and the two-phase cells: one freedom for Eq. 4's terms), on both
        sides of the fidelity table. aniso: a, b, c only, the angles stay 90 deg (LAMMPS npt and box/relax
        aniso; the universal model's cell mask 1 1 1 0 0 0). tri: the angles too (the box made triclinic,
        npt and box/relax tri; mask all six): the paper's x = 2 cell is rhombohedral (82.6 deg) and the
        universal models' x = 2 cells tilt (SevenNet-0: 91/82/89 deg), which aniso cannot show."""

    @dataclass(frozen=True)
    class FreeEnergy:
        """Harmonic-bias GCMC windows over N_t (Eqs. 7-18) with the replicas' GCMC-MD settings."""

        temperatures_K: tuple[float, ...] = field(default=(), metadata=_m(gt=0.0))
        """Empty: no free-energy runs. The paper: 300-700 K."""
        cells: int = field(default=0, metadata=_m(min=0, max=64))
        """PBA cells per edge of the windows' cell; 0: the replicas' (replicas.gcmc.cells)."""
        targets_N: tuple[int, ...] = field(default=(), metadata=_m(min=0))
        """Window centres (inserted atoms); empty: every N from 0 to the cell's site count."""
        phi_eV: float = field(default=0.002, metadata=_m(gt=0.0))
        mu_eV: float = 0.0
        """Reservoir chemical potential of the windows (LAMMPS's convention); the bias holds N anyway."""
        cycles_per_window: int = field(default=20, metadata=_m(min=2))
        overlap_cutoff_A: float = field(default=1.0, metadata=_m(min=0.0))
        """fix gcmc overlap_cutoff of the windows (they need full_energy: below the shortest bond)."""
        max_halts: int = field(default=20, metadata=_m(min=1))
        """Give the run up (reported, not fatal) after this many halts in a row without a finished cycle."""
        equilibration_fraction: float = field(default=0.2, metadata=_m(min=0.0, max=0.9))
        method: Literal["mbar", "pymbar", "eq17"] = "mbar"
        """The report's mu(N) estimator: our MBAR, pymbar's MBAR (optional extra pbahpc[pymbar]; the same
        free energies to 1e-6 kT, 50-300x slower: tools/bench_free_energy.py) or Eq. 17 per window."""

        def check(self, key: str) -> None:
            if self.method == "pymbar" and importlib.util.find_spec("pymbar") is None:
                raise ConfigError(f"{key}.method", "pymbar is not installed (pip install 'pbahpc[pymbar]'); "
                                                   "'mbar' is the same estimator, built in")

    @dataclass(frozen=True)
    class Fidelity:
        """With ``reference: true``, learned vs reference passes when |difference| <= these (the report
        gives both error bars beside them). Defaults: a fraction of the quantity's scale that still tells a
        learned potential from a wrong one (binodals over 0..2, mu over ~0.3 eV of plateau, D over decades)."""

        binodal_x: float = field(default=0.1, metadata=_m(gt=0.0))
        spinodal_x: float = field(default=0.15, metadata=_m(gt=0.0))
        mu_eV: float = field(default=0.03, metadata=_m(gt=0.0))
        """mu(x) at x = 0.2, 0.6, 1.0, 1.4, 1.8 (the voltage's scale: 30 mV)."""
        mixing_eV_fu: float = field(default=0.02, metadata=_m(gt=0.0))
        D_factor: float = field(default=3.0, metadata=_m(gt=1.0))
        """D per (x, T): learned/reference within this factor either way."""
        Ea_eV: float = field(default=0.08, metadata=_m(gt=0.0))
        interface_rel: float = field(default=0.5, metadata=_m(gt=0.0))
        """Interface and strain energy: |difference| <= this x |reference|."""
        voltage_V: float = field(default=0.03, metadata=_m(gt=0.0))
        volume_change_points: float = field(default=1.5, metadata=_m(gt=0.0))
        lattice_A: float = field(default=0.05, metadata=_m(gt=0.0))

    engine: str = field(default="mtp", metadata=_m(engine="properties"))
    diffusion: Diffusion = Diffusion()
    interface: Interface = Interface()
    free_energy: FreeEnergy = FreeEnergy()
    reference: bool = False
    """Every run again with the campaign's reference potential (the replicas' LAMMPS potential: the teacher,
    or ``replicas.gcmc.pair_commands``) and a fidelity table, learned vs reference, in the report. With
    ``oracle.calculator: universal`` the reference is that model, and only the relaxed x_low and x_high cells
    (lattice, volume change) and the Eq. 31 voltage (bcc Na relaxed with the model) are repeated."""
    fidelity: Fidelity = Fidelity()
    na_reference_eV: float | None = None
    """Energy per atom (eV) of metallic Na with the same potential, for Eq. 31 voltages; unset: no voltages.
    Set, the relaxed x_low and x_high cells are computed even without ``interface.repeats``."""
    p2d_template: Path | None = field(default=None, metadata=_m(file=True))
    """A P2D parameter file (inputs/p2d-*.yaml) whose cathode particle receives mu(x), D and the interface
    energy measured here; the result goes to the continuum group (``properties/p2d-parameters.yaml``)."""
    grade: bool = True
    """Grade every MD/GCMC run of the MTP on the fly, as the replicas do (``replicas.gcmc.gamma_select`` and
    ``gamma_stop``): a run whose grade exceeds gamma_stop, or whose LAMMPS run fails under the MTP, has left
    the learned domain. false: runs go on whatever the grade (e.g. to measure an undertrained potential)."""
    gamma_check_steps: int = field(default=10, metadata=_m(min=1))
    """MD steps between two grades of a diffusion or interface run (the free energy uses the replicas')."""
    max_relearn: int = field(default=2, metadata=_m(min=0, max=1000))
    """A run that left the learned domain sends its most extrapolative frames to the trainer as candidates and
    reopens active learning, at most this many times in a campaign (each time at most one iteration beyond
    campaign.iterations); every MTP run is then redone with the improved potential. Once spent, such a run is
    reported failed with its reason (the free energy rolls back and goes on, as up to max_halts allows)."""
    candidates_per_run: int = field(default=4, metadata=_m(min=1, max=1000))
    """Frames a run that left the domain sends: the most extrapolative with gamma_select < gamma < gamma_stop
    (or, if there are none, the first graded beyond gamma_stop)."""


@dataclass(frozen=True)
class ContinuumSection:
    engine: str = field(default="regular-solution", metadata=_m(engine="continuum"))
    """A built-in engine name, or ``package.module:Factory`` for your own."""
    points: int = field(default=201, metadata=_m(min=5, max=10_000_000))
    temperature_K: float = field(default=300.0, metadata=_m(gt=0.0))
    parameters: Path | None = field(default=None, metadata=_m(file=True))
    """engine p2d: the cell's parameter set (see inputs/p2d-*.yaml); its protocol runs every iteration."""

    def check(self, key: str) -> None:
        if self.engine == "p2d" and self.parameters is None:
            raise ConfigError(f"{key}.parameters", "engine 'p2d' needs a parameter file (e.g. inputs/p2d-mnfepba.yaml)")


def properties_temperatures_K(pc: PropertiesSection) -> tuple[float, ...]:
    """The temperatures the properties runs are done at, sorted (the replicas' default temperatures)."""
    temps = set(pc.diffusion.temperatures_K) | set(pc.free_energy.temperatures_K)
    if pc.interface.repeats:
        temps.add(pc.interface.temperature_K)
    return tuple(sorted(temps))


@dataclass(frozen=True)
class Campaign:
    campaign: CampaignSection
    layout: Layout = Layout()
    checkpoint: CheckpointSection = CheckpointSection()
    replicas: ReplicasSection = ReplicasSection()
    oracle: OracleSection = OracleSection()
    trainer: TrainerSection = TrainerSection()
    properties: PropertiesSection = PropertiesSection()
    continuum: ContinuumSection = ContinuumSection()
    source: Path | None = field(default=None, metadata=_m(internal=True))

    def __post_init__(self) -> None:
        # derived here, not in the loader, so that every way of building a Campaign gets the same replicas
        pc, rep = self.properties, self.replicas
        derived = {"temperatures_K": rep.temperatures_K or properties_temperatures_K(pc) or (300.0,),
                   "mu_eV": rep.mu_eV or ((pc.free_energy.mu_eV,) if pc.free_energy.temperatures_K else (0.0,))}
        object.__setattr__(self, "replicas", replace(rep, **derived))

    def check(self, key: str) -> None:
        if self.properties.reference and self.replicas.engine != "lammps-gcmc":
            raise ConfigError("properties.reference", "needs replicas.engine 'lammps-gcmc' (its LAMMPS potential is "
                                                      "the reference)")
        if self.properties.reference and self.replicas.gcmc.potential == "teacher" and \
                self.oracle.calculator not in ("teacher", "universal"):
            raise ConfigError("properties.reference", "the replicas' teacher is not this campaign's reference: "
                                                      "oracle.calculator is not 'teacher'")
        # the lattice-gas oracle reads lattice occupations, not atomic frames
        if self.layout.trainer.ranks and self.trainer.engine == "pair-fit" and self.oracle.engine == "teacher":
            raise ConfigError("trainer.engine", "'pair-fit' fits lattice-gas labels, not the teacher's; "
                                                "use trainer.engine: mtp")
        if self.layout.trainer.ranks and self.trainer.engine == "mtp" and self.replicas.engine == "lattice-gas":
            raise ConfigError("trainer.engine", "'mtp' trains on atomic frames; lattice-gas replicas need 'pair-fit'")
        if self.layout.oracle.ranks and self.oracle.engine == "lattice-gas" and self.replicas.engine == "lammps-gcmc":
            raise ConfigError("oracle.engine", f"'lattice-gas' cannot label frames of replicas.engine "
                                               f"'{self.replicas.engine}'; set layout.oracle.ranks: 0 or another engine")
