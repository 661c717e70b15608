"""``show``, ``replay`` and ``export`` read only files inside the recording.

A recording can come from anywhere (copied from a colleague, unpacked from a ticket) and is
often read as root: meta.json's segment ``file`` and every file solcap reads must stay inside
the directory, and a symlink planted in place of a file must not be followed.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pytest

from solcap.capture.recording import Recording
from solcap.cli import main

pytestmark = pytest.mark.timeout(60)

SECRET = b"root:$6$very-secret-hash:19000:0:99999:7:::\n"
DUMP = b"(XEN) 'h' pressed -> showing installed handlers\r\n"


@pytest.fixture
def recording(tmp_path: Path) -> Path:
    rec = Recording("h", root=tmp_path / "rec")
    rec.feed(b"boot\r\n")
    start = rec.offset
    rec.feed(DUMP)
    rec.add_segment("h", start, rec.offset, complete=True)
    path = rec.close().path
    (tmp_path / "secret").write_bytes(SECRET)
    return path


def _set_segment_file(recording: Path, value: str) -> None:
    meta_path = recording / "meta.json"
    meta = json.loads(meta_path.read_text())
    meta["segments"][0]["file"] = value
    meta_path.write_text(json.dumps(meta))


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    out = io.StringIO()
    status = main(argv, out=out)
    return status, out.getvalue(), capsys.readouterr().err


def test_segment_file_inside_is_shown(recording: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _err = _run(["show", str(recording), "--key", "h"], capsys)
    assert status == 0
    assert out.encode() == DUMP


@pytest.mark.parametrize(
    "value",
    [
        "../../../../etc/hostname",
        "/etc/hostname",
        "../../../secret",
        "keys/../../../../secret",
        "keys/./h.txt",
        "",
    ],
)
def test_segment_file_outside_is_refused(
    recording: Path, capsys: pytest.CaptureFixture[str], value: str
) -> None:
    # Before: show --key read whatever the path named (/etc/hostname, ../../secret).
    _set_segment_file(recording, value)
    status, out, err = _run(["show", str(recording), "--key", "h"], capsys)
    assert status == 2
    assert out == ""
    assert err.count("\n") == 1
    assert f"{recording / 'meta.json'}: segments[0].file: " in err


def test_segment_file_symlinked_outside_is_refused(
    recording: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = recording / "keys" / "h.txt"
    target.unlink()
    target.symlink_to(tmp_path / "secret")
    status, out, err = _run(["show", str(recording), "--key", "h"], capsys)
    assert status == 2
    assert SECRET.decode() not in out + err
    assert "symbolic link" in err and err.count("\n") == 1


def test_symlinked_keys_directory_is_refused(
    recording: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "h.txt").write_bytes(SECRET)
    (recording / "keys" / "h.txt").unlink()
    (recording / "keys").rmdir()
    (recording / "keys").symlink_to(elsewhere, target_is_directory=True)
    status, out, err = _run(["show", str(recording), "--key", "h"], capsys)
    assert status == 2
    assert SECRET.decode() not in out + err


@pytest.mark.parametrize("name", ["console.raw", "console.timing", "meta.json"])
@pytest.mark.parametrize("command", ["show", "replay", "export"])
def test_symlinked_recording_files_are_refused(
    recording: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    name: str,
    command: str,
) -> None:
    # Before: console.raw -> /etc/shadow made `replay` print it and `export` copy it.
    (recording / name).unlink()
    (recording / name).symlink_to(tmp_path / "secret")
    argv = [command, str(recording)]
    if command == "replay":
        argv += ["--speed", "0"]
    cast = tmp_path / "out.cast"
    if command == "export":
        argv += ["--asciicast", str(cast)]
    status, out, err = _run(argv, capsys)
    if command == "show" and name == "console.timing":
        assert status == 0  # show does not read the timing file
        return
    assert status == 2, (out, err)
    assert "very-secret" not in out + err
    assert not cast.exists() or "very-secret" not in cast.read_text()
    assert err.count("\n") == 1


def test_fifo_in_place_of_console_raw_is_refused_not_waited_on(
    recording: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (recording / "console.raw").unlink()
    os.mkfifo(recording / "console.raw")
    status, _out, err = _run(["show", str(recording)], capsys)
    assert status == 2
    assert "not a regular file" in err
