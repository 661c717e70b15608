"""The SOL state machine on a pyghmi session (IPMI v2.0 section 15), replacing pyghmi's.

pyghmi's SOL client blocks the pumping thread in a retry loop (and recurses once per packet),
its retransmit path slices ``remdata[4 + lastsize:]`` on an already-stripped payload (4 bytes
of new data lost), a partial ACK without NACK drops the unaccepted input, and ``send_data`` on
a broken console silently does nothing; ``Console.close()`` deactivates but never logs out.
:class:`SolConsole` is non-blocking and byte-exact, and :meth:`SolConsole.shutdown` does both.
It serves the session until activation; :mod:`solcap.transports.ipmi.engine` then takes the
data path over (unless the engine is turned off).
"""

from __future__ import annotations

import logging
import struct
import threading
import time
from collections.abc import Callable
from typing import Any

import pyghmi.exceptions as pyghmi_exc
import pyghmi.ipmi.console as pyghmi_console
import pyghmi.ipmi.private.constants as pyghmi_constants

from solcap.transports.ipmi.session import OwnSession, pinned_suite
from solcap.transports.ipmi.target import IpmiTarget, Liveness

log = logging.getLogger(__name__)


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
        self.ipmi_session = OwnSession(
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
        #: SOL packets read before the SOL engine took the session over (engine.catch_sol).
        self.held_sol: list[bytes] | None = None
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
        self._forget_held()
        response = sess.raw_command(netfn=0x6, command=0x48, data=(1, 1, 0xC0, 0, 0, 0))
        code = response.get("code", 0) if isinstance(response, dict) else 0
        if code == 0x80 and not self.force_session and self._we_hold_payload():
            # Our own Activate went through and its reply was lost, or the request arrived
            # twice: many BMCs answer the repeat with "active in another session". Release
            # our instance and activate again to get the reply (payload sizes, port).
            sess.raw_command(netfn=0x6, command=0x49, data=(1, 1, 0, 0, 0, 0))
            self._forget_held()
            response = sess.raw_command(netfn=0x6, command=0x48, data=(1, 1, 0xC0, 0, 0, 0))
            code = response.get("code", 0) if isinstance(response, dict) else 0
        if code == 0x80 and self.force_session and not self.retriedpayload:
            self.retriedpayload = 1
            sess.raw_command(netfn=0x6, command=0x49, data=(1, 1, 0, 0, 0, 0))
            self.stole = True
            self.on_event("info", "deactivated another client's SOL session (--steal)")
            self._forget_held()
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

    def _forget_held(self) -> None:
        """Before an Activate request: SOL packets kept so far belong to no activation the
        SOL engine will serve (engine.catch_sol)."""
        if self.held_sol is not None:
            self.held_sol.clear()

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
                # A retransmission, perhaps longer than the first copy: take nothing and ACK
                # what the first copy gave. Its ACK may still be on the way, and a BMC that
                # grew the packet (ipmi_sim) takes that one as a partial ACK and sends the rest
                # under the next sequence number: taking the extra here would repeat it.
                fresh = b""
                count = min(len(data), self.lastsize)
            elif newseq == self.prevremseq:
                fresh = b""  # a late duplicate of the packet before: stop-and-wait says stale
                count = len(data)
            else:
                self.prevremseq, self.remseq = self.remseq, newseq
                fresh = data
                self.lastsize = count = len(data)
            try:
                self._send_sol(bytes([0, newseq, count & 0xFF, 0]))
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
