"""A shipped runbook as a fleet job (``fleet.runbook_job``) on lab hosts: ok hosts, and a hung
host whose console the fleet closes at the host timeout."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from solcap.inventory import Host, load_inventory
from solcap.orchestration import fleet
from solcap.orchestration.runbook import load_runbook, plan
from solcap.testing.lab import Lab

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def the_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Lab, Path]]:
    base = tmp_path_factory.mktemp("fleetrb")
    lab = Lab(base / "lab")
    try:
        lab.up(3, domus=1, faults={"node003": ["hang"]})
        yield lab, base
    finally:
        lab.down()


@pytest.fixture(scope="module")
def lab_hosts(the_lab: tuple[Lab, Path]) -> tuple[list[Host], Path]:
    lab, base = the_lab
    return list(load_inventory(lab.inventory).hosts), base


def run_runbook(hosts: list[Host], root: Path, timeout: float) -> fleet.FleetSummary:
    runbook = load_runbook("harvest-debug-keys")
    the_plan = plan(runbook, hosts, overrides={"keys": "h"})
    job = fleet.runbook_job(the_plan.hosts, runbook_name=runbook.name)
    return fleet.run(hosts, job, parallel=2, host_timeout=timeout, root=root)


def test_runbook_on_two_hosts(
    the_lab: tuple[Lab, Path], lab_hosts: tuple[list[Host], Path]
) -> None:
    lab, _ = the_lab
    hosts, base = lab_hosts
    summary = run_runbook(hosts[:2], base / "rec", 90)
    assert [r.name for r in summary.results] == [h.name for h in hosts[:2]], summary.to_json()
    assert [r.outcome for r in summary.results] == ["ok", "ok"], summary.to_json()
    for result in summary.results:
        assert result.recording is not None
        raw = (result.recording / "console.raw").read_bytes()
        meta = json.loads((result.recording / "meta.json").read_text())
        assert meta["outcome"] == "ok" and meta["runbook"] == "harvest-debug-keys"
        assert result.bytes == meta["bytes"] == len(raw)
        # Keyed by host: this host's 'h' segment is byte-exactly the dump this host sent.
        (sent,) = lab.host_state(result.name)["dumps"]
        (segment,) = [s for s in meta["segments"] if s["name"] == "h"]
        data = (result.recording / segment["file"]).read_bytes()
        assert data == raw[segment["start"] : segment["end"]]
        assert segment["complete"] and sent["key"] == "h", (segment, sent)
        assert hashlib.sha256(data).hexdigest() == segment["sha256"] == sent["sha256"]


def test_runbook_on_a_hung_host_times_out_and_closes_its_recording(
    lab_hosts: tuple[list[Host], Path],
) -> None:
    hosts, base = lab_hosts
    summary = run_runbook(hosts[2:], base / "rec-hung", 3)
    (result,) = summary.results
    assert result.outcome == "timeout", summary.to_json()
    # the deadline and the duration start from clock reads a moment apart: 0.1 s of slack
    assert 3 - 0.1 <= result.duration < 3 + fleet.CANCEL_GRACE, result.duration
    assert result.recording is not None
    meta = json.loads((result.recording / "meta.json").read_text())
    assert meta["finished"] is True and meta["outcome"] != "ok"
