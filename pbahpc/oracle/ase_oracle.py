"""Label candidate frames with an ASE calculator and screen them (paper Sec. II.C).

The built-in ``teacher`` engine uses ``TeacherCalculator`` (the default reference standing in for DFT).
Frames are dealt round-robin over the oracle group's ranks and gathered on its root. Screening drops
frames with any |F| > ``max_force_eV_A`` or E > ``max_energy_eV`` and keeps the reason.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from ase import Atoms

from ..driver.component import Inbox, StepContext, register


def label(calc, frame: dict[str, Any]) -> dict[str, Any]:
    """Energy (eV), forces (eV/A) and stress (eV/A^3, ASE Voigt order) of one frame."""
    atoms = Atoms(numbers=frame["numbers"], positions=frame["positions_A"], cell=frame["cell_A"], pbc=True)
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
        from .teacher import TeacherCalculator

        self.oc = cfg.oracle
        self.calc = TeacherCalculator(inserted=cfg.replicas.gcmc.inserted)
        self.labelled = self.discarded = 0
        self.reasons: dict[str, str] = {}
        self.energies: dict[str, float] = {}  # eV, of every labelled frame, kept or not

    def step(self, ctx: StepContext, inbox: Inbox) -> dict[str, Any]:
        frames = [(f"{rep}/{key}", frame) for rep, batch in sorted(inbox.get("candidates", {}).items())
                  for key, frame in sorted((batch or {}).items())]
        rank, size = ctx.comm.Get_rank(), ctx.comm.Get_size()
        mine = {name: label(self.calc, frame) for name, frame in frames[rank::size]}
        parts = ctx.comm.gather(mine, root=0)
        if rank != 0:
            return {"labels": None}
        kept = {}
        for name, _ in frames:  # candidate order, whichever rank labelled it
            lab = next(p[name] for p in parts if name in p)
            self.energies[name.replace("/", ":")] = lab["energy_eV"]
            reason = screen(lab, self.oc.max_force_eV_A, self.oc.max_energy_eV)
            if reason:
                self.reasons[name.replace("/", ":")] = reason
            else:
                kept[name.replace("/", ":")] = lab
        self.labelled += len(frames)
        self.discarded += len(frames) - len(kept)
        ctx.log.info("labelled %d frames, kept %d", len(frames), len(kept))
        return {"labels": kept}

    def state(self) -> dict[str, Any]:
        return {"labelled": self.labelled, "discarded": self.discarded, "reasons": dict(self.reasons),
                "energies": dict(self.energies)}

    def load_state(self, s: dict[str, Any]) -> None:
        self.labelled, self.discarded = int(s["labelled"]), int(s["discarded"])
        self.reasons, self.energies = dict(s["reasons"]), dict(s["energies"])

    def results(self) -> dict[str, Any]:
        return self.state()


register("oracle", "teacher")(AseOracle)
