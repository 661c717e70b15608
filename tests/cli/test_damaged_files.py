"""Every file solcap reads, damaged every way tests/damage.py knows, and fed to the command that
reads it: never a traceback or exit 1; a refusal is exit 2 and one line naming the file.

Files: a profile, a runbook, a YAML and an INI inventory, a recording's meta.json and
events.jsonl, a known_hosts file and a password file; damage: truncations, NUL bytes, bytes
that are not UTF-8, wrong top-level types, nesting thousands deep, a 2 MiB line, hostile values
(tests/damage.py's :func:`fixed_damage`), and endless input (``/dev/zero``).
"""

from __future__ import annotations

import contextlib
import io
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from solcap.cli import main
from solcap.config.credentials import read_secret_file
from solcap.errors import UsageError
from tests.damage import ENDLESS, EVENTS_JSONL, KNOWN_HOSTS, fixed_damage, meta_json

pytestmark = pytest.mark.timeout(120)
TOP = Path(__file__).resolve().parents[2]

INVENTORY_YAML = """\
hosts:
  node01:
    serial: /dev/null
    labels: [rack1]
  node02:
    bmc: ipmi://admin@127.0.0.1:9623
    password: env:IPMI_PASSWORD
"""
INVENTORY_INI = "[all]\nnode[1:3] solcap_serial=/dev/null\n[rack]\nnode1\n"


@pytest.fixture(scope="module")
def closed_port() -> Iterator[int]:
    """A loopback TCP port bound but not listening: a connection is refused at once."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


def _run(argv: list[str], cwd: Path) -> tuple[int, str]:
    err = io.StringIO()
    here = os.getcwd()
    os.chdir(cwd)
    try:
        with (
            open(os.devnull, "w") as null,
            contextlib.redirect_stdout(null),
            contextlib.redirect_stderr(err),
        ):
            try:
                status = main(argv, out=null)
            except SystemExit as stop:
                status = int(stop.code or 0)
    finally:
        os.chdir(here)
    return status, err.getvalue()


def _assert_contract(status: int, err: str, path: str, allowed: set[int]) -> None:
    assert "Traceback" not in err and "internal error" not in err, err
    assert status in allowed, (status, err)
    if status == 2:
        lines = [line for line in err.strip().splitlines() if not line.startswith("solcap: warn")]
        assert len(lines) == 1, err
        assert path in lines[0] or repr(path) in lines[0], err


KINDS = {
    "profile": ((TOP / "profiles" / "xen-serial-debug.toml").read_text(), "toml", "p.toml"),
    "runbook": ((TOP / "runbooks" / "harvest-debug-keys.yaml").read_text(), "yaml", "rb.yaml"),
    "inventory-yaml": (INVENTORY_YAML, "yaml", "inv.yaml"),
    "inventory-ini": (INVENTORY_INI, "ini", "inv.ini"),
    "known_hosts": (KNOWN_HOSTS, "text", "known_hosts"),
}


def _argv(kind: str, path: str, work: Path, port: int) -> tuple[list[str], set[int]]:
    if kind == "profile":
        return ["profile", "validate", path], {0, 2}
    if kind == "runbook":
        return ["run", path, "--host", "/dev/null", "--dry-run"], {0, 2}
    if kind.startswith("inventory"):
        return ["run", "harvest-debug-keys", "--inventory", path, "--dry-run"], {0, 2}
    # known_hosts is read before the connection, which the closed port then refuses (exit 3)
    ssh = f"ssh://root@127.0.0.1:{port}"
    return ["dom0", ssh, "xl-info", "--known-hosts", path, "--root", str(work / "rec")], {2, 3}


CASES = [
    (kind, case, content)
    for kind, (text, syntax, _name) in KINDS.items()
    for case, content in fixed_damage(text, syntax)
]


@pytest.mark.parametrize(("kind", "case", "content"), CASES, ids=[f"{k}-{c}" for k, c, _ in CASES])
def test_a_damaged_file_is_refused_in_one_line_or_read(
    kind: str, case: str, content: bytes, tmp_path: Path, closed_port: int
) -> None:
    path = tmp_path / KINDS[kind][2]
    path.write_bytes(content)
    path.chmod(0o600)
    argv, allowed = _argv(kind, str(path), tmp_path, closed_port)
    status, err = _run(argv, tmp_path)
    _assert_contract(status, err, str(path), allowed)
    assert not (tmp_path / "rec").exists(), "a refused or failed command left a recording"
    assert not (tmp_path / "recordings").exists()


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_endless_input_is_capped(kind: str, tmp_path: Path, closed_port: int) -> None:
    argv, _allowed = _argv(kind, ENDLESS, tmp_path, closed_port)
    status, err = _run(argv, tmp_path)
    _assert_contract(status, err, ENDLESS, {2})
    assert "larger than the limit" in err, err


def _recording(work: Path, meta: bytes | None = None, events: bytes | None = None) -> Path:
    rec = work / "rec-in"
    rec.mkdir()
    (rec / "console.raw").write_bytes(b"hello\n")
    (rec / "console.timing").write_text("O 0.1 6\n")
    (rec / "keys").mkdir()
    (rec / "keys" / "h.txt").write_bytes(b"hello")
    (rec / "meta.json").write_bytes(meta if meta is not None else meta_json().encode())
    (rec / "events.jsonl").write_bytes(events if events is not None else EVENTS_JSONL.encode())
    return rec


META_CASES = fixed_damage(meta_json(), "json")


@pytest.mark.parametrize(("case", "content"), META_CASES, ids=[c for c, _ in META_CASES])
@pytest.mark.parametrize("command", ["show", "replay", "export"])
def test_a_damaged_meta_json(command: str, case: str, content: bytes, tmp_path: Path) -> None:
    rec = _recording(tmp_path, meta=content)
    argv = [command, str(rec)]
    if command == "replay":
        argv += ["--speed", "0"]
    if command == "export":
        argv += ["--asciicast", str(tmp_path / "out.cast")]
    status, err = _run(argv, tmp_path)
    # 3: well-formed, but the segment's sha256 does not match its file (show's verdict)
    _assert_contract(status, err, "meta.json", {0, 2, 3})


EVENTS_CASES = fixed_damage(EVENTS_JSONL, "jsonl")


@pytest.mark.parametrize(("case", "content"), EVENTS_CASES, ids=[c for c, _ in EVENTS_CASES])
def test_damaged_events_are_skipped_line_by_line(case: str, content: bytes, tmp_path: Path) -> None:
    """events.jsonl is read by the web view: a cut or broken line is skipped, never raised,
    and only JSON objects come back (a kill mid-write leaves exactly such a line)."""
    from solcap.web.catalog import Entry, events

    rec = _recording(tmp_path, events=content)
    found, _more = events(Entry("host", rec.name, rec, {}, 6))
    assert all(isinstance(item, dict) for item in found)
    status, err = _run(["show", str(rec)], tmp_path)  # and show does not trip over it
    _assert_contract(status, err, "meta.json", {0, 3})


PASSWORD_CASES = fixed_damage("s3cret-Passw0rd\n", "text")


@pytest.mark.parametrize(("case", "content"), PASSWORD_CASES, ids=[c for c, _ in PASSWORD_CASES])
def test_a_damaged_password_file_is_one_line_naming_it(
    case: str, content: bytes, tmp_path: Path
) -> None:
    path = tmp_path / "pw"
    path.write_bytes(content)
    path.chmod(0o600)
    try:
        secret = read_secret_file(str(path))
    except UsageError as exc:
        message = exc.one_line()
        assert message.startswith(str(path)), message
        assert "\n" not in message
        return
    assert secret and "\n" not in secret and "\r" not in secret


def test_an_endless_password_file_is_capped() -> None:
    with pytest.raises(UsageError, match="not a regular file"):  # refused before any read
        read_secret_file(ENDLESS)
