"""The hand-over of an active pyghmi SOL session to :mod:`solcap.transports.sol_engine`.

:class:`~solcap.transports.ipmi.transport.IpmiSolTransport` logs in, negotiates the cipher
suite, applies Kg and activates the payload with its busy/steal handling through pyghmi. The
moment the BMC has activated the payload, in pyghmi's pump thread, :func:`take_over` moves
the session's SOL data path into a :class:`~solcap.transports.sol_engine.SolEngine`:

* its SOL handler and keepalives are unregistered and its socket leaves pyghmi's socket list,
  so pyghmi's I/O thread stops reading it;
* a SOL packet pyghmi's I/O thread read anyway (one the BMC sent before or with its Activate
  reply, or one read just as the socket left the list) is not dropped: :func:`catch_sol`
  keeps those read before the hand-over and the engine processes them first, in order, and
  any read after it goes to the engine too (:meth:`SolEngine.inject`). Dropping one unACKed
  left its bytes to the BMC's retransmission, which a BMC does only so often;
* its keys (K1, the AES key from K2), session IDs and sequence numbers go into a
  :class:`~solcap.transports.sol_engine.RmcpPlusCodec`, its SOL state into a
  :class:`~solcap.transports.sol_engine.SolChannel`.

On close :func:`give_back` returns the sequence numbers to the pyghmi session, its socket to
the list, and pyghmi deactivates the payload and logs out as before.

pyghmi's socket list keeps its first socket as the I/O thread's wake-up address; a session
holding that one gets a fresh wake-up socket put in its place before it leaves.

``SOLCAP_SOL_ENGINE=0`` in the environment keeps new sessions on pyghmi's data path
(:class:`~solcap.transports.ipmi.sol.SolConsole`), the way solcap captured before the engine.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import socket
import threading
from collections.abc import Callable
from typing import Any

import pyghmi.ipmi.private.session as pyghmi_session
import pyghmi.ipmi.private.util as pyghmi_util

from solcap.transports.ipmi.sol import SolConsole
from solcap.transports.sol_engine import (
    EngineSession,
    RmcpPlusCodec,
    SessionKeys,
    Sink,
    SolChannel,
    SolEngine,
    SolTiming,
)

#: Set to 0 to keep SOL data on pyghmi's path (docs/ipmi.md).
ENGINE_ENV = "SOLCAP_SOL_ENGINE"

_shared: SolEngine | None = None
_shared_lock = threading.Lock()


def shared_engine() -> SolEngine:
    """The process's engine (one thread); made on first use."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = SolEngine()
        return _shared


def engine_default() -> bool:
    """Whether new sessions use the engine: yes unless ``SOLCAP_SOL_ENGINE`` is 0/no/false."""
    return os.environ.get(ENGINE_ENV, "1").strip().lower() not in ("0", "no", "false", "off")


def choose_engine(engine: SolEngine | bool | None) -> SolEngine | None:
    """The engine a new session uses: ``None`` means the environment's default."""
    if engine is None:
        engine = engine_default()
    if engine is True:
        return shared_engine()
    if engine is False:
        return None
    return engine


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


def catch_sol(console: SolConsole) -> None:
    """Before activation (pump thread): SOL packets no handler takes are kept, not dropped,
    in ``console.held_sol``; :func:`take_over` hands them to the engine."""
    held: list[bytes] = []
    console.held_sol = held
    console.ipmi_session.sol_catcher = held.append


@dataclasses.dataclass
class Handover:
    """What :func:`take_over` took from pyghmi, so :func:`give_back` can return it."""

    console: SolConsole
    session: EngineSession
    saved_keepalive: dict[str, Any] | None


def take_over(
    console: SolConsole,
    sink: Sink,
    on_end: Callable[[EngineSession, str], None],
    name: str,
    engine: SolEngine,
) -> Handover:
    """Pump thread: move ``console``'s active session from pyghmi into ``engine``.

    The packets :func:`catch_sol` kept are processed by the engine before it reads the
    socket, and SOL packets pyghmi still reads go to the engine from now on."""
    sess = console.ipmi_session
    sess.sol_handler = None
    sess.unregister_keepalive(console.keepaliveid)
    console.keepaliveid = None
    with pyghmi_util.protect(pyghmi_session.KEEPALIVE_SESSIONS):
        saved = pyghmi_session.Session.keepalive_sessions.pop(sess, None)
    _leave_pyghmi(sess.socket)
    live = console.liveness
    channel = SolChannel(
        console.maxoutcount,
        SolTiming(live.retry_interval, live.retries, live.keepalive),
    )
    session = EngineSession(
        sess.socket,
        sess.sockaddr,
        RmcpPlusCodec(_keys(sess)),
        channel,
        sink,
        on_end,
        name=name,
        rqseq=int(getattr(sess, "seqlun", 0)),
    )
    held = console.held_sol
    if held is not None:
        # Read by pyghmi's I/O thread but not processed yet: ours go first, in order.
        # The I/O thread may append meanwhile: take only what is there, leave the rest.
        queue = sess.pktqueue
        keep = []
        for _ in range(len(queue)):
            entry = queue.popleft()
            if sess.own_sol_packet(entry[0], entry[1]):
                held.append(bytes(entry[0]))
            else:
                keep.append(entry)
        queue.extendleft(reversed(keep))
    if held:
        session.held = list(held)
        held.clear()
    console.held_sol = None
    # Same thread as pyghmi's packet processing: nothing is processed between these lines.
    sess.sol_catcher = lambda packet: engine.inject(session, packet)
    engine.add(session)
    return Handover(console, session, saved)


def give_back(handover: Handover, ended: str | None) -> None:
    """Pump thread: the session returns to pyghmi, which then deactivates and logs out."""
    console, session = handover.console, handover.session
    sess = console.ipmi_session
    sess.sol_catcher = None
    sess.sequencenumber = session.codec.seq
    sess.remseqnumber = session.codec.remote_seq
    sess.seqlun = (session.rqseq + 1) & 0x3F
    if sess.socket not in pyghmi_session.iosockets:
        pyghmi_session.iosockets.append(sess.socket)
    if handover.saved_keepalive is not None:
        with pyghmi_util.protect(pyghmi_session.KEEPALIVE_SESSIONS):
            pyghmi_session.Session.keepalive_sessions[sess] = handover.saved_keepalive
    if ended is not None:
        console.broken = True
        if session.channel.deactivated:
            console.activated = False
    console.shutdown()
