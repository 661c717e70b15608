"""docs/errors.md says what the code does: its exit-code table is ExitStatus, its limits are
solcap.config.limits' numbers, and a bug is one line too."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from solcap import cli
from solcap.commands import demo as demo_command
from solcap.config import limits
from solcap.errors import ExitStatus

DOC = (Path(__file__).resolve().parents[2] / "docs" / "errors.md").read_text()


def test_the_exit_code_table_is_exit_status() -> None:
    rows = re.findall(r"^\| *(\d+) \| ([A-Z]+) \|", DOC, re.MULTILINE)
    assert {int(code): name for code, name in rows} == {int(s): s.name for s in ExitStatus}


def test_every_file_cap_is_documented() -> None:
    shown = {
        "runbook": "1 MiB",
        "inventory": "16 MiB",
        "profile": "256 KiB",
        "password": "4096 bytes",
        "meta": "16 MiB",
        "summary": "16 MiB",
        "dmesg": "64 MiB",
        "known_hosts": "16 MiB",
    }
    assert set(shown) == set(limits.FILE_CAPS)
    units = {"bytes": 1, "KiB": 1 << 10, "MiB": 1 << 20}
    for kind, text in shown.items():
        number, unit = text.split()
        assert int(number) * units[unit] == limits.FILE_CAPS[kind], kind
        assert f"| {text}" in DOC, text
    assert f"more than {limits.MAX_DEPTH} levels" in DOC
    assert f"more than {limits.MAX_HOSTS} hosts" in DOC


def test_a_bug_is_one_line_exit_1(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SOLCAP_TRACEBACK", raising=False)

    def broken(args: object, out: object) -> int:
        raise KeyError("oops")

    monkeypatch.setattr(demo_command, "cmd_demo", broken)
    status = cli.main(["demo"])
    err = capsys.readouterr().err
    assert status == ExitStatus.FAILURE
    assert err.count("\n") == 1 and err.startswith("solcap: internal error: KeyError: 'oops'")
    monkeypatch.setenv("SOLCAP_TRACEBACK", "1")
    with pytest.raises(KeyError):
        cli.main(["demo"])


def test_a_too_large_password_file_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("IPMI_PASSWORD", raising=False)
    pw = tmp_path / "pw"
    pw.write_text("secret\n" + "x" * limits.FILE_CAPS["password"])
    pw.chmod(0o600)
    status = cli.main(["power", "ipmi://a@127.0.0.1:9", "status", "--password-file", str(pw)])
    assert status == 2
    assert "password file is larger than the limit" in capsys.readouterr().err
