"""`solcap grub apply --oneshot --power-cycle` over IPMI: the operator's command, end to end.

The lab host's GRUB entry boots Xen without any console option, so a normal boot shows no
hypervisor output at all. After the one-shot edit through the virtual BMC, Xen boots with the
profile's options and its console output appears.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pexpect
import pytest

from solcap.testing.lab import Lab, LabHost
from tests.opens import Opens
from tests.peers import need

pytestmark = pytest.mark.timeout(180)


@pytest.fixture
def silent_xen_host(tmp_path: Path) -> Iterator[tuple[Lab, LabHost]]:
    lab = Lab(tmp_path / "lab")
    try:
        extra = {"node001": ["--off", "--xen-args", "dom0_mem=1024M", "--grub-timeout", "3"]}
        yield lab, lab.up(1, domus=1, extra_args=extra, ready_states=("off",))[0]
    finally:
        lab.down()


def _ipmitool(host: LabHost, *args: str) -> list[str]:
    cmd = [need("ipmitool"), "-I", "lanplus", "-H", host.address, "-p", str(host.port)]
    return [*cmd, "-U", "admin", "-E", "-C", "17", *args]


def _watch_first_boot(lab: Lab, host: LabHost, env: dict[str, str]) -> bytes:
    """Power the host on and return what ipmitool's SOL session showed until Dom0 ran."""
    argv = _ipmitool(host, "sol", "activate")
    sol = pexpect.spawn(argv[0], argv[1:], env=env, timeout=60)
    try:
        sol.expect_exact("[SOL Session operational")
        subprocess.run(_ipmitool(host, "chassis", "power", "on"), env=env, check=True, timeout=30)
        sol.expect_exact("GNU GRUB  version 2.06")
        seen = sol.before + sol.after
        deadline = time.monotonic() + 60
        while lab.host_state(host.name).get("state") != "running":
            assert time.monotonic() < deadline, lab.host_state(host.name)
            # Read whatever the boot sends while waiting for Dom0 to run (an event, polled).
            with contextlib.suppress(pexpect.TIMEOUT):
                sol.expect(pexpect.TIMEOUT, timeout=0.2)
            seen += sol.before
        sol.send(b"\r~.")  # ipmitool's escape: leave the session
        sol.expect(pexpect.EOF)
        return bytes(seen + sol.before)
    finally:
        sol.close(force=True)


def _oneshot(
    host: LabHost, tmp_path: Path, password_file: Path, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    """The operator's command: one-shot edit, power cycle through HOST's BMC, password file."""
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "solcap.cli",
            "grub",
            "apply",
            host.url,
            "--profile",
            "xen-serial-debug",
            "--oneshot",
            "--write",
            "--power-cycle",
            "--recordings",
            str(tmp_path / "rec"),
            "--password-file",
            str(password_file),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=150,
        stdin=subprocess.DEVNULL,
    )


def test_oneshot_edit_over_ipmi_makes_xen_visible(
    silent_xen_host: tuple[Lab, LabHost], tmp_path: Path
) -> None:
    lab, host = silent_xen_host
    env = dict(os.environ, IPMI_PASSWORD=lab.password_file.read_text().strip())
    first = _watch_first_boot(lab, host, env)
    # The unedited entry boots Xen silently: the whole first boot, watched by an independent
    # client from power-on to a running Dom0, carries GRUB's menu and no hypervisor byte.
    assert b"The highlighted entry will be executed automatically in" in first
    assert b"(XEN)" not in first and b"Xen version" not in first
    # The BMC password as a file for this run: it beats a stale IPMI_PASSWORD (ipmitool -f/-E).
    env["IPMI_PASSWORD"] = "stale-password"
    opens = Opens(lab.password_file)  # the kernel counts the opens of the file
    try:
        proc = _oneshot(host, tmp_path, lab.password_file, env)
        assert proc.returncode == 0, proc.stderr + proc.stdout
        # One read for both logins to the BMC (the power cycle and the SOL console).
        assert opens.seen() == 1
    finally:
        opens.close()
    assert "booted:" in proc.stdout and "console=com1" in proc.stdout
    raw = next((tmp_path / "rec").rglob("console.raw")).read_bytes()
    before, _, after = raw.partition(b"GNU GRUB  version 2.06")
    assert b"(XEN)" not in before  # the running, silent host showed nothing before the cycle
    line = after.split(b"(XEN) Command line: ", 1)[1].split(b"\r\n", 1)[0].decode()
    for option in (
        "dom0_mem=1024M",
        "com1=38400,8n1",
        "console=com1",
        "loglvl=all",
        "guest_loglvl=all",
    ):
        assert option in line.split(), line
    assert b"(XEN) Xen version 4.17" in after


def test_oneshot_power_cycle_asks_for_the_password_once(
    silent_xen_host: tuple[Lab, LabHost], tmp_path: Path
) -> None:
    """No file, no IPMI_PASSWORD, a terminal: the power cycle and the SOL console are two
    logins to one BMC, and the prompt for them appears exactly once (on a real pexpect pty).
    The host, off before, was powered by that cycle and booted the edited entry."""
    lab, host = silent_xen_host
    assert lab.host_state(host.name)["power"] is False
    env = {k: v for k, v in os.environ.items() if k not in ("IPMI_PASSWORD", "IPMI_KGKEY")}
    argv = ["-m", "solcap.cli", "grub", "apply", host.url, "--profile", "xen-serial-debug"]
    argv += ["--oneshot", "--write", "--power-cycle", "--recordings", str(tmp_path / "rec")]
    child = pexpect.spawn(sys.executable, argv, env=env, timeout=150)
    try:
        prompt = f"IPMI password for admin@{host.address}:{host.port}: "
        child.expect_exact(prompt)
        assert child.before == b"", child.before  # the prompt itself, not an error naming it
        child.sendline(lab.password_file.read_text().strip())
        again = child.expect_exact([prompt, pexpect.EOF])
        after = child.before.decode()
        assert again == 1, f"asked a second time, after: {after!r}"  # not again for the console
        child.close()
    finally:
        child.close(force=True)
    assert child.exitstatus == 0, after
    assert "booted:" in after and "console=com1" in after, after
    assert lab.host_state(host.name)["power"] is True  # the cycle reached the host itself
    raw = next((tmp_path / "rec").rglob("console.raw")).read_bytes()
    line = raw.split(b"(XEN) Command line: ", 1)[1].split(b"\r\n", 1)[0].decode()
    assert "console=com1" in line.split(), line
