"""Debug transports (pyserial's ``spy://``) log every byte sent, secrets included.

So they are refused unless ``--debug-transport`` is given, and then the log is a 0600 file
solcap creates itself (never through a symlink, never someone else's file).
"""

from __future__ import annotations

import io
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from solcap.cli import main
from solcap.errors import UsageError
from solcap.transports import registry
from solcap.transports.registry import open_transport

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def pty_path() -> Iterator[tuple[int, str]]:
    """A real pty: spy:// wraps pyserial's native port, so it needs a device."""
    master, slave = os.openpty()
    path = os.ttyname(slave)
    os.close(slave)
    yield master, path
    os.close(master)


def test_spy_url_is_refused_without_the_flag(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], pty_path: tuple[int, str]
) -> None:
    # Before: the capture ran and pyserial wrote the hex dump to a 0644 file.
    log = tmp_path / "spy.txt"
    root = tmp_path / "rec"
    status = main(
        ["capture", f"spy://{pty_path[1]}?file={log}", "--for", "0.2", "--root", str(root)],
        out=io.StringIO(),
    )
    err = capsys.readouterr().err
    assert status == 2
    assert err.count("\n") == 1 and "--debug-transport" in err
    assert not log.exists()
    assert not root.exists() or not any(root.iterdir())


def test_library_refuses_spy_unless_allowed(pty_path: tuple[int, str]) -> None:
    with pytest.raises(UsageError, match="--debug-transport"):
        open_transport(f"spy://{pty_path[1]}")


def test_spy_log_is_private_with_the_flag(tmp_path: Path, pty_path: tuple[int, str]) -> None:
    master, path = pty_path
    log = tmp_path / "spy.txt"
    log.write_text("old")
    log.chmod(0o644)
    old_umask = os.umask(0o022)
    try:
        with registry.debug_transports_allowed():
            transport = open_transport(f"spy://{path}?file={log}")
        try:
            transport.write(b"hunter2")
            sent = b""
            while len(sent) < 7:
                sent += os.read(master, 64)
            assert sent == b"hunter2"
            os.write(master, b"ok")
            got = b""
            while len(got) < 2:
                got += transport.read(64, 2.0)
            assert got == b"ok"
        finally:
            transport.close()
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(log.stat().st_mode) == 0o600
    dump = log.read_text()
    assert "TX   0000  68 75 6E 74 65 72 32" in dump and "hunter2" in dump  # the secret is there
    assert "RX   0000  6F 6B" in dump
    assert "old" not in dump


def test_spy_log_through_a_symlink_is_refused(tmp_path: Path, pty_path: tuple[int, str]) -> None:
    target = tmp_path / "elsewhere"
    target.write_text("keep")
    link = tmp_path / "spy.txt"
    link.symlink_to(target)
    with registry.debug_transports_allowed(), pytest.raises(UsageError, match="symlink"):
        open_transport(f"spy://{pty_path[1]}?file={link}")
    assert target.read_text() == "keep"


def test_cli_flag_allows_spy(tmp_path: Path, pty_path: tuple[int, str]) -> None:
    log = tmp_path / "spy.txt"
    root = tmp_path / "rec"
    status = main(
        [
            "--debug-transport",
            "capture",
            f"spy://{pty_path[1]}?file={log}",
            "--for",
            "0.2",
            "--root",
            str(root),
        ],
        out=io.StringIO(),
    )
    assert status == 0
    assert stat.S_IMODE(log.stat().st_mode) == 0o600
    # The flag does not outlive the command.
    with pytest.raises(UsageError):
        open_transport(f"spy://{pty_path[1]}")
