"""What the docs observe of ipmitool (1.8.19), shown against peers that do it here.

These are observations about another client, not promises of solcap: each test shows
ipmitool printing bytes twice where solcap's own tests (named in docs/test-index.md) show
solcap taking them once. If a later ipmitool fixes either, its test fails and the docs'
sentence is out of date.

- A *late* duplicate (a copy of a BMC packet arriving after a newer one) is printed again:
  ipmitool does not check the RMCP+ session sequence number (docs/resilience.md).
- ipmi_sim's grown resend crossing the ACK of the first copy (the virtual BMC's
  ``--late-ack``): ipmitool takes the extra bytes from the resend and then the rest sent again
  under the next sequence number, so it prints them twice (docs/ipmi.md, SOL quirks).
- A BMC names its own port in the Activate Payload reply, and ipmitool refuses a session whose
  port differs from the one it dialled: behind a port-changing proxy it cannot activate SOL
  (docs/ipmi.md; why the fault proxy keeps the port, docs/resilience.md).
"""

from __future__ import annotations

import hashlib
import os
import select
import subprocess
import time

import pytest

from solcap.testing.faultproxy import Direction, FaultProxy, Faults, proxy_address
from tests.ipmi.conftest import USER, PtyPair, free_udp_port, ipmi_env, need, vbmc_running

pytestmark = pytest.mark.timeout(90)

BANNER = b"[SOL Session operational.  Use ~? for help]\n"


def stream(size: int) -> bytes:
    """Every byte value, in an order where no repeated piece looks like the original."""
    return hashlib.shake_256(b"ipmitool-observed").digest(size)


def is_subsequence(want: bytes, got: bytes) -> bool:
    """Every byte of ``want``, in order, within ``got`` (ipmitool lost nothing, only repeated)."""
    it = iter(got)
    return all(byte in it for byte in want)


def ipmitool_output(host: str, port: int, pty_pair: PtyPair, data: bytes) -> bytes:
    """Run ``ipmitool sol activate`` and return what it printed of ``data`` (banner cut).

    A one-byte marker goes first (too short for the virtual BMC's quirks to split): once it is
    printed, SOL is up and the banner flushed, so ``data`` cannot be lost to ipmitool's start.
    Reading stops when nothing more comes for a second after ``data``'s last bytes.
    """
    argv = [need("ipmitool"), "-I", "lanplus", "-H", host, "-p", str(port)]
    argv += ["-U", USER, "-E", "sol", "activate"]
    master, slave = os.openpty()
    proc = subprocess.Popen(
        argv, stdin=slave, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=ipmi_env()
    )
    os.close(slave)
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    out = bytearray()

    def read(until: bytes, timeout: float, quiet: float = 0.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if until in out and not quiet:
                return
            ready, _, _ = select.select([fd], [], [], quiet or 0.2)
            if ready:
                chunk = os.read(fd, 65536)
                if not chunk:
                    return
                out.extend(chunk)
            elif quiet and until in out:
                return

    try:
        os.write(pty_pair.master, b"R")
        read(BANNER + b"R", 20)
        assert bytes(out) == BANNER + b"R", bytes(out[:200])
        os.write(pty_pair.master, data)
        read(data[-32:], 60, quiet=1.0)
        os.write(master, b"\r~.")  # ipmitool's escape: deactivate and log out
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        os.close(master)
    body = bytes(out[len(BANNER) + 1 :])
    trailer = body.find(b"~. [terminated ipmitool]")
    return body if trailer < 0 else body[:trailer]


def test_ipmitool_prints_a_late_duplicate_again(pty_pair: PtyPair) -> None:
    data = stream(16 * 1024)
    late = Faults(duplicate=0.2, dup_gap=0.03)  # each copy 30 ms after its original
    with (
        vbmc_running(pty_pair.path) as port,
        FaultProxy(
            proxy_address(port), ("127.0.0.1", port), seed=5, to_server=Faults(), to_client=late
        ) as proxy,
    ):
        got = ipmitool_output(proxy.address[0], proxy.address[1], pty_pair, data)
        assert proxy.stats[Direction.TO_CLIENT].duplicated > 0
    assert is_subsequence(data, got)  # nothing lost ...
    assert len(got) > len(data)  # ... but duplicates printed as new data


def test_ipmitool_prints_the_rest_of_a_late_acked_packet_twice(pty_pair: PtyPair) -> None:
    data = stream(8192)
    with vbmc_running(pty_pair.path, "--late-ack") as port:
        got = ipmitool_output("127.0.0.1", port, pty_pair, data)
    assert is_subsequence(data, got)  # nothing lost ...
    assert len(got) > len(data)  # ... but the back half of packets printed twice


def test_ipmitool_refuses_sol_behind_a_proxy_that_changes_the_port(pty_pair: PtyPair) -> None:
    other = free_udp_port()
    with vbmc_running(pty_pair.path) as port:
        assert other != port
        with FaultProxy(
            ("127.0.0.2", other),
            ("127.0.0.1", port),
            seed=1,
            to_server=Faults(),
            to_client=Faults(),
        ) as proxy:
            master, slave = os.openpty()
            try:
                argv = [need("ipmitool"), "-I", "lanplus", "-H", "127.0.0.2", "-p", str(other)]
                argv += ["-U", USER, "-E", "sol", "activate"]
                result = subprocess.run(
                    argv, stdin=slave, capture_output=True, env=ipmi_env(), timeout=40
                )
            finally:
                os.close(slave)
                os.close(master)
            assert proxy.stats[Direction.TO_CLIENT].received > 0  # the BMC did answer
    assert (result.returncode, result.stdout) == (1, b"")
    assert result.stderr == b"Error: BMC requests SOL session on different port\n"
