#!/usr/bin/env python
"""Wall time of each properties workflow on the demo system, and Eq. 17 vs MBAR accuracy, in one run.

Runs the properties engine's workflows one by one on one rank with an MTP of a finished demo campaign
(``--run-dir``, default runs/demo: its newest potentials/potential-*.mtp), with the demo's properties
settings: free-energy windows at one temperature, diffusion MD at one (x, T), the two relaxed
single-phase references and two-phase supercells, then the analysis (MBAR + bootstrap, fits, report).
Prints seconds per workflow and each one's ratio to the free-energy workflow (the baseline), then runs
tools/bench_free_energy.py (Eq. 17 vs MBAR on the exact mean-field lattice gas) with small sizes.

    .venv/bin/python tools/bench_properties.py [--run-dir runs/demo]
"""
from __future__ import annotations

import argparse
import logging
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    from mpi4py import MPI

    from pbahpc.config import load
    from pbahpc.driver.component import StepContext
    from pbahpc.driver.layout import Group
    from pbahpc.properties.engine import PropertiesEngine
    from pbahpc.properties.report import analyse_and_write

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run-dir", type=Path, default=ROOT / "runs" / "demo")
    args = ap.parse_args()
    pots = sorted((args.run_dir / "potentials").glob("potential-*.mtp"))
    if not pots:
        sys.exit(f"bench_properties: no potentials in {args.run_dir / 'potentials'}; run the demo first "
                 "(jobscripts/laptop.sh inputs/demo.yaml)")
    potential = {"mtp": str(pots[-1]), "active_set": str(pots[-1]).replace("potential-", "active-").replace(".mtp", ".als"),
                 "final": True}
    demo = yaml.safe_load((ROOT / "inputs" / "demo.yaml").read_text())
    props = demo["properties"]
    props["diffusion"].update(temperatures_K=props["diffusion"]["temperatures_K"][:1],
                              x_inserted=props["diffusion"]["x_inserted"][:1])
    props["p2d_template"] = str(ROOT / "inputs" / "p2d-demo.yaml")
    demo.pop("continuum")
    demo["layout"] = {"replicas": {"ranks_each": 1}, "properties": {"ranks": 1, "shared": True}}
    with tempfile.TemporaryDirectory() as tmp:
        demo["campaign"]["run_dir"] = str(Path(tmp) / "run")
        path = Path(tmp) / "demo.yaml"
        path.write_text(yaml.safe_dump(demo))
        cfg = load(path)
        group = Group("properties", "properties", 0, (0,))
        engine = PropertiesEngine(cfg, group, MPI.COMM_SELF, np.random.SeedSequence(1))
        engine.potential = potential
        log = logging.getLogger("bench")
        ctx = StepContext(MPI.COMM_SELF, group, 0, log, lambda: False, lambda cb: cb)
        times: dict[str, float] = {}
        for name, kind, p in engine.runs():
            t = time.perf_counter()
            engine.done[name] = engine._run(ctx, kind, p)
            key = "interface" if kind in ("reference", "two_phase") else kind
            times[key] = times.get(key, 0.0) + time.perf_counter() - t
        t = time.perf_counter()
        analyse_and_write(cfg, engine.done, Path(tmp) / "out", np.random.default_rng(0), log)
        times["analysis"] = time.perf_counter() - t
    print(f"properties workflows with {pots[-1].name} on 1 rank (demo settings, one (x, T) for diffusion)")
    print(f"{'workflow':<14} {'seconds':>9} {'/ free_energy':>14}")
    for key, s in times.items():
        print(f"{key:<14} {s:9.2f} {s / times['free_energy']:14.2f}")
    print()
    sys.stdout.flush()
    subprocess.run([sys.executable, str(ROOT / "tools" / "bench_free_energy.py"), "--sizes", "250", "1000",
                    "--repeats", "3"], check=True)


if __name__ == "__main__":
    main()
