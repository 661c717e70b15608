"""pyghmi's I/O loop, owned: one pump thread, a bounded wait, epoll, reads of ready sockets.

* nothing progresses unless some thread pumps ``Session.wait_for_rsp``: one :class:`Pump`
  thread per process does all pyghmi work (pyghmi's state is process-global, so two pumping
  threads would race), and user threads only hand it work;
* its I/O thread waits with ``select()`` (dies past descriptor 1023), then reads every socket
  in the process (O(N) per packet, the main CPU cost with many sessions); its ``_io_wait`` can
  wait forever; its ``_io_sendto`` flips a socket to blocking under the I/O thread's feet:
  :class:`_PollSelect` (one persistent epoll set), :func:`_ready_graball` (reads only the
  ready sockets, pyghmi's routing unchanged), :func:`_bounded_io_wait` and
  :func:`_nonblocking_sendto` replace them, and :class:`Pump` serves a console's timers
  every :data:`SERVICE_SWEEP` seconds and its new output at once, not every console per packet;
* a synchronous command (``raw_command``) sends, then waits for the *next* packet from its
  BMC: a reply read in between left it, and the one pumping thread, asleep until the retry
  deadline; :func:`_bounded_io_wait` lets it process the queued reply at once.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import select
import socket
import threading
import time
from collections.abc import Callable, Collection
from typing import TYPE_CHECKING, Any

import pyghmi.ipmi.private.session as pyghmi_session

from solcap.errors import TargetError

if TYPE_CHECKING:
    from solcap.transports.ipmi.sol import SolConsole

log = logging.getLogger(__name__)

#: How long a pyghmi call may wait for the pump before it starts (see Pump.call).
QUEUE_TIMEOUT = 120.0
#: Seconds between two passes of the pump over every console's timers; the loop used to pass
#: over all of them every turn, which was at most 20 ms apart when idle (the same bound).
SERVICE_SWEEP = 0.02
#: How long the pump sleeps between pyghmi turns while it serves no console.
IDLE_PUMP = 1.0


def _bounded_io_wait(timeout: float, myaddr: Any = None, evq: Any = None) -> None:
    """pyghmi's ``_io_wait`` with a bound: its own waits forever for the I/O thread to set an
    event, and when that thread misses the deadline (seen under load with many sessions: the
    wake-up is only sent if the new deadline is earlier than the one it sleeps on) the one
    thread that pumps pyghmi hangs and every session in the process dies with it."""
    evt = threading.Event()
    if evq is not None:
        evq.append(evt)
    pump = Pump._instance
    # The pump's idle wait (the _poller of its own wait_for_rsp call) also ends when a user
    # thread hands it work. Only that one wait: a wait nested in a callback (pyghmi's pause()
    # while a login finishes) cannot run the work and would spin until its own deadline.
    idle = (
        myaddr is None
        and evq is None
        and pump is not None
        and pump.top_wait
        and threading.get_ident() == pump.thread.ident
    )
    if pump is not None and idle:
        pump.top_wait = False
        pump.waiting = evt
        if pump.kicked or pump.jobs:
            evt.set()  # work arrived before ``waiting`` was visible to the kicking thread
    deadline = timeout + pyghmi_session._monotonic_time()
    pyghmi_session.ioqueue.append((deadline, evt, myaddr))
    if myaddr is not None and evq is None and _reply_queued(myaddr):
        # awaitresponse waits for the next packet from its BMC, but the reply may already
        # have been read (between its send and this wait): it then slept until its retry
        # deadline with the pump, and so every session, stalled (logins 3x slower once
        # the I/O thread got fast). The packet is queued; let the caller process it now.
        return
    if deadline < pyghmi_session.selectdeadline and pyghmi_session.iosockets:
        wake = pyghmi_session.iosockets[0]
        with contextlib.suppress(OSError):
            wake.sendto(b"\x01", (pyghmi_session.myself, wake.getsockname()[1]))
    evt.wait(max(timeout, 0.0) + 0.25)
    if pump is not None and idle:
        pump.waiting = None


def _reply_queued(sockaddr: Any) -> bool:
    """Whether a packet from ``sockaddr`` waits, unprocessed, in a session's queue.

    Checked after the waiter joined pyghmi's ``ioqueue``: a packet read before that is in a
    ``pktqueue`` by now (the I/O thread queues it before it looks at ``ioqueue``), and one
    read after it wakes the waiter through pyghmi's own routing. The same queued packet ends
    one wait only: another session to the same BMC address may own it, and its caller would
    otherwise spin until its deadline without ever processing it."""
    for sess in list(pyghmi_session.sessionqueue):
        queue = sess.pktqueue
        if queue and getattr(sess, "sockaddr", None) == sockaddr:
            head = queue[0]
            if head is _early_return.packet:
                continue
            _early_return.packet = head
            return True
    return False


class _EarlyReturn:
    """The queued packet that last ended a wait early (pump thread only)."""

    packet: Any = None


_early_return = _EarlyReturn()


class _PollSelect:
    """Stands in for the ``select`` module inside pyghmi's session code (its I/O thread's
    ``select.select(iosockets, ...)``), for two reasons:

    * ``select.select`` raises for descriptors >= 1024, and that kills the thread and with it
      every session in the process (seen at ~155 sessions in the benchmark);
    * pyghmi then reads every socket (see :func:`_ready_graball`) and rebuilding a poll set of
      all N sockets on every wake-up was O(N) work per received packet.

    So one epoll object (poll where there is none) persists across calls; it is re-synced only
    when the socket list changed (compared by identity, in C), and the sockets it reported
    ready are kept for :func:`_ready_graball`. Only pyghmi's one I/O thread calls this.
    """

    def __init__(self) -> None:
        self._epoll: Any = select.epoll() if hasattr(select, "epoll") else None
        self._poll: Any = None if self._epoll is not None else select.poll()
        self._watched: list[Any] = []
        self._by_fd: dict[int, Any] = {}
        self.ports: dict[int, int] = {}
        #: Sockets the last wait reported readable; None when no wait ran since the last read.
        self.ready: list[Any] | None = None

    def _register(self, fd: int) -> None:
        if self._epoll is not None:
            try:
                self._epoll.register(fd, select.EPOLLIN)
            except FileExistsError:
                self._epoll.modify(fd, select.EPOLLIN)
        else:
            self._poll.register(fd, select.POLLIN)

    def _unregister(self, fd: int) -> None:
        # A socket closed since it was registered has left epoll by itself (ENOENT/EBADF).
        with contextlib.suppress(OSError, KeyError, ValueError):
            (self._epoll if self._epoll is not None else self._poll).unregister(fd)

    def _resync(self, rlist: list[Any]) -> None:
        """Watch exactly the open sockets of ``rlist`` (an fd may have been closed and reused).

        ``rlist`` is pyghmi's live list, which the pump thread appends to during logins: work
        on one snapshot and remember that snapshot, so a socket appended meanwhile makes the
        next call differ (and get registered) instead of being remembered unwatched."""
        snapshot = list(rlist)
        wanted: dict[int, Any] = {}
        for sock in snapshot:
            try:
                fd = sock.fileno()
            except (OSError, ValueError):
                continue
            if fd >= 0:
                wanted[fd] = sock
        for fd, sock in list(self._by_fd.items()):
            if wanted.get(fd) is not sock:
                self._unregister(fd)
                del self._by_fd[fd]
                self.ports.pop(fd, None)
        for fd, sock in wanted.items():
            if fd in self._by_fd:
                continue
            try:
                # Reads are MSG_DONTWAIT anyway; a socket with a timeout would poll first.
                sock.setblocking(False)
                self._register(fd)
            except OSError:
                continue
            self._by_fd[fd] = sock
        self._watched = snapshot

    def select(
        self, rlist: list[Any], wlist: Any, xlist: Any, timeout: float | None = None
    ) -> tuple[list[Any], list[Any], list[Any]]:
        if rlist != self._watched:
            self._resync(rlist)
        by_fd = self._by_fd
        if self._epoll is not None:
            wait = -1.0 if timeout is None else max(0.0, timeout)
            events = self._epoll.poll(wait)
        else:
            events = self._poll.poll(None if timeout is None else max(0.0, timeout) * 1000)
        ready = [by_fd[fd] for fd, _ in events if fd in by_fd]
        self.ready = ready
        return ready, [], []

    def watches(self, sock: Any) -> bool:
        """Whether ``sock`` is one of the sockets being waited on."""
        try:
            return self._by_fd.get(sock.fileno()) is sock
        except (OSError, ValueError):
            return False

    def take_ready(self) -> list[Any] | None:
        """The sockets the last wait found readable, once (None if no wait ran since)."""
        ready, self.ready = self.ready, None
        return ready


_POLL_SELECT = _PollSelect()


def _ready_graball(
    mysockets: list[Any], iowaiters: dict[Any, list[Any]], poller: _PollSelect = _POLL_SELECT
) -> list[Any]:
    """pyghmi's ``_io_graball`` reading only the sockets the last wait found readable.

    pyghmi's reads every socket in the process after every wake-up (``setblocking(0)`` and a
    ``recvfrom`` that raises on an empty socket: O(N) syscalls and exceptions per packet). The
    routing below is pyghmi's, line for line: session data goes to the session registered for
    (peer address, local port), sessionless data to the server on that socket; the packet
    joins that session's ``pktqueue``, the session joins ``sessionqueue``, waiters directed at
    the peer are woken, and the peer addresses are returned. Each ready socket is still drained
    until it would block, and packets shorter than 4 bytes (the wake-up byte) are skipped.
    Without a preceding wait (never, in pyghmi's loop) every socket is read, as pyghmi did.
    """
    ready = poller.take_ready()
    if ready is None:
        ready = list(mysockets)
    sockaddrs: list[Any] = []
    for mysocket in ready:
        myport: int | None = None
        while True:
            try:
                rdata = mysocket.recvfrom(3000, _MSG_DONTWAIT)
            except OSError:  # empty (EAGAIN), or closed under us: pyghmi's "None"
                break
            if len(rdata[0]) < 4:
                continue
            if myport is None:
                myport = _local_port(mysocket, poller)
            data, peer = rdata
            handlers = pyghmi_session.Session.bmc_handlers
            relsession = None
            entry: tuple[Any, ...] = (data, peer, mysocket)
            if peer in handlers and myport in handlers[peer]:
                # session data
                entry = (data, peer, mysocket, True)
                relsession = handlers[peer][myport]
            elif mysocket in handlers:
                # pyghmi is the bmc, and we have sessionless data
                entry = (data, peer, mysocket, False)
                relsession = handlers[mysocket][0]
            if relsession is not None:
                relsession.pktqueue.append(entry)
                pyghmi_session.sessionqueue.append(relsession)
            if peer in iowaiters:
                for w in iowaiters[peer]:
                    w[1].set()
                del iowaiters[peer]
            sockaddrs.append(peer)
    return sockaddrs


_MSG_DONTWAIT = getattr(socket, "MSG_DONTWAIT", 0)


def _local_port(sock: Any, poller: _PollSelect) -> int:
    """The socket's local port (pyghmi asks the kernel per packet; it never changes once
    bound, so it is cached by descriptor for the sockets the poller watches)."""
    fd = sock.fileno()
    port = poller.ports.get(fd)
    if port is None:
        port = int(sock.getsockname()[1])
        if poller.watches(sock):
            poller.ports[fd] = port
    return port


def _nonblocking_sendto(mysocket: Any, packet: Any, sockaddr: Any) -> None:
    """pyghmi's ``_io_sendto`` without its ``setblocking(1)``: set from a sending thread, it can
    land between the I/O thread's ``setblocking(0)`` and ``recvfrom`` and block that thread on
    one socket, starving every session (found by the benchmark). A loopback or LAN UDP send
    that would block is dropped, as pyghmi already did on any send error; SOL retransmits."""
    sock = getattr(mysocket, "fd", mysocket)
    with contextlib.suppress(OSError):
        sock.sendto(packet, sockaddr)


#: pyghmi's own functions, as imported (also for the equivalence test of :func:`_ready_graball`).
_PYGHMI_OWN = {
    "_io_wait": pyghmi_session._io_wait,
    "_io_sendto": pyghmi_session._io_sendto,
    "_io_graball": pyghmi_session._io_graball,
    "select": pyghmi_session.select,
}
_pyghmi_io_graball = _PYGHMI_OWN["_io_graball"]
_REPLACEMENTS = {
    "_io_wait": _bounded_io_wait,
    "_io_sendto": _nonblocking_sendto,
    "_io_graball": _ready_graball,
    "select": _POLL_SELECT,
}
_install_lock = threading.Lock()


def install() -> None:
    """Put this module's I/O loop into pyghmi, in this process, once.

    Called when the first IPMI client session starts (:meth:`Pump.get`), never at import:
    importing solcap changes nothing in pyghmi, and a process that only serves pyghmi BMCs (the
    simulator, ``python -m solcap.sim.bmc``) keeps pyghmi's own loop. pyghmi's state is
    process-global, so this is process-global too; it is not undone.
    """
    with _install_lock:
        if installed():
            return
        for name, replacement in _REPLACEMENTS.items():
            setattr(pyghmi_session, name, replacement)


def installed() -> bool:
    """Whether pyghmi in this process runs on solcap's I/O loop."""
    return all(getattr(pyghmi_session, n) is r for n, r in _REPLACEMENTS.items())


class PumpTimeout(TargetError):
    """The pump did not start or finish a piece of pyghmi work in time.

    Raised by :meth:`Pump.call` itself, naming the BMC it was for, so no built-in
    ``TimeoutError`` leaves this package: every caller gets solcap's tree (exit 3) and may
    narrow it (a login turns it into a :class:`~solcap.errors.ConnectError`).
    """


class Pump:
    """The one thread per process that drives pyghmi (its state is process-global)."""

    _instance: Pump | None = None
    _lock = threading.Lock()

    def __init__(self) -> None:
        self.consoles: set[SolConsole] = set()
        self.jobs: collections.deque[Callable[[], None]] = collections.deque()
        #: Consoles with new output to send (from :meth:`kick`), served on the next iteration.
        self.kicked: collections.deque[SolConsole] = collections.deque()
        #: The event the pump's idle wait sleeps on, while it sleeps (see _bounded_io_wait).
        self.waiting: threading.Event | None = None
        #: True from the pump's call of wait_for_rsp until that call's own idle wait begins.
        self.top_wait = False
        #: Set by :meth:`_wake`; what the pump sleeps on while it serves no console.
        self.nudge = threading.Event()
        self.thread = threading.Thread(target=self._run, name="solcap-ipmi-pump", daemon=True)
        self.thread.start()

    @classmethod
    def get(cls) -> Pump:
        """The pump; the first call installs solcap's I/O loop into pyghmi (:func:`install`)."""
        with cls._lock:
            if cls._instance is None:
                install()
                cls._instance = Pump()
            return cls._instance

    def call(
        self,
        fn: Callable[[], Any],
        timeout: float,
        *,
        host: str,
        queue_timeout: float | None = None,
    ) -> Any:
        """Run ``fn`` in the pump thread and return its result (or raise its exception).

        ``host`` names the BMC in the :class:`PumpTimeout` raised when the pump is too busy
        to start ``fn`` or ``fn`` does not finish.

        ``timeout`` bounds ``fn`` itself, from when the pump starts it; waiting in the queue
        behind other sessions' work (a wave of logouts from a fleet) is bounded separately by
        ``queue_timeout``, so a busy pump delays a login instead of failing it.
        """
        if threading.current_thread() is self.thread:
            return fn()
        if queue_timeout is None:
            queue_timeout = QUEUE_TIMEOUT
        started = threading.Event()
        done = threading.Event()
        abandoned = threading.Event()
        box: dict[str, Any] = {}

        def job() -> None:
            if abandoned.is_set():
                return  # the caller gave up; doing it now would act behind its back
            started.set()
            try:
                box["result"] = fn()
            except BaseException as exc:  # handed back to the caller below
                box["error"] = exc
            finally:
                done.set()

        self.jobs.append(job)
        self._wake()
        if not started.wait(queue_timeout):
            abandoned.set()
            if not started.is_set():
                busy = f"the IPMI I/O thread was busy for {queue_timeout:g}s (too many sessions?)"
                raise PumpTimeout(host, busy)
        if not done.wait(timeout):
            raise PumpTimeout(host, f"the IPMI I/O thread did not answer within {timeout:g}s")
        if "error" in box:
            raise box["error"]
        return box.get("result")

    def kick(self, console: SolConsole) -> None:
        """``console`` has output to send (any thread): serve it now, not at the next sweep."""
        self.kicked.append(console)
        self._wake()

    def _wake(self) -> None:
        self.nudge.set()
        evt = self.waiting
        if evt is not None:
            evt.set()

    def _run(self) -> None:
        next_sweep = 0.0
        while True:
            while self.jobs:
                self.jobs.popleft()()
            if self._idle():
                # Nothing to serve (no console, or all handed to the SOL engine; no login or
                # command waiting for a reply): wake for work, or once a second for pyghmi's
                # own keepalives, instead of every 20 ms.
                self.nudge.wait(IDLE_PUMP)
                self.nudge.clear()
                if not self._idle():
                    continue
            if not pyghmi_session.iosockets:
                # Before the first session exists pyghmi has no I/O thread, and its wait
                # would block forever on an event nobody sets.
                time.sleep(0.02)
                continue
            try:
                self.top_wait = True
                pyghmi_session.Session.wait_for_rsp(0.02)
            except Exception:
                log.exception("pyghmi event loop raised; continuing")
            finally:
                self.top_wait = False
            now = time.monotonic()
            if now >= next_sweep:
                # Timers (retransmit, keepalive probe, NACK back-off) of every console, as
                # often as the loop used to serve them all; in between only the consoles
                # that were handed output. Received packets serve their console themselves
                # (SolConsole._got_sol_payload), so a busy loop no longer costs O(N) each turn.
                next_sweep = now + SERVICE_SWEEP
                self.kicked.clear()
                targets: Collection[SolConsole] = list(self.consoles)
            else:
                targets = self._take_kicked()
            for console in targets:
                try:
                    console.service(now)
                except Exception as exc:
                    log.exception("SOL service failed")
                    console._print_error(f"internal error: {exc}")

    def _idle(self) -> bool:
        return not (
            self.consoles
            or self.jobs
            or pyghmi_session.Session.waiting_sessions
            or pyghmi_session.sessionqueue
        )

    def _take_kicked(self) -> Collection[SolConsole]:
        """Distinct kicked consoles still served by this pump (in kick order)."""
        kicked: dict[SolConsole, None] = {}
        while self.kicked:
            console = self.kicked.popleft()
            if console in self.consoles:
                kicked[console] = None
        return kicked.keys()
