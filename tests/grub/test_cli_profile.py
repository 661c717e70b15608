"""`solcap profile list|show|validate` in-process, with their exit codes and output shapes."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from solcap.cli import main

pytestmark = pytest.mark.timeout(30)


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    out = io.StringIO()
    status = main(argv, out=out)
    return status, out.getvalue(), capsys.readouterr().err


def test_list_shows_shipped_profiles(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = run(["profile", "list"], capsys)
    assert status == 0 and err == ""
    names = [line.split()[0] for line in out.splitlines()]
    assert names == [
        "xen-dom0-vcpu-pin", "xen-serial-115200", "xen-serial-debug", "xen-serial-debug-full",
    ]  # fmt: skip
    assert "Xen and Dom0 console on COM1 at 38400 8N1" in out


def test_list_with_extra_directory_first(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "site.toml").write_text(
        'name = "site"\ndescription = "ours"\nextends = "xen-serial-debug"\n'
    )
    status, out, _ = run(["profile", "list", "--profiles-dir", str(tmp_path)], capsys)
    assert status == 0
    assert "site" in [line.split()[0] for line in out.splitlines()]


def test_show_resolves_inheritance(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(["profile", "show", "xen-serial-115200"], capsys)
    assert status == 0
    assert "extends:     xen-serial-debug" in out
    assert "com1=115200,8n1" in out
    assert "console:     115200 8n1" in out
    assert "dom0 options: console=hvc0 earlyprintk=xen" in out


def test_show_unknown_profile_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = run(["profile", "show", "no-such-profile"], capsys)
    assert status == 2 and out == ""
    assert err.startswith("solcap: error: no profile named 'no-such-profile'")
    assert err.count("\n") == 1


def test_validate_good_and_bad_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "good.toml"
    good.write_text('name = "good"\nextends = "xen-serial-debug"\n')
    bad = tmp_path / "bad.toml"
    bad.write_text(
        'name = "bad"\n\n[xen]\noptions = ["com1=115200,8n1", "console=com1"]\n\n'
        "[console]\nbaud = 38400\n"
    )
    typo = tmp_path / "typo.toml"
    typo.write_text('name = "typo"\n[xen]\noption = ["loglvl=all"]\n')
    status, out, err = run(["profile", "validate", str(good), str(bad), str(typo)], capsys)
    assert status == 2
    assert out == f"{good}: ok (good)\n"
    lines = err.splitlines()
    assert len(lines) == 2  # one line per bad file
    assert lines[0].startswith(f"{bad}:4: ")  # file:line: field: message
    assert "115200" in lines[0] and "38400" in lines[0]
    assert lines[1].startswith(f"{typo}:3: xen.option: unknown field")


def test_validate_all_good_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    shipped = sorted(Path(__file__).resolve().parents[2].joinpath("profiles").glob("*.toml"))
    status, out, err = run(["profile", "validate", *map(str, shipped)], capsys)
    assert status == 0 and err == ""
    assert out.count(": ok (") == len(shipped) == 4


def test_validate_toml_syntax_error_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text('name = "broken"\n[xen\n')
    status, _, err = run(["profile", "validate", str(broken)], capsys)
    assert status == 2
    assert err.startswith(f"{broken}:2: TOML syntax") and err.count("\n") == 1
