"""Write checkpoints on a background thread, so ranks compute while the writer does HDF5 and fsync.

At most one write is in flight: submitting the next one first waits for the previous one. An error
of a background write is raised by the next ``submit`` or by ``drain``, so it is never lost.
The payload must not be mutated after submission (the driver hands over a freshly unpickled copy).
"""
from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from .store import CheckpointStore, checkpoint_name


class BackgroundWriter:
    def __init__(self, store: CheckpointStore):
        self.store = store
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self.writes = 0
        self.write_seconds = 0.0  # spent in the writer thread (HDF5 + fsync), for instrumentation

    def _write(self, payload: dict[str, Any], step: int, meta: dict[str, Any]) -> None:
        t = time.perf_counter()
        try:
            self.store.write(payload, step=step, meta=meta)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller by drain()
            self._error = exc
        self.writes += 1
        self.write_seconds += time.perf_counter() - t

    def drain(self) -> None:
        """Wait for the write in flight; raise its error, if any."""
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def submit(self, payload: dict[str, Any], *, step: int, meta: dict[str, Any]) -> Path:
        """Start writing checkpoint ``step``; returns the path it will have once written."""
        self.drain()
        self._thread = threading.Thread(target=self._write, args=(payload, step, meta),
                                        name="pbahpc-checkpoint", daemon=False)
        self._thread.start()
        return self.store.directory / checkpoint_name(step)
