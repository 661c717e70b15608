"""Keys ``a`` (common/timer.c dump_timerq), ``H`` (common/page_alloc.c dump_heap) and ``g``
(common/grant_table.c gnttab_usage_print_all)."""

from __future__ import annotations

import re
from typing import Any

from solcap.xen.parsers.common import Result, finish, note_shape, rx, start, to_int

_R = rx

# ----------------------------------------------------------------------------- a
A_HEADER = _R(r"Dumping timer queues:(?: NOW=0x([0-9A-Fa-f]+))?")
A_CPU = _R(r"CPU(\d+):")
# "  ex=%12"PRId64"us timer=%p cb=%ps(%p)"; 4.8 printed "ex=%8ldus".
A_TIMER = _R(r" +ex= *(-?\d+)us timer=([0-9a-f]+) cb=(.*)\(([0-9a-f]+)\)")


def parse_a(data: bytes) -> Result:
    """``cpus``: ``[{cpu, timers: [{expires_us (from now; negative = overdue), timer,
    callback, data}]}]``. The dump has no end marker; ``truncated`` only reports a cut
    line."""
    result, lines = start("a", data)
    cpus: list[dict[str, Any]] = []
    header = False
    for line in lines.xen:
        m: re.Match[str] | None
        if m := A_HEADER.fullmatch(line):
            header = True
            if m.group(1):
                note_shape(result, "now-hex", xen="<=4.1")
        elif m := A_CPU.fullmatch(line):
            cpus.append({"cpu": int(m.group(1)), "timers": []})
        elif cpus and (m := A_TIMER.fullmatch(line)):
            cpus[-1]["timers"].append(
                {
                    "expires_us": int(m.group(1)),
                    "timer": m.group(2),
                    "callback": m.group(3),
                    "data": m.group(4),
                }
            )
        else:
            result["unparsed"].append(line)
    result["header"] = header
    result["cpus"] = cpus
    return finish(result, lines)


# ----------------------------------------------------------------------------- H
H_HEADER = _R(
    r"'.' pressed -> dumping heap info \((?:now = (-?\d+)|now-0x([0-9A-F]+):([0-9A-F]+))\)"
)
H_ZONE = _R(r"heap\[node=(\d+)\]\[zone=(\d+)\] -> (\d+) pages")
H_SCRUB = _R(r"Node (\d+) has (\d+) unscrubbed pages")


def parse_H(data: bytes) -> Result:
    """``now`` (ns), ``zones``: ``[{node, zone, pages}]`` (free pages per zone), ``nodes``:
    ``{"<node>": free pages}``, ``unscrubbed``: ``{"<node>": pages}``."""
    result, lines = start("H", data)
    now: int | None = None
    zones: list[dict[str, int]] = []
    unscrubbed: dict[str, int] = {}
    for line in lines.xen:
        m: re.Match[str] | None
        if m := H_HEADER.fullmatch(line):
            if m.group(1) is not None:
                now = int(m.group(1))
            else:
                now = (int(m.group(2), 16) << 32) | int(m.group(3), 16)
                note_shape(result, "now-hex", xen="<=4.5")
        elif m := H_ZONE.fullmatch(line):
            node, zone, pages = (int(g) for g in m.groups())
            zones.append({"node": node, "zone": zone, "pages": pages})
        elif m := H_SCRUB.fullmatch(line):
            unscrubbed[m.group(1)] = int(m.group(2))
        else:
            result["unparsed"].append(line)
    nodes: dict[str, int] = {}
    for z in zones:
        nodes[str(z["node"])] = nodes.get(str(z["node"]), 0) + z["pages"]
    result.update(now=now, zones=zones, nodes=nodes, unscrubbed=unscrubbed)
    return finish(result, lines)


# ----------------------------------------------------------------------------- g
G_BEGIN = _R(r"gnttab_usage_print_all \[ key '.' pressed")
G_END = _R(r"gnttab_usage_print_all \] done")
G_COLS1 = _R(r" *-+ active -+ +-+ shared -+")
G_COLS2 = _R(r"\[ref\] localdom mfn +pin +localdom gmfn +flags")
G_REMOTE = _R(r"grant-table for remote (?:d|domain: *)(\d+) \(v(\d+)\)")
G_FRAMES = _R(r" +(\d+) frames \((\d+) max\), (\d+) maptrack frames(?: \((\d+) max\))?")
G_NONE = "no active grant table entries"
# "[0x%03x]  %5d 0x%"PRI_mfn" 0x%08x      %5d 0x%06"PRIx64" 0x%02x" (4.8: "[%4x]")
G_ENTRY = _R(
    r"\[(?:0x)? *([0-9a-f]+)\] +(-?\d+) 0x([0-9a-f]+) 0x([0-9a-f]+) +(-?\d+) "
    r"0x([0-9a-f]+) 0x([0-9a-f]+)"
)


def parse_g(data: bytes) -> Result:
    """``tables``: ``[{domid, version, frames, max_frames, maptrack_frames,
    max_maptrack_frames, entries: [{ref, active_domid, mfn, pin, shared_domid, gmfn,
    flags}], none_active}]``. ``truncated`` also when the ``] done`` line never came."""
    result, lines = start("g", data)
    tables: list[dict[str, Any]] = []
    done = False
    for line in lines.xen:
        m: re.Match[str] | None
        if G_BEGIN.fullmatch(line) or G_COLS1.fullmatch(line) or G_COLS2.fullmatch(line):
            continue
        if G_END.fullmatch(line):
            done = True
        elif m := G_REMOTE.fullmatch(line):
            tables.append(
                {
                    "domid": int(m.group(1)),
                    "version": int(m.group(2)),
                    "frames": None,
                    "max_frames": None,
                    "maptrack_frames": None,
                    "max_maptrack_frames": None,
                    "entries": [],
                    "none_active": False,
                }
            )
            if "domain:" in line:
                note_shape(result, "remote-domain-colon", xen="<=4.8")
        elif tables and (m := G_FRAMES.fullmatch(line)):
            t = tables[-1]
            t["frames"], t["max_frames"], t["maptrack_frames"] = (int(g) for g in m.groups()[:3])
            t["max_maptrack_frames"] = to_int(m.group(4))
        elif tables and line == G_NONE:
            tables[-1]["none_active"] = True
        elif tables and (m := G_ENTRY.fullmatch(line)):
            tables[-1]["entries"].append(
                {
                    "ref": int(m.group(1), 16),
                    "active_domid": int(m.group(2)),
                    "mfn": m.group(3),
                    "pin": int(m.group(4), 16),
                    "shared_domid": int(m.group(5)),
                    "gmfn": m.group(6),
                    "flags": int(m.group(7), 16),
                }
            )
        else:
            result["unparsed"].append(line)
    result["tables"] = tables
    result["done"] = done
    if not done:
        result["truncated"] = True
    return finish(result, lines)
