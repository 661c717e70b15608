"""Structured results from Xen debug-key dumps, as captured from the serial line.

Modelled on Xen 4.17 and checked against dumps posted in the field from Xen 4.8 to
4.21-unstable on x86_64 and arm64 (``tests/parsers/data/field/``, docs/xen-support.md).

``parse_dump(key, raw_bytes)`` returns a JSON-ready dict, or None for keys without a parser.
Input is the raw segment: ``(XEN) `` prefixes, ``\\r\\n`` endings, interleaved Dom0 lines,
ANSI escapes and ``console_timestamps`` stamps are all handled (see :mod:`.text`). Parsers
never raise on malformed input; what they do not understand lands in ``unparsed``.

Every result has ``key``, ``parser_version``, ``unparsed`` (Xen lines no rule matched),
``foreign`` (non-Xen text such as Dom0 lines), ``truncated`` (evidence the dump was cut short:
a partial last line or a structural end that never came; False means no such evidence, not
proof of completeness), ``timestamps`` (whether stamps were stripped), ``lines`` (every
physical input line counted: ``total`` = ``parsed`` + ``unparsed`` + ``foreign`` + ``blank`` +
``spliced``) and ``shape`` (the Xen version/architecture and format variants recognised, and
the console shapes seen: see :func:`.common.start`).

This package must work on real hardware output and therefore imports nothing from
``solcap.sim``.
"""

from __future__ import annotations

from collections.abc import Callable

from solcap.xen.parsers.boot import parse_boot
from solcap.xen.parsers.common import PARSER_VERSION, Result
from solcap.xen.parsers.keys_h import parse_h
from solcap.xen.parsers.keys_misc import parse_e, parse_i, parse_m, parse_t
from solcap.xen.parsers.keys_more import parse_a, parse_g, parse_H
from solcap.xen.parsers.keys_q import parse_q
from solcap.xen.parsers.keys_r import parse_r
from solcap.xen.parsers.keys_regs import parse_0, parse_d
from solcap.xen.parsers.keys_star import parse_star
from solcap.xen.parsers.keys_u import parse_u


def _star(data: bytes) -> Result:
    return parse_star(data, PARSERS)


PARSERS: dict[str, Callable[[bytes], Result]] = {
    "h": parse_h,
    "q": parse_q,
    "r": parse_r,
    "u": parse_u,
    "m": parse_m,
    "i": parse_i,
    "e": parse_e,
    "t": parse_t,
    "d": parse_d,
    "0": parse_0,
    "a": parse_a,
    "H": parse_H,
    "g": parse_g,
    "*": _star,
}
"""Debug key → parser. Keys absent here have no structured form (yet)."""


def parse_dump(key: str, data: bytes) -> Result | None:
    """Parse one key's captured segment; None if ``key`` has no parser."""
    parser = PARSERS.get(key)
    if parser is None:
        return None
    return parser(data)


__all__ = ["PARSERS", "PARSER_VERSION", "Result", "parse_boot", "parse_dump"]
