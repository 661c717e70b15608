"""`solcap grub apply --oneshot --power-cycle` over IPMI: the operator's command, end to end.

The lab host's GRUB entry boots Xen without any console option, so a normal boot shows no
hypervisor output at all. After the one-shot edit through the virtual BMC, Xen boots with the
profile's options and its console output appears.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from solcap.lab import Lab, LabHost

pytestmark = pytest.mark.timeout(180)


@pytest.fixture
def silent_xen_host(tmp_path: Path) -> Iterator[tuple[Lab, LabHost]]:
    lab = Lab(tmp_path / "lab")
    try:
        extra = {"node001": ["--xen-args", "dom0_mem=1024M", "--grub-timeout", "5"]}
        yield lab, lab.up(1, domus=1, extra_args=extra, ready_states=("running",))[0]
    finally:
        lab.down()


def test_oneshot_edit_over_ipmi_makes_xen_visible(
    silent_xen_host: tuple[Lab, LabHost], tmp_path: Path
) -> None:
    lab, host = silent_xen_host
    env = dict(os.environ, IPMI_PASSWORD=lab.password_file.read_text().strip())
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
    assert b"(XEN)" not in before  # the first boot (before the cycle) showed no hypervisor
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
