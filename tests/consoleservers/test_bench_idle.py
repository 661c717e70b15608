"""The idle part of the benchmark at N = 2: solcap (both data paths), ipmitool and
ipmiconsole each hold every BMC's payload, and the report renders the rows. Figures are not
judged here (bench/ is where targets live); that every client held every session is."""

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


def test_bench_idle_holds_every_session_for_every_client_and_reports_them(tmp_path: Path) -> None:
    for program in ("ipmitool", "ipmiconsole"):
        peers.need(program)
    if os.geteuid() != 0:
        pytest.skip("the BMCs bind port 623 (ipmiconsole reaches no other): needs root")
    out, md = tmp_path / "b.json", tmp_path / "b.md"
    argv = [sys.executable, "-m", "bench.run", "--only", "idle", "--idle-n", "2", "--quick"]
    done = subprocess.run(
        [*argv, "--engine", "--json", str(out), "--out", str(md)],
        capture_output=True, text=True, timeout=280, cwd=REPO,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    rows = json.loads(out.read_text())["idle"]
    assert [r["client"] for r in rows] == ["solcap", "solcap engine", "ipmitool", "ipmiconsole"]
    for row in rows:
        assert "error" not in row, row
        assert row["held"] == 2 and row["window_s"] == 5.0, row
    table = report.idle_table(rows)
    assert len(table) == 2 + len(rows) and "(1.00×)" in table[2]
    assert "## Idle CPU per held session" in md.read_text()
