"""Turn the raw bytes of a captured debug-key segment into clean Xen lines.

Why a separate step: what the serial line delivers is not what Xen's format strings print.
Every Xen line carries a ``(XEN) `` prefix (and, with ``console_timestamps=``, a stamp), ends
``\\r\\n``, and shares the wire with Dom0's ``hvc0`` output (lines ending ``\\r\\r\\n``, no
prefix) that can land in the middle of a Xen line. Terminal noise (ANSI escapes such as
``ESC[6n``, stray control bytes) rides along. The parsers want only the text after the prefix.

Dumps posted in the field add their own shapes, each recognised here and reported in
``Lines.variants`` (never silently dropped): a stamp inside the prefix in any of Xen's formats
(``[  150.26]`` boot seconds, ``[2019-05-28 14:24:11]`` date, ``.mmm`` milliseconds, 16 hex
digits of raw TSC); a collector's own stamp *before* the prefix (conserver, ``ts``, syslog);
a tab instead of the space after ``(XEN)``; a whole dump indented or mail-quoted (``> ``),
with quoted lines a mail client wrapped (the equally quoted rest is joined back); Dom0 text
spliced into the middle of a Xen line on a shared UART.

This module never raises on any input: anything it cannot place is kept, not dropped, and
every physical line is counted as Xen, foreign, blank or a spliced continuation.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

XEN_PREFIX = "(XEN) "

# "(XEN)" then a space, a tab, or the end of the line (Xen strips an empty line's trailing
# space; mail clients strip it too).
_PREFIX = re.compile(r"\(XEN\)(?=[ \t\r]|$)")

# console.c printk_start_of_line: date "[YYYY-MM-DD HH:MM:SS] ", datems adds ".mmm",
# boot "[%5lu.%06lu] " (posts often shorten the fraction), raw "[%016lx] ".
_STAMP_KINDS = (
    ("date", re.compile(r"\[\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\] ")),
    ("datems", re.compile(r"\[\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{1,6}\] ")),
    ("boot", re.compile(r"\[ *\d{1,12}\.\d{1,9}\] ")),
    ("raw", re.compile(r"\[[0-9a-f]{16}\] ")),
)
# What a console collector writes before Xen's prefix: a bracketed or bare date/time or
# seconds count, an ISO stamp, or a syslog "Mon DD HH:MM:SS host tag:" head.
_COLLECTOR = re.compile(
    r"\s*(?:\[[0-9 T:.,+Z/-]{4,40}\]|\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}[.,]?\d*Z?"
    r"|\d{1,12}(?:\.\d{1,9})?"
    r"|[A-Z][a-z]{2} [ \d]\d \d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?: \S+ \S+:)?)\s*[:|-]?\s*"
)
_QUOTE = re.compile(r"[\s>|]*")
_MARK = re.compile(r"\s*(?:>\s?)+")
# A Linux printk stamp inside a Xen line: Dom0's own line started there.
_DOM0_STAMP = re.compile(r"\[ *\d{1,12}\.\d{6}\] ")
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
    physical: int = 0
    """Physical lines in the segment (a last line without its end counts)."""
    blank: int = 0
    """Physical lines with nothing on them once escapes and control bytes are gone."""
    foreign_lines: int = 0
    """Physical lines with no Xen part at all."""
    spliced: int = 0
    """Physical lines that were the rest of a Xen line Dom0 output had interrupted."""
    switch_lines: int = 0
    """Xen lines that were input-switch banners, taken out of ``xen`` (see common.start)."""
    variants: dict[str, int] = field(default_factory=dict)
    """Console shapes seen (``stamp:boot``, ``collector-stamp``, ``tab-after-prefix``,
    ``indented``, ``quoted``, ``dom0-spliced``, ``mail-wrapped``, …) → how many lines showed
    each."""

    def note(self, variant: str) -> None:
        self.variants[variant] = self.variants.get(variant, 0) + 1


def clean(text: str) -> str:
    """Remove ANSI escapes and control bytes (TAB survives: credit2 indents with it)."""
    return _CONTROL.sub("", _ANSI.sub("", text))


def _head(out: Lines, head: str) -> str:
    """Text before the prefix: a collector's stamp, indentation/quoting, or Dom0's.
    Returns the mail-quote marker (``">>"``) if the line was quoted, else ``""``."""
    head = clean(head)
    if not head.strip():
        if head:
            out.note("indented")
        return ""
    if _QUOTE.fullmatch(head):
        out.note("quoted")
        return _marker(head)
    if _COLLECTOR.fullmatch(head):
        out.note("collector-stamp")
        return ""
    if (q := _QUOTE.match(head)) and q.end() and _COLLECTOR.fullmatch(head[q.end() :]):
        out.note("quoted")
        out.note("collector-stamp")
        return _marker(head[: q.end()])
    out.foreign.append(head.strip())
    return ""


def _marker(text: str) -> str:
    return "".join(c for c in text if c == ">")


def _body(out: Lines, body: str) -> tuple[str, bool]:
    """The Xen text after the prefix; True if Dom0 text was cut off its end."""
    if body.startswith(" "):
        body = body[1:]
    elif body.startswith("\t"):
        out.note("tab-after-prefix")
    for kind, pattern in _STAMP_KINDS:
        if stamp := pattern.match(body):
            out.timestamps += 1
            out.note("stamp:" + kind)
            body = body[stamp.end() :]
            break
    cut = False
    if (m := _DOM0_STAMP.search(body)) and m.start() > 0:
        out.foreign.append(clean(body[m.start() :]).strip())
        body = body[: m.start()]
        cut = True
    return body, cut


def split_lines(data: bytes) -> Lines:
    """Split a raw segment into Xen lines and foreign text.

    A physical line (up to ``\\n``) may hold a Dom0 fragment before ``(XEN) ``: the fragment
    goes to ``foreign`` and the rest is the Xen line. A line without the prefix is foreign.
    When Dom0's line (stamped ``[   49.8] ``, ended ``\\r\\r\\n``) interrupted a Xen line, the
    next unprefixed physical line ending in Xen's own ``\\r\\n`` is that Xen line's rest and
    is joined back (``dom0-spliced``). Dom0 text spliced mid-line without such evidence cannot
    be told apart from Xen's own; the line then usually ends up in ``unparsed``.
    """
    out = Lines()
    text = data.decode("utf-8", "replace")
    physical = text.split("\n")
    tail = physical.pop()
    if tail.strip("\r\x00"):
        physical.append(tail)
        out.partial_last = "(XEN)" in tail
    elif tail:
        out.blank += 1
        out.physical += 1
    crlf = "\r" in text
    pending: str | None = None  # the last Xen line, if Dom0 interrupted it (may continue)
    quote = ""  # the mail-quote marker of the last Xen line
    for raw in physical:
        out.physical += 1
        line = _ANSI.sub("", raw)
        m = _PREFIX.search(line)
        if m is None:
            rest = clean(line).strip()
            mark = _MARK.match(line)
            if (
                pending is not None
                and rest
                and not _DOM0_STAMP.match(line)
                and _xen_ending(raw, crlf)
            ):
                out.xen[-1] = (pending + clean(line)).rstrip()
                out.spliced += 1
                out.note("dom0-spliced")
            elif quote and mark and _marker(mark.group()) == quote and rest != quote:
                # A mail client wrapped the quoted Xen line: its rest follows, equally quoted.
                tail = clean(line[mark.end() :]).strip()
                if _DOM0_STAMP.match(tail):
                    out.foreign.append(rest)
                    out.foreign_lines += 1
                    quote = ""
                else:
                    out.xen[-1] = f"{out.xen[-1]} {tail}"
                    out.spliced += 1
                    out.note("mail-wrapped")
            elif rest:
                out.foreign.append(rest)
                out.foreign_lines += 1
                quote = ""
            else:
                out.blank += 1
                quote = ""
            pending = None
            continue
        quote = _head(out, line[: m.start()])
        body, cut = _body(out, line[m.end() :])
        body = clean(body)
        out.xen.append(body.rstrip())
        pending = body if cut or raw.endswith("\r\r") else None
    return out


def _xen_ending(raw: str, crlf: bool) -> bool:
    """A line Xen ended (``\\r\\n``), not Dom0 (``\\r\\r\\n``); any line if no ``\\r`` at all."""
    if not crlf:
        return True
    return raw.endswith("\r") and not raw.endswith("\r\r")


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
