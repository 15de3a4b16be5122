"""Stop a running LAMMPS ``run`` on all ranks of its communicator at the same timestep.

``lammps.force_timeout()`` called on one rank only (e.g. from the signal watcher thread) makes that
rank leave the MD loop while the others go on into the next step's halo exchange: a deadlock. And a
signal reaches the ranks at slightly different steps. Instead, ``fix external pf/callback`` calls
back into Python every ``every`` steps, on all ranks at the same step; the callback agrees over the
instance's communicator whether a stop was requested and, if so, every rank calls ``force_timeout``
in that same step. Cost: one allreduce of one flag per ``every`` steps.
"""
from __future__ import annotations

from collections.abc import Callable


class StopCheck:
    """Installs the collective stop check into ``lmp``.

    ``agree`` must be collective over the LAMMPS communicator and return the same bool on every rank
    (``StepContext.stop_requested`` is). After a stop, ``stopped_at`` holds the timestep and further
    runs are skipped by LAMMPS until ``rearm()``.
    """

    def __init__(self, lmp, agree: Callable[[], bool], every: int = 100, fix_id: str = "pbahpc_stop"):
        self.lmp, self.agree, self.fix_id = lmp, agree, fix_id
        self.stopped_at: int | None = None
        lmp.command(f"fix {fix_id} all external pf/callback {every} 1")
        lmp.set_fix_external_callback(fix_id, self._callback)

    def _callback(self, caller, step, nlocal, tag, x, fext) -> None:
        fext[:] = 0.0  # this fix only listens: it must add no force
        if self.stopped_at is None and self.agree():
            self.stopped_at = int(step)
            self.lmp.force_timeout()

    def rearm(self) -> None:
        """Allow runs again after a stop (the timeout stays set in LAMMPS otherwise)."""
        self.lmp.command("timer timeout off")
        self.stopped_at = None
