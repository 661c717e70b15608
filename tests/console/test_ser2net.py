"""``socket://`` and ``rfc2217://`` through a real ser2net (Debian ``ser2net`` 4.x).

ser2net sits where operators put it: in front of the (virtual) host's serial line, configured
the way its documentation and sites write it (``accepter: tcp,…`` for raw TCP,
``accepter: telnet(rfc2217),tcp,…`` for RFC 2217; ``connector: serialdev,DEV,38400n81,local``),
listening on 127.0.0.1 only. The harvest runs through the real CLI and every dump must be
byte-identical to what the virtual host sent.
"""

from __future__ import annotations

import io
import json
import re
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from solcap.cli import main
from solcap.console.core import Console
from solcap.sim.host import SimConfig, VirtualHost
from solcap.sim.xen import HostSpec
from solcap.transports.registry import open_transport
from tests import peers

pytestmark = pytest.mark.timeout(180)

BOOT_DONE = re.compile(rb"\(XEN\) \*\*\* Serial input to DOM0 ")
ACCEPTERS = {
    "socket": "tcp,127.0.0.1,{port}",
    "rfc2217": "telnet(rfc2217),tcp,127.0.0.1,{port}",
}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_listening(ports: set[int], proc: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    """Until ser2net listens on every port (read from /proc: a probe connection would make
    ser2net open the device, and a second client arriving while it closes is turned away)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"ser2net exited with {proc.returncode}")
        if ports <= {port for _addr, port in _listening(proc.pid)}:
            return
        time.sleep(0.05)  # nothing to block on for "a socket started listening"
    raise AssertionError(f"ser2net did not listen on {sorted(ports)}")


@pytest.fixture
def ser2net(tmp_path: Path) -> Iterator[tuple[VirtualHost, dict[str, str], int]]:
    """A booted-to-power-off virtual host behind one ser2net with both accepters."""
    binary = peers.need("ser2net")
    config = SimConfig(spec=HostSpec(domus=4), fast=True, auto_power_on=False, grub_timeout=1)
    with VirtualHost(config) as host:
        host.start()
        ports = {scheme: _free_port() for scheme in ACCEPTERS}
        lines = ["%YAML 1.1", "---"]
        for scheme, accepter in ACCEPTERS.items():
            lines += [
                f"connection: &{scheme}",
                f"  accepter: {accepter.format(port=ports[scheme])}",
                f"  connector: serialdev,{host.pty_path},38400n81,local",
                "  options:",
                "    kickolduser: true",
            ]
        conf = tmp_path / "ser2net.yaml"
        conf.write_text("\n".join(lines) + "\n")
        log = (tmp_path / "ser2net.log").open("wb")
        proc = subprocess.Popen(
            [binary, "-n", "-d", "-c", str(conf), "-P", str(tmp_path / "ser2net.pid")],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            _wait_listening(set(ports.values()), proc)
            urls = {s: f"{s}://127.0.0.1:{p}" for s, p in ports.items()}
            yield host, urls, proc.pid
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            log.close()


def _listening(pid: int) -> set[tuple[str, int]]:
    """(address as /proc/net/tcp shows it, port) of the TCP sockets ``pid`` listens on."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = str(fd.readlink())
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for row in Path(table).read_text().splitlines()[1:]:
            fields = row.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A = LISTEN
                address, port = fields[1].split(":")
                found.add((address, int(port, 16)))
    return found


@pytest.mark.parametrize("scheme", ["socket", "rfc2217"])
def test_harvest_through_ser2net(
    ser2net: tuple[VirtualHost, dict[str, str], int], scheme: str, tmp_path: Path
) -> None:
    host, urls, _pid = ser2net
    url = urls[scheme]
    # Boot through ser2net, then let the CLI open its own connection and harvest.
    with Console(open_transport(url), host="boot") as con:
        host.power_on()
        con.expect([BOOT_DONE], timeout=60)
        con.settle(0.3, timeout=60)
    root = tmp_path / "rec"
    out = io.StringIO()
    status = main(["harvest", url, "--keys", "h,q", "--quiet", "0.5", "--root", str(root)], out=out)
    assert status == 0, out.getvalue()
    (meta_path,) = root.rglob("meta.json")
    meta = json.loads(meta_path.read_text())
    assert [s["name"] for s in meta["segments"]] == ["h", "q"]
    sent = [d.sha256 for d in host.dumps if d.key in ("h", "q")]
    assert [s["sha256"] for s in meta["segments"]] == sent
    assert all(s["complete"] for s in meta["segments"])


def test_ser2net_listens_on_loopback_only(
    ser2net: tuple[VirtualHost, dict[str, str], int],
) -> None:
    _host, _urls, pid = ser2net
    # 0100007F is 127.0.0.1 as /proc/net/tcp shows it; nothing on 0.0.0.0 or ::.
    assert {address for address, _port in _listening(pid)} == {"0100007F"}


@pytest.mark.parametrize("scheme", ["socket", "rfc2217"])
def test_what_the_host_printed_before_the_connection_is_not_thrown_away(
    ser2net: tuple[VirtualHost, dict[str, str], int], scheme: str
) -> None:
    """pyserial's ``open()`` ends with ``reset_input_buffer()``: for ``rfc2217://`` a purge
    request, on which ser2net flushes the device's input (the panic the host printed just
    before we connected); for ``socket://`` whatever already arrived is read and dropped.
    solcap opens without it, so the bytes waiting on the line are the first it records."""
    host, urls, _pid = ser2net
    marker = b"(XEN) printed before anyone connected " + scheme.encode() + b"\r\n"
    host.inject(marker)
    assert host.wait_idle(10), "the host did not finish writing the marker"
    with Console(open_transport(urls[scheme]), host="early") as con:
        got = con.expect([re.compile(re.escape(marker))], timeout=20)
        assert got.before == b""
