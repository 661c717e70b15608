"""SIGTERM and SIGKILL in the middle of a harvest over IPMI SOL.

Nothing-lost property: every segment solcap declared complete is byte-identical to a dump the
host sent; console.raw is exactly what arrived up to the signal (SIGTERM) or up to the last
flush (SIGKILL, reported as unfinished); after SIGTERM the BMC session was given back, so a
new client gets SOL without stealing it.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from solcap.cli import main
from solcap.config.credentials import password_source
from solcap.testing.lab import Lab, LabHost
from solcap.transports.ipmi import open_ipmi
from tests.keyed import assert_sent_for_key, sent_by_key

pytestmark = pytest.mark.timeout(150)
KEYS = "h,q,e,q,e,q,e,q,e,q"


@pytest.fixture(scope="module")
def lab_host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Lab, LabHost]]:
    lab = Lab(tmp_path_factory.mktemp("lab"))
    try:
        yield lab, lab.up(1, domus=120)[0]
    finally:
        lab.down()


def _harvest(lab: Lab, host: LabHost, root: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ, IPMI_PASSWORD=lab.password_file.read_text().strip())
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "solcap.cli",
            "harvest",
            host.url,
            "--keys",
            KEYS,
            "--quiet",
            "0.5",
            "--root",
            str(root),
        ],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _wait_segments(root: Path, n: int, timeout: float = 90) -> Path:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for events in root.rglob("events.jsonl"):
            if events.read_text().count('"event": "segment"') >= n:
                return events.parent
        time.sleep(0.05)
    raise AssertionError(f"no {n} segments within {timeout}s")


def _check_segments(lab: Lab, host: LabHost, rec: Path) -> int:
    sent = sent_by_key(lab.host_state(host.name)["dumps"])
    raw = (rec / "console.raw").read_bytes()
    events = [json.loads(x) for x in (rec / "events.jsonl").read_text().splitlines()]
    segments = [e for e in events if e["event"] == "segment"]
    for seg in segments:
        assert seg["complete"], seg
        assert_sent_for_key(sent, seg["name"], seg["sha256"], host.name)
        assert (rec / seg["file"]).read_bytes() == raw[seg["start"] : seg["end"]]
    return len(segments)


def test_sigterm_mid_harvest(lab_host: tuple[Lab, LabHost], tmp_path: Path) -> None:
    lab, host = lab_host
    proc = _harvest(lab, host, tmp_path)
    rec = _wait_segments(tmp_path, 2)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    meta = json.loads((rec / "meta.json").read_text())
    assert meta["finished"] is True
    assert 2 <= _check_segments(lab, host, rec) < len(KEYS.split(","))
    # The session was deactivated and logged out: SOL is free without --steal.
    secret = password_source(file=str(lab.password_file), prompt=False)
    transport = open_ipmi(host.url, password_source=secret)
    transport.close()


def test_sigkill_mid_harvest(lab_host: tuple[Lab, LabHost], tmp_path: Path) -> None:
    lab, host = lab_host
    proc = _harvest(lab, host, tmp_path)
    rec = _wait_segments(tmp_path, 2)
    proc.kill()
    proc.wait(30)
    assert _check_segments(lab, host, rec) >= 2
    out = io.StringIO()
    assert main(["show", str(rec)], out=out) == 3
    assert "UNFINISHED" in out.getvalue()
