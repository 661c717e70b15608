"""The password prompt on a real terminal (docs/ipmi.md "Credentials"): with no IPMI_PASSWORD and
no file, ``solcap power`` asks on its terminal without echoing, and uses what was typed; without
a terminal it asks nothing and exits 2. Driven through a pexpect pty, against the virtual BMC.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pexpect
import pytest

from tests.ipmi.conftest import PASSWORD, USER, PtyPair

pytestmark = pytest.mark.timeout(90)
ROOT = Path(__file__).resolve().parents[2]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("IPMI_PASSWORD", "IPMI_KGKEY")}
    return dict(env, PYTHONPATH=str(ROOT))


def _spawn(url: str) -> pexpect.spawn:
    return pexpect.spawn(
        sys.executable,
        ["-m", "solcap.cli", "power", url, "status"],
        env=_env(),
        cwd=str(ROOT),
        timeout=30,
    )


def test_the_prompt_takes_the_password_from_the_terminal_without_echo(
    vbmc_process: tuple[int, PtyPair],
) -> None:
    port, _pty = vbmc_process
    url = f"ipmi://{USER}@127.0.0.1:{port}"
    child = _spawn(url)
    child.expect_exact(f"IPMI password for {USER}@127.0.0.1:{port}: ")
    child.sendline(PASSWORD)
    child.expect(pexpect.EOF)
    child.close()
    # the terminal shows the end of the prompt line and the answer, never the password
    assert child.before.decode() == f"\r\n{url}: power on\r\n"
    assert child.exitstatus == 0


def test_a_wrong_password_typed_at_the_prompt_is_one_line_exit_3(
    vbmc_process: tuple[int, PtyPair],
) -> None:
    port, _pty = vbmc_process
    child = _spawn(f"ipmi://{USER}@127.0.0.1:{port}")
    child.expect_exact(f"IPMI password for {USER}@127.0.0.1:{port}: ")
    child.sendline("not-the-password")
    child.expect(pexpect.EOF)
    child.close()
    lines = child.before.decode().strip().splitlines()
    assert lines == [f"solcap: error: 127.0.0.1:{port}: authentication failed for user {USER}"]
    assert child.exitstatus == 3


def test_without_a_terminal_nothing_is_asked_and_the_exit_is_2(
    vbmc_process: tuple[int, PtyPair],
) -> None:
    port, _pty = vbmc_process
    done = subprocess.run(
        [sys.executable, "-m", "solcap.cli", "power", f"ipmi://{USER}@127.0.0.1:{port}", "status"],
        env=_env(),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        start_new_session=True,  # no controlling terminal to fall back on
    )
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr == (
        f"solcap: error: no IPMI password for {USER}@127.0.0.1:{port}: set IPMI_PASSWORD, "
        "give a 0600 password file, or run on a terminal\n"
    )
