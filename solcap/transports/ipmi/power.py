"""Chassis power over IPMI lanplus through pyghmi; every pyghmi specific of power lives here.

Power control needs none of SOL's machinery, only one short authenticated session, but it must
obey the same rules as SOL (:mod:`solcap.transports.ipmi`):

* pyghmi's state is process-global and only one thread may pump it, so every pyghmi call runs
  in the pump thread (:mod:`~solcap.transports.ipmi.ioloop`, ``Pump.call``); a ``solcap
  console`` with SOL open can power cycle through the same process without two threads racing
  inside pyghmi;
* the session is :mod:`~solcap.transports.ipmi.session`'s ``OwnSession``: a fresh login on its
  own socket that proposes exactly one cipher suite, chosen as for SOL by ``negotiate``
  (``?cipher=`` pins it), and checks what the BMC accepted;
* pyghmi's ``IpmiException`` and its error dicts become :class:`~solcap.errors.ConnectError`
  (login) or :class:`~solcap.errors.TargetError` (the command), naming the BMC;
* the session is logged out on every path, success or failure: BMCs have few session slots.

``pyghmi.ipmi.command.Command`` has no "cycle" (chassis control 02h); it is sent raw here.
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import pyghmi.exceptions as pyghmi_exc
import pyghmi.ipmi.command as pyghmi_command

from solcap.errors import ConnectError, TargetError
from solcap.transports.ipmi.ioloop import Pump, PumpTimeout
from solcap.transports.ipmi.session import (
    OwnSession,
    await_login,
    login_error,
    negotiate,
    pinned_suite,
)
from solcap.transports.ipmi.target import CONNECT_TIMEOUT, LOGIN_GRACE, IpmiTarget

__all__ = ["ACTIONS", "PowerSession", "power_action", "sol_parameters"]

#: What :func:`power_action` accepts; "status" changes nothing.
ACTIONS = ("status", "on", "off", "cycle", "reset", "shutdown")
#: Chassis Control (netfn 00h, command 02h) data byte for power cycle.
_CHASSIS_CYCLE = 2
#: Seconds to wait for the state to follow an on/off/shutdown request.
DEFAULT_WAIT = 30.0
#: Seconds between two reads of the power state while waiting (pyghmi's own wait: 1 s).
POLL_INTERVAL = 1.0
#: The actions that wait, and the state each waits for.
_WAITED = {"on": "on", "off": "off", "shutdown": "off"}

T = TypeVar("T")


class _Command(pyghmi_command.Command):  # type: ignore[misc]
    """pyghmi's Command on a session we made (its own constructor makes pyghmi's kind)."""

    def __init__(self, session: OwnSession) -> None:
        # Deliberately not Command.__init__: it would open a shared, suite-guessing session.
        self.onlogon = None
        self.bmc = session.bmc
        self._sdrcachedir = None
        self._sdr = None
        self._oem = None
        self._oemknown = False
        self._netchannel = None
        self._ipv6support = None
        self.certverify = None
        self.kwargs: dict[str, Any] = {}
        self.ipmi_session = session


class PowerSession:
    """One logged-in session for chassis power; use as a context manager (logs out on exit)."""

    def __init__(
        self,
        target: IpmiTarget,
        password: str,
        *,
        kg: str | None = None,
        connect_timeout: float = CONNECT_TIMEOUT,
    ) -> None:
        self.target = target
        self._pump = Pump.get()
        self._session: OwnSession | None = None
        self._password = password
        self._kg = kg
        # One bound for the whole negotiation (query and every suite tried), not per login.
        self._deadline = time.monotonic() + connect_timeout
        self._grace = connect_timeout * (LOGIN_GRACE - 1)  # for a BMC still answering
        self._asked = target
        try:
            session, self.cipher_choice = negotiate(target, self._login)
        except BaseException:  # Ctrl-C or SIGTERM mid-login too: free the BMC's session slot
            self.close()
            raise
        finally:
            del self._password, self._kg
        self._session = session
        self.target = dataclasses.replace(target, cipher=self.cipher_choice.suite)
        self._command = _Command(session)

    def _login(self, target: IpmiTarget) -> OwnSession:
        logged_in = threading.Event()
        reply: dict[str, Any] = {}
        password, kg = self._password, self._kg
        connect_timeout = max(0.5, self._deadline - time.monotonic())

        def on_logon(response: dict[str, Any]) -> None:
            # Runs in the pump thread; must never raise into pyghmi's loop.
            if not logged_in.is_set():
                reply.update(response if isinstance(response, dict) else {})
                logged_in.set()

        def make() -> OwnSession:
            return OwnSession(
                target.host, target.user, password, target.port, kg, on_logon,
                pinned_suite(target),
            )  # fmt: skip

        try:
            self._session = self._pump.call(make, connect_timeout, host=target.name)
        except pyghmi_exc.IpmiException as exc:
            raise login_error(self._asked, str(exc) or "timeout") from exc
        except PumpTimeout as exc:
            raise ConnectError(target.name, f"cannot start the session: {exc.message}") from exc
        if not await_login(logged_in.wait, lambda: self._session, connect_timeout, self._grace):
            self.close()
            raise ConnectError(target.name, f"no answer from the BMC on UDP port {target.port}")
        error = reply.get("error")
        if error:
            self.close()
            raise login_error(self._asked, str(error))
        return self._session

    @property
    def negotiated_suite(self) -> int | None:
        """The cipher suite the BMC accepted (17 or 3)."""
        return None if self._session is None else self._session.negotiated_suite

    def _run(self, what: str, fn: Callable[[], T], timeout: float) -> T:
        """Run ``fn`` in the pump thread; pyghmi failures become a TargetError naming the BMC."""
        try:
            result: T = self._pump.call(fn, timeout, host=self.target.name)
        except pyghmi_exc.IpmiException as exc:
            raise TargetError(self.target.name, f"{what} failed: {exc}") from exc
        except PumpTimeout as exc:
            raise TargetError(self.target.name, f"{what}: no answer within {timeout:g} s") from exc
        return result

    def status(self) -> str:
        """``"on"`` or ``"off"``."""

        def get() -> str:
            reply = self._command.get_power()
            return str(reply["powerstate"])

        return self._run("power status", get, 30.0)

    def set(self, action: str, *, wait: float = DEFAULT_WAIT) -> str:
        """Ask for ``action`` (on/off/cycle/reset/shutdown); return the state afterwards.

        on/off/shutdown wait up to ``wait`` seconds for the state to follow, polled once a
        second (:meth:`_await_state`); cycle and reset are momentary, so the state is read
        right after.
        """
        if action not in ACTIONS or action == "status":
            raise ValueError(f"unknown power action {action!r}")
        if action == "cycle":
            self._cycle()
            return self.status()
        started = time.monotonic()

        def set_state() -> dict[str, Any]:
            # wait=False: pyghmi's own wait polls inside this one call, holding the pump (and
            # so the logout of a Ctrl-C) for all of ``wait``; the polling is done below.
            reply: dict[str, Any] = self._command.set_power(action, wait=False)
            return reply

        reply = self._run(f"power {action}", set_state, 30.0)
        state = reply.get("powerstate")
        if state in ("on", "off"):  # already in that state: pyghmi sent nothing
            return str(state)
        if action not in _WAITED:
            return self.status()
        return self._await_state(action, _WAITED[action], started + max(1.0, wait))

    def _await_state(self, action: str, want: str, deadline: float) -> str:
        """Poll until the state is ``want``; past ``deadline`` fail as pyghmi's own wait did.

        Each poll is one short Get Chassis Status in the pump; the pause between polls is
        spent in the calling thread, so a Ctrl-C or SIGTERM there ends the wait at once and
        the logout that follows finds the pump free (pyghmi's wait held it up to ``wait`` s).
        """
        while True:
            time.sleep(max(0.0, min(POLL_INTERVAL, deadline - time.monotonic())))
            if self.status() == want:
                return want
            if time.monotonic() >= deadline:
                raise TargetError(
                    self.target.name,
                    f"power {action} failed: System did not accomplish power state change",
                )

    def sol_parameter(self, param: int, channel: int = 0x0E) -> list[int] | None:
        """Get SOL Configuration Parameters (IPMI v2.0 §26.3): the data bytes, or None.

        Channel 0Eh means "the channel this session is on"; a BMC that refuses it is asked on
        channel 1, where most BMCs put their LAN. None when the BMC does not support ``param``.
        """

        def get(chan: int) -> list[int] | None:
            reply = self._command.raw_command(netfn=0x0C, command=0x22, data=[chan, param, 0, 0])
            if not isinstance(reply, dict) or reply.get("error") or reply.get("code"):
                return None
            data = list(reply.get("data", []))
            return data[1:] if data else None  # data[0] is the parameter revision

        found = self._run("get SOL configuration", lambda: get(channel), 30.0)
        if found is None and channel != 1:
            found = self._run("get SOL configuration", lambda: get(1), 30.0)
        return found

    def _cycle(self) -> None:
        def cycle() -> None:
            reply = self._command.raw_command(netfn=0, command=2, data=[_CHASSIS_CYCLE])
            if isinstance(reply, dict) and reply.get("error"):
                raise pyghmi_exc.IpmiException(reply["error"], code=reply.get("code", 0))

        self._run("power cycle", cycle, 30.0)

    def close(self) -> None:
        """Log out (bounded); safe to call twice and after a failed login."""
        session, self._session = self._session, None
        if session is None:
            return

        def logout() -> None:
            try:
                if session.logged:
                    session.logout()
                elif not session.broken:
                    session._mark_broken()  # a login still in progress: stop its retries
            except Exception:  # pyghmi's logout can trip over its own half-torn state
                pass

        with contextlib.suppress(PumpTimeout):
            self._pump.call(logout, 15.0, host=self.target.name)

    def __enter__(self) -> PowerSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def power_action(
    target: IpmiTarget,
    password: str,
    action: str,
    *,
    kg: str | None = None,
    wait: float = DEFAULT_WAIT,
    connect_timeout: float = CONNECT_TIMEOUT,
) -> str:
    """Log in, do ``action`` (or just read the state for "status"), log out; return the state."""
    started = time.monotonic()
    with PowerSession(target, password, kg=kg, connect_timeout=connect_timeout) as session:
        if action == "status":
            return session.status()
        left = max(1.0, wait - (time.monotonic() - started))
        return session.set(action, wait=left)


def sol_parameters(
    target: IpmiTarget,
    password: str,
    params: tuple[int, ...],
    *,
    kg: str | None = None,
    connect_timeout: float = CONNECT_TIMEOUT,
) -> dict[int, list[int] | None]:
    """Log in, read the SOL configuration parameters ``params``, log out."""
    with PowerSession(target, password, kg=kg, connect_timeout=connect_timeout) as session:
        return {param: session.sol_parameter(param) for param in params}
