"""The calibrated performance model (``pbahpc.scaling.model``) against the measured scaling tables.

``compare(source, coefficients)`` returns one row per table row of a kernel the model covers::

    {kernel, mode, split, size, ranks, measured_s, predicted_s, rel_error, detail}

with ``rel_error = predicted_s / measured_s - 1`` (the sign convention of ``model.validate``: > 0 the
model is too slow, < 0 too fast; a measured time 20 % above the prediction gives -1/6).

What is compared: ``measured_s`` is the table's ``time_s``, the kernel's own timed region in
``pbahpc.scaling.runner`` (slowest rank, fastest repeat): NOT the whole launch (``launch_s``: mpiexec,
imports, frame generation and labelling of the training set, PETSc set-up), since the model leaves
start-up out. Per kernel:

* label: the runner labels frames round-robin (rank r gets frames r, r + R, ...); predicted = the
  slowest rank's sum of ``t_label_teacher(atoms_i)`` over its frames, the atom counts those of the
  runner's own frames (regenerated: ``runner._frames`` with the point's cells and seed).
* train: predicted = passes x ``t_train_pass(frames, mean atoms, level, ranks)``, passes = the
  measured number of passes (metric ``passes``; the upper bound 1 + iterations (radial_steps + 1) if
  absent). The measured time also holds the fit's set-up (initial potential, first evaluation), which
  the per-pass model does not.
* p2d: predicted = ``t_p2d(unknowns, TS steps, ranks)`` with the measured unknowns and TS steps.
* gcmc: NOT compared: the kernel runs the teacher PAIR potential, and the model's MD/trial terms are
  those of the MTP (``pair_style mtp``); nothing of the teacher's MD is calibrated.
* campaign: NOT compared: ``model.predict`` needs the frames selected and labelled per iteration, the
  pre-training set, the candidates and the level/atoms of the replicas; the point stores none of them
  (only the stage seconds of one short iteration of a reduced demo.yaml), so mapping it onto a
  ``CampaignSpec`` would be guesswork.

Kernel options (level, cells, seed, iterations, radial_steps) are not in the point files: they are read
from the point's ``work/<id>/command.txt`` (the ``--params`` JSON the sweep launched it with) when the
source is a result directory, else taken from ``options`` or the sweep's defaults (``sweep.OPTIONS``);
``detail`` says which.
"""
from __future__ import annotations

import json
import math
import shlex
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from . import model as M
from .tables import _fmt

COVERED = ("label", "train", "p2d")
SKIPPED = {"gcmc": "teacher pair potential, the model's MD/trial terms are MTP",
           "campaign": "selected/labelled frames per iteration not recorded in the point"}
COLUMNS = ("kernel", "mode", "split", "size", "ranks", "measured_s", "predicted_s", "rel_error", "detail")


# ----------------------------------------------------------------------------- inputs
def load_coefficients(path: str | Path) -> M.Coefficients:
    """Coefficients of ``tools/scaling_model.py --calibrate``; ValueError (one line) if unusable."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except OSError as exc:
        raise ValueError(f"{path}: cannot read ({exc.strerror})") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON (line {exc.lineno})") from None
    coeffs = data.get("coefficients", data) if isinstance(data, dict) else None
    if not isinstance(coeffs, dict):
        raise ValueError(f"{path}: not a coefficients file (expected a mapping with 'coefficients')")
    names = {f for f in M.Coefficients.__dataclass_fields__}
    bad = [k for k, v in coeffs.items() if k in names and k not in ("machine", "note")
           and (isinstance(v, bool) or not isinstance(v, (int, float)))]
    if bad:
        raise ValueError(f"{path}: coefficients.{bad[0]}: must be a number, got {coeffs[bad[0]]!r}")
    return M.Coefficients(**{k: v for k, v in coeffs.items() if k in names})


def _params_of(command_txt: Path) -> dict | None:
    try:
        argv = shlex.split(command_txt.read_text())
        return json.loads(argv[argv.index("--params") + 1])
    except (OSError, ValueError, IndexError):
        return None


def params_from_dirs(directories: Sequence[Path]) -> dict[tuple, dict]:
    """(kernel, mode, split, size, ranks) -> the runner's --params of that point, from every
    ``work/<id>/command.txt`` next to a ``points/`` folder in ``directories`` (later ones win)."""
    from .tables import KEY, point_id

    out: dict[tuple, dict] = {}
    for d in directories:
        for pfile in sorted(Path(d).rglob("points/*.json")):
            try:
                p = json.loads(pfile.read_text())
                params = _params_of(pfile.parent.parent / "work" / point_id(p) / "command.txt")
            except (OSError, ValueError, KeyError):
                continue
            if params is not None:
                out[tuple(p[k] for k in KEY)] = params
    return out


@lru_cache(maxsize=256)
def frame_atoms(count: int, cells: int, seed: int) -> tuple[int, ...]:
    """Atom counts of the runner's ``count`` frames (``runner._frames``: random Na contents)."""
    from .runner import _frames

    return tuple(len(a) for a in _frames(count, cells, seed, label=False))


def _metric(row: dict, name: str) -> float:
    v = row.get(f"m_{name}", row.get("metrics", {}).get(name, row.get(name, float("nan"))))
    try:
        return float(v)
    except (TypeError, ValueError):
        return float("nan")


def _rows(source) -> tuple[list[dict], dict[tuple, dict]]:
    """Table rows and per-point params of a result directory, a list of directories, points or rows."""
    from .tables import build_table, load_points

    if isinstance(source, (str, Path)):
        source = [Path(source)]
    source = list(source)
    if source and all(isinstance(s, (str, Path)) for s in source):
        dirs = [Path(s) for s in source]
        points: list[dict] = []
        for d in dirs:
            points.extend(load_points(d))
        return build_table(points)["rows"], params_from_dirs(dirs)
    if source and all("metrics" in s or "repeat" in s for s in source):  # raw points
        return build_table(source)["rows"], {}
    return source, {}


# ----------------------------------------------------------------------------- prediction
def predict_row(c: M.Coefficients, row: dict, params: dict) -> tuple[float, str]:
    """(predicted seconds, detail) of one table row of a covered kernel (see the module doc)."""
    kernel, mode, size, ranks = row["kernel"], row["mode"], int(row["size"]), int(row["ranks"])
    total = size * (ranks if mode == "weak" else 1)
    if kernel == "label":
        cells, seed = int(params["cells"]), int(params["seed"])
        atoms = frame_atoms(total, cells, seed)
        per_rank = [sum(M.t_label_teacher(c, a) for a in atoms[r::ranks]) for r in range(ranks)]
        return max(per_rank), f"{total} frames x {np.mean(atoms):.0f} at"
    if kernel == "train":
        cells, seed, level = int(params["cells"]), int(params["seed"]), int(params["level"])
        atoms = frame_atoms(total, cells, seed)
        passes = _metric(row, "passes")
        how = "measured"
        if not passes > 0:
            passes, how = 1 + int(params["iterations"]) * (int(params["radial_steps"]) + 1), "bound"
        t = passes * M.t_train_pass(c, total, float(np.mean(atoms)), level, ranks)
        return t, f"L{level} {total} cfg x {np.mean(atoms):.0f} at, {passes:.0f} passes ({how})"
    if kernel == "p2d":
        unknowns, steps = _metric(row, "unknowns"), _metric(row, "ts_steps")
        if not (unknowns > 0 and steps > 0):
            raise ValueError(f"p2d row size {size} ranks {ranks}: no unknowns/ts_steps metric")
        return M.t_p2d(c, unknowns, steps, ranks), f"{unknowns:.0f} unk x {steps:.0f} TS steps"
    raise ValueError(f"the model does not cover kernel {kernel!r}")


def compare(source, coefficients: M.Coefficients | str | Path,
            options: dict[str, dict] | None = None, params: dict[tuple, dict] | None = None) -> list[dict]:
    """Measured vs predicted for the rows of the kernels the model covers (label, train, p2d).

    ``source``: a result directory (or a list of them; options from their command.txt files), a list of
    points, or table rows (``build_table(...)["rows"]``). ``options``: kernel -> options overriding the
    sweep's defaults where a point's own are unknown; ``params``: (kernel, mode, split, size, ranks) ->
    the point's own options (``params_from_dirs``), added to those found in ``source``.
    rel_error = predicted / measured - 1.
    """
    from .sweep import OPTIONS
    from .tables import KEY

    c = coefficients if isinstance(coefficients, M.Coefficients) else load_coefficients(coefficients)
    rows, found = _rows(source)
    found = {**found, **(params or {})}
    out = []
    for r in rows:
        if r["kernel"] not in COVERED:
            continue
        own = found.get(tuple(r[k] for k in KEY))
        params = {**OPTIONS[r["kernel"]], **(options or {}).get(r["kernel"], {}), **(own or {})}
        pred, detail = predict_row(c, r, params)
        meas = float(r["time_s"])
        if own is None:
            detail += "; options: defaults"
        out.append({"kernel": r["kernel"], "mode": r["mode"], "split": str(r.get("split", "-")),
                    "size": int(r["size"]), "ranks": int(r["ranks"]), "measured_s": meas, "predicted_s": pred,
                    "rel_error": pred / meas - 1.0 if meas > 0 else float("nan"), "detail": detail})
    return out


# ----------------------------------------------------------------------------- output
def format_comparison(rows: Iterable[dict], skipped: Iterable[str] = ()) -> str:
    """Text table: kernel, mode, size, ranks, measured, predicted, rel. error (%), detail."""
    rows = list(rows)
    head = ["kernel", "mode", "size", "ranks", "measured_s", "predicted_s", "error", "detail"]
    body = [[r["kernel"], r["mode"], str(r["size"]), str(r["ranks"]), _fmt(r["measured_s"]),
             _fmt(r["predicted_s"]), f"{100 * r['rel_error']:+.0f}%" if math.isfinite(r["rel_error"]) else "-",
             r["detail"]] for r in rows]
    width = [max(len(h), *(len(b[i]) for b in body)) if body else len(h) for i, h in enumerate(head)]
    out = ["== model (error = predicted / measured - 1; kernel time, start-up excluded) =="]
    out.append("  ".join(h.rjust(w) if i < 7 else h for i, (h, w) in enumerate(zip(head, width))).rstrip())
    out.extend("  ".join(c.rjust(w) if i < 7 else c for i, (c, w) in enumerate(zip(b, width))).rstrip()
               for b in body)
    for k in skipped:
        if k in SKIPPED:
            out.append(f"not compared: {k} ({SKIPPED[k]})")
    if rows:
        err = np.abs([r["rel_error"] for r in rows if math.isfinite(r["rel_error"])])
        if err.size:
            out.append(f"|error|: median {100 * np.median(err):.0f}%, max {100 * err.max():.0f}% over {err.size} row(s)")
    return "\n".join(out) + "\n"


def comparison_columns(rows: Sequence[dict]) -> dict:
    """Columns for scaling.h5 /payload/model (strings as lists, numbers as arrays)."""
    cols: dict = {}
    for name in COLUMNS:
        vals = [r[name] for r in rows]
        if name in ("kernel", "mode", "split", "detail"):
            cols[name] = [str(v) for v in vals]
        elif name in ("size", "ranks"):
            cols[name] = np.asarray(vals, dtype=np.int64)
        else:
            cols[name] = np.asarray(vals, dtype=np.float64)
    return cols


def store(h5_path: Path, rows: Sequence[dict], coefficients_path: str | Path) -> None:
    """Add the comparison to an existing scaling.h5 as ``/payload/model/<column>`` (rewritten atomically;
    meta gains ``model_coefficients``)."""
    from ..checkpoint import read_checkpoint_file, write_tree

    payload, header = read_checkpoint_file(Path(h5_path))
    payload["model"] = comparison_columns(rows)
    write_tree(Path(h5_path), payload, meta={**header.meta, "model_coefficients": str(coefficients_path)})


def read_comparison(h5_path: Path) -> list[dict]:
    """The rows stored by ``store`` (empty if none)."""
    from ..checkpoint import read_checkpoint_file

    payload, _ = read_checkpoint_file(Path(h5_path))
    cols = payload.get("model")
    if not cols:
        return []
    n = len(cols["kernel"])
    return [{k: (v[i].item() if hasattr(v[i], "item") else v[i]) for k, v in cols.items()} for i in range(n)]
