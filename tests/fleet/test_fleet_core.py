"""The fleet scheduler with jobs written here (no consoles): concurrency bound, per-host
timeout closing what the job registered, isolation of failures, Ctrl-C, summaries, retry."""

from __future__ import annotations

import _thread
import io
import json
import re
import threading
from pathlib import Path

import pytest

from solcap.capture.recording import Recording
from solcap.commands.progress import make_progress
from solcap.errors import ConnectError, ExitStatus, UsageError
from solcap.inventory import Host, parse_shard, select_hosts
from solcap.orchestration import fleet
from solcap.orchestration.fleet import FleetInterrupted, HostContext, HostResult

pytestmark = pytest.mark.timeout(60)


def hosts(n: int) -> list[Host]:
    return [Host(name=f"h{i:02d}", origin="test") for i in range(n)]


def test_concurrency_is_bounded_and_every_host_reported_in_order() -> None:
    lock = threading.Lock()
    active = 0
    peak = 0
    gate = threading.Barrier(3, timeout=10)  # the first three must really run at once

    def job(host: Host, ctx: HostContext) -> HostResult:
        nonlocal active, peak
        with lock:
            active += 1
            peak = max(peak, active)
        if host.name in ("h00", "h01", "h02"):
            gate.wait()
        with lock:
            active -= 1
        return ctx.result("ok", bytes=len(host.name))

    summary = fleet.run(hosts(20), job, parallel=3)
    assert peak == 3
    assert [r.name for r in summary.results] == [h.name for h in hosts(20)]
    assert summary.counts == {"ok": 20, "failed": 0, "timeout": 0, "error": 0}
    assert summary.exit_status == ExitStatus.OK


def test_a_failing_host_never_stops_the_others_and_errors_are_one_line() -> None:
    def job(host: Host, ctx: HostContext) -> HostResult:
        if host.name == "h01":
            raise ConnectError("10.0.0.9", "authentication failed\nfor user admin")
        if host.name == "h02":
            raise ValueError("a bug\nover two lines")
        return ctx.result("ok")

    summary = fleet.run(hosts(4), job, parallel=2)
    by = {r.name: r for r in summary.results}
    assert by["h01"].outcome == "failed"
    assert by["h01"].error == "10.0.0.9: authentication failed for user admin"
    assert by["h02"].outcome == "error"
    assert by["h02"].error == "internal error (ValueError): a bug over two lines"
    assert by["h00"].ok and by["h03"].ok
    assert summary.exit_status == ExitStatus.PARTIAL


def test_all_failed_is_exit_3() -> None:
    def job(host: Host, ctx: HostContext) -> HostResult:
        return ctx.result("failed", error="no")

    assert fleet.run(hosts(2), job).exit_status == ExitStatus.TARGET


def test_timeout_closes_what_the_job_registered_and_frees_the_slot() -> None:
    closed = threading.Event()
    finished: list[str] = []

    def job(host: Host, ctx: HostContext) -> HostResult:
        if host.name == "h00":
            unblock = threading.Event()
            ctx.on_cancel(lambda: (closed.set(), unblock.set()))  # e.g. console.close
            assert unblock.wait(30), "the fleet never closed the console"
            return ctx.result("failed", error="console was closed locally")
        finished.append(host.name)
        return ctx.result("ok")

    summary = fleet.run(hosts(4), job, parallel=2, host_timeout=0.5)
    by = {r.name: r for r in summary.results}
    assert closed.is_set()
    assert by["h00"].outcome == "timeout"
    assert by["h00"].error == "no result within the host timeout of 0.5s; console closed"
    assert 0.5 <= by["h00"].duration < 5
    assert sorted(finished) == ["h01", "h02", "h03"]
    assert summary.counts["ok"] == 3 and summary.exit_status == ExitStatus.PARTIAL


def test_a_job_that_ignores_cancel_is_abandoned_after_the_grace() -> None:
    release = threading.Event()

    def job(host: Host, ctx: HostContext) -> HostResult:
        if host.name == "h00":
            release.wait(30)  # stuck, e.g. in a login that cannot be interrupted
        return ctx.result("ok")

    try:
        summary = fleet.run(hosts(3), job, parallel=1, host_timeout=0.3, cancel_grace=0.3)
    finally:
        release.set()
    first = summary.results[0]
    assert first.outcome == "timeout"
    assert "did not stop within 0.3s" in (first.error or "")
    assert [r.outcome for r in summary.results[1:]] == ["ok", "ok"]


def test_ctrl_c_cancels_running_hosts_and_their_recordings_are_closed(tmp_path: Path) -> None:
    started = threading.Semaphore(0)

    def job(host: Host, ctx: HostContext) -> HostResult:
        recording = Recording(host.name, label="t", root=ctx.root)
        ctx.recording = recording.path
        stop = threading.Event()
        ctx.on_cancel(stop.set)
        try:
            started.release()
            stop.wait(30)
        finally:
            summary = recording.close()
        return ctx.result("failed", error="closed", recording=summary.path)

    def interrupt_when_two_run() -> None:
        started.acquire(timeout=10)
        started.acquire(timeout=10)
        _thread.interrupt_main()

    threading.Thread(target=interrupt_when_two_run, daemon=True).start()
    with pytest.raises(FleetInterrupted) as info:
        fleet.run(hosts(5), job, parallel=2, root=tmp_path)
    summary = info.value.summary
    assert summary.interrupted and summary.exit_status == ExitStatus.INTERRUPTED
    outcomes = [(r.outcome, r.error) for r in summary.results]
    assert outcomes[:2] == [("error", "interrupted")] * 2
    assert outcomes[2:] == [("error", "not started: the run was interrupted")] * 3
    for result in summary.results[:2]:
        assert result.recording is not None
        meta = json.loads((result.recording / "meta.json").read_text())
        assert meta["finished"] is True


def test_summary_json_and_retry_selection(tmp_path: Path) -> None:
    def job(host: Host, ctx: HostContext) -> HostResult:
        outcome: fleet.Outcome = "failed" if host.name in ("h01", "h03") else "ok"
        return ctx.result(outcome, error=None if outcome == "ok" else "x", bytes=10)

    summary = fleet.run(hosts(5), job, meta={"kind": "test"})
    path = summary.write(tmp_path / "s.json")
    assert path.stat().st_mode & 0o777 == 0o600
    data = json.loads(path.read_text())
    assert data["kind"] == "test"
    assert data["totals"] == {
        "hosts": 5,
        "ok": 3,
        "failed": 2,
        "timeout": 0,
        "error": 0,
        "bytes": 50,
        "exit_status": 4,
    }
    assert set(data["hosts"][0]) >= {"host", "outcome", "error", "bytes", "duration", "recording"}
    again = fleet.retry_selection(hosts(5), path)
    assert [h.name for h in again] == ["h01", "h03"]
    with pytest.raises(UsageError, match="h03"):
        fleet.retry_selection(hosts(3), path)
    run_dir = summary.write_run_dir(tmp_path, "test")
    assert run_dir.parent.parent == tmp_path / "_fleet"
    assert json.loads(run_dir.read_text())["totals"]["hosts"] == 5


def test_bad_summary_file_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "x.json").write_text('{"not": "a summary"}')
    with pytest.raises(UsageError, match="not a fleet summary"):
        fleet.load_summary(tmp_path / "x.json")
    with pytest.raises(UsageError, match="no such summary"):
        fleet.load_summary(tmp_path / "missing.json")


def test_shards_cover_every_host_exactly_once() -> None:
    pool = [Host(name=f"node{i:03d}", origin="t") for i in range(1, 201)]
    shares = [select_hosts(pool, shard=parse_shard(f"{i}/3")) for i in range(3)]
    names = [h.name for share in shares for h in share]
    assert sorted(names) == [h.name for h in pool]
    assert all(len(share) > 40 for share in shares)  # a real split, not all in one


def test_plain_progress_one_line_per_host_and_rich_progress_renders() -> None:
    def job(host: Host, ctx: HostContext) -> HostResult:
        return ctx.result("ok" if host.name != "h02" else "timeout", bytes=7)

    out = io.StringIO()
    fleet.run(hosts(3), job, progress=make_progress("auto", out))  # not a tty: plain
    lines = out.getvalue().splitlines()
    assert [line[:6] for line in lines[:3]] == ["[1/3] ", "[2/3] ", "[3/3] "]
    shown = sorted(re.sub(r" \d+\.\ds ", " Ts ", line[6:]) for line in lines[:3])
    assert shown == ["h00: ok Ts 7 bytes", "h01: ok Ts 7 bytes", "h02: timeout Ts 7 bytes"]
    assert lines[3].split() == ["HOST", "OUTCOME", "SECONDS", "BYTES", "ERROR", "/", "RECORDING"]
    assert lines[4].split()[:2] == ["h02", "timeout"]  # problems first
    assert re.fullmatch(r"3 hosts: 2 ok, 1 timeout; 21 bytes in \d+\.\ds", lines[-1])

    rich_out = io.StringIO()
    fleet.run(hosts(3), job, progress=make_progress("rich", rich_out))
    text = rich_out.getvalue()
    assert "h02" in text and "timeout" in text and "3 hosts: 2 ok, 1 timeout" in text


def test_bad_arguments_are_usage_errors() -> None:
    def job(host: Host, ctx: HostContext) -> HostResult:
        return ctx.result("ok")

    with pytest.raises(UsageError, match="parallel"):
        fleet.run(hosts(1), job, parallel=0)
    with pytest.raises(UsageError, match="host-timeout"):
        fleet.run(hosts(1), job, host_timeout=0)
    with pytest.raises(UsageError, match="twice"):
        fleet.run(hosts(1) + hosts(1), job)
