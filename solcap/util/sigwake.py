"""Waiting in the main thread for signals that may land on any thread.

The kernel hands a process-directed signal (``kill PID``) to any thread that does not block
it. Python's C-level handler then only sets a flag; the Python handler runs when the *main*
thread next executes bytecode. A main thread blocked in :meth:`threading.Event.wait` without
a timeout never does, so a ``solcap serve`` with console threads ignored a SIGHUP (and the
SIGTERM after it) about one time in ten. :func:`signal.set_wakeup_fd` closes the gap: the C
handler, on whichever thread it runs, writes the signal's number to a pipe, and the main thread
waits on that pipe with :func:`select.select`.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
from collections.abc import Iterable
from types import FrameType, TracebackType
from typing import Any


def _ignore(_signum: int, _frame: FrameType | None) -> None:
    """A Python-level handler must exist for the signal to be caught; the pipe carries it."""


class SignalWake:
    """Catch ``signals`` in a ``with`` block (main thread); :meth:`wait` returns those that came."""

    def __init__(self, signals: Iterable[int]) -> None:
        self._signals = frozenset(int(s) for s in signals)
        self._read, self._write = os.pipe()
        os.set_blocking(self._read, False)
        os.set_blocking(self._write, False)
        self._previous: dict[int, Any] = {}
        self._previous_fd = -1

    def __enter__(self) -> SignalWake:
        for sig in self._signals:
            self._previous[sig] = signal.signal(sig, _ignore)
        self._previous_fd = signal.set_wakeup_fd(self._write, warn_on_full_buffer=False)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        signal.set_wakeup_fd(self._previous_fd)
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        os.close(self._read)
        os.close(self._write)

    def wait(self, timeout: float | None = None) -> list[int]:
        """Signals caught since the last call, in order; waits up to ``timeout`` for one."""
        select.select([self._read], [], [], timeout)
        data = b""
        with contextlib.suppress(BlockingIOError):
            while chunk := os.read(self._read, 512):
                data += chunk
        return [number for number in data if number in self._signals]
