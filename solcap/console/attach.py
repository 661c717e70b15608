"""Interactive attach: the local terminal in raw mode, relayed both ways, every byte recorded.

``attach(transport, recording=…)`` runs until the user types ``~.``, the console closes, stdin
ends, or SIGTERM/SIGHUP arrives; the terminal's modes are restored on every one of those paths
(and on any exception) by a ``try/finally`` around raw mode.

Escapes follow ssh: they are recognised only at the very start or right after Enter (CR or
LF), so a ``~`` in the middle of a line is just a ``~``:

    ~.   quit            ~B   send a serial BREAK      ~?   help (shown locally)
    ~~   send one ~      ~<other>  sends both characters

The escape character is changeable (``-e``) or can be switched off (``-e none``). Ctrl-A is
never intercepted and can never be the escape character: Xen switches its serial input after
three Ctrl-A in a row, and a console that ate one would make that impossible.

Threads: the console's reader thread (see :class:`solcap.console.core.Console`) feeds the recording
first (the truth) and then queues the bytes for the screen; this thread writes the screen,
reads the keyboard and sends. A self-pipe wakes the ``select`` the moment bytes arrive.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import os
import select
import signal
import termios
import threading
import tty
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any

from solcap.capture.recording import Recording
from solcap.console.core import Console
from solcap.errors import ConsoleClosed, ExpectTimeout, TargetError, UsageError
from solcap.transports.base import Transport

__all__ = ["AttachResult", "EscapeFilter", "attach", "parse_escape", "raw_terminal", "show_char"]

DEFAULT_ESCAPE = "~"
CTRL_A = 0x01
_NEWLINES = (0x0D, 0x0A)


def parse_escape(text: str) -> int | None:
    """``-e`` argument → escape byte: one character, ``^X`` notation, or ``none`` (no escapes).

    Ctrl-A is refused: Xen needs three of them in a row, untouched.
    """
    if text.lower() == "none":
        return None
    if len(text) == 2 and text[0] == "^" and "@" <= text[1].upper() <= "_":
        value = ord(text[1].upper()) & 0x1F
    elif len(text) == 1 and ord(text) < 0x80:
        value = ord(text)
    else:
        raise UsageError(f"escape character {text!r}: give one ASCII character, ^X, or none")
    if value == CTRL_A:
        raise UsageError("Ctrl-A cannot be the escape character: Xen needs it three times in a row")
    if value in _NEWLINES:
        raise UsageError("the escape character cannot be Enter")
    return value


def show_char(escape: int) -> str:
    return f"^{chr(escape | 0x40)}" if escape < 0x20 or escape == 0x7F else chr(escape)


def help_text(escape: int) -> str:
    """The ``~?`` message, shown locally (raw mode needs CR LF)."""
    e = show_char(escape)
    lines = [
        "Supported escape sequences (at the start of a line):",
        f" {e}.  - quit",
        f" {e}B  - send a BREAK",
        f" {e}?  - this message",
        f" {e}{e}  - send the escape character",
        "Ctrl-A is never intercepted: press it three times to switch Xen's console.",
    ]
    return "\r\n" + "\r\n".join(lines) + "\r\n"


#: One thing the filter asks for: ("send", bytes) or ("quit"|"break"|"help", b"").
Action = tuple[str, bytes]


class EscapeFilter:
    """Turns keyboard bytes into actions; pure, so every rule is unit-testable.

    State is kept across calls, so an escape split over two reads still works.
    """

    def __init__(self, escape: int | None = ord(DEFAULT_ESCAPE)) -> None:
        self.escape = escape
        self._line_start = True  # at the very start, like ssh
        self._pending = False

    def feed(self, data: bytes) -> list[Action]:
        actions: list[Action] = []
        out = bytearray()

        def flush() -> None:
            if out:
                actions.append(("send", bytes(out)))
                out.clear()

        for byte in data:
            if self._pending:
                self._pending = False
                if byte == ord("."):
                    flush()
                    actions.append(("quit", b""))
                    return actions  # nothing after ~. is sent
                if byte in (ord("B"), ord("?")):
                    flush()
                    actions.append(("break" if byte == ord("B") else "help", b""))
                    self._line_start = True  # so another escape may follow at once
                    continue
                assert self.escape is not None
                if byte == self.escape:
                    out.append(byte)  # ~~ → one ~
                    self._line_start = False
                    continue
                out += bytes([self.escape, byte])  # not an escape after all: send both
                self._line_start = byte in _NEWLINES
                continue
            if self.escape is not None and self._line_start and byte == self.escape:
                self._pending = True
                continue
            out.append(byte)
            self._line_start = byte in _NEWLINES
        flush()
        return actions


@contextlib.contextmanager
def raw_terminal(fd: int) -> Iterator[bool]:
    """Put ``fd`` in raw mode if it is a terminal; restore its exact modes however we leave.

    Yields whether raw mode was set (False for a pipe or file).
    """
    if not os.isatty(fd):
        yield False
        return
    saved = termios.tcgetattr(fd)
    try:
        tty.setraw(fd, termios.TCSANOW)
        yield True
    finally:
        # A terminal that hung up (SIGHUP) has nothing left to restore.
        with contextlib.suppress(termios.error, OSError):
            termios.tcsetattr(fd, termios.TCSADRAIN, saved)


class _Signalled(Exception):
    """SIGTERM or SIGHUP arrived: unwind (restoring the terminal) and report it."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@contextlib.contextmanager
def _signals_unwind() -> Iterator[None]:
    """While attached, SIGTERM and SIGHUP raise in the main thread so ``finally`` runs."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        raise _Signalled(signum)

    previous: dict[int, Any] = {}
    for sig in (signal.SIGTERM, signal.SIGHUP):
        previous[sig] = signal.signal(sig, handler)
    try:
        yield
    finally:
        for number, old in previous.items():
            signal.signal(number, old)


@dataclasses.dataclass
class AttachResult:
    """How an attach ended: ``reason`` is quit, closed, eof, SIGTERM or SIGHUP."""

    reason: str
    detail: str = ""
    breaks: int = 0
    received: int = 0

    @property
    def signum(self) -> int | None:
        """The signal that ended the session, if one did."""
        return int(getattr(signal, self.reason)) if self.reason.startswith("SIG") else None


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            n = os.write(fd, view)
        except BlockingIOError:
            select.select([], [fd], [], 1.0)
            continue
        view = view[n:]


def _console_closed(console: Console) -> str | None:
    """The reason if the console's reader has stopped (EOF, link lost), else None."""
    try:
        console.wait_for_bytes(console.received + 1, 0)
    except ExpectTimeout:
        return None
    except ConsoleClosed as exc:
        return exc.one_line()
    return None


def attach(
    transport: Transport,
    *,
    recording: Recording | None = None,
    stdin_fd: int = 0,
    stdout_fd: int = 1,
    escape: int | None = ord(DEFAULT_ESCAPE),
    host: str | None = None,
    notice: Callable[[str], None] | None = None,
    screen_first: bytes = b"",
) -> AttachResult:
    """Relay the terminal on ``stdin_fd``/``stdout_fd`` to ``transport`` until told to stop.

    The transport is closed on return. ``notice`` shows local one-line messages (default:
    written to ``stdout_fd`` between CR LFs, as raw mode needs); they never enter the recording,
    which holds exactly the console's bytes plus events (attach, break, detach).
    ``screen_first`` (a console server's current screen) is drawn once raw mode is on, before
    the first console byte, and is not recorded.
    """
    screen: collections.deque[bytes] = collections.deque()
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)

    def sink(data: bytes) -> None:
        try:
            if recording is not None:
                recording.feed(data)  # the truth first
        finally:
            screen.append(data)
            with contextlib.suppress(BlockingIOError):
                os.write(wake_w, b"\0")

    def flush_screen() -> None:
        while screen:
            _write_all(stdout_fd, screen.popleft())

    def say(text: str) -> None:
        if notice is not None:
            notice(text)
        else:
            flush_screen()
            _write_all(stdout_fd, f"\r\n[solcap: {text}]\r\n".encode())

    result = AttachResult("closed")
    keys = EscapeFilter(escape)
    console = Console(transport, host=host, sink=sink)
    if recording is not None:
        shown = show_char(escape) if escape is not None else None
        recording.event("attach", target=transport.name, escape=shown)
    try:
        with _signals_unwind(), raw_terminal(stdin_fd):
            if screen_first:
                _write_all(stdout_fd, screen_first)  # raw already: drawn exactly as sent
            try:
                with console:
                    _relay(console, keys, stdin_fd, wake_r, flush_screen, say, recording, result)
            finally:
                # Still in raw mode: the last bytes must reach the screen untranslated.
                console.close()
                flush_screen()
    except _Signalled as exc:
        result.reason = str(exc)
    finally:
        console.close()
        os.close(wake_r)
        os.close(wake_w)
        result.received = console.received
        if recording is not None:
            recording.event("detach", reason=result.reason, detail=result.detail)
    return result


def _relay(
    console: Console,
    keys: EscapeFilter,
    stdin_fd: int,
    wake_r: int,
    flush_screen: Callable[[], None],
    say: Callable[[str], None],
    recording: Recording | None,
    result: AttachResult,
) -> None:
    """The loop: screen out, keyboard in, until quit/EOF/close; fills in ``result``."""
    while True:
        flush_screen()
        closed = _console_closed(console)
        if closed is not None:
            result.reason, result.detail = "closed", closed
            return
        ready, _, _ = select.select([stdin_fd, wake_r], [], [], 0.25)
        if wake_r in ready:
            with contextlib.suppress(BlockingIOError):
                os.read(wake_r, 4096)
        console.drain()  # the screen and the recording have the bytes; nobody expects here
        if stdin_fd not in ready:
            continue
        data = os.read(stdin_fd, 4096)
        if not data:
            result.reason = "eof"
            return
        for kind, payload in keys.feed(data):
            if kind == "send":
                try:
                    console.send(payload)
                except ConsoleClosed as exc:
                    result.reason, result.detail = "closed", exc.one_line()
                    return
            elif kind == "quit":
                result.reason = "quit"
                return
            elif kind == "help":
                assert keys.escape is not None
                say(help_text(keys.escape).strip("\r\n").replace("\r\n", "\r\n  "))
            elif kind == "break":
                result.breaks += 1
                _send_break(console, recording, say)


def _send_break(console: Console, recording: Recording | None, say: Callable[[str], None]) -> None:
    """``~B``: a BREAK if the transport can; otherwise one local line, never a crash."""
    try:
        console.send_break()
    except (UsageError, TargetError) as exc:
        if isinstance(exc, ConsoleClosed) and "break failed" not in str(exc):
            raise
        say(f"BREAK not sent: {exc.one_line()}")
        return
    if recording is not None:
        recording.event("break")
    say("BREAK sent")
