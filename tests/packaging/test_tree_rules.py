"""Rules of issue 13 checked on the source tree itself (by parsing it, so a new module that
breaks one fails here, not in a review):

* ``IpmiSolTransport(`` is constructed in one place only (the registry's ``ipmi://`` opener
  in ``transports/ipmi/transport.py``): every console opens through solcap.connect;
* pyghmi is imported only under ``solcap/transports/ipmi/`` and ``solcap/sim/``;
* no module monkeypatches another at import: no attribute of an imported module (or of
  anything reached through one) is assigned, and no ``setattr`` runs, at module level.
  solcap's pyghmi I/O loop is installed by a call when the first IPMI session starts;
* rich (progress bars, tables) is imported only by the CLI layer (``solcap/commands/``).
* docs/design.md's import-order diagram names every part of solcap once, and no part
  imports, when it is imported, from a row below its own.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(60)

PACKAGE = Path(__file__).resolve().parents[2] / "solcap"


def _modules() -> Iterator[tuple[str, ast.Module]]:
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE.parent).as_posix()
        yield relative, ast.parse(path.read_text(), filename=relative)


def _module_level(tree: ast.Module) -> Iterator[ast.stmt]:
    """Statements that run at import: the module body and the bodies of its top-level
    ``if``/``try``/``with`` blocks, not those of functions or classes."""
    pending: list[ast.stmt] = list(tree.body)
    while pending:
        node = pending.pop()
        yield node
        if isinstance(node, ast.If | ast.For | ast.While | ast.With):
            pending.extend(
                [*node.body, *node.orelse] if not isinstance(node, ast.With) else node.body
            )
        elif isinstance(node, ast.Try):
            pending.extend([*node.body, *node.orelse, *node.finalbody])
            for handler in node.handlers:
                pending.extend(handler.body)


def _imported_names(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            names.update(a.asname or a.name for a in node.names)
    return names


def _base(node: ast.expr) -> str | None:
    while isinstance(node, ast.Attribute | ast.Subscript):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def test_ipmi_sol_transport_is_constructed_in_one_place() -> None:
    sites = [
        f"{name}:{node.lineno}"
        for name, tree in _modules()
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and (
            (isinstance(node.func, ast.Name) and node.func.id == "IpmiSolTransport")
            or (isinstance(node.func, ast.Attribute) and node.func.attr == "IpmiSolTransport")
        )
    ]
    assert len(sites) == 1, sites
    assert sites[0].startswith("solcap/transports/ipmi/transport.py:"), sites


def test_pyghmi_is_imported_only_by_the_ipmi_package_and_the_simulator() -> None:
    allowed = ("solcap/transports/ipmi/", "solcap/sim/")
    found: list[str] = []
    outside: list[str] = []
    for name, tree in _modules():
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                modules = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules = [node.module]
            else:
                continue
            if any(m == "pyghmi" or m.startswith("pyghmi.") for m in modules):
                found.append(name)
                if not name.startswith(allowed):
                    outside.append(f"{name}:{node.lineno}")
    assert found, "no pyghmi import found at all: the scan is broken"
    assert not outside, outside


def _patches(name: str, tree: ast.Module) -> list[str]:
    """Module-level statements that change something imported (an attribute or item of an
    imported name, or any ``setattr``/``delattr``)."""
    imported = _imported_names(tree)
    patches: list[str] = []
    for node in _module_level(tree):
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign | ast.Delete):
            targets = list(node.targets)
        elif isinstance(node, ast.AugAssign | ast.AnnAssign):
            targets = [node.target]
        elif isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
            func = node.value.func
            if isinstance(func, ast.Name) and func.id in ("setattr", "delattr"):
                patches.append(f"{name}:{node.lineno}: {func.id}()")
        while targets:
            each = targets.pop()
            if isinstance(each, ast.Tuple | ast.List):
                targets.extend(each.elts)
            elif isinstance(each, ast.Starred):
                targets.append(each.value)
            elif isinstance(each, ast.Attribute | ast.Subscript) and _base(each) in imported:
                patches.append(f"{name}:{node.lineno}: {ast.unparse(each)}")
    return patches


def test_no_module_level_monkeypatching() -> None:
    patches = [p for name, tree in _modules() for p in _patches(name, tree)]
    assert not patches, patches


def test_the_scan_sees_a_monkeypatch() -> None:
    """The check above can fail: patches written the usual ways are found."""
    tree = ast.parse(
        "import pyghmi.ipmi.private.session as s\n"
        "from pyghmi.ipmi import console\n"
        "try:\n    s.Session._io_wait = staticmethod(print)\nexcept ImportError:\n    pass\n"
        "setattr(console, 'x', 1)\n"
        "def later():\n    s.Session.y = 2\n"
    )
    assert _patches("example.py", tree) == [
        "example.py:7: setattr()",
        "example.py:4: s.Session._io_wait",
    ]


def test_rich_is_imported_only_by_the_cli_layer() -> None:
    """Presentation stays out of the library: progress bars and tables live in commands/."""
    outside = [
        f"{name}:{node.lineno}"
        for name, tree in _modules()
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        and any(
            m == "rich" or m.startswith("rich.")
            for m in (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
            )
        )
        and not name.startswith(("solcap/commands/", "solcap/cli.py"))
    ]
    assert not outside, outside


DESIGN = PACKAGE.parent / "docs" / "design.md"


def _unit(module: str) -> str | None:
    """The top-level part of solcap a module belongs to (``solcap.inventory.model`` →
    ``inventory``), or None for solcap itself and anything outside it."""
    parts = module.split(".")
    if parts[0] != "solcap" or len(parts) < 2 or parts[1] == "__version__":
        return None
    return parts[1]


def _runtime_imports(body: list[ast.stmt]) -> Iterator[ast.Import | ast.ImportFrom]:
    """The imports that run when a module is imported: not those inside functions or classes,
    nor those under ``if TYPE_CHECKING:``."""
    for node in body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        elif isinstance(node, ast.If):
            if "TYPE_CHECKING" not in ast.unparse(node.test):
                yield from _runtime_imports(node.body)
            yield from _runtime_imports(node.orelse)
        elif isinstance(node, ast.Try):
            for block in (node.body, node.orelse, node.finalbody, *(h.body for h in node.handlers)):
                yield from _runtime_imports(block)
        elif isinstance(node, ast.With):
            yield from _runtime_imports(node.body)


def _import_graph() -> dict[str, set[str]]:
    """Which parts of solcap each part imports when it is imported, relative imports resolved."""
    graph: dict[str, set[str]] = {}
    for name, tree in _modules():
        module = name.removesuffix(".py").removesuffix("/__init__").replace("/", ".")
        package = module if name.endswith("/__init__.py") else module.rsplit(".", 1)[0]
        own = _unit(module) or "__init__"
        found = graph.setdefault(own, set())
        for node in _runtime_imports(tree.body):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                base = package.split(".")
                base = base[: len(base) - node.level + 1] if node.level else []
                stem = ".".join([*base, node.module] if node.module else base)
                # ``from solcap import x`` names a part; ``from solcap.x import y`` is in x.
                targets = [f"{stem}.{a.name}" for a in node.names] if stem == "solcap" else [stem]
            found.update(u for t in targets if (u := _unit(t)) is not None and u != own)
    return graph


def _diagram() -> tuple[list[set[str]], dict[str, set[str]]]:
    """docs/design.md's import order: its rows (each starts with ``→``, first to last) and the
    parts set aside below them (``web/  imports errors, …``), each with the words of its line,
    among which are the parts it may import."""
    block = DESIGN.read_text().split("Imports flow one way", 1)[1].split("```", 2)[1]
    rows: list[set[str]] = []
    aside: dict[str, set[str]] = {}
    for line in filter(str.strip, block.splitlines()):
        first, rest = [*line.split(None, 1), ""][:2]
        if rows and not line.startswith(" ") and first.endswith("/"):
            aside[first.rstrip("/")] = {w.rstrip("/") for w in re.split(r"[\s,()]+", rest)}
            continue
        if line.lstrip().startswith("→") or not rows:
            rows.append(set())
        body = line.strip().removeprefix("→")
        rows[-1].update(w.strip().rstrip("/") for w in body.split(",") if w.strip())
    return rows, aside


def test_design_md_import_order_matches_the_tree() -> None:
    """docs/design.md's diagram names every part of solcap once, and no part imports at
    module level from a row below its own or, when set aside, beyond what its line names."""
    graph = _import_graph()
    parts = set(graph) - {"__init__"}
    rows, aside = _diagram()
    placed = [u for row in rows for u in row] + list(aside)
    assert sorted(placed) == sorted(set(placed)), "a part is named twice"
    assert set(placed) == parts, (sorted(parts - set(placed)), sorted(set(placed) - parts))
    row_of = {u: i for i, row in enumerate(rows) for u in row}
    upward = sorted(
        f"{u} imports {d}"
        for u, deps in graph.items()
        if u in row_of
        for d in deps
        if (d in row_of and row_of[d] > row_of[u]) or d in aside
    )
    assert not upward, upward
    beyond = sorted(f"{u} imports {d}" for u in aside for d in graph[u] - aside[u])
    assert not beyond, beyond
