"""Tests for pbahpc.checkpoint: exact round trip, RNG restore, retention, corruption fallback."""

from __future__ import annotations

import json
import math
import re
import struct
import warnings
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest

from pbahpc.checkpoint import (
    SCHEMA_VERSION,
    CheckpointError,
    CheckpointStore,
    CheckpointWarning,
    CorruptCheckpointError,
    checkpoint_name,
    decode_rng,
    encode_rng,
)


def assert_exact(got: Any, want: Any, where: str = "") -> None:
    """Same type, dtype, shape, key order and bit pattern, recursively (tuples come back as lists)."""
    if isinstance(want, tuple):
        want = list(want)
    assert type(got) is type(want), f"{where}: {type(got).__name__} != {type(want).__name__}"
    if isinstance(want, dict):
        assert list(got) == list(want), f"{where}: keys {list(got)} != {list(want)}"
        for k in want:
            assert_exact(got[k], want[k], f"{where}/{k}")
    elif isinstance(want, list):
        assert len(got) == len(want), where
        for i, (g, w) in enumerate(zip(got, want)):
            assert_exact(g, w, f"{where}[{i}]")
    elif isinstance(want, (np.ndarray, np.generic)):
        assert got.dtype == want.dtype and got.shape == want.shape, f"{where}: {got.dtype}{got.shape}"
        assert np.ascontiguousarray(got).tobytes() == np.ascontiguousarray(want).tobytes(), where
    elif isinstance(want, float):
        assert struct.pack("<d", got) == struct.pack("<d", want), f"{where}: {got!r} != {want!r}"
    else:
        assert got == want, f"{where}: {got!r} != {want!r}"


def round_trip(tmp_path: Path, payload: dict[str, Any], **meta: Any) -> Any:
    store = CheckpointStore(tmp_path / "ckpt")
    store.write(payload, step=7, meta=meta)
    loaded = store.load_latest()
    assert loaded is not None and loaded.step == 7 and loaded.meta == meta
    return loaded


def nan_with_payload(bits: int) -> float:
    return struct.unpack("<d", struct.pack("<Q", bits))[0]


def test_round_trip_every_leaf_kind(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    payload = {
        "replica-0": {
            "positions": rng.standard_normal((50, 3)),
            "types": rng.integers(0, 4, 50, dtype=np.int32),
            "mask": rng.random(50) > 0.5,
            "energy32": np.float32(-1.5),
        },
        "rank3": {"deep": {"deeper": {"x": np.arange(4, dtype=np.uint16)}}},
        "int": 42,
        "neg_int": -(2**63),
        "int64_max": 2**63 - 1,
        "big": 2**127 + 5,
        "neg_big": -(2**100),
        "just_over": 2**63,
        "float": 0.1,
        "neg_zero": -0.0,
        "nan": math.nan,
        "inf": math.inf,
        "ninf": -math.inf,
        "true": True,
        "false": False,
        "zero_int": 0,
        "str": "Na₂Fe[Fe(CN)₆] — 普鲁士蓝 🔋",
        "empty_str": "",
        "nul_str": "a\0b",
        "bytes": b"\x00\xffraw",
        "empty_bytes": b"",
        "none": None,
        "list": [1, 2**127 + 5, -0.0, math.nan, math.inf, True, None, "s", b"\x01", [1.5, "n"]],
        "tuple": (1, 2.5, "x"),
        "empty_list": [],
        "empty_dict": {},
        "zero_d": np.array(3.25),
        "empty_1d": np.zeros(0, dtype=np.float32),
        "empty_2d": np.zeros((3, 0), dtype=np.int8),
        "fortran": np.asfortranarray(rng.standard_normal((4, 5))),
        "strided": np.arange(20.0)[::3],
        "npint": np.int64(-3),
        "npbool": np.bool_(True),
        "npfloat64": np.float64(2.5),
        "weird key: spaces & ümlauts.": 1,
    }
    loaded = round_trip(tmp_path, payload, note="all kinds", n=3)
    assert_exact(loaded.payload, payload)


@pytest.mark.parametrize(
    "dtype",
    ["?", "i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "f2", "f4", "f8", "g", "c8", "c16", ">i4", ">f8", ">c16"],
)
def test_numeric_dtypes_and_shapes(tmp_path: Path, dtype: str) -> None:
    base = np.arange(24) % 7 - 3
    payload = {
        "nd": (base.reshape(2, 3, 4) / (1 if np.dtype(dtype).kind in "biu" else 3)).astype(dtype),
        "zero_d": np.array(base[5], dtype=dtype),
        "empty": np.zeros((0, 2), dtype=dtype),
        "transposed": base.reshape(4, 6).astype(dtype).T,
    }
    assert_exact(round_trip(tmp_path, payload).payload, payload)


def test_float_bit_patterns_survive(tmp_path: Path) -> None:
    odd_nan = nan_with_payload(0xFFF0_0000_0000_0123)  # negative NaN with a payload
    arr = np.array([odd_nan, -0.0, 5e-324, math.inf])
    payload = {"scalar": odd_nan, "list": [odd_nan, -0.0, 5e-324], "arr": arr}
    got = round_trip(tmp_path, payload).payload
    assert_exact(got, payload)
    assert struct.pack("<d", got["list"][0]) == struct.pack("<d", odd_nan)


def test_bool_int_float_stay_distinct(tmp_path: Path) -> None:
    payload = {"b": True, "i": 1, "f": 1.0, "l": [True, 1, 1.0, False, 0, 0.0]}
    got = round_trip(tmp_path, payload).payload
    assert [type(v) for v in got.values()] == [bool, int, float, list]
    assert [type(v) for v in got["l"]] == [bool, int, float, bool, int, float]
    assert_exact(got, payload)


def test_key_order_and_empty_payload(tmp_path: Path) -> None:
    payload = {"zeta": {}, "alpha": {"b": {}, "a": 1}, "mid": 2}
    assert_exact(round_trip(tmp_path, payload).payload, payload)
    assert_exact(round_trip(tmp_path / "e", {}).payload, {})


def test_loaded_checkpoint_fields(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path)
    path = store.write({"a": 1}, step=12, meta={"campaign": "gcmc", "t_ps": 1.5})
    assert path == tmp_path / "ckpt-00000012.h5" == tmp_path / checkpoint_name(12)
    loaded = store.load_latest()
    assert loaded is not None
    assert (loaded.step, loaded.path, loaded.meta) == (12, path, {"campaign": "gcmc", "t_ps": 1.5})
    with h5py.File(path, "r") as f:
        assert f.attrs["schema_version"] == SCHEMA_VERSION
        assert f.attrs["step"] == 12
        assert json.loads(f.attrs["meta"]) == loaded.meta
        assert f.attrs["created"] == loaded.created
        ds = f["payload/a"]
        assert ds.attrs["kind"] == "int" and len(ds.attrs["sha256"]) == 64


@pytest.mark.parametrize(
    ("payload", "error"),
    [
        ({"a/b": 1}, ValueError),
        ({"": 1}, ValueError),
        ({".": 1}, ValueError),
        ({1: 1}, TypeError),
        ({"ok": {"set": {1, 2}}}, TypeError),
        ({"obj": np.array(["a"], dtype=object)}, TypeError),
        ({"unicode_arr": np.array(["a"])}, TypeError),
        ({"list": [np.int64(1)]}, TypeError),
    ],
)
def test_invalid_payload_rejected_without_leftovers(tmp_path: Path, payload: dict, error: type) -> None:
    store = CheckpointStore(tmp_path)
    store.write({"x": 1}, step=1, meta={})
    with pytest.raises(error):
        store.write(payload, step=2, meta={})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt-00000001.h5", "manifest.json"]
    assert store.load_latest().step == 1


def _advanced(gen: np.random.Generator) -> np.random.Generator:
    gen.random(17)
    gen.integers(0, 10, 3)
    gen.standard_normal(5)  # odd counts leave buffered 32-bit halves in some bit generators
    gen.integers(0, 2**31, 1, dtype=np.uint32)
    return gen


@pytest.mark.parametrize("bit_gen", ["PCG64", "PCG64DXSM", "MT19937", "Philox", "SFC64"])
def test_rng_round_trip(tmp_path: Path, bit_gen: str) -> None:
    gen = _advanced(np.random.Generator(getattr(np.random, bit_gen)(2024)))
    got = round_trip(tmp_path, {"rng": encode_rng(gen)}).payload
    restored = decode_rng(got["rng"])
    assert type(restored.bit_generator).__name__ == bit_gen
    np.testing.assert_array_equal(restored.random(1000), gen.random(1000))
    np.testing.assert_array_equal(restored.integers(0, 2**62, 1000), gen.integers(0, 2**62, 1000))


def test_rng_state_keeps_128_bit_ints(tmp_path: Path) -> None:
    gen = np.random.Generator(np.random.PCG64(7))
    state = round_trip(tmp_path, {"rng": encode_rng(gen)}).payload["rng"]["state"]["state"]
    assert state == gen.bit_generator.state["state"] and state["state"] > 2**64


def test_rng_round_trip_spawned_child(tmp_path: Path) -> None:
    child = np.random.SeedSequence([11, 2**70]).spawn(4)[2]
    gen = _advanced(np.random.Generator(np.random.PCG64DXSM(child)))
    gen.spawn(1)  # the restored generator must continue the spawn counter, not restart it
    payload = {"replica-0": {"rng": encode_rng(gen)}}
    restored = decode_rng(round_trip(tmp_path, payload).payload["replica-0"]["rng"])
    np.testing.assert_array_equal(restored.random(1000), gen.random(1000))
    for got, want in zip(restored.spawn(2), gen.spawn(2)):
        np.testing.assert_array_equal(got.random(100), want.random(100))


def test_decode_rng_rejects_unknown_generator() -> None:
    with pytest.raises(ValueError, match="bit generator"):
        decode_rng({"bit_generator": "Generator", "state": {}, "seed_seq": None})


# For tests that delete manifest.json on purpose.
no_manifest_warning = pytest.mark.filterwarnings("ignore:.*manifest.json is missing:pbahpc.checkpoint.CheckpointWarning")


def _write_steps(directory: Path, steps: list[int], keep: int = 3) -> CheckpointStore:
    store = CheckpointStore(directory, keep=keep)
    for step in steps:
        store.write({"x": np.full(64, step, dtype=np.float64), "step": step}, step=step, meta={"s": step})
    return store


def _ckpt_files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.glob("ckpt-*.h5"))


def test_retention_keeps_newest(tmp_path: Path) -> None:
    store = _write_steps(tmp_path, [1, 2, 3, 4, 5], keep=3)
    assert _ckpt_files(tmp_path) == [checkpoint_name(s) for s in (3, 4, 5)]
    assert store.list() == [(s, tmp_path / checkpoint_name(s)) for s in (3, 4, 5)]
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert [e["step"] for e in manifest["checkpoints"]] == [3, 4, 5]
    assert all(len(e["sha256"]) == 64 and e["size"] > 0 for e in manifest["checkpoints"])
    assert store.load_latest().payload["step"] == 5


def test_rewriting_a_step_replaces_it(tmp_path: Path) -> None:
    store = _write_steps(tmp_path, [1, 2])
    store.write({"x": "new"}, step=2, meta={})
    assert [s for s, _ in store.list()] == [1, 2]
    assert store.load_latest().payload == {"x": "new"}


def test_writing_an_older_step_removes_newer_ones(tmp_path: Path) -> None:
    store = _write_steps(tmp_path, [10, 20, 30])
    with pytest.warns(CheckpointWarning, match=re.escape(checkpoint_name(30))):
        store.write({"x": 1}, step=25, meta={})
    assert _ckpt_files(tmp_path) == [checkpoint_name(s) for s in (10, 20, 25)]
    assert store.load_latest().step == 25


def _flip(path: Path, offset: int, n: int = 8) -> None:
    with open(path, "r+b") as fh:
        fh.seek(offset)
        data = fh.read(n)
        fh.seek(offset)
        fh.write(bytes(b ^ 0xFF for b in data))


def test_flipped_bytes_fall_back_to_previous(tmp_path: Path) -> None:
    store = _write_steps(tmp_path, [1, 2, 3])
    newest = tmp_path / checkpoint_name(3)
    _flip(newest, newest.stat().st_size // 2)
    with pytest.warns(CheckpointWarning, match=re.escape(str(newest))) as record:
        loaded = store.load_latest()
    assert loaded.step == 2 and loaded.payload["step"] == 2
    assert any("falling back to" in str(w.message) and checkpoint_name(2) in str(w.message) for w in record)


@no_manifest_warning
def test_dataset_checksum_catches_flip_without_manifest(tmp_path: Path) -> None:
    store = _write_steps(tmp_path, [1, 2])
    (tmp_path / "manifest.json").unlink()
    newest = tmp_path / checkpoint_name(2)
    with h5py.File(newest, "r") as f:
        offset = f["payload/x"].id.get_offset()
    _flip(newest, offset + 16, 1)
    with pytest.warns(CheckpointWarning, match=r"ckpt-00000002\.h5.*sha256 mismatch"):
        assert store.load_latest().step == 1


@pytest.mark.parametrize("with_manifest", [True, False])
@no_manifest_warning
def test_truncated_newest_falls_back(tmp_path: Path, with_manifest: bool) -> None:
    store = _write_steps(tmp_path, [1, 2])
    if not with_manifest:
        (tmp_path / "manifest.json").unlink()
    newest = tmp_path / checkpoint_name(2)
    with open(newest, "r+b") as fh:
        fh.truncate(newest.stat().st_size // 2)
    with pytest.warns(CheckpointWarning, match=re.escape(str(newest))):
        assert store.load_latest().step == 1


@no_manifest_warning
def test_missing_dataset_is_corrupt(tmp_path: Path) -> None:
    store = _write_steps(tmp_path, [1, 2])
    (tmp_path / "manifest.json").unlink()
    with h5py.File(tmp_path / checkpoint_name(2), "r+") as f:
        del f["payload/step"]
    with pytest.warns(CheckpointWarning, match=r"ckpt-00000002\.h5.*tree_sha256"):
        assert store.load_latest().step == 1


@no_manifest_warning
def test_tampered_meta_is_corrupt(tmp_path: Path) -> None:
    store = _write_steps(tmp_path, [1, 2])
    (tmp_path / "manifest.json").unlink()
    with h5py.File(tmp_path / checkpoint_name(2), "r+") as f:
        f.attrs["meta"] = json.dumps({"s": 99})
    with pytest.warns(CheckpointWarning, match=r"ckpt-00000002\.h5"):
        assert store.load_latest().meta == {"s": 1}


def test_all_corrupt_raises(tmp_path: Path) -> None:
    store = _write_steps(tmp_path, [1, 2])
    for step in (1, 2):
        (tmp_path / checkpoint_name(step)).write_bytes(b"garbage, not HDF5")
    with pytest.raises(CheckpointError, match="no valid checkpoint"):
        store.load_latest()
    (tmp_path / "manifest.json").unlink()
    with pytest.raises(CheckpointError, match="no valid checkpoint"), pytest.warns(CheckpointWarning):
        store.load_latest()


def test_no_checkpoints_returns_none(tmp_path: Path) -> None:
    assert CheckpointStore(tmp_path / "never-created").load_latest() is None
    assert CheckpointStore(tmp_path).load_latest() is None
    assert CheckpointStore(tmp_path).list() == []


def test_leftover_tmp_ignored_and_cleaned(tmp_path: Path) -> None:
    store = _write_steps(tmp_path, [1, 2])
    # A kill -9 mid-write leaves a partial file under the temporary name.
    partial = tmp_path / (checkpoint_name(3) + ".tmp")
    partial.write_bytes((tmp_path / checkpoint_name(2)).read_bytes()[:500])
    manifest_tmp = tmp_path / "manifest.json.tmp"
    manifest_tmp.write_text("{")
    unrelated = tmp_path / "notes.tmp"
    unrelated.write_text("not ours")
    assert store.load_latest().step == 2
    assert sorted(store.cleanup_temp()) == sorted([partial, manifest_tmp])
    assert not partial.exists() and not manifest_tmp.exists() and unrelated.exists()
    assert store.cleanup_temp() == []


def test_failed_write_leaves_old_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = _write_steps(tmp_path, [1])

    def crash(*args: Any) -> None:
        raise OSError("disk full")

    monkeypatch.setattr("pbahpc.checkpoint.store.os.replace", crash)
    with pytest.raises(OSError, match="disk full"):
        store.write({"x": 2}, step=2, meta={})
    monkeypatch.undo()
    assert _ckpt_files(tmp_path) == [checkpoint_name(1)] and not list(tmp_path.glob("*.tmp"))
    assert store.load_latest().step == 1


@pytest.mark.parametrize("damage", ["missing", "garbage", "bad_entry"])
def test_unusable_manifest_still_loads_newest(tmp_path: Path, damage: str) -> None:
    store = _write_steps(tmp_path, [1, 2, 3])
    manifest = tmp_path / "manifest.json"
    if damage == "missing":
        manifest.unlink()
    elif damage == "garbage":
        manifest.write_bytes(b"\x00{not json")
    else:
        manifest.write_text(json.dumps({"checkpoints": [{"step": 3, "file": "../../etc/passwd"}]}))
    with pytest.warns(CheckpointWarning, match="manifest"):
        loaded = store.load_latest()
    assert loaded.step == 3 and loaded.payload["step"] == 3
    # The next write rebuilds the manifest.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CheckpointWarning)
        store.write({"step": 4}, step=4, meta={})
    assert [s for s, _ in store.list()] == [4]
    assert _ckpt_files(tmp_path) == [checkpoint_name(s) for s in (2, 3, 4)]


def test_manifest_entry_without_file_is_skipped(tmp_path: Path) -> None:
    store = _write_steps(tmp_path, [1, 2])
    (tmp_path / checkpoint_name(2)).unlink()
    with pytest.warns(CheckpointWarning, match=r"ckpt-00000002\.h5.*missing"):
        assert store.load_latest().step == 1
    (tmp_path / checkpoint_name(1)).unlink()
    with pytest.raises(CheckpointError, match="none exists"), pytest.warns(CheckpointWarning):
        store.load_latest()


def _set_schema(path: Path, version: int) -> None:
    with h5py.File(path, "r+") as f:
        f.attrs["schema_version"] = version


@no_manifest_warning
def test_newer_schema_falls_back(tmp_path: Path) -> None:
    store = _write_steps(tmp_path, [1, 2])
    (tmp_path / "manifest.json").unlink()
    _set_schema(tmp_path / checkpoint_name(2), SCHEMA_VERSION + 1)
    with pytest.warns(CheckpointWarning, match=r"ckpt-00000002\.h5.*newer"):
        assert store.load_latest().step == 1


def test_older_schema_raises(tmp_path: Path) -> None:
    store = _write_steps(tmp_path, [1, 2])
    (tmp_path / "manifest.json").unlink()
    _set_schema(tmp_path / checkpoint_name(2), SCHEMA_VERSION - 1)
    with pytest.raises(CheckpointError, match="older than the oldest supported") as info:
        with pytest.warns(CheckpointWarning, match="manifest"):
            store.load_latest()
    assert not isinstance(info.value, CorruptCheckpointError)


def test_store_argument_validation(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        CheckpointStore(tmp_path, keep=0)
    store = CheckpointStore(tmp_path)
    for bad_step in (-1, 1.0, True):
        with pytest.raises(ValueError):
            store.write({}, step=bad_step, meta={})
    with pytest.raises(TypeError):
        store.write({}, step=1, meta={"x": object()})
    assert not tmp_path.joinpath(checkpoint_name(1)).exists()
