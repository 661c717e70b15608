"""Real console servers on loopback holding the virtual Xen host: conserver and ConMan.

Each daemon gets a private config, log and state directory under the test's temp directory,
listens on 127.0.0.1 only (conserver ``-M 127.0.0.1``, its children ``-b`` on the same
address; ConMan ``loopback=ON``) on ephemeral ports, and holds the virtual host's pty as a
serial device (conserver ``type device``, ConMan ``dev="/dev/pts/N"``).
"""

from __future__ import annotations

import contextlib
import re
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from solcap.console.core import Console
from solcap.sim.host import SimConfig, VirtualHost
from solcap.sim.xen import HostSpec
from solcap.transports.registry import open_transport
from tests import peers

BOOT_DONE = re.compile(rb"login: root \(automatic login\)")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_listening(port: int, proc: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1.0):
            return
        time.sleep(0.05)  # the daemon is still binding: poll the condition
    raise RuntimeError(f"{what} is not listening on 127.0.0.1:{port}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


def _need(program: str) -> str:
    return peers.need(program)


@dataclass(frozen=True)
class Held:
    """A console server holding the host as console ``name``; ``target`` reaches it."""

    name: str
    port: int
    directory: Path
    target: str


@contextlib.contextmanager
def conserver(pty: str, directory: Path, name: str = "node17") -> Iterator[Held]:
    """conserver 8.2.7 holding ``pty`` (``type device``), trusted from 127.0.0.1 only."""
    binary = _need("conserver")
    _need("console")
    directory.mkdir(parents=True)
    port, base = _free_port(), _free_port()
    config = directory / "conserver.cf"
    config.write_text(
        f"""config * {{ }}
default full {{ rw *; }}
default * {{ logfile {directory}/&.log; timestamp ""; include full; }}
console {name} {{ type device; device {pty}; baud 38400; parity none; master 127.0.0.1; }}
access * {{ trusted 127.0.0.1; allowed 127.0.0.1; }}
"""
    )
    passwd = directory / "conserver.passwd"
    passwd.write_text("* any\n")
    passwd.chmod(0o600)
    log = open(directory / "conserver.out", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [
            *(binary, "-C", str(config), "-P", str(passwd), "-M", "127.0.0.1"),
            *("-p", str(port), "-b", str(base), "-L", str(directory / "conserver.log")),
        ],
        stdout=log,
        stderr=log,
        cwd=directory,
    )
    try:
        _wait_listening(port, proc, "conserver")
        yield Held(name, port, directory, f"exec:console -M 127.0.0.1 -p {port} -f {name}")
    finally:
        _stop(proc)
        log.close()


@contextlib.contextmanager
def conmand(pty: str, directory: Path, name: str = "node17") -> Iterator[Held]:
    """ConMan 0.2.7's conmand holding ``pty`` as a serial device, on loopback only."""
    binary = _need("conmand")
    _need("conman")
    directory.mkdir(parents=True)
    port = _free_port()
    config = directory / "conman.conf"
    config.write_text(
        f"""server keepalive=ON
server loopback=ON
server port={port}
server pidfile="{directory}/conmand.pid"
server logdir="{directory}"
server logfile="{directory}/conmand.log"
console name="{name}" dev="{pty}" seropts="38400,8n1"
"""
    )
    log = open(directory / "conmand.out", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [binary, "-c", str(config), "-F"], stdout=log, stderr=log, cwd=directory
    )
    try:
        _wait_listening(port, proc, "conmand")
        yield Held(name, port, directory, f"exec:conman -d 127.0.0.1:{port} -j {name}")
    finally:
        _stop(proc)
        log.close()


@pytest.fixture
def xen_host() -> Iterator[VirtualHost]:
    """A virtual Xen host booted to Dom0's login; its pty is free for a console server."""
    config = SimConfig(spec=HostSpec(domus=6), fast=True, auto_power_on=False, grub_timeout=1)
    with VirtualHost(config) as host:
        with Console(open_transport(host.pty_path), host="boot") as con:
            host.power_on()
            con.expect([BOOT_DONE], timeout=60)
            con.settle(0.3, timeout=60)
        yield host
