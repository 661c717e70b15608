"""The quick-start job: boot the virtual Xen host, harvest its debug keys, prove the capture.

It runs exactly the code an operator runs against hardware (open a console on a serial
device, wait for the boot, switch to Xen, harvest) — only the device is the simulator's pty.
At the end every key's segment is compared by SHA-256 with what the virtual host says it sent.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from solcap.capture import Recording
from solcap.console import Console
from solcap.errors import ExitStatus, TargetError
from solcap.harvest import harvest_keys
from solcap.sim.host import SimConfig, VirtualHost
from solcap.sim.xen import HostSpec
from solcap.transports.registry import open_transport
from solcap.transports.serialport import LineSettings

#: Xen's unprompted banner at the end of its boot, when it hands serial input to Dom0.
BOOT_DONE = re.compile(rb"\(XEN\) \*\*\* Serial input to DOM0 ")
DOM0_PROMPT = re.compile(rb"[#$] $")


def run_demo(
    *,
    keys: Sequence[str],
    domus: int = 8,
    real_rate: bool = False,
    root: Path | None = None,
    out: TextIO,
    boot_timeout: float = 120.0,
) -> int:
    """Run the demo and print where the recording is; returns an exit status."""
    config = SimConfig(spec=HostSpec(domus=domus), fast=not real_rate, auto_power_on=False)
    quiet = 1.0 if real_rate else 0.3
    with VirtualHost(config) as host:
        host.start()
        recording = Recording("virtual-xen-host", label="demo", root=root)
        try:
            transport = open_transport(host.pty_path, line=LineSettings(baud=config.baud))
            with Console(transport, host="virtual-xen-host", sink=recording.feed) as console:
                recording.event("connect", target=host.pty_path, simulated=True)
                host.power_on()
                recording.event("power", action="on")
                console.expect([BOOT_DONE], timeout=boot_timeout)
                console.expect([DOM0_PROMPT], timeout=boot_timeout)
                result = harvest_keys(console, recording, keys, quiet=quiet)
        finally:
            summary = recording.close(simulated=True)
        sent = {dump.sha256 for dump in host.dumps}
    print(f"recording: {summary.path}", file=out)
    print(f"  console.raw: {summary.bytes} bytes, sha256 {summary.sha256}", file=out)
    mismatched = 0
    for segment in result.segments:
        verdict = "identical to what the host sent" if segment.sha256 in sent else "MISMATCH"
        mismatched += segment.sha256 not in sent
        print(
            f"  key {segment.name:>4}: {segment.end - segment.start:>8} bytes  "
            f"sha256 {segment.sha256[:16]}  {verdict}",
            file=out,
        )
    if mismatched:
        raise TargetError("virtual-xen-host", f"{mismatched} key dump(s) differ from what was sent")
    return ExitStatus.OK
