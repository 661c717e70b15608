"""Hundreds of damaged profiles, runbooks and inventories: always one clear line, never more.

Each document starts from a file we ship (or a valid inventory) and is damaged by hypothesis:
lines deleted or duplicated, values replaced with hostile text, the file cut short, junk
inserted. The property: solcap either accepts it (exit 0: the damage was harmless) or exits 2
with exactly one line on stderr that names the file — no traceback, no other exit code — and
in neither case does it create a recording or contact anything (the dry run and validation
paths touch no console; `--root` stays empty).
"""

from __future__ import annotations

import contextlib
import io
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from solcap.cli import main
from tests import damage

pytestmark = pytest.mark.timeout(300)
TOP = Path(__file__).resolve().parents[2]
INVENTORY = """\
defaults:
  password: env:BMC_PASSWORD
  cipher: 17
hosts:
  node01:
    bmc: ipmi://admin@127.0.0.1:1
    profile: xen-serial-debug
    labels: [rack1]
  node02:
    serial: /dev/null
    line: "38400,8n1"
"""
HOSTILE = st.sampled_from(
    [
        '"',
        "'",
        "[",
        "{",
        "}",
        "-1",
        "0",
        "true",
        "null",
        "ø\u202e",
        "\t",
        "${nope}",
        "=",
        ":",
        '"unterminated',
        "[[x]]",
        "- - -",
        "&a *a",
        "!!python/object:os.system",
        "1e999",
        "x" * 300,
        "\\",
        "console=com1 com1=1,9z9",
        "R",
        "ipmi://u:p@h",
    ]
)


def damaged(text: str) -> st.SearchStrategy[str]:
    """At least one edit, with this suite's hostile values (tests/damage.py does the edits)."""
    return damage.damaged(text, least=1, values=HOSTILE)


def _fresh(tmp_path: Path) -> Path:
    """A directory of its own per example (hypothesis reuses the test's tmp_path)."""
    return Path(tempfile.mkdtemp(dir=tmp_path))


def _run(argv: list[str]) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        status = main(argv, out=io.StringIO())
    return status, err.getvalue()


def _assert_clean(status: int, err: str, path: Path, root: Path) -> None:
    event(f"exit {status}")
    assert status in (0, 2), (status, err)
    if status == 2:
        lines = err.strip().splitlines()
        assert len(lines) == 1, err
        assert "Traceback" not in err
        assert str(path) in err, err  # the damaged file is named (the line says which)
    assert not any(root.iterdir()), "a rejected or dry-run file must not start a recording"


SETTINGS = settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@SETTINGS
@given(data=st.data())
def test_damaged_profiles(data: st.DataObject, tmp_path: Path) -> None:
    tmp_path = _fresh(tmp_path)
    source = data.draw(st.sampled_from(sorted((TOP / "profiles").glob("*.toml"))))
    path = tmp_path / source.name
    path.write_text(data.draw(damaged(source.read_text())))
    root = tmp_path / "rec"
    root.mkdir(exist_ok=True)
    status, err = _run(["profile", "validate", "--profiles-dir", str(TOP / "profiles"), str(path)])
    _assert_clean(status, err, path, root)


@SETTINGS
@given(data=st.data())
def test_damaged_runbooks(data: st.DataObject, tmp_path: Path) -> None:
    tmp_path = _fresh(tmp_path)
    source = data.draw(st.sampled_from(sorted((TOP / "runbooks").glob("*.yaml"))))
    path = tmp_path / source.name
    path.write_text(data.draw(damaged(source.read_text())))
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(INVENTORY)
    root = tmp_path / "rec"
    root.mkdir(exist_ok=True)
    status, err = _run(
        ["run", str(path), "--inventory", str(inventory), "--dry-run", "--root", str(root)]
    )
    _assert_clean(status, err, path, root)


@SETTINGS
@given(data=st.data())
def test_damaged_inventories(data: st.DataObject, tmp_path: Path) -> None:
    tmp_path = _fresh(tmp_path)
    path = tmp_path / "inventory.yaml"
    path.write_text(data.draw(damaged(INVENTORY)))
    root = tmp_path / "rec"
    root.mkdir(exist_ok=True)
    status, err = _run(
        ["run", "harvest-debug-keys", "--inventory", str(path), "--dry-run", "--root", str(root)]
    )
    _assert_clean(status, err, path, root)
