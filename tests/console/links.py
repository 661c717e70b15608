"""The Console suite's matrix: every transport, each with a far end the test drives.

tbot runs one set of board tests over every channel it can reach a board by; this is the same
habit for solcap's :class:`~solcap.console.core.Console`. A *link* is a console opened the way
:mod:`solcap.connect` opens one — the transport registry's factory for the URL, wrapped in
:class:`~solcap.transports.reconnect.ReconnectingTransport` for the ``+reconnect`` variants, a real
:class:`~solcap.capture.recording.Recording` as its sink — on one of:

``pty``        a pseudo-terminal (``/dev/pts/N``); the far end holds the master
``onebyte``    the same pty, read at most one byte at a time (tbot's slow channel)
``socket``     ``socket://`` to a TCP server on 127.0.0.1 (ser2net's raw mode)
``vbmc``       ``ipmi://`` to solcap's virtual BMC in its own process, bridged to a pty
``ipmi_sim``   ``ipmi://`` to OpenIPMI's ipmi_sim, whose serial side is a TCP connection

The far end (:class:`FarEnd`) is the host's side of the line: what it writes, solcap reads;
what solcap sends, it reads. It can end the link for good (:meth:`FarEnd.hang_up`) or end it
and be there again (:meth:`FarEnd.bounce`), each the way that kind of link really ends: a
pty's master closed, a TCP server dropping the connection, another operator deactivating SOL
(ipmitool), a BMC killed and started again (ipmi_sim), the payload taken by another client.

The two BMCs are shared by the tests of a module (one process each; starting one per test
would be most of the suite's time), so a link first passes a fresh token each way
(:func:`sync`): whatever an earlier test left on the line is read and dropped before the
console sees its first byte.
"""

from __future__ import annotations

import abc
import contextlib
import itertools
import os
import select
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from solcap.capture.recording import Recording
from solcap.connect import RecordedConsole
from solcap.errors import ConnectError
from solcap.transports.base import Transport
from solcap.transports.ipmi import IpmiSolTransport, IpmiTarget
from solcap.transports.ipmi.target import Liveness
from solcap.transports.reconnect import ReconnectingTransport, ReconnectPolicy
from solcap.transports.registry import OpenOptions, open_transport, register_scheme
from solcap.transports.serialport import SerialTransport
from tests.ipmi.conftest import PASSWORD, USER, ipmi_env, need, vbmc_running
from tests.ipmi.ipmisim import IpmiSim

#: The transports, and each wrapped in the reconnecting layer: the suite's parameters.
KINDS = ("pty", "onebyte", "socket", "vbmc", "ipmi_sim")
LINK_IDS = [*KINDS, *(f"{kind}+reconnect" for kind in KINDS)]
#: The console's host name (error messages start with it).
HOST = "xen-01"
DEATH = b"Panic on CPU"
#: Reconnect at once and give up soon: a far end gone for good ends a test in a second.
QUICK_RECONNECT = ReconnectPolicy(initial_delay=0.05, max_delay=0.2, max_attempts=4, max_total=20)
#: ipmi_sim never tells a session that it ended (a steal, its own restart): only the keepalive
#: finds out, after ``detection_bound`` (2.2 s here, 12 s by default).
QUICK_LIVENESS = Liveness(keepalive=0.5, retry_interval=0.4, retries=3)

_tokens = itertools.count(1)


class OneByteTransport(Transport):
    """The slowest link there is: every read returns at most one byte (tbot's slow channel)."""

    def __init__(self, inner: Transport) -> None:
        self.inner = inner
        self.name = inner.name
        self._pending = b""

    def read(self, max_bytes: int, timeout: float) -> bytes:
        if not self._pending:
            self._pending = self.inner.read(max_bytes, timeout)
        out, self._pending = self._pending[:1], self._pending[1:]
        return out

    def write(self, data: bytes) -> None:
        self.inner.write(data)

    def send_break(self) -> None:
        self.inner.send_break()

    def close(self) -> None:
        self.inner.close()


def _open_onebyte(target: str, options: OpenOptions) -> Transport:
    """``onebyte:///dev/pts/N``: a serial device read a byte at a time."""
    return OneByteTransport(SerialTransport(target.removeprefix("onebyte://"), line=options.line))


register_scheme("onebyte", _open_onebyte)


class FarEnd(abc.ABC):
    """The host's side of one link. ``written`` holds every byte it printed (for hashes)."""

    kind: str = ""
    #: Why a BREAK cannot be seen at this far end; None when :meth:`breaks` counts them.
    break_unseen: str | None = None
    #: The transport refuses to send a BREAK (a UsageError), rather than pretending to.
    break_refused = False
    #: The ``cause`` the reconnecting layer reports for :meth:`bounce`.
    bounce_cause = "closed"
    #: ipmi_sim may drop the first SOL packet a new session sends: a sender must retry.
    first_packet_lossy = False

    def __init__(self) -> None:
        self.written = bytearray()
        #: Whether the link wraps the transport in the reconnecting layer (set by the fixture).
        self.reconnect = False

    @property
    @abc.abstractmethod
    def url(self) -> str:
        """The console target solcap opens (read at each connect: a bounce may change it)."""

    def options(self) -> OpenOptions:
        """What the registry's factory is given besides the URL."""
        return OpenOptions()

    def write(self, data: bytes) -> None:
        """Print ``data`` on the host's line."""
        self.written += data
        self._write(data)

    @abc.abstractmethod
    def _write(self, data: bytes) -> None: ...

    @abc.abstractmethod
    def read(self, timeout: float) -> bytes:
        """What solcap sent that arrived within ``timeout`` seconds (b"" if nothing)."""

    def read_until(self, want: bytes, timeout: float) -> bytes:
        """Read until ``want`` arrived (or the deadline passed); return everything read."""
        got = bytearray()
        deadline = time.monotonic() + timeout
        while want not in got:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            got += self.read(min(left, 0.2))
        return bytes(got)

    def read_exactly(self, n: int, timeout: float) -> bytes:
        got = bytearray()
        deadline = time.monotonic() + timeout
        while len(got) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            got += self.read(min(left, 0.2))
        return bytes(got)

    def read_quiet(self, quiet: float) -> bytes:
        """Read until nothing came for ``quiet`` seconds."""
        got = bytearray()
        while chunk := self.read(quiet):
            got += chunk
        return bytes(got)

    @abc.abstractmethod
    def hang_up(self) -> None:
        """End the link for good: a reconnection finds nothing to connect to."""

    @abc.abstractmethod
    def bounce(self) -> None:
        """End the link and be there again at once, for a reconnection to find."""

    def breaks(self) -> int:
        """BREAKs seen so far (only where :attr:`break_unseen` is None)."""
        raise NotImplementedError(self.break_unseen)

    @abc.abstractmethod
    def released(self, timeout: float) -> bool:
        """Whether solcap let go of the line (waits up to ``timeout``)."""

    def close(self) -> None:
        """Release what this far end holds for one test."""
        return


class PtyFar(FarEnd):
    """A pty whose master the test holds; solcap opens the slave through a symlink.

    The symlink stands for udev's ``/dev/serial/by-id/…`` name: a hang-up removes it (an
    adapter unplugged), a bounce points it at a new pty (plugged in again). A reconnection so
    never opens a ``/dev/pts/N`` number freed here and reused by another process's pty.
    ``prefix`` is put before the path in :attr:`url` (``onebyte://`` for the slow link).
    """

    break_unseen = "a pty carries no BREAK: tcsendbreak() on the slave shows nothing at the master"

    def __init__(self, directory: Path, kind: str = "pty", prefix: str = "") -> None:
        super().__init__()
        self.kind = kind
        self._prefix = prefix
        self.link = directory / "serial-by-id"
        self.master, self.path = self._open()
        self.link.symlink_to(self.path)

    @staticmethod
    def _open() -> tuple[int, str]:
        master, slave = os.openpty()
        path = os.ttyname(slave)
        os.close(slave)  # solcap's open is then the only one: its close is seen (EIO)
        return master, path

    @property
    def url(self) -> str:
        return f"{self._prefix}{self.link}"

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            n = os.write(self.master, view)
            view = view[n:]

    def read(self, timeout: float) -> bytes:
        if self.master < 0:
            return b""
        ready, _, _ = select.select([self.master], [], [], timeout)
        if not ready:
            return b""
        try:
            return os.read(self.master, 65536)
        except OSError:  # EIO: no slave open (solcap closed it)
            time.sleep(min(timeout, 0.05))
            return b""

    def _close_master(self) -> None:
        if self.master >= 0:
            os.close(self.master)
            self.master = -1

    def hang_up(self) -> None:
        self.link.unlink()
        self._close_master()

    def bounce(self) -> None:
        # The new pty is in place before the old one closes: the reconnection's open finds it.
        master, path = self._open()
        fresh = self.link.with_name("serial-by-id.new")
        fresh.symlink_to(path)
        fresh.replace(self.link)
        self._close_master()
        self.master, self.path = master, path

    def released(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.master], [], [], 0.1)
            if ready:
                try:
                    os.read(self.master, 65536)
                except OSError:
                    return True  # EIO: the last slave descriptor was closed
        return False

    def close(self) -> None:
        self._close_master()


class TcpFar(FarEnd):
    """A TCP server on 127.0.0.1 that plays the host over ``socket://``; it accepts every
    connection in turn (the newest is the line), as ser2net takes a client back."""

    kind = "socket"
    break_unseen = "socket:// is raw TCP: there is no BREAK to carry"
    break_refused = True

    def __init__(self) -> None:
        super().__init__()
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(4)
        self.port = int(self._listener.getsockname()[1])
        self._cond = threading.Condition()
        self._conn: socket.socket | None = None
        self._old: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, name="far-tcp-accept", daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _addr = self._listener.accept()
            except OSError:
                return
            with self._cond:
                if self._conn is not None:
                    self._old.append(self._conn)
                self._conn = conn
                self._cond.notify_all()

    def _current(self, timeout: float = 10.0) -> socket.socket:
        with self._cond:
            if not self._cond.wait_for(lambda: self._conn is not None, timeout):
                raise AssertionError("solcap never connected to the TCP server")
            assert self._conn is not None
            return self._conn

    @property
    def url(self) -> str:
        return f"socket://127.0.0.1:{self.port}"

    def _write(self, data: bytes) -> None:
        self._current().sendall(data)

    def read(self, timeout: float) -> bytes:
        conn = self._current()
        conn.settimeout(timeout)
        try:
            return conn.recv(65536)
        except TimeoutError:
            return b""

    def _drop(self) -> None:
        with self._cond:
            conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()

    def hang_up(self) -> None:
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes accept(); connects are refused
        self._listener.close()
        self._drop()

    def bounce(self) -> None:
        self._drop()

    def released(self, timeout: float) -> bool:
        conn = self._current()
        conn.settimeout(timeout)
        deadline = time.monotonic() + timeout
        with contextlib.suppress(TimeoutError):
            while time.monotonic() < deadline:
                if conn.recv(65536) == b"":
                    return True  # the client's FIN
        return False

    def close(self) -> None:
        self.hang_up()
        self._thread.join(5)
        for conn in self._old:
            conn.close()


class _BmcFar(FarEnd):
    """What both BMCs share: a steal that keeps the payload (hang up), and the check that a
    closed console gave the payload back (a second client activates without stealing)."""

    port: int = 0
    _holder: IpmiSolTransport | None = None

    def target(self) -> IpmiTarget:
        return IpmiTarget("127.0.0.1", USER, self.port)

    def options(self) -> OpenOptions:
        return OpenOptions(password=PASSWORD)

    def hang_up(self) -> None:
        # Another client takes the payload and keeps it: every reactivation is refused (busy).
        self._holder = IpmiSolTransport(self.target(), PASSWORD, steal=True)

    def released(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                IpmiSolTransport(self.target(), PASSWORD).close()
            except ConnectError:  # still active for solcap's session: busy
                time.sleep(0.1)
                continue
            return True
        return False

    def close(self) -> None:
        if self._holder is not None:
            self._holder.close()
            self._holder = None


class SharedVbmc:
    """The virtual BMC (``python -m solcap.sim.bmc``) on a pty, one process for a module."""

    def __init__(self, workdir: Path) -> None:
        self.master, self._slave = os.openpty()
        self.break_log = workdir / "breaks"
        self._stack = contextlib.ExitStack()
        path = os.ttyname(self._slave)
        self.port = self._stack.enter_context(
            vbmc_running(path, "--break-log", str(self.break_log))
        )

    def close(self) -> None:
        self._stack.close()
        for fd in (self.master, self._slave):
            with contextlib.suppress(OSError):
                os.close(fd)


class VbmcFar(_BmcFar):
    """The virtual BMC's pty master: the host's line behind it."""

    kind = "vbmc"
    bounce_cause = "deactivated"

    def __init__(self, bmc: SharedVbmc) -> None:
        super().__init__()
        self.bmc = bmc
        self.port = bmc.port

    @property
    def url(self) -> str:
        return f"ipmi://{USER}@127.0.0.1:{self.port}"  # cipher suite negotiated (17)

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            n = os.write(self.bmc.master, view)
            view = view[n:]

    def read(self, timeout: float) -> bytes:
        ready, _, _ = select.select([self.bmc.master], [], [], timeout)
        return os.read(self.bmc.master, 65536) if ready else b""

    def bounce(self) -> None:
        # Another operator deactivates SOL (a real peer); the BMC says so in its next packet.
        need("ipmitool")
        argv = ["ipmitool", "-I", "lanplus", "-H", "127.0.0.1", "-p", str(self.port)]
        result = subprocess.run(
            [*argv, "-U", USER, "-E", "sol", "deactivate"],
            env=ipmi_env(),
            capture_output=True,
            timeout=20,
            check=False,
        )
        assert result.returncode == 0, result.stderr

    def breaks(self) -> int:
        if not self.bmc.break_log.exists():
            return 0
        return self.bmc.break_log.read_text().count("break\n")


class IpmiSimFar(_BmcFar):
    """ipmi_sim's serial side (a TCP connection it makes to the test), the host's line.

    :meth:`bounce` kills ipmi_sim and starts it again (a BMC reboot); ipmi_sim tells a session
    nothing when it ends, so links to it use :data:`QUICK_LIVENESS`.
    """

    kind = "ipmi_sim"
    bounce_cause = "lost"
    first_packet_lossy = True
    break_unseen = "ipmi_sim's serial side is a TCP connection: it passes no BREAK on"

    def __init__(self, sim: IpmiSim) -> None:
        super().__init__()
        self.sim = sim
        self.port = sim.port

    def target(self) -> IpmiTarget:
        return self.sim.target()

    @property
    def url(self) -> str:
        return f"{self.sim.url}?cipher=3"  # the only suite ipmi_sim speaks

    def options(self) -> OpenOptions:
        return OpenOptions(password=PASSWORD, liveness=QUICK_LIVENESS)

    def _write(self, data: bytes) -> None:
        assert self.sim.send(data), "ipmi_sim's serial side is not connected"

    def read(self, timeout: float) -> bytes:
        serial = self.sim.serial
        if serial is None:
            time.sleep(timeout)
            return b""
        serial.settimeout(timeout)
        try:
            return serial.recv(65536)
        except TimeoutError:
            return b""

    def bounce(self) -> None:
        self.sim.restart()


@dataclass
class Link:
    """A started console on one transport, its far end and its recording."""

    far: FarEnd
    console: RecordedConsole
    transport: Transport
    recording: Recording

    @property
    def reconnecting(self) -> bool:
        return isinstance(self.transport, ReconnectingTransport)

    def recorded(self) -> bytes:
        """``console.raw`` as it is on disk now."""
        return self.recording.read_range(0, self.recording.offset)

    def events(self) -> list[tuple[str, dict[str, Any]]]:
        """The reconnecting layer's events so far (none without it)."""
        if isinstance(self.transport, ReconnectingTransport):
            return list(self.transport.events)
        return []

    def wait_event(self, kind: str, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name, fields in self.events():
                if name == kind:
                    return fields
            time.sleep(0.02)
        raise AssertionError(f"no {kind} event within {timeout}s: {self.events()}")

    def send_heard(self, data: bytes, timeout: float = 10.0) -> bytes:
        """Send ``data`` until the far end has it; return what the far end read.

        Exactly once where SOL cannot lose a session's first packet; on ipmi_sim, which may,
        again after a second without it (a lost packet is simply absent at the far end).
        """
        got = bytearray()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.console.send(data)
            got += self.far.read_until(data, 1.0 if self.far.first_packet_lossy else timeout)
            if data in got:
                return bytes(got)
        raise AssertionError(f"{data!r} never reached the far end: {bytes(got)!r}")

    def print_seen(self, data: bytes, timeout: float = 10.0) -> None:
        """Print ``data`` at the far end until the console sees it (after a reconnection a
        BMC may have dropped what the host printed before the new session was active)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.far.write(data)
            with contextlib.suppress(Exception):
                self.console.expect(data, timeout=1.0)
                return
        raise AssertionError(f"{data!r} never reached the console")


def sync(transport: Transport, far: FarEnd, timeout: float = 10.0) -> None:
    """Pass a fresh token each way and drop everything before it, so the line is clean.

    solcap's first SOL packet is a primer: ipmi_sim drops a new session's first packet when
    its sequence number is the one the previous session ended on (it takes it for a
    retransmission), so the token goes second. Where the primer arrives it is dropped here
    with the rest. A token is sent again after two seconds without it; only then can a late
    first copy follow, so only then is the line read until quiet.
    """
    n = next(_tokens)
    inbound = f"<sync {n} in>".encode()
    got = bytearray()
    deadline = time.monotonic() + timeout
    tries = 0
    while inbound not in got:
        assert time.monotonic() < deadline, f"{far.kind}: nothing came through: {bytes(got)!r}"
        tries += 1
        far.write(inbound)
        attempt = min(deadline, time.monotonic() + 2.0)
        while inbound not in got and time.monotonic() < attempt:
            got += transport.read(65536, 0.1)
    if tries > 1:
        while transport.read(65536, 0.3):
            pass
    primer, outbound = f"<sync {n} primer>".encode(), f"<sync {n} out>".encode()
    transport.write(primer)
    drain = getattr(transport, "drain", None)
    if callable(drain):
        drain(5.0)  # acknowledged: the token goes in a packet of its own, the second one
    heard = b""
    tries = 0
    while outbound not in heard:
        assert time.monotonic() < deadline, f"{far.kind}: nothing went through: {heard!r}"
        tries += 1
        transport.write(outbound)
        heard += far.read_until(outbound, 2.0)
    if tries > 1:
        far.read_quiet(0.3)
    far.written.clear()


@contextlib.contextmanager
def open_link(far: FarEnd, root: Path, *, reconnect: bool) -> Iterator[Link]:
    """A started console on ``far`` (see the module docstring), closed on the way out."""
    options = far.options()
    first = True

    def connect() -> Transport:
        nonlocal first
        transport = open_transport(far.url, options)
        if first:  # before any byte counts: the reconnecting layer's offsets start at zero
            first = False
            try:
                sync(transport, far)
            except BaseException:
                transport.close()
                raise
        return transport

    transport = ReconnectingTransport(connect, policy=QUICK_RECONNECT) if reconnect else connect()
    try:
        recording = Recording(HOST, label="console-suite", root=root)
    except BaseException:
        transport.close()
        raise
    if isinstance(transport, ReconnectingTransport):
        transport.set_event_sink(recording.event)
    console = RecordedConsole(transport, recording, host=HOST, death_strings=[DEATH])
    try:
        console.start()
        yield Link(far, console, transport, recording)
    finally:
        console.close()
        recording.close()
