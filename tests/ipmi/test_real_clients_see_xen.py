"""Real IPMI clients drive the virtual Xen host through the virtual BMC, like real hardware.

ipmitool powers the lab host on, watches GRUB and the Xen boot over `sol activate`, switches
serial input to Xen with Ctrl-A×3 and gets a debug key's dump — with no solcap code in the
client path, so the simulator is checked against an independent implementation.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pexpect
import pytest

from solcap.testing.lab import Lab, LabHost
from tests.peers import need

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def powered_off_host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Lab, LabHost]]:
    lab = Lab(tmp_path_factory.mktemp("lab"))
    try:
        host = lab.up(
            1,
            domus=2,
            extra_args={"node001": ["--off", "--grub-timeout", "3"]},
            ready_states=("off",),
        )[0]
        yield lab, host
    finally:
        lab.down()


def _power_on(lab: Lab, host: LabHost, env: dict[str, str]) -> None:
    """Power the host on through the BMC with ipmitool (a second, independent client)."""
    subprocess.run(
        _ipmitool(lab, host, "chassis", "power", "on"),
        env=env,
        capture_output=True,
        timeout=30,
        check=True,
    )


def _ipmitool(lab: Lab, host: LabHost, *args: str) -> list[str]:
    return [
        need("ipmitool"),
        "-I",
        "lanplus",
        "-H",
        host.address,
        "-p",
        str(host.port),
        "-U",
        "admin",
        "-E",
        "-C",
        "17",
        *args,
    ]


def test_ipmitool_sees_grub_xen_and_a_debug_key(
    powered_off_host: tuple[Lab, LabHost], tmp_path: Path
) -> None:
    lab, host = powered_off_host
    env = dict(os.environ, IPMI_PASSWORD=lab.password_file.read_text().strip())
    status = subprocess.run(
        _ipmitool(lab, host, "chassis", "power", "status"),
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert "off" in status.stdout
    sol = pexpect.spawn(
        _ipmitool(lab, host, "sol", "activate")[0],
        _ipmitool(lab, host, "sol", "activate")[1:],
        env=env,
        timeout=60,
    )
    try:
        sol.expect_exact("[SOL Session operational")
        _power_on(lab, host, env)
        sol.expect_exact("GNU GRUB  version 2.06")
        sol.expect_exact("The highlighted entry will be executed automatically in")
        sol.expect_exact("(XEN) Command line: com1=38400,8n1 console=com1")
        sol.expect_exact("(XEN) *** Serial input to DOM0")
        sol.expect_exact("root@node001:~# ")
        sol.send(b"\x01\x01\x01")
        sol.expect_exact("(XEN) *** Serial input to Xen")
        sol.send(b"h")
        sol.expect_exact("(XEN) 'h' pressed -> showing installed handlers")
        sol.expect_exact("(XEN)  key 'q' (ascii '71') => dump domain (and guest debug) info")
        sol.send(b"\x01\x01\x01")
        sol.expect_exact("(XEN) *** Serial input to DOM0")
        sol.send(b"\r")
        sol.expect_exact("root@node001:~# ")
        sol.send(b"~.")  # ipmitool's own escape (after a newline): leave the session
        sol.expect(pexpect.EOF)
    finally:
        sol.close(force=True)
    assert [d["key"] for d in lab.host_state(host.name)["dumps"]] == ["h"]


def test_ipmiconsole_sees_grub_xen_and_a_debug_key(tmp_path: Path) -> None:
    """FreeIPMI's ipmiconsole (Debian 12's refuses host:port, so this BMC listens on
    127.0.0.4:623; the password goes in a 0600 config file, never argv)."""
    ipmiconsole = need("ipmiconsole")  # /usr/sbin: not on a non-root PATH
    lab = Lab(tmp_path / "lab")
    try:
        extra = ["--off", "--grub-timeout", "3", "--address", "127.0.0.4", "--port", "623"]
        host = lab.up(1, domus=2, extra_args={"node001": extra}, ready_states=("off",))[0]
        assert (host.address, host.port) == ("127.0.0.4", 623)
        password = lab.password_file.read_text().strip()
        config = tmp_path / "freeipmi.conf"
        fd = os.open(config, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(f"username admin\npassword {password}\n")
        console = pexpect.spawn(
            ipmiconsole,
            ["-h", host.address, "--config-file", str(config)],
            timeout=60,
        )
        try:
            console.expect_exact("[SOL established]")
            env = dict(os.environ, IPMI_PASSWORD=password)
            _power_on(lab, host, env)
            console.expect_exact("GNU GRUB  version 2.06")
            console.expect_exact("(XEN) *** Serial input to DOM0")
            console.expect_exact("root@node001:~# ")
            console.send(b"\x01\x01\x01")
            console.expect_exact("(XEN) *** Serial input to Xen")
            console.send(b"q")
            console.expect_exact("(XEN) 'q' pressed -> dumping domain info")
            console.send(b"&.")  # ipmiconsole's escape: close the session
            console.expect(pexpect.EOF)
        finally:
            console.close(force=True)
        assert [d["key"] for d in lab.host_state(host.name)["dumps"]] == ["q"]
    finally:
        lab.down()
