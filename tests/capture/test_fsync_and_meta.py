"""docs/recordings.md's durability promises, observed at the system calls that keep them.

``console.raw`` is fsync'ed at least once a second while bytes arrive, at every segment end and
at close; ``meta.json`` is written atomically (a temporary file, fsync'ed, renamed over it), so
a reader never sees half of one. No test can pull the power here, so the calls are observed:
``os.fsync``, ``os.open`` and ``os.replace`` are wrapped (the real ones still run) and each
descriptor is named by ``/proc/self/fd``.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from solcap.capture.recording import Recording

pytestmark = pytest.mark.timeout(60)
#: The promise in docs/recordings.md (not solcap's constant: the test must not follow it).
FSYNC_INTERVAL = 1.0
#: Scheduling slack on a loaded machine (load 4 on 2 cores) on top of the 1 s interval.
SLACK = 0.75


class Calls:
    """Every fsync / open-for-write / replace solcap made, with the time and the file."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.fsyncs: list[tuple[float, str]] = []
        self.writes: list[str] = []  # names opened for writing
        self.replaces: list[tuple[str, str]] = []
        self.lock = threading.Lock()
        real_fsync, real_open, real_replace = os.fsync, os.open, os.replace

        def fsync(fd: int) -> None:
            name = os.readlink(f"/proc/self/fd/{fd}")
            real_fsync(fd)
            with self.lock:
                self.fsyncs.append((time.monotonic(), name))

        def open_(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
            if flags & (os.O_WRONLY | os.O_RDWR):
                with self.lock:
                    self.writes.append(os.path.basename(os.fsdecode(path)))
            return real_open(path, flags, *args, **kwargs)

        def replace(src: Any, dst: Any, **kwargs: Any) -> None:
            real_replace(src, dst, **kwargs)
            with self.lock:
                self.replaces.append((os.fsdecode(src), os.fsdecode(dst)))

        monkeypatch.setattr(os, "fsync", fsync)
        monkeypatch.setattr(os, "open", open_)
        monkeypatch.setattr(os, "replace", replace)

    def raw_syncs(self, rec: Recording) -> list[float]:
        target = str(rec.path / "console.raw")
        with self.lock:
            return [t for t, name in self.fsyncs if name == target]


def test_console_raw_is_fsynced_at_least_once_a_second(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    calls = Calls(monkeypatch)
    rec = Recording("h", root=tmp_path)
    fed: list[float] = []
    try:
        end = time.monotonic() + 3.5
        while time.monotonic() < end:
            rec.feed(b"(XEN) a line of boot output\r\n")
            fed.append(time.monotonic())
            time.sleep(0.05)  # the pace of the input, not a wait for solcap
        # Every byte fed is on disk within the interval (plus slack): wait for the last one.
        deadline = fed[-1] + FSYNC_INTERVAL + SLACK
        while time.monotonic() < deadline and not any(t >= fed[-1] for t in calls.raw_syncs(rec)):
            time.sleep(0.02)
        syncs = calls.raw_syncs(rec)
    finally:
        rec.close()
    assert syncs, "console.raw was never fsync'ed while bytes arrived"
    for when in fed:
        later = [t for t in syncs if t >= when]
        assert later and later[0] - when <= FSYNC_INTERVAL + SLACK, (when, syncs)


def test_a_segment_end_and_close_fsync_console_raw(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    calls = Calls(monkeypatch)
    rec = Recording("h", root=tmp_path)
    rec.feed(b"(XEN) 'q' pressed -> dumping domain info\r\n")
    before = len(calls.raw_syncs(rec))
    rec.add_segment("q", 0, rec.offset, complete=True)
    # Synchronously, inside add_segment: console.raw up to the segment, and the key file.
    assert len(calls.raw_syncs(rec)) == before + 1
    assert str(rec.path / "keys" / "q.txt") in [name for _, name in calls.fsyncs]
    rec.feed(b"tail")
    before = len(calls.raw_syncs(rec))
    rec.close()
    assert len(calls.raw_syncs(rec)) == before + 1


def test_meta_json_is_replaced_never_written_in_place(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    calls = Calls(monkeypatch)
    rec = Recording("h", root=tmp_path)
    meta = rec.path / "meta.json"
    assert json.loads(meta.read_text())["finished"] is False  # there from the start
    stop = threading.Event()
    seen: list[object] = []

    def reader() -> None:  # a reader polling meta.json must only ever see whole documents
        while not stop.is_set():
            seen.append(json.loads(meta.read_text())["finished"])

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for n in range(50):
            rec.feed(b"x" * 100)
            rec.add_segment(f"k{n}", n * 100, (n + 1) * 100, complete=True)
            rec.set_meta(step=n)
        rec.close()
    finally:
        stop.set()
        thread.join(10)
    assert seen and set(seen) <= {False, True}
    assert "meta.json" not in calls.writes  # never opened for writing under its own name
    tmp_syncs = [n for _, n in calls.fsyncs if n.endswith("/.meta.json.tmp")]
    replaces = [r for r in calls.replaces if r[1] == "meta.json"]
    assert replaces and all(src == ".meta.json.tmp" for src, _ in replaces), calls.replaces
    assert len(tmp_syncs) >= len(replaces)  # each temporary file reached the disk first
    assert json.loads(meta.read_text())["finished"] is True
