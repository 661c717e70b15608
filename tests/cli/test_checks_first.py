"""Checks first: a refused command is exit 2 and one line naming the option or file, and it has
created nothing and sent nothing.

Each case runs ``solcap.cli.main`` in-process in an empty working directory while a UDP socket
(where an ``ipmi://`` BMC would be) and a TCP listener (where an ``ssh://`` host would be) wait
on 127.0.0.1. Afterwards the UDP socket must hold no datagram, the listener no connection, and
the working directory must be exactly as it was: no recording directory, no lab file, no
summary. Each of these cases used to create or send something first (a recording directory
for ``--root ''``, an SSH login before ``dom0 --key Z`` was looked at, a console opened before
``grub apply --oneshot --power-cycle`` found that its BMC address was bad) or to fail with a
traceback (``lab down --dir FILE``).
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from solcap.cli import main

pytestmark = pytest.mark.timeout(60)

PROFILE = "xen-serial-debug"


@dataclass(frozen=True)
class Peers:
    """Where the far sides would be: a BMC's UDP port and an SSH host's TCP port."""

    udp: socket.socket
    tcp: socket.socket

    @property
    def bmc(self) -> str:
        return f"ipmi://admin@127.0.0.1:{self.udp.getsockname()[1]}"

    @property
    def ssh(self) -> str:
        return f"ssh://root@127.0.0.1:{self.tcp.getsockname()[1]}"

    def assert_nothing_sent(self) -> None:
        self.udp.setblocking(False)
        with pytest.raises(BlockingIOError):
            data = self.udp.recv(4096)
            pytest.fail(f"a datagram reached the BMC's port: {data!r}")
        self.tcp.setblocking(False)
        with pytest.raises(BlockingIOError):
            conn, _ = self.tcp.accept()
            conn.close()
            pytest.fail("a connection reached the SSH host's port")


@pytest.fixture
def peers() -> Iterator[Peers]:
    with (
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp,
        socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp,
    ):
        udp.bind(("127.0.0.1", 0))
        tcp.bind(("127.0.0.1", 0))
        tcp.listen(4)
        yield Peers(udp, tcp)


def _tree(top: Path) -> dict[str, tuple[int, int]]:
    out: dict[str, tuple[int, int]] = {}
    for dirpath, dirnames, filenames in os.walk(top):
        for name in [*dirnames, *filenames]:
            info = os.lstat(os.path.join(dirpath, name))
            out[os.path.join(dirpath, name)] = (info.st_mode, info.st_size)
    return out


class Refuse:
    """Runs a command line in ``work`` and asserts it was refused first (see module docstring)."""

    def __init__(self, work: Path, peers: Peers, capsys: pytest.CaptureFixture[str]) -> None:
        self.work, self.peers, self.capsys = work, peers, capsys

    def __call__(self, argv: list[str], field: str) -> str:
        before = _tree(self.work)
        cwd = os.getcwd()
        os.chdir(self.work)
        try:
            with open(os.devnull) as null, contextlib.redirect_stdout(null):
                try:
                    status = main(argv)
                except SystemExit as stop:  # argparse's refusals
                    status = int(stop.code or 0)
        finally:
            os.chdir(cwd)
        err = self.capsys.readouterr().err
        lines = err.strip().splitlines()
        assert status == 2, err
        assert len(lines) == 1, err
        assert lines[0].startswith("solcap: error: "), err
        assert field in lines[0], err
        assert "Traceback" not in err
        assert _tree(self.work) == before, "the refused command created or changed files"
        self.peers.assert_nothing_sent()
        return lines[0]


@pytest.fixture
def work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The working directory, holding a regular file ``plain`` and a directory ``adir``."""
    (tmp_path / "plain").write_text("x\n")
    (tmp_path / "adir").mkdir()
    monkeypatch.setenv("IPMI_PASSWORD", "not-used")
    monkeypatch.delenv("IPMI_KGKEY", raising=False)
    monkeypatch.delenv("IPMI_KG", raising=False)
    return tmp_path


@pytest.fixture
def refused(work: Path, peers: Peers, capsys: pytest.CaptureFixture[str]) -> Refuse:
    return Refuse(work, peers, capsys)


# --------------------------------------------------------------------------- paths


@pytest.mark.parametrize("option", ["--root"])
@pytest.mark.parametrize("value", ["", "plain", "plain/rec"])
@pytest.mark.parametrize(
    "command",
    [
        ["capture", "{bmc}", "--for", "1"],
        ["harvest", "{bmc}", "--keys", "h"],
        ["console", "{bmc}"],
        ["run", "harvest-debug-keys", "--host", "{bmc}"],
        ["dom0", "{ssh}", "xl-info"],
        ["demo"],
    ],
    ids=lambda c: c[0] if isinstance(c, list) else c,
)
def test_a_root_that_cannot_be_a_directory(
    command: list[str], option: str, value: str, refused: Refuse, peers: Peers
) -> None:
    argv = [a.format(bmc=peers.bmc, ssh=peers.ssh) for a in command]
    refused([*argv, option, value], f"argument {option}")


@pytest.mark.parametrize("value", ["", "plain", "plain/lab"])
@pytest.mark.parametrize("action", [["up", "--hosts", "1"], ["down"], ["status"]])
def test_lab_dir_that_cannot_be_a_directory(action: list[str], value: str, refused: Refuse) -> None:
    refused(["lab", *action, "--dir", value], "argument --dir")


@pytest.mark.parametrize(
    ("content", "field"),
    [
        ('{"hosts": [', "lab.json:1: not valid JSON"),
        ("[]", "lab.json: hosts: expected a list"),
        ('{"hosts": 3}', "lab.json: hosts: expected a list"),
        ('{"hosts": [7]}', "lab.json: hosts[0]: expected an object"),
        ('{"hosts": [{"name": "n", "address": "127.0.0.1", "port": 1}]}', "hosts[0].pid"),
        ('{"hosts": [{"name": "n", "address": "a", "port": 1, "pid": 0}]}', "hosts[0].pid"),
        ("[" * 100_000, "lab.json"),
        (b"\xff", "lab.json:1: not UTF-8"),
    ],
)
@pytest.mark.parametrize("action", ["down", "status"])
def test_a_damaged_lab_json_is_one_line(
    action: str, content: str | bytes, field: str, work: Path, refused: Refuse
) -> None:
    data = content if isinstance(content, bytes) else content.encode()
    (work / "adir" / "lab.json").write_bytes(data)
    refused(["lab", action, "--dir", "adir"], field)


def test_grub_oneshot_recordings_that_cannot_be_a_directory(refused: Refuse, peers: Peers) -> None:
    for value in ("", "plain/rec"):
        argv = ["grub", "apply", peers.bmc, "--profile", PROFILE, "--oneshot", "--write"]
        refused([*argv, "--recordings", value], "argument --recordings")


@pytest.mark.parametrize("value", ["", "plain/s.json", "adir", "missing/s.json"])
def test_summary_is_checked_before_the_fleet_runs(
    value: str, work: Path, refused: Refuse, peers: Peers
) -> None:
    inventory = work / "adir" / "inv.yaml"
    inventory.write_text(f"hosts:\n  n1:\n    bmc: {peers.bmc}\n    password: env:IPMI_PASSWORD\n")
    for command in (["run", "harvest-debug-keys"], ["harvest"]):
        argv = [*command, "--inventory", str(inventory), "--summary", value]
        refused(argv, "argument --summary")
