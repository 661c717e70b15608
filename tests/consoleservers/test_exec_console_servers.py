"""``exec:`` through real conserver and ConMan holding the virtual Xen host.

Done when: a harvest through conserver and through ConMan is byte-identical, key by key
(SHA-256), to a direct one on the host's pty. The virtual Xen's dumps are alive (``now = …``,
free pages, event-channel states change between presses, as on a real host), so each
harvest's segments are checked against the dump Xen sent *for that press*, and the dumps that
do not change (``h``) must hash the same over all three ways in.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest

from solcap.cli import main
from solcap.console import Console
from solcap.errors import ConsoleBusy, UsageError
from solcap.sim.host import VirtualHost
from solcap.transports.execpty import open_exec, parse_exec, via_command
from solcap.transports.registry import open_transport

from .conftest import conmand, conserver

pytestmark = pytest.mark.timeout(180)

KEYS = ["h", "q", "u", "e"]
PROMPT = re.compile(rb"~# ")


def harvest(target: str, root: Path, host: VirtualHost) -> dict[str, str]:
    """Harvest KEYS through ``target``; per key the full SHA-256 of the recorded segment,
    checked against the dump the virtual Xen sent for that press."""
    before = len(host.dumps)
    out = io.StringIO()
    status = main(
        ["harvest", target, "--keys", ",".join(KEYS), "--quiet", "0.3", "--root", str(root)],
        out=out,
    )
    assert status == 0, out.getvalue()
    recording = Path(re.search(r"^recording: (.+)$", out.getvalue(), re.M).group(1))  # type: ignore[union-attr]
    import hashlib

    got = {  # the raw segment files (console.raw[start:end]), not the cleaned text
        key: hashlib.sha256((recording / "keys" / f"{key}.txt").read_bytes()).hexdigest()
        for key in KEYS
    }
    sent = {d.key: d.sha256 for d in host.dumps[before:] if d.key in KEYS}
    assert got == sent
    return got


def test_harvest_through_conserver_and_conman_is_byte_identical_to_direct(
    xen_host: VirtualHost, tmp_path: Path
) -> None:
    direct = harvest(xen_host.pty_path, tmp_path / "direct", xen_host)
    with conserver(xen_host.pty_path, tmp_path / "conserver") as held:
        via_conserver = harvest(held.target, tmp_path / "rec-conserver", xen_host)
    with conmand(xen_host.pty_path, tmp_path / "conman") as held:
        via_conman = harvest(held.target, tmp_path / "rec-conman", xen_host)
    assert via_conserver["h"] == via_conman["h"] == direct["h"]  # static: identical bytes


def test_conserver_leave_is_clean_and_logged(xen_host: VirtualHost, tmp_path: Path) -> None:
    with conserver(xen_host.pty_path, tmp_path / "cs") as held:
        transport = open_exec(held.target)
        with Console(transport, host="cs") as con:
            con.send(b"\r")
            con.expect([PROMPT], timeout=10)
        assert transport.left_cleanly  # ^Ec. made `console` exit by itself
        assert b"[Enter `^Ec?' for help]" in transport.preamble


def test_conman_busy_without_join_is_console_busy(xen_host: VirtualHost, tmp_path: Path) -> None:
    with conmand(xen_host.pty_path, tmp_path / "cm") as held:
        first = open_exec(held.target)
        try:
            plain = f"exec:conman -d 127.0.0.1:{held.port} {held.name}"  # neither -j nor -f
            with pytest.raises(ConsoleBusy, match="Found console already in use"):
                open_transport(plain)
        finally:
            first.close()
        assert first.left_cleanly  # "&." closed the connection


def test_secrets_in_argv_are_refused_before_running_anything() -> None:
    with pytest.raises(UsageError, match="IPMI_PASSWORD"):
        parse_exec("exec:ipmitool -I lanplus -H 127.0.0.1 -U admin -P secret sol activate")
    with pytest.raises(UsageError, match="IPMI_PASSWORD"):
        parse_exec("exec:ipmitool -I lanplus -H 127.0.0.1 -U admin -Psecret sol activate")
    with pytest.raises(UsageError, match="split"):
        parse_exec("exec:console 'node17")
    with pytest.raises(UsageError, match="needs a command"):
        parse_exec("exec:")


def test_inventory_via_builds_the_client_command() -> None:
    assert via_command("conserver", "node17", "cs1:3109") == "exec:console -M cs1 -p 3109 -f node17"
    assert via_command("conserver", "node17") == "exec:console -f node17"
    assert via_command("conman", "node17", "cm1:7890") == "exec:conman -d cm1:7890 -j node17"
    with pytest.raises(UsageError, match="conserver or conman"):
        via_command("screen", "node17")
