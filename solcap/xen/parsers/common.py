"""Shared pieces of the debug-key parsers: the result skeleton and small field parsers.

Every parser returns a plain JSON-ready ``dict`` (str keys; str/int/bool/None/list/dict
values) so results can be written beside the raw text without a custom encoder.
"""

from __future__ import annotations

import re
from typing import Any

from solcap.xen.parsers.text import Lines, split_lines

PARSER_VERSION = 2
"""Bumped whenever an output shape changes incompatibly (2: ``lines`` and ``shape``)."""

Result = dict[str, Any]


def rx(pattern: str) -> re.Pattern[str]:
    """Compile a line pattern with every ``\\d+`` bounded to 40 digits: Python refuses to
    convert decimal strings over 4300 digits (ValueError), and no Xen field is that long, so
    such a line simply does not match and lands in ``unparsed``."""
    return re.compile(pattern.replace(r"\d+", r"\d{1,40}"))


# console.c switch_serial_input: "*** Serial input -> Xen (type 'CTRL-a' three times to switch
# input to DOM0)" (4.8 and before; also seen wrapped after "to" in mail) and, later,
# "*** Serial input to Xen (type 'CTRL-a' three times to switch input)".
SWITCH = re.compile(
    r"\*\*\* Serial input (->|to) (Xen|DOM\d+|d\d+)"
    r"(?: \(type 'CTRL-(.)' three times to switch input(?: to(?: (\w+))?)?\)?\.?)?"
)
_KV = re.compile(r"([A-Za-z_][\w-]*)=(\{[^}]*\}|\S*)")


def start(key: str, data: bytes) -> tuple[Result, Lines]:
    """The fields every result has, and the segment split into lines.

    ``truncated`` starts as "the last Xen line was cut off"; parsers add their own evidence.
    ``foreign`` holds non-Xen text (Dom0 lines, fragments); ``unparsed`` Xen lines no rule
    matched, in order. ``shape`` says which Xen version and architecture the dump's format
    matched (``xen``: a release such as ``"4.17.7"`` when the dump names it, else a range
    such as ``">=4.13"``, or None; ``arch``: ``"x86_64"``, ``"arm64"``, ``"arm32"`` or None;
    ``formats``: the parser's format variants seen; ``console``: the console shapes from
    :mod:`.text`). Parsers call :func:`finish` last.
    """
    lines = split_lines(data)
    switches = _switches(lines)
    result: Result = {
        "key": key,
        "parser_version": PARSER_VERSION,
        "unparsed": [],
        "foreign": lines.foreign,
        "truncated": lines.partial_last,
        "timestamps": lines.timestamps > 0,
        "shape": {"xen": None, "arch": None, "formats": [], "console": []},
        "console_switches": switches,
    }
    for sw in switches:
        note_shape(result, "switch-arrow" if sw["form"] == "->" else "switch-to")
    return result, lines


def _switches(lines: Lines) -> list[dict[str, Any]]:
    """Take Xen's input-switch banners out of the Xen lines (they can land inside any dump:
    harvests switch input first) as ``{target, char, form, back_to}``; they count as parsed."""
    found: list[dict[str, Any]] = []
    kept: list[str] = []
    for line in lines.xen:
        m = SWITCH.fullmatch(line)
        if m is None:
            kept.append(line)
            continue
        found.append(
            {"target": m.group(2), "char": m.group(3), "form": m.group(1), "back_to": m.group(4)}
        )
    if found:
        lines.xen[:] = kept
        lines.switch_lines = len(found)
    return found


def finish(result: Result, lines: Lines) -> Result:
    """Add the line accounting and the console shapes; returns ``result``.

    ``lines``: ``total`` physical lines = ``parsed`` + ``unparsed`` Xen lines + ``foreign``
    (lines with no Xen part) + ``blank`` + ``spliced`` (the rest of a Xen line that Dom0 had
    interrupted, joined back). Nothing is dropped without being counted.
    """
    unparsed = len(result["unparsed"])
    result["lines"] = {
        "total": lines.physical,
        "parsed": len(lines.xen) + lines.switch_lines - unparsed,
        "unparsed": unparsed,
        "foreign": lines.foreign_lines,
        "blank": lines.blank,
        "spliced": lines.spliced,
    }
    result["shape"]["console"] = sorted(lines.variants)
    result["shape"]["formats"] = sorted(set(result["shape"]["formats"]))
    return result


def note_shape(
    result: Result, fmt: str | None = None, xen: str | None = None, arch: str | None = None
) -> None:
    """Record a format variant seen, and what it says of the Xen version/architecture.

    A release named by the dump itself (``4.17.7``) wins over a range implied by a format."""
    shape = result["shape"]
    if fmt:
        shape["formats"].append(fmt)
    if xen and (shape["xen"] is None or not shape["xen"][0].isdigit()):
        shape["xen"] = xen
    if arch and shape["arch"] is None:
        shape["arch"] = arch


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


def parse_other(key: str, data: bytes) -> Result:
    """The result for a key with no parser of its own (inside ``*``): every Xen line
    unparsed, still counted."""
    result, lines = start(key, data)
    result["unparsed"].extend(lines.xen)
    return finish(result, lines)
