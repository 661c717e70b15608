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
from tests.ipmi.ipmisim import IpmiSim, XenResponder

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


def test_a_harvest_key_pressed_as_the_bmc_goes_away_fails_as_no_output(tmp_path: Path) -> None:
    """With ``--start-timeout 3`` (below the ~12 s it takes to notice a dead BMC) a key that
    reached the host as its BMC went away fails as "no output", even though the host answers
    it once the console is back: the dump is incomplete, the host ``failed``, exit 3."""
    sim = IpmiSim(tmp_path)
    sim.start()
    host = XenResponder(sim, hold="h").start()
    inv = _inventory(tmp_path, sim)
    root = tmp_path / "rec"
    argv = ["harvest", "--inventory", str(inv), "--keys", "h", "--root", str(root)]
    proc = _solcap(*argv, "--start-timeout", "3", "--progress", "plain")
    try:
        assert host.held.wait(30), "the harvest never pressed h on Xen"
        sim.kill()  # the key reached the host; its answer has no BMC to go through
        _wait_event(root, "disconnected", proc, 25)
        sim.start()  # the BMC is back: the console reconnects and the harvest can finish
        _wait_event(root, "reconnected", proc, 20)
        host.release()  # the host answers h now, on the new session: too late for the key
        status = proc.wait(30)
        out, err = (s.decode() for s in proc.communicate(10))
        reason = "no output within 3s (key lost, input not on Xen, or no handler for it)"
        assert status == 3, (status, out, err)  # fleet.md: none ok
        assert "simhost  failed" in out and f"incomplete: h ({reason})" in out, out
        events = _events(root)
        kinds = [e.get("event") for e in events]
        segment = next(e for e in events if e.get("event") == "segment")
        assert segment["key"] == "h" and segment["complete"] is False, segment
        assert segment["reason"] == reason, segment
        assert segment["start"] == segment["end"], segment
        # It failed at its own timeout, before the loss was even noticed, not after it.
        assert kinds.index("segment") < kinds.index("disconnected"), kinds
        assert next(root.rglob("keys/h.txt")).read_bytes() == b""
        summary = json.loads(next(root.rglob("summary.json")).read_text())
        assert [h["outcome"] for h in summary["hosts"]] == ["failed"], summary
        assert summary["totals"]["exit_status"] == 3, summary["totals"]
        # Every byte before the loss is kept (Xen's banner) and the gap is recorded after it.
        raw = next(root.rglob("console.raw")).read_bytes()
        banner = host.xen.switch_banner(True)
        gap = next(e for e in events if e.get("event") == "gap")
        assert raw[: len(banner)] == banner and gap["offset"] == len(banner), (gap, raw)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        host.stop()
        sim.close()
