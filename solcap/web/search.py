"""Search across recordings: a regular expression over the exact bytes of every console.raw.

The human logs lose escape sequences and split long lines; ``console.raw`` is the truth, so the
pattern runs over it (memory-mapped: a multi-GiB capture is not read into memory). Each hit says
its host, recording, byte offset and the time its byte arrived (from console.timing), with a
little context. Python's ``re`` cannot be interrupted, so the pattern's length and the number of
hits are bounded and the search runs in a worker thread: a slow pattern delays only its own
answer, never a live console.
"""

from __future__ import annotations

import datetime as dt
import mmap
import re
from dataclasses import dataclass

from solcap.capture import recordings
from solcap.errors import SolcapError, UsageError
from solcap.web.catalog import Catalog, Clock, Entry

#: The longest pattern accepted (a pathological one is the only way to stall a search).
MAX_PATTERN = 512
#: Hits returned in all; the page says when there were more.
MAX_HITS = 500
#: Bytes of context either side of a hit.
CONTEXT = 60


@dataclass(frozen=True)
class Hit:
    host: str
    recording: str
    offset: int
    seconds: float  # since the recording started
    when: str  # UTC time of the byte, when the recording's start is known
    before: bytes
    match: bytes
    after: bytes


def compile_pattern(text: str) -> re.Pattern[bytes]:
    """The user's pattern as a bytes regex; UsageError (shown on the page) if it is not one."""
    if not text:
        raise UsageError("an empty pattern matches everywhere; type something to look for")
    if len(text) > MAX_PATTERN:
        raise UsageError(f"pattern longer than {MAX_PATTERN} characters")
    try:
        return re.compile(text.encode("utf-8", "surrogateescape"))
    except re.error as exc:
        raise UsageError(f"not a valid regular expression: {exc}") from None


def _absolute(started: str, seconds: float) -> str:
    try:
        base = dt.datetime.fromisoformat(started.replace("Z", "+00:00"))
    except ValueError:
        return ""
    when = base + dt.timedelta(seconds=seconds)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def _search_one(entry: Entry, pattern: re.Pattern[bytes], limit: int) -> list[Hit]:
    try:
        handle = recordings.open_inside(entry.path, "console.raw")
    except (OSError, SolcapError):
        return []
    hits: list[Hit] = []
    with handle:
        size = entry.raw_bytes
        if size == 0:
            return []
        with mmap.mmap(handle.fileno(), size, access=mmap.ACCESS_READ) as data:
            clock: Clock | None = None
            for match in pattern.finditer(data):
                if len(hits) >= limit:
                    break
                if clock is None:
                    clock = Clock.of(entry)
                start, end = match.span()
                seconds = clock.seconds_at(start)
                hits.append(
                    Hit(
                        host=entry.host,
                        recording=entry.name,
                        offset=start,
                        seconds=seconds,
                        when=_absolute(entry.started, seconds),
                        before=bytes(data[max(0, start - CONTEXT) : start]),
                        match=bytes(data[start : min(end, start + 4 * CONTEXT)]),
                        after=bytes(data[end : end + CONTEXT]),
                    )
                )
                if end == start and end >= size:
                    break
    return hits


def search(
    catalog: Catalog, pattern: re.Pattern[bytes], *, host: str | None = None
) -> tuple[list[Hit], bool]:
    """Hits in every recording (or one host's), newest recordings first, and whether more were
    left off after :data:`MAX_HITS`."""
    entries = catalog.entries(host) if host else catalog.all_entries()
    hits: list[Hit] = []
    for entry in entries:
        found = _search_one(entry, pattern, MAX_HITS + 1 - len(hits))
        hits.extend(found)
        if len(hits) > MAX_HITS:
            return hits[:MAX_HITS], True
    return hits, False
