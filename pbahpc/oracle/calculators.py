"""The oracle's ASE calculators: the teacher, a shipped universal potential (``universal``), any
``package.module:Class`` factory, or the VASP preset.

VASP preset (``oracle.calculator: vasp``), the paper's settings: PBEsol (GGA = PS), DFT+U (Dudarev,
LDAUTYPE 2) with U = 5.5 eV on the d shells (L = 2) of Mn and Fe and none elsewhere, ENCUT 700 eV, the
Gamma point only, spin-polarised (ISPIN 2). Initial moments: Mn 5 mu_B (high-spin Mn(II), d5), Fe 1 mu_B
(low-spin Fe in its strong C6 field: Fe(III) t2g5 has one unpaired electron, Fe(II) t2g6 none). The
start is 1, not 0, so that the SCF can reach either low-spin state as x changes (a symmetric zero start
tends to stay non-magnetic); both are configurable. Not from the paper, our choices: LMAXMIX 4 (d
electrons with +U), Gaussian smearing 0.05 eV, no WAVECAR/CHGCAR (one directory per frame).
POTCARs: ASE's PBE set for the xc (``VASP_PP_PATH``), as for any ASE Vasp calculation.
"""
from __future__ import annotations

import shutil
import signal
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..config.engines import load_factory


class LabelTimeout(Exception):
    """One labelling attempt ran past ``oracle.timeout_s``."""


@contextmanager
def deadline(seconds: float | None):
    """Raise LabelTimeout in this thread after ``seconds`` (SIGALRM; main thread only, else no limit).

    Interrupts Python code, sleeps and waits on subprocesses; a C extension busy in one call is
    interrupted when it returns to the interpreter."""
    if not seconds or threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer"):
        yield
        return

    def on_alarm(signum, frame):
        raise LabelTimeout(f"no result within {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def vasp_settings(vc) -> dict[str, Any]:
    """``ase.calculators.vasp.Vasp(**vasp_settings(cfg.oracle.vasp))``: the paper's DFT settings."""
    return dict(
        xc="pbesol",  # GGA = PS, PBE POTCARs
        encut=float(vc.encut_eV),
        kpts=(1, 1, 1), gamma=True,  # Gamma point only
        ispin=2,
        ldau=True, ldautype=2,
        ldau_luj={"Mn": {"L": 2, "U": float(vc.U_Mn_eV), "J": 0.0},
                  "Fe": {"L": 2, "U": float(vc.U_Fe_eV), "J": 0.0}},
        lmaxmix=4, ismear=0, sigma=0.05, lwave=False, lcharg=False,
    )


def vasp_magmoms(symbols, vc) -> list[float]:
    """Initial moments per atom (mu_B): Mn and Fe as configured, every other species 0."""
    per = {"Mn": float(vc.magmom_Mn), "Fe": float(vc.magmom_Fe)}
    return [per.get(s, 0.0) for s in symbols]


def vasp_command(vc, timeout_s: float | None) -> str:
    """The configured command, under timeout(1) when a timeout is set (TERM, then KILL 30 s later)."""
    if timeout_s and shutil.which("timeout"):
        return f"timeout --kill-after=30 {timeout_s:g} {vc.command}"
    return vc.command


def vasp_calculator(vc, directory: str | Path, timeout_s: float | None = None):
    from ase.calculators.vasp import Vasp

    return Vasp(command=vasp_command(vc, timeout_s), directory=str(directory), **vasp_settings(vc))


def write_vasp_inputs_without_potcar(calc, atoms, directory: str | Path) -> None:
    """POSCAR, INCAR, KPOINTS exactly as ``calc.write_input`` writes them, but no POTCAR (a dry run
    where ``VASP_PP_PATH`` is absent: ASE needs the POTCAR files only to concatenate them)."""
    from ase.io.vasp import write_vasp

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    calc._build_pp_list = lambda *a, **k: []  # this instance only: skip the POTCAR lookup
    try:
        calc.initialize(atoms)
    finally:
        del calc._build_pp_list
    write_vasp(directory / "POSCAR", calc.atoms_sorted, symbol_count=calc.symbol_count)
    calc.write_incar(atoms, directory=str(directory))
    calc.write_kpoints(atoms=atoms, directory=str(directory))


class CalculatorSource:
    """Makes the calculator for one frame: one shared instance, or (VASP) one per frame directory.

    ``comm``: the oracle group's communicator; a universal model's torch threads are shared among its
    ranks on a node (without one: this process alone)."""

    def __init__(self, cfg, comm=None):
        oc = cfg.oracle
        self.oc, self.timeout_s, self.shared = oc, oc.timeout_s, None
        self.vasp = oc.calculator == "vasp"
        if oc.calculator == "teacher":
            from .teacher import TeacherCalculator

            self.shared = TeacherCalculator(inserted=cfg.replicas.gcmc.inserted, variant=cfg.replicas.gcmc.teacher)
        elif oc.calculator == "universal":
            from .universal import torch_threads, universal_calculator

            self.shared = universal_calculator(oc.universal, torch_threads(comm) if comm is not None else 1)
        elif self.vasp:
            run_dir = Path(cfg.campaign.run_dir or Path("runs") / cfg.campaign.name)
            self.root = Path(oc.vasp.directory)
            self.root = self.root if self.root.is_absolute() else run_dir / self.root
        else:
            self.shared = load_factory(oc.calculator.factory)(**oc.calculator.kwargs)

    def get(self, name: str):
        if not self.vasp:
            return self.shared
        directory = self.root / name.replace("/", "_").replace(":", "_")
        directory.mkdir(parents=True, exist_ok=True)
        return vasp_calculator(self.oc.vasp, directory, self.timeout_s)

    def prepare(self, atoms) -> None:
        if self.vasp:
            atoms.set_initial_magnetic_moments(vasp_magmoms(atoms.get_chemical_symbols(), self.oc.vasp))

    def alarm_s(self) -> float | None:
        """SIGALRM limit: the timeout, or for VASP (timeout(1) stops it) a backstop after it."""
        if self.timeout_s and self.vasp and shutil.which("timeout"):
            return self.timeout_s + 60.0
        return self.timeout_s
