"""Reading recordings back: what ``solcap show``, ``replay`` and ``export`` work from.

A recording whose ``meta.json`` still says ``finished: false`` was not closed by solcap (it was
killed, or the machine died); its ``console.raw`` is still valid up to the last fsync, and this
module reports it as unfinished instead of trusting the stale byte counts.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from solcap import limits
from solcap.errors import ConfigError, UsageError


@dataclass(frozen=True)
class RecordingInfo:
    path: Path
    meta: dict[str, Any]
    raw_bytes: int
    raw_sha256: str

    @property
    def finished(self) -> bool:
        return bool(self.meta.get("finished"))

    @property
    def intact(self) -> bool:
        """For a finished recording: console.raw still hashes to what meta.json says."""
        return self.raw_sha256 == self.meta.get("console_raw_sha256")

    def segment(self, name: str) -> dict[str, Any]:
        for segment in self.meta.get("segments", []):
            if segment.get("name") == name or (name == "*" and segment.get("name") == "star"):
                return dict(segment)
        names = ", ".join(s.get("name", "?") for s in self.meta.get("segments", [])) or "none"
        raise UsageError(f"{self.path}: no segment for key {name!r} (recorded: {names})")


def load(path: Path | str) -> RecordingInfo:
    """Open a recording directory and check it against its own metadata."""
    root = Path(path)
    raw = root / "console.raw"
    meta_path = root / "meta.json"
    if not raw.is_file():
        raise UsageError(f"{root}: not a solcap recording (no console.raw)")
    meta = _load_meta(meta_path) if meta_path.exists() else {"finished": False}
    digest = hashlib.sha256()
    size = 0
    with open(raw, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
            size += len(block)
    return RecordingInfo(root, meta, size, digest.hexdigest())


#: What ``show`` and ``export`` read from each segment entry of meta.json, and its type.
_SEGMENT_FIELDS: dict[str, tuple[type, str]] = {
    "name": (str, "a string"),
    "start": (int, "an integer"),
    "end": (int, "an integer"),
    "sha256": (str, "a string"),
    "file": (str, "a string"),
}


def _load_meta(path: Path) -> dict[str, Any]:
    """meta.json, size-capped and checked for the shape solcap writes: a mapping whose
    ``segments`` is a list of mappings with a name, offsets, a digest and a file name."""
    shown = str(path)
    data = limits.read_bytes(path, "meta")
    try:
        meta = json.loads(limits.decode_utf8(data, shown))
    except json.JSONDecodeError as exc:
        raise ConfigError(shown, f"not valid JSON: {exc.msg}", line=exc.lineno) from exc
    except RecursionError:
        raise ConfigError(shown, f"nested more than {limits.MAX_DEPTH} levels deep") from None
    if not isinstance(meta, dict):
        raise ConfigError(shown, f"expected a JSON object, got {type(meta).__name__}")
    limits.check_depth(meta, shown)
    segments = meta.get("segments", [])
    if not isinstance(segments, list):
        raise ConfigError(shown, "expected a list", field="segments")
    for index, segment in enumerate(segments):
        where = f"segments[{index}]"
        if not isinstance(segment, dict):
            raise ConfigError(shown, "expected an object", field=where)
        for name, (kind, shown_kind) in _SEGMENT_FIELDS.items():
            value = segment.get(name)
            if not isinstance(value, kind) or isinstance(value, bool):
                raise ConfigError(shown, f"missing or not {shown_kind}", field=f"{where}.{name}")
    return meta


def timing_steps(path: Path) -> Iterator[tuple[float, int]]:
    """(delay, byte count) pairs of the ``O`` entries in ``console.timing``."""
    with open(path / "console.timing") as handle:
        for number, line in enumerate(handle, 1):
            parts = line.split()
            if len(parts) == 3 and parts[0] == "O":
                try:
                    yield float(parts[1]), int(parts[2])
                except ValueError:
                    raise ConfigError(
                        str(path / "console.timing"),
                        f"bad timing entry {line.strip()!r}",
                        line=number,
                    ) from None


def replay(
    info: RecordingInfo, out: BinaryIO, *, speed: float = 1.0, max_delay: float = 2.0
) -> int:
    """Write console.raw to ``out`` with its original rhythm; returns bytes written."""
    written = 0
    with open(info.path / "console.raw", "rb") as raw:
        for delay, count in timing_steps(info.path):
            pause = min(delay / speed, max_delay) if speed > 0 else 0.0
            if pause > 0:
                time.sleep(pause)
            chunk = raw.read(count)
            out.write(chunk)
            out.flush()
            written += len(chunk)
        rest = raw.read()  # bytes after the last timing entry (a killed capture)
        out.write(rest)
        out.flush()
        written += len(rest)
    return written


def export_asciicast(
    info: RecordingInfo, target: Path, *, width: int = 80, height: int = 24
) -> int:
    """Write an asciicast v2 file; returns the number of events.

    Lossy by nature: asciicast holds text, so bytes that are not UTF-8 become U+FFFD. The
    recording itself (console.raw) is never changed.
    """
    header = {
        "version": 2,
        "width": width,
        "height": height,
        "title": f"{info.meta.get('host', '?')} {info.meta.get('label', '')}".strip(),
        "env": {"TERM": "vt100"},
    }
    events = 0
    clock = 0.0
    if target.is_dir():
        raise UsageError(f"--asciicast {target}: is a directory; name a file to write")
    try:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    except OSError as exc:
        raise UsageError(f"--asciicast {target}: cannot write: {exc.strerror}") from None
    with os.fdopen(fd, "w", encoding="utf-8") as out, open(info.path / "console.raw", "rb") as raw:
        out.write(json.dumps(header) + "\n")
        pending = b""
        for delay, count in timing_steps(info.path):
            clock += delay
            data = pending + raw.read(count)
            # Keep an incomplete UTF-8 sequence for the next event instead of mangling it.
            cut = _utf8_boundary(data)
            pending = data[cut:]
            text = data[:cut].decode("utf-8", "replace")
            if text:
                out.write(json.dumps([round(clock, 6), "o", text]) + "\n")
                events += 1
        tail = pending + raw.read()
        if tail:
            out.write(json.dumps([round(clock, 6), "o", tail.decode("utf-8", "replace")]) + "\n")
            events += 1
    return events


def _utf8_boundary(data: bytes) -> int:
    """Index before a trailing, possibly incomplete UTF-8 sequence (at most 3 bytes back)."""
    for back in range(1, min(4, len(data)) + 1):
        byte = data[-back]
        if byte & 0xC0 == 0x80:
            continue  # continuation byte: keep looking for the lead byte
        if byte & 0x80 == 0:
            return len(data)
        need = 2 if byte & 0xE0 == 0xC0 else 3 if byte & 0xF0 == 0xE0 else 4
        return len(data) - back if back < need else len(data)
    return len(data)
