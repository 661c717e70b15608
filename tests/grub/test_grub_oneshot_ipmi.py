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

from solcap.lab import Lab, LabHost
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
    proc = subprocess.run(
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
            str(lab.password_file),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=150,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, proc.stderr + proc.stdout
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
