"""docs/test-index.md names tests that exist: a renamed or deleted test leaves no dead pointer.

Each row's cell names tests as `` `dir/file.py::test` `` and continues with `` `::other` ``
for the same file, or `` `dir/file.py` `` for a whole file. Every one must be a file under
tests/ defining that test function.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(30)
ROOT = Path(__file__).resolve().parents[1]
REF = re.compile(r"`([\w/]+\.py)?(?:::(\w+))?(?:\[[^\]`]*\])?`")


def pointers() -> list[tuple[int, str, str | None]]:
    """(line number, file under tests/, test name or None) for every pointer in the index."""
    found: list[tuple[int, str, str | None]] = []
    lines = (ROOT / "docs" / "test-index.md").read_text().splitlines()
    for number, line in enumerate(lines, 1):
        if not line.startswith("|") or line.startswith("|---"):
            continue
        cell = line.rstrip("|").rsplit("|", 1)[-1]
        current: str | None = None
        for match in REF.finditer(cell):
            path, name = match.groups()
            if path is None and name is None:
                continue
            if path is not None:
                current = path
            if current is None:
                raise AssertionError(f"docs/test-index.md:{number}: `::{name}` names no file")
            found.append((number, current, name))
    return found


def test_the_index_names_many_tests() -> None:
    assert len(pointers()) > 100  # a parser that finds nothing would prove nothing


def test_every_test_the_index_names_exists() -> None:
    missing = []
    for number, path, name in pointers():
        # Paths are under tests/; one written from the top (`tests/damage.py`) is accepted too.
        file = ROOT / path if path.startswith("tests/") else ROOT / "tests" / path
        if not file.is_file():
            missing.append(f"docs/test-index.md:{number}: no file {file.relative_to(ROOT)}")
            continue
        if name is None:
            continue
        tree = ast.parse(file.read_text())
        defined = {
            node.name
            for node in ast.walk(tree)
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        }
        if name not in defined:
            missing.append(f"docs/test-index.md:{number}: {file.relative_to(ROOT)} has no {name}")
    assert missing == []
