"""Kg, the BMC key (docs/ipmi.md "Credentials"): from ``IPMI_KG`` or ``--kg-file`` (0600), and
the password used as Kg when none is given, as the IPMI 2.0 specification says.

The virtual BMC runs in its own process with or without a Kg of its own; solcap's
``power status`` (its own process too) logs in, and ipmitool (``-k``) cross-checks that the
BMC's key is real, so solcap is not only agreeing with itself.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.ipmi.conftest import PASSWORD, USER, PtyPair, need

pytestmark = pytest.mark.timeout(90)
ROOT = Path(__file__).resolve().parents[2]
KG = "bmc-kg-not-the-pw"  # ipmitool takes at most 20 bytes of Kg


def _bmc(pty: PtyPair, kg: str | None) -> Iterator[int]:
    env = dict(os.environ, IPMI_PASSWORD=PASSWORD)
    env.pop("IPMI_KG", None)
    if kg is not None:
        env["IPMI_KG"] = kg
    proc = subprocess.Popen(
        [sys.executable, "-m", "solcap.sim.bmc", pty.path],
        stdout=subprocess.PIPE,
        env=env,
        cwd=ROOT,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().decode()
    assert line.startswith("port="), line
    try:
        yield int(line.split("=")[1])
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
def bmc_with_kg(pty_pair: PtyPair) -> Iterator[int]:
    yield from _bmc(pty_pair, KG)


@pytest.fixture
def bmc_without_kg(pty_pair: PtyPair) -> Iterator[int]:
    yield from _bmc(pty_pair, None)


def _power_status(
    port: int, *extra: str, kg_env: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, IPMI_PASSWORD=PASSWORD, PYTHONPATH=str(ROOT))
    env.pop("IPMI_KG", None)
    if kg_env is not None:
        env["IPMI_KG"] = kg_env
    url = f"ipmi://{USER}@127.0.0.1:{port}"
    return subprocess.run(
        [sys.executable, "-m", "solcap.cli", "power", url, "status", *extra],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


def _kg_file(tmp_path: Path, key: str) -> Path:
    path = tmp_path / "kg"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(key + "\n")
    return path


def _ipmitool_status(port: int, *kg: str) -> subprocess.CompletedProcess[str]:
    cmd = [need("ipmitool"), "-I", "lanplus", "-C", "17", "-H", "127.0.0.1", "-p", str(port)]
    cmd += ["-U", USER, "-E", *kg, "chassis", "power", "status"]
    env = dict(os.environ, IPMI_PASSWORD=PASSWORD)
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=30)


def test_login_with_kg_from_a_kg_file(bmc_with_kg: int, tmp_path: Path) -> None:
    # ipmitool agrees this BMC has a key of its own: refused without it, accepted with it.
    assert _ipmitool_status(bmc_with_kg).returncode != 0
    assert _ipmitool_status(bmc_with_kg, "-k", KG).stdout.strip() == "Chassis Power is on"
    done = _power_status(bmc_with_kg, "--kg-file", str(_kg_file(tmp_path, KG)))
    assert (done.returncode, done.stdout, done.stderr) == (
        0,
        f"ipmi://{USER}@127.0.0.1:{bmc_with_kg}: power on\n",
        "",
    )


def test_login_with_kg_from_the_environment(bmc_with_kg: int) -> None:
    done = _power_status(bmc_with_kg, kg_env=KG)
    assert done.returncode == 0 and done.stdout.endswith(": power on\n"), done.stderr


def test_without_the_bmcs_kg_the_login_fails_in_one_line(bmc_with_kg: int) -> None:
    done = _power_status(bmc_with_kg)  # no Kg: the password is used as Kg, which is wrong here
    assert done.returncode == 3, done.stdout + done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr, done.stderr
    assert f"127.0.0.1:{bmc_with_kg}" in done.stderr


def test_the_password_is_the_kg_when_the_bmc_has_none(bmc_without_kg: int, tmp_path: Path) -> None:
    # A BMC without a key of its own uses the password as Kg; so does solcap without --kg-file,
    # and naming the password as the Kg explicitly is the same key.
    assert _power_status(bmc_without_kg).returncode == 0
    done = _power_status(bmc_without_kg, "--kg-file", str(_kg_file(tmp_path, PASSWORD)))
    assert done.returncode == 0, done.stderr
    # ...while any other Kg is a different key, refused.
    wrong = _power_status(bmc_without_kg, kg_env=KG)
    assert wrong.returncode == 3, wrong.stdout + wrong.stderr


def test_a_sol_session_logs_in_with_kg(bmc_with_kg: int, pty_pair: PtyPair) -> None:
    from solcap.errors import ConnectError
    from solcap.transports.ipmi import IpmiSolTransport, IpmiTarget

    target = IpmiTarget("127.0.0.1", USER, bmc_with_kg)
    with IpmiSolTransport(target, PASSWORD, kg=KG) as tr:
        os.write(pty_pair.master, b"through-a-keyed-session")
        got = b""
        while len(got) < 23:
            got += tr.read(100, 5)
        assert got == b"through-a-keyed-session"
    with pytest.raises(ConnectError):
        IpmiSolTransport(target, PASSWORD, connect_timeout=6.0)  # the password is not the Kg
