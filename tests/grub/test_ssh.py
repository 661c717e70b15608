"""solcap.transports.ssh against a real sshd on 127.0.0.1: host keys, auth, commands, files,
sudo."""

from __future__ import annotations

import hashlib
import os
import shlex
import stat
import subprocess
from pathlib import Path

import pytest

from solcap.errors import ConnectError, TargetError, UsageError
from solcap.transports.ssh import SBIN_PATH, SshTarget, connect, resolve_secret

from .conftest import SUDO_PASSWORD, Sshd, SudoLogin


def target(server: Sshd, **options: object) -> SshTarget:
    options.setdefault("key_file", str(server.client_key))
    options.setdefault("known_hosts", str(server.known_hosts))
    return SshTarget.parse(server.url, **options)


def test_parse_url() -> None:
    t = SshTarget.parse("ssh://admin@db1.example:2222", sudo=True)
    assert (t.user, t.host, t.port, t.sudo) == ("admin", "db1.example", 2222, True)
    assert t.host_key_name == "[db1.example]:2222"
    assert SshTarget.parse("ssh://root@[::1]").host_key_name == "::1"
    with pytest.raises(UsageError, match="password in the URL"):
        SshTarget.parse("ssh://root:secret@host")
    with pytest.raises(UsageError):
        SshTarget.parse("telnet://host")


def test_secret_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOLCAP_TEST_PW", "hunter2")
    assert resolve_secret("env:SOLCAP_TEST_PW") == "hunter2"
    secret = tmp_path / "pw"
    secret.write_text("s3cret\n")
    secret.chmod(0o600)
    assert resolve_secret(f"file:{secret}") == "s3cret"
    secret.chmod(0o644)
    with pytest.raises(UsageError, match="chmod 600"):
        resolve_secret(f"file:{secret}")
    with pytest.raises(UsageError, match="env:NAME or file:PATH"):
        resolve_secret("hunter2")


def test_run_and_files(sshd: Sshd, tmp_path: Path) -> None:
    with connect(target(sshd)) as ssh:
        result = ssh.run("echo out; echo err >&2; exit 7")
        assert (result.exit_status, result.stdout, result.stderr) == (7, "out\n", "err\n")
        big = ssh.run("head -c 300000 /dev/zero | tr '\\0' x")
        assert big.stdout == "x" * 300000
        path = tmp_path / "f.txt"
        assert ssh.read_file(str(path)) is None
        path.write_text("old\n")
        path.chmod(0o640)
        ssh.write_file_atomic(str(path), "new ünïcode\n")
        assert path.read_text() == "new ünïcode\n"
        assert stat.S_IMODE(path.stat().st_mode) == 0o640  # mode kept
        assert ssh.read_file(str(path)) == "new ünïcode\n"
        ssh.write_file_atomic(str(tmp_path / "g"), "x", 0o600)
        assert stat.S_IMODE((tmp_path / "g").stat().st_mode) == 0o600
        assert sorted(os.listdir(tmp_path)) == ["f.txt", "g"]  # no temp files left
        assert ssh.list_dir(str(tmp_path)) == ["f.txt", "g"]
        assert ssh.list_dir(str(tmp_path / "nope")) is None
        ssh.copy_file(str(path), str(tmp_path / "f.bak"))
        with pytest.raises(TargetError, match="exists already"):
            ssh.copy_file(str(path), str(tmp_path / "f.bak"))


def test_command_timeout_names_host(sshd: Sshd) -> None:
    with connect(target(sshd)) as ssh, pytest.raises(TargetError) as info:
        ssh.run("sleep 30", timeout=0.5)
    assert "127.0.0.1" in str(info.value) and "did not finish" in str(info.value)


def test_unknown_host_key_is_refused(sshd: Sshd, tmp_path: Path) -> None:
    empty = tmp_path / "known_hosts"
    with pytest.raises(ConnectError) as info:
        connect(target(sshd, known_hosts=str(empty)))
    message = info.value.one_line()
    assert "unknown host key" in message
    assert f"ssh-keyscan -p {sshd.port} 127.0.0.1 >> {empty}" in message
    assert "--accept-new-host-key" in message
    assert not empty.exists()


def test_accept_new_host_key_writes_known_hosts(
    sshd: Sshd, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    known = tmp_path / "kh" / "known_hosts"
    with connect(target(sshd, known_hosts=str(known), accept_new_host_key=True)) as ssh:
        assert ssh.run("true").ok
    assert known.read_text() == sshd.known_hosts_line
    assert stat.S_IMODE(known.stat().st_mode) == 0o600
    assert any("accepting new host key" in r.getMessage() for r in caplog.records)
    # Now known: connects without the option.
    with connect(target(sshd, known_hosts=str(known))) as ssh:
        assert ssh.run("true").ok


def test_changed_host_key_is_refused_even_with_accept_new(sshd: Sshd, tmp_path: Path) -> None:
    other = tmp_path / "other"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    pub = " ".join(Path(f"{other}.pub").read_text().split()[:2])
    known = tmp_path / "known_hosts"
    known.write_text(f"[127.0.0.1]:{sshd.port} {pub}\n")
    before = hashlib.sha256(known.read_bytes()).hexdigest()
    with pytest.raises(ConnectError) as info:
        connect(target(sshd, known_hosts=str(known), accept_new_host_key=True))
    message = info.value.one_line()
    assert "host key CHANGED" in message and "ssh-keygen -R" in message
    assert "\n" not in message
    assert hashlib.sha256(known.read_bytes()).hexdigest() == before


def test_wrong_client_key_is_one_line_connect_error(sshd: Sshd, tmp_path: Path) -> None:
    wrong = tmp_path / "wrong"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(wrong)], check=True)
    with pytest.raises(ConnectError) as info:
        connect(target(sshd, key_file=str(wrong)))
    message = info.value.one_line()
    assert message.startswith(f"{sshd.user}@127.0.0.1:{sshd.port}: authentication failed")
    assert info.value.__cause__ is None  # paramiko's exception does not leak


def test_nothing_listening_is_connect_error(sshd: Sshd) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        t = SshTarget("127.0.0.1", "root", port, known_hosts=str(sshd.known_hosts))
        with pytest.raises(ConnectError, match="cannot connect"):
            connect(t)


def test_sudo_password_on_stdin_never_in_argv(
    sudo_login: SudoLogin, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A real non-root login and Debian's sudo: the rule asks for the account's password.
    monkeypatch.setenv("SOLCAP_TEST_SUDO", SUDO_PASSWORD)
    t = target(sudo_login.server, sudo=True, sudo_password="env:SOLCAP_TEST_SUDO")
    with connect(t) as ssh:
        line, stdin = ssh.wrap("id -u", sudo=True)
        assert "pa ss" not in line and stdin == b"pa ss'word\n"
        assert ssh.run("id -u").stdout == f"{sudo_login.uid}\n"  # the login is not root
        before = len(sudo_login.commands())
        result = ssh.run("id -u; echo hello; cat /dev/null", sudo=True)
        assert result.ok, result.stderr
        assert result.stdout == "0\nhello\n"  # root, after sudo took the password
        # Exactly the one command, as root, as sudo itself logged it.
        inner = f'PATH="$PATH":{SBIN_PATH}; export PATH; id -u; echo hello; cat /dev/null'
        assert sudo_login.commands()[before:] == [f"/usr/bin/sh -c {shlex.quote(inner)}"]
        assert "pa ss" not in sudo_login.log.read_text()  # not in the argv sudo logged
        # A command under sudo never sees the password on its stdin.
        assert ssh.run("cat", sudo=True).stdout == ""
    monkeypatch.setenv("SOLCAP_TEST_SUDO", "wrong")
    with connect(t) as ssh:
        before = len(sudo_login.commands())
        result = ssh.run("echo hello", sudo=True)
        assert result.exit_status == 1 and result.stdout == ""
        assert "sudo: 1 incorrect password attempt" in result.stderr, result.stderr
        assert sudo_login.commands()[before:] == []


def test_sudo_without_password_uses_non_interactive(sudo_login: SudoLogin) -> None:
    with connect(target(sudo_login.server, sudo=True)) as ssh:
        line, stdin = ssh.wrap("true", sudo=True)
        assert "sudo -n --" in line and stdin == b""
        before = len(sudo_login.commands())
        result = ssh.run("id -u", sudo=True)
        assert result.exit_status == 1 and result.stdout == ""
        assert result.stderr == "sudo: a password is required\n"
        assert sudo_login.commands()[before:] == []
