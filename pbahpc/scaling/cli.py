"""``pbahpc scaling run|merge`` (parsed in pbahpc/cli.py): one-line errors, exit 2 on bad input."""
from __future__ import annotations

import sys

from ..config import ConfigError
from ..driver.campaign import EXIT_FAILED, EXIT_OK, EXIT_USAGE


def _coefficients(args):
    """(coefficients or None, error line or None) of --model."""
    if getattr(args, "model", None) is None:
        return None, None
    from .compare import load_coefficients

    try:
        return load_coefficients(args.model), None
    except ValueError as exc:
        return None, f"pbahpc scaling: --model: {exc}"


def _model_report(args, coeffs, table: dict, dirs, out) -> int:
    """Print the model comparison after the tables, store it in scaling.h5 and scaling.txt."""
    from .compare import SKIPPED, compare, format_comparison, params_from_dirs, store

    try:
        rows = compare(table["rows"], coeffs, params=params_from_dirs(dirs))
    except (KeyError, ValueError) as exc:
        print(f"pbahpc scaling: --model: {exc}", file=sys.stderr)
        return EXIT_USAGE
    text = format_comparison(rows, [k for k in SKIPPED if any(r["kernel"] == k for r in table["rows"])])
    print("\n" + text, end="")
    if rows:
        store(out / "scaling.h5", rows, args.model)
    with open(out / "scaling.txt", "a") as fh:
        fh.write("\n" + text)
    return EXIT_OK


def main(args) -> int:
    from .tables import format_table, merge

    coeffs, error = _coefficients(args)
    if error:
        print(error, file=sys.stderr)
        return EXIT_USAGE
    if args.scaling_command == "merge":
        for d in args.dirs:
            if not d.is_dir():
                print(f"pbahpc scaling: merge: {d}: not a directory", file=sys.stderr)
                return EXIT_USAGE
        try:
            table = merge(args.dirs, args.out, plots=not args.no_plots)
        except (FileNotFoundError, KeyError, ValueError) as exc:
            print(f"pbahpc scaling: merge: {exc}", file=sys.stderr)
            return EXIT_USAGE
        print(format_table(table), end="")
        if coeffs is not None and _model_report(args, coeffs, table, args.dirs, args.out):
            return EXIT_USAGE
        print(f"[scaling] merged {len(args.dirs)} director{'y' if len(args.dirs) == 1 else 'ies'}: "
              f"{len(table['rows'])} row(s) -> {args.out / 'scaling.h5'}", file=sys.stderr)
        return EXIT_OK

    from .sweep import load_spec, run_sweep, select

    try:
        spec = load_spec(args.spec)
    except ConfigError as exc:
        print(f"pbahpc scaling: {exc}", file=sys.stderr)
        return EXIT_USAGE
    out = args.out or spec.output
    if out is None:
        print(f"pbahpc scaling: {args.spec}: output: missing (or give --out DIR)", file=sys.stderr)
        return EXIT_USAGE
    if args.ranks and any(r < 1 for r in args.ranks):
        print(f"pbahpc scaling: --ranks: must be >= 1, got {args.ranks}", file=sys.stderr)
        return EXIT_USAGE
    if args.kernels and (bad := [k for k in args.kernels if k not in spec.kernels]):
        print(f"pbahpc scaling: --kernels: {', '.join(bad)} not in the spec (it has {', '.join(spec.kernels)})",
              file=sys.stderr)
        return EXIT_USAGE
    if not select(spec.points, args.ranks, args.kernels):
        print(f"pbahpc scaling: --ranks: no point of the spec has {args.ranks} rank(s)", file=sys.stderr)
        return EXIT_USAGE
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        print(f"pbahpc scaling: --out: cannot create directory {out} ({exc.strerror})", file=sys.stderr)
        return EXIT_USAGE
    table, failed = run_sweep(spec, out, args.ranks, args.kernels, plots=not args.no_plots,
                              echo=lambda m: print(m, file=sys.stderr, flush=True))
    print(format_table(table), end="")
    if coeffs is not None and _model_report(args, coeffs, table, [out], out):
        return EXIT_USAGE
    print(f"[scaling] {len(table['rows'])} row(s) -> {out / 'scaling.h5'}, {out / 'scaling.txt'}"
          + ("" if args.no_plots else f", {out / 'plots'}") + (f"; {failed} point(s) FAILED" if failed else ""),
          file=sys.stderr)
    return EXIT_FAILED if failed else EXIT_OK
