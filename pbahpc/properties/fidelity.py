"""Fidelity of the learned potential: every property computed twice with the same code, once with the MTP
and once with the reference it learned from, compared row by row against the configured tolerances
(``properties.fidelity``). Inputs are the ``numbers`` mappings of the report (``report.analyse``)."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

MU_AT_X = (0.2, 0.6, 1.0, 1.4, 1.8)  # compositions (per formula unit) where mu(x) is compared


@dataclass(frozen=True)
class Row:
    name: str
    unit: str
    learned: float
    sigma_learned: float
    reference: float
    sigma_reference: float
    tolerance: float
    ratio: bool = False  # compared as a factor (D), else as a difference; relative: tolerance x |reference|
    relative: bool = False
    absent: str = "n/a"  # the reference cell's text when it has no value

    @property
    def difference(self) -> float:
        if self.ratio:
            return float(self.learned / self.reference)
        return float(self.learned - self.reference)

    @property
    def passed(self) -> bool | None:
        """None when either side has no value (not resolved, not sampled)."""
        if not (np.isfinite(self.learned) and np.isfinite(self.reference)):
            return None
        if self.ratio:
            if self.learned <= 0 or self.reference <= 0:
                return None
            return max(self.difference, 1 / self.difference) <= self.tolerance
        bound = self.tolerance * abs(self.reference) if self.relative else self.tolerance
        return abs(self.difference) <= bound


def compare(learned: dict[str, Any], reference: dict[str, Any], tol, absent: str = "n/a") -> list[Row]:
    """The rows for every quantity either side has (``tol``: a ``PropertiesSection.Fidelity``); ``absent``: what
    the reference cell of a quantity the reference has no key for says (e.g. not computed with it)."""
    out: list[Row] = []
    for key in sorted(set(learned) | set(reference)):
        rows = _rows(key, learned.get(key), reference.get(key), tol)
        out += [dataclasses.replace(r, absent=absent) for r in rows] if key not in reference else rows
    return out


def _rows(key: str, lv: Any, rv: Any, tol) -> list[Row]:
    """The rows of one quantity (``lv``, ``rv``: the two sides' values, None where a side has none)."""
    nan = float("nan")
    rows: list[Row] = []
    if key.startswith("T") and key.endswith("K"):  # free energy at one temperature
        lv, rv = lv or {}, rv or {}
        T = key[1:-1]
        for kind, t in (("binodal", tol.binodal_x), ("spinodal", tol.spinodal_x)):
            lb = np.asarray(lv.get(f"{kind}_x", (nan, nan)), float)
            rb = np.asarray(rv.get(f"{kind}_x", (nan, nan)), float)
            ls = np.asarray(lv.get(f"sigma_{kind}_x", (nan, nan)), float)
            rs = np.asarray(rv.get(f"sigma_{kind}_x", (nan, nan)), float)
            for i, side in enumerate(("poor", "rich")):
                rows.append(Row(f"{kind} {side} at {T} K", "x", lb[i], ls[i], rb[i], rs[i], t))
        rows.append(Row(f"max mixing energy at {T} K", "eV/f.u.", lv.get("max_mixing_eV_fu", nan), nan,
                        rv.get("max_mixing_eV_fu", nan), nan, tol.mixing_eV_fu))
        for x in MU_AT_X:
            (lm, ls), (rm, rs) = (_mu_at(v, x) for v in (lv, rv))
            rows.append(Row(f"mu(x = {x:g}) at {T} K", "eV", lm, ls, rm, rs, tol.mu_eV))
    elif key == "diffusion_runs":  # per (x, T): [D m^2/s, sigma, resolved]
        lv, rv = lv or {}, rv or {}
        for run in sorted(set(lv) | set(rv)):
            (ld, lsd), (rd, rsd) = (_resolved(v.get(run)) for v in (lv, rv))
            x, T = run[1:-1].split("_T")  # "x<x>_T<T>K"
            rows.append(Row(f"D(x = {x}, {T} K)", "m^2/s", ld, lsd, rd, rsd, tol.D_factor, ratio=True))
    elif key.startswith("arrhenius_x"):
        lv, rv = lv or {}, rv or {}
        rows.append(Row(f"Ea({key[len('arrhenius_'):]})", "eV", lv.get("Ea_eV", nan), lv.get("sigma_Ea_eV", nan),
                        rv.get("Ea_eV", nan), rv.get("sigma_Ea_eV", nan), tol.Ea_eV))
    elif key == "interface":
        lv, rv = lv or {}, rv or {}
        for name, unit, k in (("interface energy", "mJ/m^2", "gamma_mJ_m2"),
                              ("strain energy density", "MJ/m^3", "strain_MJ_m3")):
            rows.append(Row(name, unit, lv.get(k, nan), lv.get(f"sigma_{k}", nan), rv.get(k, nan),
                            rv.get(f"sigma_{k}", nan), tol.interface_rel, relative=True))
    elif key == "average_voltage_V":
        rows.append(Row("average voltage (Eq. 31)", "V", _num(lv), nan, _num(rv), nan, tol.voltage_V))
    elif key == "volume_change_percent":
        rows.append(Row("volume change", "%", _num(lv), nan, _num(rv), nan, tol.volume_change_points))
    elif key.startswith("lattice_x"):
        la = np.asarray(lv if lv is not None else (nan,) * 3, float)
        ra = np.asarray(rv if rv is not None else (nan,) * 3, float)
        for i, axis in enumerate("abc"):
            rows.append(Row(f"lattice {axis} at x = {key[len('lattice_x'):-2]}", "A", la[i], nan, ra[i], nan,
                            tol.lattice_A))
    return rows


def _num(v: Any) -> float:
    return float("nan") if v is None else float(v)


def _resolved(run) -> tuple[float, float]:
    if run is None or not run[2]:
        return float("nan"), float("nan")
    return float(run[0]), float(run[1])


def _mu_at(fe: dict[str, Any], x: float) -> tuple[float, float]:
    """mu and its sigma at x (per formula unit) from a free-energy result, NaN outside its sampled range."""
    xs = np.asarray(fe.get("mu_x", ()), float)
    if len(xs) < 2 or not xs.min() <= x <= xs.max():
        return float("nan"), float("nan")
    return (float(np.interp(x, xs, np.asarray(fe["mu_eV"], float))),
            float(np.interp(x, xs, np.asarray(fe["sigma_mu_eV"], float))))


COLUMNS = ("property", "learned", "reference", "difference", "tolerance", "result")


def cells(r: Row) -> list[str]:
    """One row as text, a cell per COLUMNS (the report's table and the report page's)."""
    def fmt(v: float, s: float, absent: str = "n/a") -> str:
        if not np.isfinite(v):
            return absent
        return f"{v:.4g}" + (f" +- {s:.2g}" if np.isfinite(s) else "")

    diff = "n/a" if r.passed is None else (f"x{r.difference:.3g}" if r.ratio else f"{r.difference:+.3g}")
    tol = f"x{r.tolerance:g}" if r.ratio else (f"{r.tolerance:g} rel" if r.relative else f"{r.tolerance:g}")
    return [f"{r.name} ({r.unit})", fmt(r.learned, r.sigma_learned), fmt(r.reference, r.sigma_reference, r.absent),
            diff, tol,
            {True: "pass", False: "FAIL", None: "n/a"}[r.passed]]


def table(rows: list[Row]) -> list[str]:
    """The report's lines: one per row, then the count that passed."""
    widths = (40, 22, 22, 12, 12, 0)
    lines = ["  " + " ".join(f"{c:<{w}}" for c, w in zip(COLUMNS, widths))]
    lines += ["  " + " ".join(f"{c:<{w}}" for c, w in zip(cells(r), widths)) for r in rows]
    lines.append(f"  {summary(rows)}")
    return lines


def summary(rows: list[Row]) -> str:
    judged = [r.passed for r in rows if r.passed is not None]
    return f"{sum(judged)}/{len(judged)} within tolerance ({len(rows) - len(judged)} not comparable)"


def as_numbers(rows: list[Row]) -> dict[str, Any]:
    """For properties.h5: name -> [learned, sigma, reference, sigma, tolerance, passed (1/0/-1 n/a)]."""
    return {r.name: np.array([r.learned, r.sigma_learned, r.reference, r.sigma_reference, r.tolerance,
                              {True: 1, False: 0, None: -1}[r.passed]], float) for r in rows}
