"""Xen's boot log (the serial capture from power-on, or ``xl dmesg``): the facts a harvest
needs to know which Xen it is talking to, before any debug key is pressed.

Recognised: ``Xen version …``, ``Latest ChangeSet``, ``build-id``, ``Bootloader``, ``Command
line``, the firmware memory map in both of its shapes, arm's ``RAM:`` banks, ``Using
scheduler``, ``Brought up N CPUs`` and the input-switch banners. Everything else is counted in
``unparsed`` (a boot log is long; it is reported, not modelled).

The memory map changed shape (x86 e820.c print_e820_memory_map): ``0000000000000000 -
000000000009fc00 (usable)`` with an exclusive end (seen up to 4.12.1 in the field corpus) and
later `` [0000000000000000, 000000000009fbff] (usable)`` with an inclusive end (seen from
4.14.5; the change landed in 4.13 or 4.14). Both give ``{start, end}`` with ``end``
inclusive, and the shape says which form was read.
"""

from __future__ import annotations

import re
from typing import Any

from solcap.xen.parsers.common import Result, finish, note_shape, rx, start

_R = rx
VERSION = _R(r"Xen version (\S+) \((.*?)\) \((.*)\) debug=([yn]).*")
CHANGESET = _R(r"Latest ChangeSet: ?(.*)")
BUILD_ID = _R(r"build-id: ([0-9a-f]+)")
BOOTLOADER = _R(r"Bootloader: (.*)")
CMDLINE = _R(r"Command line: ?(.*)")
MAP_HDR = _R(r"(Xen-e820|EFI|Multiboot-e820|BIOS-e820|Initial Xen-e820) RAM map:")
MAP_DASH = _R(r" *([0-9a-f]{16}) - ([0-9a-f]{16}) \((.+)\)")
MAP_BRACKET = _R(r" *\[([0-9a-f]{16}), ([0-9a-f]{16})\] \((.+)\)")
ARM_RAM = _R(r"RAM: ([0-9a-f]{16}) - ([0-9a-f]{16})")
SCHED = _R(r"Using scheduler: (.*) \((\S+)\)")
CPUS = _R(r"Brought up (\d+) CPUs")


def parse_boot(data: bytes) -> Result:
    """``xen`` (``{version, built_by, compiler, debug}``), ``changeset``, ``build_id``,
    ``bootloader``, ``command_line``, ``memory_maps`` (``[{source, format: dash|bracket,
    entries: [{start, end, type}]}]``, addresses as hex strings, ``end`` inclusive),
    ``ram_banks`` (arm: ``[{start, end}]``), ``scheduler`` (``{name, opt_name}``),
    ``cpus_brought_up``, plus the common fields (``console_switches`` included)."""
    result, lines = start("boot", data)
    out: dict[str, Any] = {
        "xen": None,
        "changeset": None,
        "build_id": None,
        "bootloader": None,
        "command_line": None,
        "memory_maps": [],
        "ram_banks": [],
        "scheduler": None,
        "cpus_brought_up": None,
    }
    current: dict[str, Any] | None = None
    for line in lines.xen:
        m: re.Match[str] | None
        if m := VERSION.fullmatch(line):
            out["xen"] = {
                "version": m.group(1),
                "built_by": m.group(2),
                "compiler": m.group(3),
                "debug": m.group(4) == "y",
            }
            note_shape(result, xen=m.group(1))
            if "aarch64" in m.group(3):
                note_shape(result, arch="arm64")
            elif "x86_64" in m.group(3):
                note_shape(result, arch="x86_64")
        elif m := MAP_HDR.fullmatch(line):
            current = {"source": m.group(1), "format": None, "entries": []}
            out["memory_maps"].append(current)
            note_shape(result, arch="x86_64")
        elif current is not None and (m := MAP_DASH.fullmatch(line)):
            end = int(m.group(2), 16) - 1
            current["entries"].append(
                {"start": m.group(1), "end": f"{max(end, 0):016x}", "type": m.group(3)}
            )
            current["format"] = "dash"
            note_shape(result, "memory-map-dash", xen="<4.14")
        elif current is not None and (m := MAP_BRACKET.fullmatch(line)):
            current["entries"].append({"start": m.group(1), "end": m.group(2), "type": m.group(3)})
            current["format"] = "bracket"
            note_shape(result, "memory-map-bracket", xen=">=4.13")
        elif m := ARM_RAM.fullmatch(line):
            end = int(m.group(2), 16)
            out["ram_banks"].append({"start": m.group(1), "end": f"{end:016x}"})
            note_shape(result, "arm-ram-banks", arch="arm")
        else:
            current = None
            if m := CHANGESET.fullmatch(line):
                out["changeset"] = m.group(1) or None
            elif m := BUILD_ID.fullmatch(line):
                out["build_id"] = m.group(1)
            elif m := BOOTLOADER.fullmatch(line):
                out["bootloader"] = m.group(1)
            elif m := CMDLINE.fullmatch(line):
                out["command_line"] = m.group(1)
            elif m := SCHED.fullmatch(line):
                out["scheduler"] = {"name": m.group(1), "opt_name": m.group(2)}
            elif m := CPUS.fullmatch(line):
                out["cpus_brought_up"] = int(m.group(1))
            else:
                result["unparsed"].append(line)
    result.update(out)
    return finish(result, lines)
