"""The recordings under one root, as the web view lists and opens them.

The layout is ``ROOT/<host>/<stamp>_<label>/`` (docs/recordings.md). A browser names a host and
a recording in the URL, so both are checked to be plain names (:func:`recordings.outside_reason`)
and real directories, never symbolic links, before anything under them is opened; files inside
are read with :func:`recordings.open_inside`, which refuses links and non-regular files too.
Reading is the whole job: nothing here writes to a recording.
"""

from __future__ import annotations

import bisect
import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from solcap.capture import recordings
from solcap.config import limits
from solcap.errors import SolcapError, UsageError

#: The most events one page shows (a flapping BMC can log many thousands).
MAX_EVENTS = 5000
#: events.jsonl larger than this is read only this far.
EVENTS_CAP = 16 << 20


class NotFound(Exception):
    """No such host or recording (or a name that could leave the root): the web says 404."""


@dataclass(frozen=True)
class Entry:
    """One recording as listed: its directory and what its meta.json says at a glance."""

    host: str
    name: str
    path: Path
    meta: dict[str, Any]
    raw_bytes: int

    @property
    def label(self) -> str:
        return str(self.meta.get("label", self.name.partition("_")[2]))

    @property
    def started(self) -> str:
        return str(self.meta.get("started") or "")


def _plain_dir(parent: Path, name: str) -> Path:
    if recordings.outside_reason(name) is not None or "/" in name:
        raise NotFound(name)
    path = parent / name
    try:
        info = os.lstat(path)
    except OSError:
        raise NotFound(name) from None
    if not stat.S_ISDIR(info.st_mode):
        raise NotFound(name)  # a symlink, a file: not a directory of this root
    return path


class Catalog:
    """Recordings under ``root``; every lookup re-reads the disk (captures keep adding)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def hosts(self) -> list[str]:
        try:
            names = sorted(os.listdir(self.root))
        except OSError:
            return []
        found = []
        for name in names:
            try:
                _plain_dir(self.root, name)
            except NotFound:
                continue
            found.append(name)
        return found

    def entries(self, host: str) -> list[Entry]:
        """The host's recordings, newest first."""
        host_dir = _plain_dir(self.root, host)
        result = []
        for name in sorted(os.listdir(host_dir), reverse=True):
            try:
                result.append(self.entry(host, name))
            except NotFound:
                continue
        return result

    def entry(self, host: str, name: str) -> Entry:
        path = _plain_dir(_plain_dir(self.root, host), name)
        try:
            with recordings.open_inside(path, "console.raw") as raw:
                size = os.fstat(raw.fileno()).st_size
        except (OSError, SolcapError):
            raise NotFound(name) from None
        meta: dict[str, Any] = {}
        try:
            loaded = json.loads(
                recordings._read_inside(path, "meta.json", limits.FILE_CAPS["meta"])
            )
            if isinstance(loaded, dict):
                meta = loaded
        except (ValueError, RecursionError, SolcapError):
            meta = {}
        return Entry(host, name, path, meta, size)

    def info(self, host: str, name: str) -> recordings.RecordingInfo:
        """The full check (hash against meta.json) that ``solcap show`` does."""
        return recordings.load(self.entry(host, name).path)

    def all_entries(self) -> list[Entry]:
        return [entry for host in self.hosts() for entry in self.entries(host)]


def events(entry: Entry) -> tuple[list[dict[str, Any]], bool]:
    """The recording's events (at most :data:`MAX_EVENTS`) and whether some were left off."""
    try:
        with recordings.open_inside(entry.path, "events.jsonl") as handle:
            data = handle.read(EVENTS_CAP)
    except (OSError, UsageError):
        return [], False
    found: list[dict[str, Any]] = []
    more = False
    for line in data.splitlines():
        try:
            item = json.loads(line)
        except (ValueError, RecursionError):  # RecursionError: a line nested thousands deep
            continue  # a line cut by a kill mid-write: the rest are still worth showing
        if isinstance(item, dict):
            if len(found) >= MAX_EVENTS:
                more = True
                break
            found.append(item)
    return found, more


@dataclass(frozen=True)
class Clock:
    """Maps a byte offset of console.raw to seconds since the recording started."""

    ends: list[int]
    times: list[float]
    #: (delay, count) pairs exactly as console.timing has them, for the replay page.
    steps: list[tuple[float, int]]

    @classmethod
    def of(cls, entry: Entry) -> Clock:
        ends: list[int] = []
        times: list[float] = []
        steps: list[tuple[float, int]] = []
        total = 0
        clock = 0.0
        try:
            for delay, count in recordings.timing_steps(entry.path):
                steps.append((delay, count))
                clock += delay
                total += count
                ends.append(total)
                times.append(clock)
        except SolcapError:
            pass  # no or bad timing: offsets still work, times read as 0
        return cls(ends, times, steps)

    def seconds_at(self, offset: int) -> float:
        """When the byte at ``offset`` arrived (the time of the chunk holding it)."""
        index = bisect.bisect_right(self.ends, offset)
        if index < len(self.times):
            return self.times[index]
        return self.times[-1] if self.times else 0.0
