"""``solcap serve --workers N``: the held consoles sharded over N worker processes.

One Python process has one GIL, and an always-on server of a thousand SOL consoles spends it
on per-packet work: one core is its ceiling however many the machine has. With ``N > 1`` the
server forks ``N`` workers at start (from the main thread, before any console, thread or
IPMI session exists, :func:`solcap.orchestration.workers.fork_refusal`), and worker *i* holds the
hosts with :func:`worker_of` ``(name, N) == i``: their consoles, SOL sessions, triggers and
recordings all live in that worker, so no console byte crosses a process boundary on its way
to ``console.raw``.

The parent holds no console. It keeps what clients see: the control socket, the
announcement, ``--metrics`` and the web view. A client connection is read as far as its
first request; ``status`` is answered by the parent from every worker's status; ``attach``
is *handed over*: the connection's file descriptor goes to the owning worker with
``SCM_RIGHTS`` (:func:`hand_over`, over the worker's private ``SOCK_SEQPACKET`` socket) with
the request beside it, and from then on the client talks to the worker directly (attach,
spy, force, input, break), the parent out of the data path. The worker checks the peer's
credentials itself: ``SO_PEERCRED`` of a passed socket still names the client.

The split is by a hash of the host name (SHA-256, salted so it is independent of
``--shard``'s): stable across SIGHUPs and restarts, so a reload never moves a console to
another worker. For a handful of hosts it can be uneven; for hundreds it is even to a few
per cent.

Signals: the parent forwards SIGHUP (each worker re-reads the inventory for its share) and
stops every worker with SIGTERM; a parent that dies without stopping them (SIGKILL) has
them sent SIGTERM by the kernel (``PR_SET_PDEATHSIG``), so no worker outlives its server
holding consoles a restarted server needs. A worker that dies on its own is logged and
takes the server down (exit 1, the other workers stopped cleanly) so that systemd's
``Restart=`` brings every console back; restarting only the dead worker in place is not
done yet.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import select
import signal
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from solcap.errors import SolcapError
from solcap.inventory import Shard, shard_of
from solcap.serve import protocol

_log = logging.getLogger("solcap.serve")

#: Seconds a worker may take to open its control socket and start its consoles' threads.
READY_TIMEOUT = 60.0
#: Seconds a stopping worker may take to close its consoles (SOL logouts run in parallel).
STOP_TIMEOUT = 20.0
#: Seconds one worker may take to answer a status request.
STATUS_TIMEOUT = 10.0


def worker_of(name: str, count: int) -> int:
    """The worker that holds host ``name`` among ``count`` (salted: not ``--shard``'s split,
    so the hosts of one shard still spread over every worker)."""
    return shard_of(f"serve-worker:{name}", count)


def worker_socket(control: Path, index: int) -> Path:
    """Worker ``index``'s private hand-over socket beside the server's ``control`` socket."""
    return control.with_name(f"{control.stem}.w{index}.sock")


def hand_over(path: Path, conn: socket.socket, request: dict[str, Any]) -> None:
    """Pass the client connection ``conn`` and its first ``request`` to the worker listening
    on ``path``; the caller then closes its own copy of ``conn``."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as port:
        port.settimeout(5.0)
        port.connect(str(path))
        socket.send_fds(port, [json.dumps(request).encode()], [conn.fileno()])


def receive(port: socket.socket) -> tuple[socket.socket, dict[str, Any]] | None:
    """The worker's side of :func:`hand_over`: the passed connection and its request."""
    message, fds, _flags, _addr = socket.recv_fds(port, 1 << 16, 1)
    if not fds:
        return None
    conn = socket.socket(fileno=fds[0])
    for extra in fds[1:]:
        os.close(extra)
    try:
        request = json.loads(message)
    except ValueError:
        conn.close()
        return None
    if not isinstance(request, dict):
        conn.close()
        return None
    return conn, request


@dataclass
class Worker:
    """One forked worker: its index, pid, hand-over socket and whether it was reaped."""

    index: int
    pid: int
    socket: Path
    status: int | None = None


class WorkerPool:
    """The parent's view of its workers: fork them, route to them, ask them, stop them."""

    def __init__(self, count: int, control: Path) -> None:
        self.count = count
        self.control = control
        self.workers: list[Worker] = []

    def start(self, run_worker: Callable[[int, Callable[[], None]], int]) -> WorkerPool:
        """Fork every worker; ``run_worker(index, ready)`` is the worker's whole life (its
        exit status). Returns once each has said ready; SolcapError naming the first that
        did not (the others are stopped)."""
        pipes: list[tuple[Worker, int]] = []
        parent = os.getpid()
        for index in range(self.count):
            read, write = os.pipe()
            pid = os.fork()
            if pid == 0:  # the worker: never returns into the parent's stack
                code = 1
                try:
                    signal.set_wakeup_fd(-1)  # the parent's wake pipe is not ours
                    _die_with_parent(parent)
                    os.close(read)
                    for _, other in pipes:
                        os.close(other)

                    def ready(fd: int = write) -> None:
                        os.write(fd, b"ready\n")
                        os.close(fd)
                        if os.getppid() != parent:  # died while we started: the signal
                            os.kill(os.getpid(), signal.SIGTERM)  # may have been missed

                    code = run_worker(index, ready)
                except SolcapError as exc:
                    _log.error("worker %d: %s", index, exc.one_line())
                    code = int(exc.exit_status)
                except BaseException:
                    _log.exception("worker %d failed", index)
                finally:
                    with contextlib.suppress(Exception):
                        sys.stderr.flush()
                    os._exit(code)
            os.close(write)
            worker = Worker(index, pid, worker_socket(self.control, index))
            self.workers.append(worker)
            pipes.append((worker, read))
        try:
            deadline = time.monotonic() + READY_TIMEOUT
            for worker, read in pipes:
                left = max(0.0, deadline - time.monotonic())
                readable, _, _ = select.select([read], [], [], left)
                said = os.read(read, 64) if readable else b""
                if said != b"ready\n":
                    raise SolcapError(
                        f"serve worker {worker.index} (pid {worker.pid}) did not start"
                        + (": " + self._ended(worker) if said == b"" and readable else "")
                    )
        except BaseException:
            self.stop()
            raise
        finally:
            for _, read in pipes:
                os.close(read)
        _log.info("%d workers: %s", self.count, ", ".join(f"pid {w.pid}" for w in self.workers))
        return self

    def _ended(self, worker: Worker) -> str:
        with contextlib.suppress(ChildProcessError):
            _, status = os.waitpid(worker.pid, 0)
            worker.status = status
        return _how(worker.status)

    def owner(self, name: str) -> Worker:
        return self.workers[worker_of(name, self.count)]

    def shard(self, index: int) -> Shard:
        return Shard(index, self.count)

    def signal(self, signum: int) -> None:
        for worker in self.workers:
            if worker.status is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(worker.pid, signum)

    def reap(self) -> list[Worker]:
        """Workers that ended since the last look (SIGCHLD): reaped, returned."""
        ended = []
        for worker in self.workers:
            if worker.status is not None:
                continue
            with contextlib.suppress(ChildProcessError):
                pid, status = os.waitpid(worker.pid, os.WNOHANG)
                if pid == 0:
                    continue
                worker.status = status
                ended.append(worker)
                _log.error(
                    "worker %d (pid %d) ended: %s; its consoles are not held",
                    worker.index,
                    worker.pid,
                    _how(status),
                )
        return ended

    def status(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """(every worker's host entries, one line per worker: index, pid, error)."""
        hosts: list[dict[str, Any]] = []
        workers: list[dict[str, Any]] = []
        for worker in self.workers:
            entry: dict[str, Any] = {"index": worker.index, "pid": worker.pid, "error": None}
            workers.append(entry)
            if worker.status is not None:
                entry["error"] = _how(worker.status)
                continue
            try:
                hosts += self._ask(worker)
            except (OSError, protocol.ProtocolError, ValueError) as exc:
                entry["error"] = f"no status: {exc}"
        return hosts, workers

    def _ask(self, worker: Worker) -> list[dict[str, Any]]:
        mine, theirs = socket.socketpair()
        with mine, theirs:
            hand_over(worker.socket, theirs, {"op": "status"})
            theirs.close()
            mine.settimeout(STATUS_TIMEOUT)
            frame = protocol.read_frame(mine)
        if frame is None or frame[0] != protocol.JSON:
            raise protocol.ProtocolError("no status reply")
        reply = protocol.decode_json(frame[1])
        hosts = reply.get("hosts")
        if not isinstance(hosts, list):
            raise protocol.ProtocolError("a status reply without hosts")
        return hosts

    def stop(self) -> None:
        """SIGTERM every worker, wait for each (bounded), SIGKILL the ones still there."""
        self.signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        for worker in self.workers:
            while worker.status is None:
                try:
                    pid, status = os.waitpid(worker.pid, os.WNOHANG)
                except ChildProcessError:
                    worker.status = 0
                    break
                if pid:
                    worker.status = status
                    break
                if time.monotonic() > deadline:
                    _log.error("worker %d (pid %d) did not stop; killed", worker.index, worker.pid)
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(worker.pid, signal.SIGKILL)
                    with contextlib.suppress(ChildProcessError):
                        worker.status = os.waitpid(worker.pid, 0)[1]
                    break
                time.sleep(0.02)
            with contextlib.suppress(FileNotFoundError):
                worker.socket.unlink()


def _die_with_parent(parent: int) -> None:
    """A worker whose server is gone (SIGKILLed, crashed) must not hold its consoles on:
    the kernel sends it SIGTERM when the parent dies (``PR_SET_PDEATHSIG``), and it closes
    its consoles and recordings as on any SIGTERM, so a restarted server finds them free."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
        _log.warning("worker: no parent-death signal: %s", os.strerror(ctypes.get_errno()))
    if os.getppid() != parent:  # the parent died before the request took effect
        os._exit(1)


#: ``<linux/prctl.h>``.
_PR_SET_PDEATHSIG = 1


def _how(status: int | None) -> str:
    if status is None:
        return "still running"
    if os.WIFSIGNALED(status):
        return f"killed by {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exit status {os.waitstatus_to_exitcode(status)}"
