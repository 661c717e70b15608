"""The seeded UDP fault proxy under many concurrent sessions: a fleet harvest of 8 lab hosts,
each reached through its own proxy dropping, duplicating, reordering and delaying 5 % of the
packets both ways. Nothing-lost property: every host's dumps are byte-identical (SHA-256) to
what that host sent, and no gap was needed.

What it took: the virtual BMC answers a repeated Open Session/RAKP1/RAKP3/Activate exactly as
the first (UDP duplicates; pyghmi routes by client address), the client starts every login
attempt at a fresh session ID and tag (a late RAKP2 of an abandoned attempt no longer passes
for the new one's), and a harvest waits for the next key's first line through the stalls that
retransmissions cause instead of taking a one-second pause for the end of a dump."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from solcap.inventory import load_inventory
from solcap.orchestration import fleet
from solcap.testing.faultproxy import FaultProxy, Faults
from solcap.testing.lab import Lab
from tests.keyed import assert_sent_for_key, sent_by_key

pytestmark = pytest.mark.timeout(240)
HOSTS = 8


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    lab = Lab(tmp_path / "lab")
    try:
        lab.up(HOSTS, domus=3)
        yield lab
    finally:
        lab.down()


def test_fleet_harvest_through_fault_proxies_is_byte_exact(lab: Lab, tmp_path: Path) -> None:
    faults = Faults(drop=0.05, duplicate=0.05, reorder=0.05, delay=0.05)
    proxies = [
        FaultProxy.in_front_of(h.port, faults, seed=i).start() for i, h in enumerate(lab.hosts())
    ]
    try:
        # The same inventory, with every BMC reached through its proxy (127.0.0.2:<port>).
        text = re.sub(
            r"ipmi://admin@127\.0\.0\.1:", "ipmi://admin@127.0.0.2:", lab.inventory.read_text()
        )
        inventory = tmp_path / "faulty.yaml"
        inventory.write_text(text)
        hosts = load_inventory(inventory).hosts
        summary = fleet.harvest(
            hosts, ["h", "q", "u"], parallel=HOSTS, root=tmp_path / "rec", quiet=1.0
        )
    finally:
        for proxy in proxies:
            proxy.stop()
    assert summary.counts["ok"] == HOSTS, [r.error for r in summary.results]
    for result in summary.results:
        sent = sent_by_key(lab.host_state(result.name)["dumps"])
        rec = Path(str(result.recording))
        for key in ("h", "q", "u"):
            data = (rec / "keys" / f"{key}.txt").read_bytes()
            assert_sent_for_key(sent, key, hashlib.sha256(data).hexdigest(), result.name)
        assert '"event": "gap"' not in (rec / "events.jsonl").read_text()
    for kind in ("dropped", "duplicated", "reordered", "delayed"):
        assert sum(getattr(s, kind) for p in proxies for s in p.stats.values()) > 0, kind
