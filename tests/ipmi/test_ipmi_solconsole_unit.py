"""SolConsole's sequence/ACK handling, driven packet by packet (no network).

Each case first shows pyghmi's stock ``Console`` getting it wrong, then solcap's subclass
getting it right, so a pyghmi upgrade that fixes (or changes) the bug shows up here.
"""

from __future__ import annotations

from typing import Any

import pyghmi.ipmi.console as pyghmi_console
import pytest

from solcap.transports.ipmi import SolConsole

pytestmark = pytest.mark.timeout(10)


class FakeSession:
    """Records the SOL payloads a console sends; stands in for pyghmi's Session."""

    logged = 1
    sessionid = 1234
    negotiated_suite = 17

    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.sol_handler: Any = None

    def send_payload(self, payload: Any, payload_type: int = 1, **_kw: Any) -> None:
        self.sent.append(bytes(payload))

    def unregister_keepalive(self, _regid: Any) -> None:
        pass


def make_fixed() -> tuple[SolConsole, list[bytes], list[tuple[str, str]], FakeSession]:
    got: list[bytes] = []
    events: list[tuple[str, str]] = []
    con = SolConsole.__new__(SolConsole)
    con._init_state(got.append, lambda k, t: events.append((k, t)))
    sess = FakeSession()
    con.ipmi_session = sess
    con.connected = True
    con.activated = True
    con.maxoutcount = 8
    return con, got, events, sess


def make_stock() -> tuple[Any, list[Any], FakeSession]:
    got: list[Any] = []
    con = pyghmi_console.Console.__new__(pyghmi_console.Console)
    con.outputlock = pyghmi_console.threading.RLock()
    con.out_handler = got.append
    con.remseq = con.myseq = con.lastsize = 0
    con.pendingoutput = []
    con.awaitingack = False
    con.broken = False
    con.connected = True
    con.keepaliveid = None
    sess = FakeSession()
    con.ipmi_session = sess
    con.maxoutcount = 8
    return con, got, sess


def pkt(seq: int, ack: int = 0, count: int = 0, status: int = 0, data: bytes = b"") -> bytearray:
    return bytearray([seq, ack, count, status]) + data


RETRANSMIT = [pkt(1, data=b"ABCD"), pkt(1, data=b"ABCDEFGHIJKL"), pkt(2, data=b"MN")]


def test_stock_pyghmi_drops_four_bytes_of_a_retransmit_with_extra_data() -> None:
    con, got, _sess = make_stock()
    for packet in RETRANSMIT:
        con._got_sol_payload(packet)
    assert b"".join(got) == b"ABCDIJKLMN"  # EFGH lost: remdata[4 + lastsize:]


def test_retransmit_with_extra_data_delivers_every_byte_once() -> None:
    con, got, _events, sess = make_fixed()
    for packet in RETRANSMIT:
        con._got_sol_payload(packet)
    assert b"".join(got) == b"ABCDEFGHIJKLMN"
    # every packet is acknowledged with its full length
    assert sess.sent == [bytes([0, 1, 4, 0]), bytes([0, 1, 12, 0]), bytes([0, 2, 2, 0])]


def test_duplicates_and_a_late_copy_of_the_previous_packet_are_not_delivered_twice() -> None:
    con, got, _events, _sess = make_fixed()
    for packet in [
        pkt(1, data=b"one"),
        pkt(1, data=b"one"),
        pkt(2, data=b"two"),
        pkt(1, data=b"one"),
        pkt(2, data=b"two"),
        pkt(3, data=b"three"),
    ]:
        con._got_sol_payload(packet)
    assert b"".join(got) == b"onetwothree"


def test_stock_pyghmi_drops_input_on_a_partial_ack_without_nack() -> None:
    con, _got, sess = make_stock()
    con.send_payload = lambda payload, **_kw: sess.sent.append(bytes(payload))
    con.lastpayload = bytearray([1, 0, 0, 0]) + b"12345678"
    con.lasttextsize = 8
    con.myseq = 1
    con.awaitingack = True
    con._got_sol_payload(pkt(0, ack=1, count=5))  # BMC took 5 of 8, no NACK bit
    assert con.pendingoutput == []  # "678" is gone for good
    assert not con.awaitingack


def test_partial_ack_resends_the_rest_in_order() -> None:
    con, _got, _events, sess = make_fixed()
    con.send_data(b"12345678abcd")
    con.service(0.0)
    assert sess.sent[-1] == bytes([1, 0, 0, 0]) + b"12345678"
    con._got_sol_payload(pkt(0, ack=1, count=5))  # partial ACK, no NACK
    assert sess.sent[-1] == bytes([2, 0, 0, 0]) + b"678abcd"
    con._got_sol_payload(pkt(0, ack=2, count=7))
    assert not con.awaitingack and con.pendingoutput == []


def test_nack_with_nothing_accepted_backs_off_then_resends() -> None:
    con, _got, _events, sess = make_fixed()
    con.send_data(b"xyz")
    con.service(0.0)
    con._got_sol_payload(pkt(0, ack=1, count=0, status=0b0100_0000))
    assert len(sess.sent) == 1  # not resent at once: the BMC said it is busy
    con.service(con.resume_at + 0.01)
    assert sess.sent[-1] == bytes([2, 0, 0, 0]) + b"xyz"


def test_lost_ack_is_retransmitted_with_the_same_sequence_then_gives_up() -> None:
    con, _got, events, sess = make_fixed()
    con.send_data(b"hi")
    con.service(0.0)
    first = sess.sent[-1]
    con.service(con.sent_at + 1.5)
    assert sess.sent[-1] == first
    for _ in range(10):
        con.service(con.sent_at + 1.5)
    assert con.broken
    assert events[-1][0] == "error" and "Connection lost" in events[-1][1]


def test_deactivated_status_bit_breaks_the_console_and_writes_then_raise() -> None:
    con, _got, events, _sess = make_fixed()
    con._got_sol_payload(pkt(0, status=0b0101_0000))
    assert con.broken and events[-1][0] == "error"
    with pytest.raises(Exception, match="broken"):
        con.send_data(b"x")


def test_break_goes_out_as_its_own_packet_in_order() -> None:
    con, _got, _events, sess = make_fixed()
    con.send_data(b"ab")
    con.send_break()
    con.send_data(b"cd")
    con.service(0.0)
    con._got_sol_payload(pkt(0, ack=1, count=2))
    con._got_sol_payload(pkt(0, ack=2, count=0))
    assert sess.sent == [
        bytes([1, 0, 0, 0]) + b"ab",
        bytes([2, 0, 0, 0x10]),
        bytes([3, 0, 0, 0]) + b"cd",
    ]


class ActivatingSession(FakeSession):
    """Answers IPMI commands from a script and records them (netfn, command)."""

    def __init__(self, owner: int, activate_codes: list[int]) -> None:
        super().__init__()
        self.owner = owner
        self.activate_codes = activate_codes
        self.commands: list[tuple[int, int]] = []

    def raw_command(self, netfn: int, command: int, data: Any = ()) -> dict[str, Any]:
        self.commands.append((netfn, command))
        if command == 0x48:  # activate payload
            code = self.activate_codes.pop(0)
            if code:
                return {"code": code, "data": b""}
            return {"code": 0, "data": bytes([0, 0, 0, 0, 0xFF, 0, 0xFF, 0, 0x6F, 0x02, 0, 0])}
        if command == 0x4B:  # get payload instance info: the holder's session ID
            return {"code": 0, "data": self.owner.to_bytes(4, "little") + bytes(8)}
        return {"code": 0, "data": b""}

    def register_keepalive(self, **_kw: Any) -> int:
        return 1


def make_activating(owner: int) -> tuple[SolConsole, list[tuple[str, str]], ActivatingSession]:
    events: list[tuple[str, str]] = []
    con = SolConsole.__new__(SolConsole)
    con._init_state(lambda _d: None, lambda k, t: events.append((k, t)))
    sess = ActivatingSession(owner, [0x80, 0])
    con.ipmi_session = sess
    return con, events, sess


def test_activate_answered_busy_for_our_own_session_is_taken_back_and_redone() -> None:
    # A retransmitted (or duplicated) Activate Payload reaches a BMC that already activated
    # SOL for this session; many answer the repeat with 0x80, "active in another session".
    con, events, sess = make_activating(owner=FakeSession.sessionid)
    con._activate()
    assert sess.commands == [(6, 0x48), (6, 0x4B), (6, 0x49), (6, 0x48)]
    assert con.activated and not con.broken
    assert events == [("active", "SOL active, cipher suite 17")]
    assert con.maxoutcount == 251


def test_activate_busy_for_another_session_fails_without_touching_it() -> None:
    con, events, sess = make_activating(owner=FakeSession.sessionid + 1)
    con._activate()
    assert sess.commands == [(6, 0x48), (6, 0x4B)]  # no deactivate: not ours to take
    assert not con.activated and con.broken
    assert events == [("error", "SOL Session active for another client")]
