"""Fleet hosts sharded over worker processes (solcap.orchestration.workers), against real
pseudo-terminals.

The fleet runs in a fresh interpreter (``_PROBE``), as the CLI does: a pytest process that
already ran IPMI tests keeps pyghmi's threads and so rightly refuses to fork. Each host's job
opens its console through solcap.connect, says ``ready``, records until the test has written
its bytes and returns the process id it ran in; the test checks every recording byte for byte
against what it wrote to that host, and that two worker processes, not the caller, wrote them.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(90)

TOP = Path(__file__).resolve().parents[2]

#: argv: root, workers, then name=pty:size per host; a host named doomed-* SIGKILLs its worker.
_PROBE = r"""
import json, os, signal, sys
from pathlib import Path
from solcap.orchestration import fleet
from solcap.capture.recording import Recording
from solcap.inventory import Host

root, workers, specs = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3:]
sizes = {}
hosts = []
for spec in specs:
    name, rest = spec.split("=", 1)
    path, size = rest.rsplit(":", 1)
    sizes[name] = int(size)
    hosts.append(Host(name=name, origin="probe", serial=path))

def job(host, ctx):
    if host.name.startswith("doomed"):
        os.kill(os.getpid(), signal.SIGKILL)
    console = fleet.open_host_console(host, lambda: Recording(host.name, root=root), ctx)
    rec = console.recording
    with console:
        console.send(b"ready\n")
        console.wait_for_bytes(sizes[host.name], timeout=40)
    summary = rec.close()
    return ctx.result("ok", bytes=summary.bytes, recording=summary.path,
                      details={"pid": os.getpid(), "sha256": summary.sha256})

summary = fleet.run(hosts, job, parallel=2, workers=workers, host_timeout=60)
print(json.dumps({"pid": os.getpid(), "status": int(summary.exit_status),
                  "results": [r.to_json() for r in summary.results]}))
"""


class Pty:
    """A host's serial line: the test holds the master, the fleet opens the slave's path."""

    def __init__(self, name: str, size: int) -> None:
        self.name = name
        self.master, self.slave = os.openpty()
        self.path = os.ttyname(self.slave)
        self.data = hashlib.shake_256(name.encode()).digest(size)
        self.thread = threading.Thread(target=self._host, daemon=True)

    def _host(self) -> None:
        """Wait for the job's ``ready``, then send the host's bytes."""
        seen = b""
        while b"ready" not in seen:
            try:
                chunk = os.read(self.master, 100)
            except OSError:
                return
            if not chunk:
                return
            seen += chunk
        view = memoryview(self.data)
        while view:
            view = view[os.write(self.master, view[:4096]) :]

    def close(self) -> None:
        os.close(self.master)
        os.close(self.slave)


def _fleet(tmp_path: Path, workers: int, ptys: list[Pty]) -> dict[str, object]:
    for pty in ptys:
        pty.thread.start()
    specs = [f"{p.name}={p.path}:{len(p.data)}" for p in ptys]
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE, str(tmp_path / "rec"), str(workers), *specs],
        capture_output=True,
        text=True,
        timeout=80,
        cwd=TOP,
    )
    assert proc.returncode == 0, proc.stderr
    result: dict[str, object] = json.loads(proc.stdout.splitlines()[-1])
    return result


def test_a_fleet_over_two_workers_records_every_host_byte_exact(tmp_path: Path) -> None:
    ptys = [Pty(f"node{i}", 20000 + 3000 * i) for i in range(6)]
    try:
        got = _fleet(tmp_path, 2, ptys)
    finally:
        for pty in ptys:
            pty.close()
    results = {r["host"]: r for r in got["results"]}  # type: ignore[attr-defined]
    assert got["status"] == 0, results
    pids = set()
    for pty in ptys:
        entry = results[pty.name]
        assert entry["outcome"] == "ok", entry
        raw = (Path(entry["recording"]) / "console.raw").read_bytes()
        # The job's echo is off on a raw pty: the recording is exactly the host's bytes.
        assert hashlib.sha256(raw).hexdigest() == hashlib.sha256(pty.data).hexdigest()
        assert entry["sha256"] == hashlib.sha256(pty.data).hexdigest()
        pids.add(entry["pid"])
    assert len(pids) == 2 and got["pid"] not in pids, pids


def test_a_worker_that_dies_is_its_hosts_error_and_the_others_finish(tmp_path: Path) -> None:
    """Worker 1 owns doomed-1 and node3 (hosts[1::2]) with one slot: it is killed while
    running doomed-1, so doomed-1 died while running and node3 before it started; worker 0's
    hosts are recorded byte-exact. The run ends (no hang) with exit status 4 (partial)."""
    ptys = [Pty(n, 15000) for n in ("node0", "doomed-1", "node2", "node3")]
    try:
        got = _fleet(tmp_path, 2, ptys)
    finally:
        for pty in ptys:
            pty.close()
    results = {r["host"]: r for r in got["results"]}  # type: ignore[attr-defined]
    assert got["status"] == 4
    assert results["doomed-1"]["outcome"] == "error"
    assert results["doomed-1"]["error"] == (
        "worker process 1 (killed by SIGKILL) died while this host ran"
    )
    assert results["node3"]["outcome"] == "error"
    assert results["node3"]["error"] == (
        "worker process 1 (killed by SIGKILL) died before this host started"
    )
    for name in ("node0", "node2"):
        entry = results[name]
        assert entry["outcome"] == "ok", entry
        raw = (Path(entry["recording"]) / "console.raw").read_bytes()
        want = next(p.data for p in ptys if p.name == name)
        assert raw == want
