"""Real clients against solcap's virtual BMC: ipmitool (both cipher suites, power, SOL).

FreeIPMI's ipmiconsole 1.6.10 (Debian 12) answers "hostname invalid" to ``-h 127.0.0.1:PORT``,
so it can only reach a BMC on port 623; these tests use ephemeral ports and leave it out.
"""

from __future__ import annotations

import os
import subprocess

import pexpect
import pytest

from tests.ipmi.conftest import USER, ipmi_env, need, read_until
from tests.ipmi.test_power_vbmc import HostBehindBmc

pytestmark = pytest.mark.timeout(60)


def ipmitool(port: int, *args: str, cipher: str = "17") -> subprocess.CompletedProcess[str]:
    cmd = [need("ipmitool"), "-I", "lanplus", "-C", cipher, "-H", "127.0.0.1", "-p", str(port)]
    cmd += ["-U", USER, "-E", *args]
    return subprocess.run(cmd, env=ipmi_env(), capture_output=True, text=True, timeout=20)


@pytest.mark.parametrize("cipher", ["17", "3"])
def test_ipmitool_power_status_and_control(cipher: str) -> None:
    """ipmitool's chassis commands change the virtual host's own power state and restart its
    boot (it counts boots from its firmware line), not only what the BMC was told."""
    host = HostBehindBmc()
    try:
        assert host.wait_state("grub", 20)
        assert host.state()["boots"] == "1"
        status = ipmitool(host.port, "chassis", "power", "status", cipher=cipher)
        assert status.stdout.strip() == "Chassis Power is on", status.stderr
        assert ipmitool(host.port, "chassis", "power", "off", cipher=cipher).returncode == 0
        assert host.wait_for("power", "0", 10)
        status = ipmitool(host.port, "chassis", "power", "status", cipher=cipher)
        assert status.stdout.strip() == "Chassis Power is off"
        assert ipmitool(host.port, "chassis", "power", "on", cipher=cipher).returncode == 0
        assert host.wait_for("boots", "2", 20) and host.state()["power"] == "1"
        assert ipmitool(host.port, "chassis", "power", "cycle", cipher=cipher).returncode == 0
        assert host.wait_for("boots", "3", 20)
        assert ipmitool(host.port, "chassis", "power", "reset", cipher=cipher).returncode == 0
        assert host.wait_for("boots", "4", 20) and host.state()["power"] == "1"
    finally:
        host.close()


def test_ipmitool_wrong_password_is_refused(vbmc) -> None:
    bmc, _pty = vbmc
    cmd = [
        need("ipmitool"),
        "-I",
        "lanplus",
        "-H",
        "127.0.0.1",
        "-p",
        str(bmc.port),
        "-U",
        USER,
        "-E",
        "-N",
        "1",
        "-R",
        "1",
        "chassis",
        "power",
        "status",
    ]
    env = dict(os.environ, IPMI_PASSWORD="wrong")
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=20)
    assert res.returncode != 0
    assert "Chassis Power" not in res.stdout


def spawn_ipmitool_sol(port: int) -> pexpect.spawn:
    args = [
        "-I",
        "lanplus",
        "-H",
        "127.0.0.1",
        "-p",
        str(port),
        "-U",
        USER,
        "-E",
        "sol",
        "activate",
    ]
    return pexpect.spawn(need("ipmitool"), args, env=ipmi_env(), timeout=15)


def test_ipmitool_sol_both_directions(vbmc) -> None:
    bmc, pty = vbmc
    child = spawn_ipmitool_sol(bmc.port)
    try:
        child.expect("SOL Session operational")
        line = bytes(range(0x20, 0x7F)) * 20  # 1900 bytes: several SOL packets
        os.write(pty.master, b"boot: " + line + b"\r\n")
        child.expect_exact(line[-200:])
        child.send("hello-bmc")
        child.send("\r")
        # Each keystroke exactly once; and the newline has gone through ipmitool, which honours
        # its escape only right after one (an event to wait for, not a fixed pause).
        assert read_until(pty.master, b"\r", 10) == b"hello-bmc\r"
        child.send("~.")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    # ipmitool deactivated the payload on the way out: the BMC is free again for the next one.
    again = spawn_ipmitool_sol(bmc.port)
    try:
        again.expect("SOL Session operational")
    finally:
        again.close(force=True)


def test_second_ipmitool_is_refused_while_sol_is_held(vbmc) -> None:
    bmc, _pty = vbmc
    first = spawn_ipmitool_sol(bmc.port)
    try:
        first.expect("SOL Session operational")
        second = ipmitool(bmc.port, "sol", "activate")
        assert "SOL payload already active on another session" in second.stdout + second.stderr
    finally:
        first.close(force=True)
