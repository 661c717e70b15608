"""The runbook engine end to end against the virtual Xen host over its real pty.

Truth comes from the simulated host (``host.dumps``, ``host.sent_bytes()``, the GRUB it
drives, the Xen it booted), never from solcap's own view of what it did.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from solcap.boot.profiles import Profile
from solcap.console.core import Console
from solcap.grub.menu import apply_oneshot
from solcap.inventory import BmcAddress, Host
from solcap.orchestration.outcomes import HostResult
from solcap.orchestration.runbook import load_runbook, plan, render_plan
from solcap.orchestration.runner import open_host_console, run_host
from solcap.sim.host import SimConfig, VirtualHost
from solcap.sim.xen import HostSpec
from solcap.transports.registry import open_transport

pytestmark = pytest.mark.timeout(120)

BOOT_DONE = re.compile(rb"login: root \(automatic login\)")
SECRET = "s3cr3t-Pw-42"  # 12 bytes + CR: fits GRUB's 16-byte receive FIFO


def sim_power(host: VirtualHost) -> Callable[[Host, str], None]:
    """The ``power`` callable: the virtual host's own methods (as a BMC would act)."""
    actions = {
        "on": host.power_on,
        "off": host.power_off,
        "cycle": host.power_cycle,
        "reset": host.reset,
    }

    def power(_host: Host, action: str) -> None:
        actions[action]()

    return power


def sim_host(vh: VirtualHost, *, bmc: bool = False) -> Host:
    """An inventory host whose console is the virtual host's pty (and a BMC for power)."""
    return Host(
        name="sim1",
        origin="test",
        serial=vh.pty_path,
        bmc=BmcAddress("127.0.0.1") if bmc else None,
    )


@contextlib.contextmanager
def booted(config: SimConfig) -> Iterator[tuple[VirtualHost, int]]:
    """Boot to the Dom0 prompt through a throwaway console; yield the host and bytes read."""
    with VirtualHost(config) as vh:
        with Console(open_transport(vh.pty_path), host="boot") as con:
            vh.power_on()
            con.expect([BOOT_DONE], timeout=60)
            con.settle(0.3, timeout=60)
            read = con.received
        yield vh, read


def write_runbook(tmp_path: Path, text: str, name: str = "rb.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def run(
    runbook: str | Path,
    host: Host,
    root: Path,
    *,
    vh: VirtualHost | None = None,
    overrides: dict[str, str | int | float | bool] | None = None,
    env: dict[str, str] | None = None,
    **options: object,
) -> HostResult:
    rb = load_runbook(runbook)
    hp = plan(rb, [host], overrides=overrides, env=env).hosts[0]
    return run_host(
        hp,
        console_factory=open_host_console,
        power=sim_power(vh) if vh is not None else None,
        ssh_factory=None,
        recordings_root=root,
        runbook_name=rb.name,
        **options,  # type: ignore[arg-type]
    )


def events(outcome: HostResult) -> list[dict[str, object]]:
    lines = (outcome.recording / "events.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def fast_oneshot(console: Console, profile: Profile, entry: str | None) -> object:
    """apply_oneshot with timings for the fast virtual line."""
    options: dict[str, object] = {"quiet": 0.05, "poke_interval": 0.3, "menu_timeout": 30}
    if entry is not None:
        options["entry"] = entry
    return apply_oneshot(console, profile, **options)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- harvest


def test_shipped_harvest_runbook_is_byte_identical_to_the_host(tmp_path: Path) -> None:
    config = SimConfig(spec=HostSpec(domus=6), fast=True, auto_power_on=False, grub_timeout=1)
    with booted(config) as (vh, boot_bytes):
        outcome = run(
            "harvest-debug-keys",
            sim_host(vh),
            tmp_path,
            overrides={"keys": "h,q,u", "quiet": 0.3},
        )
        assert outcome.outcome == "ok", outcome.error
        assert vh.input_target == "dom0"  # handed back by the runbook's last step
        assert vh.wait_idle(10)
        sent = vh.sent_bytes()[boot_bytes:]
    rec = outcome.recording
    raw = (rec / "console.raw").read_bytes()
    assert raw == sent  # the whole run, byte for byte, from the first byte
    assert outcome.bytes == len(raw)
    meta = json.loads((rec / "meta.json").read_text())
    assert meta["finished"] and meta["outcome"] == "ok" and meta["runbook"] == "harvest-debug-keys"
    keys = [s for s in meta["segments"] if s["name"] in ("h", "q", "u")]
    assert [s["name"] for s in keys] == ["h", "q", "u"]
    assert [s["sha256"] for s in keys] == [d.sha256 for d in vh.dumps]
    for segment, dump in zip(keys, vh.dumps, strict=True):
        data = (rec / segment["file"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == dump.sha256
    assert json.loads((rec / "keys" / "q.json").read_text())["domains"]
    # mark start/end around the keys: one segment covering all three dumps
    whole = next(s for s in meta["segments"] if s["name"] == "debug-keys")
    assert whole["start"] <= keys[0]["start"] and keys[-1]["end"] <= whole["end"]
    assert rec.parent.name == "sim1" and rec.name.endswith("_harvest-debug-keys")


# --------------------------------------------------------------------------- goto


GOTO_RUNBOOK = """\
name: goto-demo
steps:
  - id: wait
    expect: {patterns: ["\\nREADY-MARK\\r"], timeout: 0.5, on_timeout: {goto: kick}}
  - mark: {event: ready}
  - expect: {patterns: ["NEVER-PRINTED"], timeout: 0.1, on_timeout: {goto: done}}
  - id: kick
    sendline: echo READY-MARK
  - expect: {patterns: ["NEVER-PRINTED"], timeout: 0.1, on_timeout: {goto: wait}}
  - id: done
    mark: {event: finished}
"""


def test_expect_timeout_goto_runs_the_steps_in_the_jumped_order(tmp_path: Path) -> None:
    config = SimConfig(fast=True, auto_power_on=False, grub_timeout=1)
    with booted(config) as (vh, _):
        outcome = run(write_runbook(tmp_path, GOTO_RUNBOOK), sim_host(vh), tmp_path / "rec")
    assert outcome.outcome == "ok", outcome.error
    order = [e["index"] for e in events(outcome) if e["event"] == "step"]
    # wait (times out) → kick → expect (times out) → wait (matches) → mark → skip → done
    assert order == [1, 4, 5, 1, 2, 3, 6]
    raw = (outcome.recording / "console.raw").read_bytes()
    assert b"echo READY-MARK" in raw and b"\nREADY-MARK\r" in raw


LOOP_RUNBOOK = """\
name: loop
steps:
  - id: again
    expect: {patterns: ["NEVER-PRINTED"], timeout: 0.01, on_timeout: {goto: again}}
"""


def test_goto_loop_is_bounded_and_fails_the_host(tmp_path: Path) -> None:
    config = SimConfig(fast=True, auto_power_on=False, grub_timeout=1)
    with booted(config) as (vh, _):
        outcome = run(
            write_runbook(tmp_path, LOOP_RUNBOOK), sim_host(vh), tmp_path / "rec", max_jumps=5
        )
    assert outcome.outcome == "failed"
    assert outcome.error is not None and "more than 5 goto jumps" in outcome.error
    assert [e["event"] for e in events(outcome)].count("expect-timeout") == 6
    meta = json.loads((outcome.recording / "meta.json").read_text())
    assert meta["finished"] and meta["outcome"] == "failed"


# --------------------------------------------------------------------------- secrets


GRUB_PASSWORD_RUNBOOK = """\
name: grub-password
steps:
  - power: on
  - expect: {patterns: ["The highlighted entry will be executed"], timeout: 30}
  - send: "e"
  - expect: {patterns: ["Enter username:"], timeout: 10}
  - sendline: root
  - expect: {patterns: ["Enter password:"], timeout: 10}
  - send_secret: env:SOLCAP_TEST_GRUB_PW
  - expect: {patterns: ["Minimum Emacs-like screen editing"], timeout: 10}
"""


def test_send_secret_reaches_grub_and_is_redacted_in_solcaps_files(tmp_path: Path) -> None:
    """GRUB's password prompt does not echo, and opens the editor only for the right bytes:
    the editor appearing proves receipt without the secret ever being on the line."""
    config = SimConfig(fast=True, auto_power_on=False, grub_password=("root", SECRET))
    env = {"SOLCAP_TEST_GRUB_PW": SECRET}
    path = write_runbook(tmp_path, GRUB_PASSWORD_RUNBOOK)
    with VirtualHost(config) as vh:
        host = sim_host(vh, bmc=True)
        dry = render_plan(plan(load_runbook(path), [host], env=env))
        outcome = run(path, host, tmp_path / "rec", vh=vh, env=env)
        assert vh.wait_idle(10)
        on_line = vh.sent_bytes()
    assert outcome.outcome == "ok", outcome.error
    secret = SECRET.encode()
    assert secret not in on_line  # GRUB never printed it ...
    assert b"Minimum Emacs-like screen editing" in on_line  # ... yet accepted it
    assert "<redacted:12 bytes>" in dry and SECRET not in dry
    rec = outcome.recording
    for name in ("events.jsonl", "console.log", "console.raw", "meta.json"):
        assert secret not in (rec / name).read_bytes(), name
    sent = [e for e in events(outcome) if e["event"] == "send_secret"]
    assert sent == [
        {
            **sent[0],
            "source": "env:SOLCAP_TEST_GRUB_PW",
            "data": "<redacted:12 bytes>",
            "newline": True,
        }
    ]


ECHO_SECRET_RUNBOOK = """\
name: echoed-secret
steps:
  - send_secret: env:SOLCAP_TEST_PW
  - expect: {patterns: ["NEVER-PRINTED"], timeout: 0.5}
"""


def test_secret_echoed_by_the_host_is_scrubbed_from_errors_and_events(tmp_path: Path) -> None:
    """A shell echoes what is typed: the raw capture keeps the host's echo (that is the host's
    business), but the timeout message quoting the last bytes must not carry it."""
    config = SimConfig(fast=True, auto_power_on=False, grub_timeout=1)
    env = {"SOLCAP_TEST_PW": SECRET}
    with booted(config) as (vh, _):
        outcome = run(
            write_runbook(tmp_path, ECHO_SECRET_RUNBOOK), sim_host(vh), tmp_path / "rec", env=env
        )
    assert outcome.outcome == "failed"
    assert outcome.error is not None and "<redacted>" in outcome.error
    assert SECRET not in outcome.error
    rec = outcome.recording
    assert SECRET.encode() in (rec / "console.raw").read_bytes()  # the Dom0 shell's echo
    for name in ("events.jsonl", "meta.json"):
        assert SECRET.encode() not in (rec / name).read_bytes(), name


# --------------------------------------------------------------------------- death strings


def test_panic_death_string_ends_the_run_as_failed(tmp_path: Path) -> None:
    config = SimConfig(fast=True, auto_power_on=False, faults=frozenset({"panic"}))
    with VirtualHost(config) as vh:
        outcome = run(
            "failed-boot",
            sim_host(vh, bmc=True),
            tmp_path,
            vh=vh,
            overrides={"boot_timeout": 60},
            grub_oneshot=fast_oneshot,
        )
        assert vh.state in ("panicked", "firmware", "grub", "booting")
    assert outcome.outcome == "failed"
    assert outcome.error is not None and "Panic on CPU" in outcome.error
    assert outcome.duration < 60  # stopped at the panic, not at the login timeout
    meta = json.loads((outcome.recording / "meta.json").read_text())
    assert meta["finished"] and meta["outcome"] == "failed" and "Panic on CPU" in meta["error"]
    boot = [s for s in meta["segments"] if s["name"] == "boot"]
    assert boot and boot[0]["complete"] is False  # the open mark kept, said to be cut short


# --------------------------------------------------------------------------- failed boot


def test_failed_boot_runbook_makes_xens_console_appear(tmp_path: Path) -> None:
    dom0 = "root=/dev/mapper/vg-root ro"
    config = SimConfig(fast=True, auto_power_on=False, xen_args="dom0_mem=512M", dom0_args=dom0)
    with VirtualHost(config) as vh:
        # Without the profile this host's Xen says nothing on the serial line.
        vh.power_on()
        assert vh.wait_state("running", 60)
        assert b"(XEN)" not in vh.sent_bytes()
        outcome = run(
            "failed-boot",
            sim_host(vh, bmc=True),
            tmp_path,
            vh=vh,
            overrides={"boot_timeout": 60},
            grub_oneshot=fast_oneshot,
        )
        assert vh.xen is not None and vh.xen.serial_console and vh.xen.dom0_visible
        assert "console=com1" in vh.xen.xen_cmdline.split()
    assert outcome.outcome == "ok", outcome.error
    raw = (outcome.recording / "console.raw").read_bytes()
    assert b"(XEN) Command line: dom0_mem=512M " in raw
    assert b"login: " in raw
    meta = json.loads((outcome.recording / "meta.json").read_text())
    boot = next(s for s in meta["segments"] if s["name"] == "boot")
    assert boot["complete"] and boot["end"] - boot["start"] > 1000
    kinds = [e["event"] for e in events(outcome)]
    assert kinds.index("power") < kinds.index("grub-oneshot") < kinds.index("expect-matched")


# --------------------------------------------------------------------------- docs


def test_the_execution_example_in_the_docs_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "runbooks.md").read_text()
    section = doc.split("\n## Execution\n", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "docs/runbooks.md", "exec"), {})
    printed = capsys.readouterr().out.split()
    assert printed[0] == "ok"
    assert Path(printed[1]).parent == Path("recordings/sim1")
    assert json.loads((Path(printed[1]) / "meta.json").read_text())["outcome"] == "ok"
