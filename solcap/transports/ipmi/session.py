"""pyghmi's client session, owned: one login per socket, one pinned cipher suite, checked.

* pyghmi hands back an existing session for the same (BMC, user, password, Kg) and so two
  consoles would share one login and one SOL owner: :class:`OwnSession` is always fresh, on a
  socket no other session uses;
* it cannot choose a cipher suite and never checks what the BMC accepted: :class:`OwnSession`
  proposes exactly one suite and verifies the reply. Which one is :func:`negotiate`'s choice,
  as ipmitool makes it: ``?cipher=17|3`` pins one (never a fallback); otherwise the strongest
  of 17 and 3 that the BMC lists in Get Channel Cipher Suites (asked outside any session,
  :func:`offered_suites`), or 17 then 3 when the BMC does not answer that;
* every login attempt restarts at the same console session ID and RMCP+ tag, so when a RAKP
  exchange times out and pyghmi starts over, a late RAKP2 from the abandoned attempt matches
  the new one and fails the login as "incorrect password": :class:`OwnSession` starts each
  attempt at a random ID and tag;
* pyghmi's error strings become :class:`~solcap.errors.ConnectError` (:func:`login_error`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import secrets
import socket
import struct
import time
from collections.abc import Callable
from typing import Any, TypeVar

import pyghmi.ipmi.private.constants as pyghmi_constants
import pyghmi.ipmi.private.session as pyghmi_session

from solcap.errors import ConnectError
from solcap.transports.ipmi.target import (
    DEFAULT_PORT,
    LOGIN_QUIET,
    LOGIN_SENDS,
    RAKP_WAIT_MAX,
    SUITE_ALGOS,
    SUITES,
    SUITES_QUERY_WAIT,
    IpmiTarget,
    SolBusyError,
)

log = logging.getLogger(__name__)


class OwnSession(pyghmi_session.Session):  # type: ignore[misc]
    """A pyghmi client session that never shares a socket or a login, and pins its suite."""

    def __new__(cls, *args: Any, **kwargs: Any) -> OwnSession:
        # pyghmi hands back an existing session for the same (bmc, user, password, kg): two
        # consoles would then share one login (and one SOL owner). Always make a fresh one on
        # a socket no other session uses, because replies are routed by (peer, local port).
        self: OwnSession = object.__new__(cls)
        taken = []
        for handlers in list(pyghmi_session.Session.bmc_handlers.values()):
            if isinstance(handlers, dict):
                for other in list(handlers.values()):
                    sock = getattr(other, "socket", None)
                    if sock is not None:
                        taken.append(sock)
        self.forbidsock = taken
        return self

    def __init__(
        self,
        bmc: str,
        userid: str,
        password: str,
        port: int,
        kg: str | None,
        onlogon: Callable[[dict[str, Any]], None],
        suite: int,
    ) -> None:
        self.suite = suite
        self.negotiated_suite: int | None = None
        self.allsockaddrs: list[Any] = []
        #: When a packet from the BMC last reached this session (monotonic), None before
        #: the first: a login still being answered is slow, not dead (:func:`await_login`).
        self.heard: float | None = None
        #: How many RAKP answers came too late for their wait (see :meth:`_timedout`).
        self.slow_rakps = 0
        #: Where SOL packets go that no SOL handler takes (set for the SOL engine's hand-over,
        #: :mod:`solcap.transports.ipmi.engine`): kept raw, never ACKed nor dropped by pyghmi.
        self.sol_catcher: Callable[[bytes], None] | None = None
        super().__init__(bmc, userid, password, port=port, kg=kg, onlogon=onlogon)

    def _initsession(self) -> None:
        super()._initsession()
        # pyghmi proposes 17 when attemptedhash is 256 and 3 when it is 1.
        self.attemptedhash = 256 if self.suite == 17 else 1
        # pyghmi resets both to constants on every (re)login; a reply still in flight from
        # an abandoned attempt would then carry the new attempt's ID and tag.
        self.localsid = secrets.randbits(32)
        self.rmcptag = secrets.randbits(8)
        # pyghmi gives up on a login request after two unanswered sends and restarts the
        # login once: on a link that loses a few percent of packets, a fleet of logins then
        # sees some fail. Three sends per request (~5 s before the one restart) keeps the
        # failure rate of a healthy BMC far below that of a dead one.
        self.maxtimeout = max(getattr(self, "maxtimeout", 0), LOGIN_SENDS)

    def own_sol_packet(self, data: Any, sockaddr: Any = None) -> bool:
        """Whether ``data`` (raw, as read) is an RMCP+ SOL packet for this session."""
        return (
            len(data) > 10
            and data[4] == 6  # RMCP+
            and data[5] & 0x3F == 1  # SOL
            and bytes(data[6:10]) == struct.pack("<I", self.localsid)
            and (self.sockaddr is None or sockaddr is None or sockaddr == self.sockaddr)
        )

    def _handle_ipmi_packet(self, data: Any, sockaddr: Any = None, qent: Any = None) -> Any:
        self.heard = time.monotonic()
        catcher = self.sol_catcher
        if catcher is not None and self.sol_handler is None and self.own_sol_packet(data, sockaddr):
            # A SOL packet read by pyghmi's I/O thread around the hand-over (the BMC may send
            # the first one before its Activate reply, or pyghmi may still read the socket
            # just after it left the list): pyghmi would drop it unACKed and only a
            # retransmission would bring its bytes. The engine gets it as it came.
            catcher(bytes(data))
            return None
        return super()._handle_ipmi_packet(data, sockaddr, qent)

    def _timedout(self) -> Any:
        # pyghmi restarts the whole login when a RAKP answer is late, and every restart waits
        # 0.5-1 s for it again: a BMC (or a loaded machine) that takes longer to answer RAKP
        # never logs in, and each abandoned attempt holds one of its few session slots. So
        # each late RAKP makes the next attempt's wait a second longer (_send_rakp1/3), and
        # the restart is pyghmi's own (maxtimeout raised so a long wait is not taken for a
        # dead BMC before it restarts).
        if self.lastpayload and self.sessioncontext in ("EXPECTINGRAKP2", "EXPECTINGRAKP4"):
            self.slow_rakps += 1
            self.maxtimeout = max(self.maxtimeout, getattr(self, "timeout", 0.0) + 1)
        return super()._timedout()

    def _rakp_wait(self) -> None:
        wait: float = pyghmi_session.initialtimeout + 0.5 + self.slow_rakps
        current: float = getattr(self, "timeout", 0.0)  # pyghmi's, set by _initsession
        self.timeout = max(current, min(wait, RAKP_WAIT_MAX))

    def _send_rakp1(self) -> Any:
        self._rakp_wait()
        return super()._send_rakp1()

    def _send_rakp3(self) -> Any:
        self._rakp_wait()
        return super()._send_rakp3()

    # pyghmi only ever increments these two; keep them inside their wire fields (a tag of
    # 256 would raise in pyghmi's packet builder, inside the I/O thread).
    @property
    def rmcptag(self) -> int:
        return self._rmcptag

    @rmcptag.setter
    def rmcptag(self, value: int) -> None:
        self._rmcptag = value & 0xFF

    @property
    def localsid(self) -> int:
        return self._localsid

    @localsid.setter
    def localsid(self, value: int) -> None:
        # 0 means "no session" in the RMCP+ header.
        self._localsid = (value & 0xFFFFFFFF) or 1

    def _got_rmcp_response(self, data: Any) -> Any:
        if not (self.sessioncontext and self.sessioncontext != "ESTABLISHED"):
            return -9
        if data[0] != self.rmcptag:
            return -9
        if data[1] != 0:
            # pyghmi would silently retry with suite 3; we do what we were told or fail.
            reason = pyghmi_constants.rmcp_codes.get(data[1], f"RMCP+ status {data[1]:#x}")
            self.onlogon({"error": f"{_REFUSED} {self.suite}: {reason}"})
            return -9
        accepted = (data[16], data[24], data[32]) if len(data) >= 36 else None
        if accepted != SUITE_ALGOS[self.suite]:
            self.onlogon(
                {"error": f"{_REFUSED} {self.suite}: it answered with algorithms {accepted}"}
            )
            return -9
        self.negotiated_suite = self.suite
        return super()._got_rmcp_response(data)


_REFUSED = "BMC refused cipher suite"


def await_login(
    ready: Callable[[float], bool],
    session: Callable[[], OwnSession | None],
    timeout: float,
    grace: float,
) -> bool:
    """Wait for ``ready(seconds)`` to say the login is over; False when it should give up.

    Up to ``timeout`` seconds, the documented bound ("a BMC that does not answer fails within
    10 s"); past it only while the BMC answered the session within the last
    :data:`LOGIN_QUIET` seconds (a busy BMC or a loaded machine is slow, not dead), and
    ``grace`` seconds more at most.
    """
    deadline = time.monotonic() + timeout
    limit = deadline + grace
    while True:
        now = time.monotonic()
        if now < deadline:
            wait = deadline - now
        else:
            heard = getattr(session(), "heard", None)
            if now >= limit or heard is None or now - heard > LOGIN_QUIET:
                return False
            wait = min(0.25, limit - now)
        if ready(wait):
            return True


class CipherRefused(ConnectError):
    """The BMC would not open a session with the suite proposed (its RMCP+ status says why)."""

    def __init__(self, host: str, suite: int, reason: str, fix: str = "") -> None:
        self.suite = suite
        self.reason = reason
        super().__init__(host, f"{_REFUSED} {suite}: {reason}" + (f"; {fix}" if fix else ""))


def _fix_for(suite: int) -> str:
    other = 3 if suite == 17 else 17
    return (
        f"leave ?cipher= out of the address to let solcap pick the strongest suite the BMC "
        f"offers, or pin ?cipher={other}"
    )


#: pyghmi's error strings during login/activation -> how we say it.
def login_error(target: IpmiTarget, error: str) -> ConnectError:
    if error.startswith(_REFUSED):
        suite_text, _, reason = error[len(_REFUSED) :].strip().partition(": ")
        suite = int(suite_text)
        # Pinned: say how to get out of it (negotiate() words its own message otherwise).
        fix = _fix_for(suite) if target.cipher is not None else ""
        return CipherRefused(target.name, suite, reason, fix)
    low = error.lower()
    if "incorrect password" in low or "invalid integrity check" in low:
        return ConnectError(target.name, f"authentication failed for user {target.user}")
    if "unauthorized name" in low:
        return ConnectError(
            target.name, f"authentication failed for user {target.user} (unknown user)"
        )
    if low in ("timeout", "session failed to initialize") or "no longer connected" in low:
        return ConnectError(target.name, f"no answer from the BMC on UDP port {target.port}")
    if "active for another client" in low:
        return SolBusyError(
            target.name,
            "SOL is active for another client; use --steal to deactivate it and take over",
        )
    return ConnectError(target.name, error)


# ------------------------------------------------------------------ cipher suite negotiation

_RMCP = b"\x06\x00\xff\x07"  # RMCP v1.0, no ACK, class IPMI
#: Get Channel Cipher Suites (App netfn 06h, command 54h), the IPMI v2.0 table 22-18 request.
_GCCS_CMD = 0x54
_GCCS_MAX_INDEX = 0x3F


def _checksum(data: bytes) -> int:
    return -sum(data) & 0xFF


def _gccs_requests(index: int) -> tuple[bytes, bytes]:
    """The request for record block ``index``, as IPMI v1.5 and as RMCP+ sessionless packets.

    Both, because BMCs differ in which they answer outside a session: OpenIPMI's lanserv
    answers the v1.5 form only; ipmitool asks in the RMCP+ form; a BMC with IPMI v1.5 turned
    off may ignore the first. The request sequence number carries the index.
    """
    head = bytes([0x20, 0x06 << 2])
    body = bytes([0x81, (index & 0x3F) << 2, _GCCS_CMD, 0x0E, 0x00, 0x80 | index])
    message = head + bytes([_checksum(head)]) + body + bytes([_checksum(body)])
    v15 = _RMCP + b"\x00" + b"\x00" * 8 + bytes([len(message)]) + message
    v20 = _RMCP + b"\x06\x00" + b"\x00" * 8 + struct.pack("<H", len(message)) + message
    return v15, v20


def _gccs_reply(packet: bytes) -> tuple[int, bytes] | None:
    """(index, record bytes) from a Get Channel Cipher Suites reply, or None if not one."""
    if len(packet) < 5 or packet[:4] != _RMCP:
        return None
    if packet[4] == 0x06 and len(packet) >= 16:  # RMCP+: format, payload type, sid, seq, len
        message = packet[16 : 16 + struct.unpack("<H", packet[14:16])[0]]
    elif packet[4] == 0x00 and len(packet) >= 14:  # v1.5, no authentication
        message = packet[14 : 14 + packet[13]]
    else:
        return None
    # rqAddr, netFn/rqLUN, csum, rsAddr, rqSeq/rsLUN, cmd, completion, channel, records…, csum
    if len(message) < 9 or message[1] >> 2 != 0x07 or message[5] != _GCCS_CMD or message[6]:
        return None
    return message[4] >> 2, bytes(message[8:-1])


def _suite_ids(records: bytes) -> frozenset[int]:
    """Cipher suite IDs in the concatenated records (C0h = standard, C1h = OEM + 3-byte IANA)."""
    found: set[int] = set()
    i = 0
    while i < len(records):
        tag = records[i]
        if tag == 0xC0 and i + 1 < len(records):
            found.add(records[i + 1])
            i += 2
        elif tag == 0xC1 and i + 1 < len(records):
            found.add(records[i + 1])
            i += 5
        else:
            i += 1  # an algorithm tag (auth 00h-3Fh, integrity 4xh, confidentiality 8xh)
    return frozenset(found)


def check_resolvable(target: IpmiTarget) -> None:
    """Refuse a BMC host name that does not resolve, as one ConnectError naming the host.

    pyghmi resolves the name itself deep in its session setup and reports a failure as
    "Unable to transmit to specified address" (or a bare ``socket.gaierror``): a traceback, or
    a message that does not say the name is the problem. Asked once here, before any login.
    """
    try:
        socket.getaddrinfo(target.host, target.port, type=socket.SOCK_DGRAM)
    except (OSError, UnicodeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        raise ConnectError(
            target.name, f"cannot resolve the BMC's host name {target.host!r}: {reason}"
        ) from None


def offered_suites(
    host: str, port: int = DEFAULT_PORT, *, wait: float = SUITES_QUERY_WAIT
) -> frozenset[int] | None:
    """The cipher suites the BMC lists in Get Channel Cipher Suites, or None if it won't say.

    Asked outside any session (the command needs none), on a socket of its own, each block
    twice at most; None after silence, an error reply or a reply nobody can parse.
    """
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    except OSError:
        return None
    family, _, _, _, address = infos[0]
    records = b""
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        for index in range(_GCCS_MAX_INDEX + 1):
            block = _gccs_block(sock, address, index, wait)
            if block is None:
                return None if index == 0 else _suite_ids(records)
            records += block
            if len(block) < 16:
                break
    return _suite_ids(records)


def _gccs_block(sock: socket.socket, address: Any, index: int, wait: float) -> bytes | None:
    for _attempt in range(2):
        for packet in _gccs_requests(index):
            with contextlib.suppress(OSError):
                sock.sendto(packet, address)
        deadline = time.monotonic() + wait
        while (left := deadline - time.monotonic()) > 0:
            sock.settimeout(left)
            try:
                data, _peer = sock.recvfrom(512)
            except (TimeoutError, OSError):
                break
            reply = _gccs_reply(data)
            if reply is not None and reply[0] == index:
                return reply[1]
    return None


T = TypeVar("T")


def pinned_suite(target: IpmiTarget) -> int:
    """The suite of a target :func:`negotiate` has chosen for (a session proposes exactly one)."""
    if target.cipher is None:
        raise ValueError(f"{target.name}: no cipher suite chosen; log in through negotiate()")
    return target.cipher


@dataclasses.dataclass(frozen=True)
class CipherChoice:
    """How the suite of a session was chosen, for the log and the recording's meta.json."""

    suite: int
    how: str  # "pinned" | "offered" (Get Channel Cipher Suites) | "tried" (no answer to it)
    offered: tuple[int, ...] | None = None  # what the BMC listed, when it answered

    def describe(self) -> str:
        if self.how == "pinned":
            return f"cipher suite {self.suite} (pinned by ?cipher=)"
        if self.how == "offered":
            listed = ", ".join(str(n) for n in self.offered or ())
            return f"cipher suite {self.suite} (strongest of 17, 3 among those offered: {listed})"
        return f"cipher suite {self.suite} (no answer to Get Channel Cipher Suites; tried 17, 3)"

    def as_meta(self) -> dict[str, Any]:
        meta: dict[str, Any] = {"cipher_suite": self.suite, "cipher_choice": self.how}
        if self.offered is not None:
            meta["cipher_suites_offered"] = list(self.offered)
        return meta


def negotiate(
    target: IpmiTarget,
    login: Callable[[IpmiTarget], T],
    *,
    query: Callable[[str, int], frozenset[int] | None] = offered_suites,
) -> tuple[T, CipherChoice]:
    """Log in with the suite ipmitool would pick; return what ``login`` returned and the choice.

    ``?cipher=`` pinned: that suite only (its refusal names the fix). Otherwise the suites
    of (17, 3) that Get Channel Cipher Suites lists, strongest first, or both when the BMC
    does not answer it; only a refusal of a suite moves on to the next (a wrong password or a
    silent BMC does not).
    """
    check_resolvable(target)
    if target.cipher is not None:
        return login(target), CipherChoice(target.cipher, "pinned")
    offered = query(target.host, target.port)
    order: tuple[int, ...] = SUITES
    if offered is None:
        how, listed = "tried", None
    else:
        listed = tuple(sorted(offered))
        order, how = tuple(n for n in SUITES if n in offered), "offered"
        if not order:
            raise ConnectError(
                target.name,
                f"the BMC offers cipher suites {', '.join(map(str, listed)) or 'none'} but "
                "neither 17 nor 3, the only ones solcap speaks (suite 0 has no authentication); "
                "enable suite 17 or 3 on the BMC (e.g. ipmitool lan set 1 cipher_privs)",
            )
    refused: list[CipherRefused] = []
    for suite in order:
        try:
            result = login(dataclasses.replace(target, cipher=suite))
        except CipherRefused as exc:
            log.info("%s: %s", target.name, exc.one_line())
            refused.append(exc)
            continue
        choice = CipherChoice(suite, how, listed)
        log.info("%s: %s", target.name, choice.describe())
        return result, choice
    reasons = "; ".join(f"{exc.suite}: {exc.reason}" for exc in refused)
    raise ConnectError(
        target.name,
        f"BMC refused cipher suite{'s' if len(refused) > 1 else ''} "
        f"{' and '.join(str(e.suite) for e in refused)} ({reasons}); enable suite 17 or 3 "
        "for this user's privilege on the BMC (e.g. ipmitool lan set 1 cipher_privs)",
    )
