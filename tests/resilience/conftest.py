"""Fixtures for the resilience suite: virtual BMCs in their own processes, a host writer.

The virtual BMC runs in a subprocess (pyghmi's state is process-wide) that a test can kill
with SIGKILL and start again on the same address and port. The "host" is the test itself,
writing a deterministic stream into the pty master the BMC bridges; it knows exactly what it
sent and when, which is what lets every test state "nothing lost" as an equation.
"""

from __future__ import annotations

import hashlib
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.ipmi.conftest import (
    PASSWORD,
    USER,
    PtyPair,
    ipmi_sim,  # noqa: F401 (a fixture for the tests here)
)

REPO = Path(__file__).resolve().parents[2]

__all__ = ["PASSWORD", "USER", "BmcProcess", "HostWriter", "pattern", "sha", "wait_until"]


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def pattern(n: int, seed: int = 0) -> bytes:
    """``n`` deterministic bytes: every byte value, plus numbered records to locate holes."""
    out = bytearray()
    i = 0
    while len(out) < n:
        out += f"<{seed}:{i:07d}>".encode() + bytes((i * 7 + k) % 256 for k in range(48))
        i += 1
    return bytes(out[:n])


def wait_until(cond: Callable[[], bool], timeout: float, step: float = 0.02) -> bool:
    """Poll ``cond`` until it holds or ``timeout`` passes; returns the last answer."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(step)
    return cond()


class BmcProcess:
    """``python -m solcap.sim.bmc PTY`` on ``address:port``; kill -9 and restart on demand."""

    def __init__(self, pty_path: str, address: str = "127.0.0.1", port: int = 0) -> None:
        self.pty_path = pty_path
        self.address = address
        self.port = port
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> BmcProcess:
        env = dict(os.environ, IPMI_PASSWORD=PASSWORD)
        cmd = [sys.executable, "-m", "solcap.sim.bmc", self.pty_path]
        cmd += ["--address", self.address, "--port", str(self.port)]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, env=env, cwd=REPO)
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], 20)
        assert ready, "virtual BMC did not start"
        line = self.proc.stdout.readline().decode()
        assert line.startswith("port="), line
        self.port = int(line.split("=")[1])
        self.starts += 1
        return self

    def kill(self) -> None:
        """SIGKILL: no goodbye to the client, buffered serial output is lost with it."""
        if self.proc is not None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
            self.proc = None

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
            self.proc = None


@pytest.fixture
def pty_pair() -> Iterator[PtyPair]:
    pair = PtyPair()
    yield pair
    pair.close()


@pytest.fixture
def bmc(pty_pair: PtyPair) -> Iterator[BmcProcess]:
    proc = BmcProcess(pty_pair.path).start()
    yield proc
    proc.stop()


class HostWriter:
    """Writes chunks into the pty master from a thread; ``sent`` is what went in so far."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._sent = bytearray()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    @property
    def sent(self) -> bytes:
        with self._lock:
            return bytes(self._sent)

    def write(self, data: bytes, *, chunk: int = 1024, pace: float = 0.0) -> threading.Thread:
        """Write ``data`` in the background (a full pty blocks the thread, not the test)."""

        def run() -> None:
            view = memoryview(data)
            while view:
                n = os.write(self.fd, view[:chunk])
                with self._lock:
                    self._sent += view[:n]
                view = view[n:]
                if pace:
                    time.sleep(pace)

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        self._threads.append(thread)
        return thread

    def join(self, timeout: float) -> None:
        for thread in self._threads:
            thread.join(timeout)
            assert not thread.is_alive(), "host writer is stuck (nobody reads the BMC side?)"
