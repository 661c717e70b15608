"""Turn the raw bytes of a captured debug-key segment into clean Xen lines.

Why a separate step: what the serial line delivers is not what Xen's format strings print.
Every Xen line carries a ``(XEN) `` prefix (and, with ``console_timestamps=``, a stamp), ends
``\\r\\n``, and shares the wire with Dom0's ``hvc0`` output (lines ending ``\\r\\r\\n``, no
prefix) that can land in the middle of a Xen line. Terminal noise (ANSI escapes such as
``ESC[6n``, stray control bytes) rides along. The parsers want only the text after the prefix.

This module never raises on any input: anything it cannot place is kept, not dropped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

XEN_PREFIX = "(XEN) "

# console.c printk_start_of_line: date "[YYYY-MM-DD HH:MM:SS] ", datems adds ".mmm",
# boot "[%5lu.%06lu] ", raw "[%016lx] ".
_TIMESTAMP = re.compile(
    r"\[(?:\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(?:\.\d{3})?|\s*\d+\.\d{6}|[0-9a-f]{16})\] "
)
# CSI / OSC / two-byte escapes, then any C0 control byte except TAB, and DEL.
_ANSI = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[@-Z\\-_])?")
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


@dataclass
class Lines:
    """The Xen lines of a segment (prefix and stamp removed) and everything else seen."""

    xen: list[str] = field(default_factory=list)
    foreign: list[str] = field(default_factory=list)
    """Non-Xen text: Dom0 console lines and fragments, guest ``(dN)`` lines, noise."""
    partial_last: bool = False
    """The segment did not end with a line end, so its last Xen line may be cut short."""
    timestamps: int = 0
    """How many Xen lines carried a ``console_timestamps`` stamp (stripped)."""


def clean(text: str) -> str:
    """Remove ANSI escapes and control bytes (TAB survives: credit2 indents with it)."""
    return _CONTROL.sub("", _ANSI.sub("", text))


def split_lines(data: bytes) -> Lines:
    """Split a raw segment into Xen lines and foreign text.

    A physical line (up to ``\\n``) may hold a Dom0 fragment before ``(XEN) ``: the fragment
    goes to ``foreign`` and the rest is the Xen line. A line without the prefix is foreign.
    Dom0 text spliced *into* the middle of a Xen line cannot be told apart from Xen's own text;
    such a line usually fails its parser and ends up in ``unparsed``.
    """
    out = Lines()
    text = data.decode("utf-8", "replace")
    physical = text.split("\n")
    tail = physical.pop()
    if tail.strip("\r\x00"):
        physical.append(tail)
        out.partial_last = "(XEN)" in tail
    for raw in physical:
        line = _ANSI.sub("", raw)
        idx = line.find(XEN_PREFIX)
        if idx < 0:
            bare = line.rstrip()
            # Xen strips the trailing space of an empty printk line: "(XEN)" alone.
            if bare.lstrip("\r").endswith("(XEN)"):
                idx = len(bare) - len("(XEN)")
                line = bare + " "
        if idx < 0:
            rest = clean(line).strip()
            if rest:
                out.foreign.append(rest)
            continue
        if idx > 0:
            head = clean(line[:idx]).strip()
            if head:
                out.foreign.append(head)
        body = line[idx + len(XEN_PREFIX) :]
        stamp = _TIMESTAMP.match(body)
        if stamp:
            out.timestamps += 1
            body = body[stamp.end() :]
        out.xen.append(clean(body).rstrip())
    return out


def cpulist(text: str) -> list[int] | None:
    """Parse Xen's ``%*pbl`` list format (``0-3,6,8-9``; empty means none); None if not one."""
    text = text.strip()
    if not text:
        return []
    cpus: list[int] = []
    for part in text.split(","):
        lo, sep, hi = part.strip().partition("-")
        if not lo.isdigit() or (sep and not hi.isdigit()) or len(lo) > 9 or len(hi) > 9:
            return None
        first, last = int(lo), int(hi) if sep else int(lo)
        if last < first or last - first > 1 << 16:
            return None
        cpus.extend(range(first, last + 1))
    return cpus


def bitmap(text: str) -> list[int] | None:
    """Parse Xen's ``%*pb`` hex bitmap (32-bit words, most significant first, comma separated,
    e.g. ``3`` or ``00000001,ffffffff``) into set bit numbers; None if not one."""
    words = text.strip().split(",")
    value = 0
    for w in words:
        if not w or len(w) > 8 or any(c not in "0123456789abcdefABCDEF" for c in w):
            return None
        value = (value << 32) | int(w, 16)
    return [i for i in range(value.bit_length()) if value >> i & 1]
