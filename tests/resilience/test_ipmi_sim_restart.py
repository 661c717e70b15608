"""Done-when of issue 13: OpenIPMI's ipmi_sim killed and started again mid-session (the host,
the far end of its serial side, keeps running); ``solcap run --inventory``, ``solcap console``
and ``solcap harvest --inventory`` carry on, record a gap event, and the host answers
afterwards. The BMC and the host side come from tests/ipmi/ipmisim.py."""

from __future__ import annotations

import io
import json
import os
import subprocess
import threading
import time
from pathlib import Path

import pytest

from solcap.cli import main
from tests.ipmi.conftest import PASSWORD
from tests.ipmi.ipmisim import IpmiSim, XenResponder

pytestmark = [pytest.mark.slow, pytest.mark.timeout(150)]


def _events(root: Path) -> list[dict[str, object]]:
    found = list(root.rglob("events.jsonl"))
    if not found:
        return []
    return [json.loads(line) for line in found[0].read_text().splitlines() if line.strip()]


def _inventory(tmp: Path, sim: IpmiSim, monkeypatch: pytest.MonkeyPatch) -> Path:
    """One host behind ``sim``; its password an ``env:`` reference, as a fleet keeps it."""
    monkeypatch.setenv("SIM_PW", PASSWORD)
    inv = tmp / "inv.yaml"
    inv.write_text(f"hosts:\n  simhost: {{bmc: '{sim.url}', cipher: 3, password: 'env:SIM_PW'}}\n")
    return inv


def test_run_inventory_carries_on_across_an_ipmi_sim_restart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sim = IpmiSim(tmp_path).start()
    inv = _inventory(tmp_path, sim, monkeypatch)
    rb = tmp_path / "rb.yaml"
    rb.write_text("name: restart\nsteps:\n  - expect: {patterns: ['host-is-back'], timeout: 100}\n")
    root = tmp_path / "rec"
    result: dict[str, object] = {}

    def run() -> None:
        out = io.StringIO()
        result["status"] = main(["run", str(rb), "--inventory", str(inv), "--root", str(root)], out)
        result["out"] = out.getvalue()

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    try:
        deadline = time.monotonic() + 30
        while not any(e.get("event") == "connect" for e in _events(root)):
            assert time.monotonic() < deadline, "the run never connected"
            time.sleep(0.1)
        sim.restart()  # the BMC goes away without a word; the host (our socket side) stays
        deadline = time.monotonic() + 110
        while worker.is_alive() and time.monotonic() < deadline:
            if any(e.get("event") == "gap" for e in _events(root)):
                sim.send(b"host-is-back\r\n")
            worker.join(0.5)
        assert not worker.is_alive(), "the run did not finish"
        assert result["status"] == 0, result.get("out")
        kinds = [e.get("event") for e in _events(root)]
        assert "disconnected" in kinds and "gap" in kinds and "reconnected" in kinds, kinds
        assert kinds.index("gap") < kinds.index("expect-matched"), kinds
        raw = next(root.rglob("console.raw")).read_bytes()
        assert b"host-is-back" in raw
    finally:
        sim.close()


def test_console_carries_on_across_an_ipmi_sim_restart(tmp_path: Path) -> None:
    """``solcap console`` (a real process on a pty) says the console went down and came back,
    records the gap, and shows what the host prints afterwards."""
    import pty
    import select
    import sys

    sim = IpmiSim(tmp_path).start()
    master, slave = pty.openpty()
    root = tmp_path / "rec"
    env = dict(os.environ, IPMI_PASSWORD=PASSWORD)
    argv = [sys.executable, "-m", "solcap.cli", "console", sim.url]
    client = subprocess.Popen(
        [*argv, "--root", str(root)],
        stdin=slave,
        stdout=slave,
        stderr=subprocess.PIPE,
        env=env,
    )
    os.close(slave)
    seen = bytearray()

    def read_for(want: bytes, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while want not in seen and time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if ready:
                try:
                    seen.extend(os.read(master, 65536))
                except OSError:
                    break
        return want in seen

    try:
        deadline = time.monotonic() + 30
        while not any(e.get("event") == "connect" for e in _events(root)):
            assert time.monotonic() < deadline, "the console never connected"
            time.sleep(0.1)
        sim.restart()
        deadline = time.monotonic() + 90
        while not any(e.get("event") == "gap" for e in _events(root)):
            assert time.monotonic() < deadline, "no gap event"
            assert client.poll() is None, "solcap console ended"
            time.sleep(0.2)
        back = False
        for _ in range(20):
            sim.send(b"host-is-back\r\n")
            if read_for(b"host-is-back", 1.0):
                back = True
                break
        assert back, bytes(seen)
        os.write(master, b"\r~.")
        assert client.wait(20) == 0
        err = client.stderr.read().decode() if client.stderr else ""
        assert "console down" in err and "console up again" in err, err
    finally:
        if client.poll() is None:
            client.kill()
            client.wait(10)
        os.close(master)
        sim.close()


def test_harvest_inventory_carries_on_across_an_ipmi_sim_restart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The BMC is restarted while the harvest waits for a key's dump: the harvest reconnects,
    records the gap, and the dump the host prints afterwards is its segment, byte for byte."""
    sim = IpmiSim(tmp_path).start()
    host = XenResponder(sim, hold="h").start()
    inv = _inventory(tmp_path, sim, monkeypatch)
    root = tmp_path / "rec"
    result: dict[str, object] = {}

    def harvest() -> None:
        out = io.StringIO()
        argv = ["harvest", "--inventory", str(inv), "--keys", "h", "--root", str(root)]
        # The default --start-timeout (10 s) is shorter than the loss takes to notice (about
        # 12 s without SOL acknowledgements): the key's wait outlasts the reconnection.
        result["status"] = main([*argv, "--progress", "plain"], out)
        result["out"] = out.getvalue()

    worker = threading.Thread(target=harvest, daemon=True)
    worker.start()
    try:
        assert host.held.wait(60), "the harvest never pressed h on Xen"
        restarted = time.monotonic()
        sim.restart()
        deadline = restarted + 60
        while not any(e.get("event") == "reconnected" for e in _events(root)):
            assert time.monotonic() < deadline, "no reconnection"
            assert worker.is_alive(), result
            time.sleep(0.1)
        host.release()  # the host answers the key it was given before its BMC went away
        worker.join(60)
        assert not worker.is_alive(), "the harvest did not finish"
        assert result["status"] == 0, result.get("out")
        events = _events(root)
        kinds = [e.get("event") for e in events]
        assert "disconnected" in kinds and "gap" in kinds and "reconnected" in kinds, kinds
        raw = next(root.rglob("console.raw")).read_bytes()
        answer = host.answers["h"]
        gap = next(e for e in events if e.get("event") == "gap")
        assert raw.index(answer) >= int(str(gap["offset"])), (gap, raw.index(answer))
        assert next(root.rglob("keys/h.txt")).read_bytes() == answer
    finally:
        host.stop()
        sim.close()
