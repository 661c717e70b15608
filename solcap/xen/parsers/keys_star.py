"""Key ``*`` (keyhandler.c run_all_keyhandlers): every diagnostic handler, one after another.

Xen prints ``'*' pressed -> firing all diagnostic keyhandlers`` and then, before each
handler, ``[<key>: <description>]``. The dump is split at those lines and each section is
handed, as its own raw bytes, to that key's parser (or counted as unparsed when the key has
none), so a ``*`` dump gives the same structure as pressing each key alone.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from solcap.xen.parsers.common import Result, finish, note_shape, parse_other, rx, start
from solcap.xen.parsers.text import split_lines

HEADER = rx(r"'.' pressed -> firing all diagnostic keyhandlers")
SECTION = rx(r"\[(.): (.*)\]")
_COUNTS = ("total", "parsed", "unparsed", "foreign", "blank", "spliced")


def _xen_body(raw: bytes) -> str | None:
    xen = split_lines(raw).xen
    return xen[0] if xen else None


def parse_star(data: bytes, parsers: Mapping[str, Callable[[bytes], Result]]) -> Result:
    """``sections``: ``[{key, description, result}]`` in dump order, ``result`` being that
    key's own parse of its section (for keys without a parser: everything ``unparsed``).
    The top-level ``unparsed``/``foreign`` hold only what came before the first section;
    ``lines`` sums the whole dump, sections included; ``truncated`` is any section's."""
    physical = data.split(b"\n")
    tail = physical.pop()
    chunks = [p + b"\n" for p in physical] + ([tail] if tail else [])
    preamble: list[bytes] = []
    sections: list[dict[str, Any]] = []
    bodies: list[list[bytes]] = []
    header = False
    for chunk in chunks:
        body = _xen_body(chunk)
        m = SECTION.fullmatch(body) if body is not None else None
        if body is not None and HEADER.fullmatch(body) and not sections:
            header = True
            preamble.append(chunk)
        elif m:
            sections.append({"key": m.group(1), "description": m.group(2), "result": None})
            bodies.append([])
        elif sections:
            bodies[-1].append(chunk)
        else:
            preamble.append(chunk)
    result, lines = start("*", b"".join(preamble))
    result["unparsed"] = [u for u in lines.xen if not HEADER.fullmatch(u)]
    finish(result, lines)
    total = result["lines"]
    total["total"] += len(sections)
    total["parsed"] += len(sections)
    truncated = bool(result["truncated"])
    for sec, body_chunks in zip(sections, bodies, strict=True):
        raw = b"".join(body_chunks)
        parser = parsers.get(sec["key"])
        sub = parser(raw) if parser is not None else parse_other(sec["key"], raw)
        sec["result"] = sub
        for name in _COUNTS:
            total[name] += sub["lines"][name]
        truncated = truncated or bool(sub["truncated"])
        for variant in sub["shape"]["console"]:
            if variant not in result["shape"]["console"]:
                result["shape"]["console"].append(variant)
        note_shape(result, xen=sub["shape"]["xen"], arch=sub["shape"]["arch"])
    result["shape"]["console"].sort()
    result["header"] = header
    result["sections"] = sections
    result["truncated"] = truncated
    return result
