"""Import structure: layers import downward only and no module imports itself back through others.

Every ``import`` statement counts, at module level or inside a function (a lazy import is still a
dependency), and importing ``a.b.c`` also runs ``a`` and ``a.b``.
"""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "pbahpc"
# config (and units, the constants) < checkpoint < driver < engines < properties/scaling < cli
LAYERS = {"units": 0, "config": 0, "checkpoint": 1, "driver": 2, "atomistic": 3, "mlip": 3, "oracle": 3, "continuum": 3,
          "properties": 4, "scaling": 4, "cli": 5, "status": 5, "report": 5, "doctor": 5,
          "__main__": 5}
# what the engines may take from the driver: the component protocol, nothing of its machinery
DRIVER_FOR_ENGINES = {"pbahpc.driver", "pbahpc.driver.component"}


def _modules() -> dict[str, tuple[Path, bool]]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        is_pkg = parts[-1] == "__init__"
        out[".".join(parts[:-1] if is_pkg else parts)] = (path, is_pkg)
    return out


def _parents(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def import_graph() -> dict[str, set[str]]:
    """module -> the pbahpc modules importing it runs (parent packages included)."""
    modules = _modules()
    graph = {}
    for name, (path, is_pkg) in modules.items():
        here = name.split(".") if is_pkg else name.split(".")[:-1]
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = ".".join(here[:len(here) - node.level + 1] + ([node.module] if node.module else [])) \
                    if node.level else node.module or ""
                for a in node.names:  # ``from pkg import mod`` imports the module pkg.mod
                    targets.add(f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base)
        # A module's own packages are already being imported when it runs: no edge back to them
        # unless it imports them by name.
        own = set(_parents(name))
        deps = set()
        for t in targets:
            if t in modules:
                deps.update([t, *(p for p in _parents(t) if p not in own)])
        graph[name] = {d for d in deps if d in modules and d != name}
    return graph


def _layer(name: str) -> tuple[str, int | None]:
    parts = name.split(".")
    top = parts[1] if len(parts) > 1 else ""
    return top, LAYERS.get(top)


def test_every_subpackage_has_a_layer():
    assert not [m for m in import_graph() if m != "pbahpc" and _layer(m)[1] is None]


def test_layers_import_downward_only():
    bad = []
    for mod, deps in import_graph().items():
        top, level = _layer(mod)
        for dep in deps:
            dep_top, dep_level = _layer(dep)
            if dep == "pbahpc" or dep_top == top:
                continue
            if dep_level > level:  # one layer's subpackages may share; circles are caught below
                bad.append(f"{mod} -> {dep}")
            elif level == 3 and dep_top == "driver" and dep not in DRIVER_FOR_ENGINES:
                bad.append(f"{mod} -> {dep} (engines use the component protocol only)")
    assert not bad, "\n".join(sorted(bad))


def test_no_import_circle():
    graph = import_graph()
    index, low, stack, on_stack, circles = {}, {}, [], set(), []

    def visit(v):  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                circles.append(sorted(comp))

    sys.setrecursionlimit(max(10_000, sys.getrecursionlimit()))
    for v in sorted(graph):
        if v not in index:
            visit(v)
    assert not circles, f"{len(circles)} circle(s): " + "; ".join(" ".join(c) for c in circles)


def test_graph_sees_lazy_and_relative_imports():
    """The checks above must be able to fail: known edges of each kind are found."""
    graph = import_graph()
    assert "pbahpc.config.engines" in graph["pbahpc.config.validate"]  # relative, module level
    assert "pbahpc.continuum.standalone" in graph["pbahpc.cli"]  # inside a function
    assert "pbahpc.mlip" in graph["pbahpc.atomistic.gcmc_replica"]  # the parent package of an import


@pytest.mark.parametrize("module, allowed", [("pbahpc.config", ("pbahpc.config",)),
                                             ("pbahpc.checkpoint", ("pbahpc.config", "pbahpc.checkpoint")),
                                             ("pbahpc.driver", ("pbahpc.config", "pbahpc.checkpoint", "pbahpc.driver"))])
def test_importing_a_layer_loads_nothing_above_it(module, allowed):
    code = (f"import sys, {module}, pbahpc.config.engines as e\n"
            f"e.engine_problem('replicas', 'lammps-gcmc')\n"  # validating an engine name imports no engine
            "print(' '.join(m for m in sys.modules if m.startswith('pbahpc.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert out.returncode == 0, out.stderr
    loaded = out.stdout.split()
    assert module in loaded
    assert not [m for m in loaded if not m.startswith(allowed)], loaded


def test_every_builtin_engine_resolves():
    from pbahpc.config.engines import BUILTIN, engine_factory, engine_problem

    for role, name in BUILTIN:
        assert engine_problem(role, name) is None
        assert callable(engine_factory(role, name))
    assert "built-in: lammps-gcmc, lattice-gas" in engine_problem("replicas", "gcmc")
    assert "cannot import" in engine_problem("replicas", "no_such_module_xyz:Factory")
