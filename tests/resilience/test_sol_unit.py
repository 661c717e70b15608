"""ReconnectingTransport and ReconnectPolicy against fake transports; the proxy's determinism."""

from __future__ import annotations

import random
import socket
import threading
import time

import pytest

from solcap.errors import ConnectError, ConsoleClosed, UsageError
from solcap.testing.faultproxy import Direction, FaultProxy, Faults
from solcap.transports.base import Transport
from solcap.transports.reconnect import ReconnectingTransport, ReconnectPolicy

pytestmark = pytest.mark.timeout(30)


class Scripted(Transport):
    """Returns its chunks, then raises ConsoleClosed; records writes."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = list(chunks)
        self.written = bytearray()
        self.closed = False
        self.name = "fake"

    def read(self, max_bytes: int, timeout: float) -> bytes:
        if self.chunks:
            return self.chunks.pop(0)
        raise ConsoleClosed("fake", "gone")

    def write(self, data: bytes) -> None:
        self.written += data

    def close(self) -> None:
        self.closed = True


def test_policy_delays_grow_jittered_and_stop_after_max_attempts() -> None:
    policy = ReconnectPolicy(initial_delay=1.0, max_delay=8.0, jitter=0.5, max_attempts=6)
    delays = list(policy.delays(random.Random(3)))
    assert len(delays) == 6
    for n, d in enumerate(delays):
        ceiling = min(8.0, 2.0**n)
        assert ceiling * 0.5 <= d <= ceiling


def test_policy_rejects_nonsense() -> None:
    with pytest.raises(UsageError):
        ReconnectPolicy(initial_delay=5, max_delay=1)
    with pytest.raises(UsageError):
        ReconnectPolicy(max_attempts=0)


def test_bytes_and_events_in_stream_order_across_a_reconnect() -> None:
    sessions = [Scripted([b"abc", b"de"]), Scripted([b"fgh"])]
    opened: list[Scripted] = []

    def connect() -> Transport:
        if not sessions:
            raise ConnectError("fake", "no answer")
        opened.append(sessions.pop(0))
        return opened[-1]

    seen: list[tuple[str, int]] = []
    policy = ReconnectPolicy(initial_delay=0.01, max_delay=0.02, max_attempts=3)
    tr = ReconnectingTransport(connect, policy=policy)
    tr.set_event_sink(lambda kind, **f: seen.append((kind, f["offset"])))
    got = bytearray()
    with pytest.raises(ConsoleClosed, match="gave up reconnecting after 3 attempts"):
        while True:
            got += tr.read(100, 0.1)
    assert bytes(got) == b"abcdefgh"
    assert seen == [
        ("disconnected", 5),
        ("reconnected", 5),
        ("gap", 5),
        ("disconnected", 8),
        ("reconnect_failed", 8),
        ("reconnect_failed", 8),
        ("reconnect_failed", 8),
        ("reconnect_gave_up", 8),
    ]
    assert all(s.closed for s in opened)  # each lost session was logged out


def test_close_interrupts_the_backoff_promptly() -> None:
    first = Scripted([])
    connects: list[float] = []

    def connect() -> Transport:
        connects.append(time.monotonic())
        if len(connects) == 1:
            return first
        raise ConnectError("fake", "no answer")

    policy = ReconnectPolicy(initial_delay=20, max_delay=20, jitter=0.0)
    tr = ReconnectingTransport(connect, policy=policy)
    in_backoff = threading.Event()
    seen: list[str] = []

    def sink(kind: str, **fields: object) -> None:
        seen.append(kind)
        if kind == "disconnected":
            in_backoff.set()  # the next thing the reader does is wait out the 20 s delay

    tr.set_event_sink(sink)
    errors: list[Exception] = []

    def reader() -> None:
        try:
            while True:
                tr.read(10, 0.1)
        except ConsoleClosed as exc:
            errors.append(exc)

    thread = threading.Thread(target=reader)
    thread.start()
    assert in_backoff.wait(5), "the reader never lost its session"
    start = time.monotonic()
    tr.close()
    thread.join(5)
    took = time.monotonic() - start
    assert not thread.is_alive() and took < 2, took  # not the 20 s the backoff would take
    assert seen == ["disconnected"]  # no reconnect attempt ran: close() ended the backoff
    assert len(connects) == 1 and first.closed
    assert len(errors) == 1 and "closed locally" in str(errors[0])


def test_fault_proxy_is_deterministic_for_a_seed() -> None:
    def run(seed: int) -> dict[str, object]:
        server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        server.bind(("127.0.0.1", 0))
        faults = Faults(drop=0.2, duplicate=0.2, reorder=0.0, delay=0.2, delay_range=(0, 0.001))
        with FaultProxy(("127.0.0.2", 0), server.getsockname(), seed=seed, to_server=faults) as p:
            client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            for i in range(200):
                client.sendto(i.to_bytes(2, "big"), p.address)
            server.settimeout(0.5)
            got = []
            try:
                while True:
                    got.append(int.from_bytes(server.recv(10), "big"))
            except TimeoutError:
                pass
            client.close()
            stats = p.stats[Direction.TO_SERVER]
        server.close()
        return {"got": sorted(got), "dropped": stats.dropped, "dup": stats.duplicated}

    a, b = run(11), run(11)
    assert a == b
    assert a["dropped"] and a["dup"]
    assert run(12) != a


def test_fault_proxy_stall_delivers_late_in_order_and_loses_nothing() -> None:
    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server.bind(("127.0.0.1", 0))
    with FaultProxy(("127.0.0.2", 0), server.getsockname(), seed=5) as proxy:
        client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        client.sendto(b"before", proxy.address)
        server.settimeout(2)
        assert server.recv(100) == b"before"
        start, end = proxy.stall(0.3, 0.6)
        assert end - start == pytest.approx(0.3)
        sent_at = time.monotonic()
        for i in range(5):
            client.sendto(b"in-%d" % i, proxy.address)
        time.sleep(0.35)  # past the window: this one must wait behind the stalled ones
        client.sendto(b"after", proxy.address)
        got = [server.recv(100) for _ in range(6)]
        took = time.monotonic() - sent_at
        client.close()
        assert proxy.stalled_until() <= time.monotonic()
        stats = proxy.stats[Direction.TO_SERVER]
    server.close()
    assert got == [b"in-0", b"in-1", b"in-2", b"in-3", b"in-4", b"after"]
    assert took >= 0.6, took
    assert stats.delayed == 5 and stats.dropped == 0
    idle = FaultProxy(("127.0.0.2", 0), ("127.0.0.1", 9), seed=1)
    try:
        with pytest.raises(ValueError, match="non-negative"):
            idle.stall(1, -1)
        with pytest.raises(ValueError, match="direction"):
            idle.stall(1, 1, direction="sideways")
    finally:
        idle.stop()
