"""Label candidate frames with an ASE calculator and screen them (paper Sec. II.C).

The ``teacher`` engine labels with ``oracle.calculator``: ``TeacherCalculator`` (default, the reference
standing in for DFT), a universal potential shipped in its wheel (``universal``), the VASP preset, or any
ASE calculator by factory (see ``calculators``).
Frames arrive on ``selected`` (``{trainer group: {replica group: {key: frame}}}``; see
``driver.component.selected_batches``), are dealt
round-robin over the oracle group's ranks and gathered on its root. Out: ``labels`` (``{"<replica>:<key>":
labelled frame}``, the kept ones) and ``screened`` (this iteration's ``{"screened": {name: reason},
"quarantined": {name: reason}}``).

Pre-training (``oracle.pretrain.compositions_x``): in iteration 0 the group also runs short Langevin MD
with its calculator at each composition (one composition per rank, round-robin) and labels its frames
(``pretrain:x<x>:<step>``); they are screened like the others. With ``pretrain.relax`` each composition's
cell is first relaxed with the calculator (``pretrain:x<x>relax:<step>``: the path) and its MD starts from the
relaxed cell, strained; a composition's relaxation and MD run on one rank. A kill during iteration 0's label
stage redoes this MD.

Failures: an attempt that raises (any Exception) or runs past ``timeout_s`` is retried up to
``retries`` times; then the frame is quarantined with its reason (``Type: message``, one line) in
``state()["quarantined"]`` and the campaign goes on with the other frames. Screening drops frames with
any |F| > ``max_force_eV_A`` or E > ``max_energy_eV``, and with ``trainer.core_repulsion`` those with a wall
pair closer than its outer_A, and keeps the reason in ``state()["reasons"]``.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..config.engines import one_line
from ..driver.component import Inbox, StepContext, selected_batches
from ..mlip.core_repulsion import violation
from ..mlip.dataset import frame_atoms
from .calculators import CalculatorSource, deadline
from .universal import CELL_MASK


# oracle.pretrain.relax: the relaxation paths stop at this largest generalised force (eV/A; the MD after them
# samples the basin, which needs no tighter minimum) or after this many BFGS steps
PRETRAIN_FMAX_EV_A = 0.05
PRETRAIN_STEPS = 500


def label(calc, frame: dict[str, Any], prepare=None) -> dict[str, Any]:
    """Energy (eV), forces (eV/A) and stress (eV/A^3, ASE Voigt order) of one frame."""
    atoms = frame_atoms(frame)
    if prepare is not None:
        prepare(atoms)
    atoms.calc = calc
    return {**frame, "energy_eV": float(atoms.get_potential_energy()), "forces_eV_A": atoms.get_forces(),
            "stress_eV_A3": atoms.get_stress()}


def screen(labelled: dict[str, Any], max_force: float, max_energy: float, core_repulsion=None) -> str | None:
    """The reason a labelled frame is discarded, or None to keep it. With ``core_repulsion``
    (``trainer.core_repulsion``) a frame with a wall pair inside its outer_A goes too: the wall is fitted
    around, never subtracted (``pbahpc.mlip.core_repulsion``)."""
    fmax = float(np.max(np.linalg.norm(labelled["forces_eV_A"], axis=1))) if len(labelled["numbers"]) else 0.0
    if fmax > max_force:
        return f"max |F| {fmax:.3g} eV/A > {max_force:g}"
    if labelled["energy_eV"] > max_energy:
        return f"E {labelled['energy_eV']:.6g} eV > {max_energy:g}"
    return violation(frame_atoms(labelled), core_repulsion) if core_repulsion is not None else None


class AseOracle:
    def __init__(self, cfg, group, comm, seed):
        self.oc = cfg.oracle
        self.core_repulsion = cfg.trainer.core_repulsion
        self.calcs = CalculatorSource(cfg, comm)
        self.inserted = cfg.replicas.gcmc.inserted
        # the pre-training relaxations lead the MTP along the paths the properties' relaxed cells take
        self.cell_mask = CELL_MASK[cfg.properties.interface.barostat]
        seq = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
        self.seed = int(seq.generate_state(1)[0])  # pre-training MD: cages, velocities, Langevin noise
        self.labelled = self.discarded = 0
        self.reasons: dict[str, str] = {}  # screened out: why
        self.energies: dict[str, float] = {}  # eV, of every labelled frame, kept or not
        self.quarantined: dict[str, str] = {}  # no label after 1 + retries attempts: the last error
        self.failed_attempts = 0

    def _label(self, ctx: StepContext, name: str, frame: dict[str, Any]) -> dict[str, Any]:
        """The labelled frame, or {"oracle_error": reason, "attempts": n} after 1 + retries failures."""
        errors = []
        for attempt in range(1 + self.oc.retries):
            calc = self.calcs.get(name)
            if attempt and hasattr(calc, "reset"):
                calc.reset()
            try:
                with deadline(self.calcs.alarm_s()):
                    return label(calc, frame, self.calcs.prepare)
            except Exception as exc:  # noqa: BLE001  (any calculator failure: retry, then quarantine)
                errors.append(one_line(exc))
                ctx.log.warning("frame %s: attempt %d/%d failed: %s", name, attempt + 1, 1 + self.oc.retries,
                                errors[-1])
        return {"oracle_error": errors[-1], "attempts": len(errors)}

    def _pretrain(self, ctx: StepContext) -> dict[str, dict[str, Any]]:
        """This rank's share of the pre-training frames, labelled (see the module docstring)."""
        from ..mlip.dataset import from_atoms, generate_oracle_md

        pt = self.oc.pretrain
        rank, size = ctx.comm.Get_rank(), ctx.comm.Get_size()
        out = {}
        # the unstrained lattice keeps the name and seed it had before strains existed
        tasks = [(f"pretrain/x{x:g}" + (f"s{e:+g}" if e else ""), x, e) for x in pt.compositions_x for e in pt.strains]
        if pt.relax:  # a composition's MD starts from its relaxation: the rank that relaxes it runs its strains
            share = [(k, t) for k, t in enumerate(tasks) if pt.compositions_x.index(t[1]) % size == rank]
        else:
            share = list(enumerate(tasks))[rank::size]
        relaxed = {}
        for done, (k, (name, x, strain)) in enumerate(share, start=1):
            start = None
            if pt.relax:
                if x not in relaxed:
                    relaxed[x] = self._relaxation(ctx, x, len(tasks) + pt.compositions_x.index(x), out)
                start = relaxed[x].copy()
                start.set_cell(start.cell.array * (1.0 + strain), scale_atoms=True)
            images = generate_oracle_md(
                compositions_x=(x,), temperature_K=pt.temperature_K, steps=pt.steps, seed=self.seed + k,
                every=pt.every, timestep_fs=pt.timestep_fs, n_cells=pt.cells, a_A=pt.a_A * (1.0 + strain),
                inserted=self.inserted, calculator_factory=lambda name=name: self.calcs.get(name), start=start)
            for atoms in images:
                out[f"{name}:{atoms.info['step']:06d}"] = from_atoms(atoms)
            a = pt.a_A * (1.0 + strain) if start is None else float(np.cbrt(start.get_volume() / pt.cells**3))
            ctx.log.info("pre-training MD at x = %g, a = %.4g A: %d frames", x, a, len(images))
            ctx.progress(**{"pre-training MD compositions": (done, len(share))})
        return out

    def _relaxation(self, ctx: StepContext, x: float, k: int, out: dict[str, dict[str, Any]]):
        """``oracle.pretrain.relax``: the built cell at ``x`` rattled (seed ``self.seed + k``) and relaxed with
        the calculator; every ``every``-th step and the end go into ``out`` (``pretrain/x<x>relax:<step>``).
        Returns the relaxed cell."""
        from ..atomistic.structure import build_pba
        from ..mlip.dataset import from_atoms, labelled_copy
        from .universal import RATTLE_A, relax

        pt = self.oc.pretrain
        name = f"pretrain/x{x:g}relax"
        atoms = build_pba(pt.cells, pt.a_A, x_na=x, rng=np.random.default_rng(self.seed + k), inserted=self.inserted)
        atoms.rattle(RATTLE_A, seed=self.seed + k)
        path = []
        converged, steps = relax(atoms, self.calcs.get(name), fmax_eV_A=PRETRAIN_FMAX_EV_A, steps=PRETRAIN_STEPS,
                                 mask=self.cell_mask, pressure_bar=1.0, interval=pt.every,
                                 observer=lambda: path.append(labelled_copy(atoms)))
        if steps % pt.every:  # the end, unless the observer took it
            path.append(labelled_copy(atoms))
        for step, frame in zip([*range(0, steps + 1, pt.every), steps], path):
            out[f"{name}:{step:06d}"] = from_atoms(frame)
        ctx.log.info("pre-training relaxation at x = %g: %d steps (%s), a b c = %s A, %d frames", x, steps,
                     "converged" if converged else f"stopped above fmax {PRETRAIN_FMAX_EV_A:g} eV/A",
                     " ".join(f"{v:.4g}" for v in atoms.cell.lengths()), len(path))
        atoms.calc = None
        return atoms

    def step(self, ctx: StepContext, inbox: Inbox) -> dict[str, Any]:
        frames = [(f"{rep}/{key}", frame) for rep, batch in selected_batches(inbox)
                  for key, frame in sorted(batch.items())]
        rank, size = ctx.comm.Get_rank(), ctx.comm.Get_size()
        share = frames[rank::size]
        # the root sees only its own share: progress counts its frames, the summary all of them
        what = "frames labelled" + (f" (rank 0 of {size})" if size > 1 else "")
        mine = {}
        for name, frame in share:
            mine[name] = self._label(ctx, name, frame)
            ctx.progress(**{what: (len(mine), len(share))})
        if ctx.iteration == 0 and self.oc.pretrain.compositions_x:
            mine.update(self._pretrain(ctx))
        parts = ctx.comm.gather(mine, root=0)
        if rank != 0:
            return {"labels": None, "screened": None}
        frames += sorted((name, None) for p in parts for name in p if name.startswith("pretrain/"))
        kept, screened, quarantined = {}, {}, {}
        for name, _ in frames:  # candidate order, whichever rank labelled it
            lab = next(p[name] for p in parts if name in p)
            key = name.replace("/", ":")
            if "oracle_error" in lab:
                quarantined[key] = lab["oracle_error"]
                self.failed_attempts += lab["attempts"]
                continue
            self.energies[key] = lab["energy_eV"]
            reason = screen(lab, self.oc.max_force_eV_A, self.oc.max_energy_eV, self.core_repulsion)
            if reason:
                screened[key] = reason
            else:
                kept[key] = lab
        self.reasons.update(screened)
        self.quarantined.update(quarantined)
        failed = len(quarantined)
        self.labelled += len(frames) - failed
        self.discarded += len(frames) - failed - len(kept)
        ctx.log.info("labelled %d frames, kept %d, quarantined %d", len(frames) - failed, len(kept), failed)
        return {"labels": kept, "screened": {"screened": screened, "quarantined": quarantined},
                "summary": {"labelled": len(frames) - failed, "kept": len(kept), "screened": len(screened),
                            "quarantined": failed}}

    def state(self) -> dict[str, Any]:
        return {"labelled": self.labelled, "discarded": self.discarded, "reasons": dict(self.reasons),
                "energies": dict(self.energies), "quarantined": dict(self.quarantined),
                "failed_attempts": self.failed_attempts}

    def load_state(self, s: dict[str, Any]) -> None:
        self.labelled, self.discarded = int(s["labelled"]), int(s["discarded"])
        self.reasons, self.energies = dict(s["reasons"]), dict(s["energies"])
        self.quarantined = dict(s.get("quarantined", {}))  # absent in checkpoints from before quarantine
        self.failed_attempts = int(s.get("failed_attempts", 0))

    def results(self) -> dict[str, Any]:
        return self.state()
