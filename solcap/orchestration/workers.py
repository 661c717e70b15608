"""A fleet's hosts sharded over worker processes, so a run uses every core.

One Python process has one GIL: past a few hundred SOL streams its one SOL engine thread is
the ceiling, however many cores the machine has. :func:`run_sharded` forks ``workers``
processes (one per core by default, see :func:`default_workers`); worker *i* owns the hosts
``hosts[i::workers]`` and runs them with the in-process scheduler
(:func:`solcap.orchestration.fleet.run`: bounded concurrency, host timeouts, cancel grace), so each
host's console, SOL session and recording live in the worker that owns it and no byte crosses a
process boundary. Only progress and :class:`~solcap.orchestration.outcomes.HostResult` values come
back, over one pipe per worker; the calling process schedules nothing, it reports.

Why fork and not spawn: a job is any ``job(host, ctx)`` callable, closures included (the
harvest and runbook jobs are), and a forked worker inherits it as it is; nothing is pickled
on the way in. A forked child has only the forking thread, so a process whose IPMI machinery
already runs (pyghmi's I/O thread, a SOL engine) must not fork: :func:`fork_refusal` says so
and the fleet then runs in-process, as before workers existed.

Failures stay per host: a worker that dies (killed, out of memory, a crash in C) is seen at
once by its process sentinel, and each of its hosts without a result is reported as that
host's ``error`` naming the worker and its signal or exit status; the other workers carry
on. Ctrl-C (or SIGTERM unwinding the CLI) reaches the calling process; it asks every worker
to cancel (SIGUSR1: the worker's scheduler then cancels its running hosts, which close their
consoles and recordings) and waits for their reports, bounded by the cancel grace.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from solcap.capture.recording import utc_now
from solcap.inventory import Host
from solcap.orchestration.outcomes import HostResult

if TYPE_CHECKING:
    import multiprocessing.connection
    import multiprocessing.process

    from solcap.orchestration.fleet import FleetSummary, Job, Progress

__all__ = ["default_workers", "fork_refusal", "run_sharded"]

#: Seconds beyond the cancel grace that an interrupted run waits for its workers' reports.
REPORT_GRACE = 5.0


def default_workers() -> int:
    """One worker per core this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def fork_refusal() -> str | None:
    """Why this process must not fork workers now (None: it may)."""
    if not hasattr(os, "fork"):
        return "this platform cannot fork"
    if threading.current_thread() is not threading.main_thread():
        return "workers are forked from the main thread only (signals are handled there)"
    if "pyghmi.ipmi.private.session" in sys.modules:
        # Its I/O thread and socket list (and solcap's pump and engine threads beside them)
        # would be inherited without their threads: a forked worker's logins would hang.
        return "IPMI sessions already ran in this process"
    return None


def split_parallel(parallel: int, workers: int) -> list[int]:
    """Each worker's share of ``parallel`` (the shares add up to it; each at least 1)."""
    return [parallel // workers + (1 if i < parallel % workers else 0) for i in range(workers)]


class _PipeProgress:
    """A worker's progress view: each event goes to the calling process over the pipe."""

    def __init__(self, conn: multiprocessing.connection.Connection) -> None:
        self._conn = conn

    def start(self, total: int) -> None:
        return

    def host_started(self, name: str) -> None:
        self._conn.send(("started", name))

    def host_done(self, result: HostResult) -> None:
        self._conn.send(("done", result))

    def finish(self, summary: FleetSummary) -> None:
        return


def _on_cancel_signal(signum: int, frame: FrameType | None) -> None:
    # Once: a second signal (the caller's SIGUSR1 after a SIGTERM sent to the whole process
    # group) must not cut short the cancel this one starts.
    signal.signal(signal.SIGUSR1, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise KeyboardInterrupt


def _worker_main(
    conn: multiprocessing.connection.Connection,
    hosts: Sequence[Host],
    job: Job,
    options: dict[str, Any],
) -> None:
    """A worker: run its hosts with the in-process scheduler, report each over ``conn``."""
    from solcap.orchestration import fleet

    # The terminal's Ctrl-C is the calling process's to handle; it tells us with SIGUSR1.
    # A SIGTERM of our own (``kill`` of the process group, a service stop) cancels the same
    # way: dying at once would leave this worker's recordings unfinished.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _on_cancel_signal)
    signal.signal(signal.SIGUSR1, _on_cancel_signal)
    try:
        fleet.run(hosts, job, workers=1, progress=_PipeProgress(conn), **options)
    except fleet.FleetInterrupted as exc:
        conn.send(("interrupted", list(exc.summary.results)))
    finally:
        conn.close()


def _death(exitcode: int | None) -> str:
    if exitcode is None:
        return "did not exit"
    if exitcode < 0:
        try:
            return f"killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"killed by signal {-exitcode}"
    return f"exit status {exitcode}"


class _Worker:
    def __init__(
        self,
        index: int,
        process: multiprocessing.process.BaseProcess,
        conn: multiprocessing.connection.Connection,
        hosts: Sequence[Host],
    ) -> None:
        self.index = index
        self.process = process
        self.conn = conn
        self.hosts = hosts
        self.started: set[str] = set()
        self.open = True  # its pipe may still carry reports


def run_sharded(
    hosts: Sequence[Host],
    job: Job,
    *,
    workers: int,
    parallel: int,
    host_timeout: float | None,
    progress: Progress,
    root: Path | None,
    cancel_grace: float,
    meta: Mapping[str, Any] | None,
    clock: Callable[[], float],
) -> FleetSummary:
    """Run ``job`` over ``hosts`` in ``workers`` forked processes (see the module docstring).

    The caller (:func:`solcap.orchestration.fleet.run`) has checked the arguments and that
    :func:`fork_refusal` allows forking; ``workers`` is at most ``len(hosts)`` and
    ``parallel``, which the workers share (:func:`split_parallel`).
    """
    import multiprocessing  # here, not at import: a capture need not load it
    import multiprocessing.connection

    from solcap.orchestration.fleet import FleetInterrupted, summarise

    context = multiprocessing.get_context("fork")
    shares = split_parallel(parallel, workers)
    started = utc_now()
    results: dict[str, HostResult] = {}
    pool: list[_Worker] = []
    progress.start(len(hosts))
    for i in range(workers):
        shard = hosts[i::workers]
        reader, send = context.Pipe(duplex=False)
        options = {
            "parallel": shares[i],
            "host_timeout": host_timeout,
            "root": root,
            "cancel_grace": cancel_grace,
            "clock": clock,
        }
        process = context.Process(
            target=_worker_main,
            args=(send, shard, job, options),
            name=f"solcap-fleet-worker-{i}",
            daemon=True,
        )
        process.start()
        send.close()  # the worker holds the only writing end: EOF means it is gone
        pool.append(_Worker(i, process, reader, shard))

    def report(result: HostResult) -> None:
        if result.name not in results:
            results[result.name] = result
            progress.host_done(result)

    def receive(worker: _Worker) -> None:
        try:
            kind, value = worker.conn.recv()
        except (EOFError, OSError):
            worker.open = False
            return
        if kind == "started":
            worker.started.add(value)
            progress.host_started(value)
        elif kind == "done":
            report(value)
        elif kind == "interrupted":
            for result in value:
                report(result)

    def reap(worker: _Worker, interrupted: bool) -> None:
        """After its pipe closed: the worker's hosts without a result."""
        worker.process.join(cancel_grace)
        how = _death(worker.process.exitcode)
        for host in worker.hosts:
            if host.name in results:
                continue
            if interrupted:
                why = (
                    "interrupted"
                    if host.name in worker.started
                    else "not started: the run was interrupted"
                )
            elif host.name in worker.started:
                why = f"worker process {worker.index} ({how}) died while this host ran"
            else:
                why = f"worker process {worker.index} ({how}) died before this host started"
            report(HostResult(host.name, "error", why))

    def pump(deadline: float | None, interrupted: bool) -> None:
        while any(w.open for w in pool):
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                break
            live = {w.conn: w for w in pool if w.open}
            sentinels = {w.process.sentinel: w for w in pool if w.open}
            ready = multiprocessing.connection.wait(
                [*live, *sentinels], timeout=1.0 if left is None else min(1.0, left)
            )
            for item in ready:
                if item in live:
                    receive(live[item])
            for item in ready:
                worker = sentinels.get(item) if isinstance(item, int) else None
                if worker is not None and worker.open:
                    while worker.conn.poll(0):  # what it sent before it went
                        receive(worker)
                        if not worker.open:
                            break
                    worker.open = False
        for worker in pool:
            if worker.open:  # the deadline passed: it is not reporting any more
                worker.open = False
                with contextlib.suppress(OSError):
                    worker.process.kill()
            reap(worker, interrupted)

    try:
        pump(None, interrupted=False)
    except KeyboardInterrupt:
        for worker in pool:
            if worker.process.is_alive():
                with contextlib.suppress(OSError):
                    os.kill(worker.process.pid or 0, signal.SIGUSR1)
        pump(time.monotonic() + cancel_grace + REPORT_GRACE, interrupted=True)
        summary = summarise(hosts, results, started, parallel, host_timeout, meta, interrupted=True)
        progress.finish(summary)
        raise FleetInterrupted(summary) from None
    finally:
        for worker in pool:
            worker.conn.close()
    summary = summarise(hosts, results, started, parallel, host_timeout, meta)
    progress.finish(summary)
    return summary
