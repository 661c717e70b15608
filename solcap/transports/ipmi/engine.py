"""``ipmi://`` SOL with pyghmi for set-up and :mod:`solcap.transports.sol_engine` for data.

A prototype beside :class:`solcap.transports.ipmi.transport.IpmiSolTransport`, not used by default
(docs/design.md, "SOL engine"). Login, cipher suite, Kg, activation with steal/busy handling:
exactly the existing path (it *is* that class). The moment the BMC has activated the payload,
in pyghmi's pump thread, the session is handed over:

* its SOL handler and keepalives are unregistered and its socket leaves pyghmi's socket list,
  so pyghmi's I/O thread stops reading it (a packet it still read meanwhile is dropped
  unACKed, and the BMC retransmits it: nothing is lost);
* its keys (K1, the AES key from K2), session IDs and sequence numbers go into a
  :class:`~solcap.transports.sol_engine.RmcpPlusCodec`, its SOL state into a
  :class:`~solcap.transports.sol_engine.SolChannel`, served by a shared
  :class:`~solcap.transports.sol_engine.SolEngine`.

On close the engine lets go, the sequence numbers go back into the pyghmi session, its socket
back into the list, and pyghmi deactivates the payload and logs out as before.

pyghmi's socket list keeps its first socket as the I/O thread's wake-up address; a session
holding that one gets a fresh wake-up socket put in its place before it leaves.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from typing import Any

import pyghmi.ipmi.private.session as pyghmi_session
import pyghmi.ipmi.private.util as pyghmi_util

from solcap.credentials import PasswordSource, kg_source
from solcap.errors import ConsoleClosed
from solcap.transports.ipmi.sol import SolConsole
from solcap.transports.ipmi.target import (
    CONNECT_TIMEOUT,
    IpmiTarget,
    Liveness,
    SolDeactivated,
    SolSessionLost,
)
from solcap.transports.ipmi.transport import IpmiSolTransport
from solcap.transports.sol_engine import (
    EngineSession,
    RmcpPlusCodec,
    SessionKeys,
    Sink,
    SolChannel,
    SolEngine,
    SolTiming,
)

log = logging.getLogger(__name__)

_shared: SolEngine | None = None
_shared_lock = threading.Lock()


def shared_engine() -> SolEngine:
    """The process's engine (one thread); made on first use."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = SolEngine()
        return _shared


def _keys(sess: Any) -> SessionKeys:
    return SessionKeys(
        bmc_session_id=int(sess.sessionid),
        console_session_id=int(sess.localsid),
        k1=bytes(sess.k1),
        aes_key=bytes(sess.aeskey) if sess.confalgo else None,
        digest="sha256" if sess.currhashlen == 16 else "sha1",
        next_seq=int(sess.sequencenumber),
        last_remote_seq=getattr(sess, "remseqnumber", None),
    )


def _leave_pyghmi(sock: Any) -> None:
    """Take ``sock`` out of pyghmi's I/O thread's set (pump thread)."""
    sockets = pyghmi_session.iosockets
    if sockets and sockets[0] is sock:
        wake = socket.socket(sock.family, socket.SOCK_DGRAM)
        wake.bind(("", 0))
        sockets[0] = wake
    else:
        with contextlib.suppress(ValueError):
            sockets.remove(sock)
    # Wake the I/O thread so it re-reads the list now, not at its next packet.
    if sockets:
        with contextlib.suppress(OSError):
            first = sockets[0]
            first.sendto(b"\x01", (pyghmi_session.myself, first.getsockname()[1]))


class EngineSolTransport(IpmiSolTransport):
    """:class:`IpmiSolTransport` whose SOL data runs in a :class:`SolEngine`.

    With ``sink``, received bytes go straight to it in the engine thread (a recorder's
    ``feed``) and :meth:`read` only reports the end; without, they are buffered for
    :meth:`read` as before.
    """

    def __init__(
        self,
        target: IpmiTarget,
        password: str,
        *,
        engine: SolEngine | None = None,
        sink: Sink | None = None,
        **kwargs: Any,
    ) -> None:
        self._engine = engine or shared_engine()
        self._sink = sink
        self._session: EngineSession | None = None
        self._handed: SolConsole | None = None
        self._saved_keepalive: dict[str, Any] | None = None
        self._ended: str | None = None
        super().__init__(target, password, **kwargs)
        if self._session is not None:
            self._engine.add(self._session)

    # ---- hand-over (pump thread) -----------------------------------------------------------
    def _on_event(self, kind: str, text: str) -> None:
        if kind == "active" and self._session is None:
            try:
                self._take_over()
            except Exception as exc:  # never into pyghmi's loop
                log.exception("SOL engine hand-over failed")
                super()._on_event("error", f"SOL engine hand-over failed: {exc}")
                return
        super()._on_event(kind, text)

    def _find_console(self) -> SolConsole:
        for console in list(self._pump.consoles):
            if console.on_data == self._on_data:
                return console
        raise RuntimeError("no console for this transport")

    def _take_over(self) -> None:
        console = self._find_console()
        sess = console.ipmi_session
        sess.sol_handler = None
        sess.unregister_keepalive(console.keepaliveid)
        console.keepaliveid = None
        self._pump.consoles.discard(console)
        with pyghmi_util.protect(pyghmi_session.KEEPALIVE_SESSIONS):
            self._saved_keepalive = pyghmi_session.Session.keepalive_sessions.pop(sess, None)
        _leave_pyghmi(sess.socket)
        live = console.liveness
        channel = SolChannel(
            console.maxoutcount,
            SolTiming(live.retry_interval, live.retries, live.keepalive),
        )
        self._handed = console
        self._session = EngineSession(
            sess.socket,
            sess.sockaddr,
            RmcpPlusCodec(_keys(sess)),
            channel,
            self._sink or self._on_data,
            self._engine_end,
            name=self.name,
            rqseq=int(getattr(sess, "seqlun", 0)),
        )

    def _give_back(self) -> None:
        """Pump thread: the session returns to pyghmi, which then deactivates and logs out."""
        console, session = self._handed, self._session
        if console is None or session is None:
            return
        sess = console.ipmi_session
        sess.sequencenumber = session.codec.seq
        sess.remseqnumber = session.codec.remote_seq
        sess.seqlun = (session.rqseq + 1) & 0x3F
        if sess.socket not in pyghmi_session.iosockets:
            pyghmi_session.iosockets.append(sess.socket)
        if self._saved_keepalive is not None:
            with pyghmi_util.protect(pyghmi_session.KEEPALIVE_SESSIONS):
                pyghmi_session.Session.keepalive_sessions[sess] = self._saved_keepalive
        if self._ended is not None:
            console.broken = True
            if session.channel.deactivated:
                console.activated = False
        console.shutdown()

    # ---- engine thread ---------------------------------------------------------------------
    def _engine_end(self, session: EngineSession, reason: str) -> None:
        self._ended = reason
        closed = SolDeactivated if session.channel.deactivated else SolSessionLost
        with self._cond:
            if self._error is None:
                self._error = closed(self.target.name, reason)
            self._cond.notify_all()

    # ---- Transport -------------------------------------------------------------------------
    @property
    def engine_session(self) -> EngineSession | None:
        return self._session

    @property
    def last_heard(self) -> float:
        if self._session is None:
            return super().last_heard
        return time.time() - (time.monotonic() - self._session.channel.last_heard)

    def write(self, data: bytes) -> None:
        with self._cond:
            if self._error is not None or self._closed:
                raise self._eof()
        assert self._session is not None
        self._session.write(data)

    def send_break(self) -> None:
        with self._cond:
            if self._error is not None or self._closed:
                raise self._eof()
        assert self._session is not None
        self._session.send_break()

    def pending_output(self) -> int:
        return 0 if self._session is None else self._session.pending_output()

    def _teardown(self) -> None:
        session = self._session
        if session is not None and not self._engine.remove(session):
            log.warning("%s: the SOL engine did not let go of the session", self.name)
        if self._handed is None:
            super()._teardown()
            return
        try:
            self._pump.call(self._give_back, 15)
        except TimeoutError:
            log.warning("%s: logout did not finish", self.target.name)
        except ConsoleClosed:
            pass


def open_ipmi_engine(
    url: str,
    *,
    password_source: PasswordSource,
    sink: Sink | None = None,
    engine: SolEngine | None = None,
    kg_file: str | None = None,
    steal: bool = False,
    connect_timeout: float = CONNECT_TIMEOUT,
    liveness: Liveness | None = None,
) -> EngineSolTransport:
    """:func:`solcap.transports.ipmi.open_ipmi` with the SOL data path in a :class:`SolEngine`."""
    target = IpmiTarget.parse(url)
    password = password_source.get(f"IPMI password for {target.user}@{target.name}")
    kg = kg_source(kg_file).get_optional()
    return EngineSolTransport(
        target,
        password,
        engine=engine,
        sink=sink,
        kg=kg,
        steal=steal,
        connect_timeout=connect_timeout,
        liveness=liveness,
    )
