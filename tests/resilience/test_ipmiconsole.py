"""FreeIPMI ipmiconsole against the virtual BMC, byte-exact.

Debian 12's ipmiconsole refuses ``host:port``, so the BMC listens on 127.0.0.3:623 (all of
127.0.0.0/8 is loopback; root may bind 623). The password goes in a 0600 ``--config-file``,
never in argv.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import peers
from tests.ipmi.conftest import need
from tests.resilience.conftest import PASSWORD, USER, BmcProcess, HostWriter, pattern, sha
from tests.resilience.test_faults import _read_until, _spawn_peer

pytestmark = pytest.mark.timeout(60)

ADDRESS = "127.0.0.3"


@pytest.fixture
def bmc623(pty_pair, udp_623: None) -> Iterator[BmcProcess]:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.bind((ADDRESS, 623))
        except OSError as exc:
            peers.missing(
                f"a bindable {ADDRESS}:623 ({exc.strerror})",
                "run as root (FreeIPMI's ipmiconsole only reaches port 623), free the port",
            )
    proc = BmcProcess(pty_pair.path, address=ADDRESS, port=623).start()
    yield proc
    proc.stop()


def test_ipmiconsole_capture_is_byte_exact(bmc623: BmcProcess, pty_pair, tmp_path: Path) -> None:
    config = tmp_path / "freeipmi.conf"
    fd = os.open(config, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(f"username {USER}\npassword {PASSWORD}\n")
    argv = [need("ipmiconsole"), "-h", ADDRESS, "--config-file", str(config), "--dont-steal"]
    proc, tty = _spawn_peer(argv, dict(os.environ))
    try:
        writer = HostWriter(pty_pair.master)
        ready = b"ready\r\n"
        writer.write(ready)
        out = _read_until(proc, ready, 20)
        assert out.endswith(ready), out
        data = pattern(64 * 1024 + 500, seed=9)
        writer.write(data)
        out += _read_until(proc, data[-200:], 40)
        writer.join(5)
        os.write(tty, b"&.")  # ipmiconsole's escape: close the session
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        os.close(tty)
    assert proc.stdout is not None
    out += proc.stdout.read()
    # ipmiconsole's own two status lines (stdio-buffered, so they land anywhere in the stream),
    # each removed exactly once; everything else must be the host's bytes, byte for byte.
    for own in (b"[SOL established]\r\n", b"\r\n[closing the connection]\r\n"):
        assert out.count(own) == 1, own
        out = out.replace(own, b"", 1)
    body = out[out.index(ready) + len(ready) :]
    assert sha(body) == sha(data), (len(body), len(data), body[len(data) - 10 :])
