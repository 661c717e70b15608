"""The continuous log of one console: consecutive recordings, rotated with no seam.

Each piece is an ordinary recording (``<root>/<host>/<stamp>_serve/``, the format of
docs/recordings.md), so ``solcap show``/``replay``/``export`` work on it. Rotation happens
between two chunks, under the same lock that writes them: a chunk goes wholly into one piece,
so the pieces' ``console.raw`` files concatenated are exactly the stream (no byte lost or
doubled at a seam — users of goconserver and xCAT lost logs at rotation). Each piece's
``meta.json`` names the piece before (``continues``) and the stream offset it starts at
(``stream_offset``).

Rotation by size (``max_bytes``) or age (``max_age`` seconds). Retention: after a rotation the
oldest finished pieces of the host beyond ``keep_bytes``/``keep_age`` are deleted (never the
current one, never a piece that is not ours).

Restart: a piece left ``finished: false`` was the server being killed. Its ``console.raw`` is
kept as it is (every byte written was written with one ``write`` as it arrived); the next
piece starts with a ``gap`` event naming it, its size and the time of its last write.

Disk full: the write error becomes a ``disk-full`` event (where it can still be written) and
one log line; writing pauses, the bytes that arrive meanwhile are counted and dropped, and
every ``RETRY`` seconds a fresh piece is tried — so when space returns the newest data wins,
and the server never dies of it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from solcap.capture.recording import Recording, iso, safe_name
from solcap.errors import RecordingError, UsageError

_log = logging.getLogger(__name__)

LABEL: Final = "serve"
RETRY: Final = 5.0


@dataclass(frozen=True)
class RotationPolicy:
    """When to start a new piece and which old ones to keep (None: no limit)."""

    max_bytes: int | None = 64 * 1024 * 1024
    max_age: float | None = 86400.0
    keep_bytes: int | None = None
    keep_age: float | None = None


def _pieces(host_dir: Path) -> list[Path]:
    """This host's serve pieces, oldest first (names sort by their UTC stamp)."""
    if not host_dir.is_dir():
        return []
    return sorted(p for p in host_dir.iterdir() if p.is_dir() and p.name.endswith("_" + LABEL))


def _meta(piece: Path) -> dict[str, Any]:
    try:
        value = json.loads((piece / "meta.json").read_text())
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


class RotatingLog:
    """The continuous log of ``host`` under ``root``; ``feed`` is called for every chunk."""

    def __init__(self, host: str, root: Path, policy: RotationPolicy | None = None) -> None:
        self.host = host
        self.root = Path(root)
        self.policy = policy or RotationPolicy()
        self._lock = threading.Lock()
        self._stream = 0  # bytes fed since this log was opened (the server's stream offset)
        self._dropped = 0  # bytes lost to a full disk since the last piece
        self._paused_since: float | None = None
        self._next_try = 0.0
        self._current: Recording | None = None
        self._opened_at = 0.0
        self._piece_start = 0  # stream offset of the current piece's first byte
        self.rotations = 0
        previous = _pieces(self.root / safe_name(host))
        self._current = self._new_piece(previous[-1] if previous else None, restart=True)

    # -- pieces

    def _new_piece(self, previous: Path | None, *, restart: bool = False) -> Recording:
        meta: dict[str, Any] = {"serve": True, "stream_offset": self._stream}
        if previous is not None:
            meta["continues"] = previous.name
        rec = Recording(self.host, label=LABEL, root=self.root, meta=meta)
        if previous is not None and rec.path == previous:  # same microsecond: never reuse
            rec.close()
            time.sleep(0.001)
            rec = Recording(self.host, label=LABEL, root=self.root, meta=meta)
        self._opened_at = time.monotonic()
        self._piece_start = self._stream
        if restart and previous is not None:
            old = _meta(previous)
            raw = previous / "console.raw"
            try:
                size, mtime = raw.stat().st_size, raw.stat().st_mtime
            except OSError:
                size, mtime = 0, 0.0
            last = iso(dt.datetime.fromtimestamp(mtime, dt.UTC)) if mtime else None
            rec.event(
                "gap",
                previous=previous.name,
                previous_bytes=size,
                previous_finished=bool(old.get("finished")),
                last_write=last,
                reason="server restarted"
                if old.get("finished")
                else "server was killed (previous piece unfinished)",
            )
        if self._dropped:
            rec.event("disk-full-recovered", dropped_bytes=self._dropped)
            self._dropped = 0
        return rec

    def _rotate_locked(self, reason: str) -> None:
        old = self._current
        if old is not None:
            old.event("rotate", reason=reason)
            old.close(rotated=reason)
            previous: Path | None = old.path
        else:
            previous = None
        self._current = None
        self._current = self._new_piece(previous)
        self.rotations += 1
        self._retain()

    def _retain(self) -> None:
        keep_bytes, keep_age = self.policy.keep_bytes, self.policy.keep_age
        if keep_bytes is None and keep_age is None:
            return
        pieces = _pieces(self.root / safe_name(self.host))
        current = self._current.path if self._current is not None else None
        total = 0
        now = time.time()
        for piece in reversed(pieces):
            if piece == current:
                total += self._current.offset if self._current is not None else 0
                continue
            raw = piece / "console.raw"
            try:
                size, mtime = raw.stat().st_size, raw.stat().st_mtime
            except OSError:
                continue
            total += size
            too_big = keep_bytes is not None and total > keep_bytes
            too_old = keep_age is not None and now - mtime > keep_age
            if (too_big or too_old) and _meta(piece).get("label") == LABEL:
                shutil.rmtree(piece, ignore_errors=True)

    # -- the hot path

    def feed(self, data: bytes) -> None:
        """Write one chunk (rotating first if a limit is reached); never raises on disk full."""
        if not data:
            return
        with self._lock:
            now = time.monotonic()
            if self._current is None:
                if now < self._next_try:
                    self._dropped += len(data)
                    self._stream += len(data)
                    return
                try:
                    self._current = self._new_piece(self._last_path())
                    self._paused_since = None
                    _log.warning("%s: recording again (disk has space)", self.host)
                except (UsageError, OSError, RecordingError):
                    self._next_try = now + RETRY
                    self._dropped += len(data)
                    self._stream += len(data)
                    return
            policy = self.policy
            size = self._current.offset
            if size and (
                (policy.max_bytes is not None and size + len(data) > policy.max_bytes)
                or (policy.max_age is not None and now - self._opened_at >= policy.max_age)
            ):
                try:
                    self._rotate_locked(
                        "size" if size + len(data) > (policy.max_bytes or 0) else "age"
                    )
                except (UsageError, OSError, RecordingError) as exc:
                    self._pause_locked(exc, now)
                    self._dropped += len(data)
                    self._stream += len(data)
                    return
            try:
                self._current.feed(data)
            except RecordingError as exc:
                self._pause_locked(exc, now)
                # What the piece did not take is dropped: its console.raw says how much it has.
                self._dropped += len(data)
            self._stream += len(data)

    def _last_path(self) -> Path | None:
        pieces = _pieces(self.root / safe_name(self.host))
        return pieces[-1] if pieces else None

    def _pause_locked(self, exc: Exception, now: float) -> None:
        _log.error("%s: recording paused: %s", self.host, exc)
        current = self._current
        self._current = None
        self._paused_since = now
        self._next_try = now + RETRY
        if current is not None:
            with contextlib.suppress(Exception):
                current.event("disk-full", error=str(exc))
            with contextlib.suppress(Exception):
                current.close(stop_reason="disk full")

    # -- events and state

    def event(self, kind: str, **fields: Any) -> None:
        with self._lock:
            if self._current is not None:
                with contextlib.suppress(RecordingError):
                    self._current.event(kind, **fields)

    def mark(self, name: str, start: int, end: int, *, reason: str = "") -> str | None:
        """Cut stream bytes ``[start, end)`` into a segment of the current piece (clipped to
        it: a rotation in between keeps the part after the seam); its ``keys/`` file name, or
        None when nothing of it is in the current piece."""
        with self._lock:
            current = self._current
            if current is None:
                return None
            begin = max(start - self._piece_start, 0)
            stop = min(end - self._piece_start, current.offset)
            if stop <= begin:
                return None
            complete = begin == start - self._piece_start
        try:
            segment = current.add_segment(name, begin, stop, complete=complete, reason=reason)
        except (UsageError, OSError, RecordingError):
            return None
        return segment.file

    def rotate(self, reason: str = "requested") -> None:
        with self._lock:
            if self._current is not None:
                self._rotate_locked(reason)

    @property
    def stream_offset(self) -> int:
        with self._lock:
            return self._stream

    @property
    def current_path(self) -> Path | None:
        with self._lock:
            return self._current.path if self._current is not None else None

    @property
    def paused(self) -> bool:
        with self._lock:
            return self._current is None

    def close(self, reason: str = "server stopped") -> None:
        with self._lock:
            current, self._current = self._current, None
            if current is not None:
                current.close(stop_reason=reason)
