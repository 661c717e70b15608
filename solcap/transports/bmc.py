"""Chassis power control: the library call behind ``solcap power``.

Independent of pyghmi: the IPMI specifics live in :mod:`solcap.transports.ipmi.power`, which is
imported only when a power action is actually requested (so serial-only users never load
pyghmi). The password comes from a :class:`~solcap.config.credentials.PasswordSource`, never argv.

    >>> power("ipmi://admin@bmc1", "cycle", password_source=password_source())  # doctest: +SKIP
    'on'
"""

from __future__ import annotations

from dataclasses import dataclass

from solcap.config.credentials import PasswordSource, kg_source
from solcap.errors import UsageError

__all__ = ["POWER_ACTIONS", "SolConfig", "line_rate_warning", "power", "sol_config"]

#: Actions the CLI offers; the library also takes "shutdown" (ask the OS to power off).
POWER_ACTIONS = ("status", "on", "off", "cycle", "reset")
_LIBRARY_ACTIONS = (*POWER_ACTIONS, "shutdown")


def power(
    target_url: str,
    action: str,
    *,
    password_source: PasswordSource,
    kg_file: str | None = None,
    kg: PasswordSource | None = None,
    wait: float = 30.0,
    connect_timeout: float = 10.0,
) -> str:
    """Do ``action`` on the BMC at ``ipmi://user@bmc[:port][?cipher=17|3]``; return the state.

    The returned state ("on" or "off") is read after the action: on/off/shutdown wait up to
    ``wait`` seconds for it to follow. Raises UsageError for a bad address or action (nothing
    sent), ConnectError when the BMC cannot be reached or refuses the login, TargetError when
    it refuses the command.
    """
    if action not in _LIBRARY_ACTIONS:
        raise UsageError(f"unknown power action {action!r}; known: {', '.join(_LIBRARY_ACTIONS)}")
    if not target_url.lower().startswith("ipmi://"):
        raise UsageError(f"{target_url}: power control needs an ipmi://user@bmc address")
    # Imported here: pyghmi is loaded only by those who use IPMI.
    from solcap.transports.ipmi import IpmiTarget
    from solcap.transports.ipmi.power import power_action

    target = IpmiTarget.parse(target_url)
    password = password_source.get(f"IPMI password for {target.user}@{target.name}")
    key = (kg if kg is not None else kg_source(kg_file)).get_optional()
    return power_action(
        target, password, action, kg=key, wait=wait, connect_timeout=connect_timeout
    )


#: IPMI v2.0 SOL bit-rate codes (parameters 5 and 6, low nibble) in bits per second.
_SOL_BIT_RATES = {6: 9600, 7: 19200, 8: 38400, 9: 57600, 10: 115200}


@dataclass(frozen=True)
class SolConfig:
    """What a BMC says about its SOL: enabled, and the serial bit rate it runs the port at."""

    enabled: bool | None
    bit_rate: int | None  # the volatile (current) rate, else the non-volatile one


def sol_config(
    target_url: str,
    *,
    password_source: PasswordSource,
    kg_file: str | None = None,
    kg: PasswordSource | None = None,
    connect_timeout: float = 10.0,
) -> SolConfig:
    """Read the BMC's SOL configuration (Get SOL Configuration Parameters 1, 5 and 6)."""
    if not target_url.lower().startswith("ipmi://"):
        raise UsageError(f"{target_url}: SOL configuration needs an ipmi://user@bmc address")
    from solcap.transports.ipmi import IpmiTarget
    from solcap.transports.ipmi.power import sol_parameters

    target = IpmiTarget.parse(target_url)
    password = password_source.get(f"IPMI password for {target.user}@{target.name}")
    key = (kg if kg is not None else kg_source(kg_file)).get_optional()
    values = sol_parameters(target, password, (1, 5, 6), kg=key, connect_timeout=connect_timeout)
    enable = values.get(1)
    rate = values.get(6) or values.get(5)
    return SolConfig(
        enabled=bool(enable[0] & 1) if enable else None,
        bit_rate=_SOL_BIT_RATES.get(rate[0] & 0x0F) if rate else None,
    )


def line_rate_warning(config: SolConfig, baud: int, *, host: str, profile: str) -> str | None:
    """A one-line warning when the BMC's SOL bit rate differs from the profile's console speed.

    The BMC's UART runs at its own rate; when Xen's ``com1=`` (the profile) says otherwise,
    the SOL session carries garbage or nothing, which looks exactly like a dead host.
    """
    if config.enabled is False:
        return f"{host}: the BMC reports SOL disabled (enable it: ipmitool sol set enabled true)"
    if config.bit_rate is not None and config.bit_rate != baud:
        return (
            f"{host}: the BMC runs SOL at {config.bit_rate} bit/s but profile {profile} sets the "
            f"console to {baud}; Xen's output will be garbled (fix: ipmitool sol set "
            f"non-volatile-bit-rate {baud / 1000:g}, or use a profile for {config.bit_rate})"
        )
    return None
