"""Running a host's ``on:`` triggers (:mod:`solcap.config.triggers` is the schema) inside the
server.

A match, seen on the console's reader thread, only queues work (the data path never waits);
one worker thread per host then, in order:

1. records a ``trigger`` event in the host's continuous log (stream offset, matched text);
2. runs the trigger's runbook, if any, **through the console the server holds**: its Console
   reads a tap of the held stream (:class:`HeldTransport`, an internal client) and its input
   goes to the held console (logged as a ``write`` by ``trigger NAME``), so no second SOL
   session is ever opened. Its own recording is ``ROOT/<host>/<stamp>_trigger-NAME/``, and the
   continuous log has the same bytes;
3. marks the segment in the continuous log, from the match to the end of the runbook's
   output (without a runbook: until the console has been quiet 1 s, at most 10 s), as
   ``keys/trigger-NAME-N.txt``;
4. runs ``notify`` (an argv, never a shell) with the event as JSON on stdin, at most 60 s,
   and records its exit status as a ``notify`` event.

A trigger that fired fires again only after its ``cooldown``; matches in between are counted
(``suppressed`` in the next event). Up to 16 firings wait per host; more are dropped with a
``trigger-dropped`` event.
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from solcap.capture.recording import Recording, iso, utc_now
from solcap.console.core import Console
from solcap.errors import ConsoleClosed
from solcap.inventory import Host
from solcap.orchestration.runbook import HostPlan
from solcap.serve.holder import Client, ConsoleHolder, Trigger
from solcap.transports.base import Transport

_log = logging.getLogger("solcap.serve")
QUEUE_MAX = 16
NOTIFY_TIMEOUT = 60.0
QUIET = 1.0
QUIET_MAX = 10.0


class HeldTransport(Transport):
    """The held console as a transport for a runbook: reads are a tap of its stream (an
    internal client of the holder), writes go to the held console."""

    interruptible = True

    def __init__(self, holder: ConsoleHolder, who: str) -> None:
        self.name = f"serve:{holder.name}"
        self._holder = holder
        self._who = who
        self._client: Client
        self._client, _offset, _screen, _notice = holder.attach(who, None, "spy")
        self._buf = bytearray()

    def read(self, max_bytes: int, timeout: float) -> bytes:
        if not self._buf:
            item = self._client.get(timeout)
            if item is None:
                if self._client.closed:
                    raise ConsoleClosed(self._holder.name, "the server stopped holding it")
                return b""
            kind, payload = item
            if kind != b"D":
                if b'"stopped"' in payload:
                    raise ConsoleClosed(self._holder.name, "the server stopped holding it")
                return b""
            self._buf += payload
        out = bytes(self._buf[:max_bytes])
        del self._buf[:max_bytes]
        return out

    def write(self, data: bytes) -> None:
        self._holder.inject(data, self._who)

    def interrupt(self) -> None:
        self._client.put(b"J", b"{}")

    def close(self) -> None:
        self._holder.detach(self._client)


@dataclass(frozen=True)
class Firing:
    trigger: Trigger
    match: bytes
    offset: int
    time: str
    suppressed: int


#: Runs a planned runbook with a console factory; :func:`solcap.orchestration.runner.run_host` by
#: default.
RunHost = Callable[..., Any]


class TriggerRunner:
    """The trigger work of one holder (see the module docstring)."""

    def __init__(
        self,
        host: Host,
        plans: Mapping[str, HostPlan],
        root: Path,
        *,
        run_host: RunHost | None = None,
    ) -> None:
        self.host = host
        self._plans = dict(plans)
        self._specs = {spec.name: spec for spec in host.triggers}
        self._root = root
        self._run_host = run_host
        self._queue: queue.Queue[Firing | None] = queue.Queue(QUEUE_MAX)
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}
        self._count: dict[str, int] = {}
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._holder: ConsoleHolder | None = None
        self._stopped = False

    def attach(self, holder: ConsoleHolder) -> None:
        self._holder = holder
        holder.on_stop = self.stop

    # -- the reader thread: decide, queue, never wait

    def fire(self, holder: ConsoleHolder, trigger: Trigger, match: bytes, offset: int) -> None:
        spec = trigger.spec
        now = time.monotonic()
        last = self._last.get(trigger.name)
        if spec is not None and last is not None and now - last < spec.cooldown:
            self._suppressed[trigger.name] = self._suppressed.get(trigger.name, 0) + 1
            return
        self._last[trigger.name] = now
        firing = Firing(
            trigger, match, offset, iso(utc_now()), self._suppressed.pop(trigger.name, 0)
        )
        holder.log.event(
            "trigger",
            trigger=trigger.name,
            match=match.decode(errors="replace"),
            stream_offset=offset,
            suppressed=firing.suppressed,
        )
        with self._lock:
            if self._stopped:
                return
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._work, name=f"solcap-serve-trigger-{self.host.name}", daemon=True
                )
                self._thread.start()
        try:
            self._queue.put_nowait(firing)
        except queue.Full:
            holder.log.event("trigger-dropped", trigger=trigger.name, stream_offset=offset)

    # -- the worker

    def _work(self) -> None:
        while True:
            firing = self._queue.get()
            if firing is None or self._holder is None:
                return
            try:
                self._handle(self._holder, firing)
            except Exception as exc:  # a bug must not end the worker or the server
                _log.error("%s: trigger %s: %s", self.host.name, firing.trigger.name, exc)

    def _handle(self, holder: ConsoleHolder, firing: Firing) -> None:
        name = firing.trigger.name
        spec = firing.trigger.spec
        n = self._count[name] = self._count.get(name, 0) + 1
        event: dict[str, Any] = {
            "event": "trigger",
            "host": self.host.name,
            "trigger": name,
            "pattern": spec.text if spec else firing.trigger.pattern.pattern.decode(),
            "match": firing.match.decode(errors="replace"),
            "stream_offset": firing.offset,
            "time": firing.time,
            "suppressed": firing.suppressed,
            "log": str(holder.log.current_path) if holder.log.current_path else None,
        }
        _log.info("%s: trigger %s fired", self.host.name, name)
        plan = self._plans.get(name)
        if plan is not None:
            event["runbook"] = self._runbook(holder, name, plan)
        else:
            self._wait_quiet(holder)
        end = holder.log.stream_offset
        event["segment"] = holder.log.mark(
            f"trigger-{name}-{n}", firing.offset, end, reason=f"trigger {name}"
        )
        event["segment_end"] = end
        if spec is not None and spec.notify:
            event["notify"] = self._notify(holder, name, spec.notify, event)

    def _runbook(self, holder: ConsoleHolder, name: str, plan: HostPlan) -> dict[str, Any]:
        from solcap.orchestration.runner import bmc_power, open_host_ssh, run_host

        who = f"trigger {name}"

        def factory(
            host: Host, recording: Callable[[], Recording], *, death_strings: Sequence[Any]
        ) -> Console:
            transport = HeldTransport(holder, who)
            rec = recording()
            console = Console(transport, host=host.name, sink=rec.feed, death_strings=death_strings)
            console.start()
            return console

        spec = self._specs.get(name)
        holder.log.event("trigger-runbook", trigger=name, runbook=spec.runbook if spec else None)
        result = (self._run_host or run_host)(
            plan,
            console_factory=factory,
            power=bmc_power,
            ssh_factory=open_host_ssh,
            recordings_root=self._root,
            runbook_name=f"trigger-{name}",
        )
        summary = {
            "outcome": result.outcome,
            "error": result.error,
            "recording": str(result.recording) if result.recording else None,
        }
        holder.log.event("trigger-runbook-done", trigger=name, **summary)
        return summary

    def _wait_quiet(self, holder: ConsoleHolder) -> None:
        """Until no byte came for QUIET seconds (at most QUIET_MAX): the rest of the panic."""
        begin = time.monotonic()
        seen, since = holder.log.stream_offset, time.monotonic()
        while not self._stopped and time.monotonic() - begin < QUIET_MAX:
            time.sleep(0.1)
            now = holder.log.stream_offset
            if now != seen:
                seen, since = now, time.monotonic()
            elif time.monotonic() - since >= QUIET:
                return

    def _notify(
        self, holder: ConsoleHolder, name: str, argv: Sequence[str], event: dict[str, Any]
    ) -> dict[str, Any]:
        payload = json.dumps(event, default=str).encode() + b"\n"
        try:
            done = subprocess.run(
                list(argv),
                input=payload,
                capture_output=True,
                timeout=NOTIFY_TIMEOUT,
                check=False,
                shell=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            outcome: dict[str, Any] = {"returncode": None, "error": str(exc)}
        else:
            lines = done.stderr.decode(errors="replace").strip().splitlines()
            outcome = {"returncode": done.returncode, "error": lines[-1] if lines else None}
        holder.log.event("notify", trigger=name, program=argv[0], **outcome)
        if outcome["returncode"] != 0:
            _log.warning("%s: notify for %s: %s", self.host.name, name, outcome)
        return outcome

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
            thread = self._thread
        if thread is not None:
            with contextlib.suppress(queue.Full):
                self._queue.put_nowait(None)
            thread.join(30)


def plans_for(host: Host, *, profile_dirs: Sequence[str] | None = None) -> dict[str, HostPlan]:
    """Load and plan every trigger runbook of ``host`` now (serve start, SIGHUP), so a missing
    runbook or variable is one file:line:field error before anything is opened."""
    from solcap.errors import UsageError
    from solcap.orchestration.runbook import load_runbook, plan_host

    plans: dict[str, HostPlan] = {}
    for spec in host.triggers:
        if spec.runbook is None:
            continue
        where = spec.runbook_where or spec.where
        try:
            runbook = load_runbook(spec.runbook, profile_dirs=profile_dirs)
        except UsageError as exc:
            raise where.error(f"host {host.name}: {exc.one_line()}") from exc
        plans[spec.name] = plan_host(runbook, host, profile_dirs=profile_dirs)
    return plans
