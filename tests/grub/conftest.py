"""A real OpenSSH server on 127.0.0.1 for the SSH and persistent-GRUB tests.

One sshd per session (started by tests/sshd.py): host key and client key generated in a temp
directory, an ephemeral port, never the machine's own sshd config.
The login is the current user (root in CI), so the "remote" files are the temp directories
the tests create — the machine's own /etc/default/grub is never a target.

The sudo tests log in as a throw-away non-root account instead (``sudo_login``), through a
second sshd, and go through Debian's real ``sudo`` with a sudoers rule that asks for that
account's password: nothing stands in for sudo.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests import peers
from tests.sshd import free_port, keygen, running_sshd

SUDO_PASSWORD = "pa ss'word"  # a space and a quote: it must reach sudo unmangled


@dataclass(frozen=True)
class Sshd:
    """A running test sshd and the files a client needs to reach it."""

    host: str
    port: int
    user: str
    client_key: Path
    host_key_pub: str  # "ssh-ed25519 AAAA…"
    known_hosts: Path  # holds exactly this server's key
    tmp: Path

    @property
    def url(self) -> str:
        return f"ssh://{self.user}@{self.host}:{self.port}"

    @property
    def known_hosts_line(self) -> str:
        return f"[{self.host}]:{self.port} {self.host_key_pub}\n"


@pytest.fixture(scope="session")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sshd]:
    tmp = tmp_path_factory.mktemp("sshd")
    client_key = keygen(tmp / "client_ed25519")
    port = free_port()
    with running_sshd(tmp, [port], [client_key]) as pub:
        server = Sshd(
            host="127.0.0.1",
            port=port,
            user=pwd.getpwuid(os.getuid()).pw_name,
            client_key=client_key,
            host_key_pub=pub,
            known_hosts=tmp / "known_hosts",
            tmp=tmp,
        )
        server.known_hosts.write_text(server.known_hosts_line)
        yield server


@dataclass(frozen=True)
class SudoLogin:
    """A throw-away non-root account that sshd lets in by key and Debian's sudo lets run
    anything as root once its password (SUDO_PASSWORD) is given."""

    server: Sshd  # a test sshd logging in as this account
    uid: int
    log: Path  # sudo's own log (sudoers ``logfile=``): one line per command it was asked for

    def commands(self) -> list[str]:
        """What sudo ran as root, in order (the ``COMMAND=`` of each line that ran one)."""
        lines = self.log.read_text().splitlines() if self.log.exists() else []
        return [line.split(" ; COMMAND=", 1)[1] for line in lines if _ran(line)]


def _ran(line: str) -> bool:
    """A sudo log line for a command it ran: "DATE : USER : PWD=… ; USER=root ; COMMAND=…"
    (a refusal names its reason where PWD= stands, a terminal's TTY= comes first)."""
    parts = line.split(" : ", 2)
    return len(parts) == 3 and parts[2].startswith(("PWD=", "TTY=")) and " ; COMMAND=" in line


def _sbin(binary: str) -> str:
    path = peers.find(binary)
    if path is None:
        peers.missing(binary, f"apt-get install {peers.PACKAGES.get(binary, binary)}")
    return path


def _remove_user(userdel: str, name: str) -> None:
    """userdel, again while the account's last sshd session is still going away."""
    deadline = time.monotonic() + 20
    while True:
        done = subprocess.run([userdel, name], capture_output=True, text=True, timeout=30)
        if done.returncode == 0:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"cannot remove test user {name}: {done.stderr.strip()}")
        time.sleep(0.1)  # the session's processes are exiting: poll the condition


@pytest.fixture(scope="session")
def sudo_login(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SudoLogin]:
    """Make the account, its sudoers rule and an sshd that lets it in; remove all of it after.

    Root is needed to create an account and a sudoers rule (CI runs as root). The rule lives
    in /etc/sudoers.d only while the session runs, checked by visudo before it is installed.
    """
    peers.need("sudo")
    visudo, useradd, userdel, chpasswd = (
        _sbin(b) for b in ("visudo", "useradd", "userdel", "chpasswd")
    )
    if os.geteuid() != 0:
        peers.missing("root (to create a sudo user)", "run the suite as root, as CI does")
    name = f"solcapsu{os.getpid() % 100000}"
    home = Path(tempfile.mkdtemp(prefix="solcap-sudo-home-"))
    logdir = Path(tempfile.mkdtemp(prefix="solcap-sudo-log-"))
    rule = Path(f"/etc/sudoers.d/solcap-test-{name}")
    made = False
    try:
        options = ["--system", "--no-create-home", "--user-group", "--shell", "/bin/sh"]
        subprocess.run(
            [useradd, *options, "--home-dir", str(home), name],
            check=True,
            capture_output=True,
            timeout=30,
        )
        made = True
        subprocess.run(
            [chpasswd], input=f"{name}:{SUDO_PASSWORD}\n", text=True, check=True, timeout=30
        )
        uid = pwd.getpwnam(name).pw_uid
        gid = pwd.getpwnam(name).pw_gid
        os.chown(home, uid, gid)  # 0700, its own: sshd starts the session there
        tmp = tmp_path_factory.mktemp("sudo-sshd")
        client_key = keygen(tmp / "client_ed25519")
        authorized = home / "authorized_keys"  # sshd reads it as the user, so theirs
        authorized.write_text(Path(f"{client_key}.pub").read_text())
        os.chown(authorized, uid, gid)
        authorized.chmod(0o600)
        log = logdir / "sudo.log"
        draft = tmp / "sudoers"
        draft.write_text(
            # timestamp_timeout=0: every command asks again, as each test's first one would.
            f"Defaults:{name} logfile={log}, loglinelen=0, timestamp_timeout=0, !mail_badpass\n"
            f"{name} ALL=(root) ALL\n"
        )
        subprocess.run([visudo, "-c", "-q", "-f", str(draft)], check=True, timeout=30)
        draft.chmod(0o440)
        shutil.copy2(draft, rule)
        port = free_port()
        extra = f"Match User {name}\n    AuthorizedKeysFile {authorized}\n"
        with running_sshd(tmp, [port], [client_key], extra=extra) as pub:
            server = Sshd("127.0.0.1", port, name, client_key, pub, tmp / "known_hosts", tmp)
            server.known_hosts.write_text(server.known_hosts_line)
            yield SudoLogin(server=server, uid=uid, log=log)
    finally:
        rule.unlink(missing_ok=True)
        if made:
            _remove_user(userdel, name)
        shutil.rmtree(home, ignore_errors=True)
        shutil.rmtree(logdir, ignore_errors=True)
