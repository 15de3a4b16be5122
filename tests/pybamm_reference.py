"""PyBaMM's DFN as the reference for pbahpc's pseudo-2D cell solver (Fickian particles on both sides).

``pybamm_dfn(cell, c_rate, cutoff_V)`` builds ``pybamm.lithium_ion.DFN()`` with a ``ParameterValues``
filled only from the ``Cell`` (no parameter set is loaded, so a parameter this module forgot raises a
``KeyError`` inside PyBaMM instead of silently taking a Chen2020 value), runs one constant-current step
to the voltage cutoff with ``IDAKLUSolver`` and returns the voltage curve and the timings.

Translation of the Cell (same equations, PyBaMM's names):

- c_max = ``formula_units_mol_m3``; PyBaMM's stoichiometry c/c_max is our x. Uniform initial
  c = x_initial * c_max in every particle; electrolyte at ``initial_mol_m3``.
- epsilon_s = ``active_fraction`` (so a = 3 eps_s / R), porosity = ``porosity``, Bruggeman
  exponents: electrolyte eps^b (``bruggeman``), solid (1 - porosity)^b_s (``bruggeman_solid``).
- Butler-Volmer: "symmetric Butler-Volmer" (2 j0 sinh(F eta / 2RT), ne = 1) when both transfer
  coefficients are 0.5, else "asymmetric Butler-Volmer" with the electrode's alpha. Our j0(c_e, x, T)
  is translated only where it does not depend on x (evaluated at the cell's T); a j0 of the surface
  stoichiometry is given explicitly in PyBaMM's own form (below), e.g. a parameter set's function.
- Electrolyte: D_e(c_e), kappa(c_e), constant t+, ``Thermodynamic factor`` = our TF(c_e).
- Isothermal at ``temperature_K`` (ambient = initial = reference temperature, entropic OCP change 0),
  one electrode pair, one cell in series, electrode height x width = ``area_m2``, no contact
  resistance, uniform current collectors.
- Current = c_rate x 1C x area, 1C in A/m^2 = capacity_Ah / area_m2, or, with ``capacity_Ah`` None,
  the cathode's charge between x_initial and the farther end of ``x_window`` (see ``one_c_A_m2``).

Our functions are numpy callables and PyBaMM needs expression trees. Each one is translated, in
this order (the result's ``functions`` entry says which way each one went):

1. ``constant``: the callable returns one value on a sample grid -> ``pybamm.Scalar`` (exact);
2. ``symbolic``: calling it on a PyBaMM symbol works (``np.exp``, ``np.sqrt``, arithmetic... dispatch
   to PyBaMM through ``__array_ufunc__``) and reproduces the numpy values on the grid to 1e-12
   -> the callable itself (exact);
3. ``table``: otherwise (``np.interp``, ``np.where``...) it is sampled on a fine grid and passed as a
   cubic-spline ``pybamm.Interpolant`` (x in [1e-6, 1 - 1e-6], refined towards both ends; c_e in
   [0, 4 c_e0]); the result's ``table_error`` reports the largest interpolation error on the grid's
   midpoints.

An explicit PyBaMM expression can be given per function with ``functions={key: callable}``, the
callable taking and returning PyBaMM symbols; keys ``anode.ocv``, ``anode.diffusivity``,
``anode.exchange_current``, the same for ``cathode``, and ``electrolyte.diffusivity``,
``electrolyte.conductivity``, ``electrolyte.thermodynamic_factor``. All take one argument (x or c_e)
except ``*.exchange_current``, which takes PyBaMM's (c_e, c_s_surf, c_s_max, T).

Where PyBaMM's DFN differs from our equations (they cannot be switched off):

- OCP: U(x) + U_asymptotes(x) (``parameters/lithium_ion_parameters.py``), a barrier of 1 mV at x =
  0.001 and 0.999, < 1 uV for x in [0.002, 0.998]; x is clipped to [1e-10, 1 - 1e-10] in U and D.
- A ``sqrt``/``**`` of a state in j0 is replaced by ``RegPower`` (delta 1e-3 on the base's scale):
  sqrt(c_e/c_ref) is off by 2.5e-7 relative at c_e = c_ref, 0.25 % at c_e = 0.01 c_ref.
- D_e and kappa are evaluated at max(c_e, 10 mol/m^3), the c_e in the ln c_e term at max(c_e, 0.01).
- Discretisation, not equations: the particle surface concentration is linearly extrapolated from
  the two outermost cell centres, c_N + (c_N - c_N-1)/2, ignoring the flux condition
  (``surface_extrapolation='linear'``, PyBaMM's default; ``'quadratic'``: three points, ``'constant'``:
  c_N). PyBaMM cannot use the flux condition for it (c_N + (dr/2) dc/dr|_R, what pbahpc's
  particle.py does): FiniteVolume's ``"use bcs"`` option is silently ignored for c_s because its
  boundary condition contains j(c_surf) and is discretised before the condition exists. The two
  differ by ~dr^2 c''/2. Face values of eps^b D_e, of D(x) in the particle and of sigma_eff are
  harmonic means of the neighbouring cells; kappa_eff in i_e is interpolated linearly in x (it
  multiplies a sum of gradients, not a gradient), which matters at the electrode|separator faces.
  The voltage is phi_s of the cathode extrapolated linearly from its last two cells (the collector's
  Neumann condition is not used), an O(dx^2 a j / sigma_eff) difference.
"""
from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np

os.environ.setdefault("PYBAMM_DISABLE_TELEMETRY", "true")  # no network, no opt-in prompt

import pybamm  # noqa: E402

from pbahpc.continuum.model import FARADAY_C_MOL, Cell, Electrode, FickianParticle  # noqa: E402

POINT_KEYS = ("x_n", "x_s", "x_p", "r_n", "r_p")
SURFACE_EXTRAPOLATION = {
    "linear": {"order": {"value": "linear", "gradient": "quadratic"}, "use bcs": False},
    "quadratic": {"order": {"value": "quadratic", "gradient": "quadratic"}, "use bcs": False},
    "constant": {"order": {"value": "constant", "gradient": "quadratic"}, "use bcs": False},
}


def one_c_A_m2(cell: Cell) -> float:
    """1C current density (A/m^2): capacity_Ah / area_m2, or the cathode's charge between x_initial
    and the farther end of x_window, F * formula_units * active_fraction * thickness * dx / 3600 s."""
    if cell.capacity_Ah is not None:
        return cell.capacity_Ah / cell.area_m2
    p = cell.cathode
    dx = max(abs(cell.x_window[0] - p.x_initial), abs(cell.x_window[1] - p.x_initial))
    return FARADAY_C_MOL * p.formula_units_mol_m3 * p.active_fraction * p.thickness_m * dx / 3600.0


def cell_points(cell: Cell) -> dict[str, int]:
    """The Cell's own mesh (cells_x, cells_r) as PyBaMM var_pts, for ``points=``."""
    return {"x_n": cell.anode.cells_x, "x_s": cell.separator.cells_x, "x_p": cell.cathode.cells_x,
            "r_n": cell.anode.cells_r, "r_p": cell.cathode.cells_r}


def _stoichiometry_grid() -> np.ndarray:
    ends = np.geomspace(1e-6, 5e-3, 60)
    return np.unique(np.concatenate([ends, np.linspace(5e-3, 1 - 5e-3, 2001), 1.0 - ends]))


def _translate(fn: Callable, grid: np.ndarray, name: str) -> tuple[Callable, str, float]:
    """(callable of PyBaMM symbols, kind, table error) for a numpy callable of one variable."""
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
    cname = name.replace(".", "_")  # CasADi function names: letters, digits, single underscores
    return (lambda s: pybamm.Interpolant(grid, ys, s, name=cname, interpolator="cubic")), "table", err


def _electrode_parameters(e: Electrode, Domain: str, name: str, ce_grid: np.ndarray, T_K: float,
                          functions: dict[str, Callable], kinds: dict, errors: dict) -> dict[str, Any]:
    if not isinstance(e.particle, FickianParticle):
        raise TypeError(f"{name}: PyBaMM's DFN needs a FickianParticle, got {type(e.particle).__name__}")
    x = _stoichiometry_grid()
    fns = {}
    for key, fn, grid in (("ocv", e.particle.ocv_V, x), ("diffusivity", e.particle.diffusivity_m2_s, x),
                          ("exchange_current", _j0_of_ce(e, T_K, name), ce_grid)):
        full = f"{name}.{key}"
        if full in functions:
            fns[key], kinds[full], errors[full] = functions[full], "explicit", 0.0
        elif fn is not None:
            fns[key], kinds[full], errors[full] = _translate(fn, grid, full)
        else:
            raise ValueError(f"{full} depends on the surface stoichiometry: pass functions={{{full!r}: "
                             "callable(c_e, c_s_surf, c_s_max, T)}")
    ocv, diff = fns["ocv"], fns["diffusivity"]
    if f"{name}.exchange_current" in functions:
        j0 = fns["exchange_current"]
    else:
        def j0(c_e, c_s, c_max, T, _of_ce=fns["exchange_current"]):
            return _of_ce(c_e)
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


def _j0_of_ce(e: Electrode, T_K: float, name: str) -> Callable | None:
    """Our j0(c_e, x, T) as a function of c_e alone at T, or None if it depends on x."""
    ce = np.linspace(0.0, 4000.0, 41)
    at = [np.asarray(e.exchange_current_A_m2(ce, np.full_like(ce, f * e.x_max), T_K), float) for f in (0.2, 0.5, 0.8)]
    if not all(np.array_equal(np.broadcast_to(a, ce.shape), np.broadcast_to(at[0], ce.shape)) for a in at):
        return None
    return lambda c_e: e.exchange_current_A_m2(c_e, 0.5 * e.x_max, T_K)


def parameter_values(cell: Cell, current_A: float, cutoff_V: float, *, upper_V: float = 100.0,
                     functions: dict[str, Callable] | None = None) -> tuple[pybamm.ParameterValues, dict]:
    """A ParameterValues with every parameter PyBaMM's DFN reads taken from ``cell`` (nothing else),
    and {"functions": kind per function, "table_error": relative spline error per function}."""
    functions = dict(functions or {})
    known = {f"{s}.{k}" for s in ("anode", "cathode") for k in ("ocv", "diffusivity", "exchange_current")}
    known |= {f"electrolyte.{k}" for k in ("diffusivity", "conductivity", "thermodynamic_factor")}
    if unknown := set(functions) - known:
        raise KeyError(f"unknown function keys {sorted(unknown)}; known: {sorted(known)}")
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
    one_c = one_c_A_m2(cell)
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
        "Nominal cell capacity [A.h]": one_c * cell.area_m2,  # 1C current in A = capacity in A.h
        "Current function [A]": current_A,
        "Lower voltage cut-off [V]": cutoff_V if current_A >= 0 else -upper_V,
        "Upper voltage cut-off [V]": upper_V if current_A >= 0 else cutoff_V,
    }
    values |= _electrode_parameters(cell.anode, "Negative", "anode", ce_grid, T, functions, kinds, errors)
    values |= _electrode_parameters(cell.cathode, "Positive", "cathode", ce_grid, T, functions, kinds, errors)
    return pybamm.ParameterValues(values), {"functions": kinds, "table_error": errors}


def pybamm_dfn(cell: Cell, c_rate: float, cutoff_V: float, points: dict | None = None, t_eval=None, *,
               surface_extrapolation: str = "linear", rtol: float = 1e-8, atol: float = 1e-10,
               functions: dict[str, Callable] | None = None) -> dict[str, Any]:
    """Constant-current (dis)charge of ``cell`` at ``c_rate`` (> 0 discharges) until the voltage
    crosses ``cutoff_V``, with PyBaMM's DFN and IDAKLU.

    ``points``: PyBaMM var_pts for any of x_n, x_s, x_p, r_n, r_p (PyBaMM's default 20 each;
    ``cell_points(cell)`` gives the Cell's own mesh). ``t_eval``: times (s) to report; None reports
    IDA's own steps up to the cutoff (the run is allowed 1.5 h / |c_rate| plus 10 min).

    Returns a dict: ``t_s``, ``voltage_V`` (numpy arrays), ``termination`` (PyBaMM's reason, e.g.
    "event: Minimum voltage [V]"), ``build_s`` (model + parameters + mesh + discretisation, wall),
    ``solve_s`` (``Simulation.solve`` wall, including the solver's set-up), ``solver_setup_s`` and
    ``integration_s`` (PyBaMM's own split of it), ``current_density_A_m2``, ``one_c_A_m2``,
    ``functions`` / ``table_error`` (see the module docstring), ``solution`` (the pybamm Solution,
    for other variables, e.g. "Negative particle surface concentration [mol.m-3]").
    """
    if c_rate == 0:
        raise ValueError("c_rate must be nonzero (> 0 discharges, < 0 charges)")
    if surface_extrapolation not in SURFACE_EXTRAPOLATION:
        raise ValueError(f"surface_extrapolation must be one of {sorted(SURFACE_EXTRAPOLATION)}")
    points = dict(points or {})
    if unknown := set(points) - set(POINT_KEYS):
        raise KeyError(f"unknown mesh keys {sorted(unknown)}; known: {list(POINT_KEYS)}")
    one_c = one_c_A_m2(cell)
    i_A_m2 = c_rate * one_c

    t0 = time.perf_counter()
    kinetics = ("symmetric Butler-Volmer"
                if cell.anode.transfer_coefficient == 0.5 and cell.cathode.transfer_coefficient == 0.5
                else "asymmetric Butler-Volmer")
    model = pybamm.lithium_ion.DFN({"intercalation kinetics": kinetics, "thermal": "isothermal",
                                    "contact resistance": "false", "surface form": "false"})
    params, info = parameter_values(cell, i_A_m2 * cell.area_m2, cutoff_V, functions=functions)
    var_pts = dict(model.default_var_pts) | points
    spatial = dict(model.default_spatial_methods)
    for particle in ("negative particle", "positive particle"):
        spatial[particle] = pybamm.FiniteVolume({"extrapolation": SURFACE_EXTRAPOLATION[surface_extrapolation]})
    solver = pybamm.IDAKLUSolver(rtol=rtol, atol=atol)
    sim = pybamm.Simulation(model, parameter_values=params, var_pts=var_pts, spatial_methods=spatial,
                            solver=solver)
    sim.build()
    build_s = time.perf_counter() - t0

    if t_eval is None:
        t_end, t_interp = 1.5 * 3600.0 / abs(c_rate) + 600.0, None
    else:
        t_interp = np.asarray(t_eval, dtype=float)
        t_end = float(t_interp[-1])
    t0 = time.perf_counter()
    sol = sim.solve([0.0, t_end], t_interp=t_interp)
    solve_s = time.perf_counter() - t0
    return {
        "t_s": np.asarray(sol["Time [s]"].entries, dtype=float),
        "voltage_V": np.asarray(sol["Voltage [V]"].entries, dtype=float),
        "termination": sol.termination,
        "build_s": build_s,
        "solve_s": solve_s,
        "solver_setup_s": float(sol.set_up_time.value),
        "integration_s": float(sol.integration_time.value),
        "current_density_A_m2": i_A_m2,
        "one_c_A_m2": one_c,
        "solution": sol,
        **info,
    }
