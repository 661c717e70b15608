"""The console-server benchmark's smoke mode: solcap serve, conserver and ConMan each hold two
virtual BMCs through ``python -m bench.servers --smoke`` (the real daemons, the real
ipmiconsole), and the report renders their rows. Figures are not judged here (bench/ is where
targets live); that every server held every console and logged every stream byte is."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench import report
from tests import peers

pytestmark = [pytest.mark.timeout(300), pytest.mark.slow, pytest.mark.usefixtures("udp_623")]
REPO = Path(__file__).resolve().parents[2]


def test_bench_servers_smoke_holds_logs_and_reports_all_three(tmp_path: Path) -> None:
    for program in ("conserver", "conmand", "ipmiconsole"):
        peers.need(program)
    if os.geteuid() != 0:
        pytest.skip("the BMCs bind port 623 (ipmiconsole and ConMan reach no other): needs root")
    out = tmp_path / "rows.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench.servers", "--smoke", "--json", str(out)],
        capture_output=True, text=True, timeout=280, cwd=REPO,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    rows = json.loads(out.read_text())
    assert [r["server"] for r in rows] == ["solcap", "conserver", "conman"]
    for row in rows:
        assert "error" not in row, row
        assert row["active"] == 2 and row["up_s"] is not None, row
        # Every console's log holds its 8 KiB stream contiguously (SHA-256 checked by `in`).
        assert row["exact"] == 2 and row["missing_bytes"] == 0, row
        assert row["procs"] >= 1 and row["pss_kib"] > 0, row
    solcap = rows[0]
    assert solcap["restarted"] == 2 and solcap["back"] == 2, solcap  # logging again
    table = report.servers_table(rows)
    assert len(table) == 2 + len(rows)
    assert "(1.00×)" in table[2] and "conserver" in table[3] and "conman" in table[4]
    targets = "\n".join(report.servers_targets(rows))
    assert "2 simultaneous streams, 0 bytes lost | 2/2 exact" in targets
