"""Deterministic byte streams, a paced serial-side writer and an echoing far side.

The serial side of every benchmark is a pty master written at the line rate of an 8N1 line
(``baud / 10`` bytes per second), the way a real UART drains. Streams are derived from a seed
(SHAKE-256), so each host gets different bytes: crossed sessions show up as SHA-256 mismatches.
"""

from __future__ import annotations

import errno
import hashlib
import os
import select
import threading
import time
from dataclasses import dataclass, field

#: Seconds between the writer's wake-ups; each wake-up writes what the line rate allows so far.
TICK = 0.005


def make_stream(size: int, seed: int) -> bytes:
    """``size`` pseudo-random bytes (all 256 values) that depend only on ``seed``."""
    return hashlib.shake_256(f"solcap-bench-{seed}".encode()).digest(size)


def line_rate(baud: int) -> float:
    """Bytes per second of an 8N1 serial line (10 bits per byte)."""
    return baud / 10.0


@dataclass
class PacedStream:
    """One pty master and the bytes still to write into it."""

    fd: int
    data: bytes
    written: int = 0
    first: float = 0.0
    last: float = 0.0
    stalls: int = 0  # times the pty was full when the line rate wanted more (back-pressure)


@dataclass
class PacedWriter:
    """Write each stream into its pty master at ``rate`` bytes/s, all in one thread.

    A pty that cannot take more (the BMC is not reading) is retried on the next tick, so a
    slow reader shows up as ``stalls`` and a late ``last`` rather than as lost bytes.
    """

    streams: list[PacedStream]
    rate: float
    done: threading.Event = field(default_factory=threading.Event)

    def run(self, start_at: float) -> None:
        """Block until every stream is written (call in a thread)."""
        for s in self.streams:
            os.set_blocking(s.fd, False)
        delay = start_at - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        t0 = time.monotonic()
        pending = list(self.streams)
        while pending:
            now = time.monotonic()
            due = min(int((now - t0) * self.rate) + 1, max(len(s.data) for s in pending))
            still = []
            for s in pending:
                want = min(due, len(s.data))
                if want > s.written:
                    try:
                        n = os.write(s.fd, s.data[s.written : want])
                    except OSError as exc:
                        if exc.errno != errno.EAGAIN:
                            raise
                        n = 0
                    if n:
                        if not s.written:
                            s.first = now
                        s.written += n
                        s.last = time.monotonic()
                    if s.written < want:
                        s.stalls += 1
                if s.written < len(s.data):
                    still.append(s)
            pending = still
            time.sleep(TICK)
        self.done.set()


class Echoer:
    """The far side of the keystroke test: every byte read from a pty master is written back."""

    def __init__(self, fds: list[int]) -> None:
        self.fds = fds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-echo", daemon=True)

    def start(self) -> Echoer:
        for fd in self.fds:
            os.set_blocking(fd, False)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2)

    def _run(self) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select(self.fds, [], [], 0.1)
            for fd in ready:
                try:
                    data = os.read(fd, 4096)
                except OSError:
                    continue
                if data:
                    os.write(fd, data)


def drain_fds(fds: list[int]) -> None:
    """Discard whatever clients typed into these pty masters (stream runs ignore input)."""
    for fd in fds:
        os.set_blocking(fd, False)
        try:
            while os.read(fd, 65536):
                pass
        except OSError:
            pass
