"""BMC SSH consoles against a real sshd whose forced commands behave like each vendor's CLI.

The far side is OpenSSH plus ``fake_bmc_cli.py`` (the vendor grammar) plus the virtual Xen
host's pty; what solcap got is judged against what the virtual host sent (SHA-256 per dump),
and the clean leave against what the fake CLI logged (``left`` then ``logout``, not
``dropped``).
"""

from __future__ import annotations

import io
import re
import subprocess
import sys
from pathlib import Path

import pytest

from solcap.cli import main
from solcap.console import Console
from solcap.errors import ConnectError, ConsoleBusy, UsageError
from solcap.sim.host import VirtualHost
from solcap.transports.bmcssh import BmcSshSpec, open_bmc_ssh
from solcap.transports.registry import open_transport

from .conftest import BmcSshd

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
