"""BMC SSH consoles against a real sshd whose forced commands behave like each vendor's CLI.

The far side is OpenSSH plus ``fake_bmc_cli.py`` (the vendor grammar) plus the virtual Xen
host's pty; what solcap got is judged against what the virtual host sent (SHA-256 per dump),
and the clean leave against what the fake CLI logged (``left`` then ``logout``, not
``dropped``).
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from solcap.cli import main
from solcap.console.core import Console
from solcap.errors import ConnectError, ConsoleBusy, UsageError
from solcap.sim.host import SimConfig, VirtualHost
from solcap.transports.bmcssh import BmcSshSpec, open_bmc_ssh
from solcap.transports.registry import open_transport

from .conftest import BmcSshd, boot

pytestmark = pytest.mark.timeout(120)

PROMPT = re.compile(rb"~# ")
KEYS = ["h", "q", "m"]


def cli(argv: list[str]) -> tuple[int, str]:
    out = io.StringIO()
    status = main(argv, out=out)
    return status, out.getvalue()


def segment_hashes(text: str) -> dict[str, str]:
    """``key h: … sha256 0123456789abcdef complete`` lines of a harvest's output."""
    return dict(re.findall(r"key\s+(\S+):\s+\d+ bytes\s+sha256 ([0-9a-f]{16})\s+complete", text))


@pytest.mark.parametrize("flavour", ["openbmc", "idrac", "ilo", "smc", "console"])
def test_console_reaches_dom0_and_leaves_cleanly(
    flavour: str, bmc_sshd: BmcSshd, xen_host: VirtualHost
) -> None:
    query = {}
    if flavour == "console":
        query = {"prompt": "gw> $", "start": "connect node17", "leave": "^]q"}
    with Console(open_transport(bmc_sshd.url(flavour, **query)), host=flavour) as con:
        con.send(b"\r")
        con.expect([PROMPT], timeout=10)
        con.send(b"echo ways-in-42\r")
        con.expect([re.compile(rb"\nways-in-42\r")], timeout=10)
    bmc_sshd.wait_event(flavour, "left")
    events = [e for _p, f, e in bmc_sshd.events() if f == flavour]
    assert "dropped" not in events
    if flavour != "openbmc":
        bmc_sshd.wait_event(flavour, "logout")


def test_harvest_over_openbmc_is_byte_identical_to_what_xen_sent(
    bmc_sshd: BmcSshd, xen_host: VirtualHost, tmp_path: Path
) -> None:
    before = len(xen_host.dumps)
    status, text = cli(
        [
            "harvest",
            bmc_sshd.url("openbmc"),
            "--keys",
            ",".join(KEYS),
            "--quiet",
            "0.3",
            "--root",
            str(tmp_path),
        ]
    )
    assert status == 0, text
    sent = [d.sha256[:16] for d in xen_host.dumps[before:]]
    assert segment_hashes(text) == dict(zip(KEYS, sent, strict=False))
    bmc_sshd.wait_event("openbmc", "left")


def test_busy_console_is_a_one_line_console_busy_error(
    bmc_sshd: BmcSshd, xen_host: VirtualHost
) -> None:
    with Console(open_transport(bmc_sshd.url("ilo")), host="first"):
        bmc_sshd.wait_event("ilo", "console")
        with pytest.raises(ConsoleBusy, match="in use by another session"):
            open_bmc_ssh(bmc_sshd.url("ilo"))
    bmc_sshd.wait_event("ilo", "busy")


def test_steal_is_refused_where_the_flavour_has_no_takeover() -> None:
    with pytest.raises(UsageError, match="no documented takeover"):
        BmcSshSpec.parse("ssh+idrac://root@127.0.0.1?steal=1")


def test_takeover_where_the_cli_has_one(bmc_sshd: BmcSshd, xen_host: VirtualHost) -> None:
    query = {
        "prompt": "gw> $",
        "start": "connect node17",
        "takeover": "connect -f node17",
        "busy": "console busy",
        "leave": "^]q",
    }
    first = open_bmc_ssh(bmc_sshd.url("console", **query))
    try:
        with pytest.raises(ConsoleBusy, match="steal=1"):
            open_bmc_ssh(bmc_sshd.url("console", **query))
        with Console(open_bmc_ssh(bmc_sshd.url("console", steal="1", **query))) as con:
            con.send(b"\r")
            con.expect([PROMPT], timeout=10)
    finally:
        first.close()
    assert any(e.startswith("took over") for _p, f, e in bmc_sshd.events() if f == "console")


def test_unknown_host_key_and_wrong_key_are_one_line_errors_exit_3(
    bmc_sshd: BmcSshd, xen_host: VirtualHost, tmp_path: Path
) -> None:
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    for url, words in (
        (bmc_sshd.url("idrac", known_hosts=str(empty)), "unknown host key"),
        (bmc_sshd.url("idrac", key=bmc_sshd.other_key), "authentication failed"),
    ):
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "solcap.cli",
                "capture",
                url,
                "--for",
                "1",
                "--root",
                str(tmp_path),
            ],
            capture_output=True,
            text=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
        )
        assert proc.returncode == 3, proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and words in lines[0] and lines[0].startswith("solcap: error: ")
    with pytest.raises(ConnectError, match="unknown host key"):
        open_bmc_ssh(bmc_sshd.url("ilo", known_hosts=str(empty)))


def test_busy_from_the_cli_is_exit_3_one_line(
    bmc_sshd: BmcSshd, xen_host: VirtualHost, tmp_path: Path
) -> None:
    holder = open_bmc_ssh(bmc_sshd.url("smc"))
    try:
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "solcap.cli",
                "capture",
                bmc_sshd.url("smc"),
                "--for",
                "1",
                "--root",
                str(tmp_path),
            ],
            capture_output=True,
            text=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
        )
    finally:
        holder.close()
    assert proc.returncode == 3, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "in use by another session" in lines[0], lines
    assert "SOL session is already active" in lines[0]


def test_solcap_console_over_idrac_under_a_real_pty_returns_to_the_shell_cleanly(
    bmc_sshd: BmcSshd, xen_host: VirtualHost, tmp_path: Path
) -> None:
    """The operator's view: a shell on a real pty runs ``solcap console ssh+idrac://…``, types
    in Dom0, leaves with ``~.``; the shell gets its terminal back as it was, and the BMC saw
    the leave sequence and the logout (its console slot is free: a second session gets it)."""
    import pexpect

    shell = pexpect.spawn(
        "bash",
        ["--norc", "--noprofile", "-i"],
        env={**os.environ, "PS1": "SHELL$ ", "TERM": "vt100"},
        encoding=None,
        timeout=30,
    )
    try:
        shell.expect(rb"SHELL\$ ")
        shell.sendline(b"stty -g > " + str(tmp_path / "before").encode())
        shell.expect(rb"SHELL\$ ")
        command = (
            f"{sys.executable} -m solcap.cli console '{bmc_sshd.url('idrac')}' "
            f"--root {tmp_path / 'rec'}; echo EXIT=$?"
        )
        shell.sendline(command.encode())
        shell.expect(rb"solcap: connected to ssh\+idrac://")
        shell.send(b"\r")
        shell.expect(rb"root@xenhost:~# ")
        shell.send(b"echo over-idrac\r")
        shell.expect(rb"\nover-idrac\r")
        shell.send(b"\r")
        shell.expect(rb"~# ")
        shell.send(b"~.")
        shell.expect(rb"EXIT=(\d+)")
        assert shell.match.group(1) == b"0"
        shell.expect(rb"SHELL\$ ")
        shell.sendline(b"stty -g > " + str(tmp_path / "after").encode())
        shell.expect(rb"SHELL\$ ")
    finally:
        shell.sendline(b"exit")
        shell.close(force=True)
    assert (tmp_path / "after").read_text() == (tmp_path / "before").read_text()
    bmc_sshd.wait_event("idrac", "left")
    bmc_sshd.wait_event("idrac", "logout")
    raw = next((tmp_path / "rec").rglob("console.raw")).read_bytes()
    assert b"\nover-idrac\r" in raw
    with Console(open_bmc_ssh(bmc_sshd.url("idrac")), host="again") as con:  # slot was freed
        con.send(b"\r")
        con.expect([PROMPT], timeout=10)


def test_oneshot_grub_edit_over_ilo(bmc_sshd: BmcSshd, tmp_path: Path) -> None:
    """``solcap grub apply --oneshot --write ssh+ilo://…`` on a host waiting in GRUB's menu:
    judged by the command line the virtual Xen booted with."""
    config = SimConfig(fast=True, auto_power_on=False, grub_timeout=60)
    with VirtualHost(config) as host:
        boot(host, re.compile(rb"will be executed automatically in"))
        bmc_sshd.use_host(host)
        status, text = cli(
            [
                "grub",
                "apply",
                bmc_sshd.url("ilo"),
                "--profile",
                "xen-serial-debug",
                "--oneshot",
                "--write",
                "--recordings",
                str(tmp_path),
            ]
        )
        assert status == 0, text
        assert host.xen is not None
        booted = host.xen.xen_cmdline.split()
    for option in ("loglvl=all", "guest_loglvl=all", "console=com1"):
        assert option in booted, booted
    assert "console=com1" in text
    bmc_sshd.wait_event("ilo", "left")


def test_runbook_over_smc(bmc_sshd: BmcSshd, xen_host: VirtualHost, tmp_path: Path) -> None:
    """The shipped harvest runbook over Supermicro's ``cd /system1/sol1`` + ``start``."""
    before = len(xen_host.dumps)
    status, text = cli(
        [
            "run",
            "harvest-debug-keys",
            "--host",
            bmc_sshd.url("smc"),
            "--var",
            "keys=h,q",
            "--var",
            "quiet=0.3",
            "--root",
            str(tmp_path),
        ]
    )
    assert status == 0, text
    assert [d.key for d in xen_host.dumps[before:]][:2] == ["h", "q"]
    recorded = {p.stem: p.read_bytes() for p in tmp_path.rglob("keys/*.txt")}
    dumps = {d.key: d.data for d in xen_host.dumps[before:]}
    for key in ("h", "q"):  # each key's segment is byte-identical to the dump Xen sent
        assert hashlib.sha256(recorded[key]).hexdigest() == hashlib.sha256(dumps[key]).hexdigest()
    assert xen_host.input_target == "dom0"
    bmc_sshd.wait_event("smc", "left")
    bmc_sshd.wait_event("smc", "logout")
