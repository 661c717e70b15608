"""Console: one reader thread that never stops draining, and expect/send/settle on top.

Why a reader thread: solcap is a *capture* tool. If reading only happened inside ``expect``
(pexpect's model), bytes that arrive while nobody waits would sit in kernel buffers or, over
SOL, be discarded by the BMC. So a :class:`Console` starts exactly one thread that reads the
transport for as long as the console is open and, for every chunk, in this order:

1. hands it to ``sink`` (the recorder) — every byte exactly once, in order, whether or not
   anyone is expecting anything;
2. checks it for death strings (``Panic on CPU``…), across chunk boundaries;
3. appends it to the *match buffer* and wakes whoever waits.

A transport with an I/O thread of its own (the SOL engine, :meth:`Transport.push_to`) does
those three steps itself, in that thread, the moment a packet is opened: no queue and no
wake-up of the reader between the packet and the recording. The reader thread then only waits
for the end of the stream (and runs reconnection, which places its events in the stream).

``expect`` then only searches the match buffer. Its API is pexpect's, because state machines
written against it stay short: pass a list of patterns (``bytes`` regex sources, compiled
``re.Pattern[bytes]``, or the sentinels :data:`TIMEOUT` and :data:`EOF`) and get back the
*index* of the one that matched. Unlike pexpect, results are values (:class:`ExpectResult`), not
mutable state on the console, and they carry *absolute stream offsets* (bytes since the console
started) so a caller can find the matched segment in the recording.

Threads: ``send*`` may be called from any thread. Only one thread may *wait* (``expect``,
``settle``, ``wait_for_bytes``) at a time — a second concurrent waiter is a usage error, because
"which waiter consumes these bytes / sees this death string" has no good answer.

Errors are solcap's own (see :mod:`solcap.errors`): a deadline is :class:`ExpectTimeout`, the
far side going away is :class:`ConsoleClosed`, a death string is :class:`DeathStringSeen`; each
names the host and shows the last bytes received, so a person can tell what the target was doing.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import importlib
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from types import TracebackType
from typing import Any, Final, TypeAlias

from solcap.errors import ConsoleClosed, DeathStringSeen, ExpectTimeout, TargetError, UsageError
from solcap.transports.base import Transport
from solcap.transports.registry import open_transport
from solcap.transports.serialport import LineSettings

__all__ = [
    "EOF",
    "TIMEOUT",
    "Console",
    "ExpectResult",
    "Pattern",
    "Patterns",
    "open_console",
]


class _Sentinel:
    """A named marker usable in an expect pattern list (``TIMEOUT``, ``EOF``)."""

    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = name

    def __repr__(self) -> str:
        return self._name


#: In a pattern list: "the deadline passing is an expected outcome" — return its index
#: instead of raising :class:`ExpectTimeout`. The buffer is *not* consumed on TIMEOUT.
TIMEOUT: Final = _Sentinel("TIMEOUT")
#: In a pattern list: "the console closing is an expected outcome" — return its index instead
#: of raising :class:`ConsoleClosed`. Everything left in the buffer is returned as ``before``.
EOF: Final = _Sentinel("EOF")

Pattern: TypeAlias = bytes | re.Pattern[bytes] | _Sentinel
Patterns: TypeAlias = Pattern | Sequence[Pattern]

_TAIL_KEEP: Final = 160  # bytes of stream tail kept for error messages
#: How long the reader waits in one read of an interruptible transport (close() ends it early).
IDLE_READ_WAIT: Final = 1.0
_CONTEXT_MAX: Final = 240  # bytes each side of a death string shown in its error


@dataclasses.dataclass(frozen=True)
class ExpectResult:
    """What :meth:`Console.expect` found.

    ``index`` is the position in the pattern list of what matched (a pattern, ``TIMEOUT`` or
    ``EOF``). ``match`` is the regex match (``None`` for TIMEOUT/EOF); its own offsets are
    relative to the match buffer at the time, so use ``start``/``end``, which are *absolute*
    stream offsets: ``recording[start:end]`` is the matched text. ``before`` is what came
    between the previous consumption point and the match.
    """

    index: int
    match: re.Match[bytes] | None
    before: bytes
    start: int
    end: int

    @property
    def after(self) -> bytes:
        """The matched bytes themselves (``b""`` for TIMEOUT/EOF)."""
        return self.match.group(0) if self.match is not None else b""


_LOOKBACK_MARGIN: Final = 8  # room for zero-width checks next to a match (\b, $)
_LOOKBACK_MAX: Final = 1 << 16


@functools.lru_cache(maxsize=512)
def _lookback(pattern: re.Pattern[bytes]) -> int | None:
    """Bytes before the old buffer end where a new match may start; None: rescan everything.

    Uses the regex parser's width bound (``re._parser``, private but present since 3.11 —
    if it goes away we fall back to full rescans, which are only slower).
    """
    source = pattern.pattern
    if b"(?=" in source or b"(?!" in source:
        return None  # lookahead reads past the match end: its width says nothing
    try:
        parser: Any = importlib.import_module("re._parser")
        _low, high = parser.parse(source, pattern.flags).getwidth()
    except Exception:
        return None
    if not isinstance(high, int) or high >= _LOOKBACK_MAX:
        return None
    return high + _LOOKBACK_MARGIN


def search_buffer(
    buf: bytes | bytearray,
    buf_start: int,
    compiled: Sequence[tuple[int, re.Pattern[bytes]]],
    scanned_end: int | None,
) -> tuple[int, re.Pattern[bytes], int] | None:
    """Earliest match in ``buf`` as ``(index, pattern, relative start)``; ties go to the first.

    ``buf`` begins at absolute stream offset ``buf_start``. ``scanned_end`` is the absolute
    end of the buffer at the previous *failed* search of the same patterns (None: first
    search). A pattern whose matches are at most N bytes long can then only match starting
    within N bytes before that point, so it is searched from there — keeping a huge dump
    linear instead of quadratic. Patterns of unbounded width, or with lookahead, are searched
    whole: correct first, fast where it is provably safe. (Public for its property test.)
    """
    best: tuple[int, re.Pattern[bytes], int] | None = None
    for index, pattern in compiled:
        pos = 0
        if scanned_end is not None:
            lookback = _lookback(pattern)
            if lookback is not None:
                pos = max(0, scanned_end - lookback - buf_start)
        m = pattern.search(buf, pos)
        if m is not None and (best is None or m.start() < best[2]):
            best = (index, pattern, m.start())
    return best


def _describe(patterns: Sequence[Pattern]) -> str:
    shown = []
    for p in patterns:
        if isinstance(p, re.Pattern):
            shown.append(repr(p.pattern))
        else:
            shown.append(repr(p))
    return "[" + ", ".join(shown) + "]"


def _reason(err: BaseException) -> str:
    """The message of ``err`` without the ``host: `` prefix TargetError adds."""
    text = str(err)
    if isinstance(err, TargetError) and text.startswith(f"{err.host}: "):
        return text[len(err.host) + 2 :]
    return text or type(err).__name__


class Console:
    """A running console on a :class:`~solcap.transports.base.Transport`.

    ``sink`` receives every chunk read, in order, on the reader thread (the transport's own
    I/O thread where it pushes, see :attr:`pushed`); it should be quick
    (a recorder's write). If it raises, the console stops calling it (the recording would have a
    hole) and re-raises that exception, once, from the next public call — so a capture can never
    lose data without someone being told. The exception carries a note with the stream offset
    where recording stopped.

    ``death_strings``: ``bytes`` are literal text (e.g. ``b"Panic on CPU"``), compiled patterns
    are regexes. Each occurrence is reported once, as :class:`DeathStringSeen`, from the next
    waiting call (immediately, if one is waiting). Matches are found across chunk boundaries
    within ``death_overlap`` bytes.

    ``max_buffer`` caps the *match buffer* only: when more unconsumed bytes pile up (a huge dump
    nobody expects through), the oldest are dropped from matching — the sink already has them.
    """

    def __init__(
        self,
        transport: Transport,
        *,
        host: str | None = None,
        sink: Callable[[bytes], None] | None = None,
        death_strings: Sequence[bytes | re.Pattern[bytes]] = (),
        read_size: int = 65536,
        max_buffer: int = 64 * 1024 * 1024,
        poll_interval: float = 0.1,
        death_overlap: int = 4096,
        close_timeout: float = 5.0,
    ) -> None:
        if read_size < 1 or max_buffer < 1 or death_overlap < 0 or poll_interval <= 0:
            raise UsageError("read_size, max_buffer, poll_interval must be positive")
        self.transport = transport
        self.host = host if host is not None else transport.name
        self._sink = sink
        self._deaths = [self._compile_death(d) for d in death_strings]
        # Reported as given (literal text, not its escaped regex form).
        self._death_names = [
            d.pattern if isinstance(d, re.Pattern) else bytes(d) for d in death_strings
        ]
        self._read_size = read_size
        self._max_buffer = max_buffer
        self._poll_interval = poll_interval
        self._death_overlap = death_overlap
        self._close_timeout = close_timeout

        self._cond = threading.Condition()
        # --- guarded by _cond ---
        self._buf = bytearray()  # unconsumed bytes (the match buffer)
        self._buf_start = 0  # absolute offset of _buf[0]
        self._received = 0  # total bytes read from the transport
        self._discarded = 0  # bytes dropped from the match buffer by max_buffer
        self._last_rx = 0.0  # monotonic time of the last chunk
        self._tail = b""  # last bytes of the stream, for messages
        self._pending_deaths: collections.deque[DeathStringSeen] = collections.deque()
        self._sink_error: Exception | None = None
        self._sink_error_raised = False
        self._reader_error: Exception | None = None
        self._reader_done = False
        # --- reader thread only ---
        self._death_window = b""
        self._death_window_start = 0
        self._death_last_end = [0] * len(self._deaths)

        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._state_lock = threading.Lock()
        self._closed = False
        self._send_lock = threading.RLock()
        self._waiter = threading.Lock()
        #: True once started on a transport that pushes its chunks (see Transport.push_to).
        self.pushed = False

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> Console:
        """Start the reader thread (idempotent); returns ``self``."""
        with self._state_lock:
            if self._closed:
                raise UsageError(f"{self.host}: console was closed; open a new one")
            if self._thread is None:
                # Where the transport has an I/O thread of its own (the SOL engine), chunks
                # come straight to _deliver there; the reader then only waits for the end.
                self.pushed = self.transport.push_to(self._deliver)
                self._thread = threading.Thread(
                    target=self._run, name=f"solcap-reader-{self.host}", daemon=True
                )
                self._thread.start()
        return self

    def close(self) -> None:
        """Stop the reader, close the transport, join the thread (bounded). Idempotent."""
        with self._state_lock:
            if self._closed:
                return
            self._closed = True
            thread = self._thread
        if thread is threading.current_thread():
            thread = None  # close() from inside the sink: the reader cannot join itself
        self._stop.set()
        self.transport.interrupt()
        # The reader returns within poll_interval of _stop (at once if the transport is
        # interruptible); only then close the transport, so that no read is in flight on a
        # descriptor we are closing.
        if thread is not None:
            thread.join(self._close_timeout)
        try:
            self.transport.close()
        finally:
            if thread is not None and thread.is_alive():
                thread.join(self._close_timeout)  # its read now fails fast on the closed port
            with self._cond:
                if self._reader_error is None:
                    self._reader_error = ConsoleClosed(self.host, "console was closed locally")
                self._reader_done = True
                self._cond.notify_all()

    def __enter__(self) -> Console:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called."""
        return self._closed

    # ------------------------------------------------------------------ reader thread

    def _run(self) -> None:
        error: Exception | None = None
        try:
            # An interruptible transport's read is ended by close(): no need to poll often.
            wait = self._poll_interval
            if self.transport.interruptible:
                wait = max(wait, IDLE_READ_WAIT)
            while not self._stop.is_set():
                chunk = self.transport.read(self._read_size, wait)
                if chunk:
                    self._deliver(chunk)
        except Exception as exc:  # stored and raised to the caller; never swallowed
            error = exc
        with self._cond:
            if error is not None and not self._stop.is_set():
                self._reader_error = error
            self._reader_done = True
            self._cond.notify_all()

    def _deliver(self, chunk: bytes) -> None:
        if self._sink is not None and self._sink_error is None:
            try:
                self._sink(chunk)
            except Exception as exc:
                exc.add_note(f"{self.host}: recording stopped at stream offset {self._received}")
                with self._cond:
                    self._sink_error = exc
        deaths = self._scan_deaths(chunk) if self._deaths else []
        with self._cond:
            self._buf += chunk
            self._received += len(chunk)
            self._last_rx = time.monotonic()
            self._tail = (self._tail + chunk)[-_TAIL_KEEP:]
            excess = len(self._buf) - self._max_buffer
            if excess > 0:
                del self._buf[:excess]
                self._buf_start += excess
                self._discarded += excess
            self._pending_deaths.extend(deaths)
            self._cond.notify_all()

    def _compile_death(self, death: bytes | re.Pattern[bytes]) -> re.Pattern[bytes]:
        if isinstance(death, re.Pattern):
            pattern = death
        elif isinstance(death, bytes | bytearray):
            pattern = re.compile(re.escape(bytes(death)))
        else:
            raise UsageError(f"death strings must be bytes or re.Pattern[bytes], got {death!r}")
        if not isinstance(pattern.pattern, bytes):
            raise UsageError(f"death string {pattern.pattern!r} must be a bytes pattern")
        if pattern.search(b"") is not None:
            raise UsageError(f"death string {pattern.pattern!r} matches empty text")
        return pattern

    def _scan_deaths(self, chunk: bytes) -> list[DeathStringSeen]:
        """Search the new chunk plus a bounded overlap of older bytes: linear in the stream.

        A match is reported only if it ends in the new chunk and starts after the previous
        report of the same pattern ended, so each occurrence is reported exactly once. It is
        reported as soon as it matches, so the context may stop mid-line.
        """
        window = self._death_window + chunk
        wstart = self._death_window_start
        old_len = len(self._death_window)
        found: list[DeathStringSeen] = []
        for i, pattern in enumerate(self._deaths):
            pos = max(0, self._death_last_end[i] - wstart)
            lookback = _lookback(pattern)
            if lookback is not None:  # a new match cannot start earlier (see search_buffer)
                pos = max(pos, old_len - lookback)
            while pos <= len(window):
                m = pattern.search(window, pos)
                if m is None:
                    break
                pos = max(m.end(), m.start() + 1)
                if m.end() <= old_len:
                    continue  # lies wholly in bytes already scanned
                self._death_last_end[i] = wstart + m.end()
                context = self._context(window, m)
                found.append(DeathStringSeen(self.host, self._death_names[i], context))
        keep = window[-self._death_overlap :] if self._death_overlap else b""
        self._death_window = keep
        self._death_window_start = wstart + len(window) - len(keep)
        return found

    @staticmethod
    def _context(window: bytes, m: re.Match[bytes]) -> bytes:
        """The line(s) around a death string, bounded, for the error message."""
        lo = window.rfind(b"\n", max(0, m.start() - _CONTEXT_MAX), m.start()) + 1
        lo = max(lo, m.start() - _CONTEXT_MAX)
        hi = window.find(b"\n", m.end(), m.end() + _CONTEXT_MAX)
        hi = min(len(window), m.end() + _CONTEXT_MAX) if hi < 0 else hi
        return window[lo:hi]

    # ------------------------------------------------------------------ waiting helpers

    @contextmanager
    def _waiting(self) -> Iterator[None]:
        if not self._waiter.acquire(blocking=False):
            raise UsageError(f"{self.host}: another thread is already waiting on this console")
        try:
            with self._state_lock:
                if self._thread is None and not self._closed:
                    raise UsageError(
                        f"{self.host}: console not started; use `with Console(...)` or start()"
                    )
            with self._cond:
                yield
        finally:
            self._waiter.release()

    def _raise_sink_error(self) -> None:
        """Re-raise a sink failure once (caller holds _cond or accepts a benign race)."""
        if self._sink_error is not None and not self._sink_error_raised:
            self._sink_error_raised = True
            raise self._sink_error

    def _raise_pending(self) -> None:
        """Raise what the reader stored for the caller: a sink failure, then death strings."""
        self._raise_sink_error()
        if self._pending_deaths:
            raise self._pending_deaths.popleft()

    def _last_bytes(self) -> str:
        return repr(self._tail) if self._received else "nothing received"

    def _closed_error(self, waiting_for: str) -> Exception:
        err = self._reader_error
        if err is None or isinstance(err, ConsoleClosed):
            reason = _reason(err) if err is not None else "console closed"
            closed = ConsoleClosed(
                self.host, f"{reason} while {waiting_for}; last bytes: {self._last_bytes()}"
            )
            closed.__cause__ = err
            return closed
        return err

    def _take(self, n: int) -> bytes:
        data = bytes(self._buf[:n])
        del self._buf[:n]
        self._buf_start += n
        return data

    # ------------------------------------------------------------------ expect & co.

    def expect(self, patterns: Patterns, timeout: float = 30.0) -> ExpectResult:
        """Wait until one of ``patterns`` matches the unconsumed output; return which.

        ``bytes`` are regex sources (``rb"login: $"``); ``re.Pattern[bytes]`` are used as
        given. The earliest match in the buffer wins; on a tie, the first in the list. The
        buffer is consumed up to the end of the match; bytes after it stay for the next call.
        Without ``TIMEOUT``/``EOF`` in the list, the deadline raises :class:`ExpectTimeout` and
        end of file raises :class:`ConsoleClosed`. A death string raises
        :class:`DeathStringSeen` the moment it arrives.
        """
        items = self._pattern_list(patterns)
        compiled, timeout_index, eof_index = self._compile(items)
        deadline = time.monotonic() + timeout
        with self._waiting():
            scanned: int | None = None  # absolute buffer end at the last failed scan
            while True:
                self._raise_pending()
                end = self._buf_start + len(self._buf)
                if scanned != end:  # only search when bytes arrived
                    hit = self._search(compiled, scanned)
                    if hit is not None:
                        return self._consume_match(*hit)
                    scanned = end
                if self._reader_done:
                    err = self._reader_error
                    if eof_index is not None and (err is None or isinstance(err, ConsoleClosed)):
                        end = self._buf_start + len(self._buf)
                        return ExpectResult(eof_index, None, self._take(len(self._buf)), end, end)
                    raise self._closed_error(f"waiting for {_describe(items)}")
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    if timeout_index is not None:
                        end = self._buf_start + len(self._buf)
                        return ExpectResult(timeout_index, None, bytes(self._buf), end, end)
                    raise ExpectTimeout(
                        self.host,
                        f"waited {timeout:g}s for {_describe(items)}; "
                        f"last bytes: {self._last_bytes()}",
                    )
                self._cond.wait(remaining)

    @staticmethod
    def _pattern_list(patterns: Patterns) -> list[Pattern]:
        if isinstance(patterns, bytes | bytearray | re.Pattern | _Sentinel):
            return [patterns]
        if isinstance(patterns, str):
            raise UsageError(f"expect patterns must be bytes, not str: {patterns!r}")
        items = list(patterns)
        if not items:
            raise UsageError("expect needs at least one pattern")
        return items

    @staticmethod
    def _compile(
        items: Sequence[Pattern],
    ) -> tuple[list[tuple[int, re.Pattern[bytes]]], int | None, int | None]:
        compiled: list[tuple[int, re.Pattern[bytes]]] = []
        timeout_index: int | None = None
        eof_index: int | None = None
        for i, p in enumerate(items):
            if p is TIMEOUT:
                timeout_index = i if timeout_index is None else timeout_index
            elif p is EOF:
                eof_index = i if eof_index is None else eof_index
            elif isinstance(p, re.Pattern):
                if not isinstance(p.pattern, bytes):
                    raise UsageError(f"pattern {p.pattern!r} must be compiled from bytes")
                compiled.append((i, p))
            elif isinstance(p, bytes | bytearray):
                try:
                    compiled.append((i, re.compile(bytes(p))))
                except re.error as exc:
                    raise UsageError(f"bad expect pattern {bytes(p)!r}: {exc}") from exc
            else:
                raise UsageError(
                    f"expect patterns must be bytes, re.Pattern[bytes], TIMEOUT or EOF; got {p!r}"
                )
        return compiled, timeout_index, eof_index

    def _search(
        self, compiled: list[tuple[int, re.Pattern[bytes]]], scanned_end: int | None
    ) -> tuple[int, re.Pattern[bytes], int] | None:
        return search_buffer(self._buf, self._buf_start, compiled, scanned_end)

    def _consume_match(self, index: int, pattern: re.Pattern[bytes], at: int) -> ExpectResult:
        # The match must outlive the buffer's next mutation, so redo it on an immutable copy;
        # matching at the same position of identical text gives the identical match.
        snapshot = bytes(self._buf)
        m = pattern.match(snapshot, at)
        assert m is not None, "re-match at a known match position cannot fail"
        start, end = self._buf_start + m.start(), self._buf_start + m.end()
        before = snapshot[: m.start()]
        del self._buf[: m.end()]
        self._buf_start += m.end()
        return ExpectResult(index, m, before, start, end)

    def settle(self, quiet: float, timeout: float) -> bytes:
        """Wait until nothing has arrived for ``quiet`` seconds; return and consume the buffer.

        Quiet time counts from the later of this call and the last byte, so a reply that is
        still on its way after a key press is waited for. Raises :class:`ExpectTimeout` if the
        line keeps talking until ``timeout``.
        """
        if quiet < 0 or timeout < quiet:
            raise UsageError(f"settle: need 0 <= quiet ({quiet:g}s) <= timeout ({timeout:g}s)")
        begin = time.monotonic()
        deadline = begin + timeout
        with self._waiting():
            while True:
                self._raise_pending()
                if self._reader_done:
                    raise self._closed_error(f"waiting for {quiet:g}s of quiet")
                now = time.monotonic()
                quiet_since = max(begin, self._last_rx)
                if now - quiet_since >= quiet:
                    return self._take(len(self._buf))
                if now >= deadline:
                    raise ExpectTimeout(
                        self.host,
                        f"the line did not go quiet for {quiet:g}s within {timeout:g}s; "
                        f"last bytes: {self._last_bytes()}",
                    )
                self._cond.wait(min(quiet_since + quiet, deadline) - now)

    def wait_for_bytes(self, n_total: int, timeout: float) -> int:
        """Wait until ``received >= n_total``; return ``received``. Consumes nothing."""
        deadline = time.monotonic() + timeout
        with self._waiting():
            while True:
                self._raise_pending()
                if self._received >= n_total:
                    return self._received
                if self._reader_done:
                    raise self._closed_error(f"waiting for byte {n_total}")
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise ExpectTimeout(
                        self.host,
                        f"waited {timeout:g}s for {n_total} bytes, got {self._received}; "
                        f"last bytes: {self._last_bytes()}",
                    )
                self._cond.wait(remaining)

    def read_available(self) -> bytes:
        """Return and consume whatever is unconsumed now, without waiting."""
        with self._cond:
            self._raise_sink_error()
            return self._take(len(self._buf))

    def drain(self) -> int:
        """Discard the unconsumed bytes from matching (they stay in the recording); count them."""
        with self._cond:
            self._raise_sink_error()
            n = len(self._buf)
            self._take(n)
            return n

    @property
    def position(self) -> int:
        """Absolute stream offset of the first unconsumed byte."""
        with self._cond:
            return self._buf_start

    @property
    def received(self) -> int:
        """Total bytes read from the transport since the console started."""
        with self._cond:
            return self._received

    @property
    def discarded(self) -> int:
        """Bytes dropped from the match buffer (never from the sink) because of ``max_buffer``."""
        with self._cond:
            return self._discarded

    @property
    def sink_error(self) -> Exception | None:
        """The exception the sink raised, if it did (recording stopped there)."""
        with self._cond:
            return self._sink_error

    # ------------------------------------------------------------------ sending

    def _check_can_send(self) -> None:
        with self._cond:
            self._raise_sink_error()
        if self._closed:
            raise ConsoleClosed(self.host, "console was closed locally")

    def send(self, data: bytes) -> None:
        """Write ``data`` as one write; safe from any thread."""
        if isinstance(data, str):
            raise UsageError(f"send wants bytes, not str: {data!r}")
        self._check_can_send()
        with self._send_lock:
            self.transport.write(bytes(data))

    def sendline(self, line: bytes | str = b"", eol: bytes = b"\r") -> None:
        """Send ``line`` then ``eol``: CR by default, which is what Enter sends on a serial line."""
        raw = line.encode() if isinstance(line, str) else bytes(line)
        self.send(raw + eol)

    def send_paced(self, data: bytes, char_delay: float = 0.05) -> None:
        """Send one byte at a time, ``char_delay`` s apart.

        GRUB polls the serial port and loses bytes typed faster than it reads them; pacing
        keeps every key. Other senders wait until the paced write is done, so nothing
        interleaves. A concurrent :meth:`close` cuts the pacing short with ConsoleClosed.
        """
        if isinstance(data, str):
            raise UsageError(f"send_paced wants bytes, not str: {data!r}")
        self._check_can_send()
        with self._send_lock:
            for i in range(len(data)):
                if i and self._stop.wait(char_delay):
                    raise ConsoleClosed(self.host, "console was closed while sending")
                self.transport.write(data[i : i + 1])

    def send_break(self) -> None:
        """Send a serial BREAK (Linux SysRq prefix) if the transport can."""
        self._check_can_send()
        with self._send_lock:
            try:
                self.transport.send_break()
            except NotImplementedError as exc:
                raise UsageError(f"{self.host}: this transport cannot send a BREAK") from exc


def open_console(
    target: str,
    *,
    line: LineSettings | None = None,
    host: str | None = None,
    sink: Callable[[bytes], None] | None = None,
    death_strings: Sequence[bytes | re.Pattern[bytes]] = (),
) -> Console:
    """Open ``target`` (path or URL, see :func:`~solcap.transports.registry.open_transport`)
    and return a *started* console, so capture begins before anything else happens.

    Use it as ``with open_console(url, sink=recorder) as con:`` so the console is closed.
    """
    transport = open_transport(target, line=line)
    try:
        return Console(transport, host=host, sink=sink, death_strings=death_strings).start()
    except BaseException:
        transport.close()
        raise
