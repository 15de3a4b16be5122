"""PyBaMM parameter sets in and out of the P2D cell (``pbahpc p2d --from-pybamm`` / ``--to-pybamm``).

PyBaMM is optional (``pip install 'pbahpc[test]'``, version in tools/constraints.txt): it is imported
only here, when a conversion is asked for, and its absence is one ConfigError line.

**In** (``cell_file_from_pybamm``): a ``pybamm.ParameterValues`` (a named set, e.g. "Chen2020", or
``module:function`` / ``file.py:function`` returning one) -> the data of a P2D parameter file, Fickian
particles on both sides, isothermal at the set's ambient temperature (where PyBaMM's isothermal DFN
runs), 1C = the nominal capacity, one discharge at 1C to the lower cut-off. Names map as in
``parameter_values`` below. Every function of the set is sampled at that temperature:

- OCP: U_ref(sto) + (T - T_ref) dU/dT(sto), PyBaMM's own temperature correction;
- D(sto, T), D_e(c_e, T), kappa(c_e, T), the thermodynamic factor (c_e, T): at T;
- each becomes ``constant`` (all samples equal), ``polynomial`` (degree <= 6 reproducing the samples
  to 1e-10 relative, e.g. Chen2020's D_e, Marquis2019's kappa) or a PCHIP ``table`` refined where the interpolation
  misses the function by more than ``TABLE_RTOL`` of its scale; the largest error found on points
  between the nodes is reported (absolute and relative to the scale, max |f|);
- j0(c_e, c_s, c_max, T): fitted to the standard form k c_e^a x^b (1 - x)^c exp(-Ea/R (1/T - 1/T0))
  by least squares in the logarithms on a grid of c_e, x and T +- 10 K; the largest relative misfit
  on the grid is reported. PyBaMM's Li-ion sets use this form (Dualfoil's), so the misfit is round-off
  (~1e-11); a j0 the form misses by more than ``J0_RTOL`` is refused with the misfit.

A value the cell cannot hold (a conductivity or t+ that is a function, a non-uniform initial
concentration, another j0 form, a missing key of a non-DFN set) is a one-line error naming PyBaMM's key.

**Out** (``parameter_values``): a ``Cell`` -> a ParameterValues with every parameter PyBaMM's DFN reads
taken from the cell (nothing from a stock set, so a forgotten parameter is a KeyError in PyBaMM, not
a silent Chen2020 value). Translation (same equations, PyBaMM's names):

- c_max = ``formula_units_mol_m3``; PyBaMM's stoichiometry c/c_max is our x (so x_max must be 1).
  Uniform initial c = x_initial * c_max; electrolyte at ``initial_mol_m3``.
- epsilon_s = ``active_fraction`` (a = 3 eps_s / R), porosity, Bruggeman exponents: electrolyte
  eps^b (``bruggeman``), solid (1 - porosity)^b_s (``bruggeman_solid``); transfer coefficient as the
  "Butler-Volmer transfer coefficient" (used by PyBaMM's asymmetric kinetics; ``dfn_options``).
- Isothermal at ``temperature_K`` (ambient = initial = reference temperature, entropic change 0), one
  electrode pair of height 1 m x width ``area_m2``, one cell, 1C = ``one_c_current_density``.
- Functions: an ``ExchangeCurrent`` (the file's j0) becomes PyBaMM's expression of (c_e, c_s, c_max,
  T), a file's ``table`` a PCHIP ``pybamm.Interpolant`` on its nodes, a ``polynomial`` its expression
  (all exact inside the tables' range). Any other callable (a Cell built in Python), in this order:
  ``constant`` (one value on a sample grid -> ``pybamm.Scalar``), ``symbolic`` (calling it on PyBaMM symbols works, numpy ufuncs dispatch to PyBaMM,
  and reproduces the numpy values to 1e-12 -> the callable itself), ``table`` (sampled on a fine grid,
  x in [1e-6, 1 - 1e-6] refined towards both ends, c_e in [0, 4 c_e0], as a cubic-spline
  ``pybamm.Interpolant``; ``table_error`` reports the largest relative error on the grid's midpoints).
  A j0 callable that is not an ExchangeCurrent is translated only where it does not depend on x.
  ``functions={key: callable}`` gives an explicit PyBaMM expression instead: keys ``anode.ocv``,
  ``anode.diffusivity``, ``anode.exchange_current``, the same for ``cathode``, and
  ``electrolyte.diffusivity``, ``.conductivity``, ``.thermodynamic_factor``; all take one argument
  (x or c_e) except ``*.exchange_current``, which takes PyBaMM's (c_e, c_s_surf, c_s_max, T).

``write_pybamm_module`` writes a Python file whose ``parameter_values()`` returns that ParameterValues
for a cell file, usable by PyBaMM scripts and by ``--from-pybamm FILE.py:parameter_values``.
"""
from __future__ import annotations

import importlib
import importlib.util
import inspect
import math
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..config.validate import ConfigError
from .cell import one_c_current_density
from .functions import ExchangeCurrent, Polynomial, Table
from .model import R_GAS_J_MOL_K, Cell, Electrode, FickianParticle

TABLE_RTOL = 1e-6
"""Table refinement target, relative to the function's scale: 4 uV on a 4 V OCP."""
TABLE_MAX_NODES = 4000
POLY_RTOL = 1e-10
J0_RTOL = 1e-6
"""Largest relative misfit of the standard form accepted for a set's j0 (Dualfoil's: ~1e-11)."""
FUNCTION_KEYS = (*(f"{s}.{k}" for s in ("anode", "cathode") for k in ("ocv", "diffusivity", "exchange_current")),
                 *(f"electrolyte.{k}" for k in ("diffusivity", "conductivity", "thermodynamic_factor")))


def import_pybamm(key: str = "--from-pybamm"):
    """pybamm, or one ConfigError line saying how to install it."""
    os.environ.setdefault("PYBAMM_DISABLE_TELEMETRY", "true")  # no network, no opt-in prompt
    try:
        import pybamm
    except ImportError:
        raise ConfigError(key, "needs PyBaMM, which is not installed: pip install 'pbahpc[test]' "
                               "(version in tools/constraints.txt)") from None
    return pybamm


# ---- PyBaMM -> P2D file ---------------------------------------------------------------------------

def _why(exc: Exception) -> str:
    """An exception as one line (a user's module or PyBaMM may raise multi-line messages)."""
    return f"{type(exc).__name__}: {' '.join(str(exc).split())}"


def load_parameter_values(source: str):
    """A ParameterValues from a PyBaMM set name, ``module:function`` or ``path/file.py:function``."""
    pybamm = import_pybamm()
    key = "--from-pybamm"
    if ":" not in source:
        if source not in pybamm.parameter_sets:
            raise ConfigError(key, f"unknown PyBaMM parameter set {source!r}; allowed: "
                                   f"{', '.join(sorted(pybamm.parameter_sets))}, or module:function")
        return pybamm.ParameterValues(source)
    where, _, name = source.rpartition(":")
    try:
        if where.endswith(".py"):
            spec = importlib.util.spec_from_file_location(Path(where).stem, where)
            if spec is None or not Path(where).is_file():
                raise ImportError(f"no file {where}")
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
        else:
            if "" not in sys.path:
                sys.path.insert(0, "")  # a module next to the user, as `python -c` would find it
            module = importlib.import_module(where)
    except Exception as exc:  # noqa: BLE001 - whatever the user's module raises, one line
        raise ConfigError(key, f"cannot import {where!r}: {_why(exc)}") from None
    fn = getattr(module, name, None)
    if not callable(fn):
        raise ConfigError(key, f"{where!r} has no function {name!r}")
    try:
        values = fn()
    except Exception as exc:  # noqa: BLE001
        raise ConfigError(key, f"{source}() failed: {_why(exc)}") from None
    if not isinstance(values, pybamm.ParameterValues):
        raise ConfigError(key, f"{source}() returned {type(values).__name__}, not a pybamm.ParameterValues")
    return values


def _value(pv, key: str):
    if key not in pv.keys():
        raise ConfigError(key, "missing from the PyBaMM parameter set (pbahpc converts lithium-ion DFN sets)")
    return pv[key]


def _scalar(pv, key: str, default: float | None = None) -> float:
    if default is not None and key not in pv.keys():
        return default
    value = _value(pv, key)
    if isinstance(value, (int, float)):
        return float(value)
    if callable(value):
        raise ConfigError(key, "is a function in the PyBaMM set; pbahpc's P2D file takes a number here")
    try:
        return float(np.asarray(pv.evaluate(value)).ravel()[0])
    except Exception as exc:  # noqa: BLE001 - an expression of states (e.g. x-dependent), not a number
        raise ConfigError(key, f"is not a constant ({type(exc).__name__}); pbahpc's P2D file takes a number here") from None


def _sampler(pv, key: str, call: Callable) -> Callable[[np.ndarray], np.ndarray]:
    """numpy f(v) of PyBaMM's function ``key``, ``call(fn, symbol)`` applying it to a Vector."""
    pybamm = import_pybamm()
    value = _value(pv, key)

    def f(v):
        v = np.asarray(v, dtype=float)
        if isinstance(value, (int, float)):
            return np.full(v.shape, float(value))
        try:
            expr = call(value, pybamm.Vector(v.ravel())) if callable(value) else value
            # a function that ignores its input returns a scalar: broadcast it
            y = pv.evaluate(expr * pybamm.Vector(np.ones(v.size)))
        except Exception as exc:  # noqa: BLE001 - e.g. another model's signature (lead-acid's D_e(c_e))
            raise ConfigError(key, f"cannot be evaluated as PyBaMM's lithium-ion DFN calls it "
                                   f"({_why(exc)})") from None
        return np.asarray(y, dtype=float).reshape(v.shape)
    return f


def function_spec(f: Callable[[np.ndarray], np.ndarray], nodes: np.ndarray, name: str) -> tuple[dict, dict]:
    """A P2D-file function spec for f on [nodes[0], nodes[-1]] (constant, exact polynomial or PCHIP
    table refined from ``nodes``) and its report {kind, nodes, max_abs_error, max_rel_error}."""
    from scipy.interpolate import PchipInterpolator

    check = np.unique(np.concatenate([nodes, np.linspace(nodes[0], nodes[-1], 4001)]))
    y = f(check)
    if not np.all(np.isfinite(y)):
        bad = check[~np.isfinite(y)][0]
        raise ConfigError(name, f"not finite at {bad:g} (sampled on [{check[0]:g}, {check[-1]:g}])")
    scale = max(float(np.max(np.abs(y))), 1e-300)
    if np.all(y == y[0]):
        return {"constant": float(y[0])}, {"kind": "constant", "nodes": 1, "max_abs_error": 0.0, "max_rel_error": 0.0}
    for degree in range(1, 7):
        poly = np.polynomial.Polynomial.fit(check, y, degree).convert()
        err = float(np.max(np.abs(poly(check) - y)))
        if err <= POLY_RTOL * scale:
            return ({"polynomial": [float(c) for c in poly.coef]},
                    {"kind": "polynomial", "nodes": degree + 1, "max_abs_error": err, "max_rel_error": err / scale})
    x = np.asarray(nodes, dtype=float)
    yx = f(x)
    while True:  # bisect every interval whose midpoint the interpolant misses
        mid = 0.5 * (x[1:] + x[:-1])
        miss = np.abs(PchipInterpolator(x, yx)(mid) - f(mid)) > TABLE_RTOL * scale
        if not miss.any() or x.size + miss.sum() > TABLE_MAX_NODES:
            break
        x = np.concatenate([x, mid[miss]])
        order = np.argsort(x)
        x, yx = x[order], np.concatenate([yx, f(mid[miss])])[order]
    # the error on points the refinement did not look at: quarter points of every interval
    probe = np.concatenate([x[:-1] + 0.25 * np.diff(x), x[:-1] + 0.75 * np.diff(x), check])
    err = float(np.max(np.abs(PchipInterpolator(x, yx)(probe) - f(probe))))
    return ({"table": {"x": [float(v) for v in x], "y": [float(v) for v in yx]}},
            {"kind": "table", "nodes": int(x.size), "max_abs_error": err, "max_rel_error": err / scale})


def _sto_nodes() -> np.ndarray:
    ends = np.geomspace(1e-6, 0.02, 12)
    return np.unique(np.concatenate([ends, np.linspace(0.02, 0.98, 49), 1.0 - ends]))


def fit_exchange_current(pv, key: str, c_max: float, ce0: float, T: float) -> tuple[dict, dict]:
    """PyBaMM's j0(c_e, c_s, c_max, T) as the file's ``exchange_current: {form: standard, ...}``
    (T_ref_K = T, so k is j0's prefactor at the cell's temperature) and the largest relative misfit."""
    pybamm = import_pybamm()
    fn = _value(pv, key)
    ce, x = np.meshgrid(ce0 * np.geomspace(0.05, 3.0, 9), np.linspace(0.02, 0.98, 13))
    ce, x = ce.ravel(), x.ravel()
    temps = (T - 10.0, T, T + 10.0)
    rows, logs = [], []
    for Tk in temps:
        try:
            expr = fn(pybamm.Vector(ce), pybamm.Vector(x * c_max), pybamm.Scalar(c_max), pybamm.Scalar(Tk))
            j0 = np.asarray(pv.evaluate(expr * pybamm.Vector(np.ones(ce.size))), dtype=float).ravel()
        except Exception as exc:  # noqa: BLE001
            raise ConfigError(key, f"cannot be evaluated as PyBaMM's lithium-ion DFN calls it "
                                   f"({_why(exc)})") from None
        if not np.all(j0 > 0):
            raise ConfigError(key, f"not positive on c_e in [{ce.min():.3g}, {ce.max():.3g}] mol/m^3, sto in [0.02, 0.98]")
        rows.append(np.column_stack([np.ones_like(ce), np.log(ce), np.log(x), np.log1p(-x),
                                     np.full_like(ce, -(1.0 / Tk - 1.0 / T) / R_GAS_J_MOL_K)]))
        logs.append(np.log(j0))
    A, b = np.vstack(rows), np.concatenate(logs)
    coef = np.linalg.lstsq(A, b, rcond=None)[0]
    # exponents and Ea as fitted, snapped to round-off of a simple value (0.5 stays 0.5, not 0.5000000001)
    snapped = [s if abs(v - (s := float(f"{v:.9g}"))) < 1e-9 * max(1.0, abs(v)) else v for v in coef[1:]]
    expo = [max(v, 0.0) for v in snapped]  # the schema's exponents and Ea are >= 0
    ln_k = float(np.mean(b - A[:, 1:] @ np.asarray(expo)))
    misfit = float(np.max(np.abs(np.expm1(ln_k + A[:, 1:] @ np.asarray(expo) - b))))
    if misfit > J0_RTOL:
        raise ConfigError(key, f"is not of the standard form k c_e^a x^b (1 - x)^c exp(-Ea/R (1/T - 1/T0)) that "
                               f"pbahpc's cell holds: the best fit misses it by {misfit:.2g} (relative) on c_e in "
                               f"[{ce.min():.3g}, {ce.max():.3g}] mol/m^3, sto in [0.02, 0.98], T +- 10 K")
    a_, b_, c_, Ea = expo
    spec = {"form": "standard", "k_A_m2": float(math.exp(ln_k)), "a": float(a_), "b": float(b_), "c": float(c_),
            "Ea_J_mol": float(Ea), "T_ref_K": float(T)}
    return spec, {"kind": "standard form", "nodes": int(b.size), "max_abs_error": float("nan"),
                  "max_rel_error": misfit}


def _ocp(pv, Domain: str, T: float, T_ref: float) -> Callable:
    u = _sampler(pv, f"{Domain} electrode OCP [V]", lambda fn, s: fn(s))
    key = f"{Domain} electrode OCP entropic change [V.K-1]"
    if T == T_ref or key not in pv.keys():
        return u
    c_max = _scalar(pv, f"Maximum concentration in {Domain.lower()} electrode [mol.m-3]")
    pybamm = import_pybamm()
    dudt = _sampler(pv, key, lambda fn, s: fn(s) if len(inspect.signature(fn).parameters) == 1
                    else fn(s, pybamm.Scalar(c_max)))
    return lambda v: u(v) + (T - T_ref) * dudt(v)


def cell_file_from_pybamm(pv, *, cells_x: int = 10, cells_r: int = 20, cells_x_separator: int = 5,
                          temperature_K: float | None = None) -> tuple[dict, dict[str, dict]]:
    """(data of a P2D parameter file, report per converted function: kind, nodes, errors) for a
    ParameterValues; ``temperature_K`` defaults to the set's ambient temperature."""
    pybamm = import_pybamm()
    T = _scalar(pv, "Ambient temperature [K]") if temperature_K is None else float(temperature_K)
    T_ref = _scalar(pv, "Reference temperature [K]")
    Ts = pybamm.Scalar(T)
    ce0 = _scalar(pv, "Initial concentration in electrolyte [mol.m-3]")
    report: dict[str, dict] = {}

    def convert(name: str, f: Callable, nodes: np.ndarray) -> dict:
        spec, report[name] = function_spec(f, nodes, name)
        return spec

    def electrode(side: str, D: str) -> dict:
        d = D.lower()
        c_max = _scalar(pv, f"Maximum concentration in {d} electrode [mol.m-3]")
        c0 = _value(pv, f"Initial concentration in {d} electrode [mol.m-3]")
        if callable(c0):
            raise ConfigError(f"Initial concentration in {d} electrode [mol.m-3]",
                              "is a function of position; pbahpc's x_initial is one number per electrode")
        j0_key = f"{D} electrode exchange-current density [A.m-2]"
        j0, report[f"{side}.exchange_current"] = fit_exchange_current(pv, j0_key, c_max, ce0, T)
        return {
            "thickness_m": _scalar(pv, f"{D} electrode thickness [m]"),
            "porosity": _scalar(pv, f"{D} electrode porosity"),
            "active_fraction": _scalar(pv, f"{D} electrode active material volume fraction"),
            "particle_radius_m": _scalar(pv, f"{D} particle radius [m]"),
            "formula_units_mol_m3": c_max,
            "x_initial": _scalar(pv, f"Initial concentration in {d} electrode [mol.m-3]") / c_max,
            "conductivity_S_m": _scalar(pv, f"{D} electrode conductivity [S.m-1]"),
            "bruggeman": _scalar(pv, f"{D} electrode Bruggeman coefficient (electrolyte)"),
            "bruggeman_solid": _scalar(pv, f"{D} electrode Bruggeman coefficient (electrode)"),
            # PyBaMM's default DFN kinetics is symmetric: alpha = 1/2 whatever the set says elsewhere
            "transfer_coefficient": 0.5,
            "exchange_current": j0,
            "cells_x": cells_x, "cells_r": cells_r,
            "particle": {
                "model": "fickian",
                "ocv_V": convert(f"{side}.ocv_V", _ocp(pv, D, T, T_ref), _sto_nodes()),
                "diffusivity_m2_s": convert(f"{side}.diffusivity_m2_s", _sampler(
                    pv, f"{D} particle diffusivity [m2.s-1]", lambda fn, s: fn(s, Ts)), _sto_nodes())},
        }

    def ce_nodes(f):  # PyBaMM evaluates D_e and kappa at max(c_e, 10 mol/m^3): start there if f(0) is not finite
        with np.errstate(all="ignore"):
            at_zero = f(np.zeros(1))[0]
        return np.linspace(0.0 if np.isfinite(at_zero) else 10.0, 4.0 * ce0, 41)

    electrolyte = {
        "initial_mol_m3": ce0,
        "transference_number": _scalar(pv, "Cation transference number"),
    }
    for key, name in (("diffusivity_m2_s", "Electrolyte diffusivity [m2.s-1]"),
                      ("conductivity_S_m", "Electrolyte conductivity [S.m-1]"),
                      ("thermodynamic_factor", "Thermodynamic factor")):
        f = _sampler(pv, name, lambda fn, s: fn(s, Ts))
        electrolyte[key] = convert(f"electrolyte.{key}", f, ce_nodes(f))
    n_parallel = _scalar(pv, "Number of electrodes connected in parallel to make a cell", 1.0)
    data = {
        "cell": {"temperature_K": T,
                 "area_m2": _scalar(pv, "Electrode height [m]") * _scalar(pv, "Electrode width [m]") * n_parallel,
                 "capacity_Ah": _scalar(pv, "Nominal cell capacity [A.h]")},
        "anode": electrode("anode", "Negative"),
        "separator": {"thickness_m": _scalar(pv, "Separator thickness [m]"),
                      "porosity": _scalar(pv, "Separator porosity"),
                      "bruggeman": _scalar(pv, "Separator Bruggeman coefficient (electrolyte)"),
                      "cells_x": cells_x_separator},
        "cathode": electrode("cathode", "Positive"),
        "electrolyte": electrolyte,
        "protocol": [{"discharge": {"c_rate": 1.0, "until_V": _scalar(pv, "Lower voltage cut-off [V]")}}],
        "solver": {"rtol": 1e-7},
    }
    return data, report


def report_lines(report: dict[str, dict]) -> list[str]:
    """One line per converted function: how, on how many nodes, and its largest error."""
    lines = []
    for name, r in report.items():
        if r["kind"] == "standard form":
            what = f"standard form fitted on {r['nodes']} points, max relative misfit {r['max_rel_error']:.2g}"
        elif r["kind"] == "constant":
            what = "constant (exact)"
        else:
            what = (f"{r['kind']} ({r['nodes']} {'nodes' if r['kind'] == 'table' else 'coefficients'}), "
                    f"max error {r['max_abs_error']:.3g} ({r['max_rel_error']:.2g} of max |f|)")
        lines.append(f"{name}: {what}")
    return lines


def write_cell_file(data: dict, report: dict[str, dict], out: Path, source: str) -> None:
    """The P2D file with a header saying where it came from and how each function was converted."""
    import yaml

    pybamm = import_pybamm()
    head = [f"P2D cell converted from PyBaMM ParameterValues {source!r} (pybamm {pybamm.__version__})",
            "by pbahpc p2d --from-pybamm: isothermal at the set's ambient temperature, Fickian particles,",
            "1C = nominal capacity. Functions sampled at that temperature; errors are on points between nodes:",
            *(f"  {line}" for line in report_lines(report))]
    text = yaml.safe_dump(data, sort_keys=False, default_flow_style=None, width=120)
    out.write_text("".join(f"# {h}\n" for h in head) + "\n" + text)


# ---- Cell -> PyBaMM -------------------------------------------------------------------------------

def stoichiometry_grid() -> np.ndarray:
    """Sample points in x for tabulated functions: 2001 uniform, refined geometrically to 1e-6 at both ends."""
    ends = np.geomspace(1e-6, 5e-3, 60)
    return np.unique(np.concatenate([ends, np.linspace(5e-3, 1 - 5e-3, 2001), 1.0 - ends]))


def _translate(fn: Callable, grid: np.ndarray, name: str) -> tuple[Callable, str, float]:
    """(callable of PyBaMM symbols, kind, table error) for a numpy callable of one variable."""
    pybamm = import_pybamm("--to-pybamm")
    cname = name.replace(".", "_")  # CasADi function names: letters, digits, single underscores
    if isinstance(fn, Table):  # a file's table: PyBaMM's PCHIP on the same nodes is the same function inside them
        return (lambda s: pybamm.Interpolant(fn.x, fn.y, s, name=cname, interpolator="pchip")), "pchip", 0.0
    if isinstance(fn, Polynomial):
        coef = [float(c) for c in fn.poly.coef]
        return (lambda s: sum(c * s**i for i, c in enumerate(coef[1:], 1)) + coef[0]), "polynomial", 0.0
    y = np.broadcast_to(np.asarray(fn(grid), dtype=float), grid.shape)
    if not np.all(np.isfinite(y)):
        raise ValueError(f"{name} is not finite on [{grid[0]:g}, {grid[-1]:g}]")
    if np.all(y == y[0]):
        value = float(y[0])
        return (lambda s: pybamm.Scalar(value)), "constant", 0.0
    try:
        expr = fn(pybamm.Vector(grid))
        probe = fn(pybamm.Variable("probe"))
        if isinstance(expr, pybamm.Symbol) and isinstance(probe, pybamm.Symbol):
            values = np.asarray(expr.evaluate(), dtype=float).ravel()
            if values.shape == y.shape and np.allclose(values, y, rtol=1e-12, atol=0.0):
                return fn, "symbolic", 0.0
    except Exception:  # noqa: BLE001, S110 - anything numpy-only falls back to a table
        pass
    from scipy.interpolate import CubicSpline

    mid = 0.5 * (grid[1:] + grid[:-1])
    spline = CubicSpline(grid, y)
    scale = max(float(np.max(np.abs(y))), 1e-300)
    err = float(np.max(np.abs(spline(mid) - np.asarray(fn(mid), dtype=float))) / scale)
    ys = np.ascontiguousarray(y)
    return (lambda s: pybamm.Interpolant(grid, ys, s, name=cname, interpolator="cubic")), "table", err


def _exchange_current_expression(j0: ExchangeCurrent) -> Callable:
    """The file's j0 as PyBaMM's (c_e, c_s_surf, c_s_max, T) expression (c_s / c_max = x, x_max = 1)."""
    if j0.x_max != 1.0:
        raise ValueError(f"x_max = {j0.x_max:g}: PyBaMM's stoichiometry needs 1")
    pybamm = import_pybamm("--to-pybamm")

    def expression(c_e, c_s, c_max, T):
        out = j0.k * (c_e / j0.c_ref) ** j0.a
        if j0.b or j0.c:  # PyBaMM's own form, c_s^b (c_max - c_s)^c: its RegPower then smooths the same bases
            out = out * c_s ** j0.b * (c_max - c_s) ** j0.c / c_max ** (j0.b + j0.c)
        if j0.Ea:
            out = out * pybamm.exp(-j0.Ea / R_GAS_J_MOL_K * (1.0 / T - 1.0 / j0.T_ref))
        return out
    return expression


def _j0_of_ce(e: Electrode, T_K: float) -> Callable | None:
    """A j0(c_e, x, T) callable as a function of c_e alone at T, or None if it depends on x."""
    ce = np.linspace(0.0, 4000.0, 41)
    at = [np.asarray(e.exchange_current_A_m2(ce, np.full_like(ce, f * e.x_max), T_K), float) for f in (0.2, 0.5, 0.8)]
    if not all(np.array_equal(np.broadcast_to(a, ce.shape), np.broadcast_to(at[0], ce.shape)) for a in at):
        return None
    return lambda c_e: e.exchange_current_A_m2(c_e, 0.5 * e.x_max, T_K)


def _electrode_parameters(e: Electrode, Domain: str, name: str, ce_grid: np.ndarray, T_K: float,
                          functions: dict[str, Callable], kinds: dict, errors: dict) -> dict[str, Any]:
    if not isinstance(e.particle, FickianParticle):
        raise ConfigError(f"{name}.particle.model", "PyBaMM's DFN needs fickian particles, got "
                                                    f"{type(e.particle).__name__}")
    if e.sizes is not None:
        raise ConfigError(f"{name}.particle_sizes", "PyBaMM's DFN here has one particle size: give particle_radius_m")
    if e.x_max != 1.0:
        raise ConfigError(f"{name}.x_max", f"PyBaMM's stoichiometry c/c_max is in [0, 1]: needs 1, got {e.x_max:g}")
    fns = {}
    for key, fn, grid in (("ocv", e.particle.ocv_V, stoichiometry_grid()),
                          ("diffusivity", e.particle.diffusivity_m2_s, stoichiometry_grid())):
        full = f"{name}.{key}"
        if full in functions:
            fns[key], kinds[full], errors[full] = functions[full], "explicit", 0.0
        else:
            fns[key], kinds[full], errors[full] = _translate(fn, grid, full)
    full = f"{name}.exchange_current"
    if full in functions:
        j0, kinds[full], errors[full] = functions[full], "explicit", 0.0
    elif isinstance(e.exchange_current_A_m2, ExchangeCurrent):
        j0, kinds[full], errors[full] = _exchange_current_expression(e.exchange_current_A_m2), "symbolic", 0.0
    elif (of_ce := _j0_of_ce(e, T_K)) is not None:
        translated, kinds[full], errors[full] = _translate(of_ce, ce_grid, full)

        def j0(c_e, c_s, c_max, T, _of_ce=translated):
            return _of_ce(c_e)
    else:
        raise ValueError(f"{full} depends on the surface stoichiometry: pass functions={{{full!r}: "
                         "callable(c_e, c_s_surf, c_s_max, T)}")
    ocv, diff = fns["ocv"], fns["diffusivity"]
    domain = Domain.lower()
    return {
        f"{Domain} electrode thickness [m]": e.thickness_m,
        f"{Domain} electrode porosity": e.porosity,
        f"{Domain} electrode active material volume fraction": e.active_fraction,
        f"{Domain} particle radius [m]": e.particle_radius_m,
        f"Maximum concentration in {domain} electrode [mol.m-3]": e.formula_units_mol_m3,
        f"Initial concentration in {domain} electrode [mol.m-3]": e.x_initial * e.formula_units_mol_m3,
        f"{Domain} electrode conductivity [S.m-1]": e.conductivity_S_m,
        f"{Domain} electrode Bruggeman coefficient (electrolyte)": e.bruggeman,
        f"{Domain} electrode Bruggeman coefficient (electrode)": e.bruggeman_solid,
        f"{Domain} electrode Butler-Volmer transfer coefficient": e.transfer_coefficient,
        f"{Domain} electrode OCP [V]": lambda sto: ocv(sto),
        f"{Domain} electrode OCP entropic change [V.K-1]": 0.0,
        f"{Domain} particle diffusivity [m2.s-1]": lambda sto, T: diff(sto),
        f"{Domain} electrode exchange-current density [A.m-2]": j0,
    }


def dfn_options(cell: Cell) -> dict[str, str]:
    """PyBaMM DFN options for the cell's equations: isothermal, no contact resistance, and symmetric
    Butler-Volmer (2 j0 sinh(F eta / 2RT)) when both transfer coefficients are 1/2."""
    kinetics = ("symmetric Butler-Volmer"
                if cell.anode.transfer_coefficient == 0.5 and cell.cathode.transfer_coefficient == 0.5
                else "asymmetric Butler-Volmer")
    return {"intercalation kinetics": kinetics, "thermal": "isothermal", "contact resistance": "false",
            "surface form": "false"}


def parameter_values(cell: Cell, current_A: float, cutoff_V: float, *, upper_V: float = 100.0,
                     functions: dict[str, Callable] | None = None):
    """(ParameterValues with every parameter PyBaMM's DFN reads taken from ``cell``,
    {"functions": kind per function, "table_error": relative spline error per function})."""
    pybamm = import_pybamm("--to-pybamm")
    functions = dict(functions or {})
    if unknown := set(functions) - set(FUNCTION_KEYS):
        raise KeyError(f"unknown function keys {sorted(unknown)}; known: {sorted(FUNCTION_KEYS)}")
    el, T = cell.electrolyte, cell.temperature_K
    ce_grid = np.linspace(0.0, 4.0 * el.initial_mol_m3, 4001)
    kinds: dict[str, str] = {}
    errors: dict[str, float] = {}
    electrolyte = {}
    for key, fn in (("diffusivity", el.diffusivity_m2_s), ("conductivity", el.conductivity_S_m),
                    ("thermodynamic_factor", el.thermodynamic_factor)):
        full = f"electrolyte.{key}"
        if full in functions:
            electrolyte[key], kinds[full], errors[full] = functions[full], "explicit", 0.0
        else:
            electrolyte[key], kinds[full], errors[full] = _translate(fn, ce_grid, full)
    values = {
        # geometry: one electrode pair of area height x width, one cell
        "Electrode height [m]": 1.0,
        "Electrode width [m]": cell.area_m2,
        "Number of electrodes connected in parallel to make a cell": 1.0,
        "Number of cells connected in series to make a battery": 1.0,
        "Separator thickness [m]": cell.separator.thickness_m,
        "Separator porosity": cell.separator.porosity,
        "Separator Bruggeman coefficient (electrolyte)": cell.separator.bruggeman,
        # isothermal at the cell's temperature
        "Reference temperature [K]": T,
        "Ambient temperature [K]": T,
        "Initial temperature [K]": T,
        # electrolyte
        "Initial concentration in electrolyte [mol.m-3]": el.initial_mol_m3,
        "Cation transference number": el.transference_number,
        "Electrolyte diffusivity [m2.s-1]": lambda c_e, T_: electrolyte["diffusivity"](c_e),
        "Electrolyte conductivity [S.m-1]": lambda c_e, T_: electrolyte["conductivity"](c_e),
        "Thermodynamic factor": lambda c_e, T_: electrolyte["thermodynamic_factor"](c_e),
        # operation
        "Nominal cell capacity [A.h]": one_c_current_density(cell) * cell.area_m2,  # 1C in A = capacity in A.h
        "Current function [A]": current_A,
        "Lower voltage cut-off [V]": cutoff_V if current_A >= 0 else -upper_V,
        "Upper voltage cut-off [V]": upper_V if current_A >= 0 else cutoff_V,
    }
    values |= _electrode_parameters(cell.anode, "Negative", "anode", ce_grid, T, functions, kinds, errors)
    values |= _electrode_parameters(cell.cathode, "Positive", "cathode", ce_grid, T, functions, kinds, errors)
    return pybamm.ParameterValues(values), {"functions": kinds, "table_error": errors}


def parameter_values_of_file(path: str | Path):
    """The ParameterValues of a P2D cell file: 1C current ("Current function [A]" = the nominal
    capacity), cut-offs from the protocol's first discharge / charge ``until_V`` (else 0 / 100 V)."""
    from .parameters import load_parameters

    ps = load_parameters(path)
    lower = next((s.cutoff_V for s in ps.protocol if s.label == "discharge" and s.cutoff_V), 0.0)
    upper = next((s.cutoff_V for s in ps.protocol if s.label == "charge" and s.cutoff_V), 100.0)
    try:
        values, _ = parameter_values(ps.cell, one_c_current_density(ps.cell) * ps.cell.area_m2, lower, upper_V=upper)
    except ConfigError as exc:
        raise ConfigError(exc.key, exc.problem, str(path)) from None
    return values


MODULE_TEMPLATE = '''"""PyBaMM ParameterValues of the pbahpc P2D cell file {path} (written by pbahpc p2d --to-pybamm).

    import pybamm
    from {stem} import parameter_values, OPTIONS
    sim = pybamm.Simulation(pybamm.lithium_ion.DFN(OPTIONS), parameter_values=parameter_values())

or back into a cell file: pbahpc p2d --from-pybamm {out}:parameter_values OUT.yaml. The values are read
from the cell file when called (edit that file, not this one).
"""
from pbahpc.continuum.pybamm_io import parameter_values_of_file

OPTIONS = {options!r}


def parameter_values():
    return parameter_values_of_file({path!r})
'''


def write_pybamm_module(cell_path: Path, out: Path) -> None:
    from .parameters import load_parameters

    cell = load_parameters(cell_path).cell
    parameter_values_of_file(cell_path)  # every error now, not when the user first calls it
    out.write_text(MODULE_TEMPLATE.format(path=str(Path(cell_path).resolve()), stem=out.stem, out=out,
                                          options=dfn_options(cell)))


# ---- command line (pbahpc p2d --from-pybamm / --to-pybamm) ---------------------------------------

def _writable(out: Path) -> None:
    if not out.parent.is_dir():
        raise ConfigError(str(out), f"cannot write: no directory {out.parent}")


def from_pybamm_main(source: str, out: Path, cells_x: int = 10, cells_r: int = 20) -> int:
    """Convert, print the conversion report, write OUT (only when everything converted). Exit code."""
    try:
        for key, n, least in (("--cells-x", cells_x, 2), ("--cells-r", cells_r, 3)):
            if n < least:
                raise ConfigError(key, f"must be >= {least}, got {n}")
        _writable(out)
        data, report = cell_file_from_pybamm(load_parameter_values(source), cells_x=cells_x, cells_r=cells_r,
                                             cells_x_separator=max(2, cells_x // 2))
    except ConfigError as exc:
        print(f"pbahpc p2d: {exc}" if exc.key.startswith("--") else f"pbahpc p2d: {source}: {exc}", file=sys.stderr)
        return 2
    write_cell_file(data, report, out, source)
    for line in report_lines(report):
        print(f"[p2d] {line}", file=sys.stderr)
    print(f"[p2d] {source} -> {out}: run it with pbahpc p2d {out} --out DIR", file=sys.stderr)
    return 0


def to_pybamm_main(cell_path: Path, out: Path) -> int:
    if out.suffix != ".py":
        print(f"pbahpc p2d: --to-pybamm: {out}: must be a .py file (a module with parameter_values())", file=sys.stderr)
        return 2
    try:
        _writable(out)
        write_pybamm_module(cell_path, out)
    except ConfigError as exc:
        print(f"pbahpc p2d: {exc}", file=sys.stderr)
        return 2
    print(f"[p2d] {cell_path} -> {out}: parameter_values() and OPTIONS for pybamm.lithium_ion.DFN", file=sys.stderr)
    return 0
