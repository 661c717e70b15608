"""``solcap show`` and ``solcap replay`` as an operator runs them (docs/recordings.md).

Each command runs in its own process, so stdout is the real byte stream a shell would get:
``show --key`` must put the dump's exact bytes there, ``replay`` the exact ``console.raw``.
Tampered recordings are reported, not trusted: CORRUPT when ``console.raw`` no longer hashes
to what ``meta.json`` says, INCOMPLETE when bytes were received and not written, UNFINISHED
when solcap never closed it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from solcap.capture.recording import Recording

pytestmark = pytest.mark.timeout(90)
ROOT = Path(__file__).resolve().parents[2]
DUMP = b"(XEN) 'h' pressed -> showing installed handlers\r\n(XEN)  key '\xff' odd\r\n"
GAP = 0.6  # seconds between the two halves of the recording


def _solcap(*args: str) -> tuple[subprocess.CompletedProcess[bytes], float]:
    start = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "solcap.cli", *args],
        cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
        capture_output=True,
        timeout=80,
        stdin=subprocess.DEVNULL,
    )
    return done, time.monotonic() - start


@pytest.fixture
def recording(tmp_path: Path) -> Path:
    rec = Recording("h", root=tmp_path)
    rec.feed(b"GRUB\r\n\x1b[7m*Xen\x1b[m\r\n")
    time.sleep(GAP)  # a pause the timing file must keep (this is the input, not a wait)
    start = rec.offset
    rec.feed(DUMP)
    rec.add_segment("h", start, rec.offset, complete=True)
    rec.feed(b"root@node001:~# ")
    return rec.close().path


def test_show_summarises_an_intact_recording(recording: Path) -> None:
    done, _ = _solcap("show", str(recording))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.decode().splitlines()
    assert lines[0] == f"recording: {recording}"
    assert "  complete: console.raw matches meta.json" in lines
    assert [line.split()[:4] for line in lines if line.startswith("  key")] == [
        ["key", "h:", str(len(DUMP)), "bytes"]
    ]


def test_show_reports_corrupt_when_one_byte_of_console_raw_changes(recording: Path) -> None:
    raw = recording / "console.raw"
    data = bytearray(raw.read_bytes())
    data[3] ^= 0x01  # same size, one bit: only the hash can tell
    raw.write_bytes(bytes(data))
    done, _ = _solcap("show", str(recording))
    assert done.returncode == 3, done.stdout
    lines = done.stdout.decode().splitlines()
    assert "  CORRUPT: console.raw no longer matches the SHA-256 in meta.json" in lines
    assert not any("complete: console.raw" in line for line in lines)


def test_show_reports_incomplete_when_bytes_were_not_written(recording: Path) -> None:
    meta_path = recording / "meta.json"
    meta = json.loads(meta_path.read_text())
    meta["unwritten_bytes"] = 4096  # what a full disk leaves (test_durability checks it live)
    meta_path.write_text(json.dumps(meta))
    done, _ = _solcap("show", str(recording))
    assert done.returncode == 3, done.stdout
    assert "  INCOMPLETE: 4096 bytes received were not written" in done.stdout.decode()


def test_show_reports_unfinished_when_meta_says_so(recording: Path) -> None:
    meta_path = recording / "meta.json"
    meta = json.loads(meta_path.read_text())
    meta["finished"] = False
    meta_path.write_text(json.dumps(meta))
    done, _ = _solcap("show", str(recording))
    assert done.returncode == 3
    assert "  UNFINISHED: solcap did not close this recording" in done.stdout.decode()


def test_show_key_prints_the_dumps_exact_bytes(recording: Path) -> None:
    done, _ = _solcap("show", str(recording), "--key", "h")
    assert (done.returncode, done.stderr) == (0, b"")
    assert done.stdout == DUMP  # byte-exact, the non-UTF-8 byte included
    missing, _ = _solcap("show", str(recording), "--key", "q")
    assert missing.returncode == 2
    assert missing.stderr.decode() == (
        f"solcap: error: {recording}: no segment for key 'q' (recorded: h)\n"
    )


def test_show_key_refuses_a_dump_that_no_longer_matches_its_sha256(recording: Path) -> None:
    meta = json.loads((recording / "meta.json").read_text())
    (segment,) = meta["segments"]
    dump = recording / segment["file"]
    data = bytearray(dump.read_bytes())
    data[-3] ^= 0x01  # same size, one bit: only the SHA-256 in meta.json can tell
    dump.write_bytes(bytes(data))
    done, _ = _solcap("show", str(recording), "--key", "h")
    assert done.returncode == 3
    assert done.stdout == b""  # not one byte of a dump that is not the one recorded
    assert done.stderr.decode() == (
        f"solcap: {recording}: CORRUPT: {segment['file']} no longer matches the SHA-256 "
        "in meta.json\n"
    )


def test_replay_plays_console_raw_back_exactly(recording: Path) -> None:
    done, _ = _solcap("replay", str(recording), "--speed", "0")
    assert done.returncode == 0, done.stderr
    assert done.stdout == (recording / "console.raw").read_bytes()


def test_replay_speed_stretches_the_recorded_pause(recording: Path) -> None:
    # At half speed the 0.6 s pause takes 1.2 s; a lower bound holds however loaded we are.
    done, took = _solcap("replay", str(recording), "--speed", "0.5", "--max-delay", "10")
    assert done.returncode == 0 and done.stdout == (recording / "console.raw").read_bytes()
    assert took >= GAP / 0.5, took


def test_replay_max_delay_caps_every_pause(recording: Path) -> None:
    # At 1/100 speed the pause would take 60 s; --max-delay 0.3 caps it (and the test's
    # 80 s subprocess bound would catch a cap that is ignored).
    done, took = _solcap("replay", str(recording), "--speed", "0.01", "--max-delay", "0.3")
    assert done.returncode == 0 and done.stdout == (recording / "console.raw").read_bytes()
    assert 0.3 <= took < 30, took
