"""Activate Payload refusals are named (docs/ipmi.md "When SOL is busy"): a BMC with SOL
disabled (0x81), at its session limit (0x82), or unable to activate with / without encryption
(0x83 / 0x84) gives one line saying so, exit 3, and the session is logged out.

The virtual BMC (its own process) answers every Activate Payload with the code under test.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.ipmi.conftest import PASSWORD, USER, PtyPair

pytestmark = pytest.mark.timeout(60)
ROOT = Path(__file__).resolve().parents[2]
MESSAGES = {
    0x81: "SOL is disabled on the BMC",
    0x82: "maximum SOL session count reached",
    0x83: "BMC cannot activate SOL with encryption",
    0x84: "BMC cannot activate SOL without encryption",
}


@pytest.fixture(params=sorted(MESSAGES), ids=[f"{code:#x}" for code in sorted(MESSAGES)])
def refusing_bmc(
    request: pytest.FixtureRequest, pty_pair: PtyPair
) -> Iterator[tuple[int, int, subprocess.Popen[bytes]]]:
    code = int(request.param)
    proc = subprocess.Popen(
        [sys.executable, "-m", "solcap.sim.bmc", pty_pair.path, "--refuse-activation", hex(code)],
        stdout=subprocess.PIPE,
        env=dict(os.environ, IPMI_PASSWORD=PASSWORD),
        cwd=ROOT,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().decode()
    assert line.startswith("port="), line
    try:
        yield code, int(line.split("=")[1]), proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=10)


def test_an_activation_refusal_is_named_in_one_line(
    refusing_bmc: tuple[int, int, subprocess.Popen[bytes]],
) -> None:
    code, port, bmc = refusing_bmc
    url = f"ipmi://{USER}@127.0.0.1:{port}?reconnect=0"
    done = subprocess.run(
        [sys.executable, "-m", "solcap.cli", "capture", url, "--for", "5"],
        cwd=ROOT,
        env=dict(os.environ, IPMI_PASSWORD=PASSWORD, PYTHONPATH=str(ROOT)),
        capture_output=True,
        text=True,
        timeout=40,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 3, done.stdout + done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("solcap: error:")]
    assert len(errors) == 1 and "Traceback" not in done.stderr, done.stderr
    assert errors[0].endswith(MESSAGES[code]), errors[0]
    assert f"127.0.0.1:{port}" in errors[0]
    # The refused session was logged out: the BMC, asked to stop, counts none left.
    bmc.terminate()
    rest, _ = bmc.communicate(timeout=10)
    assert rest.decode().split() == ["sessions=0"], rest
