"""Labels per second per oracle rank with each shipped universal model (energy, forces, stress of one
frame, one torch thread as on a rank with one core), on 64-atom (one cell, x = 2) and 512-atom (2x2x2)
Na_xMn[Fe(CN)6] cells, with the built-in teacher on the same frames as the baseline of the ratio.

    .venv/bin/python tools/bench_universal.py                       # every shipped model (minutes)
    .venv/bin/python tools/bench_universal.py --models chgnet-0.3.0 --repeats 5
"""
from __future__ import annotations

import argparse
import time
from types import SimpleNamespace

import numpy as np

from pbahpc.atomistic.structure import build_pba
from pbahpc.config.universal import SHIPPED, model_problem
from pbahpc.oracle.teacher import TeacherCalculator
from pbahpc.oracle.universal import universal_calculator


def frames(repeats: int):
    rng = np.random.default_rng(1)
    out = {}
    for n in (1, 2):
        cells = [build_pba(n, 10.3, x_na=2.0, rng=rng) for _ in range(repeats)]
        for i, a in enumerate(cells):
            a.rattle(0.03, seed=i)
        out[len(cells[0])] = cells
    return out


def median_s(calc, cells) -> float:
    """Median wall time (s) of one label; a first, untimed call warms the model up."""
    times = []
    for a in [cells[0], *cells]:
        b = a.copy()
        b.calc = calc
        t = time.perf_counter()
        b.get_potential_energy(), b.get_forces(), b.get_stress()
        times.append(time.perf_counter() - t)
    return float(np.median(times[1:]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=list(SHIPPED), choices=list(SHIPPED))
    ap.add_argument("--repeats", type=int, default=3, help="timed labels per cell size (median)")
    args = ap.parse_args()
    cells = frames(args.repeats)
    teacher = {n: median_s(TeacherCalculator(), c) for n, c in cells.items()}
    print(f"{'model':<18} {'load s':>7} " + " ".join(f"{f'{n} atoms labels/s':>18} {'x teacher':>10}" for n in cells))
    print(f"{'teacher':<18} {'':>7} " + " ".join(f"{1 / teacher[n]:>18.3g} {1.0:>10.3g}" for n in cells))
    for model in args.models:
        if model_problem(model, None):
            print(f"{model:<18} not usable here: {model_problem(model, None)[1]}")
            continue
        t = time.perf_counter()
        calc = universal_calculator(SimpleNamespace(model=model, modal=None, device="cpu"), threads=1)
        load = time.perf_counter() - t
        rate = {n: 1 / median_s(calc, c) for n, c in cells.items()}
        print(f"{model:<18} {load:>7.1f} " + " ".join(f"{rate[n]:>18.3g} {rate[n] * teacher[n]:>10.3g}"
                                                       for n in cells), flush=True)


if __name__ == "__main__":
    main()
