"""The web-view benchmark's quick mode (``python -m bench.webload --quick``): a real
``solcap serve --web`` with 5 WebSocket viewers of one streaming console and a start page over
50 consoles. Figures are not judged here; that every viewer and the recording got every byte
and that the page listed every console is."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench import report

pytestmark = pytest.mark.timeout(240)
REPO = Path(__file__).resolve().parents[2]


def test_bench_webload_quick_is_byte_exact_and_lists_every_console() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.webload", "--quick"],
        capture_output=True, text=True, timeout=220, cwd=REPO,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    rows = {r["workload"]: r for r in map(json.loads, done.stdout.splitlines())}
    viewers = rows["viewers"]
    assert viewers["viewers_exact"] == viewers["viewers"] == 5, viewers
    assert viewers["recording_exact"] is True, viewers
    page = rows["start-page"]
    assert page["all_up"] is True, page
    assert page["page_consoles_listed"] == page["fragment_consoles_listed"] == 50, page
    text = "\n".join(report.web_table(list(rows.values())))
    assert "5/5 viewers" in text and "Start page over 50 consoles" in text
