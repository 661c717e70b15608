"""SIGTERM and SIGINT in the middle of ``solcap harvest --inventory … --workers 2``.

Four lab hosts (virtual Xen hosts behind virtual BMCs) over two worker processes, two hosts
each. The signal goes to the calling process once every host has kept two dumps: each worker
must cancel its running hosts (their consoles and recordings closed), and the caller must
report every host in the summary and exit 128 + the signal. Every segment a recording calls
complete is on disk byte-exact and is the dump the host sent for that key.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from solcap.testing.lab import Lab
from tests.keyed import assert_sent_for_key, key_of, sent_by_key

pytestmark = pytest.mark.timeout(240)
TOP = Path(__file__).resolve().parents[2]
KEYS = "h,q,e,q,e,q,e,q,e,q"
HOSTS = 4


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    lab = Lab(tmp_path_factory.mktemp("lab"))
    try:
        lab.up(HOSTS, domus=120)
        yield lab
    finally:
        lab.down()


def _segments(events: Path) -> int:
    try:
        return events.read_text().count('"event": "segment"')
    except FileNotFoundError:
        return 0


def _wait_every_host(root: Path, n: int, proc: subprocess.Popen[bytes], timeout: float) -> None:
    """Until each host's recording has ``n`` segments (so both workers are mid-harvest)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        counts = [_segments(e) for e in root.rglob("events.jsonl")]
        if len(counts) == HOSTS and min(counts) >= n:
            return
        time.sleep(0.1)
    raise AssertionError(f"not every host had {n} segments within {timeout}s")


@pytest.mark.parametrize(
    ("signum", "status", "group"),
    [(signal.SIGTERM, 143, False), (signal.SIGINT, 130, False), (signal.SIGTERM, 143, True)],
    ids=["TERM", "INT", "TERM-to-the-group"],
)
def test_a_signal_mid_harvest_cancels_each_worker_and_reports_every_host(
    lab: Lab, tmp_path: Path, signum: int, status: int, group: bool
) -> None:
    """``group``: the signal goes to the caller and its workers at once, as ``kill -- -PGID``
    or a service manager's stop does; each worker then cancels on its own SIGTERM too."""
    root, summary_path = tmp_path / "rec", tmp_path / "summary.json"
    env = dict(os.environ, PYTHONPATH=str(TOP))
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "solcap.cli",
            "harvest",
            "--inventory",
            str(lab.inventory),
            "--keys",
            KEYS,
            "--quiet",
            "0.5",
            "--workers",
            "2",
            "--parallel",
            str(HOSTS),
            "--root",
            str(root),
            "--summary",
            str(summary_path),
        ],
        env=env,
        cwd=TOP,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,  # its own process group: the workers and nothing else
    )
    try:
        _wait_every_host(root, 2, proc, 120)
        if group:
            os.killpg(proc.pid, signum)
        else:
            proc.send_signal(signum)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert proc.returncode == status, (out, err)

    summary = json.loads(summary_path.read_text())
    assert summary["interrupted"] is True
    entries = {e["host"]: e for e in summary["hosts"]}
    assert sorted(entries) == [f"node{i:03d}" for i in range(1, HOSTS + 1)]
    interrupted = 0
    for name, entry in entries.items():
        # Every host was running: each worker cancelled it (none finished ten keys so soon).
        assert (entry["outcome"], entry["error"]) == ("error", "interrupted"), entry
        interrupted += 1
        assert entry["recording"], entry  # the worker made it and closed it, not died
        rec = Path(entry["recording"])
        meta = json.loads((rec / "meta.json").read_text())
        assert meta["finished"] is True, name  # the worker closed the recording
        _check_segments(lab, name, rec, entry)
    assert interrupted == HOSTS


def _check_segments(lab: Lab, name: str, rec: Path, entry: dict[str, Any]) -> None:
    """The kept dumps: complete ones byte-exact, on disk, and what the host sent for the key."""
    sent = sent_by_key(lab.host_state(name)["dumps"])
    raw = (rec / "console.raw").read_bytes()
    events = [json.loads(x) for x in (rec / "events.jsonl").read_text().splitlines()]
    complete = [e for e in events if e["event"] == "segment" and e["complete"]]
    assert 2 <= len(complete) < len(KEYS.split(",")), (name, len(complete))
    for seg in complete:
        data = raw[seg["start"] : seg["end"]]
        assert hashlib.sha256(data).hexdigest() == seg["sha256"]
        assert_sent_for_key(sent, seg["name"], seg["sha256"], name)
    # Every dump has its own file, a repeated key's (q-2.txt) included, holding exactly it.
    assert len({seg["file"] for seg in complete}) == len(complete), name
    for seg in complete:
        assert seg["key"] == key_of(seg["name"]), (name, seg)
        assert (rec / seg["file"]).read_bytes() == raw[seg["start"] : seg["end"]], (name, seg)
    kept = {s["sha256"] for s in entry["segments"] if s["complete"]}
    assert kept == {s["sha256"] for s in complete}, name  # the summary names the same dumps
