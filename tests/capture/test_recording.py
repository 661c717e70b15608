"""The recorder keeps every byte, privately, in a form util-linux can replay."""

from __future__ import annotations

import hashlib
import json
import os
import random
import stat
import subprocess
from pathlib import Path

import pytest

from solcap.capture.recording import Recording
from solcap.errors import UsageError
from tests.peers import need

pytestmark = pytest.mark.timeout(60)


def _chunks(seed: int, total: int) -> list[bytes]:
    rng = random.Random(seed)
    out, left = [], total
    while left:
        n = min(left, rng.randint(1, 5000))
        out.append(rng.randbytes(n))
        left -= n
    return out


def test_raw_is_byte_exact_and_private(tmp_path: Path) -> None:
    chunks = [*_chunks(1, 300_000), bytes(range(256))]
    rec = Recording("host-a", label="t", root=tmp_path)
    for chunk in chunks:
        rec.feed(chunk)
    summary = rec.close()
    sent = b"".join(chunks)
    raw = (summary.path / "console.raw").read_bytes()
    assert hashlib.sha256(raw).hexdigest() == hashlib.sha256(sent).hexdigest()
    assert summary.sha256 == hashlib.sha256(sent).hexdigest()
    assert stat.S_IMODE(os.stat(summary.path).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(summary.path.parent).st_mode) == 0o700
    for name in ("console.raw", "console.timing", "console.log", "events.jsonl", "meta.json"):
        assert stat.S_IMODE(os.stat(summary.path / name).st_mode) == 0o600, name
    meta = json.loads((summary.path / "meta.json").read_text())
    assert meta["bytes"] == len(sent)
    assert meta["files"]["console.raw"] == hashlib.sha256(sent).hexdigest()


def test_scriptreplay_reproduces_the_session(tmp_path: Path) -> None:
    scriptreplay = need("scriptreplay")
    chunks = [b"GRUB\r\n", b"\x1b[7m*Xen\x1b[m", b"(XEN) Command line: console=com1\r\n"] * 50
    rec = Recording("h", root=tmp_path)
    for chunk in chunks:
        rec.feed(chunk)
    summary = rec.close()
    replay = subprocess.run(
        [scriptreplay, "-T", "console.timing", "-O", "console.raw", "-d", "1000"],
        cwd=summary.path,
        capture_output=True,
        check=True,
        timeout=30,
    )
    raw = b"".join(chunks)
    # util-linux skips the log's first line (where `script` puts its header) and ends with a
    # newline of its own; everything in between must be exactly what was captured.
    assert replay.stdout.removesuffix(b"\n") == raw[raw.index(b"\n") + 1 :]


def test_segments_are_cut_from_raw(tmp_path: Path) -> None:
    rec = Recording("h", root=tmp_path)
    rec.feed(b"prefix ")
    start = rec.offset
    rec.feed(b"(XEN) 'q' pressed -> dumping domain info\r\n")
    seg = rec.add_segment("q", start, rec.offset, complete=True)
    summary = rec.close()
    body = b"(XEN) 'q' pressed -> dumping domain info\r\n"
    assert (summary.path / "keys" / "q.txt").read_bytes() == body
    assert seg.sha256 == hashlib.sha256(body).hexdigest()
    meta = json.loads((summary.path / "meta.json").read_text())
    assert meta["segments"][0]["sha256"] == seg.sha256
    events = [json.loads(line) for line in (summary.path / "events.jsonl").read_text().splitlines()]
    assert [e["event"] for e in events] == ["open", "segment", "close"]
    assert events[1]["offset"] == len(b"prefix ") + len(body)


def test_human_log_has_one_timestamp_per_line(tmp_path: Path) -> None:
    rec = Recording("h", root=tmp_path)
    for piece in (b"first li", b"ne\r\nsec", b"ond\x1b[7m line\r\n"):
        rec.feed(piece)
    rec.event("mark", note="x")
    summary = rec.close()
    lines = (summary.path / "console.log").read_text().splitlines()[1:]  # after the open event
    assert lines[0].endswith("] first line") and lines[0].startswith("[20")
    assert lines[1].endswith("] second line")
    assert lines[2].startswith("[-- ") and "mark note=x" in lines[2]


def test_symlinked_host_directory_is_refused(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "root").mkdir()
    (tmp_path / "root" / "h").symlink_to(elsewhere)
    with pytest.raises(UsageError, match="symbolic link"):
        Recording("h", root=tmp_path / "root")
    assert list(elsewhere.iterdir()) == []
