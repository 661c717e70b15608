"""The human side of a recording: timestamped lines, Xen and Dom0 output told apart.

``console.raw`` keeps the bytes; this module turns them into something a person can grep.
Lines are emitted only once complete (so an escape sequence or a UTF-8 character split
across two reads is still recognised), each stamped with the UTC time its first byte
arrived. On a Xen host the hypervisor (``(XEN) …``) and Dom0 share one serial line and
interleave, even mid-line; a line is split where ``(XEN)`` appears so each part lands in its
own file. The split is a best effort: the raw bytes are the authority.
"""

from __future__ import annotations

import re
from collections.abc import Callable

_ESCAPES = re.compile(
    rb"\x1b(\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\)|[()][0-9A-Za-z]|[@-Z\\-_])"
)
_CONTROL = re.compile(rb"[\x00-\x08\x0b-\x1f\x7f]")
_XEN = b"(XEN)"
#: A line longer than this is written in pieces (marked ``…``) so memory stays bounded.
MAX_LINE = 64 * 1024

Writer = Callable[[bytes], None]


def clean(line: bytes) -> bytes:
    """Remove escape sequences, carriage returns and other control bytes from one line."""
    return _CONTROL.sub(b"", _ESCAPES.sub(b"", line))


class HumanLog:
    """Assemble lines from chunks and write them to the combined, Xen and Dom0 logs."""

    def __init__(self, combined: Writer, xen: Writer, dom0: Writer) -> None:
        self._combined = combined
        self._xen = xen
        self._dom0 = dom0
        self._pending = bytearray()
        self._pending_stamp = ""

    def feed(self, data: bytes, stamp: str) -> None:
        """Add received bytes; ``stamp`` is the UTC time they arrived."""
        start = 0
        while True:
            newline = data.find(b"\n", start)
            if newline < 0:
                break
            self._append(data[start:newline], stamp)
            self._emit(continued=False)
            start = newline + 1
        if start < len(data):
            self._append(data[start:], stamp)
            if len(self._pending) > MAX_LINE:
                self._emit(continued=True)

    def event(self, text: str) -> None:
        """An event line (``[-- … --]``) in the combined log, after any partial line."""
        if self._pending:
            self._emit(continued=True)
        self._combined(text.encode() + b"\n")

    def flush(self) -> None:
        """Write out a final line that never got its newline."""
        if self._pending:
            self._emit(continued=False)

    def _append(self, piece: bytes, stamp: str) -> None:
        if not self._pending:
            self._pending_stamp = stamp
        self._pending += piece

    def _emit(self, *, continued: bool) -> None:
        line = bytes(self._pending)
        stamp = self._pending_stamp
        self._pending.clear()
        text = clean(line)
        if not text and not continued:
            return
        mark = " …" if continued else ""
        at = text.find(_XEN)
        parts: list[tuple[str, bytes]] = []
        if at < 0:
            parts.append(("dom0", text))
        else:
            if text[:at].strip():
                parts.append(("dom0", text[:at]))
            parts.append(("xen", text[at:]))
        for source, part in parts:
            # The combined log needs no tag: Xen's own "(XEN)" prefix already tells them apart.
            entry = f"[{stamp}] ".encode() + part + mark.encode() + b"\n"
            self._combined(entry)
            (self._xen if source == "xen" else self._dom0)(entry)
