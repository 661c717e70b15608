"""Xen's serial console: switch input between Dom0 and the hypervisor, and press debug keys.

What real Xen does, and what this module relies on (``xen/drivers/char/console.c``,
``xen/common/keyhandler.c``):

* Three consecutive Ctrl-<conswitch> (default Ctrl-A) rotate serial input Xen → DOM0 (→ other
  domains) → Xen. Xen announces every switch with a banner, so the switch is *confirmed* by
  reading the banner, never assumed. An interrupted sequence is passed through to the domain.
* With input on Xen, a key runs its handler. Keys go through a single pending slot: a key sent
  before the previous one has started is lost. So a key is sent only after the previous dump
  has started and gone quiet.
* No dump has an end marker, and several do not even start with ``'<k>' pressed``. A dump ends
  when the line has been quiet for a period long enough that Xen would have printed more.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from solcap.config.limits import key_problem
from solcap.console.core import TIMEOUT, Console
from solcap.errors import ExpectTimeout, UsageError
from solcap.transports.reconnect import ReconnectingTransport

Target = Literal["xen", "dom0"]

#: Xen's announcement of where serial input now goes (``Xen``, ``DOM0``, or another domain).
#: Xen 4.8 and before print ``*** Serial input -> Xen (type 'CTRL-a' three times to switch
#: input to DOM0)`` (console.c switch_serial_input; seen on a 4.8.5 host in the field corpus).
SWITCH_BANNER = re.compile(
    rb"\(XEN\) \*\*\* Serial input (?:to|->) (?P<target>Xen|DOM\d+|d\d+)"
    rb" \(type 'CTRL-(?P<char>.)' three times to switch input(?: to \w+)?\)"
)

#: Keys that change the host's state (reboot, crash, NMI, …): refused unless explicitly allowed.
DANGEROUS_KEYS = frozenset("RCNS%ATGPLO+-*")

#: The first line of each dump where it is not ``(XEN) '<k>' pressed -> …`` (samples/README.md).
_SPECIAL_STARTS: dict[str, bytes] = {
    "m": rb"\(XEN\) Physical memory information:",
    "i": rb"\(XEN\) IRQ information:",
    "r": rb"\(XEN\) sched_smt_power_savings: ",
    "a": rb"\(XEN\) Dumping timer queues:",
    "t": rb"\(XEN\) Synced stime skew: ",
    "g": rb"\(XEN\) gnttab_usage_print_all \[ key 'g' pressed",
    "M": rb"\(XEN\) MSI information:",
    "Q": rb"\(XEN\) ==== PCI devices ====",
    "n": rb"\(XEN\) CPU\tNMI",
    "s": rb"\(XEN\) TSC ",
    "v": rb"\(XEN\) \*+ VMC[SB] Areas \*+",
    "x": rb"\(XEN\) 'x' pressed - ",
    "z": rb"\(XEN\) number of MP IRQ sources: ",
}
_ANY_BYTE = re.compile(rb"(?s).")

#: Keys Xen runs straight from the serial interrupt (IRQ_KEYHANDLER in keyhandler.c, plus the
#: state-changing ones): their output can land in the middle of another dump, so a dump is
#: never delimited by them.
_IRQ_KEYS = frozenset("d*%RCANGST")


#: Pressed after the last key only to mark where its dump ended (see XenConsole.debug_keys).
END_MARKER_KEY = "m"


def _delimits(key: str) -> bool:
    """Whether ``key``'s first line can mark where the dump before it ended."""
    return key not in _IRQ_KEYS and (key in _SPECIAL_STARTS or key.isprintable())


def dump_start_pattern(key: str) -> re.Pattern[bytes]:
    """The regex that recognises the first line of ``key``'s dump."""
    special = _SPECIAL_STARTS.get(key)
    if special is not None:
        return re.compile(special)
    return re.compile(rb"\(XEN\) '" + re.escape(key.encode()) + rb"' pressed -> ")


def parse_keys(text: str) -> list[str]:
    """``"h,q,u"`` → ``["h", "q", "u"]``; each one a key Xen has a handler for, at least one."""
    keys = [part.strip() for part in text.split(",") if part.strip()]
    if not keys:
        raise UsageError(f"--keys {text!r}: no debug keys given (e.g. --keys h,q,m)")
    for key in keys:
        problem = key_problem(key)
        if problem is not None:
            raise UsageError(f"--keys: {problem}")
    return keys


def refuse_dangerous(keys: list[str] | tuple[str, ...], *, allowed: bool) -> None:
    """Refuse state-changing keys before anything is sent, unless explicitly allowed."""
    refused = [k for k in keys if k in DANGEROUS_KEYS]
    if refused and not allowed:
        raise UsageError(
            f"refusing state-changing debug keys {','.join(refused)} "
            "(reboot, crash, NMI, …); pass --allow-dangerous to press them"
        )


def quiet_period(baud: int, *, floor: float = 0.3) -> float:
    """How long a silent line means a dump has ended.

    Xen's serial driver sends a dump without pausing except while it gathers the next block
    (milliseconds). 512 character times at the line rate covers a gap of that kind with a wide
    margin; ``floor`` covers transports that add latency of their own (SOL batches output).
    """
    return max(floor, 512 * 10 / baud)


@dataclass(frozen=True)
class KeyDump:
    """Where one key's output sits in the console stream (absolute byte offsets)."""

    key: str
    start: int
    end: int
    complete: bool
    reason: str = ""


class XenConsole:
    """Xen-specific operations over a :class:`~solcap.console.core.Console`."""

    def __init__(
        self,
        console: Console,
        *,
        conswitch: str = "a",
        quiet: float = 1.0,
        start_timeout: float = 10.0,
        dump_timeout: float = 3600.0,
        reconnect_wait: float = 120.0,
    ) -> None:
        self.console = console
        self.switch_bytes = bytes([ord(conswitch.lower()) & 0x1F]) * 3
        self.quiet = quiet
        self.start_timeout = start_timeout
        self.dump_timeout = dump_timeout
        #: How long an unanswered key waits out a console that is being reconnected.
        self.reconnect_wait = reconnect_wait
        self.input: str | None = None

    # -- the link under a key that went unanswered

    def _reconnects(self) -> int:
        transport = self.console.transport
        return transport.reconnects if isinstance(transport, ReconnectingTransport) else 0

    def _outwait_link_loss(self, reconnects: int) -> bool:
        """After keys sent at ``reconnects`` went unanswered: if the link went quiet, wait out
        the loss and the reconnection. True if the console now runs on a new session, so the
        keys may have gone into the dead one (a BMC restarted as they were sent)."""
        transport = self.console.transport
        if not isinstance(transport, ReconnectingTransport):
            return False
        if transport.reconnects == reconnects and not transport.link_suspect():
            return False  # the BMC is alive: the key reached it and Xen has nothing to say
        return transport.wait_link(reconnects, self.reconnect_wait)

    def _press(self, key: str, *, presses: int = 3) -> bytes | None:
        """Send ``key`` and wait for the first byte it brings (returned); None if none came.

        A key sent as the BMC goes away may be lost with its session, or answered once the
        session is back: after a reconnection the answer is awaited again, and only then is
        the key pressed again (at most ``presses`` times in all).
        """
        con = self.console
        for _ in range(presses):
            reconnects = self._reconnects()
            con.send(key.encode())
            try:
                first = con.expect([_ANY_BYTE], timeout=self.start_timeout)
                return first.before + first.after
            except ExpectTimeout:
                if not self._outwait_link_loss(reconnects):
                    return None
            try:  # a new session: the key may have reached Xen before the old one died
                first = con.expect([_ANY_BYTE], timeout=self.start_timeout)
                return first.before + first.after
            except ExpectTimeout:
                continue
        return None

    def switch_input(self, target: Target, *, max_presses: int = 6, timeout: float = 10.0) -> str:
        """Rotate serial input until Xen's banner says it reaches ``target``.

        Works from any starting point (input already on Xen, on Dom0, or on another domain):
        each Ctrl-A×3 is confirmed by its banner before the next is sent.
        """
        want = b"Xen" if target == "xen" else b"DOM0"
        for _ in range(max_presses):
            reconnects = self._reconnects()
            self.console.send(self.switch_bytes)
            try:
                result = self.console.expect([SWITCH_BANNER], timeout=timeout)
            except ExpectTimeout:
                if self._outwait_link_loss(reconnects):
                    continue  # the switch went into a session that died: press it again
                raise
            assert result.match is not None
            now = result.match.group("target")
            # A banner can be stale: output still in flight from before our keys (a BMC's
            # buffer, Xen's own banner at the end of boot). Let the line settle and believe
            # the last banner, which is the answer to the keys just sent.
            for later in SWITCH_BANNER.finditer(self.console.settle(self.quiet, timeout)):
                now = later.group("target")
            self.input = now.decode()
            if now == want:
                return self.input
        raise ExpectTimeout(
            self.console.host,
            f"serial input never reached {target} after {max_presses} Ctrl-A×3 switches "
            f"(last: {self.input})",
        )

    def debug_key(self, key: str, *, allow_dangerous: bool = False) -> KeyDump:
        """Press ``key`` with input on Xen and wait until its dump is complete.

        The line is first allowed to go quiet, so the dump's start offset is exact; the key is
        then sent once, its first byte awaited, and the end is the first quiet period after it.
        A dump whose start never shows is reported incomplete rather than guessed at.
        """
        if (problem := key_problem(key)) is not None:
            raise UsageError(f"debug key: {problem}")
        refuse_dangerous([key], allowed=allow_dangerous)
        con = self.console
        con.settle(self.quiet, timeout=self.dump_timeout)
        start = con.received
        # Any byte means the dump has started (and Xen's single key slot is free again).
        first = self._press(key)
        if first is None:
            return KeyDump(
                key,
                start,
                start,
                complete=False,
                reason=f"no output within {self.start_timeout:g}s "
                "(key lost, input not on Xen, or no handler for it)",
            )
        try:
            head = first + con.settle(self.quiet, timeout=self.dump_timeout)[:4096]
        except ExpectTimeout:
            return self._never_quiet(key, start)
        reason = ""
        if not dump_start_pattern(key).search(head[:4096]):
            reason = "first line not the one this key prints"
        return KeyDump(key, start, con.received, complete=True, reason=reason)

    def debug_keys(
        self,
        keys: list[str] | tuple[str, ...],
        *,
        allow_dangerous: bool = False,
        end_marker: str | None = END_MARKER_KEY,
    ) -> Iterator[KeyDump]:
        """Press ``keys`` one after another, yielding where each dump lies as it completes.

        Xen runs serial debug keys one at a time from a tasklet and keeps one pending key, so
        the next key is sent as soon as the current dump has *started*: it waits in Xen's
        slot and its own first line marks exactly where the current dump ended — no guessing
        from silence, however slow the path (a loaded BMC, a WAN). Only the last dump, dumps
        before keys Xen runs from its interrupt handler (``d``, ``*``, …) and dumps followed
        by a key whose first line is unknown end on a quiet period. If the next key's line
        does not come before the line goes quiet, that key was lost and is pressed again.

        The last dump is delimited the same way by ``end_marker``, a read-only key with a
        short dump (``m``, memory totals) pressed only to mark the end; its output stays in
        the recording between segments. ``end_marker=None`` ends the last dump on silence.
        """
        for key in keys:
            if (problem := key_problem(key)) is not None:
                raise UsageError(f"debug key: {problem}")
        refuse_dangerous(list(keys), allowed=allow_dangerous)
        con = self.console
        con.settle(self.quiet, timeout=self.dump_timeout)
        running: int | None = None  # start offset of the dump in progress, if the key was sent
        for index, key in enumerate(keys):
            if running is None:
                start = con.received
                if self._press(key) is None:
                    yield (
                        KeyDump(
                            key,
                            start,
                            start,
                            complete=False,
                            reason=(
                                f"no output within {self.start_timeout:g}s "
                                "(key lost, input not on Xen, or no handler for it)"
                            ),
                        )
                    )
                    continue
            else:
                start = running
            running = None
            last = index + 1 == len(keys)
            after = end_marker if last else keys[index + 1]
            if after is not None and key != "*" and _delimits(after):
                con.send(after.encode())
                boundary = self._next_header(dump_start_pattern(after))
                if boundary is not None:
                    yield KeyDump(key, start, boundary, complete=True)
                    if last:
                        self._end_on_quiet(after, boundary)  # let the marker finish printing
                    running = boundary
                    continue
            yield self._end_on_quiet(key, start)

    def _next_header(self, header: re.Pattern[bytes]) -> int | None:
        """Offset where ``header`` starts, or None if the key that prints it was lost.

        The key was sent, so its first line must come once the current dump ends. A quiet
        period is therefore no end here: on a lossy path the BMC's retransmissions stall the
        line for a second or more in the middle of a dump. Only silence as long as a key is
        given to show its first line (``start_timeout``) means the key never arrived.
        """
        con = self.console
        deadline = time.monotonic() + self.dump_timeout
        seen = con.received
        while (left := deadline - time.monotonic()) > 0:
            result = con.expect([header, TIMEOUT], timeout=min(self.start_timeout, left))
            if result.index == 0:
                return result.start
            if con.received == seen:
                return None
            seen = con.received
        return None

    def _end_on_quiet(self, key: str, start: int) -> KeyDump:
        con = self.console
        try:
            con.settle(self.quiet, timeout=self.dump_timeout)
        except ExpectTimeout:
            return self._never_quiet(key, start)
        return KeyDump(key, start, con.received, complete=True)

    def _never_quiet(self, key: str, start: int) -> KeyDump:
        """A dump whose end never came: never cut short silently, keep what came and say why
        it may not be the end."""
        return KeyDump(
            key,
            start,
            self.console.received,
            complete=False,
            reason=f"the line never went quiet for {self.quiet:g}s within "
            f"{self.dump_timeout:g}s; the dump may go on past this segment",
        )
