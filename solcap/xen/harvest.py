"""Debug-key harvest: switch input to Xen, press each key, keep each dump as its own segment.

The recording must be the console's sink from the start, so a console offset is a
``console.raw`` offset and each segment is cut from exactly the bytes that arrived.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from solcap.capture.recording import Recording, Segment
from solcap.console.core import Console
from solcap.xen.console import XenConsole, dump_start_pattern, refuse_dangerous
from solcap.xen.parsers import parse_dump


@dataclass
class HarvestResult:
    """What a harvest produced: one segment per key, in the order pressed."""

    segments: list[Segment] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return all(segment.complete for segment in self.segments)


def harvest_keys(
    console: Console,
    recording: Recording,
    keys: Sequence[str],
    *,
    allow_dangerous: bool = False,
    quiet: float = 1.0,
    start_timeout: float = 10.0,
    restore_dom0: bool = True,
) -> HarvestResult:
    """Press ``keys`` on Xen's console and record each dump as ``keys/<key>.txt``.

    A key pressed again (``h,q,e,q``: to see state change) keeps its own file, ``keys/q-2.txt``,
    beside the first.

    Input is moved to Xen first (confirmed by Xen's banner) and handed back to Dom0 at the end,
    also when a key fails. Dangerous keys are refused before anything is sent.
    """
    refuse_dangerous(list(keys), allowed=allow_dangerous)
    xen = XenConsole(console, quiet=quiet, start_timeout=start_timeout)
    result = HarvestResult()
    console.settle(quiet, timeout=xen.dump_timeout)
    recording.event("switch-input", to="xen")
    xen.switch_input("xen")
    try:
        recording.event("keys", keys="".join(keys))
        for dump in xen.debug_keys(list(keys), allow_dangerous=allow_dangerous):
            name = "star" if dump.key == "*" else dump.key
            data = recording.read_range(dump.start, dump.end)
            reason = dump.reason
            if dump.complete and not dump_start_pattern(dump.key).search(data[:4096]):
                reason = "first line not the one this key prints"
            segment = recording.add_segment(
                name, dump.start, dump.end, complete=dump.complete, reason=reason
            )
            result.segments.append(segment)
            parsed = parse_dump(dump.key, data)
            if parsed is not None:
                recording.add_json(segment.json_file, parsed)
    finally:
        if restore_dom0:
            recording.event("switch-input", to="dom0")
            xen.switch_input("dom0")
    return result
