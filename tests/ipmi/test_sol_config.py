"""The BMC's SOL bit rate is read (Get SOL Configuration Parameters) and checked against the
profile's console speed: a mismatch is the classic "SOL shows garbage" that looks like a dead
host, so solcap says so before anyone debugs the wrong thing."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from solcap.cli import main
from solcap.testing.lab import Lab, LabHost

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Lab, list[LabHost]]]:
    lab = Lab(tmp_path_factory.mktemp("lab"))
    try:
        hosts = lab.up(2, domus=1, extra_args={"node002": ["--bmc-bit-rate", "115200"]})
        yield lab, hosts
    finally:
        lab.down()


def test_sol_info_matches_or_warns(
    lab: tuple[Lab, list[LabHost]], monkeypatch: pytest.MonkeyPatch
) -> None:
    the_lab, (good, bad) = lab
    monkeypatch.setenv("IPMI_PASSWORD", the_lab.password_file.read_text().strip())
    out = io.StringIO()
    assert main(["sol-info", good.url, "--profile", "xen-serial-debug"], out=out) == 0
    assert "bit rate 38400" in out.getvalue() and "matches profile" in out.getvalue()
    out = io.StringIO()
    assert main(["sol-info", bad.url, "--profile", "xen-serial-debug"], out=out) == 3
    text = out.getvalue()
    assert "bit rate 115200" in text
    assert "runs SOL at 115200 bit/s but profile xen-serial-debug sets the console to 38400" in text


def test_runbook_run_records_the_warning(
    lab: tuple[Lab, list[LabHost]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    the_lab, (_good, bad) = lab
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(
        the_lab.inventory.read_text().replace(
            f"  {bad.name}:\n", f"  {bad.name}:\n    profile: xen-serial-debug\n"
        )
    )
    assert (
        main(
            [
                "run",
                "harvest-debug-keys",
                "--inventory",
                str(inventory),
                "--limit",
                bad.name,
                "--root",
                str(tmp_path / "rec"),
            ],
            out=io.StringIO(),
        )
        == 0
    )
    assert "runs SOL at 115200 bit/s" in capsys.readouterr().err
    events = next((tmp_path / "rec").rglob("events.jsonl")).read_text().splitlines()
    kinds = {json.loads(e)["event"]: json.loads(e) for e in events}
    assert kinds["sol-config"]["bit_rate"] == 115200
    warnings = [json.loads(e)["message"] for e in events if json.loads(e)["event"] == "warning"]
    assert any("profile xen-serial-debug" in w for w in warnings)  # the SOL-vs-profile check
