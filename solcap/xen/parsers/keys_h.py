"""Key ``h``: which debug keys this hypervisor has handlers for (keyhandler.c show_handlers)."""

from __future__ import annotations

from solcap.xen.parsers.common import Result, finish, rx, start

_HEADER = rx(r"'.' pressed -> showing installed handlers")
# " key '%c' (ascii '%02x') => %s" — the char is ' ' for non-printables, so the hex is the key.
_ENTRY = rx(r" key '.' \(ascii '([0-9a-f]{2})'\) => (.*)")


def parse_h(data: bytes) -> Result:
    """``handlers``: ``{character: description}`` keyed by the real character (from the
    ascii hex, so non-printable keys do not collide); ``header``: the opening line was seen."""
    result, lines = start("h", data)
    handlers: dict[str, str] = {}
    header = False
    for line in lines.xen:
        if _HEADER.fullmatch(line):
            header = True
        elif m := _ENTRY.fullmatch(line):
            handlers[chr(int(m.group(1), 16))] = m.group(2)
        else:
            result["unparsed"].append(line)
    result["header"] = header
    result["handlers"] = handlers
    return finish(result, lines)
