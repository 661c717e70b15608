"""Keyed dump checks: a segment is compared with what the host sent *for that key*.

Checking a segment's hash against the set of every dump the host sent would accept ``h.txt``
holding q's dump. The lab host reports each dump it sent as ``{"key", "sha256", "bytes"}``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any


def sent_by_key(dumps: Iterable[Mapping[str, Any]]) -> dict[str, list[str]]:
    """The hashes the host sent, per debug key, in the order it sent them."""
    by_key: dict[str, list[str]] = {}
    for dump in dumps:
        by_key.setdefault(str(dump["key"]), []).append(str(dump["sha256"]))
    return by_key


def assert_sent_for_key(sent: Mapping[str, list[str]], key: str, sha256: str, who: str) -> None:
    """``sha256`` is a dump the host sent for ``key`` (not for another key)."""
    name = "*" if key == "star" else key
    assert sha256 in sent.get(name, []), f"{who} {key}: not the dump the host sent for that key"
