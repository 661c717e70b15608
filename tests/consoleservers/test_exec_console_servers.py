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
from solcap.console.core import Console
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


def test_inventory_via_fields_are_checked_and_build_the_target(tmp_path: Path) -> None:
    from solcap.errors import ConfigError
    from solcap.inventory import load_inventory

    inv = tmp_path / "inv.yaml"
    inv.write_text(
        "defaults: {via: conman, console_server: '127.0.0.1:7890'}\n"
        "hosts:\n"
        "  node17: {}\n"
        "  node18: {via: conserver, console_server: 'cs1:3109', console_name: n18}\n"
        "  node19: {via: null_route}\n"
    )
    with pytest.raises(ConfigError, match=r"inv.yaml:5:.*node19.via.*conserver or conman"):
        load_inventory(inv)
    inv.write_text(inv.read_text().replace("  node19: {via: null_route}\n", ""))
    hosts = {h.name: h for h in load_inventory(inv).hosts}
    assert hosts["node17"].console_url == "exec:conman -d 127.0.0.1:7890 -j node17"
    assert hosts["node18"].console_url == "exec:console -M cs1 -p 3109 -f n18"
    bad = tmp_path / "bad.yaml"
    bad.write_text("hosts:\n  n1: {console: 'ssh+idrac://root:pw@10.0.0.1'}\n")
    with pytest.raises(ConfigError, match=r"bad.yaml:2:.*n1.console.*password"):
        load_inventory(bad)
    bad.write_text("hosts:\n  n1: {console: 'exec:ipmitool -H b -U u -P pw sol activate'}\n")
    with pytest.raises(ConfigError, match=r"bad.yaml:2:.*IPMI_PASSWORD"):
        load_inventory(bad)
    ini = tmp_path / "hosts.ini"
    ini.write_text("[rack]\nnode20 solcap_via=conserver solcap_console_server=cs1\n")
    (node20,) = load_inventory(ini).hosts
    assert node20.console_url == "exec:console -M cs1 -f node20"


def test_fleet_harvest_through_inventory_via_conman(xen_host: VirtualHost, tmp_path: Path) -> None:
    """``solcap harvest --inventory`` with ``via: conman``: the inventory builds the client
    command, the real ConMan holds the host, the segments equal what Xen sent."""
    with conmand(xen_host.pty_path, tmp_path / "cm") as held:
        inv = tmp_path / "inv.yaml"
        inv.write_text(
            f"hosts:\n  node17: {{via: conman, console_server: '127.0.0.1:{held.port}'}}\n"
        )
        before = len(xen_host.dumps)
        out = io.StringIO()
        status = main(
            [
                *("harvest", "--inventory", str(inv), "--keys", "h,q", "--quiet", "0.3"),
                *("--root", str(tmp_path / "rec")),
            ],
            out=out,
        )
        assert status == 0, out.getvalue()
    import hashlib

    sent = {d.key: d.sha256 for d in xen_host.dumps[before:]}
    for key in ("h", "q"):
        (segment,) = (tmp_path / "rec").rglob(f"keys/{key}.txt")
        assert hashlib.sha256(segment.read_bytes()).hexdigest() == sent[key]
