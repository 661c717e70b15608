"""One console held by the server: open, record, reconnect, fan out, one writer.

The holder's thread opens the host's console through the library (the inventory's console,
serial device or BMC SOL, exactly as every other command does), runs a
:class:`~solcap.console.core.Console` whose sink is :meth:`ConsoleHolder._on_data`, and waits for it
to end. Every chunk, on the console's reader thread and under one lock: the continuous log
first (the truth), then the screen tail, then each client's queue — so every client sees the
same bytes in the same order as ``console.raw``.

When the console cannot be opened or goes away, the holder waits with jittered exponential
backoff (``uniform(c/2, c)`` with ``c = min(cap, base·2^n)``, "equal jitter" in AWS'
"exponential backoff and jitter": never less than half the ceiling, so a dead BMC is not
hammered, and spread over the other half, so a thousand BMCs coming back at once do not
reconnect in lock-step), and logs **one line per state change**, not per attempt (xCAT's
3-second retries flooded logs); ``attempts`` in the status counts the tries since the last
change. A busy SOL payload (another client holds it) is state ``busy`` and is never stolen
unless the host says ``steal: true`` (inventory ``vars: {steal: true}``); the holder keeps
retrying and reports since when and the BMC's answer.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import random
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from solcap.config.triggers import TriggerSpec
from solcap.console.core import EOF, TIMEOUT, Console
from solcap.errors import ConsoleBusy, ConsoleClosed, SolcapError, UsageError
from solcap.inventory import Host
from solcap.serve.rotation import RotatingLog
from solcap.serve.screen import ScreenModel
from solcap.transports.base import Transport

_log = logging.getLogger("solcap.serve")

State = Literal["connecting", "up", "down", "busy", "stopped"]
Opener = Callable[[Host], Transport]
#: Bytes a client may fall behind before it is dropped (obmc-console marks such clients
#: blocked); the console and the log never wait for a client.
CLIENT_QUEUE_MAX: Final = 8 * 1024 * 1024
_PANIC = re.compile(rb"Panic on CPU \d+")
_CMDLINE = re.compile(rb"\(XEN\) Command line: ([^\r\n]*)")
_FOCUS = re.compile(rb"\*\*\* Serial input to (DOM0|Xen)")


@dataclass(frozen=True)
class Backoff:
    """Reconnect delays: equal jitter (``[c/2, c]``) under an exponential, capped ceiling."""

    base: float = 1.0
    cap: float = 60.0

    def delay(self, attempt: int, rng: random.Random) -> float:
        ceiling = min(self.cap, self.base * (2 ** min(attempt, 30)))
        return rng.uniform(ceiling / 2, ceiling)


@dataclass(frozen=True)
class Trigger:
    """An inventory ``on:`` entry, compiled: a match is an event and is handed to the
    holder's ``on_trigger`` (:mod:`solcap.serve.triggers` runs the runbook and the notify)."""

    name: str
    pattern: re.Pattern[bytes]
    spec: TriggerSpec | None = None

    @classmethod
    def of(cls, spec: TriggerSpec) -> Trigger:
        return cls(spec.name, spec.compiled(), spec)


class Client:
    """One attached client: a bounded queue of frames the control thread sends out."""

    def __init__(self, who: str, uid: int | None, role: Literal["writer", "spy"]) -> None:
        self.who = who
        self.uid = uid
        self.role: Literal["writer", "spy"] = role
        self._cond = threading.Condition()
        self._items: collections.deque[tuple[bytes, bytes]] = collections.deque()
        self._queued = 0
        self.dropped = False
        self.closed = False

    def put(self, kind: bytes, payload: bytes) -> None:
        with self._cond:
            if self.closed:
                return
            if self._queued + len(payload) > CLIENT_QUEUE_MAX:
                self.dropped = True
                self.closed = True
            else:
                self._items.append((kind, payload))
                self._queued += len(payload)
            self._cond.notify_all()

    def get(self, timeout: float) -> tuple[bytes, bytes] | None:
        """The next frame; None on timeout or once closed and empty."""
        with self._cond:
            if not self._items and not self.closed:
                self._cond.wait(timeout)
            if not self._items:
                return None
            kind, payload = self._items.popleft()
            self._queued -= len(payload)
            return kind, payload

    def close(self) -> None:
        with self._cond:
            self.closed = True
            self._cond.notify_all()


@dataclass
class HostStatus:
    """What ``solcap status`` shows for one console."""

    host: str
    state: State
    since: float
    bytes: int
    last_output: float | None
    clients: list[dict[str, Any]]
    writer: str | None
    reconnects: int
    #: Opening attempts since the state last changed (a ``busy``/``down`` console retrying).
    attempts: int
    detail: str | None
    recording: str | None
    panics: int
    xen_cmdline: str | None
    input_focus: str | None
    extra: dict[str, Any] = field(default_factory=dict)


class ConsoleHolder:
    """Holds ``host``'s console for as long as the server runs."""

    def __init__(
        self,
        host: Host,
        log: RotatingLog,
        opener: Opener,
        *,
        backoff: Backoff | None = None,
        triggers: Sequence[Trigger] = (),
        on_trigger: Callable[[ConsoleHolder, Trigger, bytes, int], None] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.host = host
        self.name = host.name
        self.log = log
        self._opener = opener
        self._backoff = backoff or Backoff()
        self._rng = rng or random.Random()
        self._triggers = list(triggers)
        self._on_trigger = on_trigger
        #: Called by :meth:`stop` after the clients are closed and before the log is.
        self.on_stop: Callable[[], None] | None = None
        self.screen = ScreenModel()
        self._lock = threading.RLock()  # data path: log, screen, clients
        self._clients: list[Client] = []
        self._writer: Client | None = None
        self._state: State = "connecting"
        self._since = time.time()
        self._detail: str | None = None
        self._received = 0
        self._last_output: float | None = None
        self._reconnects = 0
        self._attempts = 0
        self._panics = 0
        self._xen_cmdline: str | None = None
        self._focus: str | None = None
        self._window = b""  # tail kept for patterns across chunk boundaries
        self._console: Console | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"solcap-serve-{self.name}")

    # -- lifecycle

    def start(self) -> ConsoleHolder:
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Close the console (SOL deactivated, session logged out), then the log."""
        self._stop.set()
        with self._lock:
            console = self._console
        if console is not None:
            console.close()
        self._thread.join(timeout)
        with self._lock:
            for client in self._clients:
                client.put(b"J", b'{"event":"state","state":"stopped"}')
                client.close()
            self._clients.clear()
            self._writer = None
        if self.on_stop is not None:  # e.g. a trigger's runbook, whose console just closed
            self.on_stop()
        self._set_state("stopped", None)
        self.log.close()

    # -- the holding loop

    def _set_state(self, state: State, detail: str | None) -> None:
        with self._lock:
            if state == self._state and detail == self._detail:
                return
            changed = state != self._state
            self._state, self._detail = state, detail
            if changed:
                self._since = time.time()
                self._attempts = 0
        if changed:  # one line per state change, never one per attempt
            _log.info("%s: %s%s", self.name, state, f" ({detail})" if detail else "")
            self.log.event("state", state=state, detail=detail)
            notice = _notice("state", state=state, detail=detail)
            with self._lock:
                for client in self._clients:
                    client.put(b"J", notice)

    def _run(self) -> None:
        attempt = 0
        while not self._stop.is_set():
            # A retry after "down"/"busy" stays in that state: one line per change, and
            # monitoring sees a console that is down, not one flapping to "connecting".
            if self._state not in ("down", "busy"):
                self._set_state("connecting", None)
            with self._lock:
                self._attempts += 1
            try:
                transport = self._opener(self.host)
            except ConsoleBusy as exc:
                self._set_state("busy", exc.one_line())
            except SolcapError as exc:
                self._set_state("down", exc.one_line())
            except Exception as exc:  # a bug or a foreign error: still only a state
                self._set_state("down", f"{type(exc).__name__}: {exc}")
            else:
                attempt = 0
                self._hold(transport)
                if self._stop.is_set():
                    break
                self._reconnects += 1
            delay = self._backoff.delay(attempt, self._rng)
            attempt += 1
            self._stop.wait(delay)

    def _hold(self, transport: Transport) -> None:
        console = Console(transport, host=self.name, sink=self._on_data)
        with self._lock:
            if self._stop.is_set():
                transport.close()
                return
            self._console = console
        self.log.event("connect", target=transport.name)
        console.start()
        self._set_state("up", None)
        reason = "console closed"
        try:
            while not self._stop.is_set():
                result = console.expect([EOF, TIMEOUT], timeout=5.0)
                console.drain()  # nobody matches here; the log has every byte
                if result.index == 0:
                    break
        except SolcapError as exc:
            reason = exc.one_line()
        finally:
            with self._lock:
                self._console = None
            console.close()
        if not self._stop.is_set():
            self.log.event("disconnect", reason=reason)
            self._set_state("down", reason)

    def _on_data(self, chunk: bytes) -> None:
        """The console's sink (its reader thread): log, screen, clients — in that order."""
        with self._lock:
            offset = self._received
            self.log.feed(chunk)
            self.screen.feed(chunk)
            self._received += len(chunk)
            self._last_output = time.time()
            for client in self._clients:
                client.put(b"D", chunk)
            self._scan(chunk, offset)

    def _scan(self, chunk: bytes, offset: int) -> None:
        window = self._window + chunk
        base = offset - len(self._window)
        start = len(self._window)
        for m in _PANIC.finditer(window):
            if m.end() > start:
                self._panics += 1
                self.log.event("panic", text=m.group(0).decode(errors="replace"))
        for m in _CMDLINE.finditer(window):
            if m.end() > start and m.end() < len(window):
                self._xen_cmdline = m.group(1).decode(errors="replace")
        for m in _FOCUS.finditer(window):
            if m.end() > start:
                self._focus = "xen" if m.group(1) == b"Xen" else "dom0"
        for trigger in self._triggers:
            for m in trigger.pattern.finditer(window):
                if m.end() > start:
                    if self._on_trigger is not None:
                        self._on_trigger(self, trigger, m.group(0), base + m.start())
                    else:
                        self.log.event(
                            "trigger",
                            trigger=trigger.name,
                            match=m.group(0).decode(errors="replace"),
                            stream_offset=base + m.start(),
                        )
        self._window = window[-4096:]

    # -- clients

    def attach(self, who: str, uid: int | None, mode: str) -> tuple[Client, int, bytes, str | None]:
        """Register a client; returns it, the stream offset of its first byte, the screen
        and a notice for it. Atomic with the data path, so nothing falls between screen and
        stream."""
        if mode not in ("auto", "write", "spy", "force"):
            raise UsageError(f"attach mode must be auto, write, spy or force, not {mode!r}")
        with self._lock:
            notice = None
            role: Literal["writer", "spy"] = "spy"
            current = self._writer
            if mode == "spy":
                pass
            elif current is None:
                role = "writer"
            elif mode == "force":
                role = "writer"
                current.role = "spy"
                current.put(b"J", _notice("forced", by=who))
                self.log.event("force", host=self.name, by=who, previous=current.who)
            elif mode == "write":
                raise ConsoleBusy(
                    self.name, f"the console is held for writing by {current.who} (use --force)"
                )
            else:
                notice = f"{current.who} has the write side; you are a spy (read-only)"
            client = Client(who, uid, role)
            if role == "writer":
                self._writer = client
            self._clients.append(client)
            snapshot = self.screen.snapshot()
            offset = self._received
        self.log.event("attach", who=who, uid=uid, role=role, mode=mode)
        return client, offset, snapshot, notice

    def detach(self, client: Client) -> None:
        with self._lock:
            if client in self._clients:
                self._clients.remove(client)
            if self._writer is client:
                self._writer = None
        client.close()
        self.log.event("detach", who=client.who, role=client.role)

    def write(self, client: Client, data: bytes) -> bool:
        """Send a writer's input; False (and nothing sent) for a spy or a console not up."""
        with self._lock:
            if self._writer is not client:
                return False
            console = self._console
        if console is None:
            return False
        self.log.event("write", who=client.who, bytes=len(data))
        try:
            console.send(data)
        except SolcapError:
            return False
        return True

    def inject(self, data: bytes, who: str) -> None:
        """Input from inside the server (a trigger's runbook): sent whoever holds the write
        side, and logged as that writer's would be. ConsoleClosed when the console is not up."""
        with self._lock:
            console = self._console
        if console is None:
            raise ConsoleClosed(self.name, "the held console is not up")
        self.log.event("write", who=who, bytes=len(data))
        console.send(data)

    def send_break(self, client: Client) -> bool:
        with self._lock:
            if self._writer is not client:
                return False
            console = self._console
        if console is None:
            return False
        self.log.event("break", who=client.who)
        with contextlib.suppress(SolcapError, NotImplementedError):
            console.send_break()
            return True
        return False

    def status(self) -> HostStatus:
        with self._lock:
            return HostStatus(
                host=self.name,
                state=self._state,
                since=self._since,
                bytes=self._received,
                last_output=self._last_output,
                clients=[{"who": c.who, "uid": c.uid, "role": c.role} for c in self._clients],
                writer=self._writer.who if self._writer is not None else None,
                reconnects=self._reconnects,
                attempts=self._attempts,
                detail=self._detail,
                recording=str(self.log.current_path) if self.log.current_path else None,
                panics=self._panics,
                xen_cmdline=self._xen_cmdline,
                input_focus=self._focus,
            )


def _notice(event: str, **fields: Any) -> bytes:
    import json

    return json.dumps({"event": event, **fields}).encode()
