"""IPMI v2.0 lanplus Serial-over-LAN through pyghmi; every pyghmi specific lives here.

pyghmi speaks RMCP+ well, but its SOL client needs owning before a capture tool can trust it:

* nothing progresses unless some thread pumps ``Session.wait_for_rsp``: one :class:`_Pump`
  thread per process does all pyghmi work (pyghmi's state is process-global, so two pumping
  threads would race), and user threads only hand it bytes;
* it reports failures as dicts passed to the data callback and lets callback exceptions escape
  into the pumping thread: here they become :class:`~solcap.errors.ConnectError`,
  :class:`SolBusyError` or :class:`~solcap.errors.ConsoleClosed`, raised in the caller's thread;
* it cannot choose a cipher suite and never checks what the BMC accepted: :class:`_Session`
  proposes exactly one suite and verifies the reply. Which one is :func:`negotiate`'s choice,
  as ipmitool makes it: ``?cipher=17|3`` pins one (never a fallback); otherwise the strongest
  of 17 and 3 that the BMC lists in Get Channel Cipher Suites (asked outside any session,
  :func:`offered_suites`), or 17 then 3 when the BMC does not answer that;
* its send path blocks the pumping thread in a retry loop (and recurses once per packet), its
  retransmit path slices ``remdata[4 + lastsize:]`` on an already-stripped payload (4 bytes of
  new data lost), a partial ACK without NACK drops the unaccepted input, and ``send_data`` on a
  broken console silently does nothing: :class:`SolConsole` replaces that state machine;
* ``Console.close()`` deactivates but never logs out (BMCs have few session slots):
  :meth:`IpmiSolTransport.close` does both;
* every login attempt restarts at the same console session ID and RMCP+ tag, so when a RAKP
  exchange times out and pyghmi starts over, a late RAKP2 from the abandoned attempt matches
  the new one and fails the login as "incorrect password": :class:`_Session` starts each
  attempt at a random ID and tag;
* its I/O thread waits with ``select()`` (dies past descriptor 1023), then reads
  every socket in the process (O(N) per packet, the main CPU cost with many sessions); its
  ``_io_wait`` can wait forever; its ``_io_sendto`` flips a socket to blocking under the I/O
  thread's feet: :class:`_PollSelect` (one persistent epoll set), :func:`_ready_graball`
  (reads only the ready sockets, pyghmi's routing unchanged), :func:`_bounded_io_wait` and
  :func:`_nonblocking_sendto` replace them, and :class:`_Pump` serves a console's timers
  every :data:`SERVICE_SWEEP` seconds and its new output at once, not every console per packet;
* a synchronous command (``raw_command``) sends, then waits for the *next* packet from its
  BMC: a reply read in between left it, and the one pumping thread, asleep until the retry
  deadline; :func:`_bounded_io_wait` lets it process the queued reply at once.

Address form: ``ipmi://user@host[:port][?cipher=17|3]`` (no ``cipher``: negotiate).
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import logging
import secrets
import select
import socket
import struct
import threading
import time
import urllib.parse
from collections.abc import Callable, Collection
from typing import Any, TypeVar

import pyghmi.exceptions as pyghmi_exc
import pyghmi.ipmi.console as pyghmi_console
import pyghmi.ipmi.private.constants as pyghmi_constants
import pyghmi.ipmi.private.session as pyghmi_session

from solcap.credentials import PasswordSource, kg_source
from solcap.errors import ConnectError, ConsoleBusy, ConsoleClosed, UsageError
from solcap.limits import split_url
from solcap.transports.base import Transport

log = logging.getLogger(__name__)

DEFAULT_PORT = 623
#: The only suites we speak; 0 (no authentication) and the unencrypted ones are refused.
SUITES = (17, 3)
#: (authentication, integrity, confidentiality) algorithm numbers per suite.
_SUITE_ALGOS = {17: (3, 4, 1), 3: (1, 1, 1)}
#: Seconds between SOL retransmissions, and how many before the session counts as lost.
SOL_RETRY_INTERVAL = 1.0
SOL_RETRIES = 6
#: After this many seconds without a packet from the BMC, probe it with an empty SOL packet
#: (which the BMC must acknowledge); an unanswered probe fails like any unacknowledged packet.
#: So a dead session is noticed within KEEPALIVE_INTERVAL + (SOL_RETRIES + 1) * interval.
KEEPALIVE_INTERVAL = 5.0
#: Upper bound for login plus payload activation.
CONNECT_TIMEOUT = 10.0
#: Seconds to wait for each Get Channel Cipher Suites reply (asked twice) before trying
#: 17 then 3: many BMCs (ipmi_sim among them, in the RMCP+ format) never answer it.
SUITES_QUERY_WAIT = 0.5
#: Sends of one login request before pyghmi restarts the login (its own default is 2).
LOGIN_SENDS = 3


class SolBusyError(ConsoleBusy):
    """The SOL payload is active for another client; ``steal=True`` (``--steal``) takes it."""


class SolSessionLost(ConsoleClosed):
    """An active session stopped answering (BMC gone, network blackhole, session dropped)."""


class SolDeactivated(ConsoleClosed):
    """The BMC or another client (``ipmitool sol deactivate``, a steal) ended our payload."""


@dataclasses.dataclass(frozen=True)
class Liveness:
    """How quickly a dead session is noticed: probe after ``keepalive`` idle seconds, resend
    every ``retry_interval`` seconds, give up after ``retries`` resends."""

    keepalive: float = KEEPALIVE_INTERVAL
    retry_interval: float = SOL_RETRY_INTERVAL
    retries: int = SOL_RETRIES

    @property
    def detection_bound(self) -> float:
        """Worst-case seconds from the last packet heard to the session counting as lost."""
        return self.keepalive + (self.retries + 1) * self.retry_interval + 0.1


@dataclasses.dataclass(frozen=True)
class IpmiTarget:
    """Where a BMC is and whom to log in as (no secrets: those come from a PasswordSource)."""

    host: str
    user: str
    port: int = DEFAULT_PORT
    #: 17 or 3 pins that suite; None negotiates (see :func:`negotiate`).
    cipher: int | None = None

    @classmethod
    def parse(cls, url: str) -> IpmiTarget:
        """Parse ``ipmi://user@host[:port][?cipher=17|3]``; UsageError names what is wrong."""
        parts, port = split_url(url, default_port=DEFAULT_PORT)
        if parts.scheme != "ipmi":
            raise UsageError(f"{url}: not an ipmi:// address")
        if parts.password is not None:
            raise UsageError(
                f"{url}: passwords do not belong in addresses; use IPMI_PASSWORD or a 0600 file"
            )
        if not parts.username or not parts.hostname:
            raise UsageError(f"{url}: expected ipmi://user@host[:port]")
        query = urllib.parse.parse_qs(parts.query)
        cipher: int | None = None
        for key, values in query.items():
            if key != "cipher":
                raise UsageError(f"{url}: unknown option {key!r} (known: cipher)")
            try:
                cipher = int(values[-1])
            except ValueError as exc:
                raise UsageError(f"{url}: cipher must be 17 or 3") from exc
        if cipher is not None and cipher not in SUITES:
            raise UsageError(f"{url}: cipher suite {cipher} refused; use 17 or 3")
        return cls(parts.hostname, urllib.parse.unquote(parts.username), port, cipher)

    @property
    def name(self) -> str:
        """``host`` or ``host:port``, for messages."""
        return self.host if self.port == DEFAULT_PORT else f"{self.host}:{self.port}"


class _Session(pyghmi_session.Session):  # type: ignore[misc]
    """A pyghmi client session that never shares a socket or a login, and pins its suite."""

    def __new__(cls, *args: Any, **kwargs: Any) -> _Session:
        # pyghmi hands back an existing session for the same (bmc, user, password, kg): two
        # consoles would then share one login (and one SOL owner). Always make a fresh one on
        # a socket no other session uses, because replies are routed by (peer, local port).
        self: _Session = object.__new__(cls)
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
        if accepted != _SUITE_ALGOS[self.suite]:
            self.onlogon(
                {"error": f"{_REFUSED} {self.suite}: it answered with algorithms {accepted}"}
            )
            return -9
        self.negotiated_suite = self.suite
        return super()._got_rmcp_response(data)


_REFUSED = "BMC refused cipher suite"


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
def _login_error(target: IpmiTarget, error: str) -> ConnectError:
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


def _no_wake() -> None:
    """Default :attr:`SolConsole.on_pending`: nobody to wake (unit tests)."""


class SolConsole(pyghmi_console.Console):  # type: ignore[misc]
    """pyghmi's Console with a non-blocking, byte-exact SOL state machine.

    All methods except :meth:`send_data`/:meth:`send_break` run in the pump thread.
    ``on_data`` gets bytes; ``on_event`` gets ``("active"|"info"|"error", text)``.
    """

    def __init__(
        self,
        target: IpmiTarget,
        password: str,
        kg: str | None,
        force: bool,
        on_data: Callable[[bytes], None],
        on_event: Callable[[str, str], None],
    ) -> None:
        # Deliberately not Console.__init__: it builds a shared pyghmi Session and pumps.
        self._init_state(on_data, on_event)
        self.target = target
        self.force_session = force
        self.port = target.port
        self.ipmi_session = _Session(
            target.host, target.user, password, target.port, kg, self._got_session,
            pinned_suite(target),
        )  # fmt: skip

    def _init_state(
        self, on_data: Callable[[bytes], None], on_event: Callable[[str, str], None]
    ) -> None:
        """Fields shared with pyghmi's Console, plus ours; also used by unit tests."""
        self.outputlock = threading.RLock()
        self.keepaliveid = None
        self.connected = False
        self.broken = False
        self.activated = False
        self.on_data = on_data
        self.on_event = on_event
        self.out_handler = self._deliver
        self.remseq = 0
        self.prevremseq = 0
        self.lastsize = 0
        self.myseq = 0
        self.retriedpayload = 0
        self.pendingoutput: list[Any] = []
        self.awaitingack = False
        self.lastpayload = bytearray()
        self.lasttext = b""
        self.sent_at = 0.0
        self.retries = 0
        self.resume_at = 0.0
        self.maxoutcount = 1
        self.stole = False
        self.force_session = False
        self.liveness = Liveness()
        self.last_heard = time.monotonic()
        self.last_heard_wall = time.time()
        self.cause = ""
        #: Called (in the writing thread) after output was queued; the pump serves us then.
        self.on_pending: Callable[[], None] = _no_wake

    # ---- activation ------------------------------------------------------------------------
    def _got_session(self, response: dict[str, Any]) -> None:
        if "error" in response:
            self._print_error(response["error"])
            return
        if self.broken or self.ipmi_session is None:
            return
        try:
            self._activate()
        except pyghmi_exc.IpmiException as exc:
            self._print_error(str(exc) or "Session no longer connected")

    def _activate(self) -> None:
        sess = self.ipmi_session
        response = sess.raw_command(netfn=0x6, command=0x48, data=(1, 1, 0xC0, 0, 0, 0))
        code = response.get("code", 0) if isinstance(response, dict) else 0
        if code == 0x80 and not self.force_session and self._we_hold_payload():
            # Our own Activate went through and its reply was lost, or the request arrived
            # twice: many BMCs answer the repeat with "active in another session". Release
            # our instance and activate again to get the reply (payload sizes, port).
            sess.raw_command(netfn=0x6, command=0x49, data=(1, 1, 0, 0, 0, 0))
            response = sess.raw_command(netfn=0x6, command=0x48, data=(1, 1, 0xC0, 0, 0, 0))
            code = response.get("code", 0) if isinstance(response, dict) else 0
        if code == 0x80 and self.force_session and not self.retriedpayload:
            self.retriedpayload = 1
            sess.raw_command(netfn=0x6, command=0x49, data=(1, 1, 0, 0, 0, 0))
            self.stole = True
            self.on_event("info", "deactivated another client's SOL session (--steal)")
            response = sess.raw_command(netfn=0x6, command=0x48, data=(1, 1, 0xC0, 0, 0, 0))
            code = response.get("code", 0)
        codes = {
            0x80: "SOL Session active for another client",
            0x81: "SOL is disabled on the BMC",
            0x82: "maximum SOL session count reached",
            0x83: "BMC cannot activate SOL with encryption",
            0x84: "BMC cannot activate SOL without encryption",
        }
        if code:
            text = pyghmi_constants.ipmi_completion_codes.get(code) or codes.get(code)
            self._print_error(text or f"activate payload failed with code {code:#x}")
            return
        if "error" in response:
            self._print_error(response["error"])
            return
        data = response["data"]
        inbound = data[4] + (data[5] << 8)
        # The inbound size counts the 4-byte SOL header; one byte of count caps it at 255.
        self.maxoutcount = max(1, min(inbound - 4 if inbound > 4 else inbound, 255))
        self.activated = True
        sess.sol_handler = self._got_sol_payload
        self.keepaliveid = sess.register_keepalive(
            cmd={"netfn": 6, "command": 0x4B, "data": (1, 1)},
            callback=self._got_payload_instance_info,
        )
        self.connected = True
        suite = sess.negotiated_suite
        self.on_event("active", f"SOL active, cipher suite {suite}")

    def _print_error(self, error: Any, cause: str = "lost") -> None:
        """Break the console once; ``cause`` is "lost", "deactivated" or "error" (login)."""
        if self.broken:
            return
        self.broken = True
        self.cause = cause if self.activated or cause == "deactivated" else "error"
        sess = self.ipmi_session
        if sess is not None:
            sess.unregister_keepalive(self.keepaliveid)
            if getattr(sess, "sol_handler", None) == self._got_sol_payload:
                sess.sol_handler = None
        text = error.get("error", str(error)) if isinstance(error, dict) else str(error)
        self.on_event("error", text)

    def _deliver(self, data: Any) -> None:
        if isinstance(data, dict):
            if "error" in data:
                self._print_error(data["error"])
            elif "info" in data:
                self.on_event("info", str(data["info"]))
            return
        self.on_data(bytes(data))

    # ---- BMC -> us -------------------------------------------------------------------------
    def _send_sol(self, payload: bytes) -> None:
        sess = self.ipmi_session
        if sess is None or not sess.logged:
            raise pyghmi_exc.IpmiException("Session no longer connected")
        sess.send_payload(bytearray(payload), payload_type=1, retry=False)

    def _got_sol_payload(self, payload: Any) -> None:
        """One SOL packet from the BMC: deliver new bytes exactly once, handle its ACK."""
        if isinstance(payload, dict):
            self._print_error(payload)
            self.activated = False
            return
        if len(payload) < 4:
            return
        self.last_heard = time.monotonic()
        self.last_heard_wall = time.time()
        newseq = payload[0] & 0x0F
        ackseq = payload[1] & 0x0F
        accepted = payload[2]
        status = payload[3]
        if newseq:
            data = bytes(payload[4:])
            if newseq == self.remseq:
                # A retransmission: what we took is a prefix; anything after it is new.
                fresh = data[self.lastsize :] if len(data) > self.lastsize else b""
                self.lastsize = max(self.lastsize, len(data))
            elif newseq == self.prevremseq:
                fresh = b""  # a late duplicate of the packet before: stop-and-wait says stale
            else:
                self.prevremseq, self.remseq = self.remseq, newseq
                fresh = data
                self.lastsize = len(data)
            try:
                self._send_sol(bytes([0, newseq, len(data), 0]))
            except pyghmi_exc.IpmiException:
                self._print_error("Session no longer connected")
                return
            if fresh:
                self.on_data(fresh)
        if status & 0b0010_0000:
            self.on_event("info", "remote system is powered down")
        if ackseq and self.awaitingack and ackseq == self.myseq:
            self.awaitingack = False
            rest = self.lasttext[accepted:] if accepted < len(self.lasttext) else b""
            if rest:
                # Partial ACK (with or without NACK): resend what the BMC did not take.
                with self.outputlock:
                    if self.pendingoutput and isinstance(self.pendingoutput[0], bytes):
                        self.pendingoutput[0] = rest + self.pendingoutput[0]
                    else:
                        self.pendingoutput.insert(0, rest)
            if status & 0b0100_0000 and accepted == 0:
                self.resume_at = time.monotonic() + 0.1  # NACK: BMC busy, back off a little
        if status & 0b0001_0000:
            self._print_error("SOL deactivated by the BMC or another client", "deactivated")
            self.activated = False
            return
        self.service(time.monotonic())

    def _we_hold_payload(self) -> bool:
        """Whether the BMC says SOL instance 1 is held by this very session."""
        sess = self.ipmi_session
        info = sess.raw_command(netfn=0x6, command=0x4B, data=(1, 1))
        data = info.get("data") if isinstance(info, dict) and not info.get("code") else None
        if not data or len(data) < 4:
            return False
        return bool(struct.unpack("<I", bytes(data[:4]))[0] == sess.sessionid)

    def _got_payload_instance_info(self, response: Any) -> None:
        if not isinstance(response, dict) or self.broken:
            return
        if "error" in response:
            self._print_error(response["error"])
            return
        data = response.get("data") or b""
        if len(data) >= 4 and self.ipmi_session is not None:
            owner = struct.unpack("<I", bytes(data[:4]))[0]
            if owner not in (0, self.ipmi_session.sessionid):
                self._print_error("SOL deactivated: another client holds it now", "deactivated")
                self.activated = False

    # ---- us -> BMC -------------------------------------------------------------------------
    def send_data(self, data: bytes) -> None:
        """Queue bytes for the BMC (any thread); raises if the console is broken."""
        if self.broken:
            raise pyghmi_exc.IpmiException("console is broken")
        self._addpendingdata(bytes(data))

    def send_break(self) -> None:
        """Queue a serial BREAK (any thread)."""
        if self.broken:
            raise pyghmi_exc.IpmiException("console is broken")
        self._addpendingdata({"break": 1})

    def _addpendingdata(self, data: Any) -> None:
        with self.outputlock:
            tail = self.pendingoutput[-1] if self.pendingoutput else None
            if isinstance(data, dict) or not isinstance(tail, bytes):
                self.pendingoutput.append(data)
            else:
                self.pendingoutput[-1] = self.pendingoutput[-1] + data
        self.on_pending()

    def _sendpendingoutput(self, probe: bool = False) -> None:
        """Send the next chunk (or break) if nothing is awaiting an ACK; never blocks.

        With ``probe`` and nothing to send, send an empty packet with a fresh sequence number:
        the BMC must acknowledge it, so silence means the session is gone.
        """
        if self.awaitingack or not self.connected or self.broken:
            return
        with self.outputlock:
            if not self.pendingoutput:
                if probe:
                    self.pendingoutput.append(b"")
                else:
                    return
            head = self.pendingoutput[0]
            brk = isinstance(head, dict)
            if brk:
                text = b""
                del self.pendingoutput[0]
            else:
                text = head[: self.maxoutcount]
                if len(head) > self.maxoutcount:
                    self.pendingoutput[0] = head[self.maxoutcount :]
                else:
                    del self.pendingoutput[0]
        self.myseq = self.myseq % 15 + 1
        self.lasttext = text
        self.lastpayload = bytearray((self.myseq, 0, 0, 0b0001_0000 if brk else 0)) + text
        self.awaitingack = True
        self.retries = 0
        self._transmit()

    def _transmit(self) -> None:
        self.sent_at = time.monotonic()
        try:
            self._send_sol(bytes(self.lastpayload))
        except pyghmi_exc.IpmiException:
            self._print_error("Session no longer connected")

    def service(self, now: float) -> None:
        """Retransmit or send more; the pump thread calls this every few milliseconds."""
        if self.broken or not self.connected:
            return
        if self.awaitingack:
            if now - self.sent_at >= self.liveness.retry_interval:
                self.retries += 1
                if self.retries > self.liveness.retries:
                    quiet = now - self.last_heard
                    self._print_error(
                        "Connection lost: the BMC stopped acknowledging SOL data "
                        f"(nothing heard for {quiet:.1f} s)"
                    )
                    return
                self._transmit()
            return
        if now >= self.resume_at:
            idle = now - self.last_heard >= self.liveness.keepalive
            self._sendpendingoutput(probe=idle)

    def shutdown(self) -> None:
        """Deactivate the payload (if ours and reachable) and log out. Pump thread only."""
        sess = self.ipmi_session
        was_broken = self.broken
        self.broken = True
        self.connected = False
        if sess is None:
            return
        sess.unregister_keepalive(self.keepaliveid)
        sess.sol_handler = None
        try:
            if self.activated and not was_broken:
                sess.raw_command(netfn=6, command=0x49, data=(1, 1, 0, 0, 0, 0))
        except pyghmi_exc.IpmiException:
            pass
        self.activated = False
        try:
            if sess.logged:
                sess.logout(sessionok=not was_broken)
        except Exception:  # pyghmi's logout can trip over its own half-torn state
            log.debug("logout failed", exc_info=True)


#: How long a pyghmi call may wait for the pump before it starts (see _Pump.call).
QUEUE_TIMEOUT = 120.0
#: Seconds between two passes of the pump over every console's timers; the loop used to pass
#: over all of them every turn, which was at most 20 ms apart when idle (the same bound).
SERVICE_SWEEP = 0.02
#: How long the pump sleeps between pyghmi turns while it serves no console.
IDLE_PUMP = 1.0


def _bounded_io_wait(timeout: float, myaddr: Any = None, evq: Any = None) -> None:
    """pyghmi's ``_io_wait`` with a bound: its own waits forever for the I/O thread to set an
    event, and when that thread misses the deadline (seen under load with many sessions: the
    wake-up is only sent if the new deadline is earlier than the one it sleeps on) the one
    thread that pumps pyghmi hangs and every session in the process dies with it."""
    evt = threading.Event()
    if evq is not None:
        evq.append(evt)
    pump = _Pump._instance
    # The pump's idle wait (the _poller of its own wait_for_rsp call) also ends when a user
    # thread hands it work. Only that one wait: a wait nested in a callback (pyghmi's pause()
    # while a login finishes) cannot run the work and would spin until its own deadline.
    idle = (
        myaddr is None
        and evq is None
        and pump is not None
        and pump.top_wait
        and threading.get_ident() == pump.thread.ident
    )
    if pump is not None and idle:
        pump.top_wait = False
        pump.waiting = evt
        if pump.kicked or pump.jobs:
            evt.set()  # work arrived before ``waiting`` was visible to the kicking thread
    deadline = timeout + pyghmi_session._monotonic_time()
    pyghmi_session.ioqueue.append((deadline, evt, myaddr))
    if myaddr is not None and evq is None and _reply_queued(myaddr):
        # awaitresponse waits for the next packet from its BMC, but the reply may already
        # have been read (between its send and this wait): it then slept until its retry
        # deadline with the pump, and so every session, stalled (logins 3x slower once
        # the I/O thread got fast). The packet is queued; let the caller process it now.
        return
    if deadline < pyghmi_session.selectdeadline and pyghmi_session.iosockets:
        wake = pyghmi_session.iosockets[0]
        with contextlib.suppress(OSError):
            wake.sendto(b"\x01", (pyghmi_session.myself, wake.getsockname()[1]))
    evt.wait(max(timeout, 0.0) + 0.25)
    if pump is not None and idle:
        pump.waiting = None


def _reply_queued(sockaddr: Any) -> bool:
    """Whether a packet from ``sockaddr`` waits, unprocessed, in a session's queue.

    Checked after the waiter joined pyghmi's ``ioqueue``: a packet read before that is in a
    ``pktqueue`` by now (the I/O thread queues it before it looks at ``ioqueue``), and one
    read after it wakes the waiter through pyghmi's own routing. The same queued packet ends
    one wait only: another session to the same BMC address may own it, and its caller would
    otherwise spin until its deadline without ever processing it."""
    for sess in list(pyghmi_session.sessionqueue):
        queue = sess.pktqueue
        if queue and getattr(sess, "sockaddr", None) == sockaddr:
            head = queue[0]
            if head is _early_return.packet:
                continue
            _early_return.packet = head
            return True
    return False


class _EarlyReturn:
    """The queued packet that last ended a wait early (pump thread only)."""

    packet: Any = None


_early_return = _EarlyReturn()


class _PollSelect:
    """Stands in for the ``select`` module inside pyghmi's session code (its I/O thread's
    ``select.select(iosockets, ...)``), for two reasons:

    * ``select.select`` raises for descriptors >= 1024, and that kills the thread and with it
      every session in the process (seen at ~155 sessions in the benchmark);
    * pyghmi then reads every socket (see :func:`_ready_graball`) and rebuilding a poll set of
      all N sockets on every wake-up was O(N) work per received packet.

    So one epoll object (poll where there is none) persists across calls; it is re-synced only
    when the socket list changed (compared by identity, in C), and the sockets it reported
    ready are kept for :func:`_ready_graball`. Only pyghmi's one I/O thread calls this.
    """

    def __init__(self) -> None:
        self._epoll: Any = select.epoll() if hasattr(select, "epoll") else None
        self._poll: Any = None if self._epoll is not None else select.poll()
        self._watched: list[Any] = []
        self._by_fd: dict[int, Any] = {}
        self.ports: dict[int, int] = {}
        #: Sockets the last wait reported readable; None when no wait ran since the last read.
        self.ready: list[Any] | None = None

    def _register(self, fd: int) -> None:
        if self._epoll is not None:
            try:
                self._epoll.register(fd, select.EPOLLIN)
            except FileExistsError:
                self._epoll.modify(fd, select.EPOLLIN)
        else:
            self._poll.register(fd, select.POLLIN)

    def _unregister(self, fd: int) -> None:
        # A socket closed since it was registered has left epoll by itself (ENOENT/EBADF).
        with contextlib.suppress(OSError, KeyError, ValueError):
            (self._epoll if self._epoll is not None else self._poll).unregister(fd)

    def _resync(self, rlist: list[Any]) -> None:
        """Watch exactly the open sockets of ``rlist`` (an fd may have been closed and reused).

        ``rlist`` is pyghmi's live list, which the pump thread appends to during logins: work
        on one snapshot and remember that snapshot, so a socket appended meanwhile makes the
        next call differ (and get registered) instead of being remembered unwatched."""
        snapshot = list(rlist)
        wanted: dict[int, Any] = {}
        for sock in snapshot:
            try:
                fd = sock.fileno()
            except (OSError, ValueError):
                continue
            if fd >= 0:
                wanted[fd] = sock
        for fd, sock in list(self._by_fd.items()):
            if wanted.get(fd) is not sock:
                self._unregister(fd)
                del self._by_fd[fd]
                self.ports.pop(fd, None)
        for fd, sock in wanted.items():
            if fd in self._by_fd:
                continue
            try:
                # Reads are MSG_DONTWAIT anyway; a socket with a timeout would poll first.
                sock.setblocking(False)
                self._register(fd)
            except OSError:
                continue
            self._by_fd[fd] = sock
        self._watched = snapshot

    def select(
        self, rlist: list[Any], wlist: Any, xlist: Any, timeout: float | None = None
    ) -> tuple[list[Any], list[Any], list[Any]]:
        if rlist != self._watched:
            self._resync(rlist)
        by_fd = self._by_fd
        if self._epoll is not None:
            wait = -1.0 if timeout is None else max(0.0, timeout)
            events = self._epoll.poll(wait)
        else:
            events = self._poll.poll(None if timeout is None else max(0.0, timeout) * 1000)
        ready = [by_fd[fd] for fd, _ in events if fd in by_fd]
        self.ready = ready
        return ready, [], []

    def watches(self, sock: Any) -> bool:
        """Whether ``sock`` is one of the sockets being waited on."""
        try:
            return self._by_fd.get(sock.fileno()) is sock
        except (OSError, ValueError):
            return False

    def take_ready(self) -> list[Any] | None:
        """The sockets the last wait found readable, once (None if no wait ran since)."""
        ready, self.ready = self.ready, None
        return ready


_POLL_SELECT = _PollSelect()


def _ready_graball(
    mysockets: list[Any], iowaiters: dict[Any, list[Any]], poller: _PollSelect = _POLL_SELECT
) -> list[Any]:
    """pyghmi's ``_io_graball`` reading only the sockets the last wait found readable.

    pyghmi's reads every socket in the process after every wake-up (``setblocking(0)`` and a
    ``recvfrom`` that raises on an empty socket: O(N) syscalls and exceptions per packet). The
    routing below is pyghmi's, line for line: session data goes to the session registered for
    (peer address, local port), sessionless data to the server on that socket; the packet
    joins that session's ``pktqueue``, the session joins ``sessionqueue``, waiters directed at
    the peer are woken, and the peer addresses are returned. Each ready socket is still drained
    until it would block, and packets shorter than 4 bytes (the wake-up byte) are skipped.
    Without a preceding wait (never, in pyghmi's loop) every socket is read, as pyghmi did.
    """
    ready = poller.take_ready()
    if ready is None:
        ready = list(mysockets)
    sockaddrs: list[Any] = []
    for mysocket in ready:
        myport: int | None = None
        while True:
            try:
                rdata = mysocket.recvfrom(3000, _MSG_DONTWAIT)
            except OSError:  # empty (EAGAIN), or closed under us: pyghmi's "None"
                break
            if len(rdata[0]) < 4:
                continue
            if myport is None:
                myport = _local_port(mysocket, poller)
            data, peer = rdata
            handlers = pyghmi_session.Session.bmc_handlers
            relsession = None
            entry: tuple[Any, ...] = (data, peer, mysocket)
            if peer in handlers and myport in handlers[peer]:
                # session data
                entry = (data, peer, mysocket, True)
                relsession = handlers[peer][myport]
            elif mysocket in handlers:
                # pyghmi is the bmc, and we have sessionless data
                entry = (data, peer, mysocket, False)
                relsession = handlers[mysocket][0]
            if relsession is not None:
                relsession.pktqueue.append(entry)
                pyghmi_session.sessionqueue.append(relsession)
            if peer in iowaiters:
                for w in iowaiters[peer]:
                    w[1].set()
                del iowaiters[peer]
            sockaddrs.append(peer)
    return sockaddrs


_MSG_DONTWAIT = getattr(socket, "MSG_DONTWAIT", 0)


def _local_port(sock: Any, poller: _PollSelect) -> int:
    """The socket's local port (pyghmi asks the kernel per packet; it never changes once
    bound, so it is cached by descriptor for the sockets the poller watches)."""
    fd = sock.fileno()
    port = poller.ports.get(fd)
    if port is None:
        port = int(sock.getsockname()[1])
        if poller.watches(sock):
            poller.ports[fd] = port
    return port


def _nonblocking_sendto(mysocket: Any, packet: Any, sockaddr: Any) -> None:
    """pyghmi's ``_io_sendto`` without its ``setblocking(1)``: set from a sending thread, it can
    land between the I/O thread's ``setblocking(0)`` and ``recvfrom`` and block that thread on
    one socket, starving every session (found by the benchmark). A loopback or LAN UDP send
    that would block is dropped, as pyghmi already did on any send error; SOL retransmits."""
    sock = getattr(mysocket, "fd", mysocket)
    with contextlib.suppress(OSError):
        sock.sendto(packet, sockaddr)


pyghmi_session._io_wait = _bounded_io_wait
pyghmi_session._io_sendto = _nonblocking_sendto
#: pyghmi's own, for the equivalence test of :func:`_ready_graball`.
_pyghmi_io_graball = getattr(pyghmi_session, "_pyghmi_io_graball", pyghmi_session._io_graball)
pyghmi_session._pyghmi_io_graball = _pyghmi_io_graball
pyghmi_session.select = _POLL_SELECT
pyghmi_session._io_graball = _ready_graball


class _Pump:
    """The one thread per process that drives pyghmi (its state is process-global)."""

    _instance: _Pump | None = None
    _lock = threading.Lock()

    def __init__(self) -> None:
        self.consoles: set[SolConsole] = set()
        self.jobs: collections.deque[Callable[[], None]] = collections.deque()
        #: Consoles with new output to send (from :meth:`kick`), served on the next iteration.
        self.kicked: collections.deque[SolConsole] = collections.deque()
        #: The event the pump's idle wait sleeps on, while it sleeps (see _bounded_io_wait).
        self.waiting: threading.Event | None = None
        #: True from the pump's call of wait_for_rsp until that call's own idle wait begins.
        self.top_wait = False
        #: Set by :meth:`_wake`; what the pump sleeps on while it serves no console.
        self.nudge = threading.Event()
        self.thread = threading.Thread(target=self._run, name="solcap-ipmi-pump", daemon=True)
        self.thread.start()

    @classmethod
    def get(cls) -> _Pump:
        with cls._lock:
            if cls._instance is None:
                cls._instance = _Pump()
            return cls._instance

    def call(
        self, fn: Callable[[], Any], timeout: float, *, queue_timeout: float = QUEUE_TIMEOUT
    ) -> Any:
        """Run ``fn`` in the pump thread and return its result (or raise its exception).

        ``timeout`` bounds ``fn`` itself, from when the pump starts it; waiting in the queue
        behind other sessions' work (a wave of logouts from a fleet) is bounded separately by
        ``queue_timeout``, so a busy pump delays a login instead of failing it.
        """
        if threading.current_thread() is self.thread:
            return fn()
        started = threading.Event()
        done = threading.Event()
        abandoned = threading.Event()
        box: dict[str, Any] = {}

        def job() -> None:
            if abandoned.is_set():
                return  # the caller gave up; doing it now would act behind its back
            started.set()
            try:
                box["result"] = fn()
            except BaseException as exc:  # handed back to the caller below
                box["error"] = exc
            finally:
                done.set()

        self.jobs.append(job)
        self._wake()
        if not started.wait(queue_timeout):
            abandoned.set()
            if not started.is_set():
                raise TimeoutError(f"IPMI pump busy for {queue_timeout:g}s")
        if not done.wait(timeout):
            raise TimeoutError("IPMI pump did not answer")
        if "error" in box:
            raise box["error"]
        return box.get("result")

    def kick(self, console: SolConsole) -> None:
        """``console`` has output to send (any thread): serve it now, not at the next sweep."""
        self.kicked.append(console)
        self._wake()

    def _wake(self) -> None:
        self.nudge.set()
        evt = self.waiting
        if evt is not None:
            evt.set()

    def _run(self) -> None:
        next_sweep = 0.0
        while True:
            while self.jobs:
                self.jobs.popleft()()
            if self._idle():
                # Nothing to serve (no console, or all handed to the SOL engine; no login or
                # command waiting for a reply): wake for work, or once a second for pyghmi's
                # own keepalives, instead of every 20 ms.
                self.nudge.wait(IDLE_PUMP)
                self.nudge.clear()
                if not self._idle():
                    continue
            if not pyghmi_session.iosockets:
                # Before the first session exists pyghmi has no I/O thread, and its wait
                # would block forever on an event nobody sets.
                time.sleep(0.02)
                continue
            try:
                self.top_wait = True
                pyghmi_session.Session.wait_for_rsp(0.02)
            except Exception:
                log.exception("pyghmi event loop raised; continuing")
            finally:
                self.top_wait = False
            now = time.monotonic()
            if now >= next_sweep:
                # Timers (retransmit, keepalive probe, NACK back-off) of every console, as
                # often as the loop used to serve them all; in between only the consoles
                # that were handed output. Received packets serve their console themselves
                # (SolConsole._got_sol_payload), so a busy loop no longer costs O(N) each turn.
                next_sweep = now + SERVICE_SWEEP
                self.kicked.clear()
                targets: Collection[SolConsole] = list(self.consoles)
            else:
                targets = self._take_kicked()
            for console in targets:
                try:
                    console.service(now)
                except Exception as exc:
                    log.exception("SOL service failed")
                    console._print_error(f"internal error: {exc}")

    def _idle(self) -> bool:
        return not (
            self.consoles
            or self.jobs
            or pyghmi_session.Session.waiting_sessions
            or pyghmi_session.sessionqueue
        )

    def _take_kicked(self) -> Collection[SolConsole]:
        """Distinct kicked consoles still served by this pump (in kick order)."""
        kicked: dict[SolConsole, None] = {}
        while self.kicked:
            console = self.kicked.popleft()
            if console in self.consoles:
                kicked[console] = None
        return kicked.keys()


class IpmiSolTransport(Transport):
    """A :class:`Transport` over an IPMI SOL payload (see the module docstring)."""

    def __init__(
        self,
        target: IpmiTarget,
        password: str,
        *,
        kg: str | None = None,
        steal: bool = False,
        connect_timeout: float = CONNECT_TIMEOUT,
        liveness: Liveness | None = None,
    ) -> None:
        self.target = target
        self.name = f"ipmi://{target.user}@{target.name}"
        self._cond = threading.Condition()
        self._buf = bytearray()
        self._error: Exception | None = None
        self._active = False
        self._closed = False
        self._interrupted = False
        self.events: list[tuple[str, str]] = []
        self._pump = _Pump.get()
        self._steal = steal
        self._password = password
        self._kg = kg
        self._liveness = liveness
        # One bound for the whole negotiation (query and every suite tried), not per login.
        self._deadline = time.monotonic() + connect_timeout
        self._asked = target  # cipher None when negotiating: errors then carry no "pin" fix
        self._attempt = 0
        try:
            self._console, self.cipher_choice = negotiate(target, self._connect)
        finally:
            del self._password, self._kg  # only the pyghmi session keeps them
        self.target = dataclasses.replace(target, cipher=self.cipher_choice.suite)

    def _connect(self, target: IpmiTarget) -> SolConsole:
        """Log in with ``target.cipher`` and activate SOL; raise what went wrong."""
        with self._cond:
            self._error = None
            self._active = False
            self._attempt += 1
            attempt = self._attempt
        self.target = target

        def on_event(kind: str, text: str) -> None:
            if attempt == self._attempt:  # not a late word from an abandoned attempt
                self._on_event(kind, text)

        def make() -> SolConsole:
            console = SolConsole(
                target, self._password, self._kg, self._steal, self._on_data, on_event
            )
            if self._liveness is not None:
                console.liveness = self._liveness
            pump = self._pump
            console.on_pending = lambda: pump.kick(console)
            pump.consoles.add(console)
            return console

        connect_timeout = max(0.5, self._deadline - time.monotonic())
        self._console = self._pump.call(make, connect_timeout)
        deadline = time.monotonic() + connect_timeout
        with self._cond:
            while not self._active and self._error is None:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            error = self._error
            active = self._active
        if not active:
            self._teardown()
            if error is None:
                error = ConnectError(
                    target.name, f"no answer from the BMC on UDP port {target.port}"
                )
            raise error
        return self._console

    # ---- callbacks from the pump thread (must never raise) --------------------------------
    def _on_data(self, data: bytes) -> None:
        with self._cond:
            self._buf += data
            self._cond.notify_all()

    def _on_event(self, kind: str, text: str) -> None:
        try:
            with self._cond:
                self.events.append((kind, text))
                if kind == "active":
                    self._active = True
                    log.info("%s: %s", self.target.name, text)
                elif kind == "info":
                    log.warning("%s: %s", self.target.name, text)
                elif kind == "error" and self._error is None:
                    if self._active:
                        console = getattr(self, "_console", None)
                        cause = console.cause if console is not None else "lost"
                        closed = SolDeactivated if cause == "deactivated" else SolSessionLost
                        self._error = closed(self.target.name, text)
                    else:
                        self._error = _login_error(self._asked, text)
                self._cond.notify_all()
        except Exception:  # never into pyghmi's loop
            log.exception("SOL event handler failed")

    # ---- Transport -------------------------------------------------------------------------
    @property
    def negotiated_suite(self) -> int | None:
        """The cipher suite the BMC accepted (17 or 3)."""
        sess = self._console.ipmi_session
        return None if sess is None else sess.negotiated_suite

    @property
    def liveness(self) -> Liveness:
        """Keepalive and retry timing in force (see :class:`Liveness`)."""
        return self._console.liveness

    @property
    def last_heard(self) -> float:
        """Wall-clock time (``time.time()``) of the last SOL packet from the BMC."""
        return float(self._console.last_heard_wall)

    @property
    def stole(self) -> bool:
        """Whether activation deactivated another client's SOL session first."""
        return bool(self._console.stole)

    interruptible = True

    def interrupt(self) -> None:
        with self._cond:
            self._interrupted = True
            self._cond.notify_all()

    def read(self, max_bytes: int, timeout: float) -> bytes:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not self._buf:
                if self._error is not None or self._closed:
                    raise self._eof()
                if self._interrupted:
                    self._interrupted = False
                    return b""
                left = deadline - time.monotonic()
                if left <= 0:
                    return b""
                self._cond.wait(left)
            out = bytes(self._buf[:max_bytes])
            del self._buf[:max_bytes]
            return out

    def _eof(self) -> ConsoleClosed:
        if isinstance(self._error, ConsoleClosed):
            return self._error
        if self._error is not None:
            return ConsoleClosed(self.target.name, str(self._error))
        return ConsoleClosed(self.target.name, "console closed")

    def write(self, data: bytes) -> None:
        with self._cond:
            if self._error is not None or self._closed:
                raise self._eof()
        try:
            self._console.send_data(data)
        except pyghmi_exc.IpmiException as exc:
            raise self._eof() from exc

    def send_break(self) -> None:
        with self._cond:
            if self._error is not None or self._closed:
                raise self._eof()
        try:
            self._console.send_break()
        except pyghmi_exc.IpmiException as exc:
            raise self._eof() from exc

    def pending_output(self) -> int:
        """Bytes queued for the BMC and not yet acknowledged."""
        with self._console.outputlock:
            queued = sum(len(x) for x in self._console.pendingoutput if isinstance(x, bytes))
        return queued + (len(self._console.lasttext) if self._console.awaitingack else 0)

    def drain(self, timeout: float) -> bool:
        """Wait until everything written was acknowledged by the BMC; False on timeout."""
        deadline = time.monotonic() + timeout
        while self.pending_output():
            if self._error is not None or time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True

    def close(self) -> None:
        with self._cond:
            if self._closed:
                return
            self._closed = True
            self._cond.notify_all()
        self._teardown()

    def _teardown(self) -> None:
        console = getattr(self, "_console", None)
        if console is None:
            return
        self._pump.consoles.discard(console)
        try:
            self._pump.call(console.shutdown, 15)
        except TimeoutError:
            log.warning("%s: logout did not finish", self.target.name)


def open_ipmi(
    url: str,
    *,
    password_source: PasswordSource,
    kg_file: str | None = None,
    kg: PasswordSource | None = None,
    steal: bool = False,
    connect_timeout: float = CONNECT_TIMEOUT,
    liveness: Liveness | None = None,
) -> IpmiSolTransport:
    """Open SOL at ``ipmi://user@host[:port][?cipher=17|3]``; the password never comes from argv.

    The Kg key comes from ``kg`` if given, else from ``kg_file`` / ``$IPMI_KGKEY``.
    """
    target = IpmiTarget.parse(url)
    password = password_source.get(f"IPMI password for {target.user}@{target.name}")
    key = (kg if kg is not None else kg_source(kg_file)).get_optional()
    return IpmiSolTransport(
        target,
        password,
        kg=key,
        steal=steal,
        connect_timeout=connect_timeout,
        liveness=liveness,
    )


def open_sol(
    url: str, *, password_source: PasswordSource, kg: PasswordSource | None = None
) -> Transport:
    """A console over SOL as the CLI opens it: reconnecting unless the URL says ``reconnect=0``.

    Returns a :class:`solcap.sol.ReconnectingTransport` (re-login and re-activation after a
    lost or deactivated session, with gap events). The secrets are read once, before the first
    login; reconnections reuse them (they stay in this process only).
    """
    url, reconnect = split_reconnect_option(url)
    if not reconnect:
        return open_ipmi(url, password_source=password_source, kg=kg)
    from solcap.sol import ReconnectingTransport

    parsed = IpmiTarget.parse(url)
    password = password_source.get(f"IPMI password for {parsed.user}@{parsed.name}")
    key = (kg if kg is not None else kg_source()).get_optional()
    given = PasswordSource(env={}, isatty=lambda: True, getpass_fn=lambda _prompt: password)
    given_kg = PasswordSource(env={"k": key} if key else {}, prompt=False, env_name="k")

    def connect() -> Transport:
        return open_ipmi(url, password_source=given, kg=given_kg)

    return ReconnectingTransport(connect, name=f"ipmi://{parsed.user}@{parsed.name}")


def transport_factory(target: str, line: object = None) -> Transport:
    """The ``ipmi://`` factory for :mod:`solcap.transports.registry` (``$IPMI_PASSWORD`` or a
    prompt; ``$IPMI_KGKEY``). ``line`` (serial line settings) does not apply to SOL: the BMC
    owns the bit rate. See :func:`open_sol`.
    """
    from solcap.credentials import password_source

    return open_sol(target, password_source=password_source())


def split_reconnect_option(url: str) -> tuple[str, bool]:
    """Remove ``reconnect=0|1|no|yes`` from an ``ipmi://`` address; return (url, reconnect)."""
    parts, _port = split_url(url, default_port=DEFAULT_PORT)
    query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    reconnect = True
    rest = []
    for key, value in query:
        if key == "reconnect":
            if value.lower() not in ("0", "1", "no", "yes", "false", "true"):
                raise UsageError(f"{url}: reconnect must be 0 or 1")
            reconnect = value.lower() in ("1", "yes", "true")
        else:
            rest.append((key, value))
    return parts._replace(query=urllib.parse.urlencode(rest)).geturl(), reconnect
