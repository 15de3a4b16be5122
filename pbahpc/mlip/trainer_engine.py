"""The MTP trainer as the campaign's trainer engine (``trainer.engine: mtp``): selection and training.

``select`` (the select stage) takes the replicas' ``candidates`` ({replica: {key: frame}}) and
``sampling`` reports, and selects with MaxVol against the current active set (``selection.select``:
no configuration twice, at most ``trainer.max_selected``, largest grade first); before the first
potential every fresh candidate is selected (up to the cap). It sends ``selected`` ({replica: {key:
frame}}) and ``converged``: a potential exists, every replica sampled with it, none halted, nothing
selected.

``step`` (the train stage) takes the oracle's labels from the ``labels`` channel (``{oracle group: {frame name:
{numbers, positions_A, cell_A, energy_eV, forces_eV_A, stress_eV_A3 (ASE Voigt, eV/A^3), ...}}}``, see
``pbahpc.oracle.ase_oracle``), adds the configurations not seen before (``selection.fingerprint``) to the
training set, and, if any were new, retrains the MTP on the whole set (``train.train``, MPI-parallel over
configurations on the trainer group's communicator; the first fit starts from random radial coefficients
drawn from the engine's seeded Generator, later fits continue from the previous potential). The group
root then writes ``<run_dir>/potentials/potential-<iteration>.mtp`` and ``active-<iteration>.als`` (the
MaxVol active set over the training set). Outgoing on ``potential``: ``{"mtp": path, "active_set": path,
"iteration", "n_train", "rmse_energy_eV_atom", "rmse_forces_eV_A", "rmse_stress_GPa", "final"}`` (the RMSEs on the
training set, as ``train.rmse`` computes them; ``final``: the campaign ends after it, ``ctx.last_iteration``); without new labels the last payload is sent again (and
``{}`` before the first fit). ``trainer.initial_data`` files start the training set (fitted in the
first train stage). After every train stage the group root writes the training set
(``<run_dir>/training/train.extxyz`` and ``train.cfg``) and the per-iteration statistics
(``pbahpc.mlip.statistics``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from ase.data import atomic_numbers

from ..checkpoint import decode_rng, encode_rng
from ..driver.component import Inbox, StepContext
from . import statistics
from .dataset import frame_atoms, from_atoms
from .mtp_file import MTPData
from .selection import fingerprint

_CONFIG_KEYS = ("numbers", "positions_A", "cell_A", "energy_eV", "forces_eV_A", "stress_eV_A3")
_HISTORY_COLUMNS = "iteration n_train rmse_energy_eV_atom rmse_forces_eV_A rmse_stress_GPa"


def to_atoms(config: dict[str, Any]) -> Atoms:
    """A labelled configuration (one entry of the training set) as ASE Atoms with its labels attached
    (a stress of NaNs, e.g. from a file without stresses, is left out)."""
    atoms = frame_atoms(config)
    stress = np.array(config["stress_eV_A3"], dtype=float)
    extra = {"stress": stress} if np.isfinite(stress).all() else {}
    atoms.calc = SinglePointCalculator(atoms, energy=float(config["energy_eV"]),
                                       forces=np.array(config["forces_eV_A"], dtype=float), **extra)
    return atoms


def mtp_state(data: MTPData) -> dict[str, Any]:
    return {k: getattr(data, k) for k in data.__dataclass_fields__}


def mtp_from_state(s: dict[str, Any]) -> MTPData:
    kinds = {"species_count": int, "radial_basis_size": int, "radial_funcs_count": int, "min_dist": float,
             "max_dist": float, "scaling": float, "version": str, "potential_name": str, "potential_tag": str,
             "radial_basis_type": str}
    kw = {k: (kinds[k](v) if k in kinds else (None if v is None else np.array(v))) for k, v in s.items()}
    return MTPData(**kw)


def _rmse_text(energy_eV_atom: float, forces_eV_A: float) -> str:
    return f"{energy_eV_atom * 1e3:.3g} meV/atom, {forces_eV_A:.3g} eV/A"


class MTPTrainer:
    def __init__(self, cfg, group, comm, seed):
        tc = cfg.trainer
        self.species = tuple(tc.species)
        self.level, self.max_iter, self.ridge, self.cap = tc.level, tc.train_iterations, tc.ridge, tc.max_selected
        self.tol = tc.train_tolerance
        self.radial = {"min_dist": tc.min_dist_A, "max_dist": tc.max_dist_A, "radial_basis_size": tc.radial_basis_size}
        self.isolated = tc.isolated_energies_eV
        if self.isolated is None and cfg.oracle.engine == "teacher" and cfg.oracle.calculator == "teacher":
            self.isolated = (0.0,) * len(self.species)  # the teacher's isolated atoms have E = 0
        run_dir = Path(cfg.campaign.run_dir)
        self.out_dir, self.set_dir, self.stats_path = run_dir / "potentials", run_dir / "training", \
            run_dir / "statistics.h5"
        seq = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
        self.rng = np.random.default_rng(seq)
        self.configs: dict[str, dict[str, Any]] = {}  # "<8-digit index>" -> arrays (training order)
        self.seen: set[str] = set()  # fingerprints of self.configs
        self.chosen: set[str] = set()  # fingerprints of every configuration selected so far
        self.mtp: MTPData | None = None
        self._active = None  # the active set of self.mtp (read back from its file when needed)
        self.last: dict[str, Any] = {}  # the last "potential" payload
        self.history: list[tuple[float, ...]] = []  # see _HISTORY_COLUMNS
        self.stats: list[dict[str, float]] = []  # one row per iteration, statistics.COLUMNS
        self.histograms: list[np.ndarray] = []
        # "iter-<k>" -> {frame: why screened or quarantined}; "initial-data" -> {configuration: why left out}
        self.reasons: dict[str, dict[str, str]] = {}
        self._initial_data(tc.initial_data, tc.core_repulsion, comm)

    def _initial_data(self, paths, core_repulsion, comm) -> None:
        """The files' configurations into the training set, except those the wall would not be zero on
        (``core_repulsion``, screened as the oracle's labels are; reasons under "initial-data")."""
        from .core_repulsion import violation
        from .dataset import read_labelled

        images = comm.bcast([(f"{Path(p).name}:{k:06d}", a) for p in paths for k, a in enumerate(read_labelled(p))]
                            if comm.Get_rank() == 0 else None, root=0)
        dropped = {}
        for name, atoms in images:
            reason = violation(atoms, core_repulsion)
            if reason:
                dropped[name] = reason
            else:
                self._add(from_atoms(atoms))
        if dropped:
            self.reasons["initial-data"] = dropped

    # -- training set --------------------------------------------------------------------------
    def _add(self, lab: dict[str, Any]) -> bool:
        config = {k: np.array(lab[k], dtype=np.int64 if k == "numbers" else np.float64) for k in _CONFIG_KEYS}
        config["cell_A"] = config["cell_A"].reshape(3, 3)
        atoms = to_atoms(config)
        fp = fingerprint(atoms)
        if fp in self.seen:
            return False
        self.species_indices(atoms)
        self.seen.add(fp)
        self.configs[f"{len(self.configs):08d}"] = config
        return True

    def atoms(self) -> list[Atoms]:
        """The training set, in training order, as labelled Atoms."""
        return [to_atoms(c) for _, c in sorted(self.configs.items())]

    def species_indices(self, atoms: Atoms) -> np.ndarray:
        index = {atomic_numbers[s]: i for i, s in enumerate(self.species)}
        unknown = sorted({int(z) for z in atoms.numbers} - set(index))
        if unknown:
            raise ValueError(f"configuration {atoms.get_chemical_formula()} has elements {unknown} not in "
                             f"trainer.species {list(self.species)}")
        return np.array([index[int(z)] for z in atoms.numbers], dtype=np.int64)

    def active_set(self):
        from .active_set import read_active_set

        if self._active is None and self.last.get("active_set"):
            self._active = read_active_set(self.last["active_set"])
        return self._active

    # -- select stage --------------------------------------------------------------------------
    def select(self, ctx: StepContext, inbox: Inbox) -> dict[str, Any]:
        """Choose what the oracle labels (on the group root; the others receive the outcome)."""
        out = error = None
        if ctx.comm.Get_rank() == 0:
            try:
                out = self._select(inbox)
            except Exception as exc:  # noqa: BLE001 - raised on every rank below, none is left in the bcast
                error = exc
        out, error = ctx.comm.bcast((out, error), root=0)
        if error is not None:
            raise error
        selected, row, hist, chosen = out
        self.chosen.update(chosen)
        row["iteration"] = ctx.iteration
        self.stats.append(row)
        self.histograms.append(hist)
        ctx.log.info("iteration %d: %d candidates, %d selected (repeat %d, inside %d, cap %d), %d/%d replicas "
                     "halted%s", ctx.iteration, row["candidates"], row["selected"], row["repeat"], row["inside"],
                     row["cap"], row["replicas_halted"], len(inbox.get("sampling", {})),
                     ": converged" if row["converged"] else "")
        return {"selected": selected, "converged": bool(row["converged"]),
                "summary": {"candidates": row["candidates"], "selected": row["selected"], "already seen": row["repeat"],
                            "inside the active set": row["inside"], "over the cap": row["cap"]}}

    def _select(self, inbox: Inbox):
        from .selection import select

        names, atoms = [], []
        for rep, batch in sorted(inbox.get("candidates", {}).items()):
            for key, frame in sorted((batch or {}).items()):
                names.append((rep, key))
                atoms.append(frame_atoms(frame))
        seen = self.chosen | self.seen  # selected before, or in the training set already
        outcome = select(self.mtp, self.active_set(), [(a, self.species_indices(a)) for a in atoms], seen,
                         cap=self.cap)
        picked, skipped = outcome.selected, outcome.skipped
        selected: dict[str, dict[str, Any]] = {}
        for k in picked:
            rep, key = names[k]
            selected.setdefault(rep, {})[key] = inbox["candidates"][rep][key]
        sampling = inbox.get("sampling", {})
        reports = [r for r in sampling.values() if r]
        gammas = np.concatenate([np.asarray(r["gamma_max"], dtype=float) for r in reports] +
                                [np.array([r["halt_gamma"] for r in reports if r["halted"]], dtype=float)])
        graded = sum(int(r["graded"]) for r in reports)
        halted = sum(int(r["halted"]) for r in reports)
        reasons = list(skipped.values())
        row = {"candidates": len(atoms), "selected": len(picked), "repeat": reasons.count("repeat"),
               "inside": reasons.count("inside"), "cap": reasons.count("cap"), "replicas_graded": graded,
               "replicas_halted": halted}
        row["converged"] = int(self.mtp is not None and bool(reports) and graded == len(reports) and not halted
                               and not picked)
        return selected, row, statistics.gamma_histogram(gammas), seen - self.chosen - self.seen

    # -- train stage ---------------------------------------------------------------------------
    def step(self, ctx: StepContext, inbox: Inbox) -> dict[str, Any]:
        from .train import rmse

        added = [lab for _, batch in sorted(inbox.get("labels", {}).items())
                 for _, lab in sorted((batch or {}).items()) if self._add(lab)]
        if not self.stats or "n_train" in self.stats[-1]:  # no select stage in this iteration
            self.stats.append({})
            self.histograms.append(statistics.gamma_histogram(np.zeros(0)))
        row = self.stats[-1]
        screened = {k: v for _, rep in sorted(inbox.get("screened", {}).items()) if rep
                    for part in ("screened", "quarantined") for k, v in rep[part].items()}
        row.update(iteration=ctx.iteration, labelled=len(added),
                   screened=sum(len(r["screened"]) for r in inbox.get("screened", {}).values() if r),
                   quarantined=sum(len(r["quarantined"]) for r in inbox.get("screened", {}).values() if r))
        if screened:
            self.reasons[f"iter-{ctx.iteration:06d}"] = screened
        if self.mtp is not None and added:
            held_out = rmse(self.mtp, self.species, [to_atoms(c) for c in added], ctx.comm)
            row.update(rmse_new_energy_eV_atom=held_out["energy"], rmse_new_forces_eV_A=held_out["forces"])
        if not added and (self.mtp is not None or not self.configs):
            ctx.log.info("no new labels (training set %d): potential unchanged", len(self.configs))
            self._finish_row(ctx, row)
            out = {"potential": {**self.last, "final": ctx.last_iteration}} if self.last else {}
            return {**out, "summary": self._summary(row, 0)}
        from .active_set import ActiveSet, write_active_set
        from .dataset import write_training_set
        from .mtp_file import write_mtp
        from .train import train

        configs = self.atoms()
        start = self.mtp if self.mtp is not None else self.level
        seed = int(self.rng.integers(2**31))  # drawn every fit, used by the first (random radial start)
        self.mtp, errors = train(configs, start, self.species, ctx.comm, seed=seed, max_iter=self.max_iter,
                                 ridge=self.ridge, tol=self.tol, isolated_eV=self.isolated, **self.radial,
                                 progress=lambda it, passes, loss: ctx.progress(
                                     iterations=(it, self.max_iter), passes=passes, loss=loss))
        self.history.append((float(ctx.iteration), float(len(configs)), errors["energy"], errors["forces"],
                             errors["stress"]))
        mtp_path = self.out_dir / f"potential-{ctx.iteration:06d}.mtp"
        als_path = self.out_dir / f"active-{ctx.iteration:06d}.als"
        self._active = None
        if ctx.comm.Get_rank() == 0:
            self._active = ActiveSet.select(self.mtp, [(a, self.species_indices(a)) for a in configs])
            self.out_dir.mkdir(parents=True, exist_ok=True)
            write_mtp(mtp_path, self.mtp)
            write_active_set(als_path, self._active)
            write_training_set(configs, self.set_dir, species=self.species)
        ctx.log.info("MTP level %d on %d configurations (%d new): RMSE %.3g eV/atom, %.3g eV/A",
                     self.level, len(configs), len(added), errors["energy"], errors["forces"])
        self.last = {"mtp": str(mtp_path), "active_set": str(als_path), "iteration": int(ctx.iteration),
                     "n_train": len(configs), "rmse_energy_eV_atom": float(errors["energy"]),
                     "rmse_forces_eV_A": float(errors["forces"]), "rmse_stress_GPa": float(errors["stress"])}
        self._finish_row(ctx, row)
        return {"potential": {**self.last, "final": ctx.last_iteration}, "summary": self._summary(row, len(added))}

    def _summary(self, row: dict[str, float], added: int) -> dict[str, Any]:
        """The train stage's line on rank 0's terminal: the RMSEs on the training set and on the new labels
        (held out: computed with the previous potential before they were added)."""
        out: dict[str, Any] = {"configurations": len(self.configs), "new": added}
        if self.last:
            out["rmse training"] = _rmse_text(self.last["rmse_energy_eV_atom"], self.last["rmse_forces_eV_A"])
        if "rmse_new_energy_eV_atom" in row:
            out["rmse held-out"] = _rmse_text(row["rmse_new_energy_eV_atom"], row["rmse_new_forces_eV_A"])
        return out

    def _finish_row(self, ctx: StepContext, row: dict[str, float]) -> None:
        row.update(n_train=len(self.configs), rmse_train_energy_eV_atom=self.last.get("rmse_energy_eV_atom", np.nan),
                   rmse_train_forces_eV_A=self.last.get("rmse_forces_eV_A", np.nan),
                   rmse_train_stress_GPa=self.last.get("rmse_stress_GPa", np.nan))
        if ctx.comm.Get_rank() == 0:
            statistics.write_statistics(self.stats_path, self.stats, self.histograms, self.reasons)
            statistics.plot_statistics(self.stats_path, self.stats_path.with_suffix(".png"))

    # -- checkpoint ----------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {"configs": {k: dict(v) for k, v in self.configs.items()},
                "mtp": mtp_state(self.mtp) if self.mtp is not None else {},
                "last": dict(self.last), "rng": encode_rng(self.rng),
                "history": np.array(self.history, dtype=np.float64).reshape(-1, 5),
                "chosen": " ".join(sorted(self.chosen)),  # sha256 hex digests
                "stats": {f"{k:06d}": {c: float(v) for c, v in r.items()} for k, r in enumerate(self.stats)},
                "histograms": np.array(self.histograms, dtype=np.int64).reshape(-1, len(statistics.GAMMA_EDGES) - 1),
                "reasons": {k: dict(v) for k, v in self.reasons.items()}}

    def load_state(self, s: dict[str, Any]) -> None:
        self.configs = {k: {f: np.array(v[f]) for f in _CONFIG_KEYS} for k, v in s["configs"].items()}
        self.seen = {fingerprint(to_atoms(c)) for c in self.configs.values()}
        self.mtp = mtp_from_state(s["mtp"]) if s["mtp"] else None
        self.last = dict(s["last"])
        self._active = None
        self.rng = decode_rng(s["rng"])
        self.history = [tuple(float(x) for x in row) for row in s["history"]]
        self.chosen = set(str(s.get("chosen", "")).split())
        self.stats = [dict(r) for _, r in sorted(s.get("stats", {}).items())]
        self.histograms = list(np.asarray(s.get("histograms", np.zeros((0, len(statistics.GAMMA_EDGES) - 1)))))
        self.reasons = {k: dict(v) for k, v in s.get("reasons", {}).items()}

    def results(self) -> dict[str, Any]:
        return {"history": np.array(self.history, dtype=np.float64).reshape(-1, 5), "columns": _HISTORY_COLUMNS,
                "n_train": len(self.configs), "last_potential": self.last.get("mtp", ""),
                "statistics": str(self.stats_path) if self.stats else ""}
