"""Fixtures for the IPMI tests: pty pairs, the virtual BMC, OpenIPMI's ipmi_sim."""

from __future__ import annotations

import contextlib
import os
import select
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests import peers

if TYPE_CHECKING:
    from tests.ipmi.ipmisim import IpmiSim

PASSWORD = "s3cret-pw-for-tests"
USER = "admin"


def free_udp_port() -> int:
    """A UDP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def need(binary: str) -> str:
    """Path of the peer ``binary``: a failure under CI, else a skip naming its package."""
    return peers.need(binary)


def read_until(fd: int, want: bytes, timeout: float) -> bytes:
    """Read ``fd`` until ``want`` appears or the deadline passes; return what came."""
    got = b""
    deadline = time.monotonic() + timeout
    while want not in got:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                break
            if not chunk:
                break
            got += chunk
    return got


class PtyPair:
    """A pseudo-terminal: the test holds the master, the BMC opens ``path`` (the slave)."""

    def __init__(self) -> None:
        self.master, self.slave = os.openpty()
        self.path = os.ttyname(self.slave)

    def close(self) -> None:
        for fd in (self.master, self.slave):
            with contextlib.suppress(OSError):
                os.close(fd)


@pytest.fixture
def pty_pair() -> Iterator[PtyPair]:
    pair = PtyPair()
    yield pair
    pair.close()


class BmcAddress:
    """Where a virtual BMC in its own process listens."""

    def __init__(self, port: int) -> None:
        self.port = port


@pytest.fixture
def vbmc(vbmc_process: tuple[int, PtyPair]) -> Iterator[tuple[BmcAddress, PtyPair]]:
    """A VirtualBmc on the pty pair, in its own process: the simulator never shares a
    pyghmi (and so never solcap's I/O loop, installed by the first client session) with the
    client under test."""
    port, pair = vbmc_process
    yield BmcAddress(port), pair


@contextlib.contextmanager
def vbmc_running(pty_path: str, *options: str) -> Iterator[int]:
    """``python -m solcap.sim.bmc PTY OPTIONS…`` in its own process; yields its UDP port."""
    env = dict(os.environ, IPMI_PASSWORD=PASSWORD)
    proc = subprocess.Popen(
        [sys.executable, "-m", "solcap.sim.bmc", pty_path, *options],
        stdout=subprocess.PIPE,
        env=env,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().decode()
    assert line.startswith("port="), line
    try:
        yield int(line.split("=")[1])
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@pytest.fixture
def vbmc_process(pty_pair: PtyPair) -> Iterator[tuple[int, PtyPair]]:
    """A VirtualBmc in its own process (pyghmi's client and server share global state)."""
    with vbmc_running(pty_pair.path) as port:
        yield port, pty_pair


def ipmi_env() -> dict[str, str]:
    """Environment for real clients: the password via IPMI_PASSWORD (ipmitool -E)."""
    return dict(os.environ, IPMI_PASSWORD=PASSWORD)


WaitFor = Callable[[Callable[[], bool], float], bool]


def wait_for(cond: Callable[[], bool], timeout: float) -> bool:
    """Poll ``cond`` until true or the deadline passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.02)
    return cond()


@pytest.fixture
def ipmi_sim(tmp_path: Path) -> Iterator[IpmiSim]:
    """A fresh OpenIPMI ipmi_sim per test, its serial side connected (tests/ipmi/ipmisim.py)."""
    from tests.ipmi.ipmisim import IpmiSim

    sim = IpmiSim(tmp_path)
    try:
        yield sim.start()
    finally:
        sim.close()
