"""``solcap console ipmi://…`` against the virtual BMC bridged to a virtual Xen host.

Host and BMC run in a child process (pyghmi's state is process-global); solcap runs under a
pexpect pty as in test_attach_pty.py. What the host saw (input target, BMC breaks) is asked
of the child, not inferred from solcap's screen.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pexpect
import pytest

from solcap.sim.xen import PROMPT
from tests.ipmi.conftest import need
from tests.ipmi.test_attach_pty import ROOT, Attached
from tests.ipmi.test_power_vbmc import PASSWORD, USER, HostBehindBmc

pytestmark = pytest.mark.timeout(90)


@pytest.fixture
def running_host() -> Iterator[HostBehindBmc]:
    child = HostBehindBmc(grub_timeout=1)
    try:
        assert child.wait_state("running", 30)
        yield child
    finally:
        child.close()


def test_console_over_ipmi(running_host: HostBehindBmc, tmp_path: Path) -> None:
    session = Attached(running_host.url, tmp_path, env={"IPMI_PASSWORD": PASSWORD})
    try:
        child = session.child
        child.send("\r")
        child.expect_exact(PROMPT)
        child.send("xl info\r")
        child.expect("xen_version")
        child.expect_exact(PROMPT)
        child.send("\x01\x01\x01")
        child.expect_exact("*** Serial input to Xen")
        assert running_host.wait_for("input", "xen", 5)
        child.send("\x01\x01\x01")
        child.expect_exact("*** Serial input to DOM0")
        assert running_host.wait_for("input", "dom0", 5)
        # The prompt the newline brings is waited for, so the host has sent all it will
        # before "~." ends the session (the byte-exact check below compares both ends).
        child.send("\r")
        child.expect_exact(PROMPT)
        child.send("~B")
        child.expect_exact("[solcap: BREAK sent]")
        assert running_host.wait_for("breaks", "1", 5)  # the BMC got SOL's break bit
        child.send("~.")
        status, modes_after, recording = session.finish()
        assert (status, modes_after) == (0, session.modes_before)
        raw = (recording / "console.raw").read_bytes()
        assert b"xen_version" in raw and b"Serial input to DOM0" in raw
        assert session.console_bytes() == raw
        # The capture is byte-exactly what the host sent (its own record of its line): the
        # virtual BMC kept the boot's output while no session was active, as a real one's
        # buffer would, and solcap's session got all of it, then the typing's echoes.
        sent = running_host.sent_bytes(tmp_path / "sent.bin")
        assert raw == sent, (len(sent), len(raw))
    finally:
        session.close()


def spawn_ipmitool_sol(port: int) -> pexpect.spawn:
    args = ["-I", "lanplus", "-H", "127.0.0.1", "-p", str(port), "-U", USER, "-E"]
    env = {**os.environ, "IPMI_PASSWORD": PASSWORD}
    return pexpect.spawn(need("ipmitool"), [*args, "sol", "activate"], env=env, timeout=15)


def test_busy_payload_refused_then_stolen(running_host: HostBehindBmc, tmp_path: Path) -> None:
    holder = spawn_ipmitool_sol(running_host.port)
    try:
        holder.expect("SOL Session operational")
        refused = pexpect.spawn(
            sys.executable,
            ["-m", "solcap.cli", "console", running_host.url, "--root", str(tmp_path)],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT), "IPMI_PASSWORD": PASSWORD},
            timeout=20,
        )
        refused.expect("SOL is active for another client; use --steal")
        refused.expect(pexpect.EOF)
        refused.close()
        assert refused.exitstatus == 3

        session = Attached(running_host.url, tmp_path, "--steal", env={"IPMI_PASSWORD": PASSWORD})
        try:
            assert b"deactivated another client's SOL session (--steal)" in (
                session.shown.getvalue()
            )
            # ipmitool 1.8.19 keeps running after the BMC's "deactivated" bit; solcap has SOL.
            session.child.send("\r")
            session.child.expect_exact(PROMPT)
            session.child.send("\r~.")
            status, modes_after, _recording = session.finish()
            assert (status, modes_after) == (0, session.modes_before)
        finally:
            session.close()
    finally:
        holder.close(force=True)
