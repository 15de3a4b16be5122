"""Save, load and plot a P2DCell.result(): one HDF5 file per run and the paper's Fig. 9 panels.

HDF5 layout (every dataset has a `units` attribute; "1" is dimensionless, x is the stoichiometry):

    /            attrs: meta (run description), format = "pbahpc.p2d-result", format_version
    /trace       time_s, voltage_V, current_A_m2 (> 0 discharges), step, throughput_Ah_m2,
                 capacity_mAh_cm2 (the throughput again), one_c_A_m2 (scalar): every accepted step
    /fields      snapshot_time_s, cathode_x / anode_x (snapshot, x-node, r-cell; r-cell 0 at the particle
                 centre), c_e_mol_m3 / phi_e_V (snapshot, all x-nodes), x_centres_m,
                 {anode,cathode}_r_centres_m, {anode,cathode}_x_range_m (first and last node),
                 {anode,cathode}_particle_x (snapshot, x-node, size): each particle size's volume-mean x,
                 the particle-resolved state of charge; {anode,cathode}_radii_m and _size_fractions (of
                 the active volume) of those sizes (one size unless the electrode has particle_sizes;
                 with several, the maps' r-cells are the sizes' cells one after another, and the probes
                 and map plots show the largest size)
    /probes      cathode_x (snapshot, position, depth): the cathode x-cell containing each
                 position_fraction (of the thickness, from the separator) at the surface, middle and
                 centre r-cells (depth_labels attr) -- Fig. 9d/f; time_s is a hard link to the snapshot
                 times; x_index, x_m, depth_from_separator_m, r_index, depth_from_surface_m

Serial h5py: with MPI, call write_result on one rank (result() is already gathered on every rank).
"""
from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np

FORMAT = "pbahpc.p2d-result"
FORMAT_VERSION = 1
DEPTH_LABELS = ("surface", "middle", "centre")
_TRACE = ("time_s", "voltage_V", "current_A_m2", "step", "throughput_Ah_m2", "one_c_A_m2")
_FIELDS = ("snapshot_time_s", "cathode_x", "anode_x", "c_e_mol_m3", "phi_e_V", "x_centres_m",
           "anode_r_centres_m", "cathode_r_centres_m", "anode_x_range_m", "cathode_x_range_m",
           "anode_particle_x", "cathode_particle_x", "anode_radii_m", "cathode_radii_m", "anode_size_fractions",
           "cathode_size_fractions")
# name suffix -> `units` attribute: names carry their units already, generic HDF5 readers look here
_UNITS = (("_mAh_cm2", "mAh/cm^2"), ("_Ah_m2", "Ah/m^2"), ("_A_m2", "A/m^2"), ("_mol_m3", "mol/m^3"),
          ("_V", "V"), ("_s", "s"), ("_m", "m"))
_AH_M2_TO_MAH_CM2 = 1e3 / 1e4


def _units(name: str) -> str:
    return next((u for suffix, u in _UNITS if name.endswith(suffix)), "1")


def _depth_from_separator_m(result: dict) -> tuple[np.ndarray, float]:
    """Cathode node centres' distance from the separator and the node spacing (uniform x-cells)."""
    n = result["cathode_x"].shape[1]
    first, last = result["cathode_x_range_m"]
    dx = (last - first) / (n - 1) if n > 1 else 0.0  # one x-cell: its width is not in result()
    return np.arange(n) * dx + 0.5 * dx, dx


def _record_nodes(record_positions, nx: int) -> np.ndarray:
    """The x-cell containing each position (fraction of the thickness from the separator; 1.0 is the
    collector-side cell)."""
    return np.minimum(np.floor(np.asarray(record_positions, dtype=float) * nx).astype(int), nx - 1)


def largest_size(result: dict) -> tuple[np.ndarray, np.ndarray, float]:
    """(x maps (snapshot, x-node, r-cell), r-cell centres, radius m) of the cathode's largest particle
    size: with several sizes the maps hold each size's cells in turn, the same number for each."""
    r = result["cathode_r_centres_m"]
    radii = np.asarray(result.get("cathode_radii_m", [r[-1] + r[0]]))  # files before particle sizes: one
    n = result["cathode_x"].shape[2] // radii.size
    part = slice(int(np.argmax(radii)) * n, (int(np.argmax(radii)) + 1) * n)
    r = r[part]
    return result["cathode_x"][:, :, part], r, float(r[-1] + r[0])  # the first centre is half a cell from 0


def cathode_probes(result: dict, record_positions=(0.0, 0.5, 1.0)) -> dict:
    """Cathode x at the x-cell containing each position (fraction of the thickness from the separator;
    1.0 is the collector-side cell) in the surface, middle (the r-cell containing R/2) and centre
    r-cells of the (largest) particle, at every snapshot: cathode_x has shape (snapshot, position, depth)."""
    cx, r, radius_m = largest_size(result)
    _, nx, nr = cx.shape
    frac = np.asarray(record_positions, dtype=float)
    ix = _record_nodes(frac, nx)
    ir = np.array([nr - 1, nr // 2, 0])
    depth_m, dx = _depth_from_separator_m(result)
    return {"time_s": result["snapshot_time_s"], "cathode_x": cx[:, ix][:, :, ir],
            "position_fraction": frac, "x_index": ix, "x_m": result["cathode_x_range_m"][0] + ix * dx,
            "depth_from_separator_m": depth_m[ix], "r_index": ir, "depth_from_surface_m": radius_m - r[ir]}


def _dataset(group: h5py.Group, name: str, value) -> None:
    arr = np.asarray(value)
    group.create_dataset(name, data=arr, compression="gzip" if arr.ndim > 1 else None)
    group[name].attrs["units"] = _units(name)


def write_result(path, result: dict, meta: dict, record_positions=(0.0, 0.5, 1.0)) -> None:
    """Write `result` (P2DCell.result()) with its probes and `meta` (h5py attribute values) to `path`.
    Atomic: written to a temporary file beside it, fsynced and renamed, so a crash leaves either the
    old file or the new one."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # same directory: os.replace stays atomic
    try:
        with h5py.File(tmp, "w") as f:
            f.attrs.update({**meta, "format": FORMAT, "format_version": FORMAT_VERSION})
            trace = f.create_group("trace")
            for name in _TRACE:
                _dataset(trace, name, result[name])
            _dataset(trace, "capacity_mAh_cm2", result["throughput_Ah_m2"] * _AH_M2_TO_MAH_CM2)
            fields = f.create_group("fields")
            for name in _FIELDS:
                _dataset(fields, name, result[name])
            probes = f.create_group("probes")
            probes.attrs["depth_labels"] = list(DEPTH_LABELS)
            for name, value in cathode_probes(result, record_positions).items():
                if name == "time_s":
                    probes[name] = fields["snapshot_time_s"]  # hard link, not a copy
                else:
                    _dataset(probes, name, value)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # make the rename itself durable
    finally:
        os.close(dir_fd)


def read_result(path) -> dict:
    """The arrays of write_result's file: P2DCell.result()'s keys (bit-identical) plus
    capacity_mAh_cm2, "probes" (dict of /probes) and "meta" (the root attributes but the format's)."""
    with h5py.File(path, "r") as f:
        out = {name: ds[()] for group in ("trace", "fields") for name, ds in f[group].items()}
        out["probes"] = {name: ds[()] for name, ds in f["probes"].items()}
        out["meta"] = {k: v for k, v in f.attrs.items() if k not in ("format", "format_version")}
    return out


def net_charge_Ah_m2(result: dict) -> np.ndarray:
    """Charge put in since the start, -integral of I dt (I > 0 discharges) per accepted step: the state
    of charge relative to the start, which a discharge runs back (the throughput only grows)."""
    t, I = result["time_s"], result["current_A_m2"]
    dq = np.concatenate([[0.0], -0.5 * (I[1:] + I[:-1]) * np.diff(t)])
    return np.cumsum(dq) / 3600.0


def transformed_fraction(result: dict, transform_x: float, side: str = "cathode") -> np.ndarray:
    """Fraction of the particles (by number) of each x-node that have transformed, per snapshot:
    (snapshot, x-node). A particle size has transformed when its mean x has crossed transform_x (e.g. the
    midpoint of the binodals) away from where it stood at the first snapshot; sizes count by their
    number density, fraction / R^3."""
    px = result[f"{side}_particle_x"]
    number = result[f"{side}_size_fractions"] / result[f"{side}_radii_m"] ** 3
    crossed = (px - transform_x) * np.sign(px[:1] - transform_x) < 0.0
    return crossed @ (number / number.sum())


def _map_indices(result: dict, map_times_s, n: int = 5) -> np.ndarray:
    """Snapshots nearest to map_times_s, else n placed where the cathode changes: the first, the last
    and those at equal steps of the accumulated change of its x map between snapshots (a front
    crossing or a nucleation spends many; a quiet plateau few)."""
    times = result["snapshot_time_s"]
    if map_times_s is not None:
        return np.array([np.abs(times - t).argmin() for t in map_times_s])
    cx = result["cathode_x"].reshape(len(times), -1)
    change = np.concatenate([[0.0], np.cumsum(np.abs(np.diff(cx, axis=0)).mean(axis=1))])
    if change[-1] <= 0.0:
        return np.unique(np.linspace(0, len(times) - 1, min(n, len(times))).round().astype(int))
    inner = [int(np.abs(change - c).argmin()) for c in np.linspace(0.0, change[-1], n)[1:-1]]
    return np.unique([0, *inner, len(times) - 1])


def _voltage_vs_time(ax, result: dict, marks: np.ndarray) -> None:
    """Voltage (black) with numbered red markers at the snapshots `marks`, as in Fig. 9d/f."""
    t_h = result["time_s"] / 3600.0
    ax.plot(t_h, result["voltage_V"], "k-", lw=1.2, label="voltage")
    ts = result["snapshot_time_s"][marks]
    vs = np.interp(ts, result["time_s"], result["voltage_V"])
    ax.plot(ts / 3600.0, vs, "o", color="red", ms=4)
    for k, (t, v) in enumerate(zip(ts / 3600.0, vs), start=1):
        ax.annotate(str(k), (t, v), textcoords="offset points", xytext=(3, 3), color="red", fontsize=8)
    ax.set(xlabel="time (h)", ylabel="cell voltage (V)")


def _plot_transformed(path: Path, result: dict, transform_x: float, record_positions) -> None:
    """transformed.png: the fraction of transformed cathode particles vs time at the recorded depths
    (the mosaic: particles transform one by one), and each size's mean x at the first depth."""
    from matplotlib.figure import Figure

    fraction = transformed_fraction(result, transform_x)
    px = result["cathode_particle_x"]
    ix = _record_nodes(record_positions, px.shape[1])
    depth_m, _ = _depth_from_separator_m(result)
    t_h = result["snapshot_time_s"] / 3600.0
    fig = Figure(figsize=(10, 3.8), layout="constrained")
    ax_f, ax_x = fig.subplots(1, 2, sharex=True)
    for i in ix:
        ax_f.plot(t_h, fraction[:, i], "-", lw=1.2, label=f"{depth_m[i] * 1e6:.1f} µm from separator")
    ax_f.set(xlabel="time (h)", ylabel="particles transformed (number fraction)", ylim=(-0.03, 1.03))
    ax_f.legend(fontsize=7, loc="upper left", bbox_to_anchor=(0.0, -0.18), ncol=2, frameon=False)
    for k, r in enumerate(result["cathode_radii_m"]):
        ax_x.plot(t_h, px[:, ix[0], k], "-", lw=1.2, label=f"R = {r * 1e6:.2f} µm")
    ax_x.axhline(transform_x, color="grey", ls=":", lw=1, label=f"x = {transform_x:.3g} (transformed beyond)")
    ax_x.set(xlabel="time (h)", ylabel=f"mean x at {depth_m[ix[0]] * 1e6:.1f} µm from separator")
    ax_x.legend(fontsize=7, loc="upper left", bbox_to_anchor=(0.0, -0.18), ncol=3, frameon=False)
    fig.savefig(path, dpi=150)


def plot_result(result_or_path, out_dir, record_positions=(0.0, 0.5, 1.0), map_times_s=None,
                transform_x: float | None = None) -> list[Path]:
    """voltage.png (vs the charge put in, one colour per step, so a discharge runs back; and vs time),
    cathode_maps.png (Fig. 9b/c/e) and surface_probes.png (Fig. 9d/f) in out_dir. The maps are taken
    at map_times_s, else where the cathode changes (_map_indices). With transform_x (default the
    file's meta cathode_transform_x, if any: a phase-separating cathode), also transformed.png
    (_plot_transformed)."""
    # Figure + Agg canvas directly: no pyplot, so no display and no global figure registry
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    result = result_or_path if isinstance(result_or_path, dict) else read_result(result_or_path)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    marks = _map_indices(result, map_times_s)
    paths = [out_dir / name for name in ("voltage.png", "cathode_maps.png", "surface_probes.png")]

    fig = Figure(figsize=(9, 3.5), layout="constrained")
    ax_q, ax_t = fig.subplots(1, 2, sharey=True)
    q = net_charge_Ah_m2(result) * _AH_M2_TO_MAH_CM2
    for k in np.unique(result["step"]):  # one colour per protocol step: charge and discharge apart
        on = result["step"] == k
        ax_q.plot(q[on], result["voltage_V"][on], "-", lw=1.2, label=f"step {k + 1}")
    ax_q.set(xlabel="charge put in since the start (mAh/cm$^2$)", ylabel="cell voltage (V)")
    ax_q.legend(fontsize=7, loc="upper left", bbox_to_anchor=(0.0, -0.22), ncol=4, frameon=False)
    _voltage_vs_time(ax_t, result, marks)
    ax_t.set_ylabel("")
    fig.savefig(paths[0], dpi=150)

    cx, _, radius_m = largest_size(result)
    _, dx = _depth_from_separator_m(result)
    x_edges_um = np.arange(cx.shape[1] + 1) * dx * 1e6
    r_edges_um = np.linspace(0.0, radius_m, cx.shape[2] + 1) * 1e6  # depth from the surface
    fig = Figure(figsize=(2.8 * (len(marks) + 1.4), 3.4), layout="constrained")
    axes = fig.subplots(1, len(marks) + 1, width_ratios=[1.4] + [1] * len(marks))
    _voltage_vs_time(axes[0], result, marks)
    vmin, vmax = float(cx.min()), float(cx.max())
    voltages = np.interp(result["snapshot_time_s"][marks], result["time_s"], result["voltage_V"])
    for k, (ax, i, v) in enumerate(zip(axes[1:], marks, voltages), start=1):
        # rows reversed: r-cell 0 is the centre, the map's y is the depth from the surface
        mesh = ax.pcolormesh(x_edges_um, r_edges_um, cx[i][:, ::-1].T, vmin=vmin, vmax=vmax, cmap="viridis")
        ax.set(title=f"{k}: {result['snapshot_time_s'][i] / 3600.0:.2f} h, {v:.3f} V",
               xlabel="electrode depth (µm)")
        if k > 1:
            ax.sharey(axes[1])
            ax.tick_params(labelleft=False)
    axes[1].invert_yaxis()  # once: the maps share it; depth grows downwards from the surface
    axes[1].set_ylabel("particle depth (µm)")
    sizes = len(result.get("cathode_radii_m", [radius_m]))
    which = f" (the largest of {sizes} sizes, R = {radius_m * 1e6:.3g} µm)" if sizes > 1 else ""
    fig.suptitle(f"cathode x vs depth from the separator (x) and from the particle surface (y){which}", fontsize=10)
    fig.colorbar(mesh, ax=axes[1:], label="cathode stoichiometry x")
    fig.savefig(paths[1], dpi=150)

    probes = cathode_probes(result, record_positions)
    fig = Figure(figsize=(7, 4), layout="constrained")
    ax = fig.subplots()
    _voltage_vs_time(ax, result, marks)
    ax2 = ax.twinx()
    styles, colours = ("-", "--", ":", "-."), ("tab:blue", "tab:green", "tab:orange")
    t_h = probes["time_s"] / 3600.0
    for p in range(len(probes["position_fraction"])):
        for d, colour in enumerate(colours):
            ax2.plot(t_h, probes["cathode_x"][:, p, d], ls=styles[p % len(styles)], color=colour, lw=1)
    ax2.set_ylabel("cathode stoichiometry x")
    handles = [Line2D([], [], color="k", label="voltage")]
    handles += [Line2D([], [], color=c, label=f"{lab} ({depth * 1e9:.0f} nm deep)")
                for c, lab, depth in zip(colours, DEPTH_LABELS, probes["depth_from_surface_m"])]
    handles += [Line2D([], [], color="grey", ls=styles[p % len(styles)],
                       label=f"{depth * 1e6:.1f} µm from separator")
                for p, depth in enumerate(probes["depth_from_separator_m"])]
    fig.legend(handles=handles, fontsize=7, loc="outside right upper")  # beside the axes, over no curve
    fig.savefig(paths[2], dpi=150)

    if transform_x is None:
        transform_x = result.get("meta", {}).get("cathode_transform_x")
    if transform_x is not None:
        paths.append(out_dir / "transformed.png")
        _plot_transformed(paths[-1], result, float(transform_x), record_positions)
    return paths
