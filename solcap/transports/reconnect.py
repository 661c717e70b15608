"""SOL session manager: keep a console alive across dropped sessions, and say what was missed.

A BMC session dies for reasons nobody on our side controls: the BMC reboots, the network
blackholes, another operator runs ``ipmitool sol deactivate`` or steals the payload. The
transport underneath (:class:`~solcap.transports.ipmi.IpmiSolTransport`) notices within a
bounded time (its :class:`~solcap.transports.ipmi.Liveness`) and raises
:class:`~solcap.errors.ConsoleClosed` with the cause. :class:`ReconnectingTransport` sits between
that transport and a :class:`~solcap.console.core.Console`, catches the end, logs in and activates
SOL again with jittered exponential backoff (bounded attempts and total time, see
:class:`ReconnectPolicy`), and carries on — the Console's reader only sees a quiet spell.

What it never does is pretend nothing happened. Every transition goes to an event sink
(``sink(kind, **fields)``, the signature of :meth:`solcap.capture.recording.Recording.event`),
emitted *from the reading thread at the exact stream offset*: every byte read before the event was
returned before it, every byte after it was returned after it. So in a recording the ``gap``
event's ``offset`` is the ``console.raw`` offset where the hole is, and the human log shows a
``[-- … gap … --]`` line at that spot. ``console.raw`` itself stays exactly what was received.

Events (all carry ``offset``):

``disconnected``   ``cause`` (lost | deactivated | closed), ``reason`` (the transport's words),
                   ``unsent_input`` (bytes written but not acknowledged; they were not resent)
``reconnect_failed``  ``attempt``, ``error``, ``retry_in`` seconds
``reconnected``    ``attempt``
``gap``            ``start``/``end`` (UTC), ``duration_s``, ``cause``, ``may_be_missing``
``reconnect_gave_up``  ``attempts``, ``elapsed_s``, ``error``; then reads raise ConsoleClosed
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import random
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, Literal, Protocol

from solcap.errors import ConnectError, ConsoleClosed, SolcapError, UsageError
from solcap.transports.base import Receiver, Transport

__all__ = ["MAY_BE_MISSING", "EventSink", "ReconnectPolicy", "ReconnectingTransport"]

#: What a gap event says may be missing (also documented in docs/resilience.md).
MAY_BE_MISSING = (
    "serial output the host wrote while no SOL session was active: BMCs discard output when no "
    "SOL session is active (ipmi_sim does) or keep only a small buffer, so bytes from this "
    "window may be missing here; every byte before this offset was received in full"
)


class EventSink(Protocol):
    """Receives ``(kind, **fields)``; :meth:`solcap.capture.recording.Recording.event` fits."""

    def __call__(self, kind: str, /, **fields: Any) -> None: ...


def _iso(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.UTC).isoformat(timespec="milliseconds")


@dataclasses.dataclass(frozen=True)
class ReconnectPolicy:
    """When and how often to try again after a session ends.

    Delay before attempt *n* is ``min(max_delay, initial_delay * multiplier**(n-1))`` scaled by a
    random factor in ``[1 - jitter, 1]`` (so a fleet whose BMC switch rebooted does not
    reconnect in lockstep). Gives up after ``max_attempts`` attempts or once ``max_total``
    seconds have passed since the loss, whichever comes first (``None``: no such limit).
    ``on_deactivated="stop"`` ends the console instead when someone else deactivated SOL.
    """

    initial_delay: float = 0.5
    max_delay: float = 30.0
    multiplier: float = 2.0
    jitter: float = 0.5
    max_attempts: int | None = 20
    max_total: float | None = 600.0
    on_deactivated: Literal["reconnect", "stop"] = "reconnect"

    def __post_init__(self) -> None:
        if self.initial_delay < 0 or self.max_delay < self.initial_delay:
            raise UsageError("reconnect delays: need 0 <= initial_delay <= max_delay")
        if self.multiplier < 1 or not 0 <= self.jitter <= 1:
            raise UsageError("reconnect backoff: need multiplier >= 1 and 0 <= jitter <= 1")
        if self.max_attempts is not None and self.max_attempts < 1:
            raise UsageError("reconnect: max_attempts must be at least 1")
        if self.on_deactivated not in ("reconnect", "stop"):
            raise UsageError("reconnect: on_deactivated must be 'reconnect' or 'stop'")

    def delays(self, rng: random.Random) -> Iterator[float]:
        """The delay before each attempt, jittered; ends after ``max_attempts``."""
        base = self.initial_delay
        attempt = 0
        while self.max_attempts is None or attempt < self.max_attempts:
            attempt += 1
            yield base * rng.uniform(1.0 - self.jitter, 1.0)
            base = min(self.max_delay, base * self.multiplier)


def _cause(exc: BaseException) -> str:
    """``deactivated`` (someone ended our payload), ``lost`` (no answer) or ``closed``."""
    name = type(exc).__name__
    if name == "SolDeactivated":
        return "deactivated"
    if name == "SolSessionLost":
        return "lost"
    return "closed"


class ReconnectingTransport(Transport):
    """A transport that reopens itself with ``connect()`` when the inner one ends.

    ``connect`` opens a fresh inner transport (log in, activate) or raises; it is called once
    here (its errors propagate unchanged, so a wrong password fails at once) and again after
    each loss. Reconnection runs in the thread that calls :meth:`read` (a Console's reader),
    which is what places events exactly in the byte stream.
    """

    def __init__(
        self,
        connect: Callable[[], Transport],
        *,
        name: str | None = None,
        policy: ReconnectPolicy | None = None,
        event_sink: EventSink | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self._connect = connect
        self.policy = policy or ReconnectPolicy()
        self._sink = event_sink
        self._rng = rng or random.Random()
        self._cond = threading.Condition()
        self._closed_event = threading.Event()
        self._closed = False
        self._failed: ConsoleClosed | None = None
        self._offset = 0
        self._receiver: Receiver | None = None
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.reconnects = 0
        self._inner: Transport | None = connect()
        self.name = name or self._inner.name

    # ---- events --------------------------------------------------------------------------------
    def set_event_sink(self, sink: EventSink | None) -> None:
        """Send future events to ``sink`` (e.g. ``recording.event``); ``None`` stops that."""
        self._sink = sink

    def _emit(self, kind: str, **fields: Any) -> None:
        fields = {"offset": self._offset, **fields}
        self.events.append((kind, fields))
        sink = self._sink
        if sink is not None:
            sink(kind, **fields)

    @property
    def offset(self) -> int:
        """Bytes returned by :meth:`read` so far (the ``console.raw`` offset under a Console)."""
        return self._offset

    @property
    def inner(self) -> Transport | None:
        """The transport in use now (``None`` while reconnecting)."""
        return self._inner

    # ---- Transport -----------------------------------------------------------------------------
    def read(self, max_bytes: int, timeout: float) -> bytes:
        inner = self._current()
        try:
            data = inner.read(max_bytes, timeout)
        except ConsoleClosed as exc:
            if self._closed:
                raise
            self._recover(inner, exc)
            return b""
        self._offset += len(data)
        return data

    def push_to(self, receiver: Receiver) -> bool:
        """Push when the inner transport can; each new session is pushed to as well, from
        just after its ``reconnected`` and ``gap`` events, so they keep their exact offsets."""
        inner = self._current()

        def counted(data: bytes) -> None:
            self._offset += len(data)  # only the pushing thread of the one live session
            receiver(data)

        if not inner.push_to(counted):
            return False
        self._receiver = counted
        return True

    @property
    def interruptible(self) -> bool:  # type: ignore[override]
        inner = self._inner
        return inner is not None and inner.interruptible

    def interrupt(self) -> None:
        inner = self._inner
        if inner is not None:
            inner.interrupt()

    def _current(self) -> Transport:
        with self._cond:
            if self._failed is not None:
                raise self._failed
            if self._closed or self._inner is None:
                raise ConsoleClosed(self.name, "console was closed locally")
            return self._inner

    def write(self, data: bytes) -> None:
        for _ in range(2):
            inner = self._wait_inner()
            try:
                inner.write(data)
                return
            except ConsoleClosed:
                if self._closed:
                    raise
                # The session ended under us; nothing of ``data`` was queued. The reader
                # reconnects; wait for it and send on the new session.
                self._wait_replaced(inner)
        self._wait_inner().write(data)

    def _wait_replaced(self, old: Transport) -> None:
        with self._cond:
            self._cond.wait_for(lambda: self._inner is not old, timeout=1.0)

    def send_break(self) -> None:
        self._wait_inner().send_break()

    def _wait_inner(self) -> Transport:
        limit = self.policy.max_total
        deadline = None if limit is None else time.monotonic() + limit + 15.0
        with self._cond:
            while self._inner is None:
                if self._failed is not None:
                    raise self._failed
                if self._closed:
                    raise ConsoleClosed(self.name, "console was closed locally")
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise ConsoleClosed(self.name, "still reconnecting; input not sent")
                self._cond.wait(0.5 if left is None else min(0.5, left))
            return self._inner

    # ---- the link, for callers waiting on an answer ---------------------------------------------
    def link_suspect(self) -> bool:
        """Whether the session in use may be dead and not yet counted lost.

        A loss is noticed only after the retries run out (the SOL liveness bound, ~12 s by
        default); a caller whose key went unanswered for less than that cannot tell a dead
        BMC from a host with nothing to say. A far side quiet for longer than its keepalive
        and one resend, or no session at all (reconnecting now), is suspect.
        """
        inner = self._inner
        if inner is None:
            return True
        heard = getattr(inner, "last_heard", None)
        liveness = getattr(inner, "liveness", None)
        if not isinstance(heard, int | float) or liveness is None:
            return False
        quiet = time.time() - float(heard)
        return quiet > float(liveness.keepalive) + float(liveness.retry_interval)

    def wait_link(self, reconnects: int, timeout: float) -> bool:
        """Wait until the session of ``reconnects`` is heard from again or replaced.

        True if a new session replaced it (input sent on the old one may never have arrived);
        False if it lived, the console closed, reconnection gave up, or ``timeout`` passed.
        """
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                if self.reconnects != reconnects and self._inner is not None:
                    return True
                if self._closed or self._failed is not None:
                    return False
                if self._inner is not None and not self.link_suspect():
                    return False
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                # Replacement notifies; a session heard again does not, so look twice a second.
                self._cond.wait(min(0.5, left))

    def pending_output(self) -> int:
        """Bytes written and not yet acknowledged by the far side (0 if unknown)."""
        inner = self._inner
        fn = getattr(inner, "pending_output", None)
        return int(fn()) if callable(fn) else 0

    def drain(self, timeout: float) -> bool:
        """Wait until what was written is acknowledged (see the inner transport)."""
        inner = self._inner
        fn = getattr(inner, "drain", None)
        return bool(fn(timeout)) if callable(fn) else True

    def close(self) -> None:
        """Deactivate and log out (through the inner transport); stops any reconnection."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            inner = self._inner
            self._cond.notify_all()
        self._closed_event.set()
        if inner is not None:
            inner.close()

    # ---- recovery (reading thread) -------------------------------------------------------------
    def _recover(self, old: Transport, exc: ConsoleClosed) -> None:
        """Replace ``old`` by a new session, emitting events; raise ConsoleClosed on give-up."""
        detected = time.time()
        started = time.monotonic()
        heard = getattr(old, "last_heard", None)
        gap_start = min(float(heard), detected) if isinstance(heard, int | float) else detected
        cause = _cause(exc)
        unsent = old.pending_output() if hasattr(old, "pending_output") else 0
        with self._cond:
            self._inner = None
            self._cond.notify_all()
        self._emit("disconnected", cause=cause, reason=exc.one_line(), unsent_input=int(unsent))
        with contextlib.suppress(SolcapError):
            old.close()  # deactivate if still ours, and log out: BMC session slots are few
        if cause == "deactivated" and self.policy.on_deactivated == "stop":
            self._give_up(exc, 0, started, why="SOL was deactivated and the policy says stop")
        attempts = 0
        last_error: Exception = exc
        for delay in self.policy.delays(self._rng):
            limit = self.policy.max_total
            if limit is not None and time.monotonic() - started + delay > limit:
                break
            if self._closed_event.wait(delay):
                raise ConsoleClosed(self.name, "console was closed locally")
            attempts += 1
            try:
                new = self._connect()
            except UsageError:
                raise
            except (ConnectError, ConsoleClosed) as error:
                last_error = error
                self._emit(
                    "reconnect_failed",
                    attempt=attempts,
                    error=error.one_line(),
                )
                continue
            with self._cond:
                if self._closed:
                    new.close()
                    raise ConsoleClosed(self.name, "console was closed locally")
                self._inner = new
                self.reconnects += 1
                self._cond.notify_all()
            ended = time.time()
            self._emit("reconnected", attempt=attempts)
            self._emit(
                "gap",
                start=_iso(gap_start),
                end=_iso(ended),
                duration_s=round(ended - gap_start, 3),
                cause=cause,
                may_be_missing=MAY_BE_MISSING,
            )
            if self._receiver is not None and not new.push_to(self._receiver):
                # The same connect() gave a transport that cannot push: its reads carry data.
                self._receiver = None
            return
        self._give_up(last_error, attempts, started, why="")

    def _give_up(self, error: Exception, attempts: int, started: float, *, why: str) -> None:
        elapsed = round(time.monotonic() - started, 3)
        text = error.one_line() if isinstance(error, SolcapError) else str(error)
        self._emit("reconnect_gave_up", attempts=attempts, elapsed_s=elapsed, error=text)
        reason = why or f"gave up reconnecting after {attempts} attempts in {elapsed} s"
        failed = ConsoleClosed(self.name, f"{reason}; last error: {text}")
        with self._cond:
            self._failed = failed
            self._cond.notify_all()
        raise failed
