"""Trainer cost on teacher-labelled PBA cells (1x1x1, 24-28 atoms):

1. one pass (every configuration with its design rows and the loss gradient over the radial coefficients,
   folded into the normal equations), 1 thread: us per atom with the native evaluator against the same pass
   on motep's cext train mode, in the same run, and the memory held between passes per atom, against what
   the previous trainer held (a motep train-mode engine per configuration);
2. passes of a retraining after the training set grew by ``--grow`` (a fraction), from the previous
   potential (warm) against from a random start (cold), both ending by ``--tol``;
3. under ``mpiexec -n 2``: one pass on rank 0 alone against both ranks, the parallel efficiency, and the
   bytes each pass Allreduces;
4. the paper-scale retraining (3,593 configurations, 1.5 million atoms) projected from 1 and 2;
5. with ``--motep-iter N``: pbahpc.mlip.train (variable projection, ``--iter`` x ``--radial-steps`` L-BFGS
   iterations; and the alternation of ``--iter`` linear solves and ``--radial-steps`` radial steps) against
   motep's own trainer (LLS, L-BFGS-B over all parameters, LLS) from the same random radial start (loss
   reached, wall time).

    OMP_NUM_THREADS=1 .venv/bin/python tools/bench_train.py --level 12 --configs 40
    OMP_NUM_THREADS=1 .venv/bin/mpiexec -n 2 .venv/bin/python tools/bench_train.py --level 12 --configs 40
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
from pbahpc.mlip.train import DEFAULT_WEIGHTS, _from_motep, _Problem, initial, loss, rmse, to_motep, train
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


PAPER_CONFIGS, PAPER_ATOMS = 3593, 1_500_221


def _timed_pass(problem, comm, repeats: int) -> float:
    """Best wall time (s, slowest rank) of a pass with radial derivatives."""
    best = float("inf")
    for _ in range(repeats):
        comm.Barrier()
        t = time.perf_counter()
        problem.evaluate(gradient=True)
        best = min(best, comm.allreduce(time.perf_counter() - t, op=MPI.MAX))
    return best


def pass_cost(data, start, repeats: int) -> dict[str, float]:
    """Section 1 on this rank alone."""
    from motep.calculator import make_mtp_engine

    times = {}
    for engine in ("native", "cext"):
        problem = _Problem(data, to_motep(start, SPECIES), SPECIES, MPI.COMM_SELF, DEFAULT_WEIGHTS, engine)
        times[engine] = _timed_pass(problem, MPI.COMM_SELF, repeats)
    atoms = sum(len(a) for a in data)
    held = sum(sum(getattr(c, k).nbytes for k in ("js", "rs", "itypes", "counts", "forces", "stress")
                   if getattr(c, k) is not None) for c in problem.local)
    engine = make_mtp_engine("cext")(to_motep(start, SPECIES), mode="train")  # what the old trainer kept
    engine.calculate(data[0].copy())
    old = sum(v.nbytes for d in (engine.mbd, engine.rbd) for v in vars(d).values() if isinstance(v, np.ndarray))
    old += engine._neighbors.nbytes + engine._interatomic_vectors.nbytes
    return {"us_atom": 1e6 * times["native"] / atoms, "motep_us_atom": 1e6 * times["cext"] / atoms,
            "bytes_atom": held / atoms, "old_bytes_atom": old / len(data[0])}


def warm_vs_cold(level: int, count: int, grow: float, tol: float, iters: int, radial_steps: int):
    """Section 2: (cold and warm train() results, seconds cold, seconds warm, cells before, the first pass
    at which the warm retraining's loss was within 1 % of the cold one's final loss, or None)."""
    data = cells(count, seed=3)
    before = data[:max(1, round(count / (1 + grow)))]
    template = build_template(level).data(len(SPECIES), min_dist=0.9, max_dist=5.0)
    kw = dict(max_iter=iters * radial_steps, tol=tol)
    previous, _ = train(before, template, SPECIES, MPI.COMM_SELF, **kw)
    t = time.perf_counter()
    _, cold = train(data, template, SPECIES, MPI.COMM_SELF, **kw)
    t_cold = time.perf_counter() - t
    losses = []
    t = time.perf_counter()
    _, warm = train(data, previous, SPECIES, MPI.COMM_SELF, progress=lambda it, passes, value: losses.append(
        (passes, value)), **kw)
    t_warm = time.perf_counter() - t
    reached = next((p for p, value in losses if value <= 1.01 * cold["loss"]), None)
    return cold, warm, t_cold, t_warm, len(before), reached


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--level", type=int, default=12, help="level of the pass cost (sections 1, 3)")
    parser.add_argument("--configs", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warm-level", type=int, default=6)
    parser.add_argument("--warm-configs", type=int, default=22)
    parser.add_argument("--grow", type=float, default=0.1, help="fraction the training set grows by")
    parser.add_argument("--tol", type=float, default=1e-2, help="train(tol=): the loss test")
    parser.add_argument("--iter", type=int, default=40, help="alternations (section 5: x radial steps = varpro iterations)")
    parser.add_argument("--radial-steps", type=int, default=5)
    parser.add_argument("--cold-passes", type=int, default=800,
                        help="passes of a cold retraining at paper scale (issue 19: 50 alternations x ~16)")
    parser.add_argument("--cores", type=int, default=96)
    parser.add_argument("--motep-iter", type=int, default=0, help="section 5: motep L-BFGS-B iterations")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    logging.getLogger("motep").setLevel(logging.ERROR)  # min_dist warnings and per-step logs
    comm = MPI.COMM_WORLD
    root = comm.Get_rank() == 0

    data = cells(args.configs, seed=1)
    template = build_template(args.level).data(len(SPECIES), min_dist=0.9, max_dist=5.0)
    start = initial(template, SPECIES, args.seed)
    start.moment_coeffs = np.random.default_rng(args.seed).uniform(-1, 1, start.moment_coeffs.size)
    atoms = sum(len(a) for a in data)
    if root:
        print(f"level {args.level}: {start.parameter_count} parameters, {args.configs} cells, {atoms} atoms")
        cost = pass_cost(data, start, args.repeats)
        print(f"1. pass: native {cost['us_atom']:.0f} us/atom, motep cext train mode {cost['motep_us_atom']:.0f} "
              f"us/atom (motep/native {cost['motep_us_atom'] / cost['us_atom']:.1f}x); held between passes "
              f"{cost['bytes_atom'] / 1e3:.2f} KB/atom (previous trainer: {cost['old_bytes_atom'] / 1e3:.1f} KB/atom)")
        cold, warm, t_cold, t_warm, n0, reached = warm_vs_cold(args.warm_level, args.warm_configs, args.grow,
                                                               args.tol, args.iter, args.radial_steps)
        ratio = warm["passes"] / cold["passes"]
        print(f"2. level {args.warm_level}, {n0} -> {args.warm_configs} cells, tol {args.tol}: cold {cold['passes']} "
              f"passes ({t_cold:.0f} s, loss {cold['loss']:.4e}), warm {warm['passes']} passes ({t_warm:.0f} s, "
              f"loss {warm['loss']:.4e}): warm/cold passes {ratio:.2f}, loss {warm['loss'] / cold['loss']:.3f}; the warm "
              f"loss was within 1 % of the cold one {'never' if reached is None else f'after {reached} passes'}")
    ratio = comm.bcast(ratio if root else None)
    efficiency = 1.0
    if comm.Get_size() > 1:
        t1 = _timed_pass(_Problem(data, to_motep(start, SPECIES), SPECIES, MPI.COMM_SELF, DEFAULT_WEIGHTS, "native"),
                         MPI.COMM_SELF, args.repeats) if root else 0.0
        comm.Barrier()
        t1 = comm.bcast(t1)
        problem = _Problem(data, to_motep(start, SPECIES), SPECIES, comm, DEFAULT_WEIGHTS, "native")
        tp = _timed_pass(problem, comm, args.repeats)
        efficiency = t1 / (comm.Get_size() * tp)
        if root:
            m, k = problem.n_linear, start.radial_coeffs.size
            print(f"3. one pass: 1 rank {t1:.3f} s, {comm.Get_size()} ranks {tp:.3f} s: efficiency "
                  f"{efficiency:.2f}; Allreduce per pass {8 * (m * m + m + 2 + k)} bytes (m = {m}, radial {k})")
    if root:
        one = PAPER_ATOMS * cost["us_atom"] * 1e-6
        hours = [args.cold_passes * f * one / (args.cores * efficiency) / 3600 for f in (1.0, ratio)]
        before = args.cold_passes * PAPER_ATOMS * cost["motep_us_atom"] * 1e-6 / args.cores / 3600
        print(f"4. paper scale ({PAPER_CONFIGS} configurations, {PAPER_ATOMS} atoms, level {args.level}): one pass "
              f"{one / 3600:.2f} core-h; a retraining of {args.cold_passes} passes on {args.cores} cores (efficiency "
              f"{efficiency:.2f}) {hours[0]:.1f} h cold, {hours[1]:.1f} h warm ({ratio:.2f} of the passes); with "
              f"motep's train mode, cold, ideal scaling: {before:.1f} h; memory {PAPER_ATOMS * cost['bytes_atom'] / 1e9:.1f} "
              f"GB held (previous trainer {PAPER_ATOMS * cost['old_bytes_atom'] / 1e9:.0f} GB)")
    if args.motep_iter and root:
        compare_motep(data, start, args)


def compare_motep(data, start, args) -> None:
    start = initial(build_template(args.level).data(len(SPECIES), min_dist=0.9, max_dist=5.0), SPECIES, args.seed)
    t = time.perf_counter()
    ours, errors = train(data, start, SPECIES, MPI.COMM_SELF, seed=args.seed, max_iter=args.iter * args.radial_steps,
                         tol=1e-12)
    t_ours = time.perf_counter() - t
    loss_ours = loss(ours, SPECIES, data)
    print(f"5. ours : loss {loss_ours:.6e}  {t_ours:7.1f} s  ({errors['passes']} passes)  RMSE {rmse(ours, SPECIES, data)}")
    t = time.perf_counter()
    alt, alt_errors = train(data, start, SPECIES, MPI.COMM_SELF, seed=args.seed, max_iter=args.iter,
                            radial_steps=args.radial_steps, tol=1e-12, method="alternation")
    loss_alt = loss(alt, SPECIES, data)
    print(f"   ours, alternation: loss {loss_alt:.6e}  {time.perf_counter() - t:7.1f} s  ({alt_errors['passes']} "
          f"passes); loss ratio alternation/varpro {loss_alt / loss_ours:.2f}")

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
    print(f"   motep: loss {loss_motep:.6e}  {t_motep:7.1f} s  RMSE {rmse(motep_pot, SPECIES, data)}")
    print(f"   time ratio motep/ours {t_motep / t_ours:.2f}, loss ratio motep/ours {loss_motep / loss_ours:.2f}")


if __name__ == "__main__":
    main()
