"""Per-iteration statistics of an active-learning campaign: ``<run_dir>/statistics.h5`` and ``statistics.png``.

One row per iteration (``COLUMNS``), the histogram of the replicas' per-cycle gamma_max (``GAMMA_EDGES``;
a halted replica's halting grade included) and, per iteration, why frames were screened out or
quarantined. Written by the MTP trainer's group root after every train stage (checkpoint format, see
``pbahpc.checkpoint``), read by ``pbahpc status``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..checkpoint import read_checkpoint_file, write_tree

COLUMNS = ("iteration", "candidates", "selected", "repeat", "inside", "cap", "labelled", "screened", "quarantined",
           "replicas_graded", "replicas_halted", "n_train", "rmse_train_energy_eV_atom", "rmse_train_forces_eV_A",
           "rmse_train_stress_GPa", "rmse_new_energy_eV_atom", "rmse_new_forces_eV_A", "converged")
"""``rmse_new_*``: the potential that drove the iteration on the frames labelled in it, before they
were trained on (a held-out error; NaN before the first potential)."""
GAMMA_EDGES = np.array([0.0, 1.0, 1.5, 2.0, 3.0, 5.0, 7.0, 10.0, 20.0, 50.0, 100.0, 1000.0, np.inf])


def gamma_histogram(gammas: np.ndarray) -> np.ndarray:
    g = np.asarray(gammas, dtype=float)
    return np.histogram(g[np.isfinite(g)], bins=GAMMA_EDGES)[0].astype(np.int64)


def write_statistics(path: Path, rows: list[dict[str, float]], histograms: list[np.ndarray],
                     reasons: dict[str, dict[str, str]]) -> None:
    table = np.array([[float(r.get(c, np.nan)) for c in COLUMNS] for r in rows], dtype=np.float64)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_tree(path, {"table": table.reshape(-1, len(COLUMNS)),
                      "gamma_histogram": np.array(histograms, dtype=np.int64).reshape(-1, len(GAMMA_EDGES) - 1),
                      "gamma_edges": GAMMA_EDGES, "reasons": reasons},
               meta={"columns": " ".join(COLUMNS), "units": "eV/atom, eV/A, GPa"})


def read_statistics(path: Path) -> dict[str, Any]:
    """{"rows": [ {column: value} ], "gamma_histogram", "gamma_edges", "reasons"}."""
    data, meta = read_checkpoint_file(path)
    columns = str(meta.meta["columns"]).split()
    return {"rows": [dict(zip(columns, (float(x) for x in row))) for row in np.atleast_2d(data["table"])],
            "gamma_histogram": np.asarray(data["gamma_histogram"]), "gamma_edges": np.asarray(data["gamma_edges"]),
            "reasons": data.get("reasons", {})}


def plot_statistics(path: Path, out: Path) -> None:
    """Counts, errors and the gamma histogram per iteration, as one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stats = read_statistics(path)
    rows = stats["rows"]
    it = np.array([r["iteration"] for r in rows])
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    for key in ("candidates", "selected", "screened", "replicas_halted"):
        axes[0].plot(it, [r[key] for r in rows], marker="o", label=key)
    axes[0].set(xlabel="iteration", ylabel="configurations / replicas", title="selection")
    axes[0].legend(fontsize=8)
    for key, style in (("rmse_train_forces_eV_A", "-"), ("rmse_new_forces_eV_A", "--")):
        axes[1].semilogy(it, [r[key] for r in rows], style, marker="o", label=key.replace("_eV_A", ""))
    axes[1].set(xlabel="iteration", ylabel="force RMSE (eV/A)", title="errors")
    axes[1].legend(fontsize=8)
    edges = stats["gamma_edges"]
    labels = [f"{a:g}-{b:g}" for a, b in zip(edges[:-1], edges[1:])]
    for k, counts in enumerate(stats["gamma_histogram"]):
        axes[2].plot(range(len(counts)), counts, marker=".", label=f"iteration {it[k]:g}")
    axes[2].set_xticks(range(len(labels)), labels, rotation=60, fontsize=7)
    axes[2].set(ylabel="cycles", title="gamma_max per cycle")
    axes[2].legend(fontsize=7)
    fig.tight_layout()
    tmp = out.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(out)
