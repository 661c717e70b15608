"""Helpers for driving the virtual host through its real pseudo-terminal."""

from __future__ import annotations

import os
import select
import termios
import time
import tty
from collections.abc import Iterator

import pytest

from solcap.sim.host import SimConfig, VirtualHost


class PtyClient:
    """A console client on the slave side: raw mode, keeps every byte it ever read."""

    def __init__(self, path: str) -> None:
        self.fd = os.open(path, os.O_RDWR | os.O_NOCTTY)
        tty.setraw(self.fd, termios.TCSANOW)
        self.buf = bytearray()

    def close(self) -> None:
        os.close(self.fd)

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self.fd, view) :]

    def pump(self, timeout: float) -> bool:
        """Read whatever arrives within ``timeout``; True if something came."""
        ready, _, _ = select.select([self.fd], [], [], max(0.0, timeout))
        if not ready:
            return False
        self.buf += os.read(self.fd, 65536)
        return True

    def expect(self, needle: bytes, timeout: float = 10.0, start: int = 0) -> int:
        """Wait until ``needle`` appears at or after ``start``; return the index after it."""
        deadline = time.monotonic() + timeout
        while True:
            index = self.buf.find(needle, start)
            if index >= 0:
                return index + len(needle)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                tail = bytes(self.buf[-400:])
                raise AssertionError(f"{needle!r} not seen within {timeout}s; tail={tail!r}")
            self.pump(min(remaining, 0.2))

    def drain(self, quiet: float = 0.05) -> None:
        """Read until the line has been quiet for ``quiet`` seconds."""
        while self.pump(quiet):
            pass

    def catch_up(self, host: VirtualHost, timeout: float = 10.0) -> None:
        """Read until the host is idle and we hold as many bytes as it has sent.

        We must keep reading meanwhile: a full pty makes the host wait (as a real UART's
        sender would), so nothing moves unless someone drains the line.
        """
        deadline = time.monotonic() + timeout
        while not (host.wait_idle(0) and len(self.buf) >= host.sent_count()):
            assert time.monotonic() < deadline, "host did not go idle"
            self.pump(0.05)

    def wait_dumps(self, host: VirtualHost, n: int, timeout: float = 30.0) -> None:
        """Read the line while waiting for ``n`` debug-key dumps to be fully sent."""
        deadline = time.monotonic() + timeout
        while not host.wait_dumps(n, 0):
            assert time.monotonic() < deadline, f"{len(host.dumps)} dumps, wanted {n}"
            self.pump(0.05)

    def wait_state(self, host: VirtualHost, state: str, timeout: float = 30.0) -> None:
        """Read the line while waiting for ``host.state`` to become ``state``."""
        deadline = time.monotonic() + timeout
        while not host.wait_state(state, 0):
            assert time.monotonic() < deadline, f"state {host.state!r}, wanted {state!r}"
            self.pump(0.05)

    def type_paced(self, host: VirtualHost, text: bytes, timeout: float = 5.0) -> None:
        """Type one byte at a time, waiting for the host's reaction to leave the line."""
        for byte in text:
            before = len(self.buf)
            self.write(bytes([byte]))
            deadline = time.monotonic() + timeout
            while len(self.buf) == before:  # the echo (GRUB redraws every key it takes)
                assert time.monotonic() < deadline, f"no reaction to {bytes([byte])!r}"
                self.pump(0.2)
            self.catch_up(host, timeout)


@pytest.fixture
def make_host() -> Iterator[object]:
    """Factory: start a VirtualHost (fast line unless told) plus a client on its pty."""
    made: list[tuple[VirtualHost, PtyClient]] = []

    def factory(**kwargs: object) -> tuple[VirtualHost, PtyClient]:
        kwargs.setdefault("fast", True)
        kwargs.setdefault("grub_timeout", 1)
        auto = bool(kwargs.pop("auto_power_on", True))
        host = VirtualHost(SimConfig(auto_power_on=False, **kwargs))  # type: ignore[arg-type]
        host.start()
        client = PtyClient(host.pty_path)
        made.append((host, client))
        if auto:
            host.power_on()
        return host, client

    yield factory
    for host, client in made:
        host.stop()
        client.close()
