"""Invalid campaign files: one clear line naming file and key, exit code 2, nothing written.

The invalid cases are generated from the schema itself (every field gets the wrong kinds of value
its type and bounds rule out), plus structural and YAML-level breakage.
"""
from __future__ import annotations

import copy
import dataclasses
import math
import types
import typing
from pathlib import Path
from typing import Literal, get_args, get_origin, get_type_hints

import pytest
import yaml

from pbahpc.cli import main
from pbahpc.config import Campaign

from conftest import ROOT, run_pbahpc

BASE = yaml.safe_load((ROOT / "inputs" / "smoke.yaml").read_text())


def _bad_values(tp, meta) -> list:
    """Values that type ``tp`` with bounds ``meta`` must reject."""
    origin = get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        return [v for v in _bad_values(args[0], meta)
                if not any(_accepts(a, v, meta) for a in args[1:])] + [{"x": 1}]
    if origin is Literal:
        return ["not-an-option", 3]
    if origin is tuple:
        item = get_args(tp)[0]
        return ["scalar", [{"a": 1}], *([[]] if meta.get("nonempty") else []),
                *[[v] for v in _bad_values(item, meta)[:2]]]
    if dataclasses.is_dataclass(tp):
        return [5, [1, 2], "text"]
    if tp is bool:
        return [1, "yes"]
    if tp is int:
        out = ["seven", 1.5, True, [1]]
        if "min" in meta:
            out.append(meta["min"] - 1)
        if "max" in meta:
            out.append(meta["max"] + 1)
        return out
    if tp is float:
        out = ["warm", False, [1.0], math.nan, math.inf]
        if "gt" in meta:
            out.append(meta["gt"])
        if "min" in meta:
            out.append(meta["min"] - 0.5)
        if "max" in meta:
            out.append(meta["max"] + 0.5)
        return out
    if tp is str:
        out = [5, "", ["a"]]
        if "engine" in meta:
            out += ["no-such-engine", "no_such_module_xyz:Engine", "pbahpc.config:NOT_THERE"]
        return out
    if tp is Path:
        return [5, ""]
    raise AssertionError(tp)


def _accepts(tp, value, meta) -> bool:
    if get_origin(tp) is Literal:
        return value in get_args(tp)
    return False


def _walk(cls, prefix=()):
    hints = get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.metadata.get("internal"):
            continue
        path = (*prefix, f.name)
        yield path, hints[f.name], dict(f.metadata)
        if dataclasses.is_dataclass(hints[f.name]):
            yield from _walk(hints[f.name], path)


def _set(data: dict, path: tuple, value) -> dict:
    data = copy.deepcopy(data)
    node = data
    for key in path[:-1]:
        node = node.setdefault(key, {})
    node[path[-1]] = value
    return data


def _cases():
    for path, tp, meta in _walk(Campaign):
        for value in _bad_values(tp, meta):
            yield f"{'.'.join(path)}={value!r}", _set(BASE, path, value), ".".join(path)
        if dataclasses.is_dataclass(tp):
            yield f"{'.'.join(path)}.unknown", _set(BASE, (*path, "colour"), 1), ".".join((*path, "colour"))
    yield "unknown section", {**BASE, "extras": {}}, "extras"
    yield "missing campaign", {k: v for k, v in BASE.items() if k != "campaign"}, "campaign"
    yield "missing name", _set(BASE, ("campaign",), {"seed": 1}), "campaign.name"
    yield "odd lattice", _set(BASE, ("replicas", "lattice"), 7), "replicas.lattice"
    yield "isolated energies not one per species", _set(BASE, ("trainer", "isolated_energies_eV"), [0.0, 0.0]), \
        "trainer.isolated_energies_eV"
    yield "core repulsion of a species the MTP lacks", _set(BASE, ("trainer", "core_repulsion"), {"species": ["Li"]}), \
        "trainer.core_repulsion.species[0]"
    yield "core repulsion outer below inner", _set(BASE, ("trainer", "core_repulsion"), {"inner_A": 1.6, "outer_A": 1.2}), \
        "trainer.core_repulsion.outer_A"
    yield "core repulsion beyond the MTP's cutoff", _set(BASE, ("trainer", "core_repulsion"), {"outer_A": 6.0}), \
        "trainer.core_repulsion.outer_A"
    yield "top-level list", [1, 2], "<top>"
    yield "top-level scalar", "campaign", "<top>"


CASES = list(_cases())


def test_enough_cases():
    assert len(CASES) >= 100


@pytest.mark.parametrize("label,data,key", CASES, ids=[c[0] for c in CASES])
def test_invalid_config_is_one_clear_line(tmp_path, capsys, label, data, key):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    assert main(["check", str(path), "--ranks", "8"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert err.startswith(f"pbahpc: {path}: {key}"), err
    assert list(tmp_path.iterdir()) == [path]


@pytest.mark.parametrize("text,words", [
    ("campaign: {name: x\n", "YAML syntax error"),
    ("campaign:\n  name: x\n\tseed: 1\n", "YAML syntax error"),
    ("", "campaign: required key is missing"),
    ("\xff\xfe", ""),
])
def test_broken_yaml(tmp_path, capsys, text, words):
    path = tmp_path / "bad.yaml"
    path.write_bytes(text.encode("latin-1"))
    assert main(["check", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(path) in err and words in err


def test_missing_file(tmp_path, capsys):
    assert main(["check", str(tmp_path / "nope.yaml")]) == 2
    assert "cannot read file" in capsys.readouterr().err


@pytest.mark.parametrize("label,data,key", CASES[::30] + [
    ("too few ranks", BASE, "layout")], ids=[c[0] for c in CASES[::30]] + ["too few ranks"])
def test_run_refuses_under_mpiexec(tmp_path, label, data, key):
    """The real launcher path: exit 2 on every rank, one line, no run directory created."""
    run_dir = tmp_path / "run"
    data = _set(data, ("campaign", "run_dir"), str(run_dir)) if isinstance(data, dict) and \
        isinstance(data.get("campaign"), dict) and key != "campaign.run_dir" else data
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    out = run_pbahpc(2, "run", str(path), cwd=tmp_path, timeout=120)
    assert out.returncode == 2, out.stderr
    assert out.stderr.count("\n") == 1 and f": {key}" in out.stderr, out.stderr
    assert "Traceback" not in out.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.yaml"]


def test_missing_file_is_named(tmp_path):
    """Keys declared as files (e.g. structures, potentials) must exist; relative to the YAML file."""
    from dataclasses import dataclass, field

    from pbahpc.config import ConfigError
    from pbahpc.config.validate import build

    @dataclass(frozen=True)
    class WithFile:
        structure: Path = field(metadata={"file": True})

    (tmp_path / "there.cif").write_text("data")
    assert build(WithFile, {"structure": "there.cif"}, "host", tmp_path).structure == tmp_path / "there.cif"
    with pytest.raises(ConfigError) as err:
        build(WithFile, {"structure": "missing.cif"}, "host", tmp_path)
    assert str(err.value) == f"host.structure: file not found: {tmp_path / 'missing.cif'}"


@pytest.mark.parametrize("section,key", [("replicas", "replicas.gcmc.overlap_cutoff_A"),
                                         ("free_energy", "properties.free_energy.overlap_cutoff_A")])
def test_an_overlap_cutoff_that_rejects_every_move_is_refused_before_anything_is_written(tmp_path, section, key):
    """With full_energy, fix gcmc's overlap test covers every pair: a cutoff above the built structure's C-N
    bond (1.15 A) rejects every move. Only the built structure tells; it is built at the edge (exit 2).
    The replicas' case has full_energy false: under the MTP (the demo's trainer) LAMMPS uses full_energy
    anyway, so 1.6 A is refused there too, and accepted where no MTP drives the replicas."""
    cfg = yaml.safe_load((ROOT / "inputs" / "demo.yaml").read_text())
    cfg["campaign"]["run_dir"] = str(tmp_path / "run")
    for name in ("p2d_template",):
        cfg["properties"][name] = str(ROOT / "inputs" / cfg["properties"][name])
    cfg["continuum"]["parameters"] = str(ROOT / "inputs" / cfg["continuum"]["parameters"])
    if section == "replicas":
        cfg["replicas"]["gcmc"].update(full_energy=False, overlap_cutoff_A=1.6)
    else:
        cfg["properties"]["free_energy"]["overlap_cutoff_A"] = 1.2
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(cfg))
    out = run_pbahpc(2, "run", str(path), cwd=tmp_path, timeout=120)
    assert out.returncode == 2, out.stderr
    assert out.stderr.count("\n") == 1 and f"{path}: {key}: " in out.stderr and "1.150 A apart" in out.stderr, \
        out.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.yaml"]
    cfg["replicas"]["gcmc"].update(full_energy=False, overlap_cutoff_A=1.0)  # the demo's own: accepted
    cfg["properties"]["free_energy"]["overlap_cutoff_A"] = 1.0
    path.write_text(yaml.safe_dump(cfg))
    assert main(["check", str(path), "--ranks", "2"]) == 0
    if section == "replicas":  # no trainer, no MTP: LAMMPS's pairwise insertion test, 1.6 A is fine
        gcmc = yaml.safe_load((ROOT / "inputs" / "gcmc.yaml").read_text())
        gcmc["campaign"]["run_dir"] = str(tmp_path / "run")
        gcmc["replicas"]["gcmc"].update(full_energy=False, overlap_cutoff_A=1.6)
        path.write_text(yaml.safe_dump(gcmc))
        assert main(["check", str(path), "--ranks", "2"]) == 0
