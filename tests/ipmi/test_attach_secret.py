"""What you type is not recorded: a secret typed at a prompt the host does not echo.

``solcap console ipmi://…`` under a real pty (pexpect), the virtual BMC bridged to a virtual
host whose GRUB has a superuser: ``e`` asks for a username (echoed) and a password (not
echoed, as GRUB does). The password is a fresh random secret. The host takes it (its editor
opens, so the bytes really went through solcap to the host), the host never sent it back (its
own record of its line), and not one file under the recording root holds its bytes — raw,
human log, timing, events, meta, anything derived.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.ipmi.test_attach_pty import Attached
from tests.ipmi.test_power_vbmc import PASSWORD, HostBehindBmc

pytestmark = pytest.mark.timeout(90)

#: 15 characters and the Enter fill GRUB's 16-byte receive FIFO and no more: typed at once, a
#: longer secret would overrun it (solcap.sim.host.GRUB_FIFO_SIZE) and never open the editor.
SECRET = "Pw-" + secrets.token_hex(6)


@pytest.fixture
def guarded_host() -> Iterator[HostBehindBmc]:
    child = HostBehindBmc(grub_timeout=300, grub_superuser=f"root:{SECRET}")
    try:
        assert child.wait_state("grub", 30)
        yield child
    finally:
        child.close()


def files_holding(root: Path, needle: bytes) -> list[str]:
    """Every regular file under ``root`` whose bytes contain ``needle``, relative names."""
    return sorted(
        str(path.relative_to(root))
        for path in root.rglob("*")
        if path.is_file() and not path.is_symlink() and needle in path.read_bytes()
    )


def test_a_secret_typed_at_a_prompt_without_echo_is_in_no_recorded_file(
    guarded_host: HostBehindBmc, tmp_path: Path
) -> None:
    root = tmp_path / "recordings"
    session = Attached(guarded_host.url, root, env={"IPMI_PASSWORD": PASSWORD})
    try:
        child = session.child
        child.send("e")
        child.expect_exact("Enter username:")
        child.send("root\r")
        child.expect_exact("Enter password:")
        child.send(SECRET + "\r")
        # The editor opens only for the right password: the secret reached the host.
        child.expect_exact("setparams")
        child.send("~.")
        status, modes_after, recording = session.finish()
        assert (status, modes_after) == (0, session.modes_before)
    finally:
        session.close()

    needle = SECRET.encode()
    sent = guarded_host.sent_bytes(tmp_path / "sent.bin")
    assert b"Enter password:" in sent and needle not in sent  # the host did not echo it
    raw = (recording / "console.raw").read_bytes()
    # It was recording across the typing: the prompt and the editor the secret opened.
    assert raw.index(b"Enter username:") < raw.index(b"Enter password:") < raw.rindex(b"setparams")
    assert recording.is_relative_to(root)
    recorded = [p for p in root.rglob("*") if p.is_file()]
    assert len(recorded) >= 4, recorded  # raw, timing, human log, events at least
    assert files_holding(root, needle) == []
