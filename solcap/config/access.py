"""Per-host access to a served console (``access:`` in an inventory), by Unix user and group.

A host, a group or ``defaults`` may say::

    access:
      write: [alice, "@operators"]   # these may attach read-write (a user, or @group)
      read: [bob, "@viewers"]        # these may only watch (a spy)

Names are resolved to uids/gids when the inventory is read: an unknown user or group is one
``file:line:column: field: message`` error, before anything is opened. The server checks them
against the peer credentials of each connection (``SO_PEERCRED``), never against anything a
client says. The server's own user and root may always write; a host without ``access``
follows the server's ``--group``/``--spy-group``. This module is the schema and the decision;
:mod:`solcap.serve.control` applies it.
"""

from __future__ import annotations

import grp
import os
import pwd
from dataclasses import dataclass
from typing import Any, Literal

from solcap.config.docload import Doc, Key, kind_of
from solcap.config.triggers import Where

FIELDS = frozenset({"write", "read"})
Right = Literal["write", "read", "none"]


@dataclass(frozen=True)
class AccessSpec:
    """Who may write to and who may watch one host's console."""

    write_uids: frozenset[int] = frozenset()
    write_gids: frozenset[int] = frozenset()
    read_uids: frozenset[int] = frozenset()
    read_gids: frozenset[int] = frozenset()

    def right(self, uid: int, groups: frozenset[int]) -> Right:
        """``write``, ``read`` or ``none`` for a peer with ``uid`` in ``groups``."""
        if uid in self.write_uids or groups & self.write_gids:
            return "write"
        if uid in self.read_uids or groups & self.read_gids:
            return "read"
        return "none"


def peer_groups(uid: int, gid: int) -> frozenset[int]:
    """The peer's primary and supplementary groups, from the system's database."""
    try:
        name = pwd.getpwuid(uid).pw_name
    except KeyError:
        return frozenset({gid})
    return frozenset({gid, *os.getgrouplist(name, gid)})


def _where(doc: Doc, key: Key, label: str) -> Where:
    pos = doc.pos(key)
    return Where(doc.path, pos.line if pos else None, pos.column if pos else None, label)


def parse_access(value: Any, doc: Doc, key: Key, label: str) -> AccessSpec:
    """An ``access:`` value → AccessSpec, names resolved now."""
    here = _where(doc, key, label)
    if not isinstance(value, dict):
        raise here.error(f"expected a mapping with write: and/or read:, got {kind_of(value)}")
    for name in value:
        if name not in FIELDS:
            raise _where(doc, (*key, name), f"{label}.{name}").error(
                "unknown field (allowed: read, write)"
            )
    resolved: dict[str, tuple[frozenset[int], frozenset[int]]] = {}
    for field in ("write", "read"):
        items = value.get(field, [])
        at = _where(doc, (*key, field), f"{label}.{field}")
        if isinstance(items, str):
            items = [items]
        if not isinstance(items, list) or not all(isinstance(i, str) and i for i in items):
            raise at.error(f"expected a list of user names and @groups, got {kind_of(items)}")
        uids, gids = set(), set()
        for item in items:
            if item.startswith("@"):
                gids.add(_gid(item[1:], at))
            else:
                uids.add(_uid(item, at))
        resolved[field] = (frozenset(uids), frozenset(gids))
    return AccessSpec(
        write_uids=resolved["write"][0],
        write_gids=resolved["write"][1],
        read_uids=resolved["read"][0],
        read_gids=resolved["read"][1],
    )


def _uid(name: str, where: Where) -> int:
    if name.isdigit():
        return int(name)
    try:
        return pwd.getpwnam(name).pw_uid
    except KeyError:
        raise where.error(f"no user named {name!r} on this system") from None


def _gid(name: str, where: Where) -> int:
    if not name:
        raise where.error("'@' needs a group name, e.g. @operators")
    if name.isdigit():
        return int(name)
    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        raise where.error(f"no group named {name!r} on this system") from None
