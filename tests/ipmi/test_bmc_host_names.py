"""A BMC host name that does not resolve: one line, exit 3, naming the host, for every command.

pyghmi resolves names itself and reported a failure as "internal error: IpmiException: Unable
to transmit to specified address" (exit 1). No name may be looked up off this machine, so the
resolver is the one stand-in here: ``socket.getaddrinfo`` answers "Name or service not known"
for every name but literals (as the system resolver does for a name nobody serves) and records
what it was asked; literals still reach the real one.
"""

from __future__ import annotations

import ipaddress
import socket
from pathlib import Path
from typing import Any

import pytest

from solcap.cli import main

pytestmark = pytest.mark.timeout(60)

NAME = "bmc-17.example.invalid"


@pytest.fixture
def asked(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    real = socket.getaddrinfo
    names: list[str] = []

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        text = host.decode() if isinstance(host, bytes) else str(host)
        try:
            ipaddress.ip_address(text)
        except ValueError:
            names.append(text)
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known") from None
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setenv("IPMI_PASSWORD", "secret")
    return names


@pytest.mark.parametrize(
    "argv",
    [
        ["capture", f"ipmi://admin@{NAME}", "--for", "1"],
        ["capture", f"ipmi://admin@{NAME}:9623?cipher=3", "--for", "1"],
        ["harvest", f"ipmi://admin@{NAME}", "--keys", "h"],
        ["power", f"ipmi://admin@{NAME}", "status"],
        ["sol-info", f"ipmi://admin@{NAME}"],
    ],
    ids=lambda argv: " ".join(argv[:2]),
)
def test_an_unresolvable_bmc_name_is_one_line_exit_3_naming_the_host(
    argv: list[str],
    asked: list[str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    root = ["--root", str(tmp_path / "rec")] if argv[0] in ("capture", "harvest") else []
    status = main([*argv, *root])
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert status == 3, err
    assert len(lines) == 1, err
    assert lines[0].startswith(f"solcap: error: {NAME}"), err
    assert f"cannot resolve the BMC's host name '{NAME}': Name or service not known" in err
    assert "internal error" not in err and "Traceback" not in err
    assert NAME in asked
    assert not (tmp_path / "rec").exists()
