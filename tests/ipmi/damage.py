"""Say what kind of damage a byte stream took, for byte-exact tests that fail under load.

A SHA-256 mismatch alone does not tell a lost chunk from a reordered one, a duplicate or bytes
from another writer; each points at a different cause (a lost SOL packet, a bad retransmit or
partial-ACK path, a second process on the same pty), so a failing test reports which one.
"""

from __future__ import annotations

import collections
import glob
import os

#: Bytes compared at the first difference to find where the received run came from.
PROBE = 32


def describe_damage(sent: bytes, got: bytes) -> str:
    """One line: lengths, first differing offset, and where the bytes found there came from."""
    if sent == got:
        return "identical"
    n = min(len(sent), len(got))
    first = next((i for i in range(n) if sent[i] != got[i]), n)
    parts = [f"sent {len(sent)} bytes, got {len(got)}; first difference at {first}"]
    if collections.Counter(sent) == collections.Counter(got):
        parts.append("same bytes in another order (reordered)")
    probe = got[first : first + PROBE]
    if probe:
        at = _nearest(sent, probe, first)
        if at < 0:
            parts.append(f"received {probe[:16]!r}... appears nowhere in what was sent (foreign)")
        elif at < first:
            parts.append(f"received bytes there repeat sent offset {at} (duplicate)")
        else:
            parts.append(f"received bytes there are sent offset {at} ({at - first} bytes skipped)")
    return "; ".join(parts)


def _nearest(sent: bytes, probe: bytes, near: int) -> int:
    """Offset of ``probe`` in ``sent`` closest to ``near`` (test data repeats), -1 if absent."""
    best, at = -1, sent.find(probe)
    while at >= 0:
        if best < 0 or abs(at - near) < abs(best - near):
            best = at
        at = sent.find(probe, at + 1)
    return best


def pty_holders(path: str, *, besides: set[int]) -> list[str]:
    """``pid cmdline`` of every other process with ``path`` open (a pty opened by a stale path)."""
    found = []
    for link in glob.glob("/proc/[0-9]*/fd/*"):
        try:
            if os.readlink(link) != path:
                continue
            pid = int(link.split("/")[2])
            if pid in besides:
                continue
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except (OSError, ValueError):
            continue
        found.append(f"{pid} {cmd[:120]}")
    return sorted(set(found))
