"""Scaling tables: speed-up and efficiency arithmetic, the HDF5 table, text, plots, and merging.

A *point* is one run: ``{kernel, mode, split, ranks, size, repeat, time_s, metrics: {..},
breakdown: {..}}`` (``size``: strong = the whole problem, weak = per rank). Points with the same
(kernel, mode, split, size, ranks) are one *row* (time = the fastest repeat, mean and spread kept);
rows with the same (kernel, mode, split, size) are one *series*, whose baseline is its row with the
fewest ranks N1 (time T1):

* strong: speed-up S = T1 / TN, parallel efficiency E = T1 N1 / (TN N)
* weak:   efficiency E = T1 / TN, scaled speed-up S = E N / N1

Files: ``scaling.h5`` (``pbahpc.checkpoint.write_tree`` format; ``/payload/table/<column>`` one array
or list per column, ``/payload/points/<id>/...`` the raw points), ``scaling.txt`` and ``plots/*.png``.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

KEY = ("kernel", "mode", "split", "size", "ranks")
TEXT_METRICS = {  # kernel -> the rate columns the text table shows
    "gcmc": ("time_per_cycle_s", "atom_steps_per_s", "replica_steps_per_hour"),
    "train": ("retrain_latency_s", "frames_per_s"),
    "label": ("labels_per_hour",),
    "p2d": ("unknowns", "ts_steps_per_s"),
    "campaign": ("retrain_latency_s", "idle_share"),
}


# ----------------------------------------------------------------------------- arithmetic
def speedup(t1: float, tn: float) -> float:
    """S = T1 / TN."""
    return t1 / tn


def strong_efficiency(t1: float, n1: int, tn: float, n: int) -> float:
    """Strong scaling parallel efficiency T1 N1 / (TN N) (1 = ideal)."""
    return t1 * n1 / (tn * n)


def weak_efficiency(t1: float, tn: float) -> float:
    """Weak scaling efficiency T1 / TN (problem grown with the ranks; 1 = ideal)."""
    return t1 / tn


def scaling_columns(mode: str, ranks: Sequence[int], times: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """Speed-up and efficiency of one series against its fewest-rank entry (see module doc)."""
    ranks = np.asarray(ranks, dtype=float)
    times = np.asarray(times, dtype=float)
    if len(ranks) == 0:
        return np.zeros(0), np.zeros(0)
    b = int(np.argmin(ranks))
    n1, t1 = ranks[b], times[b]
    if mode == "strong":
        s = np.array([speedup(t1, t) for t in times])
        e = np.array([strong_efficiency(t1, n1, t, n) for t, n in zip(times, ranks)])
    elif mode == "weak":
        e = np.array([weak_efficiency(t1, t) for t in times])
        s = e * ranks / n1
    else:
        raise ValueError(f"mode must be strong or weak, got {mode!r}")
    return s, e


# ----------------------------------------------------------------------------- points -> table
def point_id(p: dict) -> str:
    split = "" if p["split"] in ("-", "") else f"-{p['split']}"
    return f"{p['kernel']}-{p['mode']}{split}-s{p['size']}-r{p['ranks']}-k{p['repeat']}"


def build_table(points: Iterable[dict]) -> dict:
    """Rows (dict of columns) from points that succeeded, sorted by series then ranks."""
    groups: dict[tuple, list[dict]] = {}
    for p in points:
        if p.get("error") or not isinstance(p.get("time_s"), (int, float)) or not p["time_s"] > 0:
            continue
        groups.setdefault(tuple(p[k] for k in KEY), []).append(p)
    keys = sorted(groups, key=lambda k: (k[0], k[1], str(k[2]), k[3], k[4]))
    rows: list[dict] = []
    for key in keys:
        ps = groups[key]
        times = np.array([p["time_s"] for p in ps])
        best = ps[int(np.argmin(times))]
        row = dict(zip(KEY, key))
        row.update(repeats=len(ps), time_s=float(times.min()), time_mean_s=float(times.mean()),
                   time_std_s=float(times.std()))
        row.update({f"m_{k}": float(v) for k, v in best.get("metrics", {}).items()})
        row.update({f"b_{k}": float(v) for k, v in best.get("breakdown", {}).items()})
        rows.append(row)
    series: dict[tuple, list[int]] = {}
    for i, r in enumerate(rows):
        series.setdefault((r["kernel"], r["mode"], r["split"], r["size"]), []).append(i)
    for (_, mode, _, _), idx in series.items():
        s, e = scaling_columns(mode, [rows[i]["ranks"] for i in idx], [rows[i]["time_s"] for i in idx])
        for i, si, ei in zip(idx, s, e):
            rows[i]["speedup"], rows[i]["efficiency"] = float(si), float(ei)
    columns: dict[str, list] = {}
    names = list(KEY) + ["repeats", "time_s", "time_mean_s", "time_std_s", "speedup", "efficiency"]
    for r in rows:
        for k in r:
            if k not in names:
                names.append(k)
    for name in names:
        columns[name] = [r.get(name, float("nan")) for r in rows]
    return {"columns": columns, "rows": rows}


def _column_array(name: str, values: list):
    if name in ("kernel", "mode", "split"):
        return [str(v) for v in values]
    if name in ("size", "ranks", "repeats"):
        return np.asarray(values, dtype=np.int64)
    return np.asarray(values, dtype=np.float64)


def _scalar(v):
    if isinstance(v, (bool, int, float, str)) or v is None:
        return v
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating,)):
        return float(v)
    return str(v)


def write_table(path: Path, points: list[dict], meta: dict | None = None) -> dict:
    """Write scaling.h5 (the table and the raw points); returns the table."""
    from ..checkpoint import write_tree

    table = build_table(points)
    payload = {"table": {k: _column_array(k, v) for k, v in table["columns"].items()},
               "points": {}}
    for p in points:
        entry = {k: _scalar(v) for k, v in p.items() if k not in ("metrics", "breakdown")}
        entry["metrics"] = {k: float(v) for k, v in p.get("metrics", {}).items()}
        entry["breakdown"] = {k: float(v) for k, v in p.get("breakdown", {}).items()}
        payload["points"][point_id(p)] = entry
    write_tree(path, payload, meta={"kind": "pbahpc-scaling", "rows": len(table["rows"]),
                                    "points": len(points), **(meta or {})})
    return table


def read_table(path: Path) -> tuple[dict, list[dict], dict]:
    """(columns, points, meta) of a scaling.h5."""
    from ..checkpoint import read_checkpoint_file

    payload, header = read_checkpoint_file(path)
    return payload["table"], list(payload["points"].values()), header.meta


# ----------------------------------------------------------------------------- text and plots
def _fmt(v) -> str:
    if isinstance(v, float):
        if math.isnan(v):
            return "-"
        a = abs(v)
        return f"{v:.3g}" if (a and (a >= 1e5 or a < 1e-2)) else f"{v:.3f}"
    return str(v)


def format_table(table: dict) -> str:
    """One block per kernel: mode, split, size, ranks, time, speed-up, efficiency and its rates."""
    rows = table["rows"]
    out: list[str] = []
    for kernel in dict.fromkeys(r["kernel"] for r in rows):
        rs = [r for r in rows if r["kernel"] == kernel]
        extra = [m for m in TEXT_METRICS.get(kernel, ()) if any(f"m_{m}" in r for r in rs)]
        head = ["mode", "split", "size", "ranks", "rep", "time_s", "speedup", "effic."] + extra
        body = [[r["mode"], str(r["split"]), str(r["size"]), str(r["ranks"]), str(r["repeats"]),
                 _fmt(r["time_s"]), _fmt(r["speedup"]), _fmt(r["efficiency"])]
                + [_fmt(r.get(f"m_{m}", float("nan"))) for m in extra] for r in rs]
        width = [max(len(h), *(len(b[i]) for b in body)) for i, h in enumerate(head)]
        out.append(f"== {kernel} ==")
        out.append("  ".join(h.rjust(w) for h, w in zip(head, width)))
        out.extend("  ".join(c.rjust(w) for c, w in zip(b, width)) for b in body)
        out.append("")
    return "\n".join(out)


def plot_table(table: dict, out_dir: Path) -> list[Path]:
    """Per kernel: time, speed-up and efficiency vs ranks (one line per series); returns the files."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    rows = table["rows"]
    files = []
    for kernel in dict.fromkeys(r["kernel"] for r in rows):
        rs = [r for r in rows if r["kernel"] == kernel]
        fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
        series: dict[tuple, list[dict]] = {}
        for r in rs:
            series.setdefault((r["mode"], r["split"], r["size"]), []).append(r)
        nmax = max(r["ranks"] for r in rs)
        for (mode, split, size), sr in series.items():
            n = [r["ranks"] for r in sr]
            lab = f"{mode} size {size}" + ("" if split in ("-", "") else f" {split}")
            axes[0].plot(n, [r["time_s"] for r in sr], "o-", label=lab)
            axes[1].plot(n, [r["speedup"] for r in sr], "o-", label=lab)
            axes[2].plot(n, [r["efficiency"] for r in sr], "o-", label=lab)
        n1 = min(r["ranks"] for r in rs)
        axes[1].plot([n1, nmax], [1, nmax / n1], "k:", label="ideal (strong)")
        axes[2].axhline(1.0, color="k", ls=":")
        for ax, yl in zip(axes, ("time [s]", "speed-up", "parallel efficiency")):
            ax.set_xlabel("MPI ranks")
            ax.set_ylabel(yl)
            ax.set_xticks(sorted({r["ranks"] for r in rs}))
        axes[0].set_yscale("log")
        axes[0].legend(fontsize=7)
        fig.suptitle(f"pbahpc scaling: {kernel}")
        fig.tight_layout()
        path = out_dir / f"scaling-{kernel}.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        files.append(path)
    return files


def write_outputs(out_dir: Path, points: list[dict], meta: dict | None = None, plots: bool = True) -> dict:
    """scaling.h5, scaling.txt and (optionally) plots/ in ``out_dir``; returns the table."""
    out_dir.mkdir(parents=True, exist_ok=True)
    table = write_table(out_dir / "scaling.h5", points, meta)
    (out_dir / "scaling.txt").write_text(format_table(table))
    if plots and table["rows"]:
        plot_table(table, out_dir / "plots")
    return table


# ----------------------------------------------------------------------------- merge
def load_points(directory: Path) -> list[dict]:
    """The points of a result directory: its points/*.json (searched below it too), else its scaling.h5."""
    directory = Path(directory)
    files = sorted(directory.rglob("points/*.json"))
    if files:
        return [json.loads(f.read_text()) for f in files]
    if (directory / "scaling.h5").exists():
        return read_table(directory / "scaling.h5")[1]
    raise FileNotFoundError(f"{directory}: no points/*.json and no scaling.h5")


def merge(directories: Sequence[Path], out_dir: Path, plots: bool = True) -> dict:
    """One table from several result directories (e.g. one per SLURM job): the union of their points;
    a point (kernel, mode, split, size, ranks, repeat) found twice is taken from the later directory."""
    points: dict[str, dict] = {}
    for d in directories:
        for p in load_points(d):
            points[point_id(p)] = p
    merged = sorted(points.values(), key=lambda p: (p["kernel"], p["mode"], str(p["split"]), p["size"],
                                                   p["ranks"], p["repeat"]))
    return write_outputs(Path(out_dir), merged, {"merged_from": [str(d) for d in directories]}, plots)
