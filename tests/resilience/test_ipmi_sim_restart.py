"""Done-when of issue 13: OpenIPMI's ipmi_sim killed and started again mid-run (the host, the
far end of its serial side, keeps running); ``solcap run --inventory`` carries on, records a
gap event, and the host answers afterwards."""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from solcap.cli import main
from tests.ipmi.conftest import PASSWORD, USER, free_udp_port, need
from tests.ipmi.test_ipmi_sim import EMU

pytestmark = [pytest.mark.slow, pytest.mark.timeout(150)]


def _start_sim(tmp: Path, port: int, serial_port: int) -> subprocess.Popen[bytes]:
    (tmp / "bmc.emu").write_text(EMU)
    (tmp / "lan.conf").write_text(
        f"""name "solcap-test"
set_working_mc 0x20
  startlan 1
    addr 127.0.0.1 {port}
    priv_limit admin
    allowed_auths_admin none md2 md5 straight
    guid a123456789abcdefa123456789abcdef
  endlan
  sol "tcp:127.0.0.1:{serial_port}" 115200
user 2 true "{USER}" "{PASSWORD}" admin 10 none md2 md5 straight
"""
    )
    (tmp / "state").mkdir(exist_ok=True)
    return subprocess.Popen(
        [need("ipmi_sim"), "-n", "-c", "lan.conf", "-f", "bmc.emu", "-s", "state"],
        cwd=tmp,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _events(root: Path) -> list[dict[str, object]]:
    found = list(root.rglob("events.jsonl"))
    if not found:
        return []
    return [json.loads(line) for line in found[0].read_text().splitlines() if line.strip()]


def test_run_inventory_carries_on_across_an_ipmi_sim_restart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(2)
    listener.settimeout(20)
    port = free_udp_port()
    serial_port = listener.getsockname()[1]
    proc = _start_sim(tmp_path, port, serial_port)
    serial, _ = listener.accept()
    monkeypatch.setenv("SIM_PW", PASSWORD)
    inv = tmp_path / "inv.yaml"
    inv.write_text(
        f"hosts:\n  simhost: {{bmc: 'ipmi://{USER}@127.0.0.1:{port}', cipher: 3, "
        "password: 'env:SIM_PW'}\n"
    )
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
        proc.kill()  # the BMC goes away without a word; the host (our socket side) stays
        proc.wait(10)
        serial.close()
        proc = _start_sim(tmp_path, port, serial_port)
        serial, _ = listener.accept()
        deadline = time.monotonic() + 110
        while worker.is_alive() and time.monotonic() < deadline:
            if any(e.get("event") == "gap" for e in _events(root)):
                serial.sendall(b"host-is-back\r\n")
            worker.join(0.5)
        assert not worker.is_alive(), "the run did not finish"
        assert result["status"] == 0, result.get("out")
        kinds = [e.get("event") for e in _events(root)]
        assert "disconnected" in kinds and "gap" in kinds and "reconnected" in kinds, kinds
        assert kinds.index("gap") < kinds.index("expect-matched"), kinds
        raw = next(root.rglob("console.raw")).read_bytes()
        assert b"host-is-back" in raw
    finally:
        serial.close()
        listener.close()
        proc.terminate()
        proc.wait(10)
        os.environ.pop("SIM_PW", None)


def test_console_carries_on_across_an_ipmi_sim_restart(tmp_path: Path) -> None:
    """``solcap console`` (a real process on a pty) says the console went down and came back,
    records the gap, and shows what the host prints afterwards."""
    import pty
    import select
    import sys

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(2)
    listener.settimeout(20)
    port = free_udp_port()
    serial_port = listener.getsockname()[1]
    proc = _start_sim(tmp_path, port, serial_port)
    serial, _ = listener.accept()
    master, slave = pty.openpty()
    root = tmp_path / "rec"
    env = dict(os.environ, IPMI_PASSWORD=PASSWORD)
    argv = [sys.executable, "-m", "solcap.cli", "console", f"ipmi://{USER}@127.0.0.1:{port}"]
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
        proc.kill()
        proc.wait(10)
        serial.close()
        proc = _start_sim(tmp_path, port, serial_port)
        serial, _ = listener.accept()
        deadline = time.monotonic() + 90
        while not any(e.get("event") == "gap" for e in _events(root)):
            assert time.monotonic() < deadline, "no gap event"
            assert client.poll() is None, "solcap console ended"
            time.sleep(0.2)
        back = False
        for _ in range(20):
            serial.sendall(b"host-is-back\r\n")
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
        serial.close()
        listener.close()
        proc.terminate()
        proc.wait(10)
