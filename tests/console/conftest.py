"""Shared fixtures for console and transport tests: real pseudo-terminals, a TCP server, and
a console on every transport (``far`` and ``link``, built in links.py)."""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.console.links import (
    LINK_IDS,
    FarEnd,
    IpmiSimFar,
    Link,
    PtyFar,
    SharedVbmc,
    TcpFar,
    VbmcFar,
    open_link,
)
from tests.ipmi.ipmisim import IpmiSim


@dataclass
class Pty:
    """A pseudo-terminal pair: the test plays the target on ``master``; solcap opens ``path``."""

    master: int
    path: str
    closed: bool = False

    def write(self, data: bytes) -> None:
        """Write all of ``data`` as the target would print it."""
        view = memoryview(data)
        while view:
            n = os.write(self.master, view)
            view = view[n:]

    def read_exactly(self, n: int) -> bytes:
        """Read ``n`` bytes that solcap sent to the target (blocks; tests are time-bounded)."""
        out = bytearray()
        while len(out) < n:
            chunk = os.read(self.master, n - len(out))
            if not chunk:
                break
            out += chunk
        return bytes(out)

    def hang_up(self) -> None:
        """Close the master side: the slave sees end of file, like a target powering off."""
        if not self.closed:
            self.closed = True
            os.close(self.master)


@pytest.fixture
def pty_pair() -> Iterator[Pty]:
    """A fresh pty; the slave descriptor is closed so solcap's open is the only one."""
    master, slave = os.openpty()
    path = os.ttyname(slave)
    os.close(slave)
    pty = Pty(master, path)
    try:
        yield pty
    finally:
        pty.hang_up()


@dataclass
class TcpServer:
    """A one-connection TCP server on 127.0.0.1 that plays the target over ``socket://``."""

    port: int
    connected: threading.Event = field(default_factory=threading.Event)
    conn: socket.socket | None = None

    @property
    def url(self) -> str:
        return f"socket://127.0.0.1:{self.port}"

    def wait_connection(self, timeout: float = 10.0) -> socket.socket:
        assert self.connected.wait(timeout), "client never connected"
        assert self.conn is not None
        return self.conn


@pytest.fixture
def tcp_server() -> Iterator[TcpServer]:
    """Accepts one client in a thread; the test then talks through ``server.conn``."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    server = TcpServer(port=listener.getsockname()[1])

    def accept() -> None:
        with contextlib.suppress(OSError):
            conn, _addr = listener.accept()
            server.conn = conn
            server.connected.set()

    thread = threading.Thread(target=accept, name="test-tcp-accept", daemon=True)
    thread.start()
    try:
        yield server
    finally:
        with contextlib.suppress(OSError):
            listener.shutdown(socket.SHUT_RDWR)  # wakes a blocked accept() on Linux
        listener.close()
        if server.conn is not None:
            server.conn.close()
        thread.join(5)


# ---------------------------------------------------------------- every transport (links.py)


@pytest.fixture(scope="module")
def shared_vbmc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SharedVbmc]:
    """One virtual BMC process for a module's vbmc links (each test syncs the line first)."""
    bmc = SharedVbmc(tmp_path_factory.mktemp("vbmc"))
    try:
        yield bmc
    finally:
        bmc.close()


@pytest.fixture(scope="module")
def shared_ipmi_sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IpmiSim]:
    """One ipmi_sim for a module's ipmi_sim links (a bounce restarts it on the same ports)."""
    sim = IpmiSim(tmp_path_factory.mktemp("ipmi_sim"))
    try:
        yield sim.start()
    finally:
        sim.close()


@pytest.fixture(params=LINK_IDS)
def far(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[FarEnd]:
    """The far end of each transport in turn, plain and under the reconnecting layer."""
    kind, _, wrapped = request.param.partition("+")
    end: FarEnd
    if kind == "pty":
        end = PtyFar(tmp_path)
    elif kind == "onebyte":
        end = PtyFar(tmp_path, "onebyte", "onebyte://")
    elif kind == "socket":
        end = TcpFar()
    elif kind == "vbmc":
        end = VbmcFar(request.getfixturevalue("shared_vbmc"))
    else:
        end = IpmiSimFar(request.getfixturevalue("shared_ipmi_sim"))
    end.reconnect = bool(wrapped)
    try:
        yield end
    finally:
        end.close()


@pytest.fixture
def link(far: FarEnd, tmp_path: Path) -> Iterator[Link]:
    """A started console on ``far``, recorded under ``tmp_path`` (see links.py)."""
    with open_link(far, tmp_path / "rec", reconnect=far.reconnect) as opened:
        yield opened
