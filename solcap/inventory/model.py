"""The inventory's data model: validated, immutable hosts and the field vocabulary shared by
every reader (names, BMC variable names, cipher suites)."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from solcap.config.access import AccessSpec
from solcap.config.credentials import SecretRef
from solcap.config.triggers import TriggerSpec
from solcap.errors import UsageError
from solcap.transports.serialport import LineSettings

Scalar = str | int | float | bool
log = logging.getLogger(__name__)

#: BMC address variables of real Ansible inventories, in precedence order, each with the
#: user and password variables that go with it. ``solcap_bmc`` comes first, then the names
#: given with ``--bmc-var``, then these. A dotted name reads into a mapping variable.
BMC_VARS: tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...] = (
    ("solcap_bmc", ("solcap_bmc_user",), ("solcap_password",)),
    # Kayobe (OpenStack), OpenShift IPI bare metal playbooks, many site inventories.
    ("ipmi_address", ("ipmi_username", "ipmi_user"), ("ipmi_password",)),
    ("bmc_address", ("bmc_username", "bmc_user"), ("bmc_password",)),
    ("bmc_ip", ("bmc_username", "bmc_user"), ("bmc_password",)),
    ("bmc_addr", ("bmc_username", "bmc_user"), ("bmc_password",)),
    # OpenStack Ironic / Bifrost node definitions.
    (
        "driver_info.ipmi_address",
        ("driver_info.ipmi_username",),
        ("driver_info.ipmi_password",),
    ),
)
DOTTED_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*$")
Reader = Literal["auto", "ansible-inventory", "static"]
READERS: tuple[Reader, ...] = ("auto", "ansible-inventory", "static")

CIPHER_SUITES = (3, 17)
#: None: negotiate as ipmitool does (the strongest of 17 and 3 the BMC offers).
DEFAULT_CIPHER: int | None = None
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
LABEL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:=/-]*$")
VAR_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
ENV_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
HOSTPORT = re.compile(
    r"^(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<host>[A-Za-z0-9][A-Za-z0-9.-]*))(?::(?P<port>\d+))?$"
)
SECRET_HINT = (
    "inline passwords are refused: a password in an inventory leaks through files, backups "
    "and version control, and through argv (/proc/PID/cmdline) when passed on; "
    "use env:NAME (an environment variable) or file:PATH (a 0600 file)"
)

#: Fields a host may set; groups and ``defaults`` may set the shared ones.
SHARED = frozenset(
    {"bmc_user", "password", "kg", "cipher", "line", "ssh_user", "ssh_key", "known_hosts"}
    | {"profile", "labels", "vars"}
    | {"via", "console_server", "on", "access"}
)
HOST_FIELDS = SHARED | {"bmc", "serial", "ssh", "groups", "console", "console_name"}
GROUP_FIELDS = SHARED | {"hosts"}
TOP_FIELDS = frozenset({"defaults", "groups", "hosts"})


@dataclass(frozen=True)
class BmcAddress:
    """``ipmi://user@host[:port]`` (lanplus)."""

    host: str
    user: str | None = None
    port: int = 623

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        user = f"{self.user}@" if self.user else ""
        port = "" if self.port == 623 else f":{self.port}"
        return f"ipmi://{user}{host}{port}"


@dataclass(frozen=True)
class SshTarget:
    """Dom0 over SSH: ``ssh://user@host:port`` plus key file and known_hosts file."""

    host: str
    user: str | None = None
    port: int = 22
    key_file: str | None = None
    known_hosts: str | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        user = f"{self.user}@" if self.user else ""
        return f"ssh://{user}{host}:{self.port}"


@dataclass(frozen=True)
class Host:
    """One validated host. ``origin`` is ``file:line`` where it was defined."""

    name: str
    origin: str
    bmc: BmcAddress | None = None
    password: SecretRef | None = None
    kg: SecretRef | None = None
    cipher: int | None = DEFAULT_CIPHER
    serial: str | None = None
    line: LineSettings | None = None
    ssh: SshTarget | None = None
    #: A console target given directly (``console:``) or built from ``via:`` (an ``exec:``
    #: of conserver's or ConMan's client); it takes precedence over serial and BMC SOL.
    console: str | None = None
    profile: str | None = None
    labels: frozenset[str] = frozenset()
    groups: tuple[str, ...] = ()
    vars: Mapping[str, Scalar] = field(default_factory=dict)
    #: ``on:`` triggers for ``solcap serve`` (the most specific layer that sets ``on`` wins).
    triggers: tuple[TriggerSpec, ...] = ()
    #: ``access:`` for ``solcap serve``: who may write and who may watch (None: the server's
    #: ``--group``/``--spy-group``).
    access: AccessSpec | None = None

    @property
    def bmc_url(self) -> str | None:
        """The BMC address with the pinned cipher suite, if any (``?cipher=3``)."""
        if self.bmc is None:
            return None
        return self.bmc.url + (f"?cipher={self.cipher}" if self.cipher is not None else "")

    @property
    def console_url(self) -> str | None:
        """Where the console is read: ``console``/``via`` if given, else the serial device,
        else the BMC's SOL."""
        if self.console is not None:
            return self.console
        if self.serial is not None:
            return self.serial
        return self.bmc.url if self.bmc is not None else None


@dataclass(frozen=True)
class Inventory:
    """A loaded inventory: hosts in file order."""

    path: str
    hosts: tuple[Host, ...]

    def names(self) -> list[str]:
        return [h.name for h in self.hosts]

    def host(self, name: str) -> Host:
        for host in self.hosts:
            if host.name == name:
                return host
        raise UsageError(f"{self.path}: no host named {name!r}")
