"""Timeouts that run while OpenIPMI's ipmi_sim is gone (killed, the host side still running):
a runbook step's timeout keeps counting through the loss, and a harvest key pressed as the BMC
goes away. Both drive the real ``solcap`` command as a subprocess, so what is checked is what a
person at the terminal gets: the exit status, the step's error, the recording."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest

from tests.ipmi.conftest import PASSWORD
from tests.ipmi.ipmisim import IpmiSim

REPO = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60)]


def _events(root: Path) -> list[dict[str, object]]:
    found = list(root.rglob("events.jsonl"))
    if not found:
        return []
    lines = found[0].read_text().splitlines()
    out = []
    for line in lines:
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            break  # a line being written right now
    return out


def _at(events: list[dict[str, object]], kind: str) -> float:
    """When the first ``kind`` event was written (seconds since the epoch)."""
    stamp = str(next(e for e in events if e.get("event") == kind)["time"])
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def _wait_event(root: Path, kind: str, proc: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not any(e.get("event") == kind for e in _events(root)):
        assert time.monotonic() < deadline, f"no {kind} event"
        assert proc.poll() is None, f"solcap ended before a {kind} event"
        time.sleep(0.05)


def _inventory(tmp: Path, sim: IpmiSim) -> Path:
    inv = tmp / "inv.yaml"
    inv.write_text(f"hosts:\n  simhost: {{bmc: '{sim.url}', cipher: 3, password: 'env:SIM_PW'}}\n")
    return inv


def _solcap(*argv: str) -> subprocess.Popen[bytes]:
    env = dict(os.environ, SIM_PW=PASSWORD)
    return subprocess.Popen(
        [sys.executable, "-m", "solcap.cli", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        env=env,
        cwd=REPO,
    )


#: The step's own timeout: longer than the loss takes to notice (~12 s without SOL
#: acknowledgements), so the step is still waiting when the console starts reconnecting, and
#: shorter than the outage, so a timeout that paused or restarted for the loss shows.
STEP_TIMEOUT = 16.0
#: How long ipmi_sim stays down after the kill (the outage, longer than the step's timeout).
OUTAGE = 28.0


def test_a_step_waiting_through_a_bmc_loss_fails_at_its_own_timeout(tmp_path: Path) -> None:
    sim = IpmiSim(tmp_path)
    sim.start()
    inv = _inventory(tmp_path, sim)
    rb = tmp_path / "rb.yaml"
    rb.write_text(
        "name: waits\nsteps:\n"
        f"  - expect: {{patterns: ['never-printed'], timeout: {STEP_TIMEOUT:g}}}\n"
    )
    root = tmp_path / "rec"
    proc = _solcap("run", str(rb), "--inventory", str(inv), "--root", str(root))
    sent = b"before-the-loss 0123456789\r\n"
    try:
        _wait_event(root, "step", proc, 30)
        assert sim.send(sent)
        raw_path = next(root.rglob("console.raw"))
        deadline = time.monotonic() + 10
        while raw_path.read_bytes() != sent:
            assert time.monotonic() < deadline, raw_path.read_bytes()
            time.sleep(0.02)
        sim.kill()  # the BMC goes away without a word; the host (the listener) stays
        try:
            status = proc.wait(OUTAGE)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the step did not fail within the {OUTAGE:g} s outage")
        out, err = (s.decode() for s in proc.communicate(10))
        events = _events(root)
        # The step's timeout, measured on the recording's clock from its `step` event: its own
        # length plus a margin for a loaded machine, never paused or restarted by the loss.
        # (Closing afterwards may take a few seconds more: a reconnection attempt under way.)
        waited = _at(events, "expect-timeout") - _at(events, "step")
        assert STEP_TIMEOUT - 0.1 <= waited <= STEP_TIMEOUT + 2.5, waited
        assert status == 3, (status, out, err)  # the one host failed: none ok
        kinds = [e.get("event") for e in events]
        assert "expect-timeout" in kinds and "expect-matched" not in kinds, kinds
        lost = next(e for e in events if e.get("event") == "disconnected")
        assert lost["cause"] == "lost" and lost["offset"] == len(sent), lost
        assert kinds.index("disconnected") < kinds.index("expect-timeout"), kinds
        meta = json.loads(next(root.rglob("meta.json")).read_text())
        assert meta["outcome"] == "failed", meta
        assert f"waited {STEP_TIMEOUT:g}s for" in str(meta["error"]), meta
        assert "never-printed" in str(meta["error"]), meta
        assert raw_path.read_bytes() == sent  # every byte before the loss, nothing else
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        sim.close()
