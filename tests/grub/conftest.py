"""A real OpenSSH server on 127.0.0.1 for the SSH and persistent-GRUB tests.

One sshd per session (started by tests/sshd.py): host key and client key generated in a temp
directory, an ephemeral port, never the machine's own sshd config.
The login is the current user (root in CI), so the "remote" files are the temp directories
the tests create — the machine's own /etc/default/grub is never a target.
"""

from __future__ import annotations

import os
import pwd
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.sshd import free_port, keygen, running_sshd

SUDO_PASSWORD = "pa ss'word"
SUDO_STUB = """#!/bin/sh
# Stand-in for sudo: demand "-S -p '' --" (or -n), check the password on stdin, exec the rest.
log="$(dirname "$0")/sudo.log"
if [ "$1" = "-n" ]; then echo "sudo: a password is required" >&2; exit 1; fi
[ "$1" = "-S" ] && [ "$2" = "-p" ] && [ "$3" = "" ] && [ "$4" = "--" ] || {
    echo "sudo stub: unexpected arguments: $*" >&2; exit 90; }
shift 4
IFS= read -r password || password=""
[ "$password" = "@PASSWORD@" ] || { echo "sudo: 1 incorrect password attempt" >&2; exit 1; }
echo "ok $*" >> "$log"
exec "$@"
"""


def write_sudo_stub(directory: Path) -> Path:
    """Put a stub ``sudo`` expecting SUDO_PASSWORD into ``directory`` (real sudo may be absent)."""
    stub = directory / "sudo"
    stub.write_text(SUDO_STUB.replace("@PASSWORD@", SUDO_PASSWORD))
    stub.chmod(0o755)
    return stub


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
