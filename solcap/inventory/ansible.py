"""Ansible inventories: the static YAML/INI reader and the mapping of Ansible variables to
solcap's fields (``ansible_host`` to Dom0 SSH, ``solcap_*`` and real BMC variable names)."""

from __future__ import annotations

import ast
import logging
import os
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from solcap.config.access import parse_access
from solcap.config.credentials import SecretRef
from solcap.config.docload import Doc, Key, Pos, kind_of
from solcap.config.limits import MAX_HOSTS, MAX_LINE
from solcap.config.triggers import TriggerSpec, parse_triggers
from solcap.inventory import fields
from solcap.inventory.fields import Where
from solcap.inventory.model import (
    BMC_VARS,
    DEFAULT_CIPHER,
    NAME_RE,
    VAR_RE,
    BmcAddress,
    Host,
    Inventory,
    Scalar,
    SshTarget,
)

log = logging.getLogger(__name__)


@dataclass
class AGroup:
    """An Ansible group as read: vars (with positions), hosts, children."""

    name: str
    vars: dict[str, tuple[Any, Where]] = field(default_factory=dict)
    hosts: dict[str, dict[str, tuple[Any, Where]]] = field(default_factory=dict)
    children: list[str] = field(default_factory=list)
    host_pos: dict[str, Pos | None] = field(default_factory=dict)


_RANGE = re.compile(r"\[([0-9]+|[a-z]):([0-9]+|[a-z])(?::([0-9]+))?\]")


def _expand_range(pattern: str, where: Where) -> list[str]:
    """Ansible's ``node[01:03]`` host ranges (numeric keeps the width; single letters too).

    A step of 0, a range running backwards or one expanding (with every bracket in the
    pattern) to more than :data:`~solcap.config.limits.MAX_HOSTS` names is refused, naming the line.
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


def ansible_yaml(doc: Doc) -> dict[str, AGroup]:
    groups: dict[str, AGroup] = {}
    data = doc.data
    if not isinstance(data, dict):
        raise doc.error((), "an Ansible YAML inventory is a mapping of groups", field="")

    def read_vars(key: Key, value: Any, label: str) -> dict[str, tuple[Any, Where]]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise doc.error(key, f"expected a mapping of variables, got {kind_of(value)}")
        return {
            k: (v, Where(doc.path, doc.pos((*key, k)), f"{label}.{k}")) for k, v in value.items()
        }

    def read_group(name: str, key: Key, body: Any) -> None:
        group = groups.setdefault(name, AGroup(name))
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
                pattern, Where(doc.path, doc.pos((*key, "hosts", pattern), of_key=True), name)
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


def ansible_ini(path: str, source: str) -> dict[str, AGroup]:
    groups: dict[str, AGroup] = {"ungrouped": AGroup("ungrouped")}
    section, kind = "ungrouped", "hosts"
    for number, raw in enumerate(source.splitlines(), start=1):
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        where = Where(path, Pos(number, len(raw) - len(raw.lstrip()) + 1), section)
        if line.startswith("["):
            m = re.match(r"^\[([^\]:]+)(?::(vars|children))?\]\s*(?:[#;].*)?$", line)
            if m is None:
                raise where.error(
                    f"bad section header {line!r}: "
                    "expected [group], [group:vars] or [group:children]"
                )
            section, kind = m.group(1), m.group(2) or "hosts"
            groups.setdefault(section, AGroup(section))
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
                Where(path, Pos(number, col), f"{section}.{key}"),
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
                    raise Where(path, where.pos, hname).error(
                        f"expected key=value after the host name, got {token!r}"
                    )
                key, value = token.split("=", 1)
                col = raw.find(f"{key}=") + 1
                entry[key] = (
                    _ini_value(value, True),
                    Where(path, Pos(number, col), f"{hname}.{key}"),
                )
    return groups


_PASSWORD_LIKE = re.compile(r"pass(word)?|secret|token", re.IGNORECASE)


def hosts_from_ansible(
    path: str,
    groups: dict[str, AGroup],
    profile_dirs: Sequence[str | os.PathLike[str]] | None,
    check_profiles: bool,
    bmc_vars: Sequence[str] = (),
    host_order: Sequence[str] = (),
) -> Inventory:
    for group in groups.values():
        for child in group.children:
            groups.setdefault(child, AGroup(child))
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
        merged: dict[str, tuple[Any, Where]] = {}
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


def _lookup(merged: Mapping[str, tuple[Any, Where]], name: str) -> tuple[Any, Where] | None:
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
    return value, Where(where.path, where.pos, f"{where.field}.{rest}")


def _is_template(value: Any) -> bool:
    return isinstance(value, str) and ("{{" in value or "{%" in value)


def _is_vaulted(value: Any) -> bool:
    return isinstance(value, dict) and "__ansible_vault" in value


def _plain(item: tuple[Any, Where], what: str) -> str:
    """A usable string value; a Jinja template or a vaulted value is refused, naming it."""
    value, where = item
    if _is_template(value):
        raise where.error(
            f"{value!r} is a Jinja template; solcap does not evaluate templates: "
            f"set solcap_{what} to a plain value"
        )
    if _is_vaulted(value):
        raise where.error(f"is vault-encrypted; set solcap_{what} to a plain value")
    return fields.want_str(str(value) if isinstance(value, int) else value, where)


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
    merged: Mapping[str, tuple[Any, Where]], bmc_vars: Sequence[str]
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
            port = fields.want_int(p[0], p[1], coerce=True)
        bmc = fields.parse_bmc(_plain(item, "bmc"), item[1], user=user, port=port)
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
                password = fields.parse_secret(*pw)
            break
        return bmc, password
    return None, None


def _ansible_host(
    name: str,
    path: str,
    pos: Pos | None,
    merged: dict[str, tuple[Any, Where]],
    groups: tuple[str, ...],
    profile_dirs: Sequence[str | os.PathLike[str]] | None,
    check_profiles: bool,
    bmc_vars: Sequence[str] = (),
) -> Host:
    here = Where(path, pos, name)
    if not NAME_RE.match(name):
        raise here.error(f"{name!r}: a host name is letters, digits, '.', '_' and '-'")

    def get(key: str) -> tuple[Any, Where] | None:
        return merged.get(key)

    def text(key: str) -> str | None:
        item = get(key)
        return (
            None
            if item is None
            else fields.want_str(str(item[0]) if isinstance(item[0], int) else item[0], item[1])
        )

    bmc, password = _ansible_bmc(merged, bmc_vars)
    kg = None
    if (item := get("solcap_password")) is not None:
        password = fields.parse_secret(*item)
    if (item := get("solcap_kg")) is not None:
        kg = fields.parse_secret(*item)
    cipher = DEFAULT_CIPHER
    if (item := get("solcap_cipher")) is not None:
        cipher = fields.parse_cipher(item[0], item[1], coerce=True)
    serial = line = None
    if (item := get("solcap_serial")) is not None:
        serial = fields.parse_serial(*item)
    if (item := get("solcap_line")) is not None:
        line = fields.parse_line(*item)
    console_fields = {
        short: get(f"solcap_{short}")
        for short in ("console", "via", "console_server", "console_name")
    }
    console = fields.parse_console(
        name,
        {k: v[0] for k, v in console_fields.items() if v is not None},
        {k: v[1] for k, v in console_fields.items() if v is not None},
    )
    labels: frozenset[str] = frozenset()
    if (item := get("solcap_labels")) is not None:
        labels = fields.parse_labels(item[0], item[1])
    triggers: tuple[TriggerSpec, ...] = ()
    if (item := get("solcap_on")) is not None:
        triggers = parse_triggers(item[0], _var_doc(item), (), item[1].field)
    access = None
    if (item := get("solcap_access")) is not None:
        access = parse_access(item[0], _var_doc(item), (), item[1].field)
    profile = None
    if (item := get("solcap_profile")) is not None:
        profile = (
            fields.check_profile(item[0], item[1], profile_dirs)
            if check_profiles
            else fields.want_str(*item)
        )
    ssh = None
    connection = get("ansible_connection")
    if connection is None or connection[0] in ("ssh", "paramiko", "smart"):
        address = text("ansible_host") or name
        port = 22
        if (p := get("ansible_port")) is not None:
            port = fields.want_int(p[0], p[1], coerce=True)
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
        if isinstance(value, (str, int, float, bool)) and VAR_RE.match(key):
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
        triggers=triggers,
        access=access,
    )


def _var_doc(item: tuple[Any, Where]) -> Doc:
    """An Ansible variable as a document of its own, so the structured parsers (``on:``,
    ``access:``) point their errors at the variable's line (Ansible's JSON has none for the
    items inside it)."""
    value, where = item
    return Doc(where.path, value, values={(): where.pos} if where.pos else {})
