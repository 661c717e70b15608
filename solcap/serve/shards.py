"""The shard map: which running server owns a host, from the inventory and ``--shard i/N``.

``N`` servers started as ``solcap serve --shard i/N`` on one inventory split it by SHA-256 of
the host name (:func:`solcap.inventory.shard_of`, the split ``harvest --shard`` uses). A
client that knows the inventory and the servers' announcements therefore knows the *owner*
of every host without asking anyone — as conserver sends a client to a console's master:

- the owner's server runs and holds the host: attach there;
- the owner's server is not running here (stopped, restarting, or on another machine) while
  other shards of the same inventory are: the host is *not* opened directly, since its owner
  may hold the SOL session from elsewhere or take it back a moment later; the error names
  the shard;
- no server of the inventory runs at all: None, and the command opens the console itself, as
  without ``serve``.

A server started without ``--shard`` holds the whole inventory and answers for every host it
lists. Servers of one inventory that disagree on ``N`` are a configuration error (some
hosts would be held twice and others by nobody): a one-line :class:`UsageError`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from solcap.errors import ConnectError, UsageError
from solcap.inventory import parse_shard, shard_of
from solcap.serve import paths


@dataclass(frozen=True)
class ShardMap:
    """The live servers of one inventory, by shard index (see the module docstring)."""

    inventory: str
    #: ``N`` of the sharded servers; None when none runs with ``--shard``.
    count: int | None
    shards: tuple[tuple[int, paths.Announcement], ...]
    #: Servers without ``--shard`` (the whole inventory).
    whole: tuple[paths.Announcement, ...]

    @property
    def servers(self) -> tuple[paths.Announcement, ...]:
        return self.whole + tuple(a for _, a in self.shards)

    def owner(self, host: str) -> str | None:
        """``"i/N"``: the shard that owns ``host``; None without sharded servers."""
        if self.count is None:
            return None
        return f"{shard_of(host, self.count)}/{self.count}"

    def running(self) -> str:
        """The shards that run, for messages: ``0/3, 2/3``."""
        return ", ".join(f"{i}/{self.count}" for i, _ in self.shards) or "none"

    def holder(self, host: str) -> paths.Announcement | None:
        """The server to attach to for ``host``; None when no server of the inventory runs
        (open it yourself). ConnectError when the host's owner is known and does not hold it
        here: opening it directly could collide with the owner's SOL session."""
        for server in self.whole:
            if host in server.hosts:
                return server
        if self.count is None:
            return None
        index = shard_of(host, self.count)
        owner = dict(self.shards).get(index)
        if owner is None:
            raise ConnectError(
                host,
                f"owned by shard {index}/{self.count} of {self.inventory}, and that shard's "
                f"server does not run here (running here: {self.running()})",
            )
        if host not in owner.hosts:
            raise ConnectError(
                host,
                f"owned by shard {index}/{self.count}, whose server (pid {owner.pid}) does "
                "not hold it: no console in its inventory, or not re-read yet (SIGHUP it)",
            )
        return owner


def shard_map(inventory: str, directory: Path | None = None) -> ShardMap:
    """The shard map of ``inventory`` (matched by real path) from the live servers'
    announcements in ``directory`` (default :func:`paths.default_dir`)."""
    real = os.path.realpath(inventory)
    whole: list[paths.Announcement] = []
    sharded: dict[int, paths.Announcement] = {}
    counts: dict[int, list[str]] = {}
    for server in paths.announcements(directory):
        if server.inventory != real:
            continue
        if server.shard is None:
            whole.append(server)
            continue
        shard = parse_shard(server.shard)
        counts.setdefault(shard.count, []).append(f"{shard} (pid {server.pid})")
        sharded.setdefault(shard.index, server)
    if len(counts) > 1:
        seen = ", ".join(s for group in counts.values() for s in group)
        raise UsageError(
            f"{inventory}: the running servers disagree on the shard count ({seen}); "
            "restart them with one N"
        )
    count = next(iter(counts), None)
    return ShardMap(
        inventory=inventory,
        count=count,
        shards=tuple(sorted(sharded.items())),
        whole=tuple(whole),
    )
