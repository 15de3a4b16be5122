"""The MTP trainer as the campaign's trainer engine (``trainer.engine: mtp``).

Each step takes the oracle's labels from the ``labels`` channel (``{oracle group: {frame name:
{numbers, positions_A, cell_A, energy_eV, forces_eV_A, stress_eV_A3 (ASE Voigt, eV/A^3), ...}}}``, see
``pbahpc.oracle.ase_oracle``), adds the configurations not seen before (``selection.fingerprint``) to the
training set, and, if any were new, retrains the MTP on the whole set (``train.train``, MPI-parallel over
configurations on the trainer group's communicator; the first fit starts from random radial coefficients
drawn from the engine's seeded Generator, later fits continue from the previous potential). The group
root then writes ``<run_dir>/potentials/potential-<iteration>.mtp`` and ``active-<iteration>.als`` (the
MaxVol active set over the training set). Outgoing on ``potential``: ``{"mtp": path, "active_set": path,
"iteration", "n_train", "rmse_energy_eV_atom", "rmse_forces_eV_A", "rmse_stress_GPa"}`` (the RMSEs on the
training set, as ``train.rmse`` computes them); without new labels the last payload is sent again (and
``{}`` before the first fit).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from ase.data import atomic_numbers

from ..checkpoint import decode_rng, encode_rng
from ..driver.component import Inbox, StepContext, register
from .mtp_file import MTPData
from .selection import fingerprint

_CONFIG_KEYS = ("numbers", "positions_A", "cell_A", "energy_eV", "forces_eV_A", "stress_eV_A3")
_HISTORY_COLUMNS = "iteration n_train rmse_energy_eV_atom rmse_forces_eV_A rmse_stress_GPa"


def to_atoms(config: dict[str, Any]) -> Atoms:
    """A labelled configuration (one entry of the training set) as ASE Atoms with its labels attached."""
    atoms = Atoms(numbers=config["numbers"], positions=config["positions_A"], cell=config["cell_A"], pbc=True)
    atoms.calc = SinglePointCalculator(atoms, energy=float(config["energy_eV"]),
                                       forces=np.array(config["forces_eV_A"], dtype=float),
                                       stress=np.array(config["stress_eV_A3"], dtype=float))
    return atoms


def mtp_state(data: MTPData) -> dict[str, Any]:
    return {k: getattr(data, k) for k in data.__dataclass_fields__}


def mtp_from_state(s: dict[str, Any]) -> MTPData:
    kinds = {"species_count": int, "radial_basis_size": int, "radial_funcs_count": int, "min_dist": float,
             "max_dist": float, "scaling": float, "version": str, "potential_name": str, "potential_tag": str,
             "radial_basis_type": str}
    kw = {k: (kinds[k](v) if k in kinds else (None if v is None else np.array(v))) for k, v in s.items()}
    return MTPData(**kw)


class MTPTrainer:
    def __init__(self, cfg, group, comm, seed):
        tc = cfg.trainer
        self.species = tuple(tc.species)
        self.level, self.max_iter, self.ridge = tc.level, tc.train_iterations, tc.ridge
        self.out_dir = Path(cfg.campaign.run_dir) / "potentials"
        seq = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
        self.rng = np.random.default_rng(seq)
        self.configs: dict[str, dict[str, Any]] = {}  # "<8-digit index>" -> arrays (training order)
        self.seen: set[str] = set()  # fingerprints of self.configs
        self.mtp: MTPData | None = None
        self.last: dict[str, Any] = {}  # the last "potential" payload
        self.history: list[tuple[float, ...]] = []  # see _HISTORY_COLUMNS

    # -- training set --------------------------------------------------------------------------
    def _add(self, lab: dict[str, Any]) -> bool:
        config = {k: np.array(lab[k], dtype=np.int64 if k == "numbers" else np.float64) for k in _CONFIG_KEYS}
        config["cell_A"] = config["cell_A"].reshape(3, 3)
        atoms = to_atoms(config)
        fp = fingerprint(atoms)
        if fp in self.seen:
            return False
        unknown = sorted({int(z) for z in config["numbers"]} - {atomic_numbers[s] for s in self.species})
        if unknown:
            raise ValueError(f"labelled frame has elements {unknown} not in trainer.species {list(self.species)}")
        self.seen.add(fp)
        self.configs[f"{len(self.configs):08d}"] = config
        return True

    def atoms(self) -> list[Atoms]:
        """The training set, in training order, as labelled Atoms."""
        return [to_atoms(c) for _, c in sorted(self.configs.items())]

    def species_indices(self, atoms: Atoms) -> np.ndarray:
        index = {atomic_numbers[s]: i for i, s in enumerate(self.species)}
        return np.array([index[int(z)] for z in atoms.numbers], dtype=np.int64)

    # -- Component -----------------------------------------------------------------------------
    def step(self, ctx: StepContext, inbox: Inbox) -> dict[str, Any]:
        new = 0
        for _, batch in sorted(inbox.get("labels", {}).items()):
            for _, lab in sorted((batch or {}).items()):
                new += self._add(lab)
        if not new:
            ctx.log.info("no new labels (training set %d): potential unchanged", len(self.configs))
            return {"potential": dict(self.last)} if self.last else {}
        from .active_set import ActiveSet, write_active_set
        from .mtp_file import write_mtp
        from .train import train

        configs = self.atoms()
        start = self.mtp if self.mtp is not None else self.level
        seed = int(self.rng.integers(2**31))  # drawn every fit, used by the first (random radial start)
        self.mtp, errors = train(configs, start, self.species, ctx.comm, seed=seed, max_iter=self.max_iter,
                                 ridge=self.ridge)
        row = (float(ctx.iteration), float(len(configs)), errors["energy"], errors["forces"], errors["stress"])
        self.history.append(row)
        mtp_path = self.out_dir / f"potential-{ctx.iteration:06d}.mtp"
        als_path = self.out_dir / f"active-{ctx.iteration:06d}.als"
        if ctx.comm.Get_rank() == 0:
            active = ActiveSet.select(self.mtp, [(a, self.species_indices(a)) for a in configs])
            self.out_dir.mkdir(parents=True, exist_ok=True)
            write_mtp(mtp_path, self.mtp)
            write_active_set(als_path, active)
        ctx.log.info("MTP level %d on %d configurations (%d new): RMSE %.3g eV/atom, %.3g eV/A",
                     self.level, len(configs), new, errors["energy"], errors["forces"])
        self.last = {"mtp": str(mtp_path), "active_set": str(als_path), "iteration": int(ctx.iteration),
                     "n_train": len(configs), "rmse_energy_eV_atom": float(errors["energy"]),
                     "rmse_forces_eV_A": float(errors["forces"]), "rmse_stress_GPa": float(errors["stress"])}
        return {"potential": dict(self.last)}

    def state(self) -> dict[str, Any]:
        return {"configs": {k: dict(v) for k, v in self.configs.items()},
                "mtp": mtp_state(self.mtp) if self.mtp is not None else {},
                "last": dict(self.last), "rng": encode_rng(self.rng),
                "history": np.array(self.history, dtype=np.float64).reshape(-1, 5)}

    def load_state(self, s: dict[str, Any]) -> None:
        self.configs = {k: {f: np.array(v[f]) for f in _CONFIG_KEYS} for k, v in s["configs"].items()}
        self.seen = {fingerprint(to_atoms(c)) for c in self.configs.values()}
        self.mtp = mtp_from_state(s["mtp"]) if s["mtp"] else None
        self.last = dict(s["last"])
        self.rng = decode_rng(s["rng"])
        self.history = [tuple(float(x) for x in row) for row in s["history"]]

    def results(self) -> dict[str, Any]:
        return {"history": np.array(self.history, dtype=np.float64).reshape(-1, 5), "columns": _HISTORY_COLUMNS,
                "n_train": len(self.configs), "last_potential": self.last.get("mtp", "")}


register("trainer", "mtp")(MTPTrainer)
