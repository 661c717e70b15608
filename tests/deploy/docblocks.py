"""The fenced code blocks of a docs/ file, so a test runs exactly what the docs show."""

from __future__ import annotations

import re
from pathlib import Path

DOCS = Path(__file__).resolve().parents[2] / "docs"

_FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", re.MULTILINE | re.DOTALL)


def blocks(doc: str, language: str) -> list[str]:
    """Every ```language block of ``docs/<doc>``, in order."""
    text = (DOCS / doc).read_text()
    return [m.group(2) for m in _FENCE.finditer(text) if m.group(1) == language]


def block(doc: str, name: str) -> str:
    """The one yaml block of ``docs/<doc>`` whose first line is ``# <name>: …`` (its title)."""
    found = [b for b in blocks(doc, "yaml") if b.startswith(f"# {name}: ")]
    assert len(found) == 1, f"docs/{doc}: {len(found)} yaml blocks are titled {name!r}"
    return found[0]
