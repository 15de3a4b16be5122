"""A directory of rotating HDF5 checkpoints with an atomic manifest and fallback on corruption.

Crash safety: each file is written as ``<name>.tmp``, fsynced, renamed into place and the directory
fsynced before the manifest changes or anything is deleted, so a kill -9 at any point leaves the
previous or the new checkpoint valid. The manifest (step, file, whole-file sha256, size, time)
is an accelerator for verification, not the source of truth: loading scans the directory.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import warnings
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .h5format import (
    SCHEMA_VERSION,
    CheckpointError,
    CorruptCheckpointError,
    read_checkpoint_file,
    write_checkpoint_file,
)

MANIFEST_NAME = "manifest.json"
_TMP_SUFFIX = ".tmp"
_CKPT_RE = re.compile(r"ckpt-(\d{8,})\.h5")


class CheckpointWarning(UserWarning):
    """A checkpoint or the manifest was skipped, or a checkpoint was removed."""


@dataclass(frozen=True)
class LoadedCheckpoint:
    """A verified checkpoint as returned by CheckpointStore.load_latest."""

    payload: dict[str, Any]
    meta: dict[str, Any]
    step: int
    path: Path
    created: str  # UTC ISO 8601 time of writing


@dataclass(frozen=True)
class _Entry:
    step: int
    file: str
    sha256: str
    size: int
    time: str

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> _Entry:
        entry = cls(step=d["step"], file=d["file"], sha256=d["sha256"], size=d["size"], time=d["time"])
        if (
            type(entry.step) is not int
            or entry.file != checkpoint_name(entry.step)
            or type(entry.size) is not int
            or not isinstance(entry.sha256, str)
            or len(entry.sha256) != 64
            or not isinstance(entry.time, str)
        ):
            raise ValueError(f"malformed entry {d!r}")
        return entry


def checkpoint_name(step: int) -> str:
    """File name of the checkpoint for ``step``."""
    return f"ckpt-{step:08d}.h5"


class CheckpointStore:
    """Checkpoints ``ckpt-{step:08d}.h5`` in one directory, keeping the newest ``keep``."""

    def __init__(self, directory: Path | str, keep: int = 3) -> None:
        if type(keep) is not int or keep < 1:
            raise ValueError(f"keep must be an int >= 1, got {keep!r}")
        self.directory = Path(directory)
        self.keep = keep

    def write(self, payload: dict[str, Any], *, step: int, meta: dict[str, Any]) -> Path:
        """Atomically write the checkpoint for ``step``, update the manifest, apply retention.

        Checkpoints with a larger step are deleted (with a warning): they belong to a run history
        that was abandoned by restarting from an earlier checkpoint, and would otherwise shadow
        this one on the next restart.
        """
        if type(step) is not int or not 0 <= step < 2**63:
            raise ValueError(f"step must be an int in [0, 2**63), got {step!r}")
        self.directory.mkdir(parents=True, exist_ok=True)
        final = self.directory / checkpoint_name(step)
        tmp = final.with_name(final.name + _TMP_SUFFIX)
        try:
            write_checkpoint_file(tmp, payload, step=step, meta=meta)
            digest, size = _digest_and_sync(tmp)
            entries = self._read_manifest() or {}
            if entries.pop(step, None) is not None:
                # Rewriting a step: drop the old entry first, so that neither file is ever
                # checked against the other one's checksum.
                self._write_manifest(entries)
            os.replace(tmp, final)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        _fsync_dir(self.directory)
        entries[step] = _Entry(step, final.name, digest, size, _utc_now())

        on_disk = self._scan()
        for stale in sorted(s for s in on_disk if s > step):
            warnings.warn(
                f"removing checkpoint {on_disk[stale]}: its step {stale} is ahead of the step {step} "
                "just written (abandoned run history)",
                CheckpointWarning,
                stacklevel=2,
            )
            on_disk.pop(stale).unlink()
        kept = sorted(on_disk)[-self.keep :]
        self._write_manifest({s: entries[s] for s in kept if s in entries})  # also fsyncs the unlinks
        for s in on_disk.keys() - set(kept):
            on_disk[s].unlink(missing_ok=True)
        _fsync_dir(self.directory)
        return final

    def load_latest(self) -> LoadedCheckpoint | None:
        """Newest valid checkpoint, falling back to older ones (with warnings) past corrupt ones.

        Returns None if there is no checkpoint at all. Raises CheckpointError if checkpoints exist
        (on disk or in the manifest) but none is valid, or one has a too-old schema.
        """
        entries, on_disk = self.listing()
        if entries is None:
            if on_disk and not (self.directory / MANIFEST_NAME).exists():
                warnings.warn(
                    f"{self.directory / MANIFEST_NAME} is missing; using the checkpoints found on disk",
                    CheckpointWarning,
                    stacklevel=2,
                )
            entries = {}
        for s in sorted(entries.keys() - on_disk.keys()):
            warnings.warn(
                f"checkpoint {self.directory / entries[s].file} is listed in the manifest but missing "
                "on disk; skipped",
                CheckpointWarning,
                stacklevel=2,
            )
        if not on_disk:
            if entries:
                raise CheckpointError(
                    f"{self.directory}: the manifest lists {len(entries)} checkpoint(s) but none exists"
                )
            return None

        failures: list[tuple[Path, str]] = []
        for path, found in self.verified(entries, on_disk):
            if isinstance(found, CorruptCheckpointError):
                failures.append((path, str(found)))
                continue
            if isinstance(found, CheckpointError):
                raise found
            for bad, reason in failures:
                warnings.warn(
                    f"checkpoint {bad} is corrupt ({reason}); falling back to {path}",
                    CheckpointWarning,
                    stacklevel=2,
                )
            return found
        reasons = "; ".join(f"{p.name}: {r}" for p, r in failures)
        raise CheckpointError(f"no valid checkpoint in {self.directory}: {reasons}")

    def listing(self) -> tuple[dict[int, _Entry] | None, dict[int, Path]]:
        """Read-only: the manifest's entries by step (None when it is missing, or unusable: then with a
        CheckpointWarning) and the checkpoint files on disk by step."""
        return self._read_manifest(), self._scan()

    def verified(self, entries: dict[int, _Entry], on_disk: dict[int, Path]
                 ) -> Iterator[tuple[Path, LoadedCheckpoint | CheckpointError]]:
        """Read-only: the files of ``listing()``, newest first, each with the checkpoint or why it fails
        (whole-file sha256 when listed, then every leaf and the tree digest), down to the one a resume
        stops at: the first valid one, or one it refuses (a CheckpointError that is not corruption,
        e.g. a too-old schema: resuming from an older checkpoint instead would silently lose work)."""
        for step in sorted(on_disk, reverse=True):
            path = on_disk[step]
            try:
                if step in entries:
                    _verify_whole_file(path, entries[step])
                payload, header = read_checkpoint_file(path)
                if header.step != step:
                    raise CorruptCheckpointError(f"file records step {header.step}")
            except CorruptCheckpointError as exc:
                yield path, exc
                continue
            except CheckpointError as exc:
                yield path, exc
                return
            yield path, LoadedCheckpoint(payload, header.meta, step, path, header.created)
            return

    def list(self) -> list[tuple[int, Path]]:
        """(step, path) of the checkpoints in the manifest, oldest first."""
        entries = self._read_manifest() or {}
        return [(s, self.directory / entries[s].file) for s in sorted(entries)]

    def cleanup_temp(self) -> list[Path]:
        """Remove this store's leftover ``*.tmp`` files (interrupted writes); return them."""
        if not self.directory.is_dir():
            return []
        removed = [
            p
            for p in self.directory.iterdir()
            if p.name.endswith(_TMP_SUFFIX)
            and (
                p.name == MANIFEST_NAME + _TMP_SUFFIX
                or _CKPT_RE.fullmatch(p.name.removesuffix(_TMP_SUFFIX)) is not None
            )
        ]
        for p in removed:
            p.unlink(missing_ok=True)
        if removed:
            _fsync_dir(self.directory)
        return removed

    def _scan(self) -> dict[int, Path]:
        if not self.directory.is_dir():
            return {}
        found: dict[int, Path] = {}
        for p in self.directory.iterdir():
            m = _CKPT_RE.fullmatch(p.name)
            if m is not None and p.name == checkpoint_name(int(m[1])):
                found[int(m[1])] = p
        return found

    def _read_manifest(self) -> dict[int, _Entry] | None:
        """Manifest entries by step; None (with a warning if it exists) when missing or unusable."""
        path = self.directory / MANIFEST_NAME
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
            entries = [_Entry.from_json(e) for e in doc["checkpoints"]]
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            warnings.warn(
                f"ignoring unusable manifest {path} ({type(exc).__name__}: {exc})",
                CheckpointWarning,
                stacklevel=3,
            )
            return None
        return {e.step: e for e in entries}

    def _write_manifest(self, entries: dict[int, _Entry]) -> None:
        doc = {"schema_version": SCHEMA_VERSION, "checkpoints": [asdict(entries[s]) for s in sorted(entries)]}
        path = self.directory / MANIFEST_NAME
        tmp = path.with_name(path.name + _TMP_SUFFIX)
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(doc, fh, indent=1)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        _fsync_dir(self.directory)


def _utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def _fsync_dir(directory: Path) -> None:
    # Makes renames and unlinks in the directory durable.
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _digest_and_sync(path: Path) -> tuple[str, int]:
    """Whole-file sha256 and size of ``path``, after forcing its data to disk."""
    with open(path, "rb") as fh:
        digest = hashlib.file_digest(fh, "sha256").hexdigest()
        os.fsync(fh.fileno())  # fsync acts on the inode, so this read-only fd flushes HDF5's writes
        return digest, os.fstat(fh.fileno()).st_size


def _verify_whole_file(path: Path, entry: _Entry) -> None:
    try:
        size = path.stat().st_size
        if size != entry.size:
            raise CorruptCheckpointError(f"size {size} B != {entry.size} B in the manifest (truncated?)")
        with open(path, "rb") as fh:
            digest = hashlib.file_digest(fh, "sha256").hexdigest()
    except OSError as exc:
        raise CorruptCheckpointError(f"unreadable: {exc}") from exc
    if digest != entry.sha256:
        raise CorruptCheckpointError("whole-file sha256 differs from the manifest")


def write_tree(path: Path | str, payload: dict[str, Any], *, meta: dict[str, Any]) -> None:
    """Atomically write ``payload`` as one HDF5 file in the checkpoint format (e.g. results.h5).

    Read it back, verified, with ``read_checkpoint_file``.
    """
    path = Path(path)
    tmp = path.with_name(path.name + _TMP_SUFFIX)
    try:
        write_checkpoint_file(tmp, payload, step=0, meta=meta)
        _digest_and_sync(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
