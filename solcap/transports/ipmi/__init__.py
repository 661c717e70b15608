"""IPMI v2.0 lanplus Serial-over-LAN and chassis power; every pyghmi specific of solcap lives here.

pyghmi speaks RMCP+ well, but a capture tool has to own parts of it before it can trust it.
One job per module:

* :mod:`.target` — the ``ipmi://`` address, liveness timing, the SOL errors (no pyghmi);
* :mod:`.session` — pyghmi's client session owned (a fresh login per socket, one pinned and
  checked cipher suite, random session IDs per attempt) and cipher-suite negotiation;
* :mod:`.ioloop` — pyghmi's I/O loop owned (the one pump thread, epoll, a bounded wait, reads
  of only the ready sockets);
* :mod:`.sol` — the byte-exact SOL state machine on a pyghmi session (:class:`SolConsole`);
* :mod:`.transport` — :class:`IpmiSolTransport`, :func:`open_ipmi`, :func:`transport_factory`;
* :mod:`.engine` — the hand-over of an active session to :mod:`solcap.transports.sol_engine`
  (the default SOL data path; ``SOLCAP_SOL_ENGINE=0`` keeps pyghmi's);
* :mod:`.power` — chassis power and SOL configuration parameters.

Names are loaded on first use, so ``from solcap.transports.ipmi import IpmiTarget`` (an
address check) does not load pyghmi.

Address form: ``ipmi://user@host[:port][?cipher=17|3]`` (no ``cipher``: negotiate).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from solcap.transports.ipmi.power import ACTIONS, PowerSession, power_action, sol_parameters
    from solcap.transports.ipmi.session import (
        CipherChoice,
        CipherRefused,
        negotiate,
        offered_suites,
        pinned_suite,
    )
    from solcap.transports.ipmi.sol import SolConsole
    from solcap.transports.ipmi.target import (
        CONNECT_TIMEOUT,
        DEFAULT_PORT,
        KEEPALIVE_INTERVAL,
        SOL_RETRIES,
        SOL_RETRY_INTERVAL,
        SUITES,
        IpmiTarget,
        Liveness,
        SolBusyError,
        SolDeactivated,
        SolSessionLost,
    )
    from solcap.transports.ipmi.transport import (
        IpmiSolTransport,
        open_ipmi,
        transport_factory,
    )

_WHERE = {
    "ACTIONS": "power",
    "PowerSession": "power",
    "power_action": "power",
    "sol_parameters": "power",
    "CipherChoice": "session",
    "CipherRefused": "session",
    "negotiate": "session",
    "offered_suites": "session",
    "pinned_suite": "session",
    "SolConsole": "sol",
    "CONNECT_TIMEOUT": "target",
    "DEFAULT_PORT": "target",
    "KEEPALIVE_INTERVAL": "target",
    "SOL_RETRIES": "target",
    "SOL_RETRY_INTERVAL": "target",
    "SUITES": "target",
    "IpmiTarget": "target",
    "Liveness": "target",
    "SolBusyError": "target",
    "SolDeactivated": "target",
    "SolSessionLost": "target",
    "IpmiSolTransport": "transport",
    "open_ipmi": "transport",
    "transport_factory": "transport",
}

__all__ = [
    "ACTIONS",
    "CONNECT_TIMEOUT",
    "DEFAULT_PORT",
    "KEEPALIVE_INTERVAL",
    "SOL_RETRIES",
    "SOL_RETRY_INTERVAL",
    "SUITES",
    "CipherChoice",
    "CipherRefused",
    "IpmiSolTransport",
    "IpmiTarget",
    "Liveness",
    "PowerSession",
    "SolBusyError",
    "SolConsole",
    "SolDeactivated",
    "SolSessionLost",
    "negotiate",
    "offered_suites",
    "open_ipmi",
    "pinned_suite",
    "power_action",
    "sol_parameters",
    "transport_factory",
]


def __getattr__(name: str) -> Any:
    where = _WHERE.get(name)
    if where is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{where}"), name)
    globals()[name] = value
    return value
