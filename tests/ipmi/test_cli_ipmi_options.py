"""One set of IPMI credential options across the CLI, and ``run --host ipmi://`` power steps.

The run goes against the virtual host behind its virtual BMC in another process
(tests/ipmi/test_power_vbmc.py), so the power cycle is checked on the host itself (its boot
count), not on what solcap believes it sent.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from solcap.cli import main
from tests.ipmi.test_power_vbmc import PASSWORD, ROOT, USER, HostBehindBmc

pytestmark = pytest.mark.timeout(120)

RUNBOOK = """name: power-check
steps:
  - power: cycle
  - expect: {patterns: ["Booting from Hard Disk"], timeout: 60}
outcome: {success: ["Booting from Hard Disk"]}
"""


@pytest.fixture
def host_bmc() -> Iterator[HostBehindBmc]:
    host = HostBehindBmc()
    yield host
    host.close()


def test_run_host_ipmi_power_cycles_through_that_bmc(
    host_bmc: HostBehindBmc, tmp_path: Path
) -> None:
    """No inventory: the console's BMC does the power step. The password file given beats a
    wrong IPMI_PASSWORD in the environment; the recording is named after host and port."""
    runbook = tmp_path / "power-check.yaml"
    runbook.write_text(RUNBOOK)
    secret = tmp_path / "bmc.pw"
    secret.write_text(PASSWORD + "\n")
    secret.chmod(0o600)
    before = int(host_bmc.state()["boots"])
    env = dict(os.environ, IPMI_PASSWORD="wrong-password", PYTHONPATH=str(ROOT))
    result = subprocess.run(
        [sys.executable, "-m", "solcap.cli", "run", str(runbook), "--host", host_bmc.url,
         "--password-file", str(secret), "--root", str(tmp_path / "rec")],
        env=env, capture_output=True, text=True, timeout=100, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert int(host_bmc.state()["boots"]) == before + 1
    (host_dir,) = (tmp_path / "rec").iterdir()
    assert host_dir.name == f"127.0.0.1_{host_bmc.port}"


def test_run_host_ipmi_dry_run_plans_the_power_step(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["run", "failed-boot", "--host", "ipmi://admin@127.0.0.1:9623?cipher=3", "--dry-run"]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "host 127.0.0.1_9623 [ipmi://admin@127.0.0.1:9623] from --host" in text
    assert "power cycle" in text


IPMI_COMMANDS = [
    ["capture", "ipmi://admin@bmc"],
    ["harvest", "ipmi://admin@bmc"],
    ["console", "ipmi://admin@bmc"],
    ["run", "failed-boot", "--host", "ipmi://admin@bmc"],
    ["power", "ipmi://admin@bmc", "status"],
    ["sol-info", "ipmi://admin@bmc"],
    ["grub", "apply", "ipmi://admin@bmc", "--oneshot"],
]


def _option_help(argv: list[str], capsys: pytest.CaptureFixture[str]) -> list[str]:
    with pytest.raises(SystemExit):
        main([*argv[: 2 if argv[0] == "grub" else 1], "--help"])
    text = " ".join(capsys.readouterr().out.split())
    found = []
    for flag in ("--password-file PATH", "--kg-file PATH"):
        at = text.rfind(flag)
        assert at >= 0, (argv[0], flag)
        found.append(text[at : at + 80])
    return found


def test_every_ipmi_command_takes_the_same_credential_options(
    capsys: pytest.CaptureFixture[str],
) -> None:
    shown = {" ".join(argv[:2]): _option_help(argv, capsys) for argv in IPMI_COMMANDS}
    shown["capture"] = shown.pop("capture ipmi://admin@bmc")
    assert "beats $IPMI_PASSWORD" in shown["capture"][0]
    assert "beats $IPMI_KGKEY" in shown["capture"][1]
    assert all(help_ == shown["capture"] for help_ in shown.values()), shown


@pytest.mark.parametrize("argv", [["capture"], ["harvest"], ["run", "failed-boot", "--host"]])
def test_credential_options_for_a_non_ipmi_target_are_refused(
    argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    secret = tmp_path / "pw"
    secret.write_text("x\n")
    secret.chmod(0o600)
    full = [*argv, "/dev/ttyS9", "--password-file", str(secret), "--root", str(tmp_path)]
    if argv[0] == "run":
        full.append("--dry-run")
    assert main(full) == 2
    err = capsys.readouterr().err
    assert err == "solcap: error: --password-file applies to ipmi:// targets only\n"


def test_recording_name_is_the_host_not_the_query(host_bmc: HostBehindBmc, tmp_path: Path) -> None:
    env = dict(os.environ, IPMI_PASSWORD=PASSWORD, PYTHONPATH=str(ROOT))
    url = f"ipmi://{USER}@127.0.0.1:{host_bmc.port}?cipher=3&reconnect=0"
    result = subprocess.run(
        [sys.executable, "-m", "solcap.cli", "capture", url, "--for", "1",
         "--root", str(tmp_path)],
        env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert [p.name for p in tmp_path.iterdir()] == [f"127.0.0.1_{host_bmc.port}"]


def test_grub_credentials_only_with_an_ipmi_console_or_bmc(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    secret = tmp_path / "pw"
    secret.write_text("x\n")
    secret.chmod(0o600)
    base = ["grub", "apply", "--profile", "xen-serial-debug", "--password-file", str(secret)]
    assert main([*base[:2], "ssh://root@127.0.0.1:1", *base[2:]]) == 2  # persistent: SSH only
    assert "--password-file applies to ipmi:// targets only" in capsys.readouterr().err
    assert main([*base[:2], "/dev/ttyS9", *base[2:], "--oneshot"]) == 2
    assert "--password-file applies to ipmi:// targets only" in capsys.readouterr().err
    argv = [*base[:2], "/dev/ttyS9", *base[2:], "--oneshot", "--bmc", "ipmi://admin@bmc"]
    assert main(argv) == 0  # the file is --power-cycle's (a dry run: nothing opened)
