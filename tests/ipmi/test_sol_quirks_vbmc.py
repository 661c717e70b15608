"""SOL sequence/ACK handling through the real session path, against a virtual BMC that misbehaves
the way real ones do (``python -m solcap.sim.bmc`` quirk options, its own process).

Each case runs on both data paths: the SOL engine (the default) and pyghmi's pump with solcap's
``SolConsole`` (``engine=False``). What is compared is what the host wrote against what solcap
read, or what solcap wrote against what reached the host's serial line, byte for byte.
"""

from __future__ import annotations

import hashlib
import os
import select
import time

import pytest

from solcap.transports.ipmi import IpmiSolTransport, IpmiTarget, SolBusyError
from tests.ipmi.conftest import PASSWORD, USER, PtyPair, vbmc_running

pytestmark = pytest.mark.timeout(90)
PATHS = pytest.mark.parametrize("engine", [True, False], ids=["engine", "pyghmi-path"])


def stream(size: int) -> bytes:
    """Every byte value, in an order that no shift or repeat leaves unchanged."""
    return hashlib.shake_256(b"sol-quirks").digest(size)


def read_transport(tr: IpmiSolTransport, n: int, timeout: float) -> bytes:
    got = bytearray()
    deadline = time.monotonic() + timeout
    while len(got) < n and time.monotonic() < deadline:
        got += tr.read(65536, 0.5)
    return bytes(got)


def read_host(fd: int, n: int, timeout: float) -> bytes:
    """What reached the host's serial line: exactly ``n`` bytes or what came by the deadline."""
    got = bytearray()
    deadline = time.monotonic() + timeout
    while len(got) < n:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            break
        got += os.read(fd, 65536)
    return bytes(got)


def no_more_from_host(fd: int, wait: float = 0.5) -> bytes:
    """Anything beyond what was expected (a duplicated keystroke would show here)."""
    extra = b""
    while select.select([fd], [], [], wait)[0]:
        extra += os.read(fd, 65536)
    return extra


def open_sol(port: int, engine: bool) -> IpmiSolTransport:
    return IpmiSolTransport(IpmiTarget("127.0.0.1", USER, port, 17), PASSWORD, engine=engine)


#: BMC-to-solcap quirks, each with why it could deliver a byte twice or drop one.
#: --retransmit-extra: every chunk arrives first as its front half, then whole under the same
#: sequence number; pyghmi's stock Console drops four bytes of each such retransmission
#: (remdata[4 + lastsize:]).
#: --late-ack: ipmi_sim with a late ACK (tests/ipmi/test_sol_late_ack.py, there with real
#: timing): the chunk's front half is ACKed, the whole chunk crosses that ACK as a
#: retransmission, and the ACK then counts as partial, so the back half comes again under the
#: next sequence number; taking the back half from the retransmission as well would deliver
#: it twice.
HOST_TO_SOLCAP = pytest.mark.parametrize("quirk", ["--retransmit-extra", "--late-ack"])


@PATHS
@HOST_TO_SOLCAP
def test_host_output_arrives_every_byte_once(pty_pair: PtyPair, engine: bool, quirk: str) -> None:
    data = stream(8192)
    with vbmc_running(pty_pair.path, quirk) as port, open_sol(port, engine) as tr:
        os.write(pty_pair.master, data)
        got = read_transport(tr, len(data), 30)
        assert hashlib.sha256(got).hexdigest() == hashlib.sha256(data).hexdigest()
        assert tr.read(65536, 0.5) == b""  # and nothing twice after it


@PATHS
def test_partial_acks_resend_the_rest_in_order(pty_pair: PtyPair, engine: bool) -> None:
    # The BMC takes 5 characters of each packet (partial ACK, no NACK bit); the client must send
    # the rest, in order. pyghmi's stock Console drops the rest for good.
    typed = stream(600)
    with vbmc_running(pty_pair.path, "--accept-at-most", "5") as port, open_sol(port, engine) as tr:
        tr.write(typed)
        assert tr.drain(30)
        assert read_host(pty_pair.master, len(typed), 30) == typed
        assert no_more_from_host(pty_pair.master) == b""


@PATHS
def test_nack_with_nothing_accepted_is_sent_again(pty_pair: PtyPair, engine: bool) -> None:
    # Every other new packet is refused (NACK, count 0): each must be sent again, and once.
    with vbmc_running(pty_pair.path, "--nack-every-other") as port, open_sol(port, engine) as tr:
        sent = b""
        for i in range(6):
            piece = stream(40 + i)[i:] + f"|{i}|".encode()
            tr.write(piece)
            assert tr.drain(30)
            sent += piece
        assert read_host(pty_pair.master, len(sent), 30) == sent
        assert no_more_from_host(pty_pair.master) == b""


@PATHS
def test_activate_answered_busy_for_our_own_session_is_taken_back_and_redone(
    pty_pair: PtyPair, engine: bool
) -> None:
    # The BMC activates SOL for our session but answers 0x80, as for a retransmitted Activate
    # whose first reply was lost. Taken at its word, the console would fail as busy.
    with vbmc_running(pty_pair.path, "--activate-busy-once") as port, open_sol(port, engine) as tr:
        assert not tr.stole
        os.write(pty_pair.master, b"host says hello")
        assert read_transport(tr, 15, 20) == b"host says hello"
        tr.write(b"typed")
        assert tr.drain(20)
        assert read_host(pty_pair.master, 5, 20) == b"typed"


@PATHS
def test_activate_busy_for_another_session_fails_without_touching_it(
    pty_pair: PtyPair, engine: bool
) -> None:
    with vbmc_running(pty_pair.path) as port, open_sol(port, engine) as holder:
        with pytest.raises(SolBusyError, match="--steal"):
            open_sol(port, engine)
        # the holder was not deactivated: output still reaches it, its typing the host
        os.write(pty_pair.master, b"still yours")
        assert read_transport(holder, 11, 20) == b"still yours"
        holder.write(b"mine")
        assert holder.drain(20)
        assert read_host(pty_pair.master, 4, 20) == b"mine"
