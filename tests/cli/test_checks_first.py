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


@pytest.mark.parametrize("value", ["", "plain", "plain/rec"])
def test_web_root_that_cannot_be_a_directory(value: str, refused: Refuse) -> None:
    """``web --root ''`` served the working directory (``Path('')`` is ``.``); now it is
    refused while parsing, before anything listens (port 0: a start would bind, not clash)."""
    line = refused(["web", "--listen", "127.0.0.1:0", "--root", value], "argument --root")
    if not value:
        assert line == (
            "solcap: error: web: argument --root: an empty path; give a directory or file name"
            " (see solcap web --help)"
        )


@pytest.mark.parametrize("value", ["", " ", "a\0b"])
def test_web_control_and_tls_files_that_cannot_name_a_file(value: str, refused: Refuse) -> None:
    """``web --control ''`` passed the existence check (``Path('')`` is ``.``, which exists) and
    failed later as a bad socket; an empty or NUL path is refused while parsing."""
    argv = ["web", "--listen", "127.0.0.1:0", "--root", "recs", "--control", value]
    line = refused(argv, "argument --control")
    if not value:
        assert line == (
            "solcap: error: web: argument --control: an empty path; give a directory or file"
            " name (see solcap web --help)"
        )
    for option in ("--tls-cert", "--tls-key"):
        argv = ["web", "--listen", "127.0.0.1:0", "--root", "recs", option, value]
        refused(argv, f"argument {option}")


@pytest.mark.parametrize("value", ["", "plain/s.json", "adir", "missing/s.json"])
def test_summary_is_checked_before_the_fleet_runs(
    value: str, work: Path, refused: Refuse, peers: Peers
) -> None:
    inventory = work / "adir" / "inv.yaml"
    inventory.write_text(f"hosts:\n  n1:\n    bmc: {peers.bmc}\n    password: env:IPMI_PASSWORD\n")
    for command in (["run", "harvest-debug-keys"], ["harvest"]):
        argv = [*command, "--inventory", str(inventory), "--summary", value]
        refused(argv, "argument --summary")


# --------------------------------------------------------------------------- dom0


@pytest.mark.parametrize(
    ("options", "field"),
    [
        (["--key", "Z", "--serial", "loop://"], "--key: 'Z' is not a Xen debug key"),
        (["--key", "\x01", "--serial", "loop://"], "--key: '\\x01' is not a Xen debug key"),
        (["--key", "hq", "--serial", "loop://"], "--key: 'hq' is not a single"),
        (["--key", "R", "--serial", "loop://"], "--key: refusing state-changing debug keys R"),
        (["--key", "q", "--serial", "loop://", "--line", "12345,8n1"], "--line: bad baud"),
        (["--key", "q", "--serial", "nope://x"], "--serial: unknown console scheme"),
        (["--key", "q", "--serial", "ipmi://a@127.0.0.1:0"], "--serial: ipmi://a@127.0.0.1:0"),
        (["--key", "q", "--serial", "socket://127.0.0.1"], "--serial: socket://127.0.0.1"),
        (["--key", "q", "--serial", "spy://x"], "--serial: spy:// is a debug transport"),
        (["--key", "q", "--serial", ""], "--serial: empty console target"),
        (["--key", "q"], "--key needs --serial"),
        (["--serial", "loop://"], "--serial is recorded only for --key"),
    ],
)
def test_dom0_key_serial_and_line_are_checked_before_the_login(
    options: list[str], field: str, refused: Refuse, peers: Peers
) -> None:
    refused(["dom0", peers.ssh, "xl-info", *options], field)


def test_dom0_makes_its_recording_only_once_logged_in(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A Dom0 that cannot be reached (exit 3) leaves no empty recording directory."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as closed:
        closed.bind(("127.0.0.1", 0))  # bound, never listening: the connection is refused
        url = f"ssh://root@127.0.0.1:{closed.getsockname()[1]}"
        status = main(["dom0", url, "xl-info", "--root", str(tmp_path / "rec")])
    err = capsys.readouterr().err
    assert status == 3, err
    assert len(err.strip().splitlines()) == 1 and "127.0.0.1" in err, err
    assert not (tmp_path / "rec").exists()


# --------------------------------------------------------------------------- grub


@pytest.mark.parametrize("action", ["show", "apply"])
@pytest.mark.parametrize("entry", ["(", "[", "*x"])
def test_a_bad_entry_regex_is_refused_first(
    action: str, entry: str, refused: Refuse, peers: Peers
) -> None:
    argv = ["grub", action, peers.ssh, "--profile", PROFILE, "--entry", entry]
    refused(argv, "--entry: ")


def test_a_bad_entry_regex_is_refused_before_a_oneshot_console_opens(
    refused: Refuse, peers: Peers
) -> None:
    console = f"socket://127.0.0.1:{peers.tcp.getsockname()[1]}"
    argv = ["grub", "apply", console, "--profile", PROFILE, "--oneshot", "--write"]
    refused([*argv, "--entry", "("], "--entry: ")


@pytest.mark.parametrize(
    ("bmc", "field"),
    [
        ("{bmc}", "no IPMI password for admin@127.0.0.1"),  # IPMI_PASSWORD unset here
        ("ipmi://admin@127.0.0.1:0", "--bmc: ipmi://admin@127.0.0.1:0: bad port 0"),
        ("ipmi://admin@[::1", "--bmc: ipmi://admin@[::1"),
        ("ipmi://127.0.0.1", "--bmc: ipmi://127.0.0.1: expected ipmi://user@host"),
        ("ipmi://admin@127.0.0.1?cipher=0", "--bmc: ipmi://admin@127.0.0.1?cipher=0"),
        ("ssh://root@127.0.0.1", "--bmc ssh://root@127.0.0.1: power control needs an ipmi://"),
        (None, "--power-cycle needs --bmc"),
    ],
)
def test_oneshot_power_cycle_checks_the_bmc_before_the_console(
    bmc: str | None, field: str, refused: Refuse, peers: Peers, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The console (a TCP listener here) is not opened, and the BMC gets no packet, until the
    BMC's address and credentials are known to be usable."""
    monkeypatch.delenv("IPMI_PASSWORD")
    console = f"socket://127.0.0.1:{peers.tcp.getsockname()[1]}"
    argv = ["grub", "apply", console, "--profile", PROFILE, "--oneshot", "--write"]
    argv += ["--power-cycle"]
    if bmc is not None:
        argv += ["--bmc", bmc.format(bmc=peers.bmc)]
    refused(argv, field)


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        (["--bmc", "{bmc}"], "--bmc is for --power-cycle"),
        (["--line", "12345,8n1"], "--line: bad baud rate 12345"),
    ],
)
def test_oneshot_options_are_checked_before_the_console(
    extra: list[str], field: str, refused: Refuse, peers: Peers
) -> None:
    console = f"socket://127.0.0.1:{peers.tcp.getsockname()[1]}"
    argv = ["grub", "apply", console, "--profile", PROFILE, "--oneshot", "--write"]
    refused([*argv, *[a.format(bmc=peers.bmc) for a in extra]], field)


# ------------------------------------------------------------------------ found by the fuzz suite


@pytest.mark.parametrize(
    "target", ["ssh://admin@[::1:9", "\x00", "/dev/tty\x00S0", "ipmi://a@[::1"]
)
@pytest.mark.parametrize(
    "command",
    [["console"], ["capture", "--for", "1"], ["harvest", "--keys", "h"]],
    ids=lambda c: c[0],
)
def test_a_malformed_target_is_one_line_before_looking_for_a_served_console(
    command: list[str], target: str, refused: Refuse
) -> None:
    # Looking for a solcap serve holding the console parsed the target first and raised
    # ValueError (exit 1) on an unclosed "[" or a NUL byte.
    refused([command[0], target, *command[1:]], "solcap: error: ")
