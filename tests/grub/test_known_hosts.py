"""known_hosts as found on real machines, against a real sshd on 127.0.0.1.

Lines solcap cannot use (``@cert-authority``, bad base64, unknown key types) are skipped
with a warning naming file:line, so the rest of the file still verifies; hashed host names
are matched (paramiko can); a ``@revoked`` key is refused even with ``--accept-new-host-key``;
a file that cannot be read as known_hosts is one line naming it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import subprocess
from pathlib import Path

import pytest

from solcap.errors import ConnectError, UsageError
from solcap.transports.ssh import SshTarget, connect

from .conftest import Sshd

pytestmark = pytest.mark.timeout(60)

JUNK = [
    "# a comment",
    "",
    "@cert-authority *.example.org ssh-ed25519 "
    "AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl ca",
    "bad.example ssh-ed25519 !!!not-base64!!!",
    "weird.example ssh-quantum-9000 AAAAB3NzaC1yc2EAAAADAQABAAABAQ==",
    "onlytwo.example ssh-ed25519",
]


def target(server: Sshd, known: Path, **options: object) -> SshTarget:
    options.setdefault("key_file", str(server.client_key))
    return SshTarget.parse(server.url, known_hosts=str(known), **options)


def _hashed(name: str) -> str:
    salt = os.urandom(20)
    digest = hmac.new(salt, name.encode(), hashlib.sha1).digest()
    return f"|1|{base64.b64encode(salt).decode()}|{base64.b64encode(digest).decode()}"


def test_unusable_lines_are_skipped_with_a_warning(
    sshd: Sshd, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Before: paramiko raised on the bad base64 line (a traceback-shaped one-liner that
    # refused the whole file, so the good line after it never counted).
    known = tmp_path / "known_hosts"
    known.write_text("\n".join([*JUNK, sshd.known_hosts_line.rstrip("\n")]) + "\n")
    with caplog.at_level(logging.WARNING, logger="solcap"), connect(target(sshd, known)) as ssh:
        assert ssh.run("true").ok
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(f"{known}:3:" in w and "@cert-authority" in w for w in warnings), warnings
    assert any(f"{known}:4:" in w and "base64" in w for w in warnings), warnings
    assert any(f"{known}:5:" in w and "ssh-quantum-9000" in w for w in warnings), warnings
    assert any(f"{known}:6:" in w for w in warnings), warnings
    assert all("\n" not in w for w in warnings)


def test_hashed_host_name_is_matched(sshd: Sshd, tmp_path: Path) -> None:
    known = tmp_path / "known_hosts"
    name = f"[{sshd.host}]:{sshd.port}"
    known.write_text(f"{_hashed(name)} {sshd.host_key_pub}\n")
    with connect(target(sshd, known)) as ssh:
        assert ssh.run("true").ok


def test_revoked_key_is_refused_even_with_accept_new(sshd: Sshd, tmp_path: Path) -> None:
    known = tmp_path / "known_hosts"
    known.write_text(f"@revoked * {sshd.host_key_pub}\n")
    before = known.read_bytes()
    with pytest.raises(ConnectError) as info:
        connect(target(sshd, known, accept_new_host_key=True))
    message = info.value.one_line()
    assert "REVOKED" in message and f"{known}:1" in message
    assert known.read_bytes() == before  # not "accepted" into the file


def test_revoked_wins_over_a_known_line(sshd: Sshd, tmp_path: Path) -> None:
    known = tmp_path / "known_hosts"
    known.write_text(sshd.known_hosts_line + f"@revoked * {sshd.host_key_pub}\n")
    with pytest.raises(ConnectError, match="REVOKED"):
        connect(target(sshd, known))


def test_revoked_other_key_does_not_block(sshd: Sshd, tmp_path: Path) -> None:
    other = tmp_path / "other"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    pub = " ".join(Path(f"{other}.pub").read_text().split()[:2])
    known = tmp_path / "known_hosts"
    known.write_text(f"@revoked * {pub}\n" + sshd.known_hosts_line)
    with connect(target(sshd, known)) as ssh:
        assert ssh.run("true").ok


@pytest.mark.parametrize(
    "content",
    [b"\xff\xfe\x00binary\x00", "a" * 10 + "\x00" + "b"],
    ids=["not-utf8", "nul"],
)
def test_broken_file_is_one_line(sshd: Sshd, tmp_path: Path, content: bytes | str) -> None:
    known = tmp_path / "known_hosts"
    if isinstance(content, str):
        known.write_text(content)
    else:
        known.write_bytes(content)
    with pytest.raises(UsageError) as info:
        connect(target(sshd, known))
    message = info.value.one_line()
    assert str(known) in message and "known_hosts" in message
    assert "\n" not in str(info.value)


def test_directory_as_known_hosts_is_one_line(sshd: Sshd, tmp_path: Path) -> None:
    with pytest.raises(UsageError) as info:
        connect(target(sshd, tmp_path))
    assert str(tmp_path) in info.value.one_line()
