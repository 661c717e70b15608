"""A real OpenSSH sshd on 127.0.0.1 for the tests: one way to start one.

Host key and config live in a temp directory; the machine's own sshd configuration is never
read or touched. Used by tests/grub/conftest.py (Dom0 over SSH, persistent GRUB edits) and
tests/bmcssh/conftest.py (BMC SSH consoles, one port per vendor CLI via ``Match LocalPort``).
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from tests import peers


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def keygen(path: Path) -> Path:
    """An ed25519 key pair at ``path`` and ``path.pub``, no passphrase; returns ``path``."""
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "solcap-test", "-f", str(path)],
        check=True,
    )
    return path


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


@contextlib.contextmanager
def running_sshd(
    tmp: Path, ports: Sequence[int], client_keys: Sequence[Path], *, extra: str = ""
) -> Iterator[str]:
    """Run sshd on ``127.0.0.1:PORT`` for each of ``ports``, accepting ``client_keys``
    (public-key login only); ``extra`` is appended to its config (``Match`` blocks). Yields
    the host's public key (``ssh-ed25519 AAAA…``) once every port answers; stops it after."""
    binary = peers.need("sshd")
    peers.need("ssh-keygen")
    host_key = keygen(tmp / "host_ed25519")
    authorized = tmp / "authorized_keys"
    authorized.write_text("".join(Path(f"{key}.pub").read_text() for key in client_keys))
    authorized.chmod(0o600)
    listen = "".join(f"ListenAddress 127.0.0.1:{port}\n" for port in ports)
    config = tmp / "sshd_config"
    config.write_text(
        f"""{listen}HostKey {host_key}
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
{extra}"""
    )
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    log = open(tmp / "sshd.log", "wb")  # noqa: SIM115 - closed in the teardown below
    proc = subprocess.Popen([binary, "-D", "-e", "-f", str(config)], stdout=log, stderr=log)
    try:
        for port in ports:
            _wait_for_banner(port, proc, time.monotonic() + 15)
        yield " ".join(Path(f"{host_key}.pub").read_text().split()[:2])
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        log.close()
