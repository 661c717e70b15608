"""pyghmi's I/O loop as solcap patches it: only ready sockets are read, and many sessions scale.

pyghmi's I/O thread used to rebuild a poll set of every socket and ``recvfrom`` every socket
after each wake-up (O(N) per packet). :class:`solcap.transports.ipmi.ioloop._PollSelect`
keeps one epoll set and :func:`solcap.transports.ipmi.ioloop._ready_graball` reads only what it
reported. These tests check that the replacement routes exactly as pyghmi's ``_io_graball``
does, reads no idle socket, survives descriptor reuse, and carries 200 sessions with
descriptors above 1024 from
virtual BMCs byte-exactly.
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import gc
import hashlib
import json
import os
import resource
import select
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyghmi.ipmi.private.session as pyghmi_session
import pytest

from solcap.transports import ipmi
from solcap.transports.ipmi import ioloop
from tests import peers
from tests.ipmi.conftest import PASSWORD, USER

REPO = Path(__file__).resolve().parents[2]


class CountingSocket:
    """A UDP socket on 127.0.0.1 that counts ``recvfrom`` calls (hashable by identity)."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.reads = 0

    def fileno(self) -> int:
        return self.sock.fileno()

    def getsockname(self) -> Any:
        return self.sock.getsockname()

    def setblocking(self, flag: bool) -> None:
        self.sock.setblocking(flag)

    def recvfrom(self, size: int, flags: int = 0) -> Any:
        self.reads += 1
        return self.sock.recvfrom(size, flags)

    def close(self) -> None:
        self.sock.close()


class FakeSession:
    def __init__(self, name: str) -> None:
        self.name = name
        self.pktqueue: collections.deque[tuple[Any, ...]] = collections.deque()


def run_scenario(monkeypatch: pytest.MonkeyPatch, use_pyghmi: bool) -> dict[str, Any]:
    """Route one fixed set of packets with pyghmi's graball or ours; return what happened,
    with sockets and peers replaced by names so two runs compare equal."""
    socks = [CountingSocket() for _ in range(6)]
    peer_a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    peer_b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    peer_a.bind(("127.0.0.1", 0))
    peer_b.bind(("127.0.0.1", 0))
    a_addr, b_addr = peer_a.getsockname(), peer_b.getsockname()
    sess_a, sess_b, server = FakeSession("A"), FakeSession("B"), FakeSession("server")
    handlers: dict[Any, Any] = {
        a_addr: {socks[1].getsockname()[1]: sess_a, socks[2].getsockname()[1]: sess_b},
        socks[3]: {0: server},
    }
    queue: collections.deque[Any] = collections.deque()
    monkeypatch.setattr(pyghmi_session.Session, "bmc_handlers", handlers)
    monkeypatch.setattr(pyghmi_session, "sessionqueue", queue)
    waiter = threading.Event()
    other = threading.Event()
    iowaiters: dict[Any, list[Any]] = {a_addr: [(0.0, waiter, a_addr)], ("x", 1): [(0, other)]}

    def to(i: int) -> Any:
        return socks[i].getsockname()

    sent = [
        (peer_a, 1, b"\x06\x00\xff\x07one"),
        (peer_a, 1, b"\x06\x00\xff\x07two"),
        (peer_a, 2, b"\x06\x00\xff\x07bee"),
        (peer_b, 3, b"\x06\x00\xff\x07sessionless"),
        (peer_b, 1, b"\x06\x00\xff\x07unrouted"),
        (peer_a, 0, b"\x01"),  # the wake-up byte: read, never routed
    ]
    for peer, i, data in sent:
        peer.sendto(data, to(i))
    names = {id(s): f"s{i}" for i, s in enumerate(socks)}
    peers = {a_addr: "A", b_addr: "B"}
    try:
        if use_pyghmi:
            # pyghmi's loop waits first; its graball reads every socket regardless, so wait
            # until each of the four has its datagrams (loopback queues a datagram before
            # sendto returns, so readable means all of that socket's are there).
            deadline = time.monotonic() + 5
            for i, s in enumerate(socks[:4]):
                left = max(0.0, deadline - time.monotonic())
                assert select.select([s.sock], [], [], left)[0], f"nothing reached s{i}"
            addrs = ioloop._pyghmi_io_graball(socks, iowaiters)
        else:
            poller = ioloop._PollSelect()
            want = {0, 1, 2, 3}
            deadline = time.monotonic() + 5
            ready: set[int] = set()
            while ready != want and time.monotonic() < deadline:
                got, _, _ = poller.select(socks, (), (), 1.0)
                ready = {socks.index(s) for s in got}
            assert ready == want, ready
            addrs = ioloop._ready_graball(socks, iowaiters, poller)
        reads = [s.reads for s in socks]
    finally:
        for s in socks:
            s.close()
        peer_a.close()
        peer_b.close()

    def entry(e: tuple[Any, ...]) -> tuple[Any, ...]:
        return (bytes(e[0]), peers[e[1]], names[id(e[2])], *e[3:])

    return {
        "queues": {s.name: [entry(e) for e in s.pktqueue] for s in (sess_a, sess_b, server)},
        "sessionqueue": collections.Counter(s.name for s in queue),
        "addrs": collections.Counter(peers[a] for a in addrs),
        "waiters_left": sorted(map(str, iowaiters)),
        "woken": (waiter.is_set(), other.is_set()),
        "reads": reads,
    }


def test_ready_graball_routes_like_pyghmi_and_reads_only_ready_sockets(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    theirs = run_scenario(monkeypatch, use_pyghmi=True)
    ours = run_scenario(monkeypatch, use_pyghmi=False)
    assert ours["queues"] == theirs["queues"]
    assert ours["queues"]["A"] == [
        (b"\x06\x00\xff\x07one", "A", "s1", True),
        (b"\x06\x00\xff\x07two", "A", "s1", True),
    ]
    assert ours["queues"]["server"] == [(b"\x06\x00\xff\x07sessionless", "B", "s3", False)]
    assert ours["sessionqueue"] == theirs["sessionqueue"] == {"A": 2, "B": 1, "server": 1}
    assert ours["addrs"] == theirs["addrs"] == {"A": 3, "B": 2}
    assert ours["waiters_left"] == theirs["waiters_left"] == ["('x', 1)"]
    assert ours["woken"] == theirs["woken"] == (True, False)
    # pyghmi reads all six sockets; we read the four ready ones (each until it would block)
    # and never touch the two idle ones.
    assert theirs["reads"][4:] == [1, 1]
    assert ours["reads"][4:] == [0, 0]
    assert ours["reads"][:4] == [2, 4, 2, 2]


def test_poller_follows_socket_list_changes_and_descriptor_reuse() -> None:
    poller = ioloop._PollSelect()
    peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    peer.bind(("127.0.0.1", 0))
    first = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    first.bind(("127.0.0.1", 0))
    socks = [first]
    try:
        assert poller.select(socks, (), (), 0) == ([], [], [])
        fd = first.fileno()
        first.close()  # still in the list, as a stopped BMC's socket can be for a moment
        assert poller.select(socks, (), (), 0) == ([], [], [])
        second = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        second.bind(("127.0.0.1", 0))
        assert second.fileno() == fd  # the lowest free descriptor: the one just closed
        socks = [second]
        peer.sendto(b"\x06\x00\xff\x07x", second.getsockname())
        got, _, _ = poller.select(socks, (), (), 2.0)
        assert got == [second]
        assert poller.take_ready() == [second]
        assert poller.take_ready() is None
        assert ioloop._ready_graball(socks, {}, poller) == [peer.getsockname()]
        got, _, _ = poller.select(socks, (), (), 0)
        assert got == []  # drained
        second.close()
    finally:
        peer.close()


# ---- many sessions in one process ------------------------------------------------------------


@contextlib.contextmanager
def high_descriptors(above: int = 1100) -> Iterator[list[int]]:
    """Fill descriptors up to ``above`` so every socket opened meanwhile gets a higher one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 4096
    if hard != resource.RLIM_INFINITY and hard < want:
        peers.missing(f"RLIMIT_NOFILE hard limit >= {want} (it is {hard})", f"ulimit -Hn {want}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, want), hard))
    held: list[int] = []
    gc.collect()  # a socket freed by the collector later would hand out a low descriptor
    try:
        while True:
            fd = os.open(os.devnull, os.O_RDONLY)
            held.append(fd)
            if fd >= above:
                break
        yield held
    finally:
        for fd in held:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


class Farm:
    """``python -m bench.bmcfarm``: K virtual BMCs in one process, driven by JSON lines."""

    def __init__(self, count: int) -> None:
        env = dict(os.environ, IPMI_PASSWORD=PASSWORD)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.bmcfarm", "--count", str(count)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            cwd=REPO,
            text=True,
        )
        self.ports: list[int] = self.ask(None, 60)["ports"]

    def ask(self, cmd: dict[str, Any] | None, timeout: float) -> Any:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        if cmd is not None:
            self.proc.stdin.write(json.dumps(cmd) + "\n")
            self.proc.stdin.flush()
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        assert ready, f"BMC farm did not answer {cmd}"
        return json.loads(self.proc.stdout.readline())

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.ask({"cmd": "quit"}, 0)
        self.proc.kill()
        self.proc.wait(timeout=10)


@pytest.mark.timeout(120)
def test_200_sessions_above_fd_1024_stream_byte_exact(tmp_path: Path) -> None:
    from bench.workloads import make_stream

    count, size = 200, 4096
    farm = Farm(count)
    # pyghmi hands a new session a free socket of an earlier one (this process may have run
    # other tests); only sockets created now are bound to land above descriptor 1024.
    earlier = {s.fileno() for s in pyghmi_session.iosockets}
    transports: list[ipmi.IpmiSolTransport] = []
    try:
        with high_descriptors():

            def connect(port: int) -> ipmi.IpmiSolTransport:
                target = ipmi.IpmiTarget("127.0.0.1", USER, port)
                return ipmi.IpmiSolTransport(target, PASSWORD, connect_timeout=30)

            with concurrent.futures.ThreadPoolExecutor(16) as pool:
                transports = list(pool.map(connect, farm.ports))
        fds = [t._console.ipmi_session.socket.fileno() for t in transports]
        assert all(fd > 1024 or fd in earlier for fd in fds), sorted(fds)[:5]
        assert sum(fd > 1024 for fd in fds) >= count - len(earlier)
        assert len(set(fds)) == count  # one socket per session, never shared
        assert farm.ask({"cmd": "active"}, 30) == {"active": count}

        def receive(t: ipmi.IpmiSolTransport) -> bytes:
            got = bytearray()
            deadline = time.monotonic() + 60
            while len(got) < size and time.monotonic() < deadline:
                got += t.read(size - len(got), 1.0)
            return bytes(got)

        start = time.monotonic() + 0.5
        with concurrent.futures.ThreadPoolExecutor(count) as pool:
            futures = [pool.submit(receive, t) for t in transports]
            # 115200 baud each: 4 KiB in ~0.36 s, 200 streams at once.
            farm.ask({"cmd": "stream", "size": size, "rate": 11520, "seed0": 0, "start": start}, 60)
            got = [f.result(timeout=90) for f in futures]
        for i, data in enumerate(got):
            want = make_stream(size, i)
            assert len(data) == size, (i, len(data))
            assert hashlib.sha256(data).hexdigest() == hashlib.sha256(want).hexdigest(), i
        assert pyghmi_session.iothread is not None and pyghmi_session.iothread.is_alive()
    finally:
        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            list(pool.map(lambda t: t.close(), transports))
        farm.close()


def test_directed_wait_returns_at_once_when_its_reply_was_already_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """pyghmi's awaitresponse sends, then waits for the next packet from its BMC; a reply
    read in between used to leave it (and the pump, and every session) asleep until the
    retry deadline."""
    addr = ("127.0.0.1", 62300)
    sess = FakeSession("A")
    sess.sockaddr = addr  # type: ignore[attr-defined]
    sess.pktqueue.append((b"\x06\x00\xff\x07reply", addr, None, True))
    monkeypatch.setattr(pyghmi_session, "sessionqueue", collections.deque([sess]))
    t0 = time.monotonic()
    ioloop._bounded_io_wait(5.0, addr)
    assert time.monotonic() - t0 < 1.0
    # The same queued packet does not end a second wait (it may be another session's).
    t0 = time.monotonic()
    ioloop._bounded_io_wait(0.2, addr)
    assert time.monotonic() - t0 >= 0.19
    # Nor does a packet from another address.
    sess.pktqueue.appendleft((b"\x06\x00\xff\x07other", addr, None, True))
    sess.sockaddr = ("127.0.0.1", 62301)  # type: ignore[attr-defined]
    t0 = time.monotonic()
    ioloop._bounded_io_wait(0.2, addr)
    assert time.monotonic() - t0 >= 0.19


class GrowingList(list[Any]):
    """pyghmi's live socket list, with a login appending a socket right after a full pass."""

    def __init__(self, items: list[Any], extra: Any) -> None:
        super().__init__(items)
        self.extra = extra

    def __iter__(self) -> Iterator[Any]:
        yield from list.__iter__(self)
        if self.extra is not None:
            extra, self.extra = self.extra, None
            self.append(extra)


def test_socket_appended_while_the_poller_resyncs_is_watched_next_time() -> None:
    socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(3)]
    for sock in socks:
        sock.bind(("127.0.0.1", 0))
    peer, first, late = socks
    try:
        live = GrowingList([first], late)
        poller = ioloop._PollSelect()
        assert poller.select(live, (), (), 0)[0] == []
        assert late in live  # appended during that call's pass over the list
        peer.sendto(b"\x06\x00\xff\x07late", late.getsockname())
        got, _, _ = poller.select(live, (), (), 2.0)
        assert got == [late]
    finally:
        for sock in socks:
            sock.close()
