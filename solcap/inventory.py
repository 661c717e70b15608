"""Inventories: which hosts exist, how to reach their consoles, BMCs and Dom0s.

Two sources, one result (a tuple of validated, immutable :class:`Host` objects):

* solcap's own format, YAML or TOML (``defaults``, ``groups``, ``hosts``; docs/inventory.md);
* Ansible inventories, mapping ``ansible_host``/``ansible_user``/``ansible_port`` to the Dom0
  SSH target, ``solcap_*`` vars to solcap's fields and the BMC variable names found in real
  inventories (:data:`BMC_VARS`: Kayobe's and OpenShift's ``ipmi_address``, ``bmc_address``,
  Ironic's ``driver_info.ipmi_address`` …) to the BMC. Where ``ansible-inventory`` is
  installed it reads them (``--list``: Ansible's own precedence, dynamic inventory plugins and
  scripts; Jinja and vaulted values arrive unevaluated, as references); the built-in static
  reader (YAML or INI: groups, ``children``, host and group vars) is the fallback.

Everything is checked before any host is contacted, and every error is one line naming
``file:line:column``, the host (or group) and the field. Secrets are *references* only
(``env:NAME`` or ``file:PATH``): a password written into an inventory ends up in backups, in
version control and, once passed on, in ``/proc/PID/cmdline`` — so it is refused.
"""

from __future__ import annotations

import ast
import fnmatch
import hashlib
import json
import logging
import os
import re
import shlex
import shutil
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from solcap.access import AccessSpec, parse_access
from solcap.credentials import SecretRef as SecretRef  # re-exported: its old home
from solcap.docload import Doc, Key, LocatedConfigError, Pos, kind_of, load_file
from solcap.errors import ConfigError, UsageError
from solcap.limits import MAX_HOSTS, MAX_LINE, read_text
from solcap.transports.serialport import LineSettings
from solcap.triggers import TriggerSpec, parse_triggers

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
_DOTTED_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*$")
Reader = Literal["auto", "ansible-inventory", "static"]
READERS: tuple[Reader, ...] = ("auto", "ansible-inventory", "static")

CIPHER_SUITES = (3, 17)
#: None: negotiate as ipmitool does (the strongest of 17 and 3 the BMC offers).
DEFAULT_CIPHER: int | None = None
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_LABEL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:=/-]*$")
_VAR_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_ENV_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_HOSTPORT = re.compile(
    r"^(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<host>[A-Za-z0-9][A-Za-z0-9.-]*))(?::(?P<port>\d+))?$"
)
_SECRET_HINT = (
    "inline passwords are refused: a password in an inventory leaks through files, backups "
    "and version control, and through argv (/proc/PID/cmdline) when passed on; "
    "use env:NAME (an environment variable) or file:PATH (a 0600 file)"
)

#: Fields a host may set; groups and ``defaults`` may set the shared ones.
_SHARED = frozenset(
    {"bmc_user", "password", "kg", "cipher", "line", "ssh_user", "ssh_key", "known_hosts"}
    | {"profile", "labels", "vars"}
    | {"via", "console_server", "on", "access"}
)
_HOST_FIELDS = _SHARED | {"bmc", "serial", "ssh", "groups", "console", "console_name"}
_GROUP_FIELDS = _SHARED | {"hosts"}
_TOP_FIELDS = frozenset({"defaults", "groups", "hosts"})


# --------------------------------------------------------------------------- value types


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


# --------------------------------------------------------------------------- field checks


class _Where:
    """Where a value came from, to build an error that points at it."""

    def __init__(self, path: str, pos: Pos | None, field: str) -> None:
        self.path = path
        self.pos = pos
        self.field = field

    def error(self, message: str) -> LocatedConfigError:
        return LocatedConfigError(
            self.path,
            message,
            line=self.pos.line if self.pos else None,
            column=self.pos.column if self.pos else None,
            field=self.field,
        )


def _want_str(value: Any, where: _Where) -> str:
    if not isinstance(value, str):
        raise where.error(f"expected a string, got {kind_of(value)}")
    if not value.strip():
        raise where.error("must not be empty")
    return value


def _want_int(value: Any, where: _Where, *, coerce: bool = False) -> int:
    if coerce and isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int):
        raise where.error(f"expected an integer, got {kind_of(value)}")
    return value


def parse_secret(value: Any, where: _Where) -> SecretRef:
    """``env:NAME`` / ``file:PATH``; anything else is an inline secret and refused."""
    if not isinstance(value, str):
        raise where.error(f"expected env:NAME or file:PATH, got {kind_of(value)}; {_SECRET_HINT}")
    if value.startswith("env:"):
        name = value[4:]
        if not _ENV_RE.match(name):
            raise where.error(f"env:{name}: not a valid environment variable name")
        return SecretRef("env", name)
    if value.startswith("file:"):
        path = value[5:]
        if not path.strip():
            raise where.error("file: needs a path, e.g. file:~/.config/solcap/bmc.pw")
        return SecretRef("file", path)
    raise where.error(_SECRET_HINT)


def _port(text: str | None, default: int, where: _Where) -> int:
    if text is None:
        return default
    port = int(text)
    if not 0 < port < 65536:
        raise where.error(f"port {port} is out of range 1..65535")
    return port


def _split_url(value: str, scheme: str, where: _Where) -> tuple[str | None, str, str | None]:
    """``scheme://[user@]host[:port]`` → (user, host, port text)."""
    rest = value[len(scheme) + 3 :] if value.startswith(f"{scheme}://") else value
    if "://" in rest:
        raise where.error(f"expected {scheme}://[user@]host[:port], got {value!r}")
    rest = rest.rstrip("/")
    user: str | None = None
    if "@" in rest:
        user, rest = rest.rsplit("@", 1)
        if ":" in user:
            raise where.error(f"a password in the {scheme}:// address is refused; {_SECRET_HINT}")
        if not user:
            raise where.error(f"empty user name in {value!r}")
    m = _HOSTPORT.match(rest)
    if m is None:
        raise where.error(f"expected {scheme}://[user@]host[:port], got {value!r}")
    return user, m.group("v6") or m.group("host"), m.group("port")


def parse_bmc(
    value: Any, where: _Where, *, user: str | None = None, port: int | None = None
) -> BmcAddress:
    """``ipmi://user@host[:port]`` or a bare host name (the user then comes from bmc_user)."""
    text = _want_str(value, where)
    if "://" in text and not text.startswith("ipmi://"):
        raise where.error(f"expected ipmi://[user@]host[:port], got {text!r}")
    url_user, host, port_text = _split_url(text, "ipmi", where)
    return BmcAddress(host=host, user=url_user or user, port=_port(port_text, port or 623, where))


def parse_ssh(
    value: Any, where: _Where, *, user: str | None, key_file: str | None, known_hosts: str | None
) -> SshTarget:
    """``ssh://user@host[:port]`` or a bare host."""
    text = _want_str(value, where)
    if "://" in text and not text.startswith("ssh://"):
        raise where.error(f"expected ssh://[user@]host[:port], got {text!r}")
    url_user, host, port_text = _split_url(text, "ssh", where)
    return SshTarget(
        host=host,
        user=url_user or user,
        port=_port(port_text, 22, where),
        key_file=key_file,
        known_hosts=known_hosts,
    )


def parse_serial(value: Any, where: _Where) -> str:
    """``serial:///dev/ttyS0`` or an absolute device path."""
    text = _want_str(value, where)
    if text.startswith("serial://"):
        if not text[len("serial://") :].startswith("/"):
            raise where.error(f"expected serial:///dev/DEVICE, got {text!r}")
        return text
    if not text.startswith("/"):
        raise where.error(f"expected serial:///dev/ttyS0 or an absolute device path, got {text!r}")
    return text


def parse_console(name: str, merged: Mapping[str, Any], wheres: Mapping[str, _Where]) -> str | None:
    """``console: exec:…|ssh+FLAVOUR://…`` as given, or the ``exec:`` that ``via:
    conserver|conman`` (+ ``console_server``, ``console_name``) builds; checked now (quoting,
    secrets in argv, BMC SSH options), before any host is contacted."""
    from solcap.transports import bmcssh, execpty  # lazily: paramiko only when used

    for text_field in ("console", "via", "console_server", "console_name"):
        if text_field in merged:
            _want_str(merged[text_field], wheres[text_field])
    if "console" in merged and "via" in merged:
        raise wheres["via"].error("give console or via, not both")
    try:
        if "console" in merged:
            target = str(merged["console"])
            if target.startswith("exec:"):
                execpty.parse_exec(target)
            elif target.startswith("ssh+"):
                bmcssh.BmcSshSpec.parse(target)
            else:
                raise UsageError(
                    f"expected exec:CMD or ssh+FLAVOUR://… (a device goes in serial:, "
                    f"a BMC's SOL in bmc:), got {target!r}"
                )
            return target
        if "via" in merged:
            target = execpty.via_command(
                str(merged["via"]),
                str(merged.get("console_name", name)),
                merged.get("console_server"),
            )
            execpty.parse_exec(target)
            return target
    except UsageError as exc:
        where = wheres["console"] if "console" in merged else wheres["via"]
        raise where.error(exc.one_line()) from exc
    for orphan in ("console_server", "console_name"):
        if orphan in merged:
            raise wheres[orphan].error(f"{orphan} applies with via: conserver|conman only")
    return None


def parse_cipher(value: Any, where: _Where, *, coerce: bool = False) -> int:
    """Cipher suite 3 or 17; 0 (no authentication) and the rest are refused."""
    suite = _want_int(value, where, coerce=coerce)
    if suite == 0:
        raise where.error(
            "cipher suite 0 means no authentication at all (CVE-2013-4782): anyone on the "
            "network could drive the console; use 17 (or 3 for older BMCs)"
        )
    if suite not in CIPHER_SUITES:
        raise where.error(f"cipher suite {suite} is not supported: use 17 or 3")
    return suite


def parse_line(value: Any, where: _Where) -> LineSettings:
    text = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
    text = _want_str(text, where)
    try:
        return LineSettings.parse(text)
    except UsageError as exc:
        raise where.error(str(exc)) from exc


def parse_labels(value: Any, where: _Where) -> frozenset[str]:
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    if not isinstance(value, list):
        raise where.error(f"expected a list of labels, got {kind_of(value)}")
    for label in value:
        if not isinstance(label, str) or not _LABEL_RE.match(label):
            raise where.error(f"{label!r}: a label is letters, digits and . _ : = / -")
    return frozenset(value)


def parse_vars(
    value: Any, where: _Where, doc: Doc | None = None, key: Key = ()
) -> dict[str, Scalar]:
    if not isinstance(value, dict):
        raise where.error(f"expected a mapping of variables, got {kind_of(value)}")
    out: dict[str, Scalar] = {}
    for name, item in value.items():
        sub = _Where(
            where.path, doc.pos((*key, name)) if doc else where.pos, f"{where.field}.{name}"
        )
        if not _VAR_RE.match(name):
            raise sub.error("a variable name is letters, digits and '_', not starting with a digit")
        if item is None or isinstance(item, (list, dict)):
            raise sub.error(f"a variable must be a string, number or boolean, got {kind_of(item)}")
        out[name] = item
    return out


def check_profile(
    name: Any, where: _Where, profile_dirs: Sequence[str | os.PathLike[str]] | None
) -> str:
    """The profile must exist (and be valid) before anything runs."""
    from solcap.profiles import load_profile  # profiles import nothing of ours; keep it lazy

    text = _want_str(name, where)
    try:
        load_profile(text, profile_dirs)
    except ConfigError as exc:
        raise where.error(f"profile {text!r} is invalid: {exc.one_line()}") from exc
    except UsageError as exc:
        raise where.error(exc.one_line()) from exc
    return text


# --------------------------------------------------------------------------- solcap format


@dataclass
class _Layer:
    """One validated layer of settings (defaults, a group, or the host itself)."""

    values: dict[str, Any] = field(default_factory=dict)
    wheres: dict[str, _Where] = field(default_factory=dict)


def _layer(doc: Doc, key: Key, data: Any, allowed: frozenset[str], label: str) -> _Layer:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise doc.error(key, f"expected a mapping, got {kind_of(data)}", field=label)
    layer = _Layer()
    for name, value in data.items():
        where = _Where(doc.path, doc.pos((*key, name)), f"{label}.{name}")
        if name not in allowed:
            choices = ", ".join(sorted(allowed))
            raise _Where(doc.path, doc.pos((*key, name), of_key=True), where.field).error(
                f"unknown field (allowed: {choices})"
            )
        layer.wheres[name] = where
        if name in ("password", "kg"):
            layer.values[name] = parse_secret(value, where)
        elif name == "cipher":
            layer.values[name] = parse_cipher(value, where)
        elif name == "line":
            layer.values[name] = parse_line(value, where)
        elif name == "labels":
            layer.values[name] = parse_labels(value, where)
        elif name == "vars":
            layer.values[name] = parse_vars(value, where, doc, (*key, name))
        elif name == "on":
            layer.values[name] = parse_triggers(value, doc, (*key, name), where.field)
        elif name == "access":
            layer.values[name] = parse_access(value, doc, (*key, name), where.field)
        elif name in ("groups", "hosts"):
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise where.error("expected a list of names")
            layer.values[name] = list(value)
        else:
            layer.values[name] = value
    return layer


def _check_name(doc: Doc, key: Key, name: str, what: str) -> None:
    if not _NAME_RE.match(name):
        raise doc.error(
            key, f"{name!r}: a {what} name is letters, digits, '.', '_' and '-'", of_key=True
        )


def _build_host(
    name: str,
    origin: str,
    layers: Sequence[_Layer],
    groups: tuple[str, ...],
    profile_dirs: Sequence[str | os.PathLike[str]] | None,
    check_profiles: bool,
    fallback: _Where,
) -> Host:
    merged: dict[str, Any] = {}
    wheres: dict[str, _Where] = {}
    labels: set[str] = set()
    variables: dict[str, Scalar] = {}
    for layer in layers:
        for key, value in layer.values.items():
            if key == "labels":
                labels |= value
            elif key == "vars":
                variables.update(value)
            else:
                merged[key] = value
                wheres[key] = layer.wheres[key]
    bmc = None
    if "bmc" in merged:
        bmc = parse_bmc(merged["bmc"], wheres["bmc"], user=merged.get("bmc_user"))
    serial = parse_serial(merged["serial"], wheres["serial"]) if "serial" in merged else None
    ssh = None
    if "ssh" in merged:
        ssh = parse_ssh(
            merged["ssh"],
            wheres["ssh"],
            user=merged.get("ssh_user"),
            key_file=merged.get("ssh_key"),
            known_hosts=merged.get("known_hosts"),
        )
    for text_field in ("bmc_user", "ssh_user", "ssh_key", "known_hosts"):
        if text_field in merged:
            _want_str(merged[text_field], wheres[text_field])
    console = parse_console(name, merged, wheres)
    if bmc is None and serial is None and ssh is None and console is None:
        raise fallback.error("a host needs at least one of bmc, serial, ssh, console or via")
    if bmc is not None and bmc.user is None:
        raise wheres["bmc"].error("no BMC user: write ipmi://user@host or set bmc_user")
    profile = None
    if "profile" in merged:
        where = wheres["profile"]
        profile = (
            check_profile(merged["profile"], where, profile_dirs)
            if check_profiles
            else _want_str(merged["profile"], where)
        )
    return Host(
        name=name,
        origin=origin,
        bmc=bmc,
        password=merged.get("password"),
        kg=merged.get("kg"),
        cipher=merged.get("cipher", DEFAULT_CIPHER),
        serial=serial,
        line=merged.get("line"),
        ssh=ssh,
        console=console,
        profile=profile,
        labels=frozenset(labels),
        groups=groups,
        vars=variables,
        triggers=merged.get("on", ()),
        access=merged.get("access"),
    )


def _load_solcap(
    doc: Doc, profile_dirs: Sequence[str | os.PathLike[str]] | None, check_profiles: bool
) -> Inventory:
    data = doc.data
    if not isinstance(data, dict):
        raise doc.error((), f"expected a mapping with 'hosts', got {kind_of(data)}", field="")
    for name in data:
        if name not in _TOP_FIELDS:
            raise doc.error(
                (name,), f"unknown field (allowed: {', '.join(sorted(_TOP_FIELDS))})", of_key=True
            )
    defaults = _layer(doc, ("defaults",), data.get("defaults"), _SHARED, "defaults")
    raw_groups = data.get("groups") or {}
    if not isinstance(raw_groups, dict):
        raise doc.error(("groups",), f"expected a mapping of groups, got {kind_of(raw_groups)}")
    groups: dict[str, _Layer] = {}
    for gname, gdata in raw_groups.items():
        _check_name(doc, ("groups", gname), gname, "group")
        groups[gname] = _layer(doc, ("groups", gname), gdata, _GROUP_FIELDS, f"groups.{gname}")
    raw_hosts = data.get("hosts")
    if not isinstance(raw_hosts, dict) or not raw_hosts:
        raise doc.error(("hosts",), "expected a non-empty mapping of host name → settings")
    hosts: list[Host] = []
    for group in groups.values():
        for member in group.values.get("hosts", []):
            if member not in raw_hosts:
                raise group.wheres["hosts"].error(f"no host named {member!r} in hosts")
    for hname, hdata in raw_hosts.items():
        hkey: Key = ("hosts", hname)
        _check_name(doc, hkey, hname, "host")
        layer = _layer(doc, hkey, hdata, _HOST_FIELDS, hname)
        member_of = [g for g, grp in groups.items() if hname in grp.values.get("hosts", [])]
        for gname in layer.values.get("groups", []):
            if gname not in groups:
                raise layer.wheres["groups"].error(f"no group named {gname!r} in groups")
            if gname not in member_of:
                member_of.append(gname)
        pos = doc.pos(hkey, of_key=True)
        origin = f"{doc.path}:{pos.line}" if pos else doc.path
        fallback = _Where(doc.path, pos, hname)
        hosts.append(
            _build_host(
                hname,
                origin,
                [defaults, *(groups[g] for g in member_of), layer],
                tuple(member_of),
                profile_dirs,
                check_profiles,
                fallback,
            )
        )
    return Inventory(doc.path, tuple(hosts))


# --------------------------------------------------------------------------- Ansible


@dataclass
class _AGroup:
    """An Ansible group as read: vars (with positions), hosts, children."""

    name: str
    vars: dict[str, tuple[Any, _Where]] = field(default_factory=dict)
    hosts: dict[str, dict[str, tuple[Any, _Where]]] = field(default_factory=dict)
    children: list[str] = field(default_factory=list)
    host_pos: dict[str, Pos | None] = field(default_factory=dict)


_RANGE = re.compile(r"\[([0-9]+|[a-z]):([0-9]+|[a-z])(?::([0-9]+))?\]")


def _expand_range(pattern: str, where: _Where) -> list[str]:
    """Ansible's ``node[01:03]`` host ranges (numeric keeps the width; single letters too).

    A step of 0, a range running backwards or one expanding (with every bracket in the
    pattern) to more than :data:`~solcap.limits.MAX_HOSTS` names is refused, naming the line.
    """
    names = [pattern]
    expanded: list[str] = []
    while names:
        name = names.pop()
        m = _RANGE.search(name)
        if m is None:
            expanded.append(name)
            continue
        first, last, step_text = m.group(1), m.group(2), m.group(3)
        step = int(step_text or 1)
        head, tail = name[: m.start()], name[m.end() :]
        if first.isdigit() != last.isdigit():
            expanded.append(name)
            continue
        low, high = (int(first), int(last)) if first.isdigit() else (ord(first), ord(last))
        if step < 1:
            raise where.error(f"host range {m.group(0)!r}: the step must be at least 1")
        if high < low:
            raise where.error(f"host range {m.group(0)!r}: the end comes before the start")
        if (high - low) // step + 1 + len(names) + len(expanded) > MAX_HOSTS:
            raise where.error(f"host range {pattern!r} expands to more than {MAX_HOSTS} hosts")
        width = len(first) if first.isdigit() and first.startswith("0") else 0
        items = [
            str(i).zfill(width) if first.isdigit() else chr(i) for i in range(low, high + 1, step)
        ]
        names.extend(head + item + tail for item in reversed(items))
    return expanded


def _ansible_yaml(doc: Doc) -> dict[str, _AGroup]:
    groups: dict[str, _AGroup] = {}
    data = doc.data
    if not isinstance(data, dict):
        raise doc.error((), "an Ansible YAML inventory is a mapping of groups", field="")

    def read_vars(key: Key, value: Any, label: str) -> dict[str, tuple[Any, _Where]]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise doc.error(key, f"expected a mapping of variables, got {kind_of(value)}")
        return {
            k: (v, _Where(doc.path, doc.pos((*key, k)), f"{label}.{k}")) for k, v in value.items()
        }

    def read_group(name: str, key: Key, body: Any) -> None:
        group = groups.setdefault(name, _AGroup(name))
        if body is None:
            return
        if not isinstance(body, dict):
            raise doc.error(key, f"expected a group mapping, got {kind_of(body)}")
        for field_name in body:
            if field_name not in ("hosts", "vars", "children"):
                raise doc.error(
                    (*key, field_name),
                    "unknown group field (allowed: children, hosts, vars)",
                    of_key=True,
                )
        group.vars.update(read_vars((*key, "vars"), body.get("vars"), name))
        hosts = body.get("hosts") or {}
        if not isinstance(hosts, dict):
            raise doc.error((*key, "hosts"), f"expected a mapping of hosts, got {kind_of(hosts)}")
        for pattern, hvars in hosts.items():
            for hname in _expand_range(
                pattern, _Where(doc.path, doc.pos((*key, "hosts", pattern), of_key=True), name)
            ):
                entry = group.hosts.setdefault(hname, {})
                entry.update(read_vars((*key, "hosts", pattern), hvars, hname))
                group.host_pos[hname] = doc.pos((*key, "hosts", pattern), of_key=True)
        children = body.get("children") or {}
        if not isinstance(children, dict):
            raise doc.error((*key, "children"), "expected a mapping of child groups")
        for child, cbody in children.items():
            if child not in group.children:
                group.children.append(child)
            read_group(child, (*key, "children", child), cbody)

    for name, body in data.items():
        read_group(name, (name,), body)
    return groups


def _ini_value(text: str, inline: bool) -> Any:
    if not inline:
        return text
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return text


def _ansible_ini(path: str, source: str) -> dict[str, _AGroup]:
    groups: dict[str, _AGroup] = {"ungrouped": _AGroup("ungrouped")}
    section, kind = "ungrouped", "hosts"
    for number, raw in enumerate(source.splitlines(), start=1):
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        where = _Where(path, Pos(number, len(raw) - len(raw.lstrip()) + 1), section)
        if line.startswith("["):
            m = re.match(r"^\[([^\]:]+)(?::(vars|children))?\]\s*(?:[#;].*)?$", line)
            if m is None:
                raise where.error(
                    f"bad section header {line!r}: "
                    "expected [group], [group:vars] or [group:children]"
                )
            section, kind = m.group(1), m.group(2) or "hosts"
            groups.setdefault(section, _AGroup(section))
            continue
        group = groups[section]
        if kind == "children":
            group.children.append(line.split()[0])
            continue
        if kind == "vars":
            if "=" not in line:
                raise where.error(f"expected key=value in [{section}:vars], got {line!r}")
            key, value = (part.strip() for part in line.split("=", 1))
            col = raw.find(key) + 1
            group.vars[key] = (
                _ini_value(value, False),
                _Where(path, Pos(number, col), f"{section}.{key}"),
            )
            continue
        if len(line) > MAX_LINE:  # shlex slows to a crawl on a multi-megabyte line
            raise where.error(f"line is longer than the limit of {MAX_LINE} characters")
        try:
            tokens = shlex.split(line, comments=True)
        except ValueError as exc:
            raise where.error(f"cannot split host line: {exc}") from exc
        if not tokens:
            continue
        for hname in _expand_range(tokens[0], where):
            entry = group.hosts.setdefault(hname, {})
            group.host_pos[hname] = where.pos
            for token in tokens[1:]:
                if "=" not in token:
                    raise _Where(path, where.pos, hname).error(
                        f"expected key=value after the host name, got {token!r}"
                    )
                key, value = token.split("=", 1)
                col = raw.find(f"{key}=") + 1
                entry[key] = (
                    _ini_value(value, True),
                    _Where(path, Pos(number, col), f"{hname}.{key}"),
                )
    return groups


_PASSWORD_LIKE = re.compile(r"pass(word)?|secret|token", re.IGNORECASE)


def _hosts_from_ansible(
    path: str,
    groups: dict[str, _AGroup],
    profile_dirs: Sequence[str | os.PathLike[str]] | None,
    check_profiles: bool,
    bmc_vars: Sequence[str] = (),
    host_order: Sequence[str] = (),
) -> Inventory:
    for group in groups.values():
        for child in group.children:
            groups.setdefault(child, _AGroup(child))
    parents: dict[str, set[str]] = {name: set() for name in groups}
    for group in groups.values():
        for child in group.children:
            parents[child].add(group.name)

    def depth(name: str, seen: frozenset[str] = frozenset()) -> int:
        if name in seen:
            return 0
        ups = [depth(p, seen | {name}) for p in parents[name]]
        return 1 + max(ups) if ups else 0

    def ancestors(name: str) -> set[str]:
        out: set[str] = set()
        todo = [name]
        while todo:
            for parent in parents[todo.pop()]:
                if parent not in out:
                    out.add(parent)
                    todo.append(parent)
        return out

    order: list[str] = []
    host_pos: dict[str, Pos | None] = {}
    member: dict[str, set[str]] = {}
    for group in groups.values():
        for hname in group.hosts:
            if hname not in member:
                order.append(hname)
                member[hname] = set()
                host_pos[hname] = group.host_pos.get(hname)
            member[hname] |= {group.name} | ancestors(group.name)
    if host_order:
        rank = {name: index for index, name in enumerate(host_order)}
        order.sort(key=lambda name: rank.get(name, len(rank)))
    hosts: list[Host] = []
    for hname in order:
        in_groups = member[hname] | {"all"}
        merged: dict[str, tuple[Any, _Where]] = {}
        for gname in sorted(in_groups & set(groups), key=lambda g: (depth(g), g)):
            merged.update(groups[gname].vars)
        for gname in sorted(member[hname]):
            merged.update(groups[gname].hosts.get(hname, {}))
        pos = host_pos[hname]
        hosts.append(
            _ansible_host(
                hname,
                path,
                pos,
                merged,
                tuple(sorted(member[hname] - {"all", "ungrouped"})),
                profile_dirs,
                check_profiles,
                bmc_vars,
            )
        )
    return Inventory(path, tuple(hosts))


def _lookup(merged: Mapping[str, tuple[Any, _Where]], name: str) -> tuple[Any, _Where] | None:
    """A variable by (possibly dotted) name: ``driver_info.ipmi_address`` reads a mapping."""
    head, _, rest = name.partition(".")
    item = merged.get(head)
    if item is None or not rest:
        return item
    value, where = item
    for part in rest.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value, _Where(where.path, where.pos, f"{where.field}.{rest}")


def _is_template(value: Any) -> bool:
    return isinstance(value, str) and ("{{" in value or "{%" in value)


def _is_vaulted(value: Any) -> bool:
    return isinstance(value, dict) and "__ansible_vault" in value


def _plain(item: tuple[Any, _Where], what: str) -> str:
    """A usable string value; a Jinja template or a vaulted value is refused, naming it."""
    value, where = item
    if _is_template(value):
        raise where.error(
            f"{value!r} is a Jinja template; solcap does not evaluate templates: "
            f"set solcap_{what} to a plain value"
        )
    if _is_vaulted(value):
        raise where.error(f"is vault-encrypted; set solcap_{what} to a plain value")
    return _want_str(str(value) if isinstance(value, int) else value, where)


def _bmc_table(
    bmc_vars: Sequence[str],
) -> list[tuple[str, tuple[str, ...], tuple[str, ...]]]:
    """:data:`BMC_VARS` with the ``--bmc-var`` names after ``solcap_bmc``; a given name that
    is also a known one keeps its user and password variables."""
    known = {entry[0]: entry for entry in BMC_VARS}
    extra = [known.get(name, (name, (), ())) for name in bmc_vars]
    rest = [entry for entry in BMC_VARS[1:] if entry[0] not in bmc_vars]
    return [BMC_VARS[0], *extra, *rest]


def _bmc_var_names(bmc_vars: Sequence[str]) -> set[str]:
    """Top-level variable names that describe a BMC (kept out of runbook variables)."""
    names: set[str] = set()
    for address, users, passwords in _bmc_table(bmc_vars):
        names |= {name.split(".", 1)[0] for name in (address, *users, *passwords)}
    return names


def _ansible_bmc(
    merged: Mapping[str, tuple[Any, _Where]], bmc_vars: Sequence[str]
) -> tuple[BmcAddress | None, SecretRef | None]:
    """The BMC from the first address variable set (see :data:`BMC_VARS`), with its user and
    (as a reference) its password. A Jinja or vaulted password stays unused: it is a
    reference solcap cannot resolve, so the password comes from the command line's
    credential options instead."""
    table = _bmc_table(bmc_vars)
    for address_var, user_vars, password_vars in table:
        item = _lookup(merged, address_var)
        if item is None:
            continue
        user = None
        for user_var in ("solcap_bmc_user", *user_vars):
            if (u := _lookup(merged, user_var)) is not None:
                user = _plain(u, "bmc_user")
                break
        port = None
        if (p := merged.get("solcap_bmc_port")) is not None:
            port = _want_int(p[0], p[1], coerce=True)
        bmc = parse_bmc(_plain(item, "bmc"), item[1], user=user, port=port)
        if bmc.user is None:
            names = ", ".join(("solcap_bmc_user", *user_vars))
            raise item[1].error(f"no BMC user: set {names} or write ipmi://user@host")
        password = None
        for password_var in password_vars:
            if (pw := _lookup(merged, password_var)) is None:
                continue
            if _is_template(pw[0]) or _is_vaulted(pw[0]):
                log.info(
                    "%s: %s is a reference solcap does not resolve (Jinja or vault); "
                    "give the BMC password with --password-file or IPMI_PASSWORD",
                    pw[1].field,
                    password_var,
                )
            else:
                password = parse_secret(*pw)
            break
        return bmc, password
    return None, None


def _ansible_host(
    name: str,
    path: str,
    pos: Pos | None,
    merged: dict[str, tuple[Any, _Where]],
    groups: tuple[str, ...],
    profile_dirs: Sequence[str | os.PathLike[str]] | None,
    check_profiles: bool,
    bmc_vars: Sequence[str] = (),
) -> Host:
    here = _Where(path, pos, name)
    if not _NAME_RE.match(name):
        raise here.error(f"{name!r}: a host name is letters, digits, '.', '_' and '-'")

    def get(key: str) -> tuple[Any, _Where] | None:
        return merged.get(key)

    def text(key: str) -> str | None:
        item = get(key)
        return (
            None
            if item is None
            else _want_str(str(item[0]) if isinstance(item[0], int) else item[0], item[1])
        )

    bmc, password = _ansible_bmc(merged, bmc_vars)
    kg = None
    if (item := get("solcap_password")) is not None:
        password = parse_secret(*item)
    if (item := get("solcap_kg")) is not None:
        kg = parse_secret(*item)
    cipher = DEFAULT_CIPHER
    if (item := get("solcap_cipher")) is not None:
        cipher = parse_cipher(item[0], item[1], coerce=True)
    serial = line = None
    if (item := get("solcap_serial")) is not None:
        serial = parse_serial(*item)
    if (item := get("solcap_line")) is not None:
        line = parse_line(*item)
    console_fields = {
        short: get(f"solcap_{short}")
        for short in ("console", "via", "console_server", "console_name")
    }
    console = parse_console(
        name,
        {k: v[0] for k, v in console_fields.items() if v is not None},
        {k: v[1] for k, v in console_fields.items() if v is not None},
    )
    labels: frozenset[str] = frozenset()
    if (item := get("solcap_labels")) is not None:
        labels = parse_labels(item[0], item[1])
    profile = None
    if (item := get("solcap_profile")) is not None:
        profile = (
            check_profile(item[0], item[1], profile_dirs) if check_profiles else _want_str(*item)
        )
    ssh = None
    connection = get("ansible_connection")
    if connection is None or connection[0] in ("ssh", "paramiko", "smart"):
        address = text("ansible_host") or name
        port = 22
        if (p := get("ansible_port")) is not None:
            port = _want_int(p[0], p[1], coerce=True)
            if not 0 < port < 65536:
                raise p[1].error(f"port {port} is out of range 1..65535")
        ssh = SshTarget(
            host=address,
            user=text("ansible_user"),
            port=port,
            key_file=text("ansible_ssh_private_key_file"),
            known_hosts=text("solcap_known_hosts"),
        )
    variables: dict[str, Scalar] = {}
    bmc_names = _bmc_var_names(bmc_vars)
    for key, (value, _where) in merged.items():
        if key.startswith(("ansible_", "solcap_")) or _PASSWORD_LIKE.search(key):
            continue
        if key in bmc_names:
            continue
        if _is_template(value):
            continue  # unevaluated Jinja: not a value a runbook can use
        if isinstance(value, (str, int, float, bool)) and _VAR_RE.match(key):
            variables[key] = value
    return Host(
        name=name,
        origin=f"{path}:{pos.line}" if pos else path,
        bmc=bmc,
        password=password,
        kg=kg,
        cipher=cipher,
        serial=serial,
        line=line,
        ssh=ssh,
        console=console,
        profile=profile,
        labels=labels,
        groups=groups,
        vars=variables,
    )


# --------------------------------------------------------------------------- loading


def _looks_ansible_yaml(data: Any) -> bool:
    if not isinstance(data, dict) or not data:
        return False
    if set(data) <= _TOP_FIELDS:
        return False
    return all(
        body is None or (isinstance(body, dict) and set(body) <= {"hosts", "vars", "children"})
        for body in data.values()
    )


def ansible_inventory_binary() -> str | None:
    """``ansible-inventory`` on PATH (Debian's ``ansible-core``), or None."""
    return shutil.which("ansible-inventory")


def _ansible_inventory_groups(shown: str, binary: str) -> dict[str, _AGroup]:
    """Groups and fully merged host vars from ``ansible-inventory -i PATH --list``.

    ``--list`` (without ``--export``) gives each host's variables after Ansible's own
    precedence, so they are attached to the host directly. Values are not templated and vaulted
    ones arrive as ``{"__ansible_vault": …}``; JSON carries no line numbers, so errors name the
    file, the host and the variable.
    """
    env = dict(os.environ)
    env.update(
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_INVENTORY_UNPARSED_FAILED="True",  # no parser took it: fail, not empty
        ANSIBLE_DEPRECATION_WARNINGS="False",
    )
    try:
        done = subprocess.run(
            [binary, "-i", shown, "--list"],
            capture_output=True,
            timeout=300,
            env=env,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ConfigError(shown, f"ansible-inventory failed: {exc}") from None
    if done.returncode != 0:
        lines = [ln for ln in done.stderr.decode("utf-8", "replace").splitlines() if ln.strip()]
        reason = " ".join(lines[-1].split()) if lines else f"exit status {done.returncode}"
        raise ConfigError(shown, f"ansible-inventory could not read it: {reason}")
    try:
        data = json.loads(done.stdout)
    except (ValueError, RecursionError):
        raise ConfigError(shown, "ansible-inventory printed something that is not JSON") from None
    if not isinstance(data, dict):
        raise ConfigError(shown, "ansible-inventory printed something that is not a mapping")
    meta = data.get("_meta", {})
    hostvars = meta.get("hostvars", {}) if isinstance(meta, dict) else {}
    groups: dict[str, _AGroup] = {}
    for gname, body in data.items():
        if gname == "_meta" or not isinstance(body, dict):
            continue
        group = groups.setdefault(gname, _AGroup(gname))
        for child in body.get("children", []) or []:
            if isinstance(child, str) and child not in group.children:
                group.children.append(child)
        for hname in body.get("hosts", []) or []:
            if isinstance(hname, str):
                group.hosts.setdefault(hname, {})
    for group in list(groups.values()):
        for child in group.children:
            groups.setdefault(child, _AGroup(child))
    placed: set[str] = set()
    for group in groups.values():
        for hname, entry in group.hosts.items():
            if hname in placed:
                continue
            placed.add(hname)
            hvars = hostvars.get(hname, {})
            if isinstance(hvars, dict):
                entry.update(
                    {k: (v, _Where(shown, None, f"{hname}.{k}")) for k, v in hvars.items()}
                )
            group.host_pos[hname] = None
    return groups


def _static_groups(shown: str, ini: bool, *, strict: bool) -> dict[str, _AGroup] | None:
    """The static reader's view of a file it understands, or None.

    ``strict`` (the ``auto`` reader) lets its error through: it runs *before* ansible-inventory
    so that what the static reader refuses (a file over the size cap, ``/dev/zero``, a host
    range that expands past the cap, a malformed range) is a one-line file:line:field error
    at once, rather than a subprocess that reads for ever, expands a billion hosts, or answers
    "No inventory was parsed". A forced ``ansible-inventory`` reader only borrows positions.
    """
    try:
        if ini:
            return _ansible_ini(shown, read_text(shown, "inventory"))
        return _ansible_yaml(load_file(shown, kind="inventory"))
    except ConfigError:
        if strict:
            raise
        return None


#: What an Ansible inventory directory holds besides inventory files.
_INVENTORY_SUBDIRS = frozenset({"group_vars", "host_vars", "inventory_plugins", "vars_plugins"})
#: An inventory directory with more entries than this is not one.
MAX_INVENTORY_DIR_ENTRIES = 1000


def _check_inventory_dir(shown: str) -> None:
    """Refuse a directory that is not an Ansible inventory directory (``/``, ``/etc`` …).

    Ansible reads every file in such a directory as an inventory source, so handing it an
    arbitrary directory means parsing (or executing) whatever lies there. Its own layout is
    inventory files plus ``group_vars``/``host_vars``; anything else is refused unread.
    """
    try:
        with os.scandir(shown) as entries:
            found = []
            for entry in entries:
                found.append(entry)
                if len(found) > MAX_INVENTORY_DIR_ENTRIES:
                    break
    except OSError as exc:
        raise ConfigError(shown, f"cannot list the directory: {exc.strerror}") from None
    if len(found) > MAX_INVENTORY_DIR_ENTRIES:
        raise ConfigError(
            shown, f"is a directory with over {MAX_INVENTORY_DIR_ENTRIES} entries, not an inventory"
        )
    others = sorted(
        e.name
        for e in found
        if e.is_dir(follow_symlinks=False) and e.name not in _INVENTORY_SUBDIRS
    )
    if others or not any(e.is_file() for e in found):
        why = f"it holds the directory {others[0]!r}" if others else "it holds no file"
        raise ConfigError(
            shown,
            f"is a directory, not an Ansible inventory directory ({why}; one holds inventory "
            "files and group_vars/host_vars)",
        )


def _with_positions(
    groups: dict[str, _AGroup], static: dict[str, _AGroup] | None
) -> dict[str, _AGroup]:
    """Give ansible-inventory's values the file:line:column where the static reader saw them
    (the JSON has none), so an error still points at the line to fix."""
    if static is None:
        return groups
    host_where: dict[tuple[str, str], _Where] = {}
    group_where: dict[str, _Where] = {}
    host_pos: dict[str, Pos | None] = {}
    for group in static.values():
        for key, (_value, where) in group.vars.items():
            group_where.setdefault(key, where)
        for hname, entry in group.hosts.items():
            host_pos.setdefault(hname, group.host_pos.get(hname))
            for key, (_value, where) in entry.items():
                host_where[(hname, key)] = where
    order = {name: index for index, name in enumerate(host_pos)}
    for group in groups.values():
        # Hosts in the order the file lists them (ansible-inventory sorts groups its own way).
        group.hosts = dict(
            sorted(group.hosts.items(), key=lambda item: order.get(item[0], len(order)))
        )
        for hname, entry in group.hosts.items():
            if hname in host_pos:
                group.host_pos[hname] = host_pos[hname]
            for key, (value, _where) in list(entry.items()):
                found = host_where.get((hname, key)) or group_where.get(key)
                if found is not None:
                    entry[key] = (value, found)
    ranked = {name: index for index, name in enumerate(static)}
    return dict(sorted(groups.items(), key=lambda item: ranked.get(item[0], len(ranked))))


def _host_order(static: dict[str, _AGroup] | None) -> list[str]:
    """Host names in the order the static reader met them (the file's order)."""
    seen: dict[str, None] = {}
    for group in (static or {}).values():
        for hname in group.hosts:
            seen.setdefault(hname, None)
    return list(seen)


def _check_bmc_vars(bmc_vars: Sequence[str]) -> None:
    for name in bmc_vars:
        if not _DOTTED_RE.match(name):
            raise UsageError(
                f"--bmc-var {name!r}: expected a variable name such as oob_ip or "
                "driver_info.ipmi_address"
            )


def load_inventory(
    path: str | os.PathLike[str],
    *,
    kind: Literal["auto", "solcap", "ansible"] = "auto",
    profile_dirs: Sequence[str | os.PathLike[str]] | None = None,
    check_profiles: bool = True,
    bmc_vars: Sequence[str] = (),
    reader: Reader = "auto",
) -> Inventory:
    """Load and validate an inventory file; raises ConfigError naming file:line:column.

    ``reader`` chooses how an Ansible inventory is read: ``auto`` uses ``ansible-inventory``
    when it is installed and the static reader otherwise; ``static`` and
    ``ansible-inventory`` force one (the latter fails when it is missing). ``bmc_vars`` names
    extra BMC address variables, tried after ``solcap_bmc`` and before :data:`BMC_VARS`.
    """
    shown = os.fspath(path)
    if reader not in READERS:
        raise UsageError(f"inventory reader must be one of {', '.join(READERS)}, not {reader!r}")
    _check_bmc_vars(bmc_vars)
    binary = ansible_inventory_binary() if reader != "static" else None
    if reader == "ansible-inventory" and binary is None:
        raise UsageError(
            "ansible-inventory is not installed (Debian: apt-get install ansible-core); "
            "use the static reader instead"
        )
    suffix = Path(shown).suffix.lower()
    is_dir = os.path.isdir(shown)
    dynamic = is_dir or (os.path.isfile(shown) and os.access(shown, os.X_OK))
    if dynamic and kind != "solcap":
        if binary is None:
            what = "a directory" if is_dir else "an executable (a dynamic inventory script)"
            raise ConfigError(
                shown, f"is {what}: only ansible-inventory reads it (apt-get install ansible-core)"
            )
        if is_dir:
            _check_inventory_dir(shown)
        groups = _ansible_inventory_groups(shown, binary)
        inventory = _hosts_from_ansible(shown, groups, profile_dirs, check_profiles, bmc_vars)
    elif suffix in ("", ".ini", ".cfg", ".hosts") and kind != "solcap":
        order: list[str] = []
        if binary is not None:
            static = _static_groups(shown, ini=True, strict=reader == "auto")
            groups = _with_positions(_ansible_inventory_groups(shown, binary), static)
            order = _host_order(static)
        else:
            groups = _ansible_ini(shown, read_text(shown, "inventory"))
        inventory = _hosts_from_ansible(
            shown, groups, profile_dirs, check_profiles, bmc_vars, order
        )
    else:
        doc = load_file(shown, kind="inventory")
        plugin = isinstance(doc.data, dict) and "plugin" in doc.data
        if kind == "ansible" or (kind == "auto" and (_looks_ansible_yaml(doc.data) or plugin)):
            order = []
            if binary is not None:
                static = (
                    None if plugin else _static_groups(shown, ini=False, strict=reader == "auto")
                )
                groups = _with_positions(_ansible_inventory_groups(shown, binary), static)
                order = _host_order(static)
            elif plugin:
                raise ConfigError(
                    shown,
                    "an inventory plugin configuration: only ansible-inventory reads it "
                    "(apt-get install ansible-core)",
                    field="plugin",
                )
            else:
                groups = _ansible_yaml(doc)
            inventory = _hosts_from_ansible(
                shown, groups, profile_dirs, check_profiles, bmc_vars, order
            )
        else:
            inventory = _load_solcap(doc, profile_dirs, check_profiles)
    if not inventory.hosts:
        raise ConfigError(shown, "the inventory has no hosts")
    return inventory


# --------------------------------------------------------------------------- selection


@dataclass(frozen=True)
class Shard:
    """``--shard i/N``: this machine takes the hosts whose name hashes to ``i`` (0-based)."""

    index: int
    count: int

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def contains(self, name: str) -> bool:
        return shard_of(name, self.count) == self.index


def parse_shard(text: str) -> Shard:
    """``"0/4"`` … ``"3/4"``; 0-based like Kubernetes' ``JOB_COMPLETION_INDEX``."""
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if m is None:
        raise UsageError(f"--shard {text!r}: expected INDEX/COUNT such as 0/4")
    index, count = int(m.group(1)), int(m.group(2))
    if count < 1 or not 0 <= index < count:
        raise UsageError(f"--shard {text!r}: need 0 <= INDEX < COUNT (INDEX is 0-based)")
    return Shard(index, count)


def shard_of(name: str, count: int) -> int:
    """Stable across runs, machines and Python versions (SHA-256, not ``hash()``)."""
    digest = hashlib.sha256(name.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % count


def select_hosts(
    hosts: Iterable[Host],
    *,
    names: Sequence[str] = (),
    labels: Sequence[str] = (),
    shard: Shard | None = None,
) -> list[Host]:
    """Hosts matching any name glob (all if none), having every label (groups count as
    labels), and in ``shard``. A literal name (no wildcard) that matches nothing is an error:
    a typo must not silently shrink a fleet run."""
    pool = list(hosts)
    for pattern in names:
        if not any(ch in pattern for ch in "*?[") and all(h.name != pattern for h in pool):
            raise UsageError(f"no host named {pattern!r} in the inventory")
    out = []
    for host in pool:
        if names and not any(fnmatch.fnmatchcase(host.name, p) for p in names):
            continue
        tags = host.labels | set(host.groups)
        if any(label not in tags for label in labels):
            continue
        if shard is not None and not shard.contains(host.name):
            continue
        out.append(host)
    return out
