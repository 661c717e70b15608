"""A seeded UDP fault proxy for loopback tests: drop, duplicate, reorder, delay, blackhole.

There is no ``tc netem`` in the test environment, and SOL's stop-and-wait protocol is exactly
where clients and BMCs get loss handling wrong, so tests put this proxy between a client and a
BMC. Every datagram passes one decision per direction, drawn from a :class:`random.Random`
seeded from ``(seed, direction)``: the n-th packet in a direction meets the same fate on every
run with the same seed (timing on a busy machine can still vary which packet is n-th).

Faults per packet, checked in this order:

* ``blackhole`` windows (seconds since :meth:`FaultProxy.start`, or opened at run time with
  :meth:`FaultProxy.blackhole`): every packet in either direction is dropped;
* ``drop``: the packet is lost;
* ``duplicate``: the packet is delivered twice (the copy after ``dup_gap`` seconds);
* ``reorder``: the packet is held until the next packet in the same direction has been
  delivered (at most ``hold_max`` seconds), so the two arrive swapped;
* ``delay``: the packet is delivered after a uniform delay in ``delay_range``.

A *stall* (:meth:`FaultProxy.stall`) holds one direction back without losing anything: what
is sent in that direction during the window is delivered ``delay`` seconds late, and nothing
sent after it overtakes those packets (a sender that fell behind, e.g. a client process the
scheduler did not run: its ACKs all come late, in order).

Addresses: IPMI BMCs name their UDP port in the Activate Payload reply, and clients refuse
(ipmitool) or misroute a session whose SOL port differs from the one they dialled. So the
proxy keeps the port and changes the address: :func:`proxy_address` gives
``127.0.0.2:<bmc port>`` for a BMC on ``127.0.0.1:<bmc port>`` (all of 127.0.0.0/8 is
loopback). Each client gets its own upstream socket, so the BMC sees one peer per client.

The proxy stops by itself after ``max_runtime`` seconds, so a forgotten one cannot outlive a
test run.
"""

from __future__ import annotations

import dataclasses
import heapq
import itertools
import random
import selectors
import socket
import threading
import time
from collections.abc import Sequence

__all__ = ["Direction", "FaultProxy", "Faults", "Stats", "proxy_address"]

Address = tuple[str, int]


class Direction:
    """Names for the two directions (also the keys of :attr:`FaultProxy.stats`)."""

    TO_SERVER = "to_server"
    TO_CLIENT = "to_client"


@dataclasses.dataclass(frozen=True)
class Faults:
    """Per-direction fault probabilities (0..1) and timing."""

    drop: float = 0.0
    duplicate: float = 0.0
    reorder: float = 0.0
    delay: float = 0.0
    delay_range: tuple[float, float] = (0.005, 0.1)
    dup_gap: float = 0.0
    hold_max: float = 0.1

    def __post_init__(self) -> None:
        for name in ("drop", "duplicate", "reorder", "delay"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name}={value}: a probability must be within 0..1")
        low, high = self.delay_range
        if not 0 <= low <= high:
            raise ValueError(f"delay_range={self.delay_range}: expected 0 <= low <= high")


@dataclasses.dataclass
class Stats:
    """What happened to the packets of one direction."""

    received: int = 0
    forwarded: int = 0
    dropped: int = 0
    blackholed: int = 0
    duplicated: int = 0
    reordered: int = 0
    delayed: int = 0


def proxy_address(bmc_port: int, host: str = "127.0.0.2") -> Address:
    """Where to put a proxy for a BMC on ``127.0.0.1:bmc_port`` (same port, other address)."""
    return (host, bmc_port)


class _Flow:
    """One client: its address and the socket that speaks to the server for it."""

    def __init__(self, client: Address, upstream: socket.socket) -> None:
        self.client = client
        self.upstream = upstream
        self.held: dict[str, tuple[float, bytes] | None] = {
            Direction.TO_SERVER: None,
            Direction.TO_CLIENT: None,
        }


class FaultProxy:
    """Forward UDP between clients at ``listen`` and a server at ``upstream``, with faults."""

    def __init__(
        self,
        listen: Address,
        upstream: Address,
        *,
        seed: int,
        to_server: Faults | None = None,
        to_client: Faults | None = None,
        blackholes: Sequence[tuple[float, float]] = (),
        max_runtime: float = 600.0,
    ) -> None:
        self.upstream = upstream
        self.faults = {
            Direction.TO_SERVER: to_server or Faults(),
            Direction.TO_CLIENT: to_client or Faults(),
        }
        self._rng = {
            Direction.TO_SERVER: random.Random(f"{seed}:{Direction.TO_SERVER}"),
            Direction.TO_CLIENT: random.Random(f"{seed}:{Direction.TO_CLIENT}"),
        }
        self.stats = {Direction.TO_SERVER: Stats(), Direction.TO_CLIENT: Stats()}
        self._windows: list[tuple[float, float]] = [(float(a), float(b)) for a, b in blackholes]
        self._max_runtime = max_runtime
        self._lock = threading.Lock()
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(listen)
        self._sock.setblocking(False)
        self.address: Address = self._sock.getsockname()
        self._flows: dict[Address, _Flow] = {}
        self._by_upstream: dict[socket.socket, _Flow] = {}
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._sock, selectors.EVENT_READ, None)
        # (due time, tie-breaker, socket, data, destination)
        self._queue: list[tuple[float, int, socket.socket, bytes, Address | None]] = []
        self._tie = itertools.count()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        #: Stall windows: (start, end, delay, direction), times as for blackholes.
        self._stalls: list[tuple[float, float, float, str]] = []
        #: Per direction, when the last stalled packet is due: later ones are not sent before.
        self._floor = {Direction.TO_SERVER: 0.0, Direction.TO_CLIENT: 0.0}
        #: Callers of :meth:`blackhole` waiting for the proxy to relay what was sent before.
        self._syncs: list[threading.Event] = []
        self._t0 = time.monotonic()

    @classmethod
    def in_front_of(
        cls, bmc_port: int, faults: Faults, *, seed: int, bmc_host: str = "127.0.0.1"
    ) -> FaultProxy:
        """A proxy at :func:`proxy_address` for the BMC at ``bmc_host:bmc_port``, with the same
        ``faults`` both ways (what most tests want)."""
        return cls(
            proxy_address(bmc_port),
            (bmc_host, bmc_port),
            seed=seed,
            to_server=faults,
            to_client=faults,
        )

    # ---- lifecycle -----------------------------------------------------------------------------
    def start(self) -> FaultProxy:
        """Start forwarding; blackhole window times count from now."""
        self._t0 = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="faultproxy", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop forwarding and close every socket (idempotent)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None
        for flow in list(self._flows.values()):
            flow.upstream.close()
        self._flows.clear()
        self._by_upstream.clear()
        self._selector.close()
        self._sock.close()

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- control -------------------------------------------------------------------------------
    def blackhole(self, duration: float, *, after: float = 0.0) -> tuple[float, float]:
        """Drop everything from ``after`` s from now for ``duration`` s; returns the window.

        A window starting now drops what is *sent* from now on: packets sent before this call
        but not yet read by the proxy thread (in its sockets' receive buffers; on a loaded
        machine, an ACK sent just before) are relayed under the rules before it first. Else
        the window would eat a packet its sender had sent before it opened — a client's last
        ACK, so the BMC rightly sends that chunk again to the next session.
        """
        if after <= 0:
            self._relay_pending()
        start = time.monotonic() - self._t0 + after
        window = (start, start + duration)
        with self._lock:
            self._windows.append(window)
        return window

    def stall(
        self, duration: float, delay: float, *, direction: str = Direction.TO_SERVER
    ) -> tuple[float, float]:
        """Deliver what ``direction`` sends in the next ``duration`` s ``delay`` s late, in order.

        Packets already sent are relayed first (as for :meth:`blackhole`); packets sent after
        the window wait behind the stalled ones, so the direction's order is kept."""
        if direction not in self.faults:
            raise ValueError(f"direction={direction!r}: expected one of {sorted(self.faults)}")
        if duration < 0 or delay < 0:
            raise ValueError(f"stall({duration}, {delay}): expected non-negative seconds")
        self._relay_pending()
        start = time.monotonic() - self._t0
        window = (start, start + duration)
        with self._lock:
            self._stalls.append((*window, float(delay), direction))
        return window

    def stalled_until(self, direction: str = Direction.TO_SERVER) -> float:
        """When (monotonic) the last packet held back by a stall in ``direction`` is due."""
        return self._floor[direction]

    def _stall_delay(self, direction: str, now: float) -> float | None:
        t = now - self._t0
        with self._lock:
            for start, end, delay, which in self._stalls:
                if which == direction and start <= t < end:
                    return delay
        return None

    def _relay_pending(self, timeout: float = 2.0) -> None:
        """Wait (bounded) until the proxy thread has read every packet already sent to it."""
        thread = self._thread
        if thread is None or not thread.is_alive() or thread is threading.current_thread():
            return
        done = threading.Event()
        with self._lock:
            self._syncs.append(done)
        done.wait(timeout)

    def _serve_syncs(self) -> None:
        with self._lock:
            syncs, self._syncs = self._syncs, []
        if not syncs:
            return
        for sock in [self._sock, *self._by_upstream]:
            self._drain(sock)
        for done in syncs:
            done.set()

    def in_blackhole(self, now: float | None = None) -> bool:
        """Whether a blackhole window is open (``now`` is a monotonic time)."""
        t = (time.monotonic() if now is None else now) - self._t0
        with self._lock:
            return any(a <= t < b for a, b in self._windows)

    # ---- the loop ------------------------------------------------------------------------------
    def _run(self) -> None:
        deadline = self._t0 + self._max_runtime
        while not self._stop.is_set():
            now = time.monotonic()
            if now >= deadline:
                return
            self._flush_due(now)
            self._serve_syncs()
            timeout = 0.01 if self._syncs else 0.05
            if self._queue:
                timeout = max(0.0, min(timeout, self._queue[0][0] - now))
            for key, _mask in self._selector.select(timeout):
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                self._drain(sock)
            self._serve_syncs()
            self._release_stale_holds(time.monotonic())

    def _drain(self, sock: socket.socket) -> None:
        while True:
            try:
                data, peer = sock.recvfrom(65536)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return  # e.g. ICMP port unreachable reported on the upstream socket
            if sock is self._sock:
                flow = self._flow_for(peer)
                self._decide(Direction.TO_SERVER, flow, data, flow.upstream, None)
            else:
                flow = self._by_upstream[sock]
                self._decide(Direction.TO_CLIENT, flow, data, self._sock, flow.client)

    def _flow_for(self, client: Address) -> _Flow:
        flow = self._flows.get(client)
        if flow is None:
            upstream = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            upstream.bind(("127.0.0.1", 0))
            upstream.connect(self.upstream)
            upstream.setblocking(False)
            flow = _Flow(client, upstream)
            self._flows[client] = flow
            self._by_upstream[upstream] = flow
            self._selector.register(upstream, selectors.EVENT_READ, None)
        return flow

    def _decide(
        self,
        direction: str,
        flow: _Flow,
        data: bytes,
        sock: socket.socket,
        dest: Address | None,
    ) -> None:
        faults = self.faults[direction]
        rng = self._rng[direction]
        stats = self.stats[direction]
        stats.received += 1
        # Draw every number for every packet, so one fault's outcome never shifts another's.
        r_drop, r_dup, r_reorder, r_delay, r_amount = (rng.random() for _ in range(5))
        now = time.monotonic()
        if self.in_blackhole(now):
            stats.blackholed += 1
            return
        if r_drop < faults.drop:
            stats.dropped += 1
            return
        held = flow.held[direction]
        if r_reorder < faults.reorder and held is None:
            stats.reordered += 1
            flow.held[direction] = (now, data)
            return
        due = now
        stalled = self._stall_delay(direction, now)
        if stalled is not None:
            stats.delayed += 1
            due = now + stalled
            self._floor[direction] = max(self._floor[direction], due)
        elif r_delay < faults.delay:
            stats.delayed += 1
            low, high = faults.delay_range
            due = now + low + (high - low) * r_amount
        due = max(due, self._floor[direction])
        self._schedule(due, sock, data, dest)
        if r_dup < faults.duplicate:
            stats.duplicated += 1
            self._schedule(due + faults.dup_gap, sock, data, dest)
        if held is not None:
            flow.held[direction] = None
            self._schedule(due + 0.0001, sock, held[1], dest)

    def _release_stale_holds(self, now: float) -> None:
        for flow in list(self._flows.values()):
            for direction, held in flow.held.items():
                if held is not None and now - held[0] >= self.faults[direction].hold_max:
                    flow.held[direction] = None
                    if direction == Direction.TO_SERVER:
                        self._schedule(now, flow.upstream, held[1], None)
                    else:
                        self._schedule(now, self._sock, held[1], flow.client)

    def _schedule(self, due: float, sock: socket.socket, data: bytes, dest: Address | None) -> None:
        heapq.heappush(self._queue, (due, next(self._tie), sock, data, dest))
        self._flush_due(time.monotonic())

    def _flush_due(self, now: float) -> None:
        while self._queue and self._queue[0][0] <= now:
            _due, _tie, sock, data, dest = heapq.heappop(self._queue)
            direction = Direction.TO_CLIENT if dest is not None else Direction.TO_SERVER
            try:
                if dest is None:
                    sock.send(data)
                else:
                    sock.sendto(data, dest)
            except OSError:
                continue  # the far side is gone (e.g. the BMC was killed): a lost packet
            self.stats[direction].forwarded += 1
