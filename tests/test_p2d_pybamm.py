"""The whole cell with Fickian particles on both sides against PyBaMM's DFN (IDAKLU) on the same
parameters and mesh (tests/pybamm_reference.py translates the Cell).

Tolerance 1 mV: the two discretisations differ only at O(h^2) (PyBaMM extrapolates the particle surface
linearly from two cell centres where we use the flux condition, ~0.35 mV at 2C on 20 shells; it
interpolates kappa_eff linearly at faces where we take the series mean), the solvers run at rtol
1e-7 / 1e-8. The first instant (our record of the rest state) and the last 1 % (where V falls so
steeply that the end-time difference alone is millivolts) are left out; the end times are compared."""
import dataclasses

import numpy as np
import pytest

pytest.importorskip("pybamm")
pytest.importorskip("petsc4py")
from mpi4py import MPI  # noqa: E402
from pybamm_reference import cell_points, pybamm_dfn  # noqa: E402
from test_pybamm_reference import CUTOFF_V, make_cell  # noqa: E402

from pbahpc.continuum.cell import P2DCell  # noqa: E402
from pbahpc.continuum.model import Electrolyte, SolverSettings, Step  # noqa: E402


def concentrated_electrolyte():
    """c_e-dependent D, kappa and thermodynamic factor, t+ = 0.3: every concentrated-solution term acts."""
    return Electrolyte(initial_mol_m3=1000.0, diffusivity_m2_s=lambda c: 3e-10 * np.exp(-0.5 * c / 1000.0),
                       conductivity_S_m=lambda c: 0.2 + (c / 1000.0) * np.exp(-0.3 * (c / 1000.0) ** 2),
                       transference_number=0.3, thermodynamic_factor=lambda c: 1.0 + 0.5 * c / 1000.0)


@pytest.mark.parametrize("c_rate, electrolyte", [(1.0, None), (2.0, concentrated_electrolyte())],
                         ids=["1C-constant-electrolyte", "2C-concentrated-solution"])
def test_fickian_cell_matches_pybamm_dfn(c_rate, electrolyte):
    cell = make_cell(None)
    if electrolyte is not None:
        cell = dataclasses.replace(cell, electrolyte=electrolyte)
    ours = P2DCell(cell, SolverSettings(rtol=1e-7), MPI.COMM_SELF)
    assert ours.run([Step("current", c_rate=c_rate, cutoff_V=CUTOFF_V)]) == ["cutoff"]
    r = ours.result()
    ref = pybamm_dfn(cell, c_rate, CUTOFF_V, points=cell_points(cell))
    assert ref["termination"] == "event: Minimum voltage [V]"
    t_end = min(r["time_s"][-1], ref["t_s"][-1])
    t = np.linspace(0.0, 0.99 * t_end, 400)[1:]
    dv = np.interp(t, r["time_s"], r["voltage_V"]) - np.interp(t, ref["t_s"], ref["voltage_V"])
    assert np.abs(dv).max() < 1e-3, f"max |dV| = {1e3 * np.abs(dv).max():.3f} mV"
    assert r["time_s"][-1] == pytest.approx(ref["t_s"][-1], rel=1e-3)
