"""``pbahpc report RUNDIR``: one static page per run, ``RUNDIR/report.html``.

Built from whatever the run directory holds (driver/campaign.py and the engines write it): the learning
curve and gamma histograms (``statistics.h5``), the fidelity table, free energy, Arrhenius plot and
structure numbers beside the paper's (``properties/``), the P2D voltage curves and concentration maps
(``continuum/p2d-iter-*.h5``) and the timers (``timings.yaml``). Every figure comes from the plotting
function the campaign uses and is embedded as a data URI: the page needs no server, no network and no
file beside it. A section whose data are missing or unreadable says so; the page is still written.
Also written by ``pbahpc run`` on rank 0 when a campaign completes.
"""
from __future__ import annotations

import base64
import html
import os
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import numpy as np
import yaml

EXIT_OK, EXIT_USAGE = 0, 2
SECTIONS = ("summary", "learning", "gamma", "fidelity", "free-energy", "arrhenius", "structure", "p2d", "timings",
            "properties-text")


class Missing(Exception):
    """The section's data are not in the run directory (yet): the message says what is absent."""


def main(run_dir: Path, out: Path | None = None) -> int:
    from .status import is_run_dir

    run_dir = Path(run_dir)
    if not is_run_dir(run_dir):
        print(f"pbahpc: report: {run_dir} is not a pbahpc run directory (expected campaign.yaml, or logs/ and "
              "checkpoints/ in it)", file=sys.stderr)
        return EXIT_USAGE
    out = Path(out) if out is not None else run_dir / "report.html"
    if out.is_dir() or not out.parent.is_dir() or not os.access(out.parent, os.W_OK):
        print(f"pbahpc: report: cannot write {out}: expected a file in an existing writable directory "
              "(--out FILE writes the page elsewhere)", file=sys.stderr)
        return EXIT_USAGE
    write_report(run_dir, out)
    print(out)
    return EXIT_OK


def write_report(run_dir: Path, out: Path | None = None) -> Path:
    """Write the page (atomically: a reader never sees half of it) and return its path."""
    run_dir = Path(run_dir)
    out = Path(out) if out is not None else run_dir / "report.html"
    page = render(run_dir)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(page, encoding="utf-8")
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return out


def render(run_dir: Path) -> str:
    """The page's HTML: one <section data-state="ok|missing|error"> per entry of SECTIONS."""
    builders: dict[str, tuple[str, Callable[[Path, Path], str]]] = {
        "summary": ("Campaign", _summary),
        "learning": ("Active learning: learning curve", _learning),
        "gamma": ("Gamma histograms", _gamma),
        "fidelity": ("Fidelity: learned potential vs reference", _fidelity),
        "free-energy": ("Free energy (Fig. 8 style)", _free_energy),
        "arrhenius": ("Na diffusion: Arrhenius", _arrhenius),
        "structure": ("Structure and energies beside the paper", _structure),
        "p2d": ("P2D cell: voltage and concentration maps", _p2d),
        "timings": ("Timings and idle shares", _timings),
        "properties-text": ("Properties report (text)", _properties_text)}
    body = []
    with tempfile.TemporaryDirectory(prefix="pbahpc-report-") as tmp:
        for key in SECTIONS:
            title, build = builders[key]
            try:
                inner, state = build(run_dir, Path(tmp)), "ok"
            except Missing as exc:
                inner, state = f'<p class="missing">{_e(exc)}</p>', "missing"
            except Exception as exc:  # noqa: BLE001 - one unreadable file must not cost the other sections
                inner, state = f'<p class="error">could not be read: {_e(type(exc).__name__)}: {_e(exc)}</p>', "error"
            body.append(f'<section id="{key}" data-state="{state}"><h2>{_e(title)}</h2>\n{inner}\n</section>')
    name = _campaign(run_dir).get("name", run_dir.name)
    return _PAGE.format(title=_e(f"pbahpc report: {name}"), run_dir=_e(run_dir.resolve()),
                        when=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), body="\n".join(body))


# ------------------------------------------------------------------------------------------- helpers
def _e(text: Any) -> str:
    return html.escape(str(text))


def _img(png: Path, alt: str) -> str:
    data = base64.b64encode(Path(png).read_bytes()).decode("ascii")
    return (f'<figure><img src="data:image/png;base64,{data}" alt="{_e(alt)}">'
            f'<figcaption>{_e(alt)}</figcaption></figure>')


def _table(header: list[str], rows: list[list[Any]], classes: list[str] | None = None) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    lines = []
    for k, row in enumerate(rows):
        cls = f' class="{classes[k]}"' if classes and classes[k] else ""
        lines.append(f"<tr{cls}>" + "".join(f"<td>{_e(c)}</td>" for c in row) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(lines)}</tbody></table>"


def _need(path: Path, what: str) -> Path:
    if not path.exists():
        raise Missing(f"no {path.name} in {path.parent} ({what})")
    return path


def _campaign(run_dir: Path) -> dict:
    try:
        doc = yaml.safe_load((run_dir / "campaign.yaml").read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return {}
    return (doc.get("campaign") or {}) if isinstance(doc, dict) else {}


def _numbers(run_dir: Path) -> dict[str, Any]:
    from .checkpoint import read_checkpoint_file

    path = _need(run_dir / "properties" / "properties.h5", "written after the final potential's properties runs")
    return read_checkpoint_file(path)[0]["numbers"]


def _g(v: Any, fmt: str = ".4g") -> str:
    v = float(v)
    return "n/a" if not np.isfinite(v) else format(v, fmt)


# ------------------------------------------------------------------------------------------- sections
def _summary(run_dir: Path, tmp: Path) -> str:
    from .checkpoint import CheckpointError, read_checkpoint_file

    c = _campaign(run_dir)
    rows = [["campaign", c.get("name", "? (no campaign.yaml)")], ["iteration budget", c.get("iterations", "?")]]
    try:
        _, header = read_checkpoint_file(run_dir / "results.h5")
        m = header.meta
        rows += [["status", f"complete, {m.get('iterations', '?')} iteration(s), "
                            f"{'converged' if int(m.get('converged', 0)) else 'not converged'}"],
                 ["results.h5 written", header.created]]
    except FileNotFoundError:
        rows.append(["status", "not complete (no results.h5): the sections show what exists so far"])
    except CheckpointError as exc:
        rows.append(["status", f"results.h5 fails verification: {exc}"])
    potentials = sorted((run_dir / "potentials").glob("potential-*.mtp"))
    rows.append(["final potential", potentials[-1].name if potentials else "none"])
    return _table(["", ""], rows)


def _learning(run_dir: Path, tmp: Path) -> str:
    from .mlip.statistics import plot_statistics, read_statistics

    path = _need(run_dir / "statistics.h5", "written by the MTP trainer after each train stage")
    rows = read_statistics(path)["rows"]
    png = tmp / "statistics.png"
    plot_statistics(path, png)
    table = _table(["iteration", "candidates", "selected", "labelled", "screened", "halted replicas", "training set",
                    "force RMSE train (eV/A)", "force RMSE new (eV/A)", "energy RMSE train (meV/atom)", "converged"],
                   [[f"{r['iteration']:.0f}", f"{r['candidates']:.0f}", f"{r['selected']:.0f}", f"{r['labelled']:.0f}",
                     f"{r['screened'] + r['quarantined']:.0f}", f"{r['replicas_halted']:.0f}", f"{r['n_train']:.0f}",
                     _g(r["rmse_train_forces_eV_A"]), _g(r["rmse_new_forces_eV_A"]),
                     _g(1e3 * r["rmse_train_energy_eV_atom"]), "yes" if r["converged"] else ""] for r in rows])
    return _img(png, "selection counts, force errors and gamma_max per cycle, per iteration (statistics.h5)") + table


def _gamma(run_dir: Path, tmp: Path) -> str:
    from .mlip.statistics import read_statistics

    stats = read_statistics(_need(run_dir / "statistics.h5", "written by the MTP trainer after each train stage"))
    edges = stats["gamma_edges"]
    bins = [f"{a:g}-{b:g}" for a, b in zip(edges[:-1], edges[1:])]
    rows = [[f"{r['iteration']:.0f}", *(int(n) for n in counts)]
            for r, counts in zip(stats["rows"], stats["gamma_histogram"])]
    return ("<p>Replica cycles per extrapolation grade gamma_max (a halted replica's halting grade included); "
            "the curves are the right panel of the figure above.</p>" + _table(["iteration", *bins], rows))


def _fidelity(run_dir: Path, tmp: Path) -> str:
    from .config.schema import PropertiesSection
    from .properties.fidelity import COLUMNS, cells, compare, summary

    numbers = _numbers(run_dir)
    if "reference" not in numbers:
        raise Missing("properties.h5 has no reference-potential runs (properties.reference: false)")
    note = ""
    try:  # the campaign's tolerances, as the properties report used them
        doc = yaml.safe_load((run_dir / "campaign.yaml").read_text(encoding="utf-8"))
        tol = PropertiesSection.Fidelity(**((doc.get("properties") or {}).get("fidelity") or {}))
    except (OSError, yaml.YAMLError, TypeError, AttributeError) as exc:
        tol, note = PropertiesSection.Fidelity(), f" (default tolerances: campaign.yaml unusable, {type(exc).__name__})"
    rows = compare(numbers, numbers["reference"], tol)
    classes = [{True: "pass", False: "fail", None: "na"}[r.passed] for r in rows]
    return f"<p>{_e(summary(rows))}{_e(note)}</p>" + _table(list(COLUMNS), [cells(r) for r in rows], classes)


def _free_energy(run_dir: Path, tmp: Path) -> str:
    pngs = sorted((run_dir / "properties").glob("free_energy*.png"))
    if not pngs:
        raise Missing(f"no free_energy-*.png in {run_dir / 'properties'} (written by the properties analysis "
                      "when a free-energy run could be analysed)")
    out = "".join(_img(p, f"{p.name}: mu(x) with spinodals, g(x) with common tangent and mixing energy")
                  for p in pngs)
    try:
        numbers = _numbers(run_dir)
    except Missing:
        return out
    rows = []
    for who, nums in (("learned", numbers), ("reference", numbers.get("reference", {}))):
        for key, fe in sorted(nums.items()):
            if isinstance(fe, dict) and "binodal_x" in fe:
                b, s = np.asarray(fe["binodal_x"], float), np.asarray(fe["spinodal_x"], float)
                rows.append([who, f"{key[1:-1]} K", "none" if np.isnan(b).any() else f"{b[0]:.3f}, {b[1]:.3f}",
                             "none" if np.isnan(s).any() else f"{s[0]:.3f}, {s[1]:.3f}",
                             _g(fe["max_mixing_eV_fu"])])
    return out + _table(["potential", "T", "binodals (x)", "spinodals (x)", "max mixing (eV/f.u.)"], rows)


def _arrhenius(run_dir: Path, tmp: Path) -> str:
    from .properties.diffusion import plot_arrhenius

    numbers = _numbers(run_dir)
    series, rows = {}, []
    for who, nums in (("learned", numbers), ("reference", numbers.get("reference", {}))):
        by_x: dict[str, list] = {}
        for run, (D, s, ok) in sorted((nums.get("diffusion_runs") or {}).items()):  # "x<x>_T<T>K"
            x, T = run[1:-1].split("_T")
            by_x.setdefault(x, []).append((float(T), float(D), float(s), bool(ok)))
            rows.append([who, x, T, f"{D:.3g} ± {s:.2g}", "yes" if ok else "no"])
        for x, points in by_x.items():
            fit = nums.get(f"arrhenius_x{x}")
            series[f"x = {x} ({who})"] = (points, None if fit is None else (float(fit["Ea_eV"]), float(fit["D0_m2_s"])))
    if not series:
        raise Missing("properties.h5 holds no diffusion runs")
    png = plot_arrhenius(series, tmp / "arrhenius.png")
    fits = [[who, key[len("arrhenius_x"):], f"{float(f['Ea_eV']):.3f} ± {float(f['sigma_Ea_eV']):.3f}",
             f"{float(f['D300_m2_s']):.3g} ± {float(f['sigma_D300_m2_s']):.2g}"]
            for who, nums in (("learned", numbers), ("reference", numbers.get("reference", {})))
            for key, f in sorted(nums.items()) if key.startswith("arrhenius_x")]
    return (_img(png, "D against 1000/T per composition; lines: Arrhenius fits (Eq. 3) where D is resolved") +
            _table(["potential", "x", "T (K)", "D (m^2/s)", "resolved"], rows) +
            (_table(["potential", "x", "Ea (eV)", "D(300 K) (m^2/s)"], fits) if fits else
             "<p>No Arrhenius fit: fewer than two resolved temperatures per composition.</p>"))


def _structure(run_dir: Path, tmp: Path) -> str:
    from .properties.report import beside_paper

    numbers = _numbers(run_dir)
    return ("<p>Relaxed single-phase cells and two-phase supercells; the paper's values (Secs. III.B-E) where it "
            "gives one for the quantity.</p>"
            + _table(["quantity", "learned MTP", "reference potential", "paper"],
                     [[q, a.replace("+-", "±"), b.replace("+-", "±"), c]
                      for q, a, b, c in beside_paper(numbers, numbers.get("reference", {}))]))


def _p2d(run_dir: Path, tmp: Path) -> str:
    from .continuum.output import plot_result, read_result

    files = sorted((run_dir / "continuum").glob("p2d-iter-*.h5"))
    if not files:
        raise Missing(f"no p2d-iter-*.h5 in {run_dir / 'continuum'} (written when the continuum group's P2D cell "
                      "finishes its protocol)")
    result = read_result(files[-1])
    paths = plot_result(result, tmp / "p2d")
    meta = result["meta"]
    rows = [["file", f"{files[-1].name}" + (f" (the newest of {len(files)})" if len(files) > 1 else "")],
            ["parameters", meta.get("parameters", "?")], ["steps ended by", meta.get("step_ends", "?")],
            ["simulated time", f"{float(result['time_s'][-1]) / 3600:.3f} h"],
            ["final voltage", f"{float(result['voltage_V'][-1]):.4f} V"],
            ["capacity throughput", f"{float(result['capacity_mAh_cm2'][-1]):.4g} mAh/cm^2"]]
    captions = ("cell voltage against capacity throughput and time", "cathode stoichiometry maps at the marked times "
                "(Fig. 9b/c/e)", "cathode x near the surface, middle and centre of particles (Fig. 9d/f)")
    return _table(["", ""], rows) + "".join(_img(p, c) for p, c in zip(paths, captions))


def _timings(run_dir: Path, tmp: Path) -> str:
    path = _need(run_dir / "timings.yaml", "written by rank 0 when a launch ends")
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(doc, dict):
        raise ValueError(f"{path} is not a mapping")
    names = list(doc.get("stages") or [])
    ranks = {k: v for k, v in doc.items() if k.startswith("rank") and isinstance(v, dict)}
    rows, per_stage = [], {}
    for rank, t in ranks.items():
        wall = float(t.get("wall", 0.0))
        rows.append([rank, ",".join(t.get("groups") or []), *(f"{float(t.get(k, 0.0)):.1f}" for k in
                     ("compute", "wait", "route", "checkpoint", "wall")),
                     f"{100 * float(t.get('wait', 0.0)) / wall:.1f} %" if wall > 0 else "n/a"])
        for _, s, compute, wait in t.get("stages") or []:
            acc = per_stage.setdefault(int(s), [0.0, 0.0])
            acc[0] += compute
            acc[1] += wait
    stage_rows = [[names[s] if s < len(names) else s, f"{c:.1f}", f"{w:.1f}",
                   f"{100 * w / (c + w):.1f} %" if c + w > 0 else "n/a"] for s, (c, w) in sorted(per_stage.items())]
    return ("<p>The last launch's timers (seconds). Idle: waiting at synchronisation points for other ranks; "
            "its share is of the rank's wall time in the campaign loop, or of all ranks' time in the stage.</p>"
            + _table(["rank", "groups", "compute", "wait", "route", "checkpoint", "wall", "idle share"], rows)
            + _table(["stage", "compute (all ranks)", "wait (all ranks)", "idle share"], stage_rows))


def _properties_text(run_dir: Path, tmp: Path) -> str:
    path = _need(run_dir / "properties" / "report.txt", "written after the final potential's properties runs")
    return f"<pre>{_e(path.read_text(encoding='utf-8', errors='replace'))}</pre>"


# The script marks every image that did not decode (data-broken) and counts them in <body data-images>,
# for the reader (a red frame) and for a headless browser's DOM dump (tests/test_report.py).
_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: sans-serif; margin: 1.5em auto; max-width: 1250px; color: #222; }}
section {{ border-top: 1px solid #ccc; padding: 0.3em 0 0.8em; }}
table {{ border-collapse: collapse; margin: 0.5em 0; font-size: 0.9em; }}
td, th {{ border: 1px solid #ddd; padding: 2px 6px; text-align: left; }}
tr.fail td {{ background: #fdd; }} tr.pass td {{ background: #dfd; }} tr.na td {{ color: #888; }}
img {{ max-width: 100%; }} img[data-broken] {{ outline: 3px solid red; }}
figure {{ margin: 0.5em 0; }} figcaption {{ font-size: 0.85em; color: #555; }}
.missing {{ color: #886600; }} .error {{ color: #b00; }}
pre {{ font-size: 0.8em; overflow-x: auto; background: #f7f7f7; padding: 0.5em; }}
</style></head>
<body data-images="pending">
<h1>{title}</h1>
<p>Run directory <code>{run_dir}</code>, page written {when} by <code>pbahpc report</code>.</p>
{body}
<script>
window.addEventListener("load", function () {{
  var imgs = document.images, broken = 0;
  for (var i = 0; i < imgs.length; i++) {{
    var ok = imgs[i].complete && imgs[i].naturalWidth > 0;
    imgs[i].setAttribute(ok ? "data-ok" : "data-broken", "1");
    if (!ok) broken++;
  }}
  document.body.setAttribute("data-images", imgs.length + " images, " + broken + " broken");
}});
</script>
</body></html>
"""
