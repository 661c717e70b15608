"""The process-wide flusher serves every idle recording, whatever the others do.

One thread writes out the derived files of recordings that stopped receiving. It holds many
recordings at once, so neither an entry due far ahead (a recording scheduled under another
clock or interval) nor one recording whose flush raises may hold back the rest.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from solcap.capture import recording as capture


class _Exploding:
    """Stands in for a recording whose flush raises something unexpected."""

    path = Path("/nonexistent/exploding")

    def __init__(self) -> None:
        self.called = threading.Event()

    def _flush_due(self, *, force: bool = False) -> None:
        self.called.set()
        raise RuntimeError("boom")


def _wait_for_log(rec: capture.Recording, tail: bytes, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    log = rec.path / "xen.log"
    while not log.read_bytes().endswith(tail):
        assert time.monotonic() < deadline, f"{log} not written within {timeout} s"
        time.sleep(0.01)


def test_an_entry_due_far_ahead_does_not_hold_back_one_due_now(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(capture, "FSYNC_INTERVAL", 0.2)
    far = capture.Recording("far", root=tmp_path)
    rec = capture.Recording("near", root=tmp_path)
    try:
        # As a recording fed under a clock far ahead of the real one schedules itself.
        capture._FLUSHER.schedule(far, time.monotonic() + 1e6)
        rec.feed(b"(XEN) idle after this\r\n")
        _wait_for_log(rec, b"(XEN) idle after this\n", 20)
    finally:
        rec.close()
        far.close()


def test_a_recording_whose_flush_raises_does_not_stop_the_flusher(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(capture, "FSYNC_INTERVAL", 0.2)
    bad = _Exploding()
    capture._FLUSHER.schedule(bad, time.monotonic())  # type: ignore[arg-type]
    assert bad.called.wait(20), "the flusher never reached the failing recording"
    rec = capture.Recording("after", root=tmp_path)
    try:
        rec.feed(b"(XEN) still flushed\r\n")
        _wait_for_log(rec, b"(XEN) still flushed\n", 20)
    finally:
        rec.close()
    assert any("flushing /nonexistent/exploding failed" in r.getMessage() for r in caplog.records)
