"""A real OpenSSH sshd on 127.0.0.1 playing four BMCs and a console gateway, one port each.

Each port's ``Match LocalPort`` block forces ``fake_bmc_cli.py FLAVOUR STATE`` as the session's
command, so a client meets that vendor's CLI (prompt, start command, leave sequence, "in use"
answer) and then the virtual Xen host's pty, whose path the test writes to ``STATE/pty``.
The sshd itself is started by tests/sshd.py (as for tests/grub); client keys and state live in
a temp directory; the machine's own sshd configuration is never read or touched.
"""

from __future__ import annotations

import os
import pwd
import re
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from solcap.console.core import Console
from solcap.sim.host import SimConfig, VirtualHost
from solcap.sim.xen import HostSpec
from solcap.transports.registry import open_transport
from tests.sshd import free_port, keygen, running_sshd

FLAVOURS = ("openbmc", "idrac", "ilo", "smc", "console")
CLI = Path(__file__).with_name("fake_bmc_cli.py")
BOOT_DONE = re.compile(rb"login: root \(automatic login\)")


@dataclass(frozen=True)
class BmcSshd:
    """The running sshd: one port per flavour, the keys and files a client needs."""

    ports: dict[str, int]
    user: str
    client_key: Path
    other_key: Path  # a valid key the server does not know
    known_hosts: Path  # holds exactly this server's key, for every port
    state: Path
    tmp: Path

    def url(self, flavour: str, *, key: Path | None = None, **query: str) -> str:
        """``ssh+FLAVOUR://user@127.0.0.1:PORT?key=…&known_hosts=…&reconnect=0[&…]``."""
        options = {
            "key": str(key or self.client_key),
            "known_hosts": str(self.known_hosts),
            "reconnect": "0",
            **query,
        }
        text = "&".join(f"{k}={v}" for k, v in options.items())
        return f"ssh+{flavour}://{self.user}@127.0.0.1:{self.ports[flavour]}?{text}"

    def events(self) -> list[tuple[int, str, str]]:
        path = self.state / "events.log"
        if not path.exists():
            return []
        out = []
        for line in path.read_text().splitlines():
            pid, flavour, event = line.split(" ", 2)
            out.append((int(pid), flavour, event))
        return out

    def wait_event(self, flavour: str, event: str, count: int = 1, timeout: float = 10) -> None:
        """Wait until ``event`` was logged ``count`` times for ``flavour`` (polls the file the
        far side appends to; there is no other channel to be told on)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if sum(1 for _p, f, e in self.events() if f == flavour and e == event) >= count:
                return
            time.sleep(0.05)
        raise AssertionError(f"{flavour}: no {event!r} x{count} in {self.events()}")

    def use_host(self, host: VirtualHost) -> None:
        (self.state / "pty").write_text(host.pty_path + "\n")


@pytest.fixture(scope="session")
def bmc_sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BmcSshd]:
    tmp = tmp_path_factory.mktemp("bmcsshd")
    state = tmp / "state"
    state.mkdir()
    client_key, other_key = keygen(tmp / "client"), keygen(tmp / "other")
    ports = {flavour: free_port() for flavour in FLAVOURS}
    matches = "".join(
        f"Match LocalPort {port}\n    ForceCommand {sys.executable} {CLI} {flavour} {state}\n"
        for flavour, port in ports.items()
    )
    with running_sshd(tmp, list(ports.values()), [client_key], extra=matches) as pub:
        known_hosts = tmp / "known_hosts"
        known_hosts.write_text("".join(f"[127.0.0.1]:{p} {pub}\n" for p in ports.values()))
        yield BmcSshd(
            ports=ports,
            user=pwd.getpwuid(os.getuid()).pw_name,
            client_key=client_key,
            other_key=other_key,
            known_hosts=known_hosts,
            state=state,
            tmp=tmp,
        )


def boot(host: VirtualHost, until: re.Pattern[bytes] = BOOT_DONE) -> None:
    """Power the host on with a direct reader on its pty until ``until`` showed, then let go
    of the pty (the BMC's bridge opens it next)."""
    with Console(open_transport(host.pty_path), host="boot") as con:
        host.power_on()
        con.expect([until], timeout=60)
        con.settle(0.3, timeout=60)


@pytest.fixture
def xen_host(bmc_sshd: BmcSshd) -> Iterator[VirtualHost]:
    """A virtual Xen host booted to Dom0's login, behind every flavour's console."""
    config = SimConfig(spec=HostSpec(domus=6), fast=True, auto_power_on=False, grub_timeout=1)
    with VirtualHost(config) as host:
        boot(host)
        bmc_sshd.use_host(host)
        yield host
