"""The continuous log: rotation with no seam, retention, the gap after a kill, disk full."""

from __future__ import annotations

import hashlib
import json
import os
import random
import resource
import signal
from pathlib import Path

import pytest

from solcap.serve import rotation
from solcap.serve.rotation import RotatingLog, RotationPolicy
from tests.serve.conftest import events, meta, pieces, raw_of

pytestmark = pytest.mark.timeout(60)


def test_size_rotation_splits_between_chunks_and_loses_nothing(tmp_path: Path) -> None:
    rng = random.Random(7)
    stream = rng.randbytes(300_000)
    log = RotatingLog("h", tmp_path, RotationPolicy(max_bytes=32 * 1024, max_age=None))
    at = 0
    while at < len(stream):
        n = rng.randint(1, 5000)
        log.feed(stream[at : at + n])
        at += n
    log.close()
    got = pieces(tmp_path, "h")
    assert len(got) >= 9
    assert hashlib.sha256(raw_of(tmp_path, "h")).hexdigest() == hashlib.sha256(stream).hexdigest()
    offset = 0
    for i, piece in enumerate(got):
        m = meta(piece)
        assert m["finished"] is True and m["complete"] is True
        assert m["stream_offset"] == offset
        assert m["bytes"] <= 32 * 1024
        assert m.get("continues") == (got[i - 1].name if i else None)
        offset += m["bytes"]
        assert (piece / "console.raw").stat().st_mode & 0o777 == 0o600


def test_retention_keeps_the_newest_within_the_byte_budget(tmp_path: Path) -> None:
    policy = RotationPolicy(max_bytes=10_000, max_age=None, keep_bytes=35_000)
    log = RotatingLog("h", tmp_path, policy)
    for i in range(20):
        log.feed(bytes([65 + i % 26]) * 5000)
    log.close()
    got = pieces(tmp_path, "h")
    total = sum((p / "console.raw").stat().st_size for p in got)
    assert total <= 35_000 + 10_000
    # what is left is the newest data, in order
    assert raw_of(tmp_path, "h").endswith(bytes([65 + 19 % 26]) * 5000)
    assert len(got) < 10


def test_a_restart_after_a_kill_keeps_the_old_piece_and_records_the_gap(tmp_path: Path) -> None:
    first = RotatingLog("h", tmp_path, RotationPolicy())
    first.feed(b"before the kill\n")
    # No close(): the process died. The piece is left unfinished with its bytes on disk.
    old = pieces(tmp_path, "h")[0]
    assert meta(old)["finished"] is False
    second = RotatingLog("h", tmp_path, RotationPolicy())
    second.feed(b"after\n")
    second.close()
    old_piece, new_piece = pieces(tmp_path, "h")
    assert (old_piece / "console.raw").read_bytes() == b"before the kill\n"
    gap = [e for e in events(new_piece) if e["event"] == "gap"]
    assert len(gap) == 1
    assert gap[0]["previous"] == old_piece.name
    assert gap[0]["previous_bytes"] == len(b"before the kill\n")
    assert gap[0]["previous_finished"] is False
    assert meta(new_piece)["continues"] == old_piece.name


def test_disk_full_pauses_without_raising_and_the_newest_data_wins(tmp_path: Path) -> None:
    log = RotatingLog("h", tmp_path, RotationPolicy(max_bytes=None, max_age=None))
    log.feed(b"a" * 1000)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    old = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (1500, hard))
    try:
        log.feed(b"b" * 1000)  # half fits: the write fails, the log pauses
        assert log.paused
        log.feed(b"c" * 100)  # dropped while paused, no exception
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, old)
    log._next_try = 0.0  # the retry interval has passed
    log.feed(b"newest\n")
    assert not log.paused
    log.close()
    first, second = pieces(tmp_path, "h")
    kinds = [e["event"] for e in events(first)]
    assert "disk-full" in kinds
    assert (second / "console.raw").read_bytes() == b"newest\n"
    recovered = [e for e in events(second) if e["event"] == "disk-full-recovered"]
    assert recovered and recovered[0]["dropped_bytes"] > 0
    assert rotation.RETRY > 0
    assert json.loads((first / "meta.json").read_text())["finished"] is True
    assert os.path.getsize(first / "console.raw") <= 1500
