"""Clean deactivate + logout when ``solcap capture ipmi://…`` gets SIGTERM or SIGINT.

Proof from the BMC side: right after solcap exits, a second client activates SOL without
stealing (the virtual BMC answers "active for another client" while a holder remains).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from solcap.transports.ipmi import IpmiSolTransport, IpmiTarget
from tests.resilience.conftest import PASSWORD, REPO, USER, BmcProcess, HostWriter, wait_until

pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_deactivates_and_logs_out(
    bmc: BmcProcess, pty_pair, tmp_path: Path, sig: signal.Signals
) -> None:
    env = dict(os.environ, IPMI_PASSWORD=PASSWORD)
    argv = [sys.executable, "-m", "solcap.cli", "capture", f"ipmi://{USER}@127.0.0.1:{bmc.port}"]
    argv += ["--root", str(tmp_path), "--host", "bmc"]
    proc = subprocess.Popen(argv, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        HostWriter(pty_pair.master).write(b"hello from the host\r\n")
        raws = lambda: list(tmp_path.glob("bmc/*/console.raw"))  # noqa: E731
        assert wait_until(lambda: any(p.stat().st_size >= 21 for p in raws()), 20)
        proc.send_signal(sig)
        status = proc.wait(20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
    assert status == (143 if sig == signal.SIGTERM else 130)
    (raw,) = raws()
    assert raw.read_bytes() == b"hello from the host\r\n"
    lines = (raw.parent / "events.jsonl").read_text().splitlines()
    events = [json.loads(x)["event"] for x in lines]
    assert "connect" in events
    # The BMC saw the deactivate/logout: a new client gets SOL at once, no --steal needed.
    start = time.monotonic()
    with IpmiSolTransport(IpmiTarget("127.0.0.1", USER, bmc.port), PASSWORD) as second:
        assert not second.stole
    assert time.monotonic() - start < 5
