"""The quick-start job: a virtual Xen host behind a virtual BMC, harvested over IPMI SOL.

It runs exactly the code an operator runs against hardware — an IPMI v2.0 lanplus SOL session
(cipher suite 17) to a BMC, Ctrl-A×3 to reach Xen, debug keys, a recording — only the BMC and
the host are the simulator's (``solcap.testing.lab``, one process per host). At the end every key's
segment is compared by SHA-256 with what the virtual host says it sent.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from solcap.capture.recording import Recording
from solcap.connect import ConsoleSpec, open_console
from solcap.errors import ExitStatus, TargetError
from solcap.testing.lab import Lab
from solcap.xen.console import quiet_period
from solcap.xen.harvest import harvest_keys


def run_demo(
    *,
    keys: Sequence[str],
    domus: int = 8,
    real_rate: bool = False,
    root: Path | None = None,
    out: TextIO,
) -> int:
    """Run the demo and print where the recording is; returns an exit status."""
    quiet = quiet_period(38400, floor=1.0) if real_rate else 0.5
    with tempfile.TemporaryDirectory(prefix="solcap-demo-lab-") as lab_dir:
        lab = Lab(lab_dir)
        with lab:
            print("starting a virtual Xen host behind a virtual BMC on 127.0.0.1 …", file=out)
            host = lab.up(1, domus=domus, fast=not real_rate)[0]
            print(f"connecting: {host.url} (IPMI v2.0 lanplus SOL, cipher suite 17)", file=out)
            spec = ConsoleSpec.from_url(
                host.url, host=host.name, password_file=str(lab.password_file), prompt=False
            )

            def make_recording() -> Recording:
                return Recording(host.name, label="demo", root=root, meta={"simulated": True})

            console = open_console(spec, recording=make_recording)
            recording = console.recording
            assert recording is not None
            try:
                with console:
                    result = harvest_keys(console, recording, keys, quiet=quiet)
            finally:
                summary = recording.close(simulated=True)
            sent = {d["sha256"] for d in lab.host_state(host.name).get("dumps", [])}
    print(f"recording: {summary.path}", file=out)
    print(f"  console.raw: {summary.bytes} bytes, sha256 {summary.sha256}", file=out)
    mismatched = 0
    for segment in result.segments:
        ok = segment.sha256 in sent and segment.complete
        mismatched += not ok
        verdict = "identical to what the host sent" if ok else "MISMATCH"
        print(
            f"  key {segment.name:>4}: {segment.end - segment.start:>8} bytes  "
            f"sha256 {segment.sha256[:16]}  {verdict}",
            file=out,
        )
    if mismatched:
        raise TargetError(host.name, f"{mismatched} key dump(s) differ from what was sent")
    return ExitStatus.OK
