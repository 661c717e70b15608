"""What an ``ipmi://`` address names and how liveness is timed; no pyghmi here.

Kept apart so that checking an address (every command does, before anything is sent) does
not load pyghmi, and so the SOL engine and the pyghmi path share one definition.
"""

from __future__ import annotations

import dataclasses
import urllib.parse

from solcap.config.limits import split_url
from solcap.errors import ConsoleBusy, ConsoleClosed, UsageError

DEFAULT_PORT = 623
#: The only suites we speak; 0 (no authentication) and the unencrypted ones are refused.
SUITES = (17, 3)
#: (authentication, integrity, confidentiality) algorithm numbers per suite.
SUITE_ALGOS = {17: (3, 4, 1), 3: (1, 1, 1)}
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
#: Seconds pyghmi first waits for a RAKP answer (0.5-1 s); each time a BMC answers a RAKP
#: too late for that, the next attempt waits one second longer, up to this.
RAKP_WAIT_MAX = 4.0
#: A login the BMC is still answering is not cut off at the connect timeout: while its last
#: answer is at most LOGIN_QUIET seconds old the login may go on, up to LOGIN_GRACE times the
#: connect timeout in all. A silent BMC still fails at the connect timeout itself.
LOGIN_QUIET = 5.0
LOGIN_GRACE = 2.0


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
