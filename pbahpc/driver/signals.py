"""Stop requests from the batch system (SIGTERM, SIGUSR1), noticed even inside long native calls.

A Python signal handler only runs when the interpreter regains control, which a native call does
not give back until it ends. The handler's wake-up byte (``set_wakeup_fd``) is read by a watcher
thread, which sets the flag at once and runs the registered interrupt callbacks (ctypes calls
release the GIL, so the thread runs meanwhile). Callbacks run on one rank at its own moment: they
must not be collective. A multi-rank LAMMPS run is stopped with
``pbahpc.atomistic.lammps_stop.StopCheck`` instead, which polls the flag collectively in the MD loop.
"""
from __future__ import annotations

import signal
import socket
import threading
from collections.abc import Callable

DEFAULT_SIGNALS = (signal.SIGTERM, signal.SIGUSR1)


class StopSignal:
    """Records that a stop was requested; use as a context manager around the campaign.

    ``after_exit``: what the signals do once the block is left (None: the handlers from before). A
    process that ends with the block passes ``signal.SIG_IGN``: a batch system's warning that arrives
    after the campaign ended, during MPI finalisation, has nothing left to stop, and the default action
    would end a completed run with 128 + the signal (a finished SLURM job recorded as FAILED)."""

    def __init__(self, signals=DEFAULT_SIGNALS, after_exit=None):
        self.signals = tuple(signals)
        self.after_exit = after_exit
        self.received: int | None = None
        self._callbacks: list[Callable[[], None]] = []
        self._lock = threading.Lock()
        self._old: dict[int, object] = {}
        self._old_fd = -1
        self._rsock = self._wsock = None
        self._thread: threading.Thread | None = None

    @property
    def requested(self) -> bool:
        return self.received is not None

    def add_interrupt(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call ``callback`` from the watcher thread when a signal arrives; returns a remover."""
        with self._lock:
            self._callbacks.append(callback)
            fire = self.requested
        if fire:
            callback()

        def remove() -> None:
            with self._lock:
                if callback in self._callbacks:
                    self._callbacks.remove(callback)
        return remove

    def request(self, signum: int) -> None:
        """Mark a stop as requested (also usable by tests and by the driver itself)."""
        with self._lock:
            if self.received is None:
                self.received = signum
            callbacks = list(self._callbacks)
        for cb in callbacks:
            try:
                cb()
            except Exception:  # noqa: BLE001 - an interrupt hook must never kill the watcher
                pass

    def _watch(self) -> None:
        while True:
            try:
                data = self._rsock.recv(64)
            except OSError:
                return
            if not data:
                return
            for byte in data:
                if byte in self.signals:
                    self.request(byte)

    def __enter__(self) -> StopSignal:
        self._rsock, self._wsock = socket.socketpair()
        self._wsock.setblocking(False)
        for sig in self.signals:
            self._old[sig] = signal.signal(sig, lambda signum, frame: self.request(signum))
        self._old_fd = signal.set_wakeup_fd(self._wsock.fileno(), warn_on_full_buffer=False)
        self._thread = threading.Thread(target=self._watch, name="pbahpc-signals", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        signal.set_wakeup_fd(self._old_fd)
        for sig, old in self._old.items():
            signal.signal(sig, old if self.after_exit is None else self.after_exit)
        self._wsock.close()
        self._rsock.close()
