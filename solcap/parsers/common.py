"""Shared pieces of the debug-key parsers: the result skeleton and small field parsers.

Every parser returns a plain JSON-ready ``dict`` (str keys; str/int/bool/None/list/dict
values) so results can be written beside the raw text without a custom encoder.
"""

from __future__ import annotations

import re
from typing import Any

from .text import Lines, split_lines

PARSER_VERSION = 1
"""Bumped whenever an output shape changes incompatibly."""

Result = dict[str, Any]


def rx(pattern: str) -> re.Pattern[str]:
    """Compile a line pattern with every ``\\d+`` bounded to 40 digits: Python refuses to
    convert decimal strings over 4300 digits (ValueError), and no Xen field is that long, so
    such a line simply does not match and lands in ``unparsed``."""
    return re.compile(pattern.replace(r"\d+", r"\d{1,40}"))


_KV = re.compile(r"([A-Za-z_][\w-]*)=(\{[^}]*\}|\S*)")


def start(key: str, data: bytes) -> tuple[Result, Lines]:
    """The fields every result has, and the segment split into lines.

    ``truncated`` starts as "the last Xen line was cut off"; parsers add their own evidence.
    ``foreign`` holds non-Xen text (Dom0 lines, fragments); ``unparsed`` Xen lines no rule
    matched, in order.
    """
    lines = split_lines(data)
    result: Result = {
        "key": key,
        "parser_version": PARSER_VERSION,
        "unparsed": [],
        "foreign": lines.foreign,
        "truncated": lines.partial_last,
        "timestamps": lines.timestamps > 0,
    }
    return result, lines


def kv(text: str) -> dict[str, str]:
    """``a=1 b={0-3} c=x`` → ``{"a": "1", "b": "{0-3}", "c": "x"}``."""
    return {m.group(1): m.group(2) for m in _KV.finditer(text)}


def to_int(text: str | None, base: int = 10) -> int | None:
    """int() that answers None instead of raising: dumps can be cut mid-number."""
    if text is None:
        return None
    try:
        return int(text.strip(), base)
    except ValueError:
        return None


PV = rx(r"d(\d+|\[\w+\])v(\d+)")


def vcpu_ref(text: str) -> dict[str, Any] | None:
    """Xen's ``%pv`` (``d3v1``, ``d[IDLE]v0``; ``NULL`` → None)."""
    m = PV.fullmatch(text.strip())
    if not m:
        return None
    dom = m.group(1)
    return {
        "domain": dom if dom.startswith("[") else int(dom),
        "vcpu": int(m.group(2)),
        "idle": dom == "[IDLE]",
    }
