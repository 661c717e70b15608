"""Rules of issue 13 checked on the source tree itself (by parsing it, so a new module that
breaks one fails here, not in a review):

* ``IpmiSolTransport(`` is constructed in one place only (the registry's ``ipmi://`` opener
  in ``transports/ipmi/transport.py``): every console opens through solcap.connect;
* pyghmi is imported only under ``solcap/transports/ipmi/`` and ``solcap/sim/``;
* no module monkeypatches another at import: no attribute of an imported module (or of
  anything reached through one) is assigned, and no ``setattr`` runs, at module level.
  solcap's pyghmi I/O loop is installed by a call when the first IPMI session starts;
* rich (progress bars, tables) is imported only by the CLI layer (``solcap/commands/``).
"""

from __future__ import annotations

import ast
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
