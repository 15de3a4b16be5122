"""Eq. 31's metallic-Na reference for a universal-potential campaign: the energy per atom (eV) of bcc Na
relaxed with the same model, the value for ``properties.na_reference_eV``.

    .venv/bin/python tools/na_reference.py 7net-mf-0 [--modal PBE]
"""
from __future__ import annotations

import argparse
from types import SimpleNamespace

from pbahpc.config.universal import SHIPPED, model_problem
from pbahpc.oracle.universal import na_metal_eV_per_atom, universal_calculator


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", choices=list(SHIPPED))
    ap.add_argument("--modal", default=None)
    args = ap.parse_args()
    problem = model_problem(args.model, args.modal)
    if problem:
        ap.exit(2, f"{args.model}: {problem[1]}\n")
    calc = universal_calculator(SimpleNamespace(model=args.model, modal=args.modal, device="cpu"))
    print(f"na_reference_eV: {na_metal_eV_per_atom(calc):.6f}   # bcc Na relaxed with {args.model}")


if __name__ == "__main__":
    main()
