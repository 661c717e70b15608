"""A real OpenSSH server on 127.0.0.1 for the SSH and persistent-GRUB tests.

One sshd per session: host key and client key generated in a temp directory, an ephemeral
port, authorized_keys/pid file in the temp directory, never the machine's own sshd config.
The login is the current user (root in CI), so the "remote" files are the temp directories
the tests create — the machine's own /etc/default/grub is never a target.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests import peers

SSHD = "/usr/sbin/sshd"
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


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _keygen(path: Path) -> None:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "solcap-test", "-f", str(path)],
        check=True,
    )


def _wait_for_banner(port: int, proc: subprocess.Popen[bytes], deadline: float) -> None:
    """Wait until sshd answers with its SSH banner (or died / deadline passed)."""
    last: OSError | None = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"sshd exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1.0) as sock:
                if sock.recv(8).startswith(b"SSH-"):
                    return
        except OSError as exc:
            last = exc
            time.sleep(0.05)  # sshd is still binding its port: poll the condition
    raise RuntimeError(f"sshd did not accept connections on {port}: {last}")


@pytest.fixture(scope="session")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sshd]:
    if not os.path.exists(SSHD):
        peers.missing(SSHD, "apt-get install openssh-server")
    tmp = tmp_path_factory.mktemp("sshd")
    host_key = tmp / "host_ed25519"
    client_key = tmp / "client_ed25519"
    _keygen(host_key)
    _keygen(client_key)
    authorized = tmp / "authorized_keys"
    shutil.copy(f"{client_key}.pub", authorized)
    authorized.chmod(0o600)
    port = _free_port()
    config = tmp / "sshd_config"
    config.write_text(
        f"""ListenAddress 127.0.0.1
Port {port}
HostKey {host_key}
PidFile {tmp / "sshd.pid"}
AuthorizedKeysFile {authorized}
StrictModes no
UsePAM no
PermitRootLogin yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
Subsystem sftp internal-sftp
LogLevel VERBOSE
"""
    )
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    log = open(tmp / "sshd.log", "wb")  # noqa: SIM115 - closed in the teardown below
    proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)], stdout=log, stderr=log)
    try:
        _wait_for_banner(port, proc, time.monotonic() + 15)
        pub = " ".join(Path(f"{host_key}.pub").read_text().split()[:2])
        known_hosts = tmp / "known_hosts"
        server = Sshd(
            host="127.0.0.1",
            port=port,
            user=pwd.getpwuid(os.getuid()).pw_name,
            client_key=client_key,
            host_key_pub=pub,
            known_hosts=known_hosts,
            tmp=tmp,
        )
        known_hosts.write_text(server.known_hosts_line)
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        log.close()
