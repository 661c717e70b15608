"""Bad files: size caps, depth caps, host-range caps, non-UTF-8, odd recordings — one line, exit 2.

Each case was a traceback, a hang or an out-of-memory kill before: a runbook read from
``/dev/zero``, a TOML nested thousands deep, INI ``node[1:5:0]``, ``show`` on a recording whose
meta.json is a list, ``export --asciicast`` to a directory, a password file that is not UTF-8.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from solcap.cli import main

TOP = Path(__file__).resolve().parents[2]
RUNBOOK = str(TOP / "runbooks" / "harvest-debug-keys.yaml")


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    try:
        status = main(argv)
    except SystemExit as stop:
        status = int(stop.code or 0)
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err
    return status, err.strip()


def _write(path: Path, data: bytes | str, mode: int = 0o600) -> str:
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    path.chmod(mode)
    return str(path)


DEEP_TOML = "a = " + "[" * 5000 + "]" * 5000 + "\n"
DEEP_TABLES = 'name = "deep"\na = ' + "{b = " * 3000 + "1" + "}" * 3000 + "\n"
DEEP_YAML = "a: " + "[" * 5000 + "]" * 5000 + "\n"


@pytest.mark.parametrize(
    ("name", "content", "argv", "needle"),
    [
        ("deep.toml", DEEP_TOML, ["profile", "validate", "{f}"], "nested more than 64 levels"),
        ("deep.toml", DEEP_TABLES, ["profile", "validate", "{f}"], "nested more than 64 levels"),
        ("deep.toml", DEEP_TOML, ["run", RUNBOOK, "--inventory", "{f}", "--dry-run"], "nested"),
        ("deep.yaml", DEEP_YAML, ["run", RUNBOOK, "--inventory", "{f}", "--dry-run"], "nested"),
        ("deep.yaml", DEEP_YAML, ["run", "{f}", "--host", "/dev/null", "--dry-run"], "nested"),
        (
            "inv.ini",
            "[all]\nnode[1:5:0] serial=/dev/null\n",
            ["run", RUNBOOK, "--inventory", "{f}", "--dry-run"],
            "inv.ini:2:1: all: host range '[1:5:0]': the step must be at least 1",
        ),
        (
            "inv.ini",
            "[all]\nnode[1:99999999] serial=/dev/null\n",
            ["run", RUNBOOK, "--inventory", "{f}", "--dry-run"],
            "expands to more than 100000 hosts",
        ),
        (
            "inv.ini",
            "[all]\nn[1:1000][1:1000] serial=/dev/null\n",
            ["run", RUNBOOK, "--inventory", "{f}", "--dry-run"],
            "expands to more than 100000 hosts",
        ),
        (
            "inv.ini",
            "[all]\nnode[9:1] serial=/dev/null\n",
            ["run", RUNBOOK, "--inventory", "{f}", "--dry-run"],
            "the end comes before the start",
        ),
        (
            "inv.yaml",
            "all:\n  hosts:\n    node[a:c:0]:\n      serial: /dev/null\n",
            ["run", RUNBOOK, "--inventory", "{f}", "--dry-run"],
            "inv.yaml:3:5: all: host range '[a:c:0]'",
        ),
        (
            "inv.yaml",
            b"name: x\n\xff\xfe: 1\n",
            ["run", RUNBOOK, "--inventory", "{f}", "--dry-run"],
            "inv.yaml:2: not UTF-8 text (byte 0xff)",
        ),
        (
            "rb.yaml",
            b"name: x\nsteps:\n  - \xc3(\n",
            ["run", "{f}", "--host", "/dev/null", "--dry-run"],
            "rb.yaml:3: not UTF-8 text (byte 0xc3)",
        ),
        ("p.toml", b'name = "p\xff"\n', ["profile", "validate", "{f}"], "p.toml:1: not UTF-8"),
        (
            "pw",
            b"\xff\xfe\n",
            ["power", "ipmi://a@127.0.0.1:9", "status", "--password-file", "{f}"],
            "not UTF-8",
        ),
    ],
)
def test_bad_file_is_one_line_exit_2(
    name: str,
    content: str | bytes,
    argv: list[str],
    needle: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("IPMI_PASSWORD", raising=False)
    path = _write(tmp_path / name, content)
    status, err = _run([a.replace("{f}", path) for a in argv], capsys)
    assert status == 2, err
    assert needle in err, err
    assert not (tmp_path / "recordings").exists()


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["run", "/dev/zero", "--host", "/dev/null", "--dry-run"], "runbook file is larger"),
        (["run", RUNBOOK, "--inventory", "/dev/zero", "--dry-run"], "inventory file is larger"),
        (["profile", "validate", "/dev/zero"], "profile file is larger"),
        (["run", RUNBOOK, "--inventory", "/", "--dry-run"], "/: is a directory"),
        (["run", "/tmp/a\x00b.yaml", "--host", "/dev/null", "--dry-run"], "not a valid file name"),
    ],
)
@pytest.mark.timeout(30)
def test_endless_or_odd_files_are_capped(
    argv: list[str], needle: str, capsys: pytest.CaptureFixture[str]
) -> None:
    status, err = _run(argv, capsys)
    assert status == 2 and needle in err, err


def _recording(tmp_path: Path, meta: str) -> Path:
    rec = tmp_path / "rec"
    rec.mkdir()
    (rec / "console.raw").write_bytes(b"hello\n")
    (rec / "console.timing").write_text("O 0.1 6\n")
    (rec / "meta.json").write_text(meta)
    return rec


@pytest.mark.parametrize(
    ("meta", "needle"),
    [
        ("[1]", "meta.json: expected a JSON object, got list"),
        ('"x"', "expected a JSON object, got str"),
        ('{"segments": 3}', "meta.json: segments: expected a list"),
        ('{"segments": [1]}', "segments[0]: expected an object"),
        ('{"finished": true, "segments": [{"name": "h"}]}', "segments[0].start: missing or not"),
        ('{"segments": [{"name": "h", "start": "0"}]}', "segments[0].start"),
        ("[" * 100_000, "meta.json"),
        ("{\xff", "meta.json"),
    ],
)
def test_show_on_a_malformed_meta_json(
    meta: str, needle: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rec = _recording(tmp_path, meta)
    for command in (["show", str(rec)], ["replay", str(rec), "--speed", "0"]):
        status, err = _run(command, capsys)
        assert status == 2 and needle in err, err


def test_export_to_a_directory_or_missing_parent(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rec = _recording(tmp_path, "{}")
    (tmp_path / "outdir").mkdir()
    status, err = _run(["export", str(rec), "--asciicast", str(tmp_path / "outdir")], capsys)
    assert status == 2 and "is a directory" in err, err
    status, err = _run(["export", str(rec), "--asciicast", str(tmp_path / "no/x.cast")], capsys)
    assert status == 2 and "cannot write" in err, err
    assert os.listdir(tmp_path / "outdir") == []


def test_a_good_export_still_works(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rec = _recording(tmp_path, "{}")
    assert main(["export", str(rec), "--asciicast", str(tmp_path / "x.cast")]) == 0
    lines = (tmp_path / "x.cast").read_text().splitlines()
    assert lines[1] == '[0.1, "o", "hello\\n"]'


@pytest.mark.parametrize("command", ["show", "replay"])
def test_a_recording_path_with_a_nul_byte_is_one_line(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Found by the CLI fuzz suite: os.open raised ValueError ("embedded null byte"), exit 1.
    status, err = _run([command, f"{tmp_path}/rec\0x"], capsys)
    assert status == 2
    assert "NUL byte" in err
