"""Etiquette and storms (docs/serve.md "Reconnects and etiquette"): a SOL payload another
client holds is not stolen (unless the host says ``steal: true``); a busy or dark BMC is
retried with jittered capped backoff and logged once per state change, not once per attempt.

The other client is a real ``ipmitool sol activate`` against solcap's virtual BMC (in its own
process); the dark BMCs are loopback UDP ports where nothing answers.
"""

from __future__ import annotations

import os
import random
import re
import signal
import socket
import statistics
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pexpect
import pytest

from solcap.serve.holder import Backoff
from tests import peers
from tests.serve.conftest import REPO, Pty, events, pieces, raw_of, wait_for

pytestmark = pytest.mark.timeout(120)

PASSWORD = "serve-etiquette-pw"
USER = "admin"


@pytest.fixture
def vbmc(ptys) -> Iterator[tuple[int, Pty, subprocess.Popen[bytes]]]:
    """solcap's virtual BMC on a real pty, in a process of its own."""
    pty = ptys()
    proc = subprocess.Popen(
        [sys.executable, "-m", "solcap.sim.bmc", pty.path],
        stdout=subprocess.PIPE,
        env=dict(os.environ, IPMI_PASSWORD=PASSWORD),
        cwd=REPO,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().decode()
    assert line.startswith("port="), line
    yield int(line.split("=")[1]), pty, proc
    if proc.poll() is None:
        proc.terminate()
        proc.wait(10)


def _ipmitool_sol(port: int) -> pexpect.spawn:
    argv = ["-I", "lanplus", "-H", "127.0.0.1", "-p", str(port), "-U", USER, "-E"]
    return pexpect.spawn(
        peers.need("ipmitool"),
        [*argv, "sol", "activate"],
        env=dict(os.environ, IPMI_PASSWORD=PASSWORD),
        timeout=20,
    )


def _bmc_inventory(path: Path, hosts: dict[str, int], **host_vars: object) -> None:
    lines = ["hosts:"]
    for name, port in hosts.items():
        lines += [f"  {name}:", f"    bmc: ipmi://{USER}@127.0.0.1:{port}"]
        lines += ["    password: env:IPMI_PASSWORD"]
        if host_vars:
            lines.append("    vars: {" + ", ".join(f"{k}: {v}" for k, v in host_vars.items()) + "}")
    path.write_text("\n".join(lines) + "\n")


def _state_lines(stderr: str, host: str) -> list[str]:
    """The server's log lines about ``host``'s state ("solcap serve: HOST: STATE …")."""
    pattern = re.compile(rf"^solcap serve: {re.escape(host)}: (\w+)")
    return [m.group(1) for line in stderr.splitlines() if (m := pattern.match(line))]


def test_a_busy_payload_is_not_stolen_is_reported_and_retried_until_free(
    tmp_path, vbmc, serve, monkeypatch
):
    port, pty, bmc = vbmc
    monkeypatch.setenv("IPMI_PASSWORD", PASSWORD)
    holder = _ipmitool_sol(port)
    try:
        holder.expect("SOL Session operational")
        inv = tmp_path / "inv.yaml"
        _bmc_inventory(inv, {"b1": port})
        server = serve(
            inv, "--backoff-base", "0.2", "--backoff-max", "0.8", "--connect-timeout", "2"
        )
        busy = wait_for(lambda: server.status()["b1"]["state"] == "busy" and server.status(), 60)
        since = busy["b1"]["since"]
        assert "active for another client" in busy["b1"]["detail"]
        # It keeps asking (jittered, capped), and the state and its "since" stay put.
        wait_for(lambda: server.status()["b1"]["attempts"] >= 3, 60, "three retries")
        again = server.status()["b1"]
        assert (again["state"], again["since"]) == ("busy", since)
        # ipmitool still holds the payload: what the host writes reaches it, not the server.
        os.write(pty.master, b"still-ipmitools\r\n")
        holder.expect_exact("still-ipmitools")
        assert server.status()["b1"]["bytes"] == 0
        holder.send("\r~.")  # ipmitool's escape: deactivate the payload and leave
        holder.expect(pexpect.EOF)
    finally:
        holder.close(force=True)
    wait_for(lambda: server.status()["b1"]["state"] == "up", 60, "b1 up once SOL is free")
    wait_for(
        lambda: (os.write(pty.master, b"served\r\n"), server.status()["b1"]["bytes"] > 0)[1],
        30,
        "bytes through the server",
    )
    assert b"served\r\n" in raw_of(server.root, "b1")
    # The BMC goes dark: one "down" line however often it is retried.
    bmc.kill()
    bmc.wait(10)
    wait_for(lambda: server.status()["b1"]["state"] == "down", 60, "b1 down")
    wait_for(lambda: server.status()["b1"]["attempts"] >= 2, 60, "retries of a dark BMC")
    assert _state_lines(server.stderr(), "b1") == ["busy", "up", "down"]
    states = [
        e["state"] for p in pieces(server.root, "b1") for e in events(p) if e["event"] == "state"
    ]
    assert states == ["busy", "up", "down"]


def test_steal_true_takes_the_payload_from_another_client(tmp_path, vbmc, serve, monkeypatch):
    port, pty, _bmc = vbmc
    monkeypatch.setenv("IPMI_PASSWORD", PASSWORD)
    holder = _ipmitool_sol(port)
    try:
        holder.expect("SOL Session operational")
        inv = tmp_path / "inv.yaml"
        _bmc_inventory(inv, {"b1": port}, steal="true")
        server = serve(
            inv, "--backoff-base", "0.2", "--backoff-max", "0.8", "--connect-timeout", "2"
        )
        wait_for(lambda: server.status()["b1"]["state"] == "up", 60, "b1 up by stealing")
        assert "busy" not in _state_lines(server.stderr(), "b1")
        wait_for(
            lambda: (os.write(pty.master, b"stolen\r\n"), server.status()["b1"]["bytes"] > 0)[1],
            30,
            "bytes through the server",
        )
        # The host's output now goes to the server, no longer to ipmitool.
        assert holder.expect_exact([b"stolen", pexpect.TIMEOUT], timeout=2) == 1
    finally:
        holder.close(force=True)
    assert b"stolen\r\n" in raw_of(server.root, "b1")


def test_backoff_is_capped_and_jittered_so_hosts_do_not_retry_in_step():
    backoff = Backoff(base=1.0, cap=60.0)
    rng = random.Random(5)
    for attempt in range(40):
        ceiling = min(60.0, 2.0**attempt)
        for _ in range(50):
            delay = backoff.delay(attempt, rng)
            assert ceiling / 2 <= delay <= ceiling
    # 1,000 hosts failing together at their sixth attempt spread over half the ceiling.
    delays = [backoff.delay(6, random.Random(seed)) for seed in range(1000)]
    assert min(delays) < 31.0 and max(delays) > 59.0
    assert statistics.pstdev(delays) > 7.0  # uniform over [30, 60]: about 8.7
    assert len({round(d, 3) for d in delays}) > 900


def _dark_ports(n: int) -> list[int]:
    """``n`` loopback UDP ports where nothing listens (bound, noted, released)."""
    socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(n)]
    try:
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in socks]
    finally:
        for sock in socks:
            sock.close()


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_a_storm_of_dark_bmcs_is_one_log_line_per_host(tmp_path, serve, monkeypatch):
    """100 BMCs that never answer, retried many times each: one "down" line per host."""
    monkeypatch.setenv("IPMI_PASSWORD", PASSWORD)
    ports = _dark_ports(100)
    names = {f"dark{i:03d}": port for i, port in enumerate(ports)}
    inv = tmp_path / "inv.yaml"
    _bmc_inventory(inv, names)
    server = serve(inv, "--connect-timeout", "1", "--backoff-base", "0.2", "--backoff-max", "1.5")

    def retried() -> bool:
        rows = server.status().values()
        return all(r["state"] == "down" and r["attempts"] >= 3 for r in rows)

    wait_for(retried, 180, "every dark BMC retried three times")
    total = sum(r["attempts"] for r in server.status().values())
    server.signal(signal.SIGTERM)
    assert server.wait() == 143
    stderr = server.stderr()
    for name in names:
        assert _state_lines(stderr, name) == ["down", "stopped"], name
    # Every line of the log names a state change or the server itself: nothing per attempt.
    lines = stderr.splitlines()
    assert len(lines) <= 2 * len(names) + 5, (len(lines), total)
    assert total >= 3 * len(names)
