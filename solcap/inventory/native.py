"""solcap's own inventory format (YAML or TOML: ``defaults``, ``groups``, ``hosts``)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from solcap.config.access import parse_access
from solcap.config.docload import Doc, Key, kind_of
from solcap.config.triggers import parse_triggers
from solcap.inventory import fields
from solcap.inventory.fields import Where
from solcap.inventory.model import (
    DEFAULT_CIPHER,
    GROUP_FIELDS,
    HOST_FIELDS,
    NAME_RE,
    SHARED,
    TOP_FIELDS,
    Host,
    Inventory,
    Scalar,
)


@dataclass
class _Layer:
    """One validated layer of settings (defaults, a group, or the host itself)."""

    values: dict[str, Any] = field(default_factory=dict)
    wheres: dict[str, Where] = field(default_factory=dict)


def _layer(doc: Doc, key: Key, data: Any, allowed: frozenset[str], label: str) -> _Layer:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise doc.error(key, f"expected a mapping, got {kind_of(data)}", field=label)
    layer = _Layer()
    for name, value in data.items():
        where = Where(doc.path, doc.pos((*key, name)), f"{label}.{name}")
        if name not in allowed:
            choices = ", ".join(sorted(allowed))
            raise Where(doc.path, doc.pos((*key, name), of_key=True), where.field).error(
                f"unknown field (allowed: {choices})"
            )
        layer.wheres[name] = where
        if name in ("password", "kg"):
            layer.values[name] = fields.parse_secret(value, where)
        elif name == "cipher":
            layer.values[name] = fields.parse_cipher(value, where)
        elif name == "line":
            layer.values[name] = fields.parse_line(value, where)
        elif name == "labels":
            layer.values[name] = fields.parse_labels(value, where)
        elif name == "vars":
            layer.values[name] = fields.parse_vars(value, where, doc, (*key, name))
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
    if not NAME_RE.match(name):
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
    fallback: Where,
) -> Host:
    merged: dict[str, Any] = {}
    wheres: dict[str, Where] = {}
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
        bmc = fields.parse_bmc(merged["bmc"], wheres["bmc"], user=merged.get("bmc_user"))
    serial = fields.parse_serial(merged["serial"], wheres["serial"]) if "serial" in merged else None
    ssh = None
    if "ssh" in merged:
        ssh = fields.parse_ssh(
            merged["ssh"],
            wheres["ssh"],
            user=merged.get("ssh_user"),
            key_file=merged.get("ssh_key"),
            known_hosts=merged.get("known_hosts"),
        )
    for text_field in ("bmc_user", "ssh_user", "ssh_key", "known_hosts"):
        if text_field in merged:
            fields.want_str(merged[text_field], wheres[text_field])
    console = fields.parse_console(name, merged, wheres)
    if bmc is None and serial is None and ssh is None and console is None:
        raise fallback.error("a host needs at least one of bmc, serial, ssh, console or via")
    if bmc is not None and bmc.user is None:
        raise wheres["bmc"].error("no BMC user: write ipmi://user@host or set bmc_user")
    profile = None
    if "profile" in merged:
        where = wheres["profile"]
        profile = (
            fields.check_profile(merged["profile"], where, profile_dirs)
            if check_profiles
            else fields.want_str(merged["profile"], where)
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


def load_solcap(
    doc: Doc, profile_dirs: Sequence[str | os.PathLike[str]] | None, check_profiles: bool
) -> Inventory:
    data = doc.data
    if not isinstance(data, dict):
        raise doc.error((), f"expected a mapping with 'hosts', got {kind_of(data)}", field="")
    for name in data:
        if name not in TOP_FIELDS:
            raise doc.error(
                (name,), f"unknown field (allowed: {', '.join(sorted(TOP_FIELDS))})", of_key=True
            )
    defaults = _layer(doc, ("defaults",), data.get("defaults"), SHARED, "defaults")
    raw_groups = data.get("groups") or {}
    if not isinstance(raw_groups, dict):
        raise doc.error(("groups",), f"expected a mapping of groups, got {kind_of(raw_groups)}")
    groups: dict[str, _Layer] = {}
    for gname, gdata in raw_groups.items():
        _check_name(doc, ("groups", gname), gname, "group")
        groups[gname] = _layer(doc, ("groups", gname), gdata, GROUP_FIELDS, f"groups.{gname}")
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
        layer = _layer(doc, hkey, hdata, HOST_FIELDS, hname)
        member_of = [g for g, grp in groups.items() if hname in grp.values.get("hosts", [])]
        for gname in layer.values.get("groups", []):
            if gname not in groups:
                raise layer.wheres["groups"].error(f"no group named {gname!r} in groups")
            if gname not in member_of:
                member_of.append(gname)
        pos = doc.pos(hkey, of_key=True)
        origin = f"{doc.path}:{pos.line}" if pos else doc.path
        fallback = Where(doc.path, pos, hname)
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
