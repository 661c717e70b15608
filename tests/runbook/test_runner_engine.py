"""Engine rules on pyserial's ``loop://`` console (what is written comes back), no simulator:
on_timeout retry/continue, the outcome rule, errors as outcomes, Ctrl-C, threads."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from solcap.inventory import BmcAddress, Host
from solcap.orchestration.outcomes import HostResult
from solcap.orchestration.runbook import load_runbook, plan
from solcap.orchestration.runner import open_host_console, run_host

pytestmark = pytest.mark.timeout(60)


def loop_host(name: str = "loop1") -> Host:
    return Host(name=name, origin="test", serial="loop://", bmc=BmcAddress("127.0.0.1"))


def run_text(
    tmp_path: Path,
    text: str,
    *,
    host: Host | None = None,
    power: Callable[[Host, str], None] | None = None,
) -> HostResult:
    path = tmp_path / f"{threading.get_ident()}.yaml"
    path.write_text(text)
    rb = load_runbook(path)
    return run_host(
        plan(rb, [host or loop_host()]).hosts[0],
        console_factory=open_host_console,
        power=power,
        ssh_factory=None,
        recordings_root=tmp_path / "rec",
        runbook_name=rb.name,
    )


def kinds(outcome: HostResult) -> list[str]:
    lines = (outcome.recording / "events.jsonl").read_text().splitlines()
    return [json.loads(line)["event"] for line in lines]


def test_retry_runs_the_expect_again_then_fails(tmp_path: Path) -> None:
    outcome = run_text(
        tmp_path,
        "name: r\nsteps:\n  - expect: {patterns: [NEVER], timeout: 0.05, on_timeout: {retry: 2}}\n",
    )
    assert outcome.outcome == "failed"
    assert outcome.error is not None and "still nothing after 2 retries" in outcome.error
    assert kinds(outcome).count("expect-timeout") == 3


def test_continue_and_success_pattern(tmp_path: Path) -> None:
    outcome = run_text(
        tmp_path,
        "name: c\nsteps:\n"
        "  - expect: {patterns: [NEVER], timeout: 0.05, on_timeout: continue}\n"
        "  - sendline: all good here\n"
        "  - expect: good\n"
        "outcome: {success: ['all good']}\n",
    )
    assert outcome.outcome == "ok", outcome.error
    assert (outcome.recording / "console.raw").read_bytes() == b"all good here\r"
    assert outcome.bytes == len(b"all good here\r")


def test_failure_pattern_anywhere_in_the_run_fails_it(tmp_path: Path) -> None:
    outcome = run_text(
        tmp_path,
        "name: f\nsteps:\n  - sendline: 'x BOOM y'\n  - expect: y\noutcome: {failure: [BOOM]}\n",
    )
    assert outcome.outcome == "failed"
    assert outcome.error is not None
    assert "failure pattern /BOOM/ at byte 2: 'x BOOM y'" in outcome.error


def test_missing_success_pattern_fails(tmp_path: Path) -> None:
    outcome = run_text(
        tmp_path,
        "name: s\nsteps:\n  - sendline: nope\n  - expect: nope\noutcome: {success: [login]}\n",
    )
    assert outcome.outcome == "failed"
    assert outcome.error is not None and "no success pattern (/login/)" in outcome.error


def test_death_string_after_the_last_wait_still_fails_the_run(tmp_path: Path) -> None:
    outcome = run_text(
        tmp_path,
        "name: d\ndeath_strings: ['Panic on CPU']\nsteps:\n"
        "  - sendline: '(XEN) Panic on CPU 0:'\n  - settle: {quiet: 0.1, timeout: 5}\n",
    )
    assert outcome.outcome == "failed"
    assert outcome.error is not None and "(XEN) Panic on CPU 0:" in outcome.error


def test_errors_in_callables_become_the_outcome(tmp_path: Path) -> None:
    def broken(_host: Host, _action: str) -> None:
        raise RuntimeError("relay stuck")

    rb = "name: p\nsteps:\n  - power: cycle\n"
    outcome = run_text(tmp_path, rb, power=broken)
    assert outcome.outcome == "error"
    assert outcome.error == "internal error (RuntimeError): relay stuck"
    none = run_text(tmp_path, rb, power=None)
    assert none.outcome == "error"
    assert none.error is not None and "needs power control" in none.error


def test_ctrl_c_closes_the_recording_and_propagates(tmp_path: Path) -> None:
    def interrupt(_host: Host, _action: str) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_text(tmp_path, "name: k\nsteps:\n  - power: cycle\n", power=interrupt)
    (meta_path,) = (tmp_path / "rec").glob("*/*/meta.json")
    meta = json.loads(meta_path.read_text())
    assert meta["finished"] and meta["outcome"] == "error" and meta["error"] == "interrupted"


def test_hosts_run_in_parallel_threads_keep_separate_recordings(tmp_path: Path) -> None:
    results: dict[str, HostResult] = {}

    def one(name: str) -> None:
        results[name] = run_text(
            tmp_path,
            f"name: t\nsteps:\n  - sendline: 'I am {name}'\n  - expect: '{name}'\n",
            host=loop_host(name),
        )

    threads = [threading.Thread(target=one, args=(f"h{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(results) == ["h0", "h1", "h2", "h3"]
    for name, outcome in results.items():
        assert outcome.outcome == "ok", outcome.error
        assert outcome.recording.parent.name == name
        assert (outcome.recording / "console.raw").read_bytes() == f"I am {name}\r".encode()
