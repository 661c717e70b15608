"""Reading recordings back: what ``solcap show``, ``replay`` and ``export`` work from.

A recording whose ``meta.json`` still says ``finished: false`` was not closed by solcap (it was
killed, or the machine died); its ``console.raw`` is still valid up to the last fsync, and this
module reports it as unfinished instead of trusting the stale byte counts.

Recordings are read as found (copied from a colleague, unpacked from a ticket), often as root,
so every file is opened inside the recording directory only (:func:`open_inside`): a segment
``file`` in meta.json must be a plain relative name (``keys/q.txt``; no ``..``, no absolute
path), no component is followed if it is a symlink, and only regular files are read (a FIFO
in place of ``console.raw`` would block forever, a device would never end).
"""

from __future__ import annotations

import errno
import hashlib
import io
import json
import os
import re
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from solcap.config import limits
from solcap.errors import ConfigError, UsageError

_PART = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*")
_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def outside_reason(relative: str) -> str | None:
    """Why ``relative`` could name something outside a recording, or None for a plain
    ``name`` / ``dir/name`` of ordinary characters."""
    if not relative:
        return "an empty file name"
    if relative.startswith("/"):
        return f"{relative!r} is an absolute path"
    if not all(_PART.fullmatch(part) for part in relative.split("/")):
        return f"{relative!r} is not a plain file name inside the recording"
    return None


def _is_link(dir_fd: int, name: str) -> bool:
    try:
        return stat.S_ISLNK(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
    except OSError:
        return False


def open_inside(root: Path, relative: str) -> BinaryIO:
    """Open ``root/relative`` for reading without leaving ``root``.

    ``root`` itself is the user's choice and may be reached through symlinks; below it each
    component is opened relative to its parent's descriptor with ``O_NOFOLLOW``. Raises
    FileNotFoundError when the file is simply absent (callers decide what that means) and
    UsageError for anything that is not a regular file inside.
    """
    reason = outside_reason(relative)
    if reason is not None:
        raise UsageError(f"{root}: {reason}")
    if "\0" in str(root) or "\0" in relative:
        # os.open would raise ValueError: a path no file can have is one line, not a bug.
        raise UsageError(f"{str(root)!r}: a file name cannot contain a NUL byte")
    parts = relative.split("/")
    shown = root / relative
    try:
        dir_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise UsageError(f"{root}: not a recording directory ({exc.strerror})") from None
    try:
        for part in parts[:-1]:
            try:
                child = os.open(part, _DIR, dir_fd=dir_fd)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR) and _is_link(dir_fd, part):
                    raise UsageError(
                        f"{shown}: {part} is a symbolic link; solcap reads only files inside "
                        "the recording"
                    ) from None
                raise
            os.close(dir_fd)
            dir_fd = child
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
        try:
            fd = os.open(parts[-1], flags, dir_fd=dir_fd)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise UsageError(
                    f"{shown}: is a symbolic link; solcap reads only files inside the recording"
                ) from None
            raise
    finally:
        os.close(dir_fd)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise UsageError(f"{shown}: not a regular file")
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


def _read_inside(root: Path, relative: str, cap: int) -> bytes:
    try:
        with open_inside(root, relative) as handle:
            data = handle.read(cap + 1)
    except FileNotFoundError:
        raise UsageError(f"{root / relative}: no such file in the recording") from None
    except OSError as exc:
        raise UsageError(f"{root / relative}: cannot read: {exc.strerror or exc}") from None
    if len(data) > cap:
        raise UsageError(f"{root / relative}: larger than {cap} bytes")
    return data


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
        """The segment called ``name``: ``q`` is the first dump of q, ``q-2`` the second
        (``*`` and ``*-2`` stand for ``star`` and ``star-2``)."""
        wanted = "star" + name[1:] if name.startswith("*") else name
        for segment in self.meta.get("segments", []):
            if segment.get("name") == wanted:
                return dict(segment)
        names = ", ".join(s.get("name", "?") for s in self.meta.get("segments", [])) or "none"
        raise UsageError(f"{self.path}: no segment for key {name!r} (recorded: {names})")

    def open(self, relative: str) -> BinaryIO:
        """A file of this recording, never one outside it (see :func:`open_inside`)."""
        return open_inside(self.path, relative)

    def read(self, relative: str, cap: int = 1 << 30) -> bytes:
        """All of a file of this recording (at most ``cap`` bytes), never one outside it."""
        return _read_inside(self.path, relative, cap)

    def has(self, relative: str) -> bool:
        """True if ``relative`` is a regular file inside the recording."""
        try:
            with self.open(relative):
                return True
        except (OSError, UsageError):
            return False


def load(path: Path | str) -> RecordingInfo:
    """Open a recording directory and check it against its own metadata."""
    root = Path(path)
    meta_path = root / "meta.json"
    digest = hashlib.sha256()
    size = 0
    try:
        handle = open_inside(root, "console.raw")
    except FileNotFoundError:
        raise UsageError(f"{root}: not a solcap recording (no console.raw)") from None
    except OSError as exc:
        raise UsageError(f"{root}: cannot read console.raw: {exc.strerror or exc}") from None
    with handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
            size += len(block)
    if os.path.lexists(meta_path):
        meta = _load_meta(meta_path, _read_inside(root, "meta.json", limits.FILE_CAPS["meta"]))
    else:
        meta = {"finished": False}
    return RecordingInfo(root, meta, size, digest.hexdigest())


#: What ``show`` and ``export`` read from each segment entry of meta.json, and its type.
_SEGMENT_FIELDS: dict[str, tuple[type, str]] = {
    "name": (str, "a string"),
    "start": (int, "an integer"),
    "end": (int, "an integer"),
    "sha256": (str, "a string"),
    "file": (str, "a string"),
}


def _load_meta(path: Path, data: bytes) -> dict[str, Any]:
    """meta.json, size-capped and checked for the shape solcap writes: a mapping whose
    ``segments`` is a list of mappings with a name, offsets, a digest and a file name."""
    shown = str(path)
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
        reason = outside_reason(segment["file"])
        if reason is not None:
            raise ConfigError(shown, f"{reason}; refusing to read it", field=f"{where}.file")
    return meta


def timing_steps(path: Path) -> Iterator[tuple[float, int]]:
    """(delay, byte count) pairs of the ``O`` entries in ``console.timing``."""
    try:
        raw = open_inside(path, "console.timing")
    except OSError as exc:
        raise UsageError(f"{path / 'console.timing'}: cannot read: {exc.strerror or exc}") from None
    with io.TextIOWrapper(raw, encoding="utf-8", errors="replace") as handle:
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
    steps = list(timing_steps(info.path))  # refused before a byte is written, if it must be
    with info.open("console.raw") as raw:
        for delay, count in steps:
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
    steps = list(timing_steps(info.path))
    raw = info.open("console.raw")  # both checked before the output file exists
    try:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    except OSError as exc:
        raw.close()
        raise UsageError(f"--asciicast {target}: cannot write: {exc.strerror}") from None
    with os.fdopen(fd, "w", encoding="utf-8") as out, raw:
        out.write(json.dumps(header) + "\n")
        pending = b""
        for delay, count in steps:
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
