"""``xl vcpu-list`` / ``xl vcpu-pin`` on the virtual host, over its real SSH server.

The expected shapes are xl's own format strings (xen-project/xen ``tools/xl/xl_vcpu.c``:
``"%-32s %5u %5u"`` + ``"%5u %3c%c- "`` + ``"%9.1f  "`` + ``print_bitmap`` hard ``/`` soft),
its messages, and Xen's rules (an affinity without an online CPU is refused; Dom0 booted with
``dom0_vcpus_pin`` cannot be re-pinned before 4.13). Also here: Dom0's SSH output when Xen's
console is not on serial (it used to come back empty).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from pathlib import Path

import paramiko
import pytest

from solcap.console.core import Console
from solcap.sim.dom0ssh import Dom0SshServer
from solcap.sim.host import SimConfig, VirtualHost
from solcap.sim.xen import HostSpec
from solcap.transports.registry import open_transport
from solcap.transports.ssh import SshConnection, SshTarget, connect

pytestmark = pytest.mark.timeout(90)

HEADER = (
    "Name                                ID  VCPU   CPU State   Time(s) Affinity (Hard / Soft)\n"
)
#: print_vcpuinfo for an online vCPU, exactly.
ROW = re.compile(
    r"^(?P<name>.{32}) (?P<id>[ \d]{5}) (?P<vcpu>[ \d]{5})(?P<cpu>[ \d]{5})   "
    r"(?P<state>[r-][b-]-) (?P<time>[ \d]{7}\.\d)  (?P<hard>\S+) / (?P<soft>\S+)$"
)


@contextlib.contextmanager
def dom0(tmp: Path, xen_args: str, **spec: object) -> Iterator[tuple[VirtualHost, SshConnection]]:
    """A fast virtual host booted to Dom0 with ``xen_args``, and an SSH login to it."""
    key = paramiko.ECDSAKey.generate()
    key_file = tmp / "id_ecdsa"
    key.write_private_key_file(str(key_file))
    config = SimConfig(
        spec=HostSpec(**spec),  # type: ignore[arg-type]
        fast=True,
        auto_power_on=False,
        grub_timeout=1,
        xen_args=xen_args,
    )
    with (
        VirtualHost(config) as host,
        Dom0SshServer(host, authorized_keys=[key]) as server,
        Console(open_transport(host.pty_path), host="drain"),  # keeps the line flowing
    ):
        known = tmp / "known_hosts"
        known.write_text(server.known_hosts_line)
        host.power_on()
        assert host.wait_state("running", timeout=60)
        target = SshTarget.parse(server.url, key_file=str(key_file), known_hosts=str(known))
        conn = connect(target)
        try:
            yield host, conn
        finally:
            conn.close()


def rows(text: str) -> dict[tuple[str, int], re.Match[str]]:
    lines = text.splitlines()
    assert lines[0] + "\n" == HEADER
    found = {}
    for line in lines[1:]:
        m = ROW.match(line)
        assert m is not None, line
        found[(m.group("name").rstrip(), int(m.group("vcpu")))] = m
    return found


def test_dom0_output_comes_back_over_ssh_when_xen_is_not_on_serial(tmp_path: Path) -> None:
    """No com1=/console=: nothing of Xen or Dom0 reaches the wire, but commands still print."""
    with dom0(tmp_path, "dom0_mem=1024M") as (host, conn):
        assert host.xen is not None and not host.xen.serial_console
        info = conn.run("xl info")
        assert info.ok and re.search(r"^host\s+: xenhost$", info.stdout, re.M), info
        assert re.search(r"^xen_commandline\s+: dom0_mem=1024M$", info.stdout, re.M)
        listing = conn.run("xl list")
        assert listing.ok and listing.stdout.splitlines()[1].startswith("Domain-0 ")
        assert conn.run("hostname").stdout == "xenhost\n"
        missing = conn.run("nosuchtool")
        assert missing.exit_status == 127 and "command not found" in missing.stderr
        assert b"xenhost" not in host.sent_bytes().split(b"Booting from Hard Disk")[-1]


def test_vcpu_list_is_xls_format_and_pin_changes_it(tmp_path: Path) -> None:
    with dom0(tmp_path, "com1=38400,8n1 console=com1", pcpus=4) as (host, conn):
        before = rows(conn.run("xl vcpu-list").stdout)
        assert set(before) == {("Domain-0", 0), ("Domain-0", 1), ("guest001", 0),
                               ("guest001", 1), ("guest002", 0), ("guest002", 1)}  # fmt: skip
        assert all((m["hard"], m["soft"]) == ("all", "all") for m in before.values())
        pinned = conn.run("xl vcpu-pin guest001 1 2-3")
        assert (pinned.exit_status, pinned.stdout, pinned.stderr) == (0, "", "")
        after = rows(conn.run("xl vcpu-list guest001").stdout)
        assert set(after) == {("guest001", 0), ("guest001", 1)}
        assert (after[("guest001", 1)]["hard"], after[("guest001", 1)]["soft"]) == ("2-3", "all")
        assert int(after[("guest001", 1)]["cpu"]) in (2, 3)  # moved onto an allowed pCPU
        assert after[("guest001", 0)]["hard"] == "all"
        assert conn.run("xl vcpu-pin 2 all 0,^0,3 1").ok
        two = rows(conn.run("xl vcpu-list 2").stdout)
        assert {(m["hard"], m["soft"]) for m in two.values()} == {("3", "1")}
        assert host.xen is not None
        assert host.xen.xl_vcpus.affinities()["1.1"] == ["2-3", "all"]


@pytest.mark.parametrize(
    ("command", "status", "stderr"),
    [
        ("xl vcpu-pin nosuch 0 1", 1, "nosuch is an invalid domain identifier (rc=-6)\n"),
        ("xl vcpu-pin guest001 x 1", 1, "Error: Invalid argument x as VCPU.\n"),
        ("xl vcpu-pin guest001 0 3-1", 1, "Invalid pcpu range: 3-1.\n"),
        ("xl vcpu-pin guest001 0 ^all", 1, 'Can\'t combine "^" and "all".\n'),
        ("xl vcpu-pin -f guest001 all 1", 1, "Error: --force and 'all' as VCPU not allowed.\n"),
        (
            "xl vcpu-pin guest001 0 6",  # no online CPU in it (the host has 4)
            1,
            "libxl: error: libxl_sched.c:62:libxl__set_vcpuaffinity: Domain 1:Setting vcpu "
            "affinity: Invalid argument\nCould not set affinity for vcpu `0'.\n",
        ),
        (
            "xl vcpu-pin guest001 5 1",
            1,
            "libxl: error: libxl_sched.c:62:libxl__set_vcpuaffinity: Domain 1:Setting vcpu "
            "affinity: Invalid argument\nCould not set affinity for vcpu `5'.\n",
        ),
    ],
)
def test_xl_refusals_are_xls_own(tmp_path: Path, command: str, status: int, stderr: str) -> None:
    with dom0(tmp_path, "com1=38400,8n1 console=com1", pcpus=4) as (host, conn):
        result = conn.run(command)
        assert (result.exit_status, result.stdout, result.stderr) == (status, "", stderr)
        assert host.xen is not None
        assert all(h == "all" for h, _ in host.xen.xl_vcpus.affinities().values())


def test_dom0_pinned_at_boot_is_locked_before_4_13_and_free_after(tmp_path: Path) -> None:
    args = "com1=38400,8n1 console=com1 dom0_max_vcpus=3 dom0_vcpus_pin"
    (tmp_path / "old").mkdir()
    with dom0(tmp_path / "old", args, pcpus=4, xen_version="4.12.4") as (_, conn):
        assert re.search(r"^xen_version\s+: 4\.12\.4$", conn.run("xl info").stdout, re.M)
        dom0_rows = rows(conn.run("xl vcpu-list Domain-0").stdout)
        assert [m["hard"] for m in dom0_rows.values()] == ["0", "1", "2"]  # 1:1 at boot
        one = conn.run("xl vcpu-pin 0 1 3")
        assert one.exit_status == 1 and one.stderr.endswith(
            "Could not set affinity for vcpu `1'.\n"
        )
        every = conn.run("xl vcpu-pin Domain-0 all 3")
        assert every.exit_status == 0  # xl's main_vcpupin returns success even so
        assert every.stderr.endswith("Could not set affinity.\n")
        assert every.stderr.count("Setting vcpu affinity: Invalid argument") == 3
        assert [m["hard"] for m in rows(conn.run("xl vcpu-list 0").stdout).values()] == [
            "0", "1", "2",
        ]  # fmt: skip
    (tmp_path / "new").mkdir()
    with dom0(tmp_path / "new", args, pcpus=4) as (_, conn):
        assert conn.run("xl vcpu-pin 0 all 3").ok
        assert [m["hard"] for m in rows(conn.run("xl vcpu-list 0").stdout).values()] == [
            "3", "3", "3",
        ]  # fmt: skip
