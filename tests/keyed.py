"""Keyed dump checks: a segment is compared with what the host sent *for that key*.

Checking a segment's hash against the set of every dump the host sent would accept ``h.txt``
holding q's dump. The lab host reports each dump it sent as ``{"key", "sha256", "bytes"}``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any


def sent_by_key(dumps: Iterable[Mapping[str, Any]]) -> dict[str, list[str]]:
    """The hashes the host sent, per debug key, in the order it sent them."""
    by_key: dict[str, list[str]] = {}
    for dump in dumps:
        by_key.setdefault(str(dump["key"]), []).append(str(dump["sha256"]))
    return by_key


def key_of(segment: str) -> str:
    """The debug key a segment's name stands for: ``q`` for ``q`` and for a repeat's ``q-2``
    (each press of a key has its own segment and file), ``*`` for ``star`` / ``star-2``."""
    key = re.sub(r"-[0-9]+$", "", segment)
    return "*" if key == "star" else key


def assert_sent_for_key(sent: Mapping[str, list[str]], key: str, sha256: str, who: str) -> None:
    """``sha256`` is a dump the host sent for ``key`` (a segment name: ``q``, ``q-2``, ``star``),
    not for another key."""
    name = key_of(key)
    assert sha256 in sent.get(name, []), f"{who} {key}: not the dump the host sent for that key"
