"""The one table of built-in engines, and loading of ``package.module:Name`` factories.

Each role's engines are named here as ``"module:Factory"`` strings and imported only when a campaign
uses them (as motep's calculator table does), so configuration, validation and the driver read the
table without importing LAMMPS, PETSc or any engine module. A factory is called as
``factory(cfg, group, comm, seed)`` (see ``pbahpc.driver.component``).
"""
from __future__ import annotations

import importlib
import inspect
from typing import Any

BUILTIN: dict[tuple[str, str], str] = {
    ("replicas", "lattice-gas"): "pbahpc.atomistic.lattice_gas:LatticeGasReplica",
    ("replicas", "lammps-gcmc"): "pbahpc.atomistic.gcmc_replica:GcmcMdReplica",
    ("trainer", "pair-fit"): "pbahpc.mlip.pair_fit:PairFit",
    ("trainer", "mtp"): "pbahpc.mlip.trainer_engine:MTPTrainer",
    ("oracle", "lattice-gas"): "pbahpc.oracle.lattice_gas:LatticeGasOracle",
    ("oracle", "teacher"): "pbahpc.oracle.ase_oracle:AseOracle",
    ("properties", "mtp"): "pbahpc.properties.engine:PropertiesEngine",
    ("continuum", "regular-solution"): "pbahpc.continuum.regular_solution:RegularSolution",
    ("continuum", "p2d"): "pbahpc.continuum.p2d_engine:P2DEngine",
}


def load_factory(name: str) -> Any:
    """The object ``package.module:attr.path`` names (imports the module)."""
    module, _, attr = name.partition(":")
    obj = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def one_line(exc: BaseException, limit: int = 300) -> str:
    """``Type: message`` on one line, shortened to ``limit`` characters."""
    text = " ".join(str(exc).split())
    text = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return text if len(text) <= limit else text[:limit - 3] + "..."


def factory_problem(name: str, kwargs: dict[str, Any] | None = None) -> tuple[str, str] | None:
    """None if ``name`` (``package.module:Name``) imports, is callable and takes ``kwargs``; else
    ("factory" or "kwargs", problem) for the configuration key at fault."""
    module, sep, attr = name.partition(":")
    if not sep or not module or not attr:
        return "factory", f"expected 'package.module:Class', got {name!r}"
    try:
        factory = load_factory(name)
    except Exception as exc:  # noqa: BLE001  (an import may raise anything; report it on one line)
        return "factory", f"cannot import {name!r} ({one_line(exc)})"
    if not callable(factory):
        return "factory", f"{name!r} is not callable"
    if kwargs is None:  # an engine factory: called with (cfg, group, comm, seed)
        return None
    try:
        inspect.signature(factory).bind(**kwargs)
    except TypeError as exc:
        return "kwargs", f"{name} does not take them ({exc})"
    except ValueError:  # no signature (a builtin): the call will tell
        pass
    return None


def engine_problem(role: str, name: str) -> str | None:
    """None if ``name`` is a built-in engine of ``role`` or an importable ``package.module:Factory``."""
    if ":" in name:
        problem = factory_problem(name)
        return problem and problem[1]
    if (role, name) not in BUILTIN:
        known = sorted(e for r, e in BUILTIN if r == role)
        return f"unknown engine {name!r}; built-in: {', '.join(known)}, or 'package.module:Factory'"
    return None


def engine_factory(role: str, name: str) -> Any:
    """The factory of engine ``name`` of ``role`` (names are checked when the configuration is loaded)."""
    return load_factory(BUILTIN.get((role, name), name))
