"""Chassis power control: the library call behind ``solcap power``.

Independent of pyghmi: the IPMI specifics live in :mod:`solcap.transports.ipmi_power`, which is
imported only when a power action is actually requested (so serial-only users never load
pyghmi). The password comes from a :class:`~solcap.credentials.PasswordSource`, never argv.

    >>> power("ipmi://admin@bmc1", "cycle", password_source=password_source())  # doctest: +SKIP
    'on'
"""

from __future__ import annotations

from solcap.credentials import PasswordSource, kg_source
from solcap.errors import UsageError

__all__ = ["POWER_ACTIONS", "power"]

#: Actions the CLI offers; the library also takes "shutdown" (ask the OS to power off).
POWER_ACTIONS = ("status", "on", "off", "cycle", "reset")
_LIBRARY_ACTIONS = (*POWER_ACTIONS, "shutdown")


def power(
    target_url: str,
    action: str,
    *,
    password_source: PasswordSource,
    kg_file: str | None = None,
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
    from solcap.transports.ipmi_power import power_action

    target = IpmiTarget.parse(target_url)
    password = password_source.get(f"IPMI password for {target.user}@{target.name}")
    kg = kg_source(kg_file).get_optional()
    return power_action(target, password, action, kg=kg, wait=wait, connect_timeout=connect_timeout)
