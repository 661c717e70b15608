"""Baud sanity before a harvest or a one-shot edit: BMC SOL rate vs GRUB vs Xen's com1=.

The three-way rules are checked as pure functions; the runner's check runs against the
virtual lab (a real IPMI BMC answering Get SOL Configuration Parameters, a virtual Xen host
and its Dom0 over SSH), once with everything at 38400 and once with a BMC set to 115200.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from solcap.boot.baud import (
    Rates,
    booted_xen_cmdline,
    disagreements,
    grub_serial_speed,
    xen_com_speed,
)
from solcap.cli import main
from solcap.testing.lab import Lab, LabHost

pytestmark = pytest.mark.timeout(180)


def test_grub_serial_speed_forms() -> None:
    cfg = "set timeout=5\nserial --unit=0 --speed=115200 --word=8 --parity=no --stop=1\n"
    assert grub_serial_speed(cfg) == (115200, 2)
    assert grub_serial_speed("  serial --speed 57600 --unit=1\n") == (57600, 1)
    assert grub_serial_speed("serial --unit=0\n") == (9600, 1)  # GRUB's own default
    assert grub_serial_speed("terminal_output serial\n") == (None, None)


def test_xen_com_speed_last_one_wins_and_auto_is_unknown() -> None:
    assert xen_com_speed("placeholder com1=115200,8n1 console=com1") == 115200
    assert xen_com_speed("com1=9600 com1=38400,8n1") == 38400
    assert xen_com_speed("com1=auto console=com1") is None
    assert xen_com_speed("com2=57600 console=com2") is None
    assert xen_com_speed("com2=57600 console=com2", "com2") == 57600


def test_booted_cmdline_is_the_last_boot_in_the_capture() -> None:
    capture = (
        b"(XEN) Command line: placeholder com1=9600\r\n...reboot...\r\n"
        b"(XEN) [    0.000000] Command line: placeholder com1=38400,8n1 console=com1\r\n"
    )
    assert booted_xen_cmdline(capture) == "placeholder com1=38400,8n1 console=com1"
    assert booted_xen_cmdline(b"no xen here") is None


def test_which_one_disagrees() -> None:
    assert disagreements(Rates(bmc=38400, grub=38400, xen=38400), "h") == []
    assert disagreements(Rates(bmc=38400), "h") == []  # nothing to compare with
    (xen,) = disagreements(Rates(bmc=38400, grub=38400, xen=115200), "h")
    assert xen.startswith("h: Xen's com1= is 115200") and "debug-key dumps cannot" in xen
    (grub,) = disagreements(Rates(bmc=38400, grub=9600, xen=38400), "h")
    assert grub.startswith("h: GRUB's serial --speed is 9600") and "one-shot edit" in grub
    (bmc,) = disagreements(Rates(bmc=115200, grub=38400, xen=38400), "h")
    assert bmc.startswith("h: the BMC runs SOL at 115200 bit/s but GRUB") and "38.4" in bmc
    both = disagreements(Rates(bmc=38400, grub=9600, xen=115200), "h")
    assert [w.split(" ", 2)[1] for w in both] == ["GRUB's", "Xen's"]
    (unknown_bmc,) = disagreements(Rates(grub=9600, xen=38400), "h")
    assert "unknown here" in unknown_bmc


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Lab, list[LabHost]]]:
    lab = Lab(tmp_path_factory.mktemp("lab"))
    try:
        hosts = lab.up(2, domus=1, extra_args={"node002": ["--bmc-bit-rate", "115200"]})
        yield lab, hosts
    finally:
        lab.down()


def _run(lab: Lab, host: LabHost, root: Path) -> list[dict[str, object]]:
    code = main(
        [
            "run",
            "harvest-debug-keys",
            "--inventory",
            str(lab.inventory),
            "--limit",
            host.name,
            "--root",
            str(root),
            "--var",
            "keys=h",
            "--var",
            "quiet=0.3",
        ],
        out=io.StringIO(),
    )
    assert code == 0
    text = next(root.rglob("events.jsonl")).read_text()
    return [json.loads(line) for line in text.splitlines()]


def test_harvest_with_matching_rates_says_nothing(
    lab: tuple[Lab, list[LabHost]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    the_lab, (good, _bad) = lab
    events = _run(the_lab, good, tmp_path)
    (check,) = [e for e in events if e["event"] == "baud-check"]
    assert (check["before"], check["bmc"], check["xen"]) == ("harvest", 38400, 38400)
    assert not [e for e in events if e["event"] == "warning"]
    assert "warning" not in capsys.readouterr().err


def test_harvest_with_a_mismatched_bmc_names_it(
    lab: tuple[Lab, list[LabHost]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    the_lab, (_good, bad) = lab
    events = _run(the_lab, bad, tmp_path)
    (check,) = [e for e in events if e["event"] == "baud-check"]
    assert (check["bmc"], check["xen"]) == (115200, 38400)
    (warning,) = [e["message"] for e in events if e["event"] == "warning"]
    assert warning == (
        f"{bad.name}: Xen's com1= is 38400 (the booted (XEN) Command line) but the BMC "
        "runs SOL at 115200 bit/s: every (XEN) line and Dom0's hvc0 output reach the capture "
        "garbled, so debug-key dumps cannot be parsed (use com1=115200,8n1)"
    )
    assert warning in capsys.readouterr().err


def test_oneshot_checks_the_profiles_com1_against_the_bmc(tmp_path: Path) -> None:
    """Before a one-shot edit the Xen rate is the profile's com1= (the line about to boot).

    The BMC's rate is handed in as ``sol_rate`` here (the lab tests above read it from a real
    IPMI BMC); the host is the virtual one over its pty, booted by the shipped failed-boot
    runbook, which still boots: the warning explains, it does not stop the run.
    """
    from solcap.sim.host import SimConfig, VirtualHost
    from tests.runbook.test_runner_sim import fast_oneshot, run, sim_host

    config = SimConfig(fast=True, auto_power_on=False, xen_args="dom0_mem=512M")
    with VirtualHost(config) as vh:
        outcome = run(
            "failed-boot",
            sim_host(vh, bmc=True),
            tmp_path,
            vh=vh,
            grub_oneshot=fast_oneshot,
            sol_rate=lambda host: 115200,
        )
    assert outcome.outcome == "ok", outcome.error
    lines = (outcome.recording / "events.jsonl").read_text().splitlines()
    events = [json.loads(line) for line in lines]
    (check,) = [e for e in events if e["event"] == "baud-check"]
    assert (check["before"], check["bmc"], check["xen"]) == ("oneshot", 115200, 38400)
    (warning,) = [e["message"] for e in events if e["event"] == "warning"]
    assert warning.startswith(
        "sim1: Xen's com1= is 38400 (profile xen-serial-debug, about to boot) but the BMC "
        "runs SOL at 115200 bit/s"
    )
