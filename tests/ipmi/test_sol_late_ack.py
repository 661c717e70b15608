"""A client whose ACKs reach OpenIPMI's ipmi_sim after its 1 s retransmit: still byte-exact.

What the N = 100 ipmi_sim farm benchmark showed on a loaded machine (bench/findings.md,
section 7), made deterministic with the fault proxy's stall: every packet solcap sends is
delivered 1.5 s late, in order, while the host keeps writing. ipmi_sim (lanserv/sol.c) then

1. sends packet k with chunk A and, waiting for its ACK, buffers chunk B;
2. retransmits k after 1 s *with B appended* (it resends its whole buffer, up to 255 bytes);
3. receives the first, late ACK of k, counting A only, takes it for a partial ACK of its
   longer packet, and sends B again as packet k + 1 (the ACK of the longer copy comes after
   and is ignored: k is done).

A client that takes B from the retransmission (as ipmitool and FreeIPMI do) gets B twice. The
capture is compared with what the test wrote to ipmi_sim's serial socket: SHA-256 of
``console.raw`` against SHA-256 of the bytes sent, on both data paths.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import pytest

from solcap.capture.recording import Recording
from solcap.testing.faultproxy import Direction, FaultProxy, Faults
from solcap.transports.ipmi import IpmiSolTransport, IpmiTarget
from tests.ipmi.conftest import PASSWORD, USER
from tests.ipmi.ipmisim import IpmiSim

pytestmark = pytest.mark.timeout(60)
PATHS = pytest.mark.parametrize("engine", [True, False], ids=["engine", "pyghmi-path"])

#: Longer than ipmi_sim's retransmit interval (1 s), so every ACK comes after the resend.
LATE = 1.5


def chunk(tag: bytes, size: int) -> bytes:
    """Distinct bytes per chunk, so a repeat or a shift changes the hash."""
    return hashlib.shake_256(tag).digest(size)


class Capture:
    """What solcap received, in a recording, on either data path."""

    def __init__(self, tr: IpmiSolTransport, rec: Recording) -> None:
        self.tr = tr
        self.rec = rec
        self.pumped = 0

    @property
    def received(self) -> int:
        session = self.tr.engine_session
        if session is not None:
            return session.bytes_in
        return self.pumped

    def wait_for(self, total: int, timeout: float) -> bool:
        """Wait until ``total`` bytes have arrived (the pyghmi path is read here)."""
        deadline = time.monotonic() + timeout
        while self.received < total and time.monotonic() < deadline:
            if self.tr.engine_session is None:
                got = self.tr.read(65536, 0.2)
                self.pumped += len(got)
                self.rec.feed(got)
            else:
                time.sleep(0.02)
        return self.received >= total


@PATHS
def test_acks_later_than_the_retransmit_lose_and_repeat_nothing(
    ipmi_sim: IpmiSim, tmp_path: Path, engine: bool
) -> None:
    assert ipmi_sim.serial is not None
    with FaultProxy.in_front_of(ipmi_sim.port, Faults(), seed=11) as proxy:
        target = IpmiTarget(proxy.address[0], USER, proxy.address[1], 3)
        rec = Recording(f"late-ack-{engine}", root=tmp_path)
        sent = bytearray()
        with IpmiSolTransport(target, PASSWORD, engine=engine, sink=rec.feed) as tr:
            assert (tr.engine_session is not None) == engine
            cap = Capture(tr, rec)

            def host(data: bytes) -> None:
                assert ipmi_sim.serial is not None
                ipmi_sim.serial.sendall(data)
                sent.extend(data)

            host(chunk(b"warm-up", 40))  # the session streams before anything is held back
            assert cap.wait_for(len(sent), 10)

            proxy.stall(2.0, LATE, direction=Direction.TO_SERVER)
            host(chunk(b"A", 64))  # packet k; its ACK leaves now and arrives 1.5 s late
            assert cap.wait_for(len(sent), 5)
            host(chunk(b"B", 64))  # buffered by ipmi_sim while it waits: k's resend carries it
            # The stall resolves (last late ACK ~3.5 s from now); the marker comes after it, so
            # every copy of A and B that ipmi_sim will send comes before the marker (SOL keeps
            # order) and a duplicate cannot hide behind the end of the wait.
            assert cap.wait_for(len(sent), 10)
            deadline = time.monotonic() + 10
            while proxy.stalled_until(Direction.TO_SERVER) > time.monotonic():
                assert time.monotonic() < deadline
                cap.wait_for(len(sent) + 1, 0.1)
            host(chunk(b"end marker", 32))
            assert cap.wait_for(len(sent), 10), (cap.received, len(sent))
            cap.wait_for(len(sent) + 1, 1.0)  # a repeat would come right behind
        summary = rec.close()
        assert proxy.stats[Direction.TO_SERVER].delayed > 0
    raw = (rec.path / "console.raw").read_bytes()
    assert len(raw) == len(sent), f"{len(raw) - len(sent)} bytes more than the host wrote"
    assert summary.sha256 == hashlib.sha256(sent).hexdigest()
    assert hashlib.sha256(raw).hexdigest() == hashlib.sha256(sent).hexdigest()
