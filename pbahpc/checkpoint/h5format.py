"""HDF5 layout of one checkpoint file: a tree of exactly typed, individually checksummed leaves.

Layout (schema 1)::

    /                 attrs: schema_version, step, meta (JSON), created (UTC ISO 8601), tree_sha256
    /payload          group per dict (creation order tracked, so key order round-trips)
    /payload/<key>    one dataset per leaf; attrs: kind, dtype, shape (JSON), sha256 (of the raw bytes)

Leaves that HDF5 cannot hold losslessly (big ints, str, bytes, None, lists) are stored as uint8
byte strings and told apart by ``kind``. ``tree_sha256`` covers the header and every node record,
so a dataset or group that went missing or an altered attribute is detected, not just bad bytes.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import struct
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import h5py
import numpy as np

SCHEMA_VERSION = 1
MIN_SCHEMA_VERSION = 1  # oldest schema this code can still read
PAYLOAD_GROUP = "payload"

_NUMERIC_KINDS = frozenset("biufc")  # numpy dtype kinds: bool, int, uint, float, complex
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
# What h5py/HDF5 and the decoders raise on a damaged file; anything else is a bug and propagates.
_DAMAGE = (OSError, KeyError, ValueError, TypeError, RuntimeError, struct.error)


class CheckpointError(RuntimeError):
    """Checkpoints exist but none can be used, or one needs a different pbahpc version."""


class CorruptCheckpointError(CheckpointError):
    """One checkpoint file is unreadable or fails verification."""


@dataclass(frozen=True)
class Header:
    """Root attributes of a checkpoint file."""

    step: int
    meta: dict[str, Any]
    created: str


def write_checkpoint_file(path: Path, payload: dict[str, Any], *, step: int, meta: dict[str, Any]) -> None:
    """Write ``payload`` to a new HDF5 file at ``path`` (no fsync; the caller owns durability)."""
    if not isinstance(payload, dict):
        raise TypeError(f"payload must be a dict, got {type(payload).__name__}")
    if not isinstance(meta, dict):
        raise TypeError(f"meta must be a dict, got {type(meta).__name__}")
    meta_json = json.dumps(meta)  # fails before any file exists if meta is not JSON-serialisable
    created = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
    nodes: list[list[Any]] = []
    with h5py.File(path, "w") as f:
        _write_group(f.create_group(PAYLOAD_GROUP, track_order=True), payload, [], nodes)
        f.attrs["schema_version"] = SCHEMA_VERSION
        f.attrs["step"] = np.int64(step)
        f.attrs["meta"] = meta_json
        f.attrs["created"] = created
        f.attrs["tree_sha256"] = _tree_digest(SCHEMA_VERSION, step, meta_json, created, nodes)


def read_checkpoint_file(path: Path) -> tuple[dict[str, Any], Header]:
    """Read and fully verify one checkpoint file.

    Raises CorruptCheckpointError for any damage or a newer schema, CheckpointError for an older one.
    """
    try:
        with h5py.File(path, "r") as f:
            version = int(f.attrs["schema_version"])
            if version > SCHEMA_VERSION:
                raise CorruptCheckpointError(
                    f"schema_version {version} is newer than the supported {SCHEMA_VERSION}"
                )
            if version < MIN_SCHEMA_VERSION:
                raise CheckpointError(
                    f"{path}: schema_version {version} is older than the oldest supported "
                    f"({MIN_SCHEMA_VERSION}); restart it with the pbahpc version that wrote it"
                )
            step = int(f.attrs["step"])
            meta_json = str(f.attrs["meta"])
            created = str(f.attrs["created"])
            root = f[PAYLOAD_GROUP]
            if not isinstance(root, h5py.Group):
                raise CorruptCheckpointError(f"/{PAYLOAD_GROUP} is not a group")
            nodes: list[list[Any]] = []
            payload = _read_group(root, [], nodes)
            if _tree_digest(version, step, meta_json, created, nodes) != str(f.attrs["tree_sha256"]):
                raise CorruptCheckpointError("header or payload structure does not match tree_sha256 "
                                             "(missing or altered entries)")
            meta = json.loads(meta_json)
    except CheckpointError:
        raise
    except _DAMAGE as exc:
        raise CorruptCheckpointError(f"unreadable: {type(exc).__name__}: {exc}") from exc
    return payload, Header(step=step, meta=meta, created=created)


def _tree_digest(version: int, step: int, meta_json: str, created: str, nodes: list[list[Any]]) -> str:
    record = json.dumps([version, step, meta_json, created, nodes], separators=(",", ":"))
    return hashlib.sha256(record.encode("utf-8")).hexdigest()


def _write_group(group: h5py.Group, mapping: dict[str, Any], path: list[str], nodes: list[list[Any]]) -> None:
    nodes.append([path, "dict"])
    for key, value in mapping.items():
        child = [*path, key]
        _check_key(key, path)
        if isinstance(value, dict):
            _write_group(group.create_group(key, track_order=True), value, child, nodes)
            continue
        kind, data = _encode_leaf(value, child)
        digest = hashlib.sha256(data).hexdigest()
        ds = group.create_dataset(key, data=data)
        ds.attrs["kind"] = kind
        ds.attrs["dtype"] = data.dtype.str
        ds.attrs["shape"] = json.dumps(data.shape)
        ds.attrs["sha256"] = digest
        nodes.append([child, kind, data.dtype.str, list(data.shape), digest])


def _read_group(group: h5py.Group, path: list[str], nodes: list[list[Any]]) -> dict[str, Any]:
    nodes.append([path, "dict"])
    out: dict[str, Any] = {}
    for key, obj in group.items():  # creation order, tracked at write time
        child = [*path, key]
        if isinstance(obj, h5py.Group):
            out[key] = _read_group(obj, child, nodes)
        elif isinstance(obj, h5py.Dataset):
            out[key] = _read_leaf(obj, child, nodes)
        else:
            raise CorruptCheckpointError(f"unexpected HDF5 object at {'/'.join(child)}")
    return out


def _read_leaf(ds: h5py.Dataset, path: list[str], nodes: list[list[Any]]) -> Any:
    name = "/".join(path)
    kind = str(ds.attrs["kind"])
    dtype = np.dtype(str(ds.attrs["dtype"]))
    shape = tuple(json.loads(str(ds.attrs["shape"])))
    digest = str(ds.attrs["sha256"])
    data = ds[...]  # unlike ds[()], keeps 0-d data an array with its byte order and padding bytes
    if data.dtype != dtype or data.shape != shape:
        raise CorruptCheckpointError(
            f"dataset {name}: {data.dtype.str}{data.shape} != recorded {dtype.str}{shape}"
        )
    if hashlib.sha256(data).hexdigest() != digest:
        raise CorruptCheckpointError(f"dataset {name}: sha256 mismatch")
    nodes.append([path, kind, dtype.str, list(shape), digest])
    return _decode_leaf(kind, data, name)


def _check_key(key: object, path: list[str]) -> None:
    # HDF5 link names cannot be empty, '.', or contain '/' or NUL.
    if type(key) is not str:
        raise TypeError(f"payload keys must be str, got {key!r} under /{'/'.join(path)}")
    if key in ("", ".") or "/" in key or "\0" in key:
        raise ValueError(f"invalid payload key {key!r} under /{'/'.join(path)}")


def _utf8(text: str) -> np.ndarray:
    # surrogatepass: lone surrogates are legal in a Python str and must survive too.
    return np.frombuffer(text.encode("utf-8", "surrogatepass"), dtype=np.uint8)


def _encode_leaf(value: Any, path: list[str]) -> tuple[str, np.ndarray]:
    """Map a leaf to (kind, contiguous array holding its exact bytes)."""
    if isinstance(value, (np.ndarray, np.generic)):
        if value.dtype.kind not in _NUMERIC_KINDS:
            raise TypeError(f"/{'/'.join(path)}: numpy dtype {value.dtype} is not numeric or bool")
        kind = "array" if isinstance(value, np.ndarray) else "npscalar"
        return kind, np.asarray(value, order="C")
    # Exact type checks: bool is an int subclass, and subclasses (IntEnum, ...) would not round-trip.
    t = type(value)
    if t is bool:
        return "bool", np.asarray(value, dtype=np.bool_)
    if t is int:
        if _INT64_MIN <= value <= _INT64_MAX:
            return "int", np.asarray(value, dtype=np.int64)
        return "bigint", _utf8(str(value))
    if t is float:
        return "float", np.asarray(value, dtype=np.float64)
    if t is str:
        return "str", _utf8(value)
    if t is bytes:
        return "bytes", np.frombuffer(value, dtype=np.uint8)
    if value is None:
        return "none", np.empty(0, dtype=np.uint8)
    if t is list or t is tuple:
        return "list", _utf8(json.dumps([_encode_item(v, path) for v in value], allow_nan=False))
    raise TypeError(f"/{'/'.join(path)}: unsupported checkpoint leaf type {t.__name__}")


def _encode_item(value: Any, path: list[str]) -> Any:
    """JSON form of a list element; bytes and non-finite floats are tagged one-key objects."""
    t = type(value)
    if value is None or t in (bool, int, str):
        return value
    if t is float:
        # Tagging by bit pattern keeps NaN payloads and the sign of NaN, and keeps the JSON strict.
        return value if math.isfinite(value) else {"f64": struct.pack(">d", value).hex()}
    if t is bytes:
        return {"bytes": base64.b64encode(value).decode("ascii")}
    if t is list or t is tuple:
        return [_encode_item(v, path) for v in value]
    raise TypeError(f"/{'/'.join(path)}: unsupported list element type {t.__name__}")


def _decode_tagged(obj: dict[str, str]) -> float | bytes:
    if obj.keys() == {"f64"}:
        return struct.unpack(">d", bytes.fromhex(obj["f64"]))[0]
    if obj.keys() == {"bytes"}:
        return base64.b64decode(obj["bytes"], validate=True)
    raise ValueError(f"unknown tagged list element {obj!r}")


def _decode_leaf(kind: str, data: np.ndarray, name: str) -> Any:
    match kind:
        case "array":
            return data
        case "npscalar":
            return data[()]
        case "bool":
            return bool(data)
        case "int":
            return int(data)
        case "bigint":
            return int(data.tobytes().decode("ascii"))
        case "float":
            return float(data)
        case "str":
            return data.tobytes().decode("utf-8", "surrogatepass")
        case "bytes":
            return data.tobytes()
        case "none":
            return None
        case "list":
            return json.loads(data.tobytes().decode("utf-8"), object_hook=_decode_tagged)
    raise CorruptCheckpointError(f"dataset {name}: unknown leaf kind {kind!r}")
