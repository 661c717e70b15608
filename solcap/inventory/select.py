"""Choosing hosts from an inventory: names/globs/labels (``--limit``, ``--label``) and
deterministic shards (``--shard K/N``)."""

from __future__ import annotations

import fnmatch
import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from solcap.errors import UsageError
from solcap.inventory.model import (
    Host,
)


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
