"""Batched derived files: the same bytes as writing every chunk at once, fewer descriptors.

The oracle is the recorder as it was before batching (``legacy_recorder``, a frozen copy):
both get the same operations under the same simulated clock and must leave byte-identical
recordings — console.raw, timing, the three human logs, events, segments and meta.json.
"""

from __future__ import annotations

import datetime as dt
import errno
import hashlib
import os
import random
import subprocess
import sys
import textwrap
import time
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from solcap.capture import humanlog
from solcap.capture import recording as capture
from tests.capture import legacy_recorder as legacy

pytestmark = pytest.mark.timeout(60)
SAMPLE = Path(__file__).resolve().parents[1] / "data" / "samples"
REPO = Path(__file__).resolve().parents[2]
FILES = (
    "console.raw",
    "console.timing",
    "console.log",
    "xen.log",
    "dom0.log",
    "events.jsonl",
    "meta.json",
)


class FakeClock:
    """Monotonic and wall clocks that move only when the test says so (whole microseconds)."""

    EPOCH_US = 1_767_225_599_000_000  # 2025-12-31T23:59:59Z: the first steps cross a year

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.mono = 1000.0
        self.wall_us = self.EPOCH_US

    def advance(self, seconds: float) -> None:
        micro = round(seconds * 1e6)
        self.mono += micro / 1e6
        self.wall_us += micro

    def monotonic(self) -> float:
        return self.mono

    def time_ns(self) -> int:
        return self.wall_us * 1000

    def utc_now(self) -> dt.datetime:
        return dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=self.wall_us)

    def module(self) -> types.SimpleNamespace:
        return types.SimpleNamespace(
            monotonic=self.monotonic, time_ns=self.time_ns, time=lambda: self.wall_us / 1e6
        )


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    for module in (capture, legacy):
        monkeypatch.setattr(module, "time", fake.module())
        monkeypatch.setattr(module, "utc_now", fake.utc_now)
    return fake


Op = tuple[str, Any]


def _sample_text() -> bytes:
    parts = [(SAMPLE / "sol-session-grub2.06-xen4.17.raw").read_bytes()]
    parts += [p.read_bytes().replace(b"\n", b"\r\n") for p in sorted(SAMPLE.glob("*.txt"))]
    return b"".join(parts)


def _ops(seed: int, total: int) -> list[Op]:
    """A capture: SOL-sized chunks of real and hostile bytes, pauses, events and segments."""
    rng = random.Random(seed)
    hostile = [
        b"\x1b[7m\x1b[5;3H\xff\xfe\xc3(\r\r\n",
        b"dom0 line interrupted (XEN) by xen\r\r\n",
        b"\r\n\n\n\r\n",
        b"x" * 70_000 + b"\r\n",  # longer than MAX_LINE: written in marked pieces
        bytes(range(256)),
        b"\x1b]0;title\x07(XEN) after an OSC\r\n",
    ]
    text = _sample_text() + b"".join(hostile)
    ops: list[Op] = []
    position = 0
    fed = 0
    mark = 0
    while fed < total:
        n = rng.choice([1, 2, 7, 64, 200, 255, 255, 255, 1000])
        piece = text[position : position + n] or text[:n]
        position = (position + len(piece)) % len(text)
        ops.append(("advance", rng.choice([0.0, 0.000_3, 0.022, 0.022, 0.4, 1.3, 2.5])))
        ops.append(("feed", piece))
        fed += len(piece)
        roll = rng.random()
        if roll < 0.02:
            ops.append(("event", {"note": f"n{len(ops)}", "n": len(ops)}))
        elif roll < 0.03:
            ops.append(("segment", (mark, fed)))
            mark = fed
    return ops


def _run(recording_class: Any, ops: list[Op], root: Path, clock: FakeClock) -> Path:
    clock.reset()
    rec = recording_class("host", label="oracle", root=root, meta={"k": "v"})
    for kind, arg in ops:
        if kind == "advance":
            clock.advance(arg)
        elif kind == "feed":
            rec.feed(arg)
        elif kind == "event":
            rec.event("mark", **arg)
        else:
            start, end = arg
            rec.add_segment(f"s{start}", start, end, complete=True, reason="r")
    path: Path = rec.close(result="ok").path
    return path


def _tree(path: Path) -> dict[str, str]:
    return {
        str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(path.rglob("*"))
        if p.is_file()
    }


def _assert_identical(ops: list[Op], tmp_path: Path, clock: FakeClock) -> Path:
    old = _run(legacy.Recording, ops, tmp_path / "old", clock)
    new = _run(capture.Recording, ops, tmp_path / "new", clock)
    assert old.name == new.name
    for name in FILES:
        assert (new / name).read_bytes() == (old / name).read_bytes(), name
    assert _tree(new) == _tree(old)
    return new


def test_recording_is_byte_identical_to_the_unbatched_recorder(
    tmp_path: Path, clock: FakeClock
) -> None:
    ops = _ops(1, 600_000)
    new = _assert_identical(ops, tmp_path, clock)
    # The run did exercise what it claims to: Xen and Dom0 lines, events, segments, pieces.
    assert (new / "xen.log").stat().st_size and (new / "dom0.log").stat().st_size
    assert len(list((new / "keys").iterdir())) >= 2
    assert " …\n".encode() in (new / "console.log").read_bytes()


def test_batches_cut_at_every_size_and_interval_are_still_identical(
    tmp_path: Path, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Tiny batches and a short interval: flushes land mid-line, mid-escape, mid-UTF-8.
    monkeypatch.setattr(capture, "FLUSH_BYTES", 97)
    monkeypatch.setattr(capture, "FSYNC_INTERVAL", 0.05)
    _assert_identical(_ops(2, 150_000), tmp_path, clock)


def test_a_failed_batch_is_kept_and_written_next_time(
    tmp_path: Path, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    ops = _ops(3, 100_000)
    real_open = os.open
    failing = {"on": False, "refused": 0}

    def flaky_open(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        # The recorder opens its files by name relative to the recording's directory
        # descriptor; only the new recorder runs while ``failing`` is on.
        if failing["on"] and Path(path).name == "console.log":
            failing["refused"] += 1
            raise OSError(errno.EMFILE, "Too many open files")
        return real_open(path, flags, *args, **kwargs)

    flaky = types.SimpleNamespace(**{n: getattr(os, n) for n in dir(os) if not n.startswith("__")})
    flaky.open = flaky_open
    monkeypatch.setattr(capture, "os", flaky)
    half = len(ops) // 2
    # Files are created in __init__ before the failure starts; every batch of the first half
    # is refused, then the descriptor shortage ends.
    old = _run(legacy.Recording, ops, tmp_path / "old", clock)
    clock.reset()
    rec = capture.Recording("host", label="oracle", root=tmp_path / "new", meta={"k": "v"})
    failing["on"] = True
    for i, (kind, arg) in enumerate(ops):
        if i == half:
            failing["on"] = False
        if kind == "advance":
            clock.advance(arg)
        elif kind == "feed":
            rec.feed(arg)
        elif kind == "event":
            rec.event("mark", **arg)
        else:
            rec.add_segment(f"s{arg[0]}", arg[0], arg[1], complete=True, reason="r")
    new = rec.close(result="ok").path
    assert failing["refused"] > 0
    for name in FILES:
        assert (new / name).read_bytes() == (old / name).read_bytes(), name


def _fds() -> dict[str, str]:
    """Open descriptors and what they point at (the one listdir itself used is gone by then)."""
    found = {}
    for fd in os.listdir("/proc/self/fd"):
        try:
            found[fd] = os.readlink(f"/proc/self/fd/{fd}")
        except FileNotFoundError:
            continue
    return found


def test_an_open_recording_holds_three_descriptors(tmp_path: Path) -> None:
    before = _fds()

    def opened() -> set[str]:
        return {target for fd, target in _fds().items() if before.get(fd) != target}

    rec = capture.Recording("h", root=tmp_path)
    held = [opened()]
    for i in range(200):
        rec.feed(b"(XEN) line %d\r\ndom0 line\r\n" % i)
        held.append(opened())
    rec.event("mark")
    rec.add_segment("s", 0, rec.offset, complete=True)
    held.append(opened())
    rec.close()
    # The directory itself (every file is opened relative to it), console.raw, events.jsonl.
    expected = {str(rec.path), str(rec.path / "console.raw"), str(rec.path / "events.jsonl")}
    assert all(targets == expected for targets in held), held
    assert opened() == set()


def _wait_for(predicate: Callable[[], bool], timeout: float) -> float:
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(0.01)
    return time.monotonic() - start


def test_an_idle_recording_writes_its_derived_files_within_the_interval(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(capture, "FSYNC_INTERVAL", 0.3)
    rec = capture.Recording("h", root=tmp_path)
    try:
        rec.feed(b"(XEN) first\r\n")
        # console.raw is written before feed returns, always.
        assert (rec.path / "console.raw").read_bytes() == b"(XEN) first\r\n"
        log = rec.path / "xen.log"
        waited = _wait_for(lambda: log.read_bytes().endswith(b"(XEN) first\n"), 10)
        timing = (rec.path / "console.timing").read_text()
        assert timing.startswith("O ") and timing.endswith(" 13\n")
        assert waited < 10
        # And again after a quiet spell: each new burst gets its own deadline.
        rec.feed(b"dom0 second\r\r\n")
        _wait_for(lambda: (rec.path / "dom0.log").read_bytes().endswith(b"dom0 second\n"), 10)
    finally:
        rec.close()


def test_close_writes_everything_including_a_line_without_newline(tmp_path: Path) -> None:
    rec = capture.Recording("h", root=tmp_path)
    rec.feed(b"(XEN) complete\r\n")
    rec.feed(b"no newline at the end")
    path = rec.close().path
    log = (path / "console.log").read_bytes().splitlines()
    # The close event comes first (as it always did), so the unfinished line is marked "…".
    assert log[-2].endswith(" no newline at the end …".encode())
    assert log[-1].startswith(b"[-- ") and b" close bytes=37" in log[-1]
    assert (path / "console.timing").read_text().count("\n") == 2


CHILD = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from solcap.capture.recording import Recording

    rec = Recording("h", root=Path(sys.argv[1]))
    for i in range(int(sys.argv[2])):
        rec.feed(b"(XEN) line %d\\r\\n" % i)
    rec.feed(b"half a li")
    print(rec.path, flush=True)
    sys.stdin.read()  # idle until killed: only the flusher thread can write the logs now
    """
)


def test_sigkill_after_a_quiet_interval_loses_no_complete_line(tmp_path: Path) -> None:
    lines = 3000
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(tmp_path), str(lines)],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        rec = Path(proc.stdout.readline().decode().strip())
        expected = b"".join(b"(XEN) line %d\r\n" % i for i in range(lines)) + b"half a li"
        # console.raw holds everything the moment feed() returned.
        assert (rec / "console.raw").read_bytes() == expected
        last = b"(XEN) line %d\n" % (lines - 1)
        _wait_for(lambda: (rec / "xen.log").read_bytes().endswith(last), 10)
    finally:
        proc.kill()
        proc.wait(10)
    assert (rec / "console.raw").read_bytes() == expected
    xen = (rec / "xen.log").read_bytes().splitlines()
    assert [line.split(b"] ", 1)[1] for line in xen] == [b"(XEN) line %d" % i for i in range(lines)]
    assert (rec / "console.timing").read_text().count("\n") == lines + 1


# -- HumanLog alone, against the frozen one, on adversarial bytes ---------------------------

ALPHABET = [
    b"\n",
    b"\r",
    b"\x1b",
    b"[",
    b"7m",
    b"(XEN)",
    b"(XE",
    b"N)",
    b" ",
    b"a",
    b"\xc3",
    b"\x07",
]


ESC_FREE = [token for token in ALPHABET if b"\x1b" not in token]


@st.composite
def _feeds(draw: st.DrawFn, alphabet: list[bytes] = ALPHABET) -> list[tuple[bytes, str] | str]:
    """Up to 40 steps: an event line (one step in ten) or 1-12 tokens of ``alphabet`` fed at
    once. Each step is one drawn byte string (first byte: event or not; the rest: the tokens),
    not a draw per token: generating the examples cost ten times what checking them does."""
    steps: list[tuple[bytes, str] | str] = []
    chunks = draw(st.lists(st.binary(min_size=1, max_size=13), max_size=40))
    for index, chunk in enumerate(chunks):
        if chunk[0] % 10 == 0:
            steps.append(f"[-- event {index} --]")
        else:
            data = b"".join(alphabet[byte % len(alphabet)] for byte in chunk[1:] or chunk[:1])
            steps.append((data, f"2026-01-01T00:00:{index:02d}.000Z"))
    return steps


def _human(cls: Any, steps: list[tuple[bytes, str] | str]) -> tuple[bytes, bytes, bytes]:
    out: tuple[bytearray, bytearray, bytearray] = (bytearray(), bytearray(), bytearray())
    log = cls(out[0].extend, out[1].extend, out[2].extend)
    for step in steps:
        if isinstance(step, str):
            log.event(step)
        else:
            log.feed(*step)
    log.flush()
    return bytes(out[0]), bytes(out[1]), bytes(out[2])


@settings(max_examples=400, deadline=None)
@given(steps=_feeds())
def test_humanlog_matches_the_frozen_one(steps: list[tuple[bytes, str] | str]) -> None:
    assert _human(humanlog.HumanLog, steps) == _human(legacy.HumanLog, steps)


@settings(max_examples=400, deadline=None)
@given(steps=_feeds())
def test_humanlog_matches_the_frozen_one_with_short_lines(
    steps: list[tuple[bytes, str] | str],
) -> None:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(humanlog, "MAX_LINE", 16)  # lines cut into marked pieces all the time
        patch.setattr(legacy, "MAX_LINE", 16)
        assert _human(humanlog.HumanLog, steps) == _human(legacy.HumanLog, steps)


@settings(max_examples=400, deadline=None)
@given(steps=_feeds(ESC_FREE))
def test_humanlog_matches_the_frozen_one_without_escapes(
    steps: list[tuple[bytes, str] | str],
) -> None:
    # Blocks without ESC take the whole-block path (all Dom0, all Xen, or mixed).
    assert _human(humanlog.HumanLog, steps) == _human(legacy.HumanLog, steps)


def test_clean_matches_the_frozen_one_on_every_byte() -> None:
    data = bytes(range(256)) + b"\x1b[1;2H\x1b(B\x1b]2;t\x1b\\\x1bc\x1b"
    for i in range(len(data)):
        assert humanlog.clean(data[i:]) == legacy.clean(data[i:])
