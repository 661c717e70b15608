"""Recordings: every byte a console printed, on disk as it arrives, with timing and events.

A recording is a private directory ``<root>/<host>/<UTC stamp>_<label>/`` holding:

``console.raw``
    the exact bytes received, written as they arrive (one ``write`` per chunk, before anything
    else happens to it), fsync'ed at least once a second and at every segment end. This file
    is the truth; everything else is derived.
``console.timing``
    util-linux "advanced" timing (``O <delay> <bytes>`` lines), so
    ``scriptreplay -T console.timing -O console.raw`` replays the session.
``console.log``
    a human log: each line prefixed with the UTC time its first byte arrived, escape sequences
    removed, events shown conserver-style as ``[-- … --]``.
``events.jsonl``
    one JSON object per event (connect, segment start/end, keys sent, errors) with the byte
    offset into ``console.raw`` at which it happened.
``keys/<name>.txt``
    the bytes of each named segment (e.g. one debug-key dump), cut from ``console.raw``. A
    name used again in the same recording (``q`` pressed twice) gets ``-2``, ``-3``, … so
    every dump keeps its own file: ``keys/q.txt``, then ``keys/q-2.txt``.
``meta.json``
    host, tool version, start/end, byte counts, SHA-256 of each file and segment; written
    atomically when the recording closes.

The derived files (``console.timing``, ``console.log``, ``xen.log``, ``dom0.log``) are built
in memory and appended in batches: when ``FLUSH_BYTES`` are pending, at an event or a segment,
at close, and never later than ``FSYNC_INTERVAL`` after their bytes arrived (a process-wide
flusher thread sees to idle recordings). Their content is exactly what writing them chunk by
chunk would give; a killed process loses at most the last interval of them, never a byte of
``console.raw``. They are opened only for each batch, so an open recording holds three
descriptors (its directory, ``console.raw`` and ``events.jsonl``), not seven.

Directories are created 0700 and files 0600 without following symlinks: console output can
carry secrets, and a recording root shared with other users must not be redirected. The
recorder holds a descriptor of its recording directory and opens every file relative to it
(``dir_fd``, ``O_NOFOLLOW``), so a directory renamed and replaced by a symlink mid-recording
redirects nothing: writing goes on into the directory solcap created. A root or host
directory that another user can write to (group/other-writable, or owned by someone else) is
refused, unless it is sticky and owned by us or by root (``/tmp``-style: others cannot
rename what we created there).
"""

from __future__ import annotations

import atexit
import contextlib
import datetime as dt
import errno
import hashlib
import heapq
import itertools
import json
import logging
import os
import re
import stat
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from solcap import __version__
from solcap.capture.humanlog import HumanLog
from solcap.errors import RecordingError, UsageError

_log = logging.getLogger(__name__)

DEFAULT_ROOT = Path("recordings")
FSYNC_INTERVAL = 1.0
#: Derived bytes (timing, human logs) held in memory before a batch is written out.
FLUSH_BYTES = 64 * 1024
#: Derived bytes a file keeps for a retry after a failed write; beyond this they are dropped
#: (as they were when every chunk was written at once: derived files are best effort).
MAX_BACKLOG = 4 * 1024 * 1024
#: The derived files, in the order they are created and flushed.
DERIVED_FILES = ("console.timing", "console.log", "xen.log", "dom0.log")

_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def iso(t: dt.datetime) -> str:
    """UTC time with milliseconds, the one format solcap shows and stores."""
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def safe_name(text: str) -> str:
    """A host or label made safe as one path component (no separators, no leading dots)."""
    cleaned = _SAFE_NAME.sub("_", text).strip("._") or "unnamed"
    return cleaned[:80]


def check_root(root: Path | str | None) -> None:
    """Refuse, before any console is opened, a recordings root that could never be created.

    Catches ``--root`` naming a regular file, or a path under one, while nothing exists yet
    that a failed capture would have to clean up; permission problems still surface at mkdir.
    """
    path = Path(root) if root is not None else DEFAULT_ROOT
    for part in (path, *path.parents):
        if str(part) in ("", "."):
            return
        if part.is_dir():
            return
        if part.exists() or part.is_symlink():
            what = "a dangling symbolic link" if not part.exists() else "not a directory"
            raise UsageError(f"--root {path}: {part} is {what}")


_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
_APPEND_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_APPEND


def _check_not_shared(fd: int, path: Path) -> None:
    """Refuse a directory another user could rename our entries in.

    Group/other-writable, or owned by someone else (its owner can write to it), unless the
    sticky bit is set and it is ours or root's: then only we (and root) may rename or remove
    what we create in it.
    """
    info = os.fstat(fd)
    mine = info.st_uid in (os.geteuid(), 0)
    shared = bool(info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)) or not mine
    if shared and not (info.st_mode & stat.S_ISVTX and mine):
        owner = "" if mine else f", owned by uid {info.st_uid}"
        raise UsageError(
            f"{path}: directory is writable by other users (mode "
            f"{stat.S_IMODE(info.st_mode):04o}{owner}); they could redirect the recording. "
            "Use a private root (chmod 0700) or a sticky one of your own"
        )


def _is_link_at(dir_fd: int, name: str) -> bool:
    try:
        return stat.S_ISLNK(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
    except OSError:
        return False


def _open_subdir(parent_fd: int, name: str, path: Path, *, create: bool) -> int:
    """``mkdirat`` + ``openat(O_NOFOLLOW)``: a directory entry of ours, never a symlink."""
    if create:
        with contextlib.suppress(FileExistsError):
            os.mkdir(name, 0o700, dir_fd=parent_fd)
    try:
        return os.open(name, _DIR_FLAGS | os.O_NOFOLLOW, dir_fd=parent_fd)
    except OSError as exc:
        if exc.errno == errno.ELOOP or _is_link_at(parent_fd, name):
            raise UsageError(f"{path}: refusing to record through a symbolic link") from exc
        raise RecordingError(f"{path}: cannot create recording directory: {exc.strerror}") from exc


def _make_recording_dir(base: Path, host: str, name: str) -> int:
    """Create ``base/host/name`` and return a descriptor of the last one.

    ``base`` (the user's choice) may be reached through symlinks; ``host`` and ``name`` are
    solcap's own and are never followed. ``base`` and ``host`` are checked for other
    writers (see :func:`_check_not_shared`).
    """
    try:
        os.makedirs(base, 0o700, exist_ok=True)
        root_fd = os.open(base, _DIR_FLAGS)
    except OSError as exc:
        raise RecordingError(f"{base}: cannot create recordings root: {exc.strerror}") from exc
    try:
        _check_not_shared(root_fd, base)
        host_fd = _open_subdir(root_fd, host, base / host, create=True)
    finally:
        os.close(root_fd)
    try:
        _check_not_shared(host_fd, base / host)
        return _open_subdir(host_fd, name, base / host / name, create=True)
    finally:
        os.close(host_fd)


def _split_relative(relative: str) -> list[str]:
    """``keys/q.txt`` → ``["keys", "q.txt"]``; anything that could leave the directory
    (``..``, absolute, hidden, empty parts) is refused."""
    parts = relative.split("/")
    if not relative or not all(part and part[0] != "." and "\0" not in part for part in parts):
        raise UsageError(f"{relative!r}: not a plain file name inside the recording")
    return parts


def _open_private_at(dir_fd: int, name: str, where: Path, append: bool = True) -> int:
    flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
    flags |= os.O_APPEND if append else os.O_TRUNC
    try:
        return os.open(name, flags, 0o600, dir_fd=dir_fd)
    except OSError as exc:
        raise RecordingError(
            f"{where / name}: cannot create recording file: {exc.strerror}"
        ) from exc


class _DerivedFile:
    """One derived file: a buffer appended to in memory, written out in batches.

    The file is created (0600, not through a symlink) with the recording and opened again only
    to append a batch, so it costs no descriptor in between. A failed batch stays buffered for
    the next attempt (a transient ``EMFILE`` or ``ENOSPC`` loses nothing) up to
    ``MAX_BACKLOG``; bytes already written are never written twice.
    """

    __slots__ = ("buffer", "dir_fd", "name", "path")

    def __init__(self, dir_fd: int, name: str, path: Path) -> None:
        self.dir_fd = dir_fd
        self.name = name
        self.path = path
        self.buffer = bytearray()
        os.close(_open_private_at(dir_fd, name, path.parent))

    def flush(self, *, fsync: bool = False) -> None:
        if not self.buffer and not fsync:
            return
        try:
            fd = os.open(self.name, _APPEND_FLAGS, 0o600, dir_fd=self.dir_fd)
            try:
                while self.buffer:
                    del self.buffer[: os.write(fd, self.buffer)]
                if fsync:
                    os.fsync(fd)
            finally:
                os.close(fd)
        except OSError:
            if len(self.buffer) > MAX_BACKLOG:
                self.buffer.clear()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass
class Segment:
    """A named stretch of ``console.raw`` (e.g. one debug-key dump).

    ``name`` is unique within its recording (``q``, then ``q-2`` for a second press) and
    names the file; ``key`` is the name the caller asked for (``q`` for both), so a reader
    can group repeated presses without parsing the suffix.
    """

    name: str
    start: int
    end: int
    sha256: str
    complete: bool
    reason: str = ""
    file: str = ""
    key: str = ""

    @property
    def json_file(self) -> str:
        """Where a structured result derived from this dump goes (``keys/q-2.json``)."""
        return self.file.rsplit(".", 1)[0] + ".json"


@dataclass
class RecordingSummary:
    path: Path
    host: str
    bytes: int
    sha256: str
    segments: list[Segment] = field(default_factory=list)
    unwritten: int = 0


class Recording:
    """One capture on disk. ``feed`` is called from a console's reader thread for every chunk.

    Thread-safe: the reader thread feeds bytes while other threads add events and segments.
    """

    def __init__(
        self,
        host: str,
        *,
        label: str = "capture",
        root: Path | str | None = None,
        meta: dict[str, Any] | None = None,
    ) -> None:
        self.host = host
        self.label = label
        self.started = utc_now()
        stamp = self.started.strftime("%Y%m%dT%H%M%S.") + f"{self.started.microsecond:06d}Z"
        base = Path(root) if root is not None else DEFAULT_ROOT
        self.path = base / safe_name(host) / f"{stamp}_{safe_name(label)}"
        #: Every file is opened relative to this (see the module docstring).
        self._dir = _make_recording_dir(base, safe_name(host), self.path.name)
        try:
            self._raw = _open_private_at(self._dir, "console.raw", self.path)
            self._derived = [
                _DerivedFile(self._dir, name, self.path / name) for name in DERIVED_FILES
            ]
            self._events = _open_private_at(self._dir, "events.jsonl", self.path)
        except BaseException:
            os.close(self._dir)
            raise
        self._timing_buf, log_buf, xen_buf, dom0_buf = (d.buffer for d in self._derived)
        self._log_buf = log_buf
        self._human = HumanLog(log_buf.extend, xen_buf.extend, dom0_buf.extend)
        #: When the buffered derived bytes and unsynced raw bytes must be out (None: all are).
        self._due: float | None = None
        self._stamp_ms = -1
        self._stamp_sec = -1
        self._stamp_prefix = ""
        self._stamp_text = ""
        self._failure: RecordingError | None = None
        self._lock = threading.Lock()
        self._hash = hashlib.sha256()
        self._bytes = 0
        self._unwritten = 0
        self._last_time = time.monotonic()
        self._segments: list[Segment] = []
        self._segment_files: set[str] = set()
        self._meta_extra = dict(meta or {})
        self._closed = False
        self._write_meta(finished=False)  # so a killed capture is recognisable as unfinished
        self.event("open", label=label, tool_version=__version__)

    # -- the hot path -------------------------------------------------------------------------

    def feed(self, data: bytes) -> None:
        """Append received bytes: raw first (the truth), then timing and the human log.

        ``console.raw`` is written before this returns; timing and the human logs are buffered
        and written in batches (see the module docstring).

        A write failure (disk full, file-size limit) raises :class:`RecordingError` saying
        exactly how many bytes are on disk; later chunks are counted as not written.
        """
        if not data:
            return
        with self._lock:
            if self._closed:
                return
            if self._failure is not None:
                self._unwritten += len(data)
                raise self._failure
            now = time.monotonic()
            try:
                written = _write_counted(self._raw, data)
            except _PartialWrite as exc:
                self._hash.update(data[: exc.written])
                self._bytes += exc.written
                self._unwritten += len(data) - exc.written
                self._failure = RecordingError(
                    f"{self.path / 'console.raw'}: {exc.cause}; {self._bytes} bytes are safely "
                    f"recorded, everything received from byte {self._bytes} on is not"
                )
                raise self._failure from exc.__cause__
            self._hash.update(data)
            self._bytes += written
            delay = now - self._last_time
            self._last_time = now
            self._timing_buf += b"O %.6f %d\n" % (delay, len(data))
            self._human.feed(data, self._stamp())
            if self._due is None:
                self._due = now + FSYNC_INTERVAL
                _FLUSHER.schedule(self, self._due)
            elif now >= self._due:
                self._sync_locked(now)
            elif len(self._log_buf) >= FLUSH_BYTES or len(self._timing_buf) >= FLUSH_BYTES:
                self._write_derived()

    def _stamp(self) -> str:
        """``iso(utc_now())``, with the date and time formatted once a second, not per chunk."""
        ms = time.time_ns() // 1_000_000
        if ms != self._stamp_ms:
            self._stamp_ms = ms
            sec, milli = divmod(ms, 1000)
            if sec != self._stamp_sec:
                self._stamp_sec = sec
                when = dt.datetime.fromtimestamp(sec, dt.UTC)
                self._stamp_prefix = when.strftime("%Y-%m-%dT%H:%M:%S.")
            self._stamp_text = f"{self._stamp_prefix}{milli:03d}Z"
        return self._stamp_text

    @property
    def unwritten(self) -> int:
        """Bytes received after a write failure that are not in ``console.raw``."""
        with self._lock:
            return self._unwritten

    # -- events and segments ---------------------------------------------------------------------

    @property
    def offset(self) -> int:
        """Bytes recorded so far: the ``console.raw`` offset of the next byte."""
        with self._lock:
            return self._bytes

    def event(self, kind: str, **fields: Any) -> None:
        """Record an event in events.jsonl and as a ``[-- … --]`` line in the human log."""
        with self._lock:
            if self._closed:
                return
            when = utc_now()
            entry = {"time": iso(when), "offset": self._bytes, "event": kind, **fields}
            details = " ".join(f"{k}={v}" for k, v in fields.items())
            try:
                _write_all(self._events, (json.dumps(entry, default=str) + "\n").encode())
                self._human.event(f"[-- {iso(when)} {kind} {details}".rstrip() + " --]")
            except OSError as exc:
                if self._failure is None:
                    self._failure = RecordingError(
                        f"{self.path / 'events.jsonl'}: {exc.strerror}; {self._bytes} bytes "
                        "are safely recorded"
                    )
            # Events are rare and are where a reader looks: the logs are current up to here.
            self._write_derived()

    def add_segment(
        self, name: str, start: int, end: int, *, complete: bool, reason: str = ""
    ) -> Segment:
        """Cut ``console.raw[start:end]`` into ``keys/<name>.txt`` and note it in the metadata.

        A name already used in this recording becomes ``<name>-2``, ``<name>-3``, …: a second
        dump of the same key must never replace the first one's file.
        """
        with self._lock:
            if not 0 <= start <= end <= self._bytes:
                raise UsageError(f"segment {name} [{start}, {end}) outside 0..{self._bytes}")
            unique, file_name = self._reserve_name_locked(name)
            self._sync_locked(time.monotonic())
        data = self.read_range(start, end)
        fd = self.open_file(f"keys/{file_name}")
        try:
            _write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        segment = Segment(
            name=unique,
            start=start,
            end=end,
            sha256=hashlib.sha256(data).hexdigest(),
            complete=complete,
            reason=reason,
            file=f"keys/{file_name}",
            key=name,
        )
        with self._lock:
            self._segments.append(segment)
        self.event("segment", **asdict(segment))
        return segment

    def _reserve_name_locked(self, name: str) -> tuple[str, str]:
        """The first of ``name``, ``name-2``, ``name-3``, … whose file is still free, and that
        file's name, reserved (under the lock, so two threads never pick the same one)."""
        base = safe_name(name)
        unique, file_name = name, f"{base}.txt"
        number = 1
        while file_name in self._segment_files:
            number += 1
            # The suffix survives safe_name's length cap: a long name cannot loop forever.
            unique, file_name = f"{name}-{number}", f"{base[:70]}-{number}.txt"
        self._segment_files.add(file_name)
        return unique, file_name

    def set_meta(self, **fields: Any) -> None:
        """Add ``fields`` to meta.json (rewritten now, and kept at close): how the console was
        reached (e.g. the cipher suite a BMC session used) belongs beside the bytes."""
        with self._lock:
            if self._closed:
                return
            self._meta_extra.update(fields)
            self._write_meta(finished=False)

    def add_json(self, relative: str, value: Any) -> Path:
        """Write a derived JSON file (e.g. ``keys/q.json``) privately inside the recording."""
        fd = self.open_file(relative)
        try:
            _write_all(fd, (json.dumps(value, indent=2, default=str) + "\n").encode())
        finally:
            os.close(fd)
        return self.path / relative

    def open_file(self, relative: str, *, append: bool = False) -> int:
        """A new 0600 file inside the recording, e.g. ``dom0/xl-info.txt``; the caller closes
        the descriptor. Parent directories are created 0700; no component is followed if it
        is a symlink, and the path is resolved from the recording's own descriptor, so it
        lands in this recording whatever was done to its path since it was opened."""
        parts = _split_relative(relative)
        parent = os.dup(self._dir)
        where = self.path
        try:
            for part in parts[:-1]:
                where = where / part
                child = _open_subdir(parent, part, where, create=True)
                os.close(parent)
                parent = child
            return _open_private_at(parent, parts[-1], where, append=append)
        finally:
            os.close(parent)

    @property
    def segments(self) -> list[Segment]:
        with self._lock:
            return list(self._segments)

    def read_range(self, start: int, end: int) -> bytes:
        """Bytes ``[start, end)`` of what was recorded, read back from ``console.raw``."""
        fd = os.open("console.raw", _READ_FLAGS, dir_fd=self._dir)
        with open(fd, "rb") as handle:
            handle.seek(start)
            return handle.read(end - start)

    # -- lifetime ------------------------------------------------------------------------------

    def _write_derived(self) -> None:
        for derived in self._derived:
            derived.flush()

    def _sync_locked(self, now: float) -> None:
        """Write out the derived files and fsync ``console.raw``: nothing is older than now."""
        self._write_derived()
        os.fsync(self._raw)
        self._due = None

    def _flush_due(self, *, force: bool = False) -> None:
        """The flusher's call: sync if this recording's interval is up (or ``force``)."""
        if not self._lock.acquire(timeout=FSYNC_INTERVAL):
            return  # the owner holds the lock (e.g. a slow write): it syncs on its own
        try:
            if self._closed or self._due is None:
                return
            now = time.monotonic()
            if force or now >= self._due - _Flusher.SLACK:
                with contextlib.suppress(OSError):
                    self._sync_locked(now)
        finally:
            self._lock.release()

    def close(self, **meta: Any) -> RecordingSummary:
        """Flush everything, write meta.json atomically, and return a summary. Idempotent."""
        with self._lock:
            already = self._closed
        if not already:
            self.event("close", bytes=self.offset, unwritten=self.unwritten)
            with self._lock:
                self._closed = True
                self._human.flush()
                with contextlib.suppress(OSError):
                    os.fsync(self._raw)
                os.close(self._raw)
                for derived in self._derived:
                    derived.flush(fsync=True)
                with contextlib.suppress(OSError):
                    os.fsync(self._events)
                os.close(self._events)
                self._due = None
            self._meta_extra.update(meta)
            with contextlib.suppress(OSError):
                self._write_meta(finished=True)
            os.close(self._dir)
        return RecordingSummary(
            path=self.path,
            host=self.host,
            bytes=self._bytes,
            sha256=self._hash.hexdigest(),
            segments=list(self._segments),
            unwritten=self._unwritten,
        )

    def _write_meta(self, *, finished: bool) -> None:
        files = {}
        if finished:
            for item, digest in sorted(self._walk()):
                files[item] = digest
        meta = {
            "format": 1,
            "host": self.host,
            "label": self.label,
            "tool": "solcap",
            "tool_version": __version__,
            "started": iso(self.started),
            "ended": iso(utc_now()) if finished else None,
            "finished": finished,
            "bytes": self._bytes,
            "unwritten_bytes": self._unwritten,
            "console_raw_sha256": self._hash.hexdigest(),
            "complete": finished and self._unwritten == 0,
            "files": files,
            "segments": [asdict(s) for s in self._segments],
            **self._meta_extra,
        }
        fd = _open_private_at(self._dir, ".meta.json.tmp", self.path, append=False)
        try:
            _write_all(fd, (json.dumps(meta, indent=2, default=str) + "\n").encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(".meta.json.tmp", "meta.json", src_dir_fd=self._dir, dst_dir_fd=self._dir)

    def _walk(self) -> Iterator[tuple[str, str]]:
        """(relative path, SHA-256) of every regular file, walked from the descriptor."""
        for top, _dirs, names, top_fd in os.fwalk(".", dir_fd=self._dir):
            for name in names:
                rel = os.path.normpath(os.path.join(top, name))
                if name.startswith(".") or rel == "meta.json":
                    continue
                try:
                    fd = os.open(name, _READ_FLAGS | os.O_NONBLOCK, dir_fd=top_fd)
                except OSError:
                    continue  # a symlink (ELOOP) or a file gone meanwhile: not ours to hash
                with open(fd, "rb") as handle:
                    if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                        continue
                    digest = hashlib.sha256()
                    for block in iter(lambda: handle.read(1 << 20), b""):
                        digest.update(block)
                yield rel, digest.hexdigest()

    def __enter__(self) -> Recording:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _PartialWrite(Exception):
    def __init__(self, written: int, cause: str) -> None:
        super().__init__(cause)
        self.written = written
        self.cause = cause


def _write_counted(fd: int, data: bytes) -> int:
    """Write all of ``data``; on failure raise _PartialWrite saying how much got out."""
    try:
        done = os.write(fd, data)
    except OSError as exc:
        raise _PartialWrite(0, exc.strerror or str(exc)) from exc
    if done == len(data):
        return done  # the usual case: one write, no slicing
    view = memoryview(data)
    while done < len(data):
        try:
            done += os.write(fd, view[done:])
        except OSError as exc:
            raise _PartialWrite(done, exc.strerror or str(exc)) from exc
    return done


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


class _Flusher:
    """One daemon thread per process that syncs recordings whose interval is up.

    A recording that stops receiving would otherwise keep its last derived bytes in memory and
    its last raw bytes unsynced until the next chunk. Each recording schedules itself once per
    interval (when it first has something to write after a sync) on a heap ordered by due
    time, and the thread sleeps until the first one; active recordings sync themselves in
    ``feed`` and the thread finds nothing to do. Strong references keep a recording that was
    dropped without ``close()`` alive until its last batch is out.
    """

    #: Sync recordings due this soon together, so many sessions share one wake-up.
    SLACK = 0.05

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self._cond = threading.Condition()
        # A heap, not a FIFO: due times from different intervals (or a clock that was not
        # the real one) need not arrive in order, and one entry due far ahead must never hold
        # back the ones due now. The counter keeps equal due times in arrival order.
        self._queue: list[tuple[float, int, Recording]] = []
        self._counter = itertools.count()
        self._thread: threading.Thread | None = None

    def schedule(self, recording: Recording, due: float) -> None:
        with self._cond:
            heapq.heappush(self._queue, (due, next(self._counter), recording))
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="solcap-recording-flusher", daemon=True
                )
                self._thread.start()
            if self._queue[0][2] is recording:
                self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue:
                    self._cond.wait()
                wait = self._queue[0][0] - time.monotonic()
                if wait > 0:
                    # Capped, so a clock that jumped (or a test's fake one) never parks the
                    # thread for longer than an interval.
                    self._cond.wait(min(wait, FSYNC_INTERVAL))
                    continue
                horizon = time.monotonic() + self.SLACK
                batch: list[Recording] = []
                while self._queue and self._queue[0][0] <= horizon:
                    batch.append(heapq.heappop(self._queue)[2])
            for recording in batch:
                try:
                    recording._flush_due()
                except Exception:
                    # The thread serves every recording in the process: it must outlive any one
                    # of them. What failed is written again by that recording's next feed/close,
                    # which raises the error to its owner.
                    _log.exception("flushing %s failed", recording.path)

    def flush_all(self) -> None:
        """At interpreter exit: write out every recording still waiting for its interval."""
        with self._cond:
            pending = [recording for _, _, recording in sorted(self._queue)]
            self._queue.clear()
        for recording in pending:
            recording._flush_due(force=True)


_FLUSHER = _Flusher()
atexit.register(_FLUSHER.flush_all)
os.register_at_fork(after_in_child=_FLUSHER._reset)
