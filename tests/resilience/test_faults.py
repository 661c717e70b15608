"""Byte-exact capture through a seeded UDP fault proxy (drop, duplicate, reorder, delay ≥ 5 %).

"Nothing lost" here is the strict form: the bytes captured equal the bytes the host wrote
(SHA-256), and no gap was needed — loss below the retry limits must be invisible.
The proxy sits on 127.0.0.2:<port> in front of the virtual BMC on 127.0.0.1:<port> (same port,
because the BMC names its port in the Activate Payload reply).
"""

from __future__ import annotations

import os
import select
import subprocess
import time

import pytest

from solcap.capture.recording import Recording
from solcap.console.core import Console
from solcap.testing.faultproxy import Direction, FaultProxy, Faults
from solcap.transports.ipmi import IpmiSolTransport, IpmiTarget
from solcap.transports.reconnect import ReconnectingTransport
from tests.ipmi.conftest import ipmi_env, need
from tests.resilience.conftest import PASSWORD, USER, BmcProcess, HostWriter, pattern, sha

pytestmark = pytest.mark.timeout(90)

FAULTS = Faults(drop=0.05, duplicate=0.05, reorder=0.05, delay=0.05)
SIZE = 64 * 1024 + 1000


def _every_fault_happened(proxy: FaultProxy) -> None:
    both = proxy.stats[Direction.TO_SERVER], proxy.stats[Direction.TO_CLIENT]
    for field in ("dropped", "duplicated", "reordered", "delayed"):
        assert sum(getattr(s, field) for s in both) > 0, (field, proxy.stats)


def test_solcap_capture_is_byte_exact_under_faults(bmc: BmcProcess, pty_pair, tmp_path) -> None:
    # Late duplicates too (a copy 30 ms after the original, after later packets): solcap drops
    # them by the RMCP+ session sequence number and the previous-SOL-sequence check.
    faults = Faults(drop=0.05, duplicate=0.05, reorder=0.05, delay=0.05, dup_gap=0.03)
    with FaultProxy.in_front_of(bmc.port, faults, seed=1) as proxy:
        target = IpmiTarget(proxy.address[0], USER, proxy.address[1])
        tr = ReconnectingTransport(lambda: IpmiSolTransport(target, PASSWORD))
        rec = Recording("faults", root=tmp_path)
        tr.set_event_sink(rec.event)
        data = pattern(SIZE)
        writer = HostWriter(pty_pair.master)
        with Console(tr, sink=rec.feed) as con:
            writer.write(data)
            con.wait_for_bytes(len(data), timeout=75)
            writer.join(5)
        summary = rec.close()
        _every_fault_happened(proxy)
    # Nothing lost, nothing duplicated, nothing reordered: captured == sent.
    assert summary.sha256 == sha(data)
    assert (rec.path / "console.raw").read_bytes() == writer.sent
    assert not [kind for kind, _ in tr.events], tr.events  # no gap was needed


def test_every_packet_twice_both_ways(bmc: BmcProcess, pty_pair, tmp_path) -> None:
    """UDP delivering every packet twice: login, activation and SOL all see repeats.

    The repeated Open Session request, RAKP1 and RAKP3 must get the same answers (a second
    random number or session ID fails the login as a wrong password), the repeated Activate
    must not be refused as another client's, and no SOL byte may be delivered twice.
    """
    twice = Faults(duplicate=1.0)
    with FaultProxy.in_front_of(bmc.port, twice, seed=3) as proxy:
        target = IpmiTarget(proxy.address[0], USER, proxy.address[1])
        tr = IpmiSolTransport(target, PASSWORD)
        rec = Recording("twice", root=tmp_path)
        data = pattern(16 * 1024)
        writer = HostWriter(pty_pair.master)
        with Console(tr, sink=rec.feed) as con:
            writer.write(data)
            con.wait_for_bytes(len(data), timeout=30)
            writer.join(5)
        summary = rec.close()
        assert proxy.stats[Direction.TO_SERVER].duplicated > 0
        assert proxy.stats[Direction.TO_CLIENT].duplicated > 0
    assert summary.sha256 == sha(data)
    assert (rec.path / "console.raw").read_bytes() == writer.sent


def _spawn_peer(argv: list[str], env: dict[str, str]) -> tuple[subprocess.Popen[bytes], int]:
    """Run a SOL client with a pty on stdin (it wants raw mode) and stdout on a pipe."""
    master, slave = os.openpty()
    proc = subprocess.Popen(
        argv, stdin=slave, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
    )
    os.close(slave)
    return proc, master


def _read_until(proc: subprocess.Popen[bytes], want: bytes, timeout: float) -> bytes:
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    out = bytearray()
    deadline = time.monotonic() + timeout
    while want not in out and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            out += chunk
    return bytes(out)


def test_ipmitool_capture_is_byte_exact_under_faults(bmc: BmcProcess, pty_pair) -> None:
    """The same stream through real ipmitool: its stdout, minus its banner line, is the data.

    ipmitool (1.8.19) has no replay check on the RMCP+ session sequence number, so a *late*
    duplicate (arriving after a newer SOL packet) is taken as new data; the network duplicates
    here arrive back to back, as real duplicates usually do (see docs/resilience.md).
    """
    with FaultProxy.in_front_of(bmc.port, FAULTS, seed=2) as proxy:
        argv = [need("ipmitool"), "-I", "lanplus", "-H", proxy.address[0]]
        argv += ["-p", str(proxy.address[1]), "-U", USER, "-E", "sol", "activate"]
        proc, tty = _spawn_peer(argv, ipmi_env())
        try:
            data = pattern(SIZE, seed=7)
            writer = HostWriter(pty_pair.master)
            # Start the stream once SOL is up: the first bytes ipmitool prints flush its banner.
            ready = b"ready\r\n"
            writer.write(ready)
            out = _read_until(proc, ready, 20)
            assert out.endswith(ready), out
            writer.write(data)
            out += _read_until(proc, data[-200:], 75)
            writer.join(5)
            os.write(tty, b"\r~.")  # ipmitool's escape: deactivate and log out
            out += _read_until(proc, b"[terminated ipmitool]\n", 10)
            assert proc.wait(10) == 0
        finally:
            assert proc.stderr is not None
            err = proc.stderr.read1() if proc.poll() is not None else b""
            if proc.poll() is None:
                proc.kill()
                proc.wait(5)
            os.close(tty)
        _every_fault_happened(proxy)
    banner = b"[SOL Session operational.  Use ~? for help]\n"
    assert out.startswith(banner), (out[:200], err)
    body = out[len(banner) + len(ready) :]
    # ipmitool echoes its own escape on the way out; that trailer is not console data.
    trailer = b"~. [terminated ipmitool]\n"
    assert body.endswith(trailer)
    got = body[: -len(trailer)]
    assert sha(got) == sha(data), (_first_difference(got, data), err)


def _first_difference(got: bytes, want: bytes) -> str:
    at = next((i for i, (a, b) in enumerate(zip(got, want, strict=False)) if a != b), None)
    if at is None:
        at = min(len(got), len(want))
    lo = max(0, at - 40)
    return f"{len(got)} vs {len(want)} B; at {at}: {got[lo : at + 80]!r} != {want[lo : at + 80]!r}"
