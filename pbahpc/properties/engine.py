"""The properties role (``properties.engine: mtp``): the paper's Secs. II.D-F with the final MTP.

The engine waits for a ``potential`` payload marked ``final`` (the trainer marks the potential of the
campaign's last iteration), then works through a fixed list of runs on its group's communicator, each
collective over it: biased GCMC windows per temperature (free energy), NPT MD per (x, T) (diffusion),
relaxed single-phase references and two-phase supercells (interface/strain energy, voltage, structure).
Finished runs are kept in ``state()``; a free-energy run in progress keeps its replica's state, so a
kill resumes at the window it was in. Then the group root analyses everything and writes
``<run_dir>/properties/``: ``properties.h5`` (every number, checkpoint format), ``report.txt`` (each
number beside the paper's), ``free_energy-<T>K.png``, and, with ``properties.p2d_template``,
``p2d-parameters.yaml`` for the continuum group (``cell_parameters``: {"path": ...}). With
``properties.reference`` every run is repeated with the replicas' LAMMPS potential (the reference the MTP
learned from; runs named ``reference/...``) and the report compares the two (``fidelity.py``). When the
oracle is a universal potential (``oracle.calculator: universal``) that potential is the reference, and only
what it affords is repeated: the relaxed x_low and x_high cells (ASE, on the group root) and bcc Na relaxed
with the same model (Eq. 31's E_Na); the rest is "not computed with this reference" in the table.
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..checkpoint import decode_rng, encode_rng
from ..config.engines import one_line
from ..driver.component import Group, Inbox, StepContext
from ..oracle.universal import CELL_MASK, RATTLE_A
from ..atomistic.structure import SITES_PER_CELL
from .domain import LeftDomain
from .report import NA_METAL, REFERENCE, analyse_and_write


# eV/A: the MTP side's minimiser goes to 1e-4 (relax_energy's ftol); the models compute in float32 and their
# forces stall at a few 1e-3 eV/A (CHGNet: BFGS did not reach 1e-3 in 500 steps), so it stops at this; the
# energy then no longer changes by 1 meV per cell
UNIVERSAL_FMAX_EV_A = 1e-2
UNIVERSAL_STEPS = 1000


def on_root(comm, fn):
    """``fn()`` on the group root; its result, or its error raised, on every rank. The others wait asleep (a
    blocking broadcast spins, taking a core from the root's torch threads)."""
    out = None
    if comm.Get_rank() == 0:
        try:
            out = (fn(), None)
        except Exception as exc:  # noqa: BLE001 - raised on every rank below, as the engine's runs expect
            out = (None, one_line(exc))
    req = comm.Ibarrier()  # the root enters it when fn has returned
    pause = 1e-4
    while not req.Test():
        time.sleep(pause)
        pause = min(2 * pause, 0.01)
    out = comm.bcast(out, root=0)
    if out[1] is not None:
        raise RuntimeError(out[1])
    return out[0]


class PropertiesEngine:
    def __init__(self, cfg, group, comm, seed):
        self.cfg, self.pc, self.comm = cfg, cfg.properties, comm
        self.group = group
        self.out_dir = Path(cfg.campaign.run_dir) / "properties"
        seq = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
        self.rng = np.random.default_rng(seq)
        self.potential: dict[str, Any] = {}
        self._pair = None  # LammpsPotential of self.potential, built once per payload
        self._reference = None  # the replicas' LammpsPotential (properties.reference), built once
        self.done: dict[str, dict[str, Any]] = {}  # run name -> its numbers
        self.replica = None  # the free-energy run in progress (a GcmcMdReplica)
        self.replica_run = ""
        self.written = False
        self.relearns = 0  # times this engine reopened active learning (properties.max_relearn)
        self.left: dict[str, dict[str, Any]] = {}  # run name -> {"reason", "frames"}: left the domain, to redo
        # properties.reference with a universal-potential oracle: that model is the reference (built once, root)
        self.universal = self.pc.reference and cfg.oracle.calculator == "universal"
        self._universal_calc = None

    # ------------------------------------------------------------------ the runs
    def runs(self) -> list[tuple[str, str, dict[str, Any]]]:
        pc = self.pc
        out = [(f"free_energy/T{T:g}", "free_energy", {"T_K": T}) for T in pc.free_energy.temperatures_K]
        out += [(f"diffusion/x{x:g}/T{T:g}", "diffusion", {"x": x, "T_K": T})
                for x in pc.diffusion.x_inserted for T in pc.diffusion.temperatures_K]
        # the relaxed single-phase cells: the interface's references, and what the voltage and structure need
        if pc.interface.repeats or pc.na_reference_eV is not None or self.universal:
            out += [(f"interface/reference/x{x:g}", "reference", {"x": x})
                    for x in (pc.interface.x_low, pc.interface.x_high)]
        out += [(f"interface/n{n}", "two_phase", {"n": n}) for n in pc.interface.repeats]
        if self.universal:
            out += [(REFERENCE + name, kind, p) for name, kind, p in out if kind == "reference"]
            out.append((REFERENCE + NA_METAL, "na_metal", {}))
        elif pc.reference:
            out += [(REFERENCE + name, kind, p) for name, kind, p in out]
        return out

    def _mtp(self):
        """The final MTP for LAMMPS, with the replicas' type order (built once); with its active set when the
        runs are graded."""
        if self._pair is None:
            from ..atomistic.gcmc_replica import make_potential
            from ..mlip.plugin import mtp_potential

            types = make_potential(self.cfg.replicas.gcmc).species
            active = self.potential.get("active_set") if self.pc.grade else None
            self._pair = mtp_potential(self.potential["mtp"], tuple(self.cfg.trainer.species), types, active,
                                       self.cfg.trainer.core_repulsion)
        return self._pair

    def _grader(self, reference: bool):
        """A Grader for a diffusion or interface run with the MTP (None: not graded; a trainer that sends no
        active set gives nothing to grade with)."""
        if reference or not self.pc.grade or not self.potential.get("active_set"):
            return None
        from .domain import Grader

        gc = self.cfg.replicas.gcmc
        return Grader(gc.gamma_select, gc.gamma_stop, self.pc.gamma_check_steps, self.pc.candidates_per_run,
                      self._mtp().species)

    def _relearn_left(self) -> bool:
        """Whether a run that leaves the learned domain may still reopen active learning."""
        return self.pc.grade and self.relearns < self.pc.max_relearn

    def _potential(self, reference: bool):
        """The final MTP, or (``reference``) the replicas' own LAMMPS potential."""
        if not reference:
            return self._mtp()
        if self._reference is None:
            from ..atomistic.gcmc_replica import make_potential

            self._reference = make_potential(self.cfg.replicas.gcmc)
        return self._reference

    def _seed(self) -> int:
        return int(self.rng.integers(1, 2**31 - 1))

    def _run(self, ctx: StepContext, kind: str, p: dict[str, Any], reference: bool) -> dict[str, Any] | None:
        gc = self.cfg.replicas.gcmc
        if reference and self.universal:
            return self._universal(ctx, kind, p)
        if kind == "free_energy":
            return self._free_energy(ctx, p["T_K"], reference)
        if kind == "diffusion":
            from ..atomistic.structure import build_pba
            from .diffusion import diffusion_coefficient, run_md

            d = self.pc.diffusion
            atoms = build_pba(n=d.cells, a_A=gc.a_A, x_na=p["x"], rng=np.random.default_rng(self._seed()),
                              inserted=gc.inserted)
            steps = lambda ps: int(round(ps * 1000.0 / d.timestep_fs))  # noqa: E731
            traj = run_md(atoms, self._potential(reference), ctx.comm, p["T_K"], species=gc.inserted,
                          thermalize_steps=steps(d.thermalise_ps), production_steps=steps(d.production_ps),
                          dump_every=d.sample_every_steps, timestep_fs=d.timestep_fs, seed=self._seed(),
                          grader=self._grader(reference))
            fit = diffusion_coefficient(traj.positions_A, traj.dt_ps, n_blocks=d.blocks)
            return {"x": p["x"], "T_K": p["T_K"], "D_A2_ps": fit.D_A2_per_ps, "sigma_A2_ps": fit.sigma_A2_per_ps,
                    "linear_ok": int(fit.linear_ok), "lag_ps": fit.lag_ps, "msd_A2": fit.msd_A2,
                    "blocks": len(fit.block_D_A2_per_ps)}
        from .interface import relax_energy, two_phase_supercell

        it = self.pc.interface
        unit = (it.unit_cells,) * 3
        if kind == "reference":
            atoms = two_phase_supercell(1, unit, a_A=gc.a_A, x_high=p["x"], x_low=p["x"], inserted=gc.inserted)
        else:
            atoms = two_phase_supercell(p["n"], unit, a_A=gc.a_A, x_high=it.x_high, x_low=it.x_low,
                                        inserted=gc.inserted)
        steps = int(round(it.relax_ps * 1000.0 / it.timestep_fs))
        res = relax_energy(atoms, self._potential(reference), ctx.comm, it.temperature_K, npt_steps=steps,
                           timestep_fs=it.timestep_fs, barostat=it.barostat, seed=self._seed(),
                           grader=self._grader(reference))
        final = res.atoms
        energy = res.energy_eV + (0.0 if reference else self._species_eV(final))
        return {**p, "energy_eV": energy, "volume_A3": res.volume_A3, "area_A2": res.interface_area_A2,
                "cells": int(atoms.info.get("n_cells", 1)), "numbers": final.numbers, "positions_A": final.positions,
                "cell_A": np.asarray(final.cell)}

    def _species_eV(self, atoms) -> float:
        """The MTP's species constants summed over ``atoms`` (eV): ``pair_style mtp ... isolated zero`` leaves them
        out of LAMMPS's pe (GCMC needs isolated atoms at 0), the labels' total energies have them. Added, the
        relaxed cells' energies are on the oracle's zero, that of ``properties.na_reference_eV`` (Eq. 31: the
        Na constant would shift the voltage by itself, -3.0 V for a CHGNet-trained MTP); 0 with the teacher."""
        from ..mlip.mtp_file import read_mtp

        coeffs = read_mtp(self.potential["mtp"]).species_coeffs
        index = {s: i for i, s in enumerate(self.cfg.trainer.species)}
        return float(sum(coeffs[index[s]] for s in atoms.get_chemical_symbols()))

    def _universal(self, ctx: StepContext, kind: str, p: dict[str, Any]) -> dict[str, Any]:
        """A run with the oracle's universal potential, by ASE on the group root: bcc Na (``na_metal``), or the
        single-phase cell at x built as the MTP's run builds it, rattled (``RATTLE_A``: the MTP's
        cell leaves the symmetric start by its NPT MD, a minimiser alone would stay on it) and relaxed as
        ``relax_energy`` relaxes the MTP's: positions and the cell freedom of ``properties.interface.barostat``
        (``CELL_MASK``), at 1 bar."""
        from ..oracle.universal import na_metal_eV_per_atom, relax, torch_threads
        from .interface import RELAX_PRESSURE_BAR, interface_area_A2, two_phase_supercell

        threads = torch_threads(ctx.comm)  # collective
        if kind == "na_metal":
            return on_root(ctx.comm, lambda: {"eV_per_atom": na_metal_eV_per_atom(self._universal_model(threads))})
        gc, it = self.cfg.replicas.gcmc, self.pc.interface
        seed = self._seed()  # drawn on every rank: the engines' streams stay equal

        def run() -> dict[str, Any]:
            atoms = two_phase_supercell(1, (it.unit_cells,) * 3, a_A=gc.a_A, x_high=p["x"], x_low=p["x"],
                                        inserted=gc.inserted)
            atoms.rattle(RATTLE_A, seed=seed)
            converged, steps = relax(atoms, self._universal_model(threads), fmax_eV_A=UNIVERSAL_FMAX_EV_A,
                                     steps=UNIVERSAL_STEPS, mask=CELL_MASK[it.barostat],
                                     pressure_bar=RELAX_PRESSURE_BAR)
            if not converged:
                ctx.log.warning("properties: the %s relaxation at x = %g stopped after %d steps, above fmax %g eV/A",
                                self.cfg.oracle.universal.model, p["x"], steps, UNIVERSAL_FMAX_EV_A)
            return {**p, "energy_eV": float(atoms.get_potential_energy()), "volume_A3": float(atoms.get_volume()),
                    "area_A2": interface_area_A2(atoms), "cells": int(atoms.info.get("n_cells", 1)),
                    "numbers": atoms.numbers, "positions_A": atoms.positions, "cell_A": np.asarray(atoms.cell),
                    "converged": int(converged), "steps": steps, "rattle_seed": seed,
                    "start": f"built cell a = {gc.a_A:g} A, positions rattled by {RATTLE_A:g} A "
                             f"(seed {seed}); BFGS to fmax {UNIVERSAL_FMAX_EV_A:g} eV/A"}

        return on_root(ctx.comm, run)

    def _universal_model(self, threads: int):
        """The oracle's universal calculator on the root, built once. ``threads``: a group rank's share of its
        node's cores, as an oracle rank's (on a loaded 2-core machine 2 threads took 3.8 s per BFGS step of the
        64-atom cell, 1 thread 1.4 s)."""
        if self._universal_calc is None:
            from ..oracle.universal import universal_calculator

            self._universal_calc = universal_calculator(self.cfg.oracle.universal, threads)
        return self._universal_calc

    def _free_energy(self, ctx: StepContext, T_K: float, reference: bool) -> dict[str, Any] | None:
        """Biased GCMC-MD windows (one window per replica step) with the replicas' GCMC settings; with the
        ``reference`` the replica samples with its own potential (no MTP is sent to it)."""
        from ..atomistic.gcmc_replica import GcmcMdReplica

        if self.replica is None:
            self.replica_run = (REFERENCE if reference else "") + f"T{T_K:g}"
            self.replica = GcmcMdReplica(self._window_cfg(T_K), self._window_group(self.replica_run), ctx.comm,
                                         np.random.SeedSequence(self._seed()))
        inbox = {} if reference else {"potential": {"trainer": self.potential}}
        stuck = 0  # halts in a row without a finished cycle: the MTP cannot sample these windows
        while not self.replica.windows.finished and stuck < self.pc.free_energy.max_halts:
            if ctx.stop_requested():
                return None
            windows = self.replica.windows
            out = self.replica.step(ctx.with_progress(windows=(windows.position, windows.length)), inbox)
            if out is None:
                return None
            halted = out["sampling"]["halted"]
            frames = []
            if halted:  # only under the MTP: the reference's frames carry no grade
                # (none in the select window: the replica sends the configuration beyond gamma_stop)
                frames = sorted(out["candidates"].values(), key=lambda f: -float(f["gamma"]))
            if frames and not reference and self._relearn_left():
                # the windows left the learned domain: relearn and redo them, rather than roll back and go on
                gamma = float(out["sampling"]["halt_gamma"])
                self._drop_replica()
                raise LeftDomain(f"gamma {gamma:.4g} > gamma_stop {self.cfg.replicas.gcmc.gamma_stop:g} in window "
                                 f"{windows.position}/{windows.length}" if np.isfinite(gamma) else
                                 f"LAMMPS failed under the MTP in window {windows.position}/{windows.length}",
                                 frames[: self.pc.candidates_per_run], gamma)
            stuck = stuck + 1 if halted and not len(out["sampling"]["gamma_max"]) else 0
        obs = self.replica.results()
        if stuck:
            ctx.log.warning("properties: free energy at %g K given up after %d halts in a row", T_K, stuck)
        sites = SITES_PER_CELL * self.replica.gc.cells**3  # the windows' cell: the report's lattice size M
        self._drop_replica()
        return {"T_K": T_K, "sites": sites, "failed": f"{stuck} halts in a row (the MTP leaves its domain)" if stuck else "",
                **{k: obs[k] for k in ("N", "target_N", "volume_A3", "pe_eV", "gamma_max")}}

    def _drop_replica(self) -> None:
        if self.replica is not None:
            self.replica.lmp.close()
        self.replica, self.replica_run = None, ""

    def _window_cfg(self, T_K: float):
        fe, rep = self.pc.free_energy, self.cfg.replicas
        gc = dataclasses.replace(rep.gcmc, cells=fe.cells or rep.gcmc.cells)
        sites = SITES_PER_CELL * gc.cells**3
        targets = fe.targets_N or tuple(range(sites + 1))
        c = fe.cycles_per_window
        bias = dataclasses.replace(gc.bias, phi_eV=fe.phi_eV, targets_N=tuple(targets), rounds=1, min_cycles=c,
                                   max_cycles=c)
        # graded as the replicas are (halts roll back; the first one sends the run back to active learning
        # while max_relearn allows); without grading nothing is a candidate and nothing halts
        grade = {} if self.pc.grade else {"gamma_select": 1e299, "gamma_stop": 1e300}
        gcmc = dataclasses.replace(gc, bias=bias, full_energy=True, overlap_cutoff_A=fe.overlap_cutoff_A,
                                   sample_without_mtp=True, frame_stride=10**9, **grade)
        replicas = dataclasses.replace(rep, temperatures_K=(T_K,), mu_eV=(fe.mu_eV,), cycles=c, gcmc=gcmc)
        return dataclasses.replace(self.cfg, replicas=replicas)

    def _window_group(self, run: str) -> Group:
        """``run``: ``T<T>`` or ``reference/T<T>`` (the replica's files go under the group's name)."""
        reference, _, T = run.rpartition("T")
        return Group(f"properties-{'reference-' if reference else ''}free-energy-{T}K", "replicas", 0,
                     self.group.ranks)

    # ------------------------------------------------------------------ Component
    def step(self, ctx: StepContext, inbox: Inbox) -> dict[str, Any] | None:
        for _, p in sorted(inbox.get("potential", {}).items()):
            if p:
                self.potential, self._pair = dict(p), None
        if not self.potential.get("final") or self.written:
            return {}
        runs = self.runs()
        for k, (name, kind, p) in enumerate(runs, start=1):
            if name in self.done or name in self.left:
                continue
            if ctx.stop_requested():
                return None
            ctx.log.info("properties: %s", name)
            run_ctx = ctx.with_progress(run=f"{k}/{len(runs)} {name}")
            run_ctx.progress()
            error, left, t0 = None, None, time.perf_counter()
            try:
                result = self._run(run_ctx, kind, p, name.startswith(REFERENCE))
            except LeftDomain as exc:  # raised on every rank alike (the grade is reduced over the group)
                result, left = {}, exc
            except Exception as exc:  # noqa: BLE001  (LAMMPS under the MTP, an MD too short to analyse, ...)
                result, error = {}, one_line(exc)
            # LAMMPS errors are collective, a Python one may be a single rank's: the group agrees, and a run
            # that cannot be done is reported with its reason, not a campaign failure
            error = next((e for e in ctx.comm.allgather(error) if e), None)
            if left is not None and not error:
                if self._relearn_left() and left.frames:
                    ctx.log.warning("properties: %s left the learned domain (%s): %d candidates for the trainer; "
                                    "redone with the next final potential", name, left.reason, len(left.frames))
                    self.left[name] = {"reason": left.reason, "frames": list(left.frames)}
                    continue
                error = f"left the learned domain: {left.reason}" + \
                        (" (no configuration graded before it to learn from)" if not left.frames else
                         f" (after {self.relearns} relearning rounds, properties.max_relearn)")
            if error:
                ctx.log.warning("properties: %s failed: %s", name, error)
                self._drop_replica()
                result = {**p, "failed": error}
            if result is None:
                return None
            self.done[name] = {**result, "wall_s": time.perf_counter() - t0,  # this launch's part of the run
                               "potential_iteration": int(self.potential.get("iteration", -1))}
        if self.left:
            return self._relearn(ctx)
        path, headline = None, {}
        if ctx.comm.Get_rank() == 0:
            try:
                path, headline = analyse_and_write(self.cfg, self.done, self.out_dir,
                                                   np.random.default_rng(self._seed()), ctx.log)
            except Exception as exc:  # noqa: BLE001  (reported; the others wait in the bcast below)
                ctx.log.error("properties: the analysis failed: %s", one_line(exc))
                headline = {"analysis": f"failed: {one_line(exc)}"}
        path = ctx.comm.bcast(path, root=0)
        self.written = True
        out = {"cell_parameters": {"path": str(path)}} if path else {}
        return {**out, "summary": {"runs": len(self.done), **headline}}

    def _relearn(self, ctx: StepContext) -> dict[str, Any]:
        """Send the candidates of the runs that left the learned domain to the trainer and reopen active
        learning (``relearn``: the driver runs at least one more iteration). Every MTP run is redone with the
        next final potential, those that stayed inside too: the report combines runs (Eq. 31 voltages and Eq. 4
        excess energies are differences of their energies), and two MTPs' energies differ by an offset of their
        own (the demo: -7.2 V from reference cells of two potentials). The reference's runs are kept."""
        candidates = {f"{self.relearns:03d}.{k:03d}.{j:03d}": frame
                      for k, (_, left) in enumerate(sorted(self.left.items()))
                      for j, frame in enumerate(left["frames"])}
        self.relearns += 1
        names = sorted(self.left)
        self.left = {}
        self.done = {k: v for k, v in self.done.items() if k.startswith(REFERENCE)}
        ctx.log.info("properties: %d runs left the learned domain (%s): %d candidates, relearning round %d/%d",
                     len(names), ", ".join(names), len(candidates), self.relearns, self.pc.max_relearn)
        return {"candidates": candidates, "relearn": True,
                "summary": {"left the domain": len(names), "candidates": len(candidates),
                            "relearning": f"{self.relearns}/{self.pc.max_relearn}"}}

    def state(self) -> dict[str, Any]:
        return {"potential": dict(self.potential), "done": {k.replace("/", "|"): v for k, v in self.done.items()},
                "rng": encode_rng(self.rng), "written": int(self.written), "replica_run": self.replica_run,
                "replica": self.replica.state() if self.replica is not None else {}, "relearns": self.relearns,
                "left": {k.replace("/", "|"): {"reason": v["reason"],
                                               "frames": {f"{j:03d}": f for j, f in enumerate(v["frames"])}}
                         for k, v in self.left.items()}}

    def load_state(self, s: dict[str, Any]) -> None:
        from ..atomistic.gcmc_replica import GcmcMdReplica

        self.potential, self._pair = dict(s["potential"]), None
        self.done = {k.replace("|", "/"): dict(v) for k, v in s["done"].items()}
        self.rng = decode_rng(s["rng"])
        self.written = bool(s["written"])
        self.relearns = int(s.get("relearns", 0))
        self.left = {k.replace("|", "/"): {"reason": str(v["reason"]), "frames": [dict(f) for _, f in
                                                                                   sorted(v["frames"].items())]}
                     for k, v in s.get("left", {}).items()}
        self.replica_run = str(s.get("replica_run", ""))
        if self.replica_run:
            T_K = float(self.replica_run.rpartition("T")[2])
            self.replica = GcmcMdReplica(self._window_cfg(T_K), self._window_group(self.replica_run), self.comm,
                                         np.random.SeedSequence(0))
            self.replica.load_state(s["replica"])

    def results(self) -> dict[str, Any]:
        return {"runs_done": len(self.done), "runs": len(self.runs()), "written": int(self.written),
                "relearns": self.relearns}
