"""PyBaMM's DFN as the reference for pbahpc's pseudo-2D cell solver (Fickian particles on both sides).

``pybamm_dfn(cell, c_rate, cutoff_V)`` builds ``pybamm.lithium_ion.DFN()`` with a ``ParameterValues``
filled only from the ``Cell`` (no parameter set is loaded, so a parameter this module forgot raises a
``KeyError`` inside PyBaMM instead of silently taking a Chen2020 value), runs one constant-current step
to the voltage cutoff with ``IDAKLUSolver`` and returns the voltage curve and the timings.

The translation of the Cell (names, units, how each function becomes a PyBaMM expression) is
``pbahpc.continuum.pybamm_io.parameter_values``, the one ``pbahpc p2d --to-pybamm`` uses.
``dfn(values, options, ...)`` runs any ParameterValues, e.g. a stock set, the same way.

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

from pbahpc.continuum.model import FARADAY_C_MOL, Cell  # noqa: E402
from pbahpc.continuum.pybamm_io import dfn_options, parameter_values  # noqa: E402

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


def pybamm_dfn(cell: Cell, c_rate: float, cutoff_V: float, points: dict | None = None, t_eval=None, *,
               surface_extrapolation: str = "linear", rtol: float = 1e-8, atol: float = 1e-10,
               functions: dict[str, Callable] | None = None) -> dict[str, Any]:
    """Constant-current (dis)charge of ``cell`` at ``c_rate`` (> 0 discharges) until the voltage
    crosses ``cutoff_V``, with PyBaMM's DFN and IDAKLU.

    ``points``: PyBaMM var_pts for any of x_n, x_s, x_p, r_n, r_p (PyBaMM's default 20 each;
    ``cell_points(cell)`` gives the Cell's own mesh). ``t_eval``: times (s) to report; None reports
    IDA's own steps up to the cutoff (the run is allowed 1.5 h / |c_rate| plus 10 min).

    Returns ``dfn``'s dict plus ``current_density_A_m2``, ``one_c_A_m2`` and ``functions`` /
    ``table_error`` (how each function was translated, see pybamm_io.parameter_values).
    """
    if c_rate == 0:
        raise ValueError("c_rate must be nonzero (> 0 discharges, < 0 charges)")
    one_c = one_c_A_m2(cell)
    i_A_m2 = c_rate * one_c
    t0 = time.perf_counter()
    params, info = parameter_values(cell, i_A_m2 * cell.area_m2, cutoff_V, functions=functions)
    params_s = time.perf_counter() - t0
    out = dfn(params, dfn_options(cell), points, t_eval, t_end_s=1.5 * 3600.0 / abs(c_rate) + 600.0,
              surface_extrapolation=surface_extrapolation, rtol=rtol, atol=atol)
    out["build_s"] += params_s
    return out | {"current_density_A_m2": i_A_m2, "one_c_A_m2": one_c, **info}


def dfn(params, options: dict, points: dict | None = None, t_eval=None, *, t_end_s: float | None = None,
        surface_extrapolation: str = "linear", rtol: float = 1e-8, atol: float = 1e-10) -> dict[str, Any]:
    """PyBaMM's DFN with ``options`` on the ParameterValues ``params`` (its "Current function [A]" and
    cut-offs), with IDAKLU, up to ``t_end_s`` (IDA's own steps reported) or the last of ``t_eval``
    (reported there), or a cut-off.

    Returns a dict: ``t_s``, ``voltage_V`` (numpy arrays), ``termination`` (PyBaMM's reason, e.g.
    "event: Minimum voltage [V]"), ``build_s`` (parameters + model + mesh + discretisation, wall),
    ``solve_s`` (``Simulation.solve`` wall, including the solver's set-up), ``solver_setup_s`` and
    ``integration_s`` (PyBaMM's own split of it), ``solution`` (the pybamm Solution, for other
    variables, e.g. "Negative particle surface concentration [mol.m-3]").
    """
    if surface_extrapolation not in SURFACE_EXTRAPOLATION:
        raise ValueError(f"surface_extrapolation must be one of {sorted(SURFACE_EXTRAPOLATION)}")
    points = dict(points or {})
    if unknown := set(points) - set(POINT_KEYS):
        raise KeyError(f"unknown mesh keys {sorted(unknown)}; known: {list(POINT_KEYS)}")
    t0 = time.perf_counter()
    model = pybamm.lithium_ion.DFN(options)
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
        if t_end_s is None:
            raise ValueError("give t_eval or t_end_s")
        t_end, t_interp = t_end_s, None
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
        "solution": sol,
    }
