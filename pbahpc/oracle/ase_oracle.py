"""Label candidate frames with an ASE calculator and screen them (paper Sec. II.C).

The ``teacher`` engine labels with ``oracle.calculator``: ``TeacherCalculator`` (default, the reference
standing in for DFT), the VASP preset, or any ASE calculator by factory (see ``calculators``).
Frames are dealt round-robin over the oracle group's ranks and gathered on its root.

Failures: an attempt that raises (any Exception) or runs past ``timeout_s`` is retried up to
``retries`` times; then the frame is quarantined with its reason (``Type: message``, one line) in
``state()["quarantined"]`` and the campaign goes on with the other frames. Screening drops frames with
any |F| > ``max_force_eV_A`` or E > ``max_energy_eV`` and keeps the reason in ``state()["reasons"]``.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from ase import Atoms

from ..driver.component import Inbox, StepContext, register
from .calculators import CalculatorSource, deadline, one_line


def label(calc, frame: dict[str, Any], prepare=None) -> dict[str, Any]:
    """Energy (eV), forces (eV/A) and stress (eV/A^3, ASE Voigt order) of one frame."""
    atoms = Atoms(numbers=frame["numbers"], positions=frame["positions_A"], cell=frame["cell_A"], pbc=True)
    if prepare is not None:
        prepare(atoms)
    atoms.calc = calc
    return {**frame, "energy_eV": float(atoms.get_potential_energy()), "forces_eV_A": atoms.get_forces(),
            "stress_eV_A3": atoms.get_stress()}


def screen(labelled: dict[str, Any], max_force: float, max_energy: float) -> str | None:
    """The reason a labelled frame is discarded, or None to keep it."""
    fmax = float(np.max(np.linalg.norm(labelled["forces_eV_A"], axis=1))) if len(labelled["numbers"]) else 0.0
    if fmax > max_force:
        return f"max |F| {fmax:.3g} eV/A > {max_force:g}"
    if labelled["energy_eV"] > max_energy:
        return f"E {labelled['energy_eV']:.6g} eV > {max_energy:g}"
    return None


class AseOracle:
    def __init__(self, cfg, group, comm, seed):
        self.oc = cfg.oracle
        self.calcs = CalculatorSource(cfg)
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

    def step(self, ctx: StepContext, inbox: Inbox) -> dict[str, Any]:
        frames = [(f"{rep}/{key}", frame) for rep, batch in sorted(inbox.get("candidates", {}).items())
                  for key, frame in sorted((batch or {}).items())]
        rank, size = ctx.comm.Get_rank(), ctx.comm.Get_size()
        mine = {name: self._label(ctx, name, frame) for name, frame in frames[rank::size]}
        parts = ctx.comm.gather(mine, root=0)
        if rank != 0:
            return {"labels": None}
        kept = {}
        for name, _ in frames:  # candidate order, whichever rank labelled it
            lab = next(p[name] for p in parts if name in p)
            if "oracle_error" in lab:
                self.quarantined[name.replace("/", ":")] = lab["oracle_error"]
                self.failed_attempts += lab["attempts"]
                continue
            self.energies[name.replace("/", ":")] = lab["energy_eV"]
            reason = screen(lab, self.oc.max_force_eV_A, self.oc.max_energy_eV)
            if reason:
                self.reasons[name.replace("/", ":")] = reason
            else:
                kept[name.replace("/", ":")] = lab
        failed = sum("oracle_error" in p[n] for p in parts for n in p)
        self.labelled += len(frames) - failed
        self.discarded += len(frames) - failed - len(kept)
        ctx.log.info("labelled %d frames, kept %d, quarantined %d", len(frames) - failed, len(kept), failed)
        return {"labels": kept}

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


register("oracle", "teacher")(AseOracle)
