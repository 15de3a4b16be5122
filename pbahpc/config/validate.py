"""Turn plain YAML data into typed, frozen dataclasses, failing with one line per problem.

Schemas are ordinary dataclasses; constraints live in field metadata: ``min``/``max``
(inclusive bounds), ``gt`` (strict lower bound), ``choices``, ``engine`` (the role whose engines
the value must name), ``file`` (the path must exist), ``cwd`` (a relative path is taken from the
working directory instead of the YAML file's directory), ``nonempty`` (sequences).
"""
from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from pathlib import Path
from typing import Any, Literal, get_args, get_origin, get_type_hints

from .engines import engine_problem


class ConfigError(ValueError):
    """Invalid configuration; ``str()`` is one line: ``<file>: <key.path>: <problem>``."""

    def __init__(self, key: str, problem: str, source: str | None = None):
        self.key, self.problem, self.source = key, problem, source
        where = f"{source}: " if source else ""
        super().__init__(f"{where}{key or '<top>'}: {problem}")


def _type_name(tp: Any) -> str:
    origin = get_origin(tp)
    if origin is Literal:
        return " | ".join(repr(a) for a in get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in get_args(tp))
    if origin in (list, tuple):
        return f"list of {_type_name(get_args(tp)[0])}"
    if dataclasses.is_dataclass(tp) or origin is dict:
        return "mapping"
    return {type(None): "null", float: "number", int: "integer", bool: "true/false",
            str: "string", Path: "path"}.get(tp, getattr(tp, "__name__", str(tp)))


def _describe(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _check_bounds(key: str, value: Any, meta: dict) -> None:
    lo, hi, gt = meta.get("min"), meta.get("max"), meta.get("gt")
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(key, f"must be a finite number, got {_describe(value)}")
    if (lo is not None and value < lo) or (hi is not None and value > hi) or (gt is not None and value <= gt):
        bounds = []
        if gt is not None:
            bounds.append(f"> {gt}")
        if lo is not None:
            bounds.append(f">= {lo}")
        if hi is not None:
            bounds.append(f"<= {hi}")
        raise ConfigError(key, f"must be {' and '.join(bounds)}, got {_describe(value)}")


def convert(tp: Any, value: Any, key: str, meta: dict, base_dir: Path) -> Any:
    """Convert ``value`` to type ``tp`` or raise ConfigError naming ``key``."""
    origin = get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        options = get_args(tp)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in (o for o in options if o is not type(None)):
            try:
                return convert(option, value, key, meta, base_dir)
            except ConfigError as exc:
                errors.append(exc)
        if len(errors) == 1:
            raise errors[0]
        raise ConfigError(key, f"expected {_type_name(tp)}, got {_describe(value)}")
    if origin is Literal:
        allowed = get_args(tp)
        if value not in allowed or isinstance(value, bool) != isinstance(allowed[0], bool):
            raise ConfigError(key, f"must be one of {', '.join(map(repr, allowed))}, got {_describe(value)}")
        return value
    if origin is dict:  # free-form keyword arguments: string keys, plain YAML values kept as they are
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            raise ConfigError(key, f"expected a mapping with string keys, got {_describe(value)}")
        return dict(value)
    if origin in (list, tuple):
        if not isinstance(value, list):
            raise ConfigError(key, f"expected a list of {_type_name(get_args(tp)[0])}, got {_describe(value)}")
        if meta.get("nonempty") and not value:
            raise ConfigError(key, "must not be empty")
        item = get_args(tp)[0]
        return tuple(convert(item, v, f"{key}[{i}]", meta, base_dir) for i, v in enumerate(value))
    if dataclasses.is_dataclass(tp):
        return build(tp, value, key, base_dir)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(key, f"expected true or false, got {_describe(value)}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(key, f"expected an integer, got {_describe(value)}")
        _check_bounds(key, value, meta)
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(key, f"expected a number, got {_describe(value)}")
        value = float(value)
        _check_bounds(key, value, meta)
        return value
    if tp is str:
        if not isinstance(value, str) or not value:
            raise ConfigError(key, f"expected a non-empty string, got {_describe(value)}")
        if "choices" in meta and value not in meta["choices"]:
            raise ConfigError(key, f"must be one of {', '.join(meta['choices'])}, got {_describe(value)}")
        if "engine" in meta:
            problem = engine_problem(meta["engine"], value)
            if problem:
                raise ConfigError(key, problem)
        return value
    if tp is Path:
        if not isinstance(value, str) or not value:
            raise ConfigError(key, f"expected a path string, got {_describe(value)}")
        path = Path(value).expanduser()
        path = path if path.is_absolute() else ((Path.cwd() if meta.get("cwd") else base_dir) / path)
        if meta.get("file") and not path.is_file():
            raise ConfigError(key, f"file not found: {path}")
        return path
    raise TypeError(f"unsupported schema type {tp!r} at {key}")  # a bug in a schema, not user input


def build(cls: type, data: Any, key: str = "", base_dir: Path = Path(".")) -> Any:
    """Build dataclass ``cls`` from a mapping; unknown keys and missing required keys are errors."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(key, f"expected a mapping, got {_describe(data)}")
    fields = {f.name: f for f in dataclasses.fields(cls) if not f.metadata.get("internal")}
    hints = get_type_hints(cls)
    for name in data:
        if name not in fields:
            close = difflib.get_close_matches(str(name), fields, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise ConfigError(_join(key, str(name)), f"unknown key{hint}; allowed: {', '.join(fields)}")
    kwargs = {}
    for name, f in fields.items():
        sub = _join(key, name)
        if name in data:
            kwargs[name] = convert(hints[name], data[name], sub, dict(f.metadata), base_dir)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(sub, f"required key is missing ({_type_name(hints[name])})")
    obj = cls(**kwargs)
    check = getattr(obj, "check", None)
    if check is not None:
        check(key)
    return obj


def _join(key: str, name: str) -> str:
    return f"{key}.{name}" if key else name
