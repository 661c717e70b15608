"""solcap's IpmiSolTransport against OpenIPMI's ipmi_sim, an independent BMC implementation.

ipmi_sim speaks cipher suite 3 only (it answers 17 with "invalid authentication algorithm"),
is the TCP *client* of its serial side (``sol "tcp:127.0.0.1:P" 115200``), discards serial
output while no SOL session is active, and may drop a new session's first SOL packet.
"""

from __future__ import annotations

import hashlib
import re
import time

import pytest

from solcap.errors import ConnectError, ConsoleClosed
from solcap.testing.faultproxy import Direction, FaultProxy, Faults
from solcap.transports.ipmi import IpmiSolTransport, IpmiTarget, SolBusyError
from tests.ipmi.conftest import PASSWORD, USER
from tests.ipmi.ipmisim import IpmiSim, read_exactly

pytestmark = pytest.mark.timeout(60)

Sim = IpmiSim


def test_serial_bytes_arrive_byte_exact(ipmi_sim: Sim) -> None:
    with IpmiSolTransport(ipmi_sim.target(), PASSWORD) as tr:
        assert tr.negotiated_suite == 3
        data = bytes(range(256)) * 64 + b"L" * 48 * 1024  # all byte values + a 48 KiB line
        ipmi_sim.serial.sendall(data)
        got = read_exactly(tr, len(data), 30)
        assert hashlib.sha256(got).hexdigest() == hashlib.sha256(data).hexdigest()


def test_keystrokes_arrive_on_the_serial_side(ipmi_sim: Sim) -> None:
    with IpmiSolTransport(ipmi_sim.target(), PASSWORD) as tr:
        got = b""
        for attempt in range(3):  # ipmi_sim may drop a new session's first packet
            tr.write(f"key{attempt}-".encode())
            assert tr.drain(10)
            got += ipmi_sim.serial_read_until(f"key{attempt}-".encode(), 3)
            if f"key{attempt}-".encode() in got:
                break
        tr.write(b"second-line\r")
        assert tr.drain(10)
        got += ipmi_sim.serial_read_until(b"second-line\r", 5)
        # Every keystroke arrived exactly once, in order (a dropped first attempt is simply
        # absent; SOL's order puts any duplicate before the next write's bytes).
        keys = re.findall(rb"key\d-", got)
        assert got == b"".join(keys) + b"second-line\r", got
        assert keys == sorted(set(keys)) and keys[-1] == f"key{attempt}-".encode(), got


def test_wrong_password(ipmi_sim: Sim) -> None:
    with pytest.raises(ConnectError, match=f"authentication failed for user {USER}"):
        IpmiSolTransport(ipmi_sim.target(), "wrong-password")


def test_unknown_user(ipmi_sim: Sim) -> None:
    start = time.monotonic()
    with pytest.raises(ConnectError, match="nobody") as info:
        IpmiSolTransport(ipmi_sim.target("nobody"), PASSWORD)
    took = time.monotonic() - start
    # docs/ipmi.md: "fails within 10 s"; 2 s more for a loaded machine (load 4 on 2 cores)
    assert took <= 10 + 2, took
    assert "authentication failed" in str(info.value) or "no answer" in str(info.value)


def test_cipher_17_is_refused_with_a_clear_message(ipmi_sim: Sim) -> None:
    target = IpmiTarget("127.0.0.1", USER, ipmi_sim.port, 17)
    with pytest.raises(ConnectError, match="refused cipher suite 17"):
        IpmiSolTransport(target, PASSWORD)


def test_busy_then_steal(ipmi_sim: Sim) -> None:
    first = IpmiSolTransport(ipmi_sim.target(), PASSWORD)
    try:
        with pytest.raises(SolBusyError, match="--steal"):
            IpmiSolTransport(ipmi_sim.target(), PASSWORD)
        with IpmiSolTransport(ipmi_sim.target(), PASSWORD, steal=True) as second:
            assert second.stole
            ipmi_sim.serial.sendall(b"to-the-thief")
            assert read_exactly(second, 12, 10) == b"to-the-thief"
            with pytest.raises(ConsoleClosed):
                for _ in range(150):  # ipmi_sim tells the first holder, or its keepalive does
                    first.read(100, 0.2)
    finally:
        first.close()


@pytest.mark.timeout(180)
def test_a_one_mebibyte_line_arrives_byte_exact(ipmi_sim: Sim) -> None:
    """A line of 1 MiB without a newline (and every byte value first), through ipmi_sim's
    16 KiB buffer: TCP flow control paces the writer, SOL must not drop or repeat a byte."""
    import threading

    data = bytes(range(256)) * 4 + b"M" * (1 << 20)
    with IpmiSolTransport(ipmi_sim.target(), PASSWORD) as tr:
        writer = threading.Thread(target=ipmi_sim.serial.sendall, args=(data,), daemon=True)
        writer.start()
        got = read_exactly(tr, len(data), 150)
        writer.join(10)
    assert len(got) == len(data)
    assert hashlib.sha256(got).hexdigest() == hashlib.sha256(data).hexdigest()


def test_every_packet_twice_both_ways(ipmi_sim: Sim) -> None:
    """Login, activation and SOL survive UDP delivering every packet twice.

    Each duplicated request reaches ipmi_sim again (Open Session, RAKP1, RAKP3, Activate
    Payload, SOL data): the login must not be failed by a second answer, a repeated Activate
    must not be taken for another client's, and no SOL byte may be delivered twice.
    """
    twice = Faults(duplicate=1.0)
    with FaultProxy.in_front_of(ipmi_sim.port, twice, seed=7) as proxy:
        target = IpmiTarget(proxy.address[0], USER, proxy.address[1], 3)
        with IpmiSolTransport(target, PASSWORD) as tr:
            data = bytes(range(256)) * 64
            ipmi_sim.serial.sendall(data)
            got = read_exactly(tr, len(data), 30)
            assert hashlib.sha256(got).hexdigest() == hashlib.sha256(data).hexdigest()
            tr.write(b"typed once\r")
            typed = ipmi_sim.serial_read_until(b"\r", 10)
            typed += ipmi_sim.serial_read_until(b"\n", 0.5)  # a repeat would come right behind
            assert typed == b"typed once\r"  # exactly once: no duplicated keystroke delivered
            assert tr.read(65536, 0.5) == b""  # nothing after the stream: no late copies
        assert proxy.stats[Direction.TO_SERVER].duplicated > 0
        assert proxy.stats[Direction.TO_CLIENT].duplicated > 0
