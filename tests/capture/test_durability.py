"""Recordings survive trouble: SIGTERM, SIGKILL, a full disk, hostile bytes, huge lines."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import random
import resource
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from solcap.capture import recordings
from solcap.capture.recording import Recording
from solcap.cli import main

pytestmark = pytest.mark.timeout(60)
SAMPLE = Path(__file__).resolve().parents[1] / "data" / "samples"


def _wait_for(predicate: object, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.01)
    raise AssertionError("condition not met in time")


def _recording_dir(root: Path) -> Path:
    found: list[Path] = []
    _wait_for(lambda: found.extend(root.glob("*/*/events.jsonl")) or bool(found))
    return found[0].parent


def _connected(rec: Path) -> bool:
    return "connect" in (rec / "events.jsonl").read_text()


def _start_capture(
    tmp_path: Path, *extra: str, preexec: object = None
) -> tuple[subprocess.Popen[bytes], int, Path]:
    master, slave = os.openpty()
    path = os.ttyname(slave)
    os.close(slave)
    proc = subprocess.Popen(
        [sys.executable, "-m", "solcap.cli", "capture", path, "--root", str(tmp_path), *extra],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=preexec,  # type: ignore[arg-type]
    )
    rec = _recording_dir(tmp_path)
    _wait_for(lambda: _connected(rec))
    return proc, master, rec


def _write(master: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(master, view[:4096]) :]


def _write_until_closed(master: int, data: bytes) -> None:
    with contextlib.suppress(OSError):
        _write(master, data)


def test_sigterm_closes_the_recording_and_exits_143(tmp_path: Path) -> None:
    proc, master, rec = _start_capture(tmp_path)
    payload = random.Random(1).randbytes(50_000)
    _write(master, payload)
    _wait_for(lambda: (rec / "console.raw").stat().st_size == len(payload))
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=20)
    os.close(master)
    assert proc.returncode == 143, err
    meta = json.loads((rec / "meta.json").read_text())
    assert meta["finished"] is True
    assert meta["console_raw_sha256"] == hashlib.sha256(payload).hexdigest()
    assert b"Traceback" not in err


def test_sigkill_leaves_an_unfinished_recording_that_show_reports(tmp_path: Path) -> None:
    proc, master, rec = _start_capture(tmp_path)
    payload = b"(XEN) before the kill\r\n" * 500
    _write(master, payload)
    _wait_for(lambda: (rec / "console.raw").stat().st_size == len(payload))
    proc.kill()
    proc.wait(10)
    os.close(master)
    assert (rec / "console.raw").read_bytes() == payload
    out = io.StringIO()
    assert main(["show", str(rec)], out=out) == 3
    assert "UNFINISHED" in out.getvalue()


def _limit_file_size() -> None:
    resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))


def test_full_disk_is_a_clear_error_with_exact_counts(tmp_path: Path) -> None:
    proc, master, rec = _start_capture(tmp_path, "--for", "30", preexec=_limit_file_size)
    payload = random.Random(2).randbytes(300_000)
    # Once solcap stops reading, the pty fills up: write from a thread that may stay blocked.
    writer = threading.Thread(target=_write_until_closed, args=(master, payload), daemon=True)
    writer.start()
    _, err = proc.communicate(timeout=40)
    os.close(master)
    writer.join(10)
    assert proc.returncode == 5, err
    lines = err.decode().strip().splitlines()
    assert len(lines) == 1 and "100000 bytes are safely recorded" in lines[0], err
    raw = (rec / "console.raw").read_bytes()
    assert raw == payload[:100_000]


def test_hostile_bytes_and_huge_lines_are_stored_exactly(tmp_path: Path) -> None:
    rng = random.Random(3)
    pieces = [
        bytes(range(256)) * 4,
        b"\x00" * 1000,
        b"\x1b[7m\x1b[5;3H\xff\xfe\xc3(\r\r\n",
        b"x" * (3 * 1024 * 1024),  # a 3 MiB line without a newline
        rng.randbytes(10_000),
    ]
    rec = Recording("h", root=tmp_path)
    for piece in pieces:
        for i in range(0, len(piece), 7919):
            rec.feed(piece[i : i + 7919])
    summary = rec.close()
    raw = (summary.path / "console.raw").read_bytes()
    assert hashlib.sha256(raw).digest() == hashlib.sha256(b"".join(pieces)).digest()
    longest = max(len(line) for line in (summary.path / "console.log").read_bytes().splitlines())
    assert longest < 100 * 1024  # the human log splits giant lines instead of holding them


def test_xen_and_dom0_lines_are_separated_on_real_bytes(tmp_path: Path) -> None:
    sample = (SAMPLE / "sol-session-grub2.06-xen4.17.raw").read_bytes()
    rec = Recording("h", root=tmp_path)
    for i in range(0, len(sample), 333):
        rec.feed(sample[i : i + 333])
    summary = rec.close()
    xen = (summary.path / "xen.log").read_text(errors="replace").splitlines()
    dom0 = (summary.path / "dom0.log").read_text(errors="replace").splitlines()
    assert xen and all(line.split("] ", 1)[1].startswith("(XEN)") for line in xen)
    assert not any("(XEN)" in line for line in dom0)
    # The mid-line interleaving in the sample ends up split, not glued together.
    assert any(line.endswith("clocksource: timekeeping watchdog") for line in dom0)
    assert any(line.endswith("(XEN) IO APIC #0......") for line in xen)


def test_show_replay_and_asciicast(tmp_path: Path) -> None:
    rec = Recording("h", root=tmp_path)
    data = [
        b"GRUB\r\n",
        "Dom0 \u00e9t\u00e9\r\n".encode()[:7],
        "Dom0 été\r\n".encode()[7:],
        b"\xff bad byte\r\n",
    ]
    for chunk in data:
        rec.feed(chunk)
    start = rec.offset
    rec.feed(b"(XEN) 'h' pressed -> showing installed handlers\r\n")
    rec.add_segment("h", start, rec.offset, complete=True)
    summary = rec.close()

    out = io.StringIO()
    assert main(["show", str(summary.path)], out=out) == 0
    assert "complete: console.raw matches meta.json" in out.getvalue()

    buffer = io.BytesIO()
    info = recordings.load(summary.path)
    recordings.replay(info, buffer, speed=0)
    assert buffer.getvalue() == (summary.path / "console.raw").read_bytes()

    cast = tmp_path / "s.cast"
    assert main(["export", str(summary.path), "--asciicast", str(cast)], out=io.StringIO()) == 0
    lines = cast.read_text().splitlines()
    assert json.loads(lines[0])["version"] == 2
    text = "".join(json.loads(line)[2] for line in lines[1:])
    assert text == (summary.path / "console.raw").read_bytes().decode("utf-8", "replace")
    assert "été" in text
