""":func:`load_inventory`: pick the reader for a path (``ansible-inventory`` where installed,
else the built-in static one) and return one validated
:class:`~solcap.inventory.model.Inventory`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from solcap.config.docload import Pos, load_file
from solcap.config.limits import read_text
from solcap.errors import ConfigError, UsageError
from solcap.inventory.ansible import (
    AGroup,
    ansible_ini,
    ansible_yaml,
    hosts_from_ansible,
)
from solcap.inventory.fields import (
    Where,
)
from solcap.inventory.model import (
    DOTTED_RE,
    READERS,
    TOP_FIELDS,
    Inventory,
    Reader,
)
from solcap.inventory.native import (
    load_solcap,
)


def _looks_ansible_yaml(data: Any) -> bool:
    if not isinstance(data, dict) or not data:
        return False
    if set(data) <= TOP_FIELDS:
        return False
    return all(
        body is None or (isinstance(body, dict) and set(body) <= {"hosts", "vars", "children"})
        for body in data.values()
    )


def ansible_inventory_binary() -> str | None:
    """``ansible-inventory`` on PATH (Debian's ``ansible-core``), or None."""
    return shutil.which("ansible-inventory")


def _ansible_inventory_groups(shown: str, binary: str) -> dict[str, AGroup]:
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
    groups: dict[str, AGroup] = {}
    for gname, body in data.items():
        if gname == "_meta" or not isinstance(body, dict):
            continue
        group = groups.setdefault(gname, AGroup(gname))
        for child in body.get("children", []) or []:
            if isinstance(child, str) and child not in group.children:
                group.children.append(child)
        for hname in body.get("hosts", []) or []:
            if isinstance(hname, str):
                group.hosts.setdefault(hname, {})
    for group in list(groups.values()):
        for child in group.children:
            groups.setdefault(child, AGroup(child))
    placed: set[str] = set()
    for group in groups.values():
        for hname, entry in group.hosts.items():
            if hname in placed:
                continue
            placed.add(hname)
            hvars = hostvars.get(hname, {})
            if isinstance(hvars, dict):
                entry.update({k: (v, Where(shown, None, f"{hname}.{k}")) for k, v in hvars.items()})
            group.host_pos[hname] = None
    return groups


def _static_groups(shown: str, ini: bool, *, strict: bool) -> dict[str, AGroup] | None:
    """The static reader's view of a file it understands, or None.

    ``strict`` (the ``auto`` reader) lets its error through: it runs *before* ansible-inventory
    so that what the static reader refuses (a file over the size cap, ``/dev/zero``, a host
    range that expands past the cap, a malformed range) is a one-line file:line:field error
    at once, rather than a subprocess that reads for ever, expands a billion hosts, or answers
    "No inventory was parsed". A forced ``ansible-inventory`` reader only borrows positions.
    """
    try:
        if ini:
            return ansible_ini(shown, read_text(shown, "inventory"))
        return ansible_yaml(load_file(shown, kind="inventory"))
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
    groups: dict[str, AGroup], static: dict[str, AGroup] | None
) -> dict[str, AGroup]:
    """Give ansible-inventory's values the file:line:column where the static reader saw them
    (the JSON has none), so an error still points at the line to fix."""
    if static is None:
        return groups
    host_where: dict[tuple[str, str], Where] = {}
    group_where: dict[str, Where] = {}
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


def _host_order(static: dict[str, AGroup] | None) -> list[str]:
    """Host names in the order the static reader met them (the file's order)."""
    seen: dict[str, None] = {}
    for group in (static or {}).values():
        for hname in group.hosts:
            seen.setdefault(hname, None)
    return list(seen)


def _check_bmc_vars(bmc_vars: Sequence[str]) -> None:
    for name in bmc_vars:
        if not DOTTED_RE.match(name):
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
        inventory = hosts_from_ansible(shown, groups, profile_dirs, check_profiles, bmc_vars)
    elif suffix in ("", ".ini", ".cfg", ".hosts") and kind != "solcap":
        order: list[str] = []
        if binary is not None:
            static = _static_groups(shown, ini=True, strict=reader == "auto")
            groups = _with_positions(_ansible_inventory_groups(shown, binary), static)
            order = _host_order(static)
        else:
            groups = ansible_ini(shown, read_text(shown, "inventory"))
        inventory = hosts_from_ansible(shown, groups, profile_dirs, check_profiles, bmc_vars, order)
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
                groups = ansible_yaml(doc)
            inventory = hosts_from_ansible(
                shown, groups, profile_dirs, check_profiles, bmc_vars, order
            )
        else:
            inventory = load_solcap(doc, profile_dirs, check_profiles)
    if not inventory.hosts:
        raise ConfigError(shown, "the inventory has no hosts")
    return inventory
