"""Trainer speed: pbahpc.mlip.train (exact linear solve + L-BFGS over radial coefficients) against motep's
own trainer (LLS, then L-BFGS-B over all parameters, then LLS) on the same teacher-labelled PBA cells,
from the same random radial start. Prints the loss reached (same definition for both), wall time, and
the time ratio.

    .venv/bin/python tools/bench_train.py --level 10 --configs 20 --iter 5 --motep-iter 100
"""
from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time

import numpy as np

from pbahpc.atomistic.structure import build_pba
from pbahpc.mlip.templates import build_template
from pbahpc.mlip.dataset import labelled_copy
from pbahpc.mlip.train import _from_motep, initial, loss, rmse, to_motep, train
from pbahpc.oracle.teacher import TeacherCalculator

from mpi4py import MPI  # noqa: E402

SPECIES = ("Na", "Mn", "Fe", "C", "N")


def cells(count: int, seed: int):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        atoms = build_pba(1, n_na=int(rng.integers(0, 5)), rng=rng)
        atoms.rattle(0.05, seed=int(rng.integers(1 << 30)))
        atoms.calc = TeacherCalculator()
        out.append(labelled_copy(atoms))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--level", type=int, default=10)
    parser.add_argument("--configs", type=int, default=20)
    parser.add_argument("--iter", type=int, default=5, help="our alternations")
    parser.add_argument("--radial-steps", type=int, default=10)
    parser.add_argument("--motep-iter", type=int, default=100, help="motep L-BFGS-B iterations")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    logging.getLogger("motep").setLevel(logging.ERROR)  # min_dist warnings and per-step logs

    data = cells(args.configs, seed=1)
    template = build_template(args.level).data(len(SPECIES), min_dist=0.9, max_dist=5.0)
    start = initial(template, SPECIES, args.seed)
    print(f"level {args.level}: {start.parameter_count} parameters, {args.configs} cells of "
          f"{sum(len(a) for a in data) / len(data):.0f} atoms")

    t = time.perf_counter()
    ours, errors = train(data, start, SPECIES, MPI.COMM_SELF, seed=args.seed, max_iter=args.iter,
                         radial_steps=args.radial_steps)
    t_ours = time.perf_counter() - t
    loss_ours = loss(ours, SPECIES, data)
    print(f"ours : loss {loss_ours:.6e}  {t_ours:7.1f} s  ({errors['passes']} passes)  RMSE {rmse(ours, SPECIES, data)}")

    from motep.train.trainer import Trainer

    theirs = to_motep(start, SPECIES)
    theirs.moment_coeffs = theirs.species_coeffs = None  # initialised (and then solved) by motep
    steps = [{"method": "LLS", "optimized": ["species_coeffs", "moment_coeffs"]},
             {"method": "minimize", "optimized": ["species_coeffs", "moment_coeffs", "radial_coeffs"],
              "kwargs": {"method": "L-BFGS-B", "jac": True, "options": {"maxiter": args.motep_iter}}},
             {"method": "LLS", "optimized": ["species_coeffs", "moment_coeffs"]}]
    with tempfile.TemporaryDirectory() as tmp:  # motep writes intermediate_*.mtp into the cwd
        cwd = os.getcwd()
        os.chdir(tmp)
        try:
            from motep.parallel import DummyMPIComm

            t = time.perf_counter()
            Trainer(theirs, seed=args.seed, steps=steps, comm=DummyMPIComm()).train(data)
            t_motep = time.perf_counter() - t
        finally:
            os.chdir(cwd)
    motep_pot = _from_motep(theirs, start)
    loss_motep = loss(motep_pot, SPECIES, data)
    print(f"motep: loss {loss_motep:.6e}  {t_motep:7.1f} s  RMSE {rmse(motep_pot, SPECIES, data)}")
    print(f"time ratio motep/ours {t_motep / t_ours:.2f}, loss ratio motep/ours {loss_motep / loss_ours:.2f}")


if __name__ == "__main__":
    main()
