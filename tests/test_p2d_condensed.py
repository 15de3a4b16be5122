"""The condensed direct solver (particle unknowns eliminated per node) against a dense solve of the
same assembled Jacobian, on a Cahn-Hilliard cell mid-charge (two phases in the particles)."""
import numpy as np
import pytest

pytest.importorskip("petsc4py")
from test_p2d_cell import ch_cell  # noqa: E402

from pbahpc.continuum.condensed import CondensedLU  # noqa: E402
from pbahpc.continuum.model import Step  # noqa: E402


def test_condensed_solve_equals_dense_solve_of_the_jacobian():
    m = ch_cell(nx=4, nr=8)
    m.run([Step("current", c_rate=-1.0, duration_s=600.0)])
    solver = CondensedLU(m)
    m._condensed = solver
    J = m.J.duplicate()
    m._ijacobian(m.ts, m.time_s, m.u, m.u.duplicate(), 1.0 / 30.0, J, J)  # shift of a 30 s BDF1 step
    dense = J.convert("dense").getDenseArray()
    rng = np.random.default_rng(5)
    b, x = m.u.duplicate(), m.u.duplicate()
    b.getArray()[:] = rng.standard_normal(b.getSize())
    solver.apply(None, b, x)
    expected = np.linalg.solve(dense, b.getArray(readonly=True))
    # relative to the solution's size: LU and the condensed elimination round differently on a
    # matrix whose rows span ~10 orders of magnitude (condition number printed on failure)
    err = np.abs(x.getArray(readonly=True) - expected).max() / np.abs(expected).max()
    assert err < 1e-8, (err, np.linalg.cond(dense))


def test_a_singular_particle_block_fails_the_linear_solve_not_the_run():
    """A wild Newton iterate can leave a particle block singular (rows of zeros where Butler-Volmer saturates):
    the PC then reports a zero pivot, as PETSc's LU does, so that SNES fails and TS cuts the time step,
    instead of an exception ending the run; the next good Jacobian clears it."""
    m = ch_cell(nx=4, nr=8)
    solver = CondensedLU(m)
    m._condensed = solver
    J = m.J.duplicate()
    m._ijacobian(m.ts, m.time_s, m.u, m.u.duplicate(), 1.0 / 30.0, J, J)
    values = J.getValuesCSR()[2].copy()  # the pattern's order: its columns are sorted within each row
    bad = values.copy()
    bad[m._rows == m.dof + 5] = 0.0  # a particle row of the second node
    solver.update(bad)
    pc = m.PETSc.PC().create(comm=m.comm)
    b, x = m.u.duplicate(), m.u.duplicate()
    b.set(1.0)
    solver.apply(pc, b, x)
    assert solver.singular and pc.getFailedReason() == m.PETSc.PC.FailedReason.FACTOR_NUMERIC_ZEROPIVOT
    solver.update(values)
    assert not solver.singular
