"""A virtual IPMI v2.0 (lanplus) BMC whose Serial-over-LAN is bridged to a pseudo-terminal.

Built on pyghmi's server side (:class:`pyghmi.ipmi.bmc.Bmc`,
:class:`pyghmi.ipmi.console.ServerConsole`, :class:`ServerSession`), which as shipped cannot serve
real clients. The subclasses here fix, in order of appearance:

* cipher suites: pyghmi answers every Open Session request with suite 3 and hashes RAKP with
  SHA-1, while its own client (and ipmitool 1.8.19) propose suite 17 (SHA-256). We accept 17 and
  3, refuse anything else (suite 0 above all) with RMCP+ status 0x11, and list both suites in
  Get Channel Cipher Suites;
* RAKP: an unknown user or a bad RAKP3 got no answer at all (the client waited for a timeout);
  now they get RAKP2/RAKP4 status codes; a duplicated RAKP1 or RAKP3 (UDP may deliver one
  twice) got a fresh random number or reset a live session, and now gets the same answer again;
* Activate Payload advertised 1-byte payloads and a byte-swapped port; now 255/255 and the port
  in little-endian order as ipmitool expects;
* SOL: pyghmi's server console sends by re-entering the event loop from whichever thread has
  data, cannot take partial ACKs, and ``close()`` never tells the client. Here one pump thread
  does all pyghmi work, SOL is stop-and-wait with retransmission, and a deactivation (stop,
  steal, logout) is announced with the "SOL deactivated" status bit;
* Get Payload Instance Info (pyghmi's client keepalive), Get Payload Activation Status,
  Get Channel Payload Support (FreeIPMI's ipmiconsole asks before activating) and Get SOL
  Configuration Parameters are answered so real clients connect and stay connected.

This module imports only the standard library and pyghmi (and ``solcap.sim``), so a test that
drives solcap against it is not testing solcap against itself.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import hashlib
import hmac
import os
import select
import signal
import struct
import sys
import termios
import threading
import time
import tty
from collections.abc import Callable
from typing import Any, Protocol

import pyghmi.ipmi.bmc as pyghmi_bmc
import pyghmi.ipmi.console as pyghmi_console
import pyghmi.ipmi.private.serversession as serversession
import pyghmi.ipmi.private.session as ipmisession

from solcap.util.sigwake import SignalWake

#: RMCP+ algorithm numbers (IPMI v2.0 tables 13-17..13-19) for the suites we serve.
#: suite -> (authentication, integrity, confidentiality, hash, integrity code length)
_SUITES: dict[int, tuple[int, int, int, Any, int]] = {
    17: (3, 4, 1, hashlib.sha256, 16),  # RAKP-HMAC-SHA256, HMAC-SHA256-128, AES-CBC-128
    3: (1, 1, 1, hashlib.sha1, 12),  # RAKP-HMAC-SHA1, HMAC-SHA1-96, AES-CBC-128
}

#: Characters per SOL packet in either direction; the accepted-count field is one byte.
SOL_CHUNK = 255
#: Seconds before an unacknowledged SOL packet is sent again, and how often before giving up.
SOL_RETRY_INTERVAL = 0.5
SOL_RETRIES = 20
#: A session that sends nothing for this long is dropped (and its SOL deactivated).
SESSION_IDLE_TIMEOUT = 60.0
#: SOL status bits sent by the BMC (IPMI v2.0 table 15-2).
_ST_NACK = 0b0100_0000
_ST_UNAVAILABLE = 0b0010_0000
_ST_DEACTIVATED = 0b0001_0000
#: Operation bits sent by the console.
_OP_BREAK = 0b0001_0000


class SolQuirks:
    """Ways a real BMC's SOL differs from the tidy default, switched on one by one for tests.

    ``retransmit_extra``: each chunk goes out first as its front half; the client's ACK of that
    half is taken as lost and the chunk is sent again, whole, under the same sequence number
    (a retransmission that carries more than the first copy). ``accept_at_most``: take at
    most this many characters of each client packet, acknowledged as a partial ACK without
    the NACK bit (the client must send the rest). ``nack_every_other``: every other new client
    packet is refused with NACK and an accepted count of 0 (the client backs off, sends again).
    ``activate_busy_once``: a session's first Activate Payload activates SOL but is answered
    0x80, as a BMC answers a retransmitted Activate whose first reply was lost.
    ``late_ack``: OpenIPMI's ipmi_sim when the client's ACK comes after its 1 s retransmit:
    each chunk goes out as its front half; when the ACK of that half arrives, the whole chunk
    is sent again under the same sequence number (the retransmission that crossed the ACK),
    and then the ACK, which counts the half only, is applied to the whole chunk: a partial
    ACK, so the back half goes out once more under the next sequence number. A client that
    took the back half from the retransmission gets it twice.
    ``early_once``: the first SOL packet of an activation goes out before the Activate reply
    and is never retransmitted (a BMC streaming the moment it activates, whose retries of
    that packet all fall before the client listens): a client that reads it and drops it
    unACKed, waiting for a retransmission, never gets it and the stream stalls.
    """

    def __init__(
        self,
        *,
        retransmit_extra: bool = False,
        accept_at_most: int | None = None,
        nack_every_other: bool = False,
        activate_busy_once: bool = False,
        late_ack: bool = False,
        early_once: bool = False,
    ) -> None:
        self.early_once = early_once
        self.retransmit_extra = retransmit_extra
        self.late_ack = late_ack
        self.accept_at_most = accept_at_most
        self.nack_every_other = nack_every_other
        self.activate_busy_once = activate_busy_once


_wake_lock = threading.Lock()


def _ensure_wake_socket() -> None:
    """Make pyghmi's first I/O socket a permanent one on 127.0.0.1 that is never closed.

    pyghmi's I/O thread selects on a snapshot of its socket list and is woken by a byte sent to
    ``iosockets[0]`` at address ``myself``. If that socket were a BMC's (closed by ``stop()``)
    or not yet in the snapshot, waiters would hang until a 300 s select timeout; and an IPv4
    socket cannot send to the IPv6 ``myself`` pyghmi picks. So we own index 0 for good.
    """
    with _wake_lock:
        if ipmisession.iosockets:
            return
        addrinfo = ipmisession.socket.getaddrinfo(
            "127.0.0.1", 0, ipmisession.socket.AF_INET, ipmisession.socket.SOCK_DGRAM
        )[0]
        ipmisession.Session._assignsocket(server=addrinfo)
        ipmisession.myself = "127.0.0.1"


def _wake_io_thread() -> None:
    """Make pyghmi's I/O thread return from select() and rebuild its socket list."""
    wake = ipmisession.iosockets[0]
    with contextlib.suppress(OSError):
        wake.sendto(b"\x01", (ipmisession.myself, wake.getsockname()[1]))


class PowerControl(Protocol):
    """What the BMC drives when a client sends chassis control (the virtual host fits)."""

    @property
    def power_state(self) -> bool: ...

    def power_on(self) -> None: ...

    def power_off(self) -> None: ...

    def power_cycle(self) -> None: ...

    def reset(self) -> None: ...


class _Session(serversession.ServerSession):  # type: ignore[misc]
    """A server session that negotiates suite 17 or 3 and hashes RAKP accordingly."""

    suite = 0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # pyghmi reads these before anything sets them on a server session.
        self.sol_handler: Callable[[Any], None] | None = None
        self.last_payload_type = None
        self.lastpayload = None
        self.last_seen = time.monotonic()
        self.logged_in = False
        self.username = b""
        #: (request, reply) of the RAKP1/RAKP3 answered, to answer duplicates identically.
        self._rakp2: tuple[bytes, bytearray] | None = None
        self._rakp4: tuple[bytes, bytearray] | None = None
        self._opened: tuple[bytes, bytearray] | None = None
        super().__init__(*args, **kwargs)

    def create_open_session_response(self, request: bytearray) -> bytearray:
        reply = self._open_session_reply(request)
        self._opened = (bytes(request), reply)
        return reply

    def _open_session_reply(self, request: bytearray) -> bytearray:
        clienttag = request[0]
        self.clientsessionid = request[4:8]
        self.managedsessionid = os.urandom(4)
        self.privlevel = 4
        wanted = (request[12], request[20], request[28]) if len(request) >= 32 else None
        for number, (auth, integ, conf, hashlib_, hashlen) in _SUITES.items():
            if wanted == (auth, integ, conf):
                self.suite = number
                self.currhashlib = hashlib_
                self.currhashlen = hashlen
                return bytearray([clienttag, 0, self.privlevel, 0]) + (
                    self.clientsessionid
                    + self.managedsessionid
                    + bytearray([0, 0, 0, 8, auth, 0, 0, 0])
                    + bytearray([1, 0, 0, 8, integ, 0, 0, 0])
                    + bytearray([2, 0, 0, 8, conf, 0, 0, 0])
                )
        # 0x11: no cipher suite matches the proposed algorithms (suite 0 ends here too).
        return bytearray([clienttag, 0x11, 0, 0]) + self.clientsessionid

    def _got_rmcp_openrequest(self, data: Any) -> None:
        """An Open Session request from a client address that already has a session.

        pyghmi routes by client address, so this is either a copy of the request that made
        this session (UDP duplicates, clients retransmit) or the client starting over. A copy
        gets the same answer: a new managed session ID would make the client's RAKP1, which
        names the first one, fail as a wrong password.
        """
        self.last_seen = time.monotonic()
        request = bytes(data)
        if self._opened is not None and request == self._opened[0]:
            reply = self._opened[1]
        else:
            # The client starts over (pyghmi relogs from the same socket): a new login.
            reply = self.create_open_session_response(bytearray(request))
            self._rakp2 = self._rakp4 = None
            self.logged_in = False
            with contextlib.suppress(AttributeError):
                del self.Rc
        self.send_payload(
            reply, ipmisession.constants.payload_types["rmcpplusopenresponse"], retry=False
        )

    def _for_this_session(self, data: bytearray) -> bool:
        """Whether a RAKP message names our managed session ID (not an abandoned one)."""
        return bytes(data[4:8]) == bytes(self.managedsessionid)

    def _got_rakp1(self, data: bytearray) -> None:
        self.last_seen = time.monotonic()
        clienttag = data[0]
        if not self.suite or self.logged_in or not self._for_this_session(data):
            return
        if self._rakp2 is not None and bytes(data) == self._rakp2[0]:
            # A duplicated or retransmitted RAKP1: answer it again with the same RAKP2. A
            # fresh random number here would invalidate the RAKP3 the client computes from
            # whichever answer reached it first.
            self.send_payload(
                self._rakp2[1], ipmisession.constants.payload_types["rakp2"], retry=False
            )
            return
        self.Rm = bytes(data[8:24])
        self.rolem = data[24]
        self.maxpriv = self.rolem & 0b111
        namelen = data[27]
        self.username = bytes(data[28 : 28 + namelen])
        password = self.authdata.get(self.username.decode("utf-8", "replace"))
        if not namelen or password is None:
            # 0x0d: unauthorized name, so the client fails at once instead of timing out.
            reply = bytearray([clienttag, 0x0D, 0, 0]) + self.clientsessionid
            self.send_payload(reply, ipmisession.constants.payload_types["rakp2"], retry=False)
            return
        self.uuiddata = self.uuid.bytes
        self.Rc = os.urandom(16)
        hmacdata = (
            bytes(self.clientsessionid)
            + bytes(self.managedsessionid)
            + self.Rm
            + self.Rc
            + self.uuiddata
            + bytes([self.rolem, len(self.username)])
            + self.username
        )
        self.kuid = password.encode("utf-8")
        self.kg = self.bmc.kg if self.bmc.kg is not None else self.kuid
        authcode = hmac.new(self.kuid, hmacdata, self.currhashlib).digest()
        reply = (
            bytearray([clienttag, 0, 0, 0])
            + self.clientsessionid
            + self.Rc
            + self.uuiddata
            + authcode
        )
        self._rakp2 = (bytes(data), reply)
        self.send_payload(reply, ipmisession.constants.payload_types["rakp2"], retry=False)

    def _got_rakp3(self, data: bytearray) -> None:
        self.last_seen = time.monotonic()
        clienttag = data[0]
        if not self.suite or not hasattr(self, "Rc") or not self._for_this_session(data):
            return
        if self._rakp4 is not None:
            # Logged in already: a duplicate RAKP3 gets the same RAKP4 again, and must not
            # reset the session (its sequence numbers are in use).
            if bytes(data) == self._rakp4[0]:
                self.send_payload(
                    self._rakp4[1], ipmisession.constants.payload_types["rakp4"], retry=False
                )
            return
        if data[1] != 0:
            return  # the client rejected our RAKP2 (it thinks the password is wrong)
        role = struct.pack("2B", self.rolem, len(self.username))
        sik = hmac.new(self.kg, self.Rm + self.Rc + role + self.username, self.currhashlib)
        self.sik = sik.digest()
        self.k1 = hmac.new(self.sik, b"\x01" * 20, self.currhashlib).digest()
        self.k2 = hmac.new(self.sik, b"\x02" * 20, self.currhashlib).digest()
        self.aeskey = self.k2[0:16]
        expected = hmac.new(
            self.kuid,
            self.Rc + bytes(self.clientsessionid) + role + self.username,
            self.currhashlib,
        ).digest()
        if not hmac.compare_digest(expected, bytes(data[8:])):
            self._send_rakp4(clienttag, 0x0F)  # invalid integrity check value
            return
        self.localsid = struct.unpack("<I", self.managedsessionid)[0]
        self.ipmicallback = self.handle_client_request
        self._rakp4 = (bytes(data), self._send_rakp4(clienttag, 0))

    def _send_rakp4(self, tagvalue: int, statuscode: int) -> bytearray:
        """Send RAKP4 and return it (a successful one is kept for duplicate RAKP3s)."""
        payload = bytearray([tagvalue, statuscode, 0, 0]) + self.clientsessionid
        if statuscode:
            self.send_payload(payload, ipmisession.constants.payload_types["rakp4"], retry=False)
            return payload
        hmacdata = self.Rm + bytes(self.managedsessionid) + self.uuiddata
        payload += hmac.new(self.sik, hmacdata, self.currhashlib).digest()[: self.currhashlen]
        self.send_payload(payload, ipmisession.constants.payload_types["rakp4"], retry=False)
        self.confalgo = "aes"
        self.integrityalgo = "hmac"
        self.sequencenumber = 1
        self.sessionid = struct.unpack("<I", bytes(self.clientsessionid))[0]
        self.logged_in = True
        return payload

    def _handle_ipmi2_packet(self, data: bytearray) -> Any:
        self.last_seen = time.monotonic()
        return super()._handle_ipmi2_packet(data)

    def sessionless_data(self, data: Any, sockaddr: Any) -> None:
        """A packet queued for this session after it logged out goes to the BMC.

        pyghmi calls this on the session (which has no such method) when the client address
        stopped being routed here while packets were still queued, e.g. a new login's Open
        Session request right behind the old session's Close Session.
        """
        self.bmc.sessionless_data(data, sockaddr)

    def close_server_session(self) -> None:
        """Logout: release the SOL payload if this session holds it, and forget the session."""
        self.bmc.session_gone(self)


class _SolConsole(pyghmi_console.ServerConsole):  # type: ignore[misc]
    """The BMC end of one SOL payload: stop-and-wait both ways, driven by the BMC's pump.

    pyghmi's ``ServerConsole.__init__`` re-enters the event loop and its send path blocks the
    calling thread in a retry loop, so neither is used; everything runs in the pump thread.
    """

    def __init__(self, bmc: VirtualBmc, sess: _Session) -> None:
        # Deliberately not calling ServerConsole.__init__ (see the class docstring).
        self.bmc = bmc
        self.ipmi_session = sess
        sess.sol_handler = self._got_sol_payload
        self.activated = True
        self.myseq = 0
        self.remseq = 0
        self.lastsize = 0
        self.inflight = b""
        self.inflight_status = 0
        self.awaitingack = False
        self.sent_at = 0.0
        self.retries = 0
        self.resume_at = 0.0
        self.whole = b""  # retransmit_extra: the full chunk to send once the half is ACKed
        self.nacked_last = False  # nack_every_other: whether the last new packet was refused
        self.no_retransmit = False  # early_once: the packet in flight is never sent again

    @property
    def owner_id(self) -> bytes:
        """The session ID the client knows this session by (Get Payload Instance Info)."""
        return bytes(self.ipmi_session.managedsessionid)

    def _send(self, payload: bytes) -> None:
        self.ipmi_session.send_payload(bytearray(payload), payload_type=1, retry=False)

    def _status(self) -> int:
        return 0 if self.bmc.host_powered() else _ST_UNAVAILABLE

    def service(self, now: float) -> None:
        """Send the next chunk from the pty, or retransmit; called by the pump thread."""
        if not self.activated:
            return
        if self.awaitingack:
            if now - self.sent_at < SOL_RETRY_INTERVAL or self.no_retransmit:
                return
            self.retries += 1
            if self.retries > SOL_RETRIES:
                self.bmc.deactivate("client stopped acknowledging", notify=False)
                return
            self._transmit(now)
            return
        if now < self.resume_at:
            return
        chunk = self.bmc.take_output(SOL_CHUNK)
        if not chunk:
            return
        self.myseq = self.myseq % 15 + 1
        quirks = self.bmc.quirks
        if (quirks.retransmit_extra or quirks.late_ack) and len(chunk) >= 2:
            self.whole, chunk = chunk, chunk[: len(chunk) // 2]
        self.inflight = chunk
        self.inflight_status = self._status()
        self.retries = 0
        self.awaitingack = True
        self._transmit(now)

    def _transmit(self, now: float) -> None:
        self.sent_at = now
        self._send(bytes([self.myseq, 0, 0, self.inflight_status]) + self.inflight)

    def _got_sol_payload(self, payload: Any) -> None:
        if isinstance(payload, dict) or len(payload) < 4:
            return
        newseq = payload[0] & 0x0F
        ackseq = payload[1] & 0x0F
        accepted = payload[2]
        op = payload[3]
        quirks = self.bmc.quirks
        if newseq:
            data = bytes(payload[4:])
            if newseq != self.remseq and quirks.nack_every_other:
                self.nacked_last = not self.nacked_last
                if self.nacked_last:
                    self._send(bytes([0, newseq, 0, self._status() | _ST_NACK]))
                    newseq = 0  # refused: neither taken nor remembered
            if newseq:
                cap = quirks.accept_at_most or len(data)
                taken = min(len(data), cap)
                if newseq == self.remseq:
                    # A retransmission: nothing is taken from it and it is ACKed with the
                    # count of the first copy, as ipmi_sim does (lanserv/sol.c: a repeated
                    # sequence number is ACKed with last_acked_packet_len), so both ACKs of one
                    # packet say the same even if the client put more into the resend.
                    fresh = b""
                    taken = min(taken, self.lastsize)
                else:
                    fresh = data[:taken]
                    self.remseq = newseq
                    self.lastsize = taken
                self._send(bytes([0, newseq, taken, self._status()]))
                if op & _OP_BREAK:
                    self.bmc.got_break()
                if fresh:
                    self.bmc.give_input(fresh)
        if ackseq and self.awaitingack and ackseq == self.myseq and self.whole:
            # retransmit_extra: treat this ACK of the front half as lost; send it all again.
            # late_ack: the same resend, but this ACK then counts against the whole chunk.
            self.inflight, self.whole = self.whole, b""
            self._transmit(time.monotonic())
            if not quirks.late_ack:
                return
        if ackseq and self.awaitingack and ackseq == self.myseq:
            self.awaitingack = False
            self.no_retransmit = False
            rest = self.inflight[accepted:] if accepted < len(self.inflight) else b""
            self.inflight = b""
            if rest:
                self.bmc.unget_output(rest)
            if op & _ST_NACK and accepted == 0:
                self.resume_at = time.monotonic() + 0.1
            self.service(time.monotonic())

    def close(self) -> None:
        """Tell the client SOL is gone: a packet with the "deactivated" status bit."""
        if not self.activated:
            return
        self.activated = False
        status = _ST_NACK | _ST_DEACTIVATED
        # The client may already be gone; then there is nobody to tell.
        with contextlib.suppress(Exception):
            self._send(bytes([0, self.remseq, 0, status]))
        if self.ipmi_session.sol_handler == self._got_sol_payload:
            self.ipmi_session.sol_handler = None
        if self.inflight:
            self.bmc.unget_output(self.whole or self.inflight)
            self.inflight = self.whole = b""


#: Bytes of host output kept while no SOL session is active (older ones are discarded).
IDLE_BUFFER = 16 * 1024


class VirtualBmc(pyghmi_bmc.Bmc):  # type: ignore[misc]
    """A lanplus BMC on ``address:port`` whose SOL is the pty at ``pty_path``.

    ``power`` receives chassis control; without one, the BMC keeps a power flag of its own.
    ``start()`` binds (``port=0`` picks a free port, read it back from ``.port``) and runs the
    pump thread; ``stop()`` deactivates SOL (telling the client) and releases the socket.
    """

    def __init__(
        self,
        pty_path: str,
        power: PowerControl | None = None,
        *,
        address: str = "127.0.0.1",
        port: int = 0,
        user: str = "admin",
        password: str,
        kg: bytes | None = None,
        bit_rate: int = 115200,
    ) -> None:
        self.pty_path = pty_path
        self.power = power
        self._own_power = True
        self.address = address
        self._want_port = port
        self.discarded = 0  # host output dropped while no client held SOL (see IDLE_BUFFER)
        self.users = {user: password}
        self._kg = kg
        self.bit_rate = bit_rate
        self.sol: _SolConsole | None = None
        self.activated = False
        self.iohandler = self.give_input
        self._out = bytearray()
        self._out_lock = threading.Lock()
        self._pty_fd: int | None = None
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._started = False
        self.breaks = 0
        #: Called (in the pump thread) after each BREAK is counted: a test in another process
        #: cannot read :attr:`breaks`, so ``--break-log`` writes a line per BREAK instead.
        self.on_break: Callable[[], None] | None = None
        self.received = bytearray()  # every byte a client typed, for tests
        #: Answer every Activate Payload with this completion code (0x81 SOL disabled, 0x82
        #: session limit, 0x83/0x84 encryption required/unsupported), as a real BMC may.
        self.refuse_activation: int | None = None
        self.quirks = SolQuirks()
        self._told_busy: set[int] = set()  # sessions whose first Activate got 0x80 (quirk)

    # ---- lifecycle -------------------------------------------------------------------------
    def start(self) -> VirtualBmc:
        """Bind the UDP socket, open the pty and start the threads; returns self."""
        _ensure_wake_socket()
        super().__init__(self.users, port=self._want_port, address=self.address)
        _wake_io_thread()  # so its select() watches the new socket from now on
        if self._kg is not None:
            self.set_kg(self._kg)
        self.port = self.serversocket.getsockname()[1]
        self._open_pty()
        self._started = True
        for target, name in ((self._pump, "bmc-pump"), (self._pty_reader, "bmc-pty")):
            thread = threading.Thread(target=target, name=f"{name}:{self.port}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        """Deactivate SOL (the client is told), stop the threads and release socket and pty."""
        if not self._started:
            return
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)
        self._started = False
        self.deactivate("BMC stopping")
        sock = self.serversocket
        ipmisession.Session.bmc_handlers.pop(sock, None)
        for key in list(ipmisession.Session.bmc_handlers):
            handlers = ipmisession.Session.bmc_handlers.get(key)
            if isinstance(handlers, dict):
                for hport, sess in list(handlers.items()):
                    if getattr(sess, "bmc", None) is self:
                        del handlers[hport]
                if not handlers:
                    ipmisession.Session.bmc_handlers.pop(key, None)
        if sock in ipmisession.iosockets:
            ipmisession.iosockets.remove(sock)
        _wake_io_thread()  # its next select() no longer includes the socket we close
        sock.close()
        if self._pty_fd is not None:
            os.close(self._pty_fd)
            self._pty_fd = None

    def __enter__(self) -> VirtualBmc:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- pty side --------------------------------------------------------------------------
    def _open_pty(self) -> None:
        fd = os.open(self.pty_path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        tty.setraw(fd, termios.TCSANOW)
        self._pty_fd = fd

    def _pty_reader(self) -> None:
        while not self._stop.is_set():
            fd = self._pty_fd
            if fd is None:
                return
            ready, _, _ = select.select([fd], [], [], 0.1)
            if not ready:
                continue
            try:
                data = os.read(fd, 4096)
            except BlockingIOError:
                continue
            except OSError as exc:
                if exc.errno == errno.EIO:  # the other end is closed (host off); wait
                    self._stop.wait(0.1)
                    continue
                raise
            if not data:  # end of file: the other end went away; do not spin on it
                self._stop.wait(0.1)
                continue
            with self._out_lock:
                self._out += data
                if self.sol is None and len(self._out) > IDLE_BUFFER:
                    # Like a real BMC's SOL buffer: with no session, keep only the newest
                    # bytes (ipmi_sim keeps none); what falls out is counted, not hidden.
                    excess = len(self._out) - IDLE_BUFFER
                    del self._out[:excess]
                    self.discarded += excess

    def take_output(self, n: int) -> bytes:
        """Up to ``n`` bytes the host wrote that no client has seen yet."""
        with self._out_lock:
            chunk = bytes(self._out[:n])
            del self._out[:n]
            return chunk

    def unget_output(self, data: bytes) -> None:
        """Put back bytes a client did not accept, ahead of everything newer."""
        with self._out_lock:
            self._out[0:0] = data

    def give_input(self, data: Any) -> None:
        """Bytes a client typed: write them to the host's serial line."""
        if not isinstance(data, bytes | bytearray) or self._pty_fd is None:
            return
        self.received += data
        view = memoryview(bytes(data))
        while view:
            try:
                written = os.write(self._pty_fd, view)
            except BlockingIOError:
                select.select([], [self._pty_fd], [], 0.1)
                continue
            view = view[written:]

    def got_break(self) -> None:
        """A client asked for a serial BREAK; a pty cannot carry one, so count it."""
        self.breaks += 1
        if self._pty_fd is not None:
            with contextlib.suppress(OSError):
                termios.tcsendbreak(self._pty_fd, 0)
        if self.on_break is not None:
            self.on_break()

    # ---- pump ------------------------------------------------------------------------------
    def _pump(self) -> None:
        while not self._stop.is_set():
            try:
                ipmisession.Session.wait_for_rsp(0.02)
                now = time.monotonic()
                sol = self.sol
                if sol is not None:
                    if now - sol.ipmi_session.last_seen > SESSION_IDLE_TIMEOUT:
                        self.deactivate("client idle", notify=False)
                    else:
                        sol.service(now)
            except Exception as exc:  # one bad packet or session must not silence the BMC
                print(f"virtual BMC: pump error (continuing): {exc!r}", file=sys.stderr)
                self._stop.wait(0.02)

    # ---- pyghmi server hooks ---------------------------------------------------------------
    def sessionless_data(self, data: Any, sockaddr: Any) -> None:
        """Open Session requests get our session class; the rest goes to pyghmi."""
        data = bytearray(data)
        is_rmcpplus = len(data) >= 22 and data[0] == 6 and data[2:4] == b"\xff\x07"
        if is_rmcpplus and data[4] == 6 and data[5] == 16:
            handlers = ipmisession.Session.bmc_handlers.get(sockaddr)
            existing = handlers.get(self.port) if isinstance(handlers, dict) else None
            if isinstance(existing, _Session):
                # pyghmi routes each packet when it is read: a request and its duplicate read
                # together both land here, before the first made its session. Two sessions
                # would then answer with two session IDs, and the client's RAKP1 (naming
                # the first) would reach the second.
                existing._got_rmcp_openrequest(data[16:])
                return
            _Session(
                self.authdata, self.kg, sockaddr, self.serversocket, data[16:], self.uuid, self
            )
            return
        super().sessionless_data(data, sockaddr)

    def send_cipher_suites(
        self,
        myaddr: int,
        mylun: int,
        clientaddr: int,
        clientlun: int,
        clientseq: int,
        data: Any,
        sockaddr: Any,
    ) -> None:
        """Get Channel Cipher Suites: list 17 and 3 (pyghmi lists only 3, wrongly sized)."""
        records = bytearray()
        for number, (auth, integ, conf, _h, _l) in _SUITES.items():
            records += bytes([0xC0, number, auth, 0x40 | integ, 0x80 | conf])
        index = data[22] & 0x3F if len(data) > 22 else 0
        records = records[index * 16 : index * 16 + 16]
        ipmihdr = bytearray([clientaddr, clientlun | (7 << 2)])
        ipmihdr.append(ipmisession._checksum(*ipmihdr))
        body = bytearray([myaddr, mylun | clientseq << 2, 0x54, 0x00, 0x01]) + records
        body.append(ipmisession._checksum(*body))
        msg = ipmihdr + body
        header = bytearray(b"\x06\x00\xff\x07\x06\x00\x00\x00\x00\x00\x00\x00\x00\x00")
        header += struct.pack("<H", len(msg))
        ipmisession._io_sendto(self.serversocket, header + msg, sockaddr)

    def handle_raw_request(self, request: dict[str, Any], session: Any) -> None:
        """Add the commands real SOL clients need to pyghmi's small set."""
        netfn, command, data = request["netfn"], request["command"], request["data"]
        try:
            if netfn == 6 and command == 0x4A:  # get payload activation status
                active = 1 if self.sol is not None else 0
                session.send_ipmi_response(data=[1, active, 0])
                return
            if netfn == 6 and command == 0x4E:  # get channel payload support
                # Standard payload types 0 (IPMI) and 1 (SOL); session setup 0x10-0x15.
                session.send_ipmi_response(data=[0x03, 0x00, 0x3F, 0x00, 0, 0, 0, 0])
                return
            if netfn == 6 and command == 0x4B:  # get payload instance info
                owner = self.sol.owner_id if self.sol is not None else b"\0\0\0\0"
                session.send_ipmi_response(data=list(owner) + [0] * 8)
                return
            if netfn == 0x0C and command == 0x22:  # get SOL configuration parameters
                self._sol_config(data, session)
                return
            if netfn == 0x0C and command == 0x21:  # set SOL configuration: accept, ignore
                session.send_ipmi_response()
                return
        except Exception:  # a malformed request must not stop the BMC
            session.send_ipmi_response(code=0xFF)
            return
        super().handle_raw_request(request, session)
        return

    def _sol_config(self, data: Any, session: Any) -> None:
        param = data[1] if len(data) > 1 else 0
        rates = {9600: 6, 19200: 7, 38400: 8, 57600: 9, 115200: 10}
        values: dict[int, list[int]] = {
            0: [0],  # set in progress: set complete
            1: [1],  # SOL enable
            2: [0xC4],  # force encryption + authentication, admin privilege
            3: [5, 0xFF],  # character accumulate 25 ms, send threshold 255
            4: [5, 10],  # retry count, retry interval (10 ms units)
            5: [rates.get(self.bit_rate, 10)],  # non-volatile bit rate
            6: [rates.get(self.bit_rate, 10)],  # volatile bit rate
            7: [1],  # payload channel
            8: [self.port & 0xFF, self.port >> 8],  # payload port
        }
        if param not in values:
            session.send_ipmi_response(code=0x80)  # parameter not supported
        else:
            session.send_ipmi_response(data=[0x11, *values[param]])

    def activate_payload(self, request: dict[str, Any], session: Any) -> None:
        """Activate SOL for ``session``; 0x80 when another session holds it."""
        data = request["data"]
        if len(data) < 2 or data[0] != 1:
            session.send_ipmi_response(code=0xCC)
            return
        if self.refuse_activation is not None:
            session.send_ipmi_response(code=self.refuse_activation)
            return
        if self.sol is not None and self.sol.ipmi_session is not session:
            session.send_ipmi_response(code=0x80)
            return
        if self.quirks.activate_busy_once and id(session) not in self._told_busy:
            self._told_busy.add(id(session))
            self.activated = True
            self.sol = _SolConsole(self, session)
            session.send_ipmi_response(code=0x80)  # active... in this very session
            return
        # Active before the answer leaves, as ipmi_sim does: a client told "active" may have
        # the host write at once, and host output while no console is attached is trimmed
        # to the newest IDLE_BUFFER bytes by the pty reader.
        if self.sol is None:  # else the holder asked again (a retransmitted or duplicated request)
            self.activated = True
            self.sol = _SolConsole(self, session)
            if self.quirks.early_once:
                self.sol.service(time.monotonic())
                self.sol.no_retransmit = self.sol.awaitingack
        port = [self.port & 0xFF, self.port >> 8]
        size = [SOL_CHUNK, 0]
        session.send_ipmi_response(data=[0, 0, 0, 0, *size, *size, *port, 0xFF, 0xFF])

    def deactivate_payload(self, request: dict[str, Any], session: Any) -> None:
        """Deactivate SOL, whoever holds it (that is how ``--steal`` works); tell the holder."""
        if self.sol is None:
            session.send_ipmi_response(code=0x80)
            return
        session.send_ipmi_response()
        self.deactivate("deactivated by a client")

    def deactivate(self, why: str, *, notify: bool = True) -> None:
        """Drop the active SOL payload, if any; ``notify`` sends the client the status bit."""
        sol = self.sol
        self.sol = None
        self.activated = False
        if sol is not None:
            if notify:
                sol.close()
            else:
                sol.activated = False
                sol.ipmi_session.sol_handler = None
                if sol.whole or sol.inflight:
                    self.unget_output(sol.whole or sol.inflight)

    def session_gone(self, sess: _Session) -> None:
        """A client logged out: release SOL if it held it and stop routing its packets."""
        if self.sol is not None and self.sol.ipmi_session is sess:
            self.deactivate("holder logged out", notify=False)
        handlers = ipmisession.Session.bmc_handlers.get(sess.sockaddr)
        if isinstance(handlers, dict) and handlers.get(self.port) is sess:
            del handlers[self.port]
            if not handlers:
                ipmisession.Session.bmc_handlers.pop(sess.sockaddr, None)

    def logged_in_sessions(self) -> int:
        """Sessions that finished their login (RAKP 4) and have not logged out (Close Session).

        A client that forgets to log out leaves one here, as a real BMC keeps its session slot
        until a timeout; tests read this to prove a client logs out on every path.
        """
        count = 0
        for handlers in list(ipmisession.Session.bmc_handlers.values()):
            sess = handlers.get(self.port) if isinstance(handlers, dict) else None
            if isinstance(sess, _Session) and sess.logged_in:
                count += 1
        return count

    # ---- chassis ---------------------------------------------------------------------------
    def host_powered(self) -> bool:
        """Whether the host is on (the SOL status bit 'character transfer unavailable')."""
        return self.power.power_state if self.power is not None else self._own_power

    def is_active(self) -> bool:
        return True

    def get_power_state(self) -> int:
        return 1 if self.host_powered() else 0

    def power_on(self) -> int:
        if self.power is not None:
            self.power.power_on()
        self._own_power = True
        return 0

    def power_off(self) -> int:
        if self.power is not None:
            self.power.power_off()
        self._own_power = False
        return 0

    def power_shutdown(self) -> int:
        return self.power_off()

    def power_cycle(self) -> int:
        if self.power is not None:
            self.power.power_cycle()
        self._own_power = True
        return 0

    def power_reset(self) -> int:
        if self.power is not None:
            self.power.reset()
        return 0

    def get_system_guid(self) -> Any:
        return self.uuid

    def cold_reset(self) -> int:
        return 0


def _break_logger(path: str) -> Callable[[], None]:
    """A BREAK hook that appends ``break`` to ``path``, one line per BREAK, written at once."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

    def log_break() -> None:
        os.write(fd, b"break\n")

    return log_break


def main(argv: list[str] | None = None) -> int:
    """``python -m solcap.sim.bmc PTY``: serve a pty over lanplus until SIGTERM/SIGINT.

    The password comes from ``IPMI_PASSWORD``, the BMC key (Kg) from ``IPMI_KG`` if set (else
    the password is the key, as the specification says); the bound port is printed as ``port=N``
    and, at the end, the sessions still logged in as ``sessions=N``.
    """
    parser = argparse.ArgumentParser(prog="python -m solcap.sim.bmc")
    parser.add_argument("pty_path")
    parser.add_argument("--address", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--user", default="admin")
    parser.add_argument(
        "--refuse-activation",
        type=lambda text: int(text, 0),
        metavar="CODE",
        help="answer Activate Payload with this completion code (e.g. 0x81)",
    )
    parser.add_argument(
        "--retransmit-extra",
        action="store_true",
        help="send each chunk's front half, then the whole chunk under the same sequence",
    )
    parser.add_argument(
        "--late-ack",
        action="store_true",
        help="resend each chunk grown when its first ACK comes, then apply that ACK to it",
    )
    parser.add_argument(
        "--accept-at-most",
        type=int,
        metavar="N",
        help="take at most N characters of each client packet (a partial ACK)",
    )
    parser.add_argument(
        "--nack-every-other",
        action="store_true",
        help="refuse every other new client packet with NACK, count 0",
    )
    parser.add_argument(
        "--activate-busy-once",
        action="store_true",
        help="answer a session's first Activate Payload 0x80 after activating it",
    )
    parser.add_argument(
        "--early-once",
        action="store_true",
        help="send the first SOL packet before the Activate reply, and never again",
    )
    parser.add_argument(
        "--break-log",
        metavar="FILE",
        help="append a line to FILE for each BREAK a client sends (a pty cannot carry one)",
    )
    args = parser.parse_args(argv)
    password = os.environ.get("IPMI_PASSWORD")
    if not password:
        print("set IPMI_PASSWORD", file=sys.stderr)
        return 2
    # A pipe, not an Event, wakes the main thread on a signal (solcap.util.sigwake says why).
    wake = SignalWake((signal.SIGTERM, signal.SIGINT)).__enter__()
    kg = os.environ.get("IPMI_KG")
    bmc = VirtualBmc(
        args.pty_path,
        address=args.address,
        port=args.port,
        user=args.user,
        password=password,
        kg=kg.encode() if kg else None,
    )
    bmc.refuse_activation = args.refuse_activation
    bmc.quirks = SolQuirks(
        retransmit_extra=args.retransmit_extra,
        accept_at_most=args.accept_at_most,
        nack_every_other=args.nack_every_other,
        activate_busy_once=args.activate_busy_once,
        late_ack=args.late_ack,
        early_once=args.early_once,
    )
    if args.break_log:
        bmc.on_break = _break_logger(args.break_log)
    with bmc:
        print(f"port={bmc.port}", flush=True)
        while not wake.wait():
            pass
        # On the way out, for tests: sessions still logged in (clients that never logged out).
        print(f"sessions={bmc.logged_in_sessions()}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
