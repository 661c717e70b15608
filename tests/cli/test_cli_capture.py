"""`solcap capture` against a real pseudo-terminal, and the CLI's error contract."""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from solcap.cli import main

pytestmark = pytest.mark.timeout(60)


def _pty() -> tuple[int, str]:
    master, slave = os.openpty()
    path = os.ttyname(slave)
    os.close(slave)
    return master, path


def _connected(root: Path) -> threading.Event:
    """Set once solcap has opened the port (its "connect" event is on disk).

    pyserial flushes the input queue when it opens a port, so the far side must not talk
    before that; polling the events file is the only outside view of the moment.
    """
    event = threading.Event()

    def watch() -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if any("connect" in p.read_text() for p in root.rglob("events.jsonl")):
                event.set()
                return
            time.sleep(0.01)

    threading.Thread(target=watch, daemon=True).start()
    return event


def _writer(master: int, data: bytes, started: threading.Event) -> threading.Thread:
    def run() -> None:
        assert started.wait(20)
        view = memoryview(data)
        rng = random.Random(7)
        while view:
            n = os.write(master, view[: rng.randint(1, 4096)])
            view = view[n:]

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_capture_until_records_exact_bytes(tmp_path: Path) -> None:
    master, path = _pty()
    payload = random.Random(3).randbytes(200_000).replace(b"DONE", b"done") + b"\r\nDONE\r\n"
    out = io.StringIO()
    writer = _writer(master, payload, _connected(tmp_path))
    try:
        status = main(
            ["capture", path, "--until", "DONE", "--root", str(tmp_path), "--host", "h1"], out=out
        )
    finally:
        writer.join(10)
        os.close(master)
    assert status == 0
    recording = Path(out.getvalue().splitlines()[0].removeprefix("recording: "))
    raw = (recording / "console.raw").read_bytes()
    # Everything up to the match was written before it, so it must all be there, in order.
    assert raw[: len(payload)] == payload[: len(raw)]
    assert (
        hashlib.sha256(raw[: payload.index(b"DONE") + 4]).hexdigest()
        == hashlib.sha256(payload[: payload.index(b"DONE") + 4]).hexdigest()
    )
    meta = json.loads((recording / "meta.json").read_text())
    assert meta["stop_reason"] == "matched --until"
    assert recording.parent.name == "h1"


def test_capture_idle_stops_when_quiet(tmp_path: Path) -> None:
    master, path = _pty()
    payload = b"(XEN) Xen version 4.17\r\n" * 1000
    out = io.StringIO()
    writer = _writer(master, payload, _connected(tmp_path))
    try:
        status = main(
            ["capture", path, "--idle", "0.5", "--for", "30", "--root", str(tmp_path)], out=out
        )
    finally:
        writer.join(10)
        os.close(master)
    assert status == 0
    recording = Path(out.getvalue().splitlines()[0].removeprefix("recording: "))
    assert (recording / "console.raw").read_bytes() == payload


def test_missing_device_is_one_line_exit_3(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "solcap.cli",
            "capture",
            "/dev/does-not-exist-solcap",
            "--for",
            "1",
            "--root",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=30,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 3, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "does-not-exist-solcap" in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["capture", "/dev/null", "--until", "("], "--until"),
        (["capture", "/dev/null", "--line", "38400,9x9"], "38400,9x9"),
        (["harvest", "/dev/null", "--keys", "qq"], "--keys"),
        (["harvest", "/dev/null", "--keys", "R"], "R"),
    ],
)
def test_bad_input_is_exit_2_without_traceback(
    argv: list[str], needle: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main([*argv, "--root", str(tmp_path)] if argv[0] != "demo" else argv)
    err = capsys.readouterr().err
    assert status == 2
    assert needle in err and len(err.strip().splitlines()) == 1
