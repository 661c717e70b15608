"""Fleet runs: one job per host, at most ``parallel`` at a time, one outcome per host.

A fleet run is I/O bound (consoles at a few KB/s each), so a process runs one thread per
running host; with ``workers`` above 1 the hosts are sharded over that many forked processes,
each running this same scheduler over its share (:mod:`solcap.orchestration.workers`), so a large
fleet uses every core. The calling thread schedules, watches deadlines and reports progress:

* **bounded concurrency** — at most ``parallel`` jobs run at once;
* **per-host timeout** — when a host passes ``host_timeout`` its :class:`HostContext` is
  cancelled: its cancel event is set and everything the job registered with
  :meth:`HostContext.on_cancel` (its console) is closed, so a job blocked on the console gets
  :class:`~solcap.errors.ConsoleClosed` and unwinds, closing its recording. The host is
  reported as ``timeout``. A job that still does not return within ``cancel_grace`` seconds
  (e.g. stuck in a BMC login) is abandoned: its slot is freed and it is reported anyway;
* **isolation** — an exception in one job becomes that host's outcome (``failed`` when the
  far side failed, ``error`` for local problems and bugs); the other hosts carry on;
* **Ctrl-C** — every running host is cancelled (consoles closed, recordings closed by their
  jobs), hosts not yet started are reported as such, and :class:`FleetInterrupted` (a
  ``KeyboardInterrupt`` carrying the summary) is raised.

Outcomes: ``ok`` · ``failed`` (the host or its BMC failed: login refused, no answer, dump
incomplete) · ``timeout`` (``host_timeout`` passed) · ``error`` (local: configuration,
recording, interrupted, a bug). Exit status (:attr:`FleetSummary.exit_status`): 0 when every
host is ``ok``, 4 (``PARTIAL``) when some are, 3 (``TARGET``) when none is.

Jobs are plain callables ``job(host, ctx) -> HostResult``; :func:`harvest_job` is the debug-key
harvest and :func:`harvest` runs it over a fleet. Example::

    from solcap.orchestration import fleet
    from solcap.inventory import load_inventory

    hosts = load_inventory("inventory.yaml").hosts
    summary = fleet.harvest(hosts, ["h", "q"], parallel=16, host_timeout=300)
    summary.write("summary.json")
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

from solcap import __version__
from solcap.capture.recording import (
    DEFAULT_ROOT,
    Recording,
    RecordingSummary,
    Segment,
    iso,
    utc_now,
)
from solcap.config.limits import decode_utf8, read_bytes
from solcap.connect import ConsoleSpec, RecordedConsole, RecordingFactory, open_console
from solcap.console.core import Console
from solcap.errors import ExitStatus, TargetError, UsageError
from solcap.inventory import Host
from solcap.orchestration.outcomes import OUTCOMES, HostResult, Outcome, classify, one_line
from solcap.orchestration.workers import default_workers, fork_refusal, run_sharded
from solcap.xen.console import quiet_period, refuse_dangerous
from solcap.xen.harvest import harvest_keys

if TYPE_CHECKING:
    import re

    from solcap.orchestration.runbook import HostPlan

log = logging.getLogger(__name__)


#: Seconds a cancelled job gets to return before its slot is freed and it is reported anyway.
CANCEL_GRACE = 10.0
#: Where fleet run summaries go under the recordings root (host names cannot start with "_").
RUNS_DIR = "_fleet"
#: The summary file format; bump when a field changes meaning.
SUMMARY_VERSION = 1


# --------------------------------------------------------------------------- results


class Cancelled(TargetError):
    """The fleet cancelled this host (its timeout passed, or the run was interrupted)."""


class HostContext:
    """What a job gets besides its host: the deadline, the cancel event, where to record.

    A job should hand every blocking resource (its console) to :meth:`on_cancel`, so the fleet
    can close it when the host times out, and may call :meth:`check` between steps.
    """

    def __init__(
        self, host: Host, *, deadline: float | None, root: Path | None, clock: Callable[[], float]
    ) -> None:
        self.host = host
        self.deadline = deadline
        self.root = root
        self.cancel_event = threading.Event()
        self.reason: Literal["timeout", "interrupted"] | None = None
        #: Set by the job once it has a recording, so an abandoned job can still be located.
        self.recording: Path | None = None
        self._clock = clock
        self.started = clock()
        self._lock = threading.Lock()
        self._closers: list[Callable[[], None]] = []

    @property
    def cancelled(self) -> bool:
        return self.cancel_event.is_set()

    @property
    def elapsed(self) -> float:
        """Seconds since the job started."""
        return self._clock() - self.started

    def remaining(self, default: float) -> float:
        """Seconds left before the deadline (``default`` if there is none), at least 0.1."""
        if self.deadline is None:
            return default
        return max(0.1, min(default, self.deadline - self._clock()))

    def check(self) -> None:
        """Raise :class:`Cancelled` if the fleet has cancelled this host."""
        if self.cancelled:
            raise Cancelled(self.host.name, f"cancelled ({self.reason})")

    def on_cancel(self, closer: Callable[[], None]) -> None:
        """Call ``closer`` when this host is cancelled (at once if it already is)."""
        with self._lock:
            if not self.cancelled:
                self._closers.append(closer)
                return
        _call_quietly(closer, self.host.name)

    def result(
        self,
        outcome: Outcome,
        *,
        error: str | None = None,
        bytes: int = 0,
        recording: Path | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> HostResult:
        """A :class:`HostResult` for this host, timed from the job's start."""
        return HostResult(
            name=self.host.name,
            outcome=outcome,
            error=error,
            bytes=bytes,
            duration=self.elapsed,
            recording=recording if recording is not None else self.recording,
            details=dict(details or {}),
        )

    def cancel(self, reason: Literal["timeout", "interrupted"]) -> None:
        """Set the cancel event and run the closers (called by the fleet)."""
        with self._lock:
            if self.cancelled:
                return
            self.reason = reason
            self.cancel_event.set()
            closers, self._closers = self._closers, []
        for closer in closers:
            _call_quietly(closer, self.host.name)


def _call_quietly(closer: Callable[[], None], host: str) -> None:
    try:
        closer()
    except Exception:  # a close that fails must not stop the others; it is logged
        log.exception("%s: closing on cancel failed", host)


Job = Callable[[Host, HostContext], HostResult]


# --------------------------------------------------------------------------- summary


@dataclass(frozen=True)
class FleetSummary:
    """All hosts' results of one run, in the order the hosts were given."""

    results: tuple[HostResult, ...]
    started: dt.datetime
    finished: dt.datetime
    parallel: int
    host_timeout: float | None
    interrupted: bool = False
    meta: Mapping[str, Any] = field(default_factory=dict)

    @property
    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = dict.fromkeys(OUTCOMES, 0)
        for result in self.results:
            counts[result.outcome] += 1
        return counts

    @property
    def exit_status(self) -> ExitStatus:
        """0 all ok · 4 PARTIAL some ok · 3 TARGET none ok (130 if interrupted)."""
        if self.interrupted:
            return ExitStatus.INTERRUPTED
        good = sum(1 for r in self.results if r.ok)
        if good == len(self.results):
            return ExitStatus.OK
        return ExitStatus.PARTIAL if good else ExitStatus.TARGET

    def failed(self) -> list[HostResult]:
        return [r for r in self.results if not r.ok]

    def to_json(self) -> dict[str, Any]:
        counts = self.counts
        return {
            "version": SUMMARY_VERSION,
            "tool": f"solcap {__version__}",
            **dict(self.meta),
            "started": iso(self.started),
            "finished": iso(self.finished),
            "duration": round((self.finished - self.started).total_seconds(), 3),
            "parallel": self.parallel,
            "host_timeout": self.host_timeout,
            "interrupted": self.interrupted,
            "totals": {
                "hosts": len(self.results),
                **counts,
                "bytes": sum(r.bytes for r in self.results),
                "exit_status": int(self.exit_status),
            },
            "hosts": [r.to_json() for r in self.results],
        }

    def write(self, path: str | os.PathLike[str]) -> Path:
        """Write the JSON summary atomically as a 0600 file; returns the path."""
        target = Path(path)
        tmp = target.with_name(f".{target.name}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(self.to_json(), handle, indent=2)
            handle.write("\n")
        os.replace(tmp, target)
        return target

    def write_run_dir(self, root: str | os.PathLike[str] | None = None, label: str = "run") -> Path:
        """``<root>/_fleet/<UTC stamp>_<label>/summary.json`` (0700 directories)."""
        base = Path(root) if root is not None else DEFAULT_ROOT
        stamp = self.started.strftime("%Y%m%dT%H%M%S.") + f"{self.started.microsecond:06d}Z"
        directory = base / RUNS_DIR / f"{stamp}_{label}"
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        return self.write(directory / "summary.json")


def load_summary(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a summary written by :meth:`FleetSummary.write`; UsageError if it is not one."""
    shown = os.fspath(path)
    if not Path(shown).exists():
        raise UsageError(f"{shown}: no such summary file")
    try:
        data: Any = json.loads(decode_utf8(read_bytes(shown, "summary"), shown))
    except (json.JSONDecodeError, RecursionError) as exc:
        raise UsageError(f"{shown}: not a fleet summary: {exc}") from None
    hosts = data.get("hosts") if isinstance(data, dict) else None
    if not isinstance(hosts, list) or not all(
        isinstance(h, dict) and isinstance(h.get("host"), str) for h in hosts
    ):
        raise UsageError(f"{shown}: not a fleet summary (no hosts list)")
    value: dict[str, Any] = data
    return value


def retry_selection(hosts: Iterable[Host], summary_path: str | os.PathLike[str]) -> list[Host]:
    """``--retry-failed``: the hosts whose outcome in that summary was not ``ok``.

    A host named there but missing from ``hosts`` is an error: retrying against a different
    inventory (or selection) must not silently skip it.
    """
    data = load_summary(summary_path)
    wanted = [h["host"] for h in data["hosts"] if h.get("outcome") != "ok"]
    pool = {h.name: h for h in hosts}
    missing = [name for name in wanted if name not in pool]
    if missing:
        raise UsageError(
            f"{os.fspath(summary_path)}: host(s) {', '.join(missing)} to retry are not in the "
            "selected inventory hosts"
        )
    chosen = set(wanted)
    return [h for h in pool.values() if h.name in chosen]


# --------------------------------------------------------------------------- progress


class Progress(Protocol):
    """What a fleet run tells the person watching (called from the scheduling thread)."""

    def start(self, total: int) -> None: ...
    def host_started(self, name: str) -> None: ...
    def host_done(self, result: HostResult) -> None: ...
    def finish(self, summary: FleetSummary) -> None: ...


class NoProgress:
    """Say nothing (library use)."""

    def start(self, total: int) -> None:
        pass

    def host_started(self, name: str) -> None:
        pass

    def host_done(self, result: HostResult) -> None:
        pass

    def finish(self, summary: FleetSummary) -> None:
        pass


# --------------------------------------------------------------------------- the scheduler


class FleetInterrupted(KeyboardInterrupt):
    """Ctrl-C during a fleet run, after every host was cancelled and reported."""

    def __init__(self, summary: FleetSummary) -> None:
        super().__init__("fleet run interrupted")
        self.summary = summary


@dataclass
class _Slot:
    host: Host
    ctx: HostContext
    thread: threading.Thread | None = None
    result: HostResult | None = None
    cancelled_at: float | None = None


def run(
    hosts: Sequence[Host],
    job: Job,
    *,
    parallel: int = 8,
    host_timeout: float | None = None,
    progress: Progress | None = None,
    root: str | os.PathLike[str] | None = None,
    cancel_grace: float = CANCEL_GRACE,
    meta: Mapping[str, Any] | None = None,
    clock: Callable[[], float] = time.monotonic,
    workers: int | None = 1,
) -> FleetSummary:
    """Run ``job(host, ctx)`` for every host, ``parallel`` at a time; never raises for a host.

    ``host_timeout`` (seconds from the host's start) cancels a host as described in the module
    docstring. ``root`` is the recordings root handed to jobs (``ctx.root``). Returns the
    :class:`FleetSummary` in host order; raises :class:`FleetInterrupted` on Ctrl-C.

    ``workers``: processes to shard the hosts over (:mod:`solcap.orchestration.workers`; None: one
    per core). More than one runs each job in a forked worker, so a job must keep what it
    produces on disk or in its :class:`HostResult` (the harvest and runbook jobs do), not in
    the caller's memory; hence 1, in-process, is the default here, and the commands and
    :func:`harvest` ask for one per core. Never more workers than hosts or ``parallel``.
    """
    if parallel < 1:
        raise UsageError(f"--parallel must be at least 1, not {parallel}")
    if host_timeout is not None and host_timeout <= 0:
        raise UsageError(f"--host-timeout must be greater than zero, not {host_timeout:g}")
    names = [h.name for h in hosts]
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise UsageError(f"host(s) listed twice: {', '.join(dup)}")
    if workers is not None and workers < 1:
        raise UsageError(f"--workers must be at least 1, not {workers}")
    view = progress if progress is not None else NoProgress()
    root_path = Path(root) if root is not None else None
    shards = min(default_workers() if workers is None else workers, len(hosts), parallel)
    if shards > 1:
        refusal = fork_refusal()
        if refusal is None:
            return run_sharded(
                hosts,
                job,
                workers=shards,
                parallel=parallel,
                host_timeout=host_timeout,
                progress=view,
                root=root_path,
                cancel_grace=cancel_grace,
                meta=meta,
                clock=clock,
            )
        log.info("fleet: one process (%s)", refusal)
    started = utc_now()
    pending: deque[Host] = deque(hosts)
    running: list[_Slot] = []
    abandoned: list[_Slot] = []
    results: dict[str, HostResult] = {}
    wake = threading.Condition()

    def worker(slot: _Slot) -> None:
        try:
            outcome = job(slot.host, slot.ctx)
            if not isinstance(outcome, HostResult):
                raise TypeError(f"a fleet job must return a HostResult, not {type(outcome)}")
            outcome = replace(outcome, name=slot.host.name)
        except BaseException as exc:  # every failure becomes this host's outcome
            outcome = slot.ctx.result(classify(exc), error=one_line(exc, slot.host.name))
        with wake:
            slot.result = outcome
            wake.notify_all()

    def launch(host: Host) -> None:
        deadline = clock() + host_timeout if host_timeout is not None else None
        ctx = HostContext(host, deadline=deadline, root=root_path, clock=clock)
        slot = _Slot(host, ctx)
        slot.thread = threading.Thread(
            target=worker, args=(slot,), name=f"solcap-fleet-{host.name}", daemon=True
        )
        running.append(slot)
        view.host_started(host.name)
        slot.thread.start()

    def finish(slot: _Slot) -> None:
        running.remove(slot)
        result = slot.result
        late = ""
        if result is None:  # abandoned after cancel_grace: report what we know
            abandoned.append(slot)
            result = slot.ctx.result("error", error="did not stop")
            late = f"; the job did not stop within {cancel_grace:g}s of that"
        if slot.ctx.reason == "timeout":
            error = f"no result within the host timeout of {host_timeout:g}s; console closed"
            result = replace(result, outcome="timeout", error=error + late)
        results[slot.host.name] = result
        view.host_done(result)

    def cancel_in_background(slot: _Slot, reason: Literal["timeout", "interrupted"]) -> None:
        # Closing a console joins its reader (bounded, seconds): not on the scheduling thread.
        threading.Thread(
            target=slot.ctx.cancel, args=(reason,), name=f"solcap-cancel-{slot.host.name}"
        ).start()

    view.start(len(hosts))
    try:
        while pending or running:
            while pending and len(running) < parallel:
                launch(pending.popleft())
            now = clock()
            for slot in list(running):
                if slot.result is not None:
                    finish(slot)
                elif slot.cancelled_at is not None:
                    if now - slot.cancelled_at >= cancel_grace:
                        finish(slot)
                elif slot.ctx.deadline is not None and now >= slot.ctx.deadline:
                    slot.cancelled_at = now
                    cancel_in_background(slot, "timeout")
            if pending and len(running) < parallel:
                continue
            with wake:
                if running and all(s.result is None for s in running):
                    wake.wait(_next_wakeup(running, clock(), cancel_grace))
    except KeyboardInterrupt:
        summary = _interrupted(
            hosts, running, pending, results, started, parallel, host_timeout, meta, cancel_grace
        )
        view.finish(summary)
        raise FleetInterrupted(summary) from None
    for slot in abandoned:  # give late jobs a last chance to close their recordings
        if slot.thread is not None:
            slot.thread.join(cancel_grace)
    summary = summarise(hosts, results, started, parallel, host_timeout, meta)
    view.finish(summary)
    return summary


def summarise(
    hosts: Sequence[Host],
    results: Mapping[str, HostResult],
    started: dt.datetime,
    parallel: int,
    host_timeout: float | None,
    meta: Mapping[str, Any] | None,
    *,
    interrupted: bool = False,
) -> FleetSummary:
    """The run's summary, results in inventory order (the in-process and worker schedulers)."""
    return FleetSummary(
        results=tuple(results[h.name] for h in hosts),
        started=started,
        finished=utc_now(),
        parallel=parallel,
        host_timeout=host_timeout,
        interrupted=interrupted,
        meta=dict(meta or {}),
    )


def _next_wakeup(running: list[_Slot], now: float, grace: float) -> float:
    """Seconds until the next deadline or grace expiry (at most 1 s, at least 10 ms)."""
    waits = [1.0]
    for slot in running:
        if slot.cancelled_at is not None:
            waits.append(slot.cancelled_at + grace - now)
        elif slot.ctx.deadline is not None:
            waits.append(slot.ctx.deadline - now)
    return max(0.01, min(waits))


def _interrupted(
    hosts: Sequence[Host],
    running: list[_Slot],
    pending: deque[Host],
    results: dict[str, HostResult],
    started: dt.datetime,
    parallel: int,
    host_timeout: float | None,
    meta: Mapping[str, Any] | None,
    grace: float,
) -> FleetSummary:
    """Cancel every running host (consoles closed), wait for their jobs (bounded), report."""
    for slot in running:
        slot.ctx.cancel("interrupted")
    end = time.monotonic() + grace
    for slot in running:
        if slot.thread is not None:
            slot.thread.join(max(0.0, end - time.monotonic()))
        result = slot.result or slot.ctx.result("error")
        results[slot.host.name] = replace(result, outcome="error", error="interrupted")
    for host in pending:
        results[host.name] = HostResult(host.name, "error", "not started: the run was interrupted")
    return summarise(hosts, results, started, parallel, host_timeout, meta, interrupted=True)


# --------------------------------------------------------------------------- opening a host


def open_host_console(
    host: Host,
    recording: Recording | RecordingFactory,
    ctx: HostContext | None = None,
    *,
    death_strings: Sequence[bytes | re.Pattern[bytes]] = (),
) -> RecordedConsole:
    """A started console for ``host`` (:func:`solcap.connect.open_console`: reconnecting over
    SOL, credentials from the inventory's references, the login bounded by the host's
    remaining time), recording into ``recording`` (created once the console is open).

    With a context, the console is registered to be closed when the host is cancelled (which
    also stops a reconnection in progress).
    """
    from solcap.transports.ipmi.target import CONNECT_TIMEOUT

    timeout = ctx.remaining(CONNECT_TIMEOUT) if ctx is not None else None
    spec = ConsoleSpec.from_host(host, connect_timeout=timeout)
    console = open_console(spec, recording=recording, death_strings=death_strings)
    if ctx is not None:
        if console.recording is not None:
            ctx.recording = console.recording.path
        ctx.on_cancel(console.close)
    return console


# --------------------------------------------------------------------------- harvest


@dataclass(frozen=True)
class HarvestDone:
    """One console's harvest, its recording closed: the summary, the outcome a fleet reports
    (``ok`` only when every dump is complete), and the exception that ended it early (None
    when every key was pressed), which a single-target command raises again for its exit
    status."""

    summary: RecordingSummary
    outcome: Outcome
    error: str | None
    segments: list[dict[str, Any]]
    exception: Exception | None = None


def harvest_console(
    console: RecordedConsole,
    keys: Sequence[str],
    *,
    baud: int,
    quiet: float | None = None,
    allow_dangerous: bool = False,
    start_timeout: float = 10.0,
    check: Callable[[], None] = lambda: None,
    closed: Callable[[RecordingSummary], None] | None = None,
) -> HarvestDone:
    """Harvest ``keys`` on an opened console and close it and its recording, the outcome
    written into the recording's meta.json. The body of :func:`harvest_job`, and all of
    single-target ``solcap harvest``, so the two cannot drift apart.

    ``quiet`` None is derived from ``baud``; ``check`` runs once the console is up (a fleet
    cancels a host there); ``closed`` gets the summary also when an interruption propagates.
    """
    recording = console.recording
    assert recording is not None
    outcome: Outcome = "error"
    error: str | None = "interrupted"
    segments: list[dict[str, Any]] = []
    failure: Exception | None = None
    try:
        try:
            wait = quiet if quiet is not None else quiet_period(baud, floor=1.0)
            with console:
                check()
                result = harvest_keys(
                    console,
                    recording,
                    keys,
                    allow_dangerous=allow_dangerous,
                    quiet=wait,
                    start_timeout=start_timeout,
                )
            segments = [_segment_entry(s) for s in result.segments]
            bad = [f"{s.name} ({s.reason})" for s in result.segments if not s.complete]
            outcome, error = (
                ("ok", None) if not bad else ("failed", "incomplete: " + ", ".join(bad))
            )
        except Exception as exc:
            failure = exc
            outcome, error = classify(exc), one_line(exc, recording.host)
            recording.event("failed", outcome=outcome, error=error)
    finally:
        console.close()
        summary = recording.close(outcome=outcome, error=error, stop_reason=error or "done")
        if closed is not None:
            closed(summary)
    if failure is not None:
        # Cancelled or failed mid-harvest: the dumps kept so far are in the recording, byte
        # for byte; the summary lists them too, or a fleet's report of an interrupted host
        # would say nothing of what it did keep.
        segments = [_segment_entry(s) for s in summary.segments]
    return HarvestDone(summary, outcome, error, segments, failure)


def _segment_entry(segment: Segment) -> dict[str, Any]:
    """One kept dump as a fleet summary lists it (size and SHA-256 to check a copy against).

    ``key`` is the key pressed; ``name`` tells repeated presses apart (``q``, ``q-2``) and
    names the file, so a key pressed twice is two entries, never one overwritten."""
    return {
        "key": segment.key or segment.name,
        "name": segment.name,
        "bytes": segment.end - segment.start,
        "sha256": segment.sha256,
        "complete": segment.complete,
        "file": segment.file,
    }


def harvest_job(
    keys: Sequence[str],
    *,
    quiet: float | None = None,
    allow_dangerous: bool = False,
    label: str = "harvest",
    start_timeout: float = 10.0,
) -> Job:
    """The debug-key harvest as a fleet job: one recording per host under
    ``<root>/<host>/<stamp>_<label>/``, each key's dump a segment (``keys/<k>.txt``).

    A host is ``ok`` when every dump is complete; the JSON summary lists each segment's size
    and SHA-256 so a run can be checked against another copy byte for byte.
    """
    keys = list(keys)
    refuse_dangerous(keys, allowed=allow_dangerous)

    def job(host: Host, ctx: HostContext) -> HostResult:
        ctx.check()

        def make_recording() -> Recording:
            return Recording(host.name, label=label, root=ctx.root, meta={"keys": keys})

        try:
            console = open_host_console(host, make_recording, ctx)
        except Exception as exc:  # nothing was recorded: the console never opened
            return ctx.result(
                classify(exc), error=one_line(exc, host.name), details={"segments": []}
            )
        done = harvest_console(
            console,
            keys,
            baud=host.line.baud if host.line is not None else 38400,
            quiet=quiet,
            allow_dangerous=allow_dangerous,
            start_timeout=start_timeout,
            check=ctx.check,
        )
        return ctx.result(
            done.outcome,
            error=done.error,
            bytes=done.summary.bytes,
            recording=done.summary.path,
            details={"segments": done.segments},
        )

    return job


def harvest(
    hosts: Sequence[Host],
    keys: Sequence[str],
    *,
    parallel: int = 8,
    host_timeout: float | None = None,
    root: str | os.PathLike[str] | None = None,
    quiet: float | None = None,
    allow_dangerous: bool = False,
    label: str = "harvest",
    progress: Progress | None = None,
    cancel_grace: float = CANCEL_GRACE,
    start_timeout: float = 10.0,
    workers: int | None = None,
) -> FleetSummary:
    """Harvest ``keys`` from every host (see :func:`harvest_job` and :func:`run`), sharded
    over ``workers`` processes (None: one per core; the harvest job keeps its results on
    disk and in its HostResult, so it may run in any of them)."""
    job = harvest_job(
        keys,
        quiet=quiet,
        allow_dangerous=allow_dangerous,
        label=label,
        start_timeout=start_timeout,
    )
    return run(
        hosts,
        job,
        parallel=parallel,
        host_timeout=host_timeout,
        progress=progress,
        root=root,
        cancel_grace=cancel_grace,
        meta={"kind": "harvest", "keys": list(keys)},
        workers=workers,
    )


# --------------------------------------------------------------------------- runbooks


def runbook_job(plans: Sequence[HostPlan], *, runbook_name: str) -> Job:
    """A planned runbook (:func:`solcap.orchestration.runbook.plan`) as a fleet job over its hosts.

    Each host runs :func:`solcap.orchestration.runner.run_host` into its own recording; its console
    is handed to the context so a host timeout closes it (an SSH command in progress is not
    interrupted: it ends at the step's own timeout).
    """
    from solcap.orchestration import runner

    by_name = {hp.host.name: hp for hp in plans}

    def job(host: Host, ctx: HostContext) -> HostResult:
        def console_factory(
            host: Host,
            recording: RecordingFactory,
            *,
            death_strings: Sequence[re.Pattern[bytes]],
        ) -> Console:  # solcap.orchestration.runner.ConsoleFactory, plus closing on cancel
            return open_host_console(host, recording, ctx, death_strings=death_strings)

        ctx.check()
        result = runner.run_host(
            by_name[host.name],
            console_factory=console_factory,
            power=runner.bmc_power if host.bmc is not None else None,
            ssh_factory=runner.open_host_ssh if host.ssh is not None else None,
            recordings_root=ctx.root,
            runbook_name=runbook_name,
            sol_rate=runner.bmc_sol_rate,
        )
        # Timed by the fleet from the job's start, like every other job: the runner's own
        # clock starts later (after planning), so a host cancelled at its timeout would
        # otherwise report less than the timeout it ran into.
        return replace(result, duration=ctx.elapsed)

    return job
