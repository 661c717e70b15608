"""The ``ipmi://`` transport: login and activation through pyghmi, SOL data in the engine.

``IpmiSolTransport`` raises in the caller's thread what pyghmi reports as dicts passed to a
data callback (:class:`~solcap.errors.ConnectError`, :class:`SolBusyError`,
:class:`~solcap.errors.ConsoleClosed`), and :meth:`IpmiSolTransport.close` deactivates and
logs out (BMCs have few session slots). Once the payload is active its data path is handed
to the SOL engine (:mod:`solcap.transports.ipmi.engine`) unless ``engine=False`` or
``SOLCAP_SOL_ENGINE=0``; then :class:`~solcap.transports.ipmi.sol.SolConsole` in pyghmi's pump
thread carries it, as before the engine.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from typing import TYPE_CHECKING

import pyghmi.exceptions as pyghmi_exc

from solcap.config.credentials import PasswordSource, kg_source
from solcap.errors import ConnectError, ConsoleClosed, UsageError
from solcap.transports.base import Receiver, Transport
from solcap.transports.ipmi import engine as handover
from solcap.transports.ipmi.ioloop import Pump, PumpTimeout
from solcap.transports.ipmi.session import OwnSession, await_login, login_error, negotiate
from solcap.transports.ipmi.sol import SolConsole
from solcap.transports.ipmi.target import (
    CONNECT_TIMEOUT,
    LOGIN_GRACE,
    SUITES,
    IpmiTarget,
    Liveness,
    SolDeactivated,
    SolSessionLost,
)
from solcap.transports.sol_engine import EngineSession, Sink, SolEngine

if TYPE_CHECKING:
    from solcap.transports.registry import OpenOptions

log = logging.getLogger(__name__)


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
        engine: SolEngine | bool | None = None,
        sink: Sink | None = None,
    ) -> None:
        """``engine``: the :class:`SolEngine` to hand the active session to, True for the
        process's own, False for pyghmi's data path, None for the default (the engine unless
        ``SOLCAP_SOL_ENGINE=0``). ``sink``: with the engine, received bytes go straight to it
        in the engine thread (a recorder's ``feed``) and :meth:`read` only reports the end."""
        self.target = target
        self.name = f"ipmi://{target.user}@{target.name}"
        self._cond = threading.Condition()
        self._buf = bytearray()
        # Held while a chunk is delivered (buffered or pushed), so push_to() cannot slip
        # between a buffered chunk and a pushed one.
        self._rx_lock = threading.Lock()
        self._receiver: Receiver | None = None
        self._error: Exception | None = None
        self._active = False
        self._closed = False
        self._interrupted = False
        self.events: list[tuple[str, str]] = []
        self._engine = handover.choose_engine(engine)
        self._sink = sink if self._engine is not None else None
        self._handover: handover.Handover | None = None
        self._ended: str | None = None
        self._pump = Pump.get()
        self._steal = steal
        self._password = password
        self._kg = kg
        self._liveness = liveness
        # One bound for the whole negotiation (query and every suite tried), not per login.
        self._deadline = time.monotonic() + connect_timeout
        self._grace = connect_timeout * (LOGIN_GRACE - 1)  # for a BMC still answering
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
            if self._engine is not None:
                handover.catch_sol(console)
            pump = self._pump
            console.on_pending = lambda: pump.kick(console)
            pump.consoles.add(console)
            return console

        connect_timeout = max(0.5, self._deadline - time.monotonic())
        try:
            self._console = self._pump.call(make, connect_timeout, host=target.name)
        except PumpTimeout as exc:
            raise ConnectError(target.name, f"cannot start the session: {exc.message}") from exc

        def settled(wait: float) -> bool:
            with self._cond:
                if not self._active and self._error is None:
                    self._cond.wait(wait)
                return self._active or self._error is not None

        def session() -> OwnSession | None:
            console = getattr(self, "_console", None)
            return getattr(console, "ipmi_session", None)

        await_login(settled, session, connect_timeout, self._grace)
        with self._cond:
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
        with self._rx_lock:
            receiver = self._receiver
            if receiver is None:
                with self._cond:
                    self._buf += data
                    self._cond.notify_all()
                return
            try:
                receiver(data)
            except Exception as exc:  # never into the engine's (or pyghmi's) loop
                log.exception("%s: the console's receiver failed", self.name)
                self._receiver_failed(exc)

    def _receiver_failed(self, exc: Exception) -> None:
        """A receiver that raised ends the console (the caller's data would have a hole)."""
        with self._cond:
            if self._error is None:
                self._error = ConsoleClosed(self.target.name, f"receiver failed: {exc}")
            self._cond.notify_all()

    def push_to(self, receiver: Receiver) -> bool:
        """Received bytes go to ``receiver`` in the SOL engine's thread (pyghmi's pump thread
        with ``SOLCAP_SOL_ENGINE=0``), not through :meth:`read`: see :meth:`Transport.push_to`."""
        with self._rx_lock:
            with self._cond:
                held = bytes(self._buf)
                self._buf.clear()
            if held:
                try:
                    receiver(held)
                except Exception as exc:
                    self._receiver_failed(exc)
            self._receiver = receiver
        return True

    def _on_event(self, kind: str, text: str) -> None:
        if kind == "active" and self._engine is not None and self._handover is None:
            try:
                self._take_over()
            except Exception as exc:  # never into pyghmi's loop
                log.exception("SOL engine hand-over failed")
                kind, text = "error", f"SOL engine hand-over failed: {exc}"
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
                        self._error = login_error(self._asked, text)
                self._cond.notify_all()
        except Exception:  # never into pyghmi's loop
            log.exception("SOL event handler failed")

    # ---- the SOL engine (pump thread, then engine thread) ----------------------------------
    def _take_over(self) -> None:
        console = self._console_of_this_attempt()
        self._pump.consoles.discard(console)
        engine = self._engine
        assert engine is not None
        done = handover.take_over(
            console,
            self._sink or self._on_data,
            self._engine_end,
            self.name,
            engine,
        )
        self._handover = done

    def _console_of_this_attempt(self) -> SolConsole:
        for console in list(self._pump.consoles):
            if console.on_data == self._on_data:
                return console
        raise RuntimeError("no console for this transport")

    def _engine_end(self, session: EngineSession, reason: str) -> None:
        self._ended = reason
        closed = SolDeactivated if session.channel.deactivated else SolSessionLost
        with self._cond:
            if self._error is None:
                self._error = closed(self.target.name, reason)
            self._cond.notify_all()

    @property
    def engine_session(self) -> EngineSession | None:
        """The engine's session once the payload is active (None on pyghmi's data path)."""
        return None if self._handover is None else self._handover.session

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
        if self._handover is not None:
            quiet = time.monotonic() - self._handover.session.channel.last_heard
            return time.time() - quiet
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
        if self._handover is not None:
            self._handover.session.write(data)
            return
        try:
            self._console.send_data(data)
        except pyghmi_exc.IpmiException as exc:
            raise self._eof() from exc

    def send_break(self) -> None:
        with self._cond:
            if self._error is not None or self._closed:
                raise self._eof()
        if self._handover is not None:
            self._handover.session.send_break()
            return
        try:
            self._console.send_break()
        except pyghmi_exc.IpmiException as exc:
            raise self._eof() from exc

    def pending_output(self) -> int:
        """Bytes queued for the BMC and not yet acknowledged."""
        if self._handover is not None:
            return self._handover.session.pending_output()
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
        done = self._handover
        if done is not None:
            assert self._engine is not None
            if not self._engine.remove(done.session):
                log.warning("%s: the SOL engine did not let go of the session", self.name)
            try:
                self._pump.call(
                    lambda: handover.give_back(done, self._ended), 15, host=self.target.name
                )
            except PumpTimeout:
                log.warning("%s: logout did not finish", self.target.name)
            except ConsoleClosed:
                pass
            return
        console = getattr(self, "_console", None)
        if console is None:
            return
        self._pump.consoles.discard(console)
        try:
            self._pump.call(console.shutdown, 15, host=self.target.name)
        except PumpTimeout:
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
    engine: SolEngine | bool | None = None,
    sink: Sink | None = None,
) -> IpmiSolTransport:
    """Open SOL at ``ipmi://user@host[:port][?cipher=17|3]`` once (no reconnection); the
    password never comes from argv. For tests and tools that want the bare transport: commands
    open consoles through :func:`solcap.connect.open_console`.

    The Kg key comes from ``kg`` if given, else from ``kg_file`` / ``$IPMI_KGKEY``. ``engine``
    and ``sink``: see :class:`IpmiSolTransport`.
    """
    from solcap.transports.registry import OpenOptions

    target = IpmiTarget.parse(url)
    password = password_source.get(f"IPMI password for {target.user}@{target.name}")
    key = (kg if kg is not None else kg_source(kg_file)).get_optional()
    options = OpenOptions(
        password=password,
        kg=key,
        steal=steal,
        connect_timeout=connect_timeout,
        liveness=liveness,
    )
    return transport_factory(url, options, engine=engine, sink=sink)


def transport_factory(
    url: str,
    options: OpenOptions,
    *,
    engine: SolEngine | bool | None = None,
    sink: Sink | None = None,
) -> IpmiSolTransport:
    """The ``ipmi://`` factory for :mod:`solcap.transports.registry`: one login and activation
    with the options' (already resolved) password and Kg, cipher (over the URL's), steal and
    timeouts. The serial line settings do not apply to SOL: the BMC owns the bit rate.

    This is the one place an :class:`IpmiSolTransport` is made. ``engine`` and ``sink``: see
    :class:`IpmiSolTransport` (the registry passes neither: the engine unless
    ``SOLCAP_SOL_ENGINE=0``).
    """
    target = IpmiTarget.parse(url)
    if options.password is None:
        raise UsageError(
            f"{url}: no BMC password given (open ipmi:// consoles through solcap.connect, "
            "which reads IPMI_PASSWORD, a 0600 file or a prompt)"
        )
    if options.cipher is not None:
        if options.cipher not in SUITES:
            raise UsageError(f"{url}: cipher suite {options.cipher} refused; use 17 or 3")
        target = dataclasses.replace(target, cipher=options.cipher)
    timeout = options.connect_timeout if options.connect_timeout is not None else CONNECT_TIMEOUT
    liveness = options.liveness if isinstance(options.liveness, Liveness) else None
    return IpmiSolTransport(
        target,
        options.password,
        kg=options.kg,
        steal=options.steal,
        connect_timeout=timeout,
        liveness=liveness,
        engine=engine,
        sink=sink,
    )
