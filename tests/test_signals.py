"""What a stop signal does after the campaign's StopSignal block has ended (pbahpc.driver.signals)."""
from __future__ import annotations

import signal
import subprocess
import sys

import pytest

SCRIPT = """
import os, signal, sys
from pbahpc.driver.signals import StopSignal
with StopSignal(after_exit={after}) as stop:
    os.kill(os.getpid(), signal.SIGUSR1)
    while not stop.requested:
        pass  # the watcher thread sets the flag
os.kill(os.getpid(), signal.SIGUSR1)  # a warning after the end, e.g. during MPI finalisation
print("alive")
"""


@pytest.mark.parametrize("after, returncode", [("signal.SIG_IGN", 0), ("None", -signal.SIGUSR1)])
def test_a_warning_after_the_block_ends_is_ignored_only_when_asked(after, returncode):
    """`pbahpc run` leaves its block with SIG_IGN: a SLURM warning that lands after the campaign completed
    must not end the process by SIGUSR1's default action (exit 138: the finished job recorded as FAILED,
    seen in tests/test_slurm.py); inside the block the signal is a stop request either way. With the
    previous handlers restored (None, the default for library use) the same late signal kills the process,
    so the test can tell the two apart."""
    out = subprocess.run([sys.executable, "-c", SCRIPT.format(after=after)], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == returncode, out.stderr
    assert ("alive" in out.stdout) == (returncode == 0)
