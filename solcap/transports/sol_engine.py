"""An RMCP+ SOL data path that does each packet's work once, in one thread (a prototype).

Where the per-packet cost of the pyghmi path goes (docs/benchmarks.md): a new AES and HMAC
object for every packet, three thread hand-offs (pyghmi's I/O thread, solcap's pump, the
console reader) and a 20 ms sweep over every console's timers. This module is the other
direction, measured beside it (docs/design.md, "SOL engine"):

* :class:`RmcpPlusCodec` seals and opens RMCP+ packets (IPMI v2.0 §13.6, table 13-8) with
  contexts made once per session: one keyed HMAC object copied per packet (``hmac`` copies the
  inner and outer digest state; no re-keying) and one AES-128 ECB encryptor and decryptor
  from ``cryptography``, with the CBC chaining of §13.29 done here (decrypting a packet is one
  ECB call for all its blocks and one XOR; encrypting an ACK is one block);
* :class:`SolChannel` is the SOL stop-and-wait state machine, byte-exact under loss,
  duplication, reordering, late ACKs and retransmissions that carry more data than the first
  send (the same rules as :class:`solcap.transports.ipmi.SolConsole`, without pyghmi); it
  never does I/O, it returns what to send;
* :class:`SolEngine` is one thread with one ``selectors`` set over every session's UDP socket
  and one heap of timers (the next retransmit or keepalive of each session: nothing walks all
  sessions); a received packet is opened, ACKed and handed to the session's sink (e.g.
  :meth:`solcap.capture.recording.Recording.feed`) in that same thread, with no queue in between.

Session set-up (RAKP, the keys K1 and K2), IPMI commands, activation and logout stay with
pyghmi: :mod:`solcap.transports.ipmi.engine` logs in and activates there, then hands the
session's socket and keys to a :class:`SolEngine`, and hands them back for deactivation and
logout. Nothing here imports pyghmi.
"""

from __future__ import annotations

import contextlib
import dataclasses
import heapq
import hmac
import itertools
import logging
import os
import selectors
import socket
import struct
import threading
import time
from collections.abc import Callable
from typing import Any, Literal

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

log = logging.getLogger(__name__)

_RMCP_HEADER = b"\x06\x00\xff\x07"
_AUTH_RMCPPLUS = 0x06
PAYLOAD_IPMI = 0x00
PAYLOAD_SOL = 0x01
_AUTHENTICATED = 0x40
_ENCRYPTED = 0x80
#: SOL status bits of a BMC-to-console packet (IPMI v2.0 table 15-2).
_STATUS_NACK = 0b0100_0000
_STATUS_POWERED_OFF = 0b0010_0000
_STATUS_DEACTIVATED = 0b0001_0000
_BREAK = 0b0001_0000


@dataclasses.dataclass(frozen=True)
class SessionKeys:
    """What an established RMCP+ session needs on its data path (from the RAKP exchange)."""

    #: The BMC's session ID: carried in every packet we send.
    bmc_session_id: int
    #: Our (the console's) session ID: the BMC carries it in every packet it sends us.
    console_session_id: int
    #: Integrity key K1 (HMAC key) and the confidentiality key (first 16 bytes of K2), or
    #: None for a session without encryption (never proposed by solcap; kept for tests).
    k1: bytes
    aes_key: bytes | None
    #: "sha256" (suite 17: HMAC-SHA256-128) or "sha1" (suite 3: HMAC-SHA1-96).
    digest: Literal["sha256", "sha1"]
    #: The sequence number of the next packet we send (the session's outbound counter).
    next_seq: int
    #: The highest sequence number seen from the BMC (older packets are replays), or None.
    last_remote_seq: int | None = None

    @property
    def auth_len(self) -> int:
        return 16 if self.digest == "sha256" else 12


class RmcpPlusCodec:
    """Seal and open one session's RMCP+ packets; the crypto contexts live as long as it."""

    def __init__(self, keys: SessionKeys, *, urandom: Callable[[int], bytes] = os.urandom):
        self.keys = keys
        self.seq = keys.next_seq
        self.remote_seq = keys.last_remote_seq
        self._auth_len = keys.auth_len
        self._mac = hmac.new(keys.k1, digestmod=keys.digest)
        self._urandom = urandom
        self._head_out = struct.pack("<I", keys.bmc_session_id)
        self._sid_in = struct.pack("<I", keys.console_session_id)
        if keys.aes_key is not None:
            ecb = Cipher(algorithms.AES(keys.aes_key), modes.ECB())
            self._enc: Any = ecb.encryptor()
            self._dec: Any = ecb.decryptor()
        else:
            self._enc = self._dec = None

    def _auth(self, data: bytes) -> bytes:
        mac = self._mac.copy()
        mac.update(data)
        return mac.digest()[: self._auth_len]

    def _cbc_encrypt(self, plain: bytes) -> bytes:
        iv = self._urandom(16)
        out = [iv]
        prev = int.from_bytes(iv, "big")
        enc = self._enc.update
        for i in range(0, len(plain), 16):
            block = enc((int.from_bytes(plain[i : i + 16], "big") ^ prev).to_bytes(16, "big"))
            out.append(block)
            prev = int.from_bytes(block, "big")
        return b"".join(out)

    def _cbc_decrypt(self, data: bytes) -> bytes | None:
        """``data`` is IV + ciphertext; None when it is not whole blocks."""
        body = data[16:]
        if not body or len(body) % 16:
            return None
        raw = self._dec.update(body)
        chain = data[: len(data) - 16]  # IV followed by every ciphertext block but the last
        n = len(body)
        return (int.from_bytes(raw, "big") ^ int.from_bytes(chain, "big")).to_bytes(n, "big")

    def seal(self, payload_type: int, payload: bytes) -> bytes:
        """One packet carrying ``payload``; advances the outbound sequence number."""
        self.seq = (self.seq + 1) & 0xFFFFFFFF or 1
        flags = payload_type | _AUTHENTICATED
        if self._enc is not None:
            flags |= _ENCRYPTED
            padlen = (16 - (len(payload) + 1) % 16) % 16
            body = self._cbc_encrypt(payload + bytes(range(1, padlen + 1)) + bytes((padlen,)))
        else:
            body = payload
        msg = bytearray(_RMCP_HEADER)
        msg += bytes((_AUTH_RMCPPLUS, flags))
        msg += self._head_out
        msg += struct.pack("<IH", self.seq, len(body))
        msg += body
        pad = (4 - (len(msg) - 2) % 4) % 4
        msg += b"\xff" * pad
        msg += bytes((pad, 0x07))
        msg += self._auth(bytes(msg[4:]))
        return bytes(msg)

    def open(self, packet: bytes, *, replay_check: bool = True) -> tuple[int, bytes] | None:
        """(payload type, payload) of an authentic packet for this session, else None.

        Dropped like pyghmi drops them: unauthenticated, wrong session, a sequence number
        below the last one seen (a replay), a malformed length or padding. ``replay_check``
        False: a packet pyghmi read from this session's socket before the engine had it (the
        hand-over): it may be older than a reply pyghmi processed after it, and it is no
        replay; the SOL channel's sequence rules drop it if its data was seen already.
        """
        alen = self._auth_len
        if len(packet) < 16 + 2 + alen or packet[4] != _AUTH_RMCPPLUS:
            return None
        flags = packet[5]
        if not flags & _AUTHENTICATED or packet[6:10] != self._sid_in:
            return None
        if not hmac.compare_digest(packet[-alen:], self._auth(packet[4:-alen])):
            return None
        (seq,) = struct.unpack_from("<I", packet, 10)
        last = self.remote_seq
        if last is not None and seq < last and last != 0xFFFFFFFF:
            if replay_check:
                return None
        else:
            self.remote_seq = seq
        size = packet[14] | packet[15] << 8
        payload = packet[16 : 16 + size]
        if len(payload) != size:
            return None
        if flags & _ENCRYPTED:
            if self._dec is None:
                return None
            plain = self._cbc_decrypt(payload)
            if plain is None or plain[-1] + 1 > len(plain):
                return None
            payload = plain[: len(plain) - plain[-1] - 1]
        return flags & 0x3F, payload


# --------------------------------------------------------------------------- IPMI


def _checksum(data: bytes) -> int:
    return -sum(data) & 0xFF


def ipmi_request(netfn: int, command: int, data: bytes, rqseq: int) -> bytes:
    """An IPMI LAN request message to the BMC (IPMI v2.0 §13.8), LUN 0."""
    head = bytes((0x20, netfn << 2))
    body = bytes((0x81, (rqseq & 0x3F) << 2, command)) + data
    return head + bytes((_checksum(head),)) + body + bytes((_checksum(body),))


def ipmi_response(payload: bytes) -> tuple[int, int, int, int, bytes] | None:
    """(netfn, rqseq, command, completion code, data) of a response message, else None."""
    if len(payload) < 8 or _checksum(payload[:2]) != payload[2]:
        return None
    if _checksum(payload[3:-1]) != payload[-1]:
        return None
    return payload[1] >> 2, payload[4] >> 2, payload[5], payload[6], payload[7:-1]


#: Get Payload Instance Info (netfn App, 0x4B) for SOL instance 1: who holds it now.
_INSTANCE_INFO = (0x06, 0x4B, b"\x01\x01")


# --------------------------------------------------------------------------- SOL


@dataclasses.dataclass
class SolTiming:
    """Retransmit and liveness timing (the same defaults as :class:`ipmi.Liveness`)."""

    retry_interval: float = 1.0
    retries: int = 6
    keepalive: float = 5.0


class SolChannel:
    """The SOL stop-and-wait state of one console; pure (returns payloads to send).

    Inbound (BMC → us): a packet with a new sequence number delivers its data and is ACKed
    with its length; a repeat of it (a retransmission, possibly carrying more than the first
    copy) delivers nothing and is ACKed with the count taken from the first copy, so every ACK
    of one sequence number says the same and a BMC sends what we did not take under the next
    one; a late repeat of the one before is stale. Outbound: one packet awaiting an ACK at a
    time, up to ``max_out`` bytes; a partial ACK resends the rest first; a NACK with nothing
    accepted backs off 100 ms; silence retransmits every ``retry_interval`` and gives up
    after ``retries``; an idle console sends an empty packet every ``keepalive`` seconds, which the
    BMC must ACK (so silence means the session is gone).
    """

    def __init__(self, max_out: int = 255, timing: SolTiming | None = None) -> None:
        self.max_out = max(1, min(max_out, 255))
        self.timing = timing or SolTiming()
        self.remseq = 0
        self.prevremseq = 0
        self.lastsize = 0
        self.myseq = 0
        self.pending: list[bytes | None] = []  # None is a BREAK
        self.awaiting = False
        self.lasttext = b""
        self.lastpayload = b""
        self.sent_at = 0.0
        self.tries = 0
        self.resume_at = 0.0
        self.last_heard = time.monotonic()
        self.closed_reason: str | None = None
        self.deactivated = False
        self.powered_off = False

    def queue(self, data: bytes) -> None:
        if self.pending and isinstance(self.pending[-1], bytes):
            self.pending[-1] += data
        else:
            self.pending.append(data)

    def queue_break(self) -> None:
        self.pending.append(None)

    def pending_bytes(self) -> int:
        queued = sum(len(x) for x in self.pending if x is not None)
        return queued + (len(self.lasttext) if self.awaiting else 0)

    def got(self, payload: bytes, now: float) -> tuple[bytes, list[bytes]]:
        """One SOL payload from the BMC: (new bytes, payloads to send)."""
        if len(payload) < 4:
            return b"", []
        self.last_heard = now
        newseq = payload[0] & 0x0F
        ackseq = payload[1] & 0x0F
        accepted = payload[2]
        status = payload[3]
        fresh = b""
        out: list[bytes] = []
        if newseq:
            data = payload[4:]
            if newseq == self.remseq:
                # A retransmission: take nothing from it and ACK the count taken from the first
                # copy, even when this copy is longer. The ACK of the first copy may still be on
                # its way; a BMC that grew the packet (ipmi_sim) reads it as a partial ACK and
                # sends the rest under the next sequence number, so taking the extra here
                # would deliver it twice (docs/ipmi.md, "SOL quirks").
                fresh = b""
                count = min(len(data), self.lastsize)
            elif newseq == self.prevremseq:
                fresh = b""
                count = len(data)
            else:
                self.prevremseq, self.remseq = self.remseq, newseq
                fresh = data
                self.lastsize = count = len(data)
            out.append(bytes((0, newseq, count & 0xFF, 0)))
        if status & _STATUS_POWERED_OFF:
            self.powered_off = True
        if ackseq and self.awaiting and ackseq == self.myseq:
            self.awaiting = False
            rest = self.lasttext[accepted:] if accepted < len(self.lasttext) else b""
            if rest:
                if self.pending and isinstance(self.pending[0], bytes):
                    self.pending[0] = rest + self.pending[0]
                else:
                    self.pending.insert(0, rest)
            if status & _STATUS_NACK and accepted == 0:
                self.resume_at = now + 0.1
        if status & _STATUS_DEACTIVATED:
            self.deactivated = True
            self.closed_reason = "SOL deactivated by the BMC or another client"
            return fresh, out
        out.extend(self.service(now))
        return fresh, out

    def service(self, now: float) -> list[bytes]:
        """Timers: a retransmit, the next chunk, or an idle probe; [] when nothing is due."""
        if self.closed_reason is not None:
            return []
        if self.awaiting:
            if now - self.sent_at < self.timing.retry_interval:
                return []
            self.tries += 1
            if self.tries > self.timing.retries:
                self.closed_reason = (
                    "Connection lost: the BMC stopped acknowledging SOL data "
                    f"(nothing heard for {now - self.last_heard:.1f} s)"
                )
                return []
            self.sent_at = now
            return [self.lastpayload]
        if now < self.resume_at:
            return []
        if not self.pending:
            if now - self.last_heard < self.timing.keepalive:
                return []
            self.pending.append(b"")
        head = self.pending[0]
        brk = head is None
        if head is None:
            text = b""
            del self.pending[0]
        else:
            text = head[: self.max_out]
            if len(head) > self.max_out:
                self.pending[0] = head[self.max_out :]
            else:
                del self.pending[0]
        self.myseq = self.myseq % 15 + 1
        self.lasttext = text
        self.lastpayload = bytes((self.myseq, 0, 0, _BREAK if brk else 0)) + text
        self.awaiting = True
        self.tries = 0
        self.sent_at = now
        return [self.lastpayload]

    def next_deadline(self) -> float:
        """When :meth:`service` next has something to do (monotonic seconds)."""
        if self.awaiting:
            return self.sent_at + self.timing.retry_interval
        if self.pending:
            return self.resume_at
        return self.last_heard + self.timing.keepalive


# --------------------------------------------------------------------------- engine

Sink = Callable[[bytes], None]
#: (session, reason): the session ended (lost, deactivated); called in the engine thread.
EndHandler = Callable[["EngineSession", str], None]


class EngineSession:
    """One console's socket, codec and SOL state inside a :class:`SolEngine`."""

    def __init__(
        self,
        sock: socket.socket,
        peer: Any,
        codec: RmcpPlusCodec,
        channel: SolChannel,
        sink: Sink,
        on_end: EndHandler | None = None,
        name: str = "sol",
        *,
        owner_interval: float = 15.0,
        rqseq: int = 0,
    ) -> None:
        self.sock = sock
        self.peer = peer
        self.codec = codec
        self.channel = channel
        self.sink = sink
        self.on_end = on_end
        self.name = name
        self.lock = threading.Lock()  # guards channel.pending against writers
        self.ended: str | None = None
        self.packets_in = 0
        self.bytes_in = 0
        #: Every ``owner_interval`` s the BMC is asked who holds the SOL payload (a client that
        #: stole it may not make the BMC tell us); 0 turns that off.
        self.owner_interval = owner_interval
        self.next_owner_check = time.monotonic() + owner_interval if owner_interval else 0.0
        self.rqseq = rqseq
        #: Packets for this session that pyghmi read before the engine served its socket (the
        #: hand-over): processed, in order, before the socket is read.
        self.held: list[bytes] = []
        self._timer_gen = 0
        self._armed = float("inf")
        self._engine: SolEngine | None = None

    def write(self, data: bytes) -> None:
        """Queue bytes for the BMC (any thread)."""
        with self.lock:
            self.channel.queue(bytes(data))
        if self._engine is not None:
            self._engine.poke(self)

    def send_break(self) -> None:
        with self.lock:
            self.channel.queue_break()
        if self._engine is not None:
            self._engine.poke(self)

    def pending_output(self) -> int:
        with self.lock:
            return self.channel.pending_bytes()

    def next_deadline(self) -> float:
        deadline = self.channel.next_deadline()
        if self.owner_interval:
            deadline = min(deadline, self.next_owner_check)
        return deadline


class SolEngine:
    """One thread, one selector over every session's socket, one timer heap.

    Add sessions with :meth:`add` (any thread), remove with :meth:`remove` (returns once the
    engine no longer touches the socket). Sinks and end handlers run in the engine thread and
    must not block.
    """

    def __init__(self, name: str = "solcap-sol-engine") -> None:
        self._sel = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._sel.register(self._wake_r, selectors.EVENT_READ, None)
        self._timers: list[tuple[float, int, int, EngineSession]] = []
        self._tick = itertools.count()
        self._commands: list[Callable[[], None]] = []
        self._poked: dict[EngineSession, None] = {}
        self._lock = threading.Lock()
        self._woken = False
        self._stop = False
        self.sessions: set[EngineSession] = set()
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.thread.start()

    # ---- any thread ------------------------------------------------------------------------
    def _call(self, fn: Callable[[], None]) -> None:
        with self._lock:
            self._commands.append(fn)
        self._wake()

    def _wake(self) -> None:
        with self._lock:
            if self._woken:
                return
            self._woken = True
        with contextlib.suppress(BlockingIOError):
            self._wake_w.send(b"\0")

    def add(self, session: EngineSession) -> None:
        session._engine = self

        def add() -> None:
            session.sock.setblocking(False)
            self._sel.register(session.sock, selectors.EVENT_READ, session)
            self.sessions.add(session)
            now = time.monotonic()
            held, session.held = session.held, []
            for packet in held:
                if not self._packet(session, packet, now, held=True):
                    return
            self._arm(session)
            self._serve(session, now)

        self._call(add)

    def remove(self, session: EngineSession, timeout: float = 5.0) -> bool:
        """Stop serving ``session``; True once the engine thread let go of its socket."""
        done = threading.Event()

        def remove() -> None:
            self._drop(session)
            done.set()

        if threading.current_thread() is self.thread:
            remove()
            return True
        self._call(remove)
        return done.wait(timeout)

    def inject(self, session: EngineSession, packet: bytes) -> None:
        """A packet of ``session`` read by someone else (pyghmi's I/O thread, after the
        hand-over): processed in the engine thread as if read from the socket. pyghmi may
        process it long after it came (its pump idles once it serves no console), so the
        replay check stays: a copy older than what the engine has seen since is dropped
        (never ACKed, so it was retransmitted), never taken for new data."""

        def inject() -> None:
            if session in self.sessions:
                self._packet(session, packet, time.monotonic())
                if session.ended is None:
                    self._arm(session)

        self._call(inject)

    def poke(self, session: EngineSession) -> None:
        """``session`` has output queued: serve it on the next turn."""
        with self._lock:
            self._poked[session] = None
        self._wake()

    def stop(self) -> None:
        self._stop = True
        self._wake()
        self.thread.join(5)

    # ---- engine thread ---------------------------------------------------------------------
    def _arm(self, session: EngineSession) -> None:
        """Make sure a timer fires by the session's next deadline.

        Only a deadline earlier than the one armed is pushed (a packet usually moves the
        keepalive later, not earlier): a timer that fires early finds nothing due and re-arms,
        so the heap holds about one entry per session however fast packets come."""
        when = session.next_deadline()
        if when >= session._armed:
            return
        session._armed = when
        session._timer_gen += 1
        heapq.heappush(self._timers, (when, next(self._tick), session._timer_gen, session))

    def _drop(self, session: EngineSession) -> None:
        if session in self.sessions:
            self.sessions.discard(session)
            with contextlib.suppress(KeyError, ValueError, OSError):
                self._sel.unregister(session.sock)
        session._timer_gen += 1  # any heap entry left is stale

    def _end(self, session: EngineSession, reason: str) -> None:
        if session.ended is not None:
            return
        session.ended = reason
        self._drop(session)
        if session.on_end is not None:
            try:
                session.on_end(session, reason)
            except Exception:
                log.exception("%s: end handler failed", session.name)

    def _send(self, session: EngineSession, payloads: list[bytes]) -> None:
        for payload in payloads:
            packet = session.codec.seal(PAYLOAD_SOL, payload)
            with contextlib.suppress(OSError):  # UDP: a dropped send is a retransmit later
                session.sock.sendto(packet, session.peer)

    def _serve(self, session: EngineSession, now: float) -> None:
        with session.lock:
            out = session.channel.service(now)
        self._send(session, out)
        if session.owner_interval and now >= session.next_owner_check:
            session.next_owner_check = now + session.owner_interval
            session.rqseq = (session.rqseq + 1) & 0x3F
            netfn, command, data = _INSTANCE_INFO
            packet = session.codec.seal(
                PAYLOAD_IPMI, ipmi_request(netfn, command, data, session.rqseq)
            )
            with contextlib.suppress(OSError):
                session.sock.sendto(packet, session.peer)
        if session.channel.closed_reason is not None:
            self._end(session, session.channel.closed_reason)
            return
        self._arm(session)

    def _readable(self, session: EngineSession) -> None:
        sock = session.sock
        peer = session.peer
        now = time.monotonic()
        while True:
            try:
                packet, source = sock.recvfrom(4096)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:
                self._end(session, f"socket error: {exc}")
                return
            if source != peer:
                continue
            if not self._packet(session, packet, now):
                return
        self._arm(session)

    def _packet(
        self, session: EngineSession, packet: bytes, now: float, *, held: bool = False
    ) -> bool:
        """One received packet: opened, ACKed, its new bytes to the sink; False once the
        session has ended.

        ``held``: read by pyghmi before the hand-over (:attr:`EngineSession.held`), so no
        replay check (a reply pyghmi processed after it has a higher sequence number), and
        one saying "deactivated" is skipped: that is the BMC's notice about an earlier
        activation of this session that the client deactivated and redid (an Activate
        answered busy for our own session); a real deactivation is still seen (the owner
        check, the BMC stops ACKing)."""
        opened = session.codec.open(packet, replay_check=not held)
        if opened is None:
            return True
        if opened[0] == PAYLOAD_IPMI:
            self._ipmi_reply(session, opened[1])
            return session.ended is None
        if opened[0] != PAYLOAD_SOL:
            return True
        if held and len(opened[1]) >= 4 and opened[1][3] & _STATUS_DEACTIVATED:
            return True
        channel = session.channel
        session.packets_in += 1
        with session.lock:
            fresh, out = channel.got(opened[1], now)
        self._send(session, out)
        if fresh:
            session.bytes_in += len(fresh)
            try:
                session.sink(fresh)
            except Exception as exc:  # one session's sink must not stop the others
                log.exception("%s: sink failed", session.name)
                self._end(session, f"sink failed: {exc}")
                return False
        if channel.closed_reason is not None:
            self._end(session, channel.closed_reason)
            return False
        return True

    def _ipmi_reply(self, session: EngineSession, payload: bytes) -> None:
        """The answer to the owner check: someone else holding SOL ends this session."""
        reply = ipmi_response(payload)
        if reply is None:
            return
        netfn, _rqseq, command, code, data = reply
        if (netfn, command) != (_INSTANCE_INFO[0] | 1, _INSTANCE_INFO[1]) or code or len(data) < 4:
            return
        (owner,) = struct.unpack_from("<I", data)
        if owner not in (0, session.codec.keys.bmc_session_id):
            session.channel.deactivated = True
            session.channel.closed_reason = "SOL deactivated: another client holds it now"
            self._end(session, session.channel.closed_reason)

    def _run(self) -> None:
        while not self._stop:
            timeout = None
            if self._timers:
                timeout = max(0.0, self._timers[0][0] - time.monotonic())
            for key, _ in self._sel.select(timeout):
                session = key.data
                if session is None:
                    with contextlib.suppress(BlockingIOError):
                        self._wake_r.recv(4096)
                    with self._lock:
                        self._woken = False
                elif session in self.sessions:
                    self._readable(session)
            with self._lock:
                commands, self._commands = self._commands, []
                poked, self._poked = self._poked, {}
            for command in commands:
                command()
            now = time.monotonic()
            for session in poked:
                if session in self.sessions:
                    self._serve(session, now)
            timers = self._timers
            while timers and timers[0][0] <= now:
                _, _, gen, session = heapq.heappop(timers)
                if gen == session._timer_gen and session in self.sessions:
                    session._armed = float("inf")
                    self._serve(session, now)
        for session in list(self.sessions):
            self._drop(session)
        self._sel.close()
        self._wake_r.close()
        self._wake_w.close()
