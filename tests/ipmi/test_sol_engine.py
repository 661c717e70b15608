"""The SOL engine prototype (solcap/transports/sol_engine.py) against pyghmi's own packet
code, the virtual BMC and OpenIPMI's ipmi_sim: byte-exact both ways."""

from __future__ import annotations

import hashlib
import os
import struct
import time
from typing import Any

import pyghmi.ipmi.private.session as pyghmi_session
import pytest

from solcap.capture.recording import Recording
from solcap.console.core import Console
from solcap.errors import ConsoleClosed
from solcap.transports.ipmi import IpmiSolTransport as EngineSolTransport
from solcap.transports.ipmi import IpmiTarget, SolBusyError
from solcap.transports.sol_engine import (
    PAYLOAD_SOL,
    RmcpPlusCodec,
    SessionKeys,
    SolChannel,
    SolTiming,
)
from tests.ipmi.conftest import PASSWORD, USER, PtyPair, read_until
from tests.ipmi.ipmisim import IpmiSim as Sim
from tests.ipmi.ipmisim import read_exactly

pytestmark = pytest.mark.timeout(60)

K1 = hashlib.sha256(b"k1").digest()
AES = hashlib.sha256(b"k2").digest()[:16]
IV = bytes(range(16, 32))


def _pyghmi_side(digest: str) -> Any:
    """A pyghmi client Session holding an established session's state, no socket: the
    packets it builds are captured instead of sent."""
    sess: Any = object.__new__(pyghmi_session.Session)
    sess.lastpayload = None
    sess.pendingpayloads = []
    sess.authtype = 6
    sess.integrityalgo = 1
    sess.confalgo = "aes"
    sess.ipmiversion = 2.0
    sess.sessionid = 0x11223344  # the far side's ID, carried in what pyghmi sends
    sess.localsid = 0x55667788
    sess.sequencenumber = 41
    sess.aeskey = AES
    sess.k1 = K1
    sess.currhashlib = hashlib.sha256 if digest == "sha256" else hashlib.sha1
    sess.currhashlen = 16 if digest == "sha256" else 12
    sess._customkeepalives = None
    sess.last_payload_type = 1
    sess.sent = []
    sess._xmit_packet = lambda *a, **k: (
        setattr(sess, "sequencenumber", sess.sequencenumber + 1),
        sess._rebuild(),
    )
    sess.got = []
    sess.sol_handler = sess.got.append
    return sess


def _pyghmi_packet(sess: Any, payload: bytes, monkeypatch: pytest.MonkeyPatch) -> bytes:
    """What pyghmi's own send_payload puts on the wire for ``payload`` (IV fixed)."""
    monkeypatch.setattr(os, "urandom", lambda n: IV[:n])
    # pyghmi builds the packet with the sequence number *before* _xmit_packet advances it.
    sess.sequencenumber += 1
    seq = sess.sequencenumber
    sess._xmit_packet = lambda *a, **k: None
    sess.send_payload(bytearray(payload), payload_type=1, retry=False)
    assert struct.unpack_from("<I", bytes(sess.netpacket), 10)[0] == seq
    monkeypatch.undo()
    return bytes(sess.netpacket)


@pytest.mark.parametrize("digest", ["sha256", "sha1"])
@pytest.mark.parametrize("size", [0, 3, 4, 14, 15, 16, 31, 200, 255])
def test_sealed_packets_equal_pyghmis_byte_for_byte(
    digest: str, size: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Same keys, IV and sequence number: the engine's packet is pyghmi's, to the byte."""
    sess = _pyghmi_side(digest)
    payload = bytes((1, 0, 0, 0)) + bytes((i * 37) & 0xFF for i in range(size))
    want = _pyghmi_packet(sess, payload, monkeypatch)
    keys = SessionKeys(0x11223344, 0x55667788, K1, AES, digest, next_seq=41)  # type: ignore[arg-type]
    codec = RmcpPlusCodec(keys, urandom=lambda n: IV[:n])
    assert codec.seal(PAYLOAD_SOL, payload) == want


@pytest.mark.parametrize("digest", ["sha256", "sha1"])
def test_pyghmi_opens_what_the_engine_seals_and_back(
    digest: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each side parses the other's packets with its own code (the engine plays the BMC)."""
    sess = _pyghmi_side(digest)
    bmc = RmcpPlusCodec(
        SessionKeys(0x55667788, 0x11223344, K1, AES, digest, next_seq=7)  # type: ignore[arg-type]
    )
    for size in (0, 1, 11, 12, 27, 28, 250):
        payload = bytes((3, 0, 0, 0)) + os.urandom(size)
        sess.got.clear()
        sess._handle_ipmi2_packet(bytearray(bmc.seal(PAYLOAD_SOL, payload)))
        assert [bytes(p) for p in sess.got] == [payload]
        back = bytes((0, 3, size, 0)) + b"x" * (size % 5)
        assert bmc.open(_pyghmi_packet(sess, back, monkeypatch)) == (PAYLOAD_SOL, back)


def test_forged_replayed_and_foreign_packets_are_dropped() -> None:
    keys = SessionKeys(1, 2, K1, AES, "sha256", next_seq=0)
    bmc = RmcpPlusCodec(SessionKeys(2, 1, K1, AES, "sha256", next_seq=100))
    us = RmcpPlusCodec(keys)
    first = bmc.seal(PAYLOAD_SOL, b"\x01\x00\x00\x00abc")
    second = bmc.seal(PAYLOAD_SOL, b"\x02\x00\x00\x00def")
    forged = bytearray(first)
    forged[20] ^= 1
    assert us.open(bytes(forged)) is None  # fails its HMAC
    assert us.open(second) is not None
    assert us.open(first) is None  # older sequence number: a replay
    other = RmcpPlusCodec(SessionKeys(9, 1, K1, AES, "sha256", next_seq=200))
    assert us.open(other.seal(PAYLOAD_SOL, b"\x03\x00\x00\x00")) is None  # not our session
    wrong_key = RmcpPlusCodec(SessionKeys(2, 1, b"k" * 32, AES, "sha256", next_seq=300))
    assert us.open(wrong_key.seal(PAYLOAD_SOL, b"\x03\x00\x00\x00")) is None


def test_channel_delivers_each_byte_once_across_retransmits_and_duplicates() -> None:
    ch = SolChannel()
    fresh, out = ch.got(b"\x01\x00\x00\x00abc", 0.0)
    assert (fresh, out) == (b"abc", [b"\x00\x01\x03\x00"])
    # The BMC retransmits packet 1 with more data behind it (our ACK was lost, or is late).
    # Nothing is taken from it and it is ACKed with the first copy's count, as the first ACK
    # said: the BMC sends "def" again under the next sequence number, whichever ACK it reads.
    fresh, out = ch.got(b"\x01\x00\x00\x00abcdef", 0.1)
    assert (fresh, out) == (b"", [b"\x00\x01\x03\x00"])
    fresh, _ = ch.got(b"\x02\x00\x00\x00def", 0.2)
    assert fresh == b"def"
    fresh, out = ch.got(b"\x01\x00\x00\x00abcdef", 0.3)  # a late copy of the one before
    assert fresh == b"" and out == [b"\x00\x01\x06\x00"]
    fresh, out = ch.got(b"\x02\x00\x00\x00de", 0.35)  # a shorter copy: ACK what it holds
    assert fresh == b"" and out == [b"\x00\x02\x02\x00"]
    fresh, _ = ch.got(b"\x03\x00\x00\x00ghi", 0.38)
    assert fresh == b"ghi"
    fresh, out = ch.got(b"\x03\x00\x00\x00ghi", 0.4)  # a duplicate of the current one
    assert fresh == b"" and out == [b"\x00\x03\x03\x00"]


def test_channel_output_partial_ack_nack_retries_and_probe() -> None:
    timing = SolTiming(retry_interval=1.0, retries=2, keepalive=5.0)
    ch = SolChannel(max_out=4, timing=timing)
    ch.last_heard = 0.0
    ch.queue(b"abcdefgh")
    assert ch.service(0.0) == [b"\x01\x00\x00\x00abcd"]
    assert ch.service(0.5) == []  # awaiting the ACK
    # Partial ACK: 2 of 4 accepted; the rest goes first in the next packet.
    _, out = ch.got(b"\x00\x01\x02\x00", 0.6)
    assert out == [b"\x02\x00\x00\x00cdef"]
    # NACK with nothing accepted: back off 100 ms, then resend the same bytes.
    _, out = ch.got(b"\x00\x02\x00\x40", 0.7)
    assert out == []
    assert ch.service(0.85) == [b"\x03\x00\x00\x00cdef"]
    # Silence: two retransmits, then the session is declared lost.
    assert ch.service(1.85) == [b"\x03\x00\x00\x00cdef"]
    assert ch.service(2.85) == [b"\x03\x00\x00\x00cdef"]
    assert ch.service(3.85) == [] and ch.closed_reason is not None
    idle = SolChannel(timing=timing)
    idle.last_heard = 0.0
    assert idle.service(4.9) == []
    assert idle.service(5.0) == [b"\x01\x00\x00\x00"]  # the empty probe the BMC must ACK
    brk = SolChannel()
    brk.queue_break()
    assert brk.service(0.0) == [b"\x01\x00\x00\x10"]
    deact = SolChannel()
    deact.got(b"\x00\x00\x00\x10", 0.0)
    assert deact.deactivated and deact.closed_reason


def _stream(size: int) -> bytes:
    return hashlib.shake_256(b"sol-engine").digest(size)


def test_virtual_bmc_stream_is_byte_exact_and_typing_reaches_the_host(
    vbmc_process: tuple[int, PtyPair], tmp_path: Any
) -> None:
    """The recorder gets every byte straight from the engine thread (no Console)."""
    port, pty = vbmc_process
    target = IpmiTarget("127.0.0.1", USER, port)
    rec = Recording("engine", root=tmp_path)
    data = _stream(48 * 1024 + 7)
    with EngineSolTransport(target, PASSWORD, sink=rec.feed) as tr:
        session = tr.engine_session
        assert session is not None
        # Chunk by chunk, each one taken in by the engine before the next is written.
        deadline = time.monotonic() + 30
        for i in range(0, len(data), 4096):
            os.write(pty.master, data[i : i + 4096])
            while session.bytes_in < min(i + 4096, len(data)):
                assert time.monotonic() < deadline, f"{session.bytes_in} of {len(data)} in"
                time.sleep(0.02)  # the engine thread counts; poll the count
        tr.write(b"typed through the engine\r")
        assert tr.drain(10)
        assert read_until(pty.master, b"engine\r", 5).endswith(b"typed through the engine\r")
    summary = rec.close()
    assert summary.sha256 == hashlib.sha256(data).hexdigest()
    # The session was handed back and logged out: the BMC takes a new one at once.
    with EngineSolTransport(target, PASSWORD, sink=lambda b: None) as again:
        assert again.engine_session is not None


def test_virtual_bmc_through_a_console(vbmc_process: tuple[int, PtyPair]) -> None:
    """Without a sink the transport reads like any other: Console on top, byte-exact."""
    port, pty = vbmc_process
    data = _stream(20000)
    got = bytearray()
    tr = EngineSolTransport(IpmiTarget("127.0.0.1", USER, port), PASSWORD)
    with Console(tr, sink=got.extend) as con:
        os.write(pty.master, data)
        con.wait_for_bytes(len(data), timeout=20)
    assert bytes(got) == data


def test_ipmi_sim_stream_is_byte_exact_both_ways(ipmi_sim: Sim) -> None:
    with EngineSolTransport(ipmi_sim.target(), PASSWORD) as tr:
        data = bytes(range(256)) * 64 + b"L" * 48 * 1024
        ipmi_sim.serial.sendall(data)
        got = read_exactly(tr, len(data), 30)  # type: ignore[arg-type]
        assert hashlib.sha256(got).hexdigest() == hashlib.sha256(data).hexdigest()
        got = b""
        for attempt in range(3):  # ipmi_sim may drop a new session's first packet
            tr.write(f"key{attempt}-".encode())
            assert tr.drain(10)
            got += ipmi_sim.serial_read_until(f"key{attempt}-".encode(), 3)
            if f"key{attempt}-".encode() in got:
                break
        assert got.endswith(f"key{attempt}-".encode())


def test_ipmi_sim_busy_then_steal(ipmi_sim: Sim) -> None:
    first = EngineSolTransport(ipmi_sim.target(), PASSWORD)
    try:
        with pytest.raises(SolBusyError, match="--steal"):
            EngineSolTransport(ipmi_sim.target(), PASSWORD)
        with EngineSolTransport(ipmi_sim.target(), PASSWORD, steal=True) as second:
            assert second.stole
            ipmi_sim.serial.sendall(b"to-the-thief")
            assert read_exactly(second, 12, 10) == b"to-the-thief"  # type: ignore[arg-type]
            with pytest.raises(ConsoleClosed):
                for _ in range(150):  # ipmi_sim tells the first holder, or its probe does
                    first.read(100, 0.2)
    finally:
        first.close()


def test_owner_check_ends_the_session_when_another_client_holds_sol() -> None:
    """A BMC that lets a thief take SOL without telling us: the engine's periodic Get Payload
    Instance Info (the pyghmi path's keepalive) notices. The BMC here is a scripted UDP peer
    with the same codec (the virtual BMC and ipmi_sim do tell the holder, so they cannot
    show this); the request must be the IPMI v2.0 §13.8 message, checksums included."""
    import socket
    import threading

    from solcap.transports.sol_engine import (
        PAYLOAD_IPMI,
        EngineSession,
        SolEngine,
        ipmi_request,
        ipmi_response,
    )

    bmc_sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    bmc_sock.bind(("127.0.0.1", 0))
    bmc_sock.settimeout(10)
    ours = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    ours.bind(("127.0.0.1", 0))
    bmc = RmcpPlusCodec(SessionKeys(0x55667788, 0x11223344, K1, AES, "sha256", next_seq=1))
    codec = RmcpPlusCodec(SessionKeys(0x11223344, 0x55667788, K1, AES, "sha256", next_seq=1))
    ended = threading.Event()
    reasons: list[str] = []
    session = EngineSession(
        ours,
        bmc_sock.getsockname(),
        codec,
        SolChannel(timing=SolTiming(keepalive=60)),
        lambda b: None,
        lambda s, why: (reasons.append(why), ended.set()),
        owner_interval=0.2,
        rqseq=9,
    )
    engine = SolEngine()
    try:
        engine.add(session)
        packet, peer = bmc_sock.recvfrom(4096)
        opened = bmc.open(packet)
        assert opened is not None and opened[0] == PAYLOAD_IPMI
        assert opened[1] == bytes((0x20, 0x18, 0xC8, 0x81, 10 << 2, 0x4B, 1, 1, 0x0A))
        assert opened[1] == ipmi_request(0x06, 0x4B, b"\x01\x01", 10)

        # First answer: we hold it. Nothing happens.
        def reply(owner: int) -> bytes:
            head = bytes((0x81, 0x07 << 2))
            body = bytes((0x20, 10 << 2, 0x4B, 0)) + struct.pack("<I", owner) + bytes(8)
            msg = head + bytes((-sum(head) & 0xFF,)) + body + bytes((-sum(body) & 0xFF,))
            assert ipmi_response(msg) is not None
            return bmc.seal(PAYLOAD_IPMI, msg)

        bmc_sock.sendto(reply(0x11223344), peer)
        assert not ended.wait(0.5)
        bmc_sock.sendto(reply(0xDEADBEEF), peer)  # another session holds SOL now
        assert ended.wait(5)
        assert reasons == ["SOL deactivated: another client holds it now"]
        assert session.channel.deactivated
    finally:
        engine.stop()
        bmc_sock.close()
        ours.close()
