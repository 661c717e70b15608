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
#: The bytes ``clean`` deletes after escape sequences are gone (``bytes.translate`` drops them
#: in C): C0 controls except TAB and LF, and DEL.
_CONTROL_BYTES = bytes([*range(0x00, 0x09), *range(0x0B, 0x20), 0x7F])
_XEN = b"(XEN)"
_CONTINUED = " …".encode()
#: A line longer than this is written in pieces (marked ``…``) so memory stays bounded.
MAX_LINE = 64 * 1024

Writer = Callable[[bytes], None]


def clean(line: bytes) -> bytes:
    """Remove escape sequences, carriage returns and other control bytes from one line."""
    if b"\x1b" in line:  # every escape sequence starts with ESC; most lines have none
        line = _ESCAPES.sub(b"", line)
    return line.translate(None, _CONTROL_BYTES)


class HumanLog:
    """Assemble lines from chunks and write them to the combined, Xen and Dom0 logs.

    Called for every chunk a console delivers, so the per-line work is kept to a few C-level
    bytes operations; the writers are typically ``bytearray.extend`` of a buffer the caller
    flushes in batches.
    """

    def __init__(self, combined: Writer, xen: Writer, dom0: Writer) -> None:
        self._combined = combined
        self._xen = xen
        self._dom0 = dom0
        self._pending = bytearray()
        self._pending_stamp = ""
        self._head_stamp = ""
        self._head = b"[] "

    def feed(self, data: bytes, stamp: str) -> None:
        """Add received bytes; ``stamp`` is the UTC time they arrived."""
        last = data.rfind(b"\n")
        pending = self._pending
        if last >= 0:
            begin = 0
            if pending:
                begin = data.find(b"\n") + 1
                pending += data[: begin - 1]
                self._emit(bytes(pending), self._pending_stamp, continued=False)
                pending.clear()
            if begin <= last:
                if stamp is not self._head_stamp:
                    self._head_stamp = stamp
                    self._head = f"[{stamp}] ".encode()
                self._write_block(self._head, data[begin : last + 1])
        if last + 1 < len(data):
            if not pending:
                self._pending_stamp = stamp
            pending += data[last + 1 :]
            if len(pending) > MAX_LINE:
                self._emit(bytes(pending), self._pending_stamp, continued=True)
                pending.clear()

    def event(self, text: str) -> None:
        """An event line (``[-- … --]``) in the combined log, after any partial line."""
        if self._pending:
            self._emit(bytes(self._pending), self._pending_stamp, continued=True)
            self._pending.clear()
        self._combined(text.encode() + b"\n")

    def flush(self) -> None:
        """Write out a final line that never got its newline."""
        if self._pending:
            self._emit(bytes(self._pending), self._pending_stamp, continued=False)
            self._pending.clear()

    def _emit(self, line: bytes, stamp: str, *, continued: bool) -> None:
        text = clean(line)
        if text or continued:
            self._route(f"[{stamp}] ".encode(), text, _CONTINUED if continued else b"")

    def _write_block(self, head: bytes, block: bytes) -> None:
        """Complete lines (``block`` ends with a newline) that arrived together, one stamp.

        Without escape sequences, cleaning works on the whole block at once (it deletes single
        bytes and keeps newlines), and a block that is all Dom0 or all Xen — most of them —
        becomes one entry string per log instead of one per line.
        """
        if b"\x1b" in block:  # escape sequences are removed line by line, as they always were
            for line in block.split(b"\n"):
                text = clean(line)
                if text:
                    self._route(head, text, b"")
            return
        text = block.translate(None, _CONTROL_BYTES)
        lines = [line for line in text.split(b"\n") if line]
        if not lines:
            return
        if _XEN not in text:
            target = self._dom0
        elif text.count(b"\n" + _XEN) + text.startswith(_XEN) == len(lines):
            target = self._xen  # every line starts with "(XEN)"
        else:
            for line in lines:
                self._route(head, line, b"")
            return
        entries = head + (b"\n" + head).join(lines) + b"\n"
        self._combined(entries)
        target(entries)

    def _route(self, head: bytes, text: bytes, mark: bytes) -> None:
        """One cleaned line (or piece) to the combined log and to the Xen or the Dom0 log."""
        at = text.find(_XEN)
        if at < 0:
            entry = head + text + mark + b"\n"
            self._combined(entry)
            self._dom0(entry)
            return
        if at and text[:at].strip():
            entry = head + text[:at] + mark + b"\n"
            self._combined(entry)
            self._dom0(entry)
        # The combined log needs no tag: Xen's own "(XEN)" prefix already tells them apart.
        entry = head + text[at:] + mark + b"\n"
        self._combined(entry)
        self._xen(entry)
