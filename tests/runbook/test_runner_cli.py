"""``solcap run``: dry run (nothing contacted, secrets redacted), real runs and exit codes."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from solcap.cli import main
from solcap.console.core import Console
from solcap.sim.host import SimConfig, VirtualHost
from solcap.transports.registry import open_transport

pytestmark = pytest.mark.timeout(120)

BOOT_DONE = re.compile(rb"login: root \(automatic login\)")
SECRET = "cli-s3cret-value"


def cli(argv: list[str]) -> tuple[int, str]:
    out = io.StringIO()
    status = main(argv, out=out)
    return status, out.getvalue()


@pytest.fixture
def booted() -> Iterator[VirtualHost]:
    config = SimConfig(fast=True, auto_power_on=False, grub_timeout=1)
    with VirtualHost(config) as vh:
        with Console(open_transport(vh.pty_path), host="boot") as con:
            vh.power_on()
            con.expect([BOOT_DONE], timeout=60)
            con.settle(0.3, timeout=60)
        yield vh


SECRET_RUNBOOK = """\
name: with-secret
vars: {prompt: "~# "}
steps:
  - send_secret: env:SOLCAP_CLI_SECRET
  - expect: {patterns: ["${prompt}"], timeout: 5}
"""


def test_dry_run_prints_the_plan_redacted_and_sends_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOLCAP_CLI_SECRET", SECRET)
    rb = tmp_path / "rb.yaml"
    rb.write_text(SECRET_RUNBOOK)
    with VirtualHost(SimConfig(fast=True, auto_power_on=False)) as vh:
        status, text = cli(
            ["run", str(rb), "--host", vh.pty_path, "--dry-run", "--root", str(tmp_path / "r")]
        )
        assert vh.wait_idle(5)
        assert vh.sent_count() == 0 and vh.state == "off"
    assert status == 0, text
    assert "send_secret env:SOLCAP_CLI_SECRET <redacted:16 bytes>" in text
    assert SECRET not in text
    assert not (tmp_path / "r").exists()  # no recording either


def test_dry_run_of_an_inventory_shard_lists_only_its_hosts(tmp_path: Path) -> None:
    inv = tmp_path / "inv.yaml"
    names = [f"node{i:02d}" for i in range(8)]
    lines = [f"  {n}: {{bmc: admin@10.0.0.{i}, password: env:PW}}\n" for i, n in enumerate(names)]
    inv.write_text("hosts:\n" + "".join(lines))
    shown: list[str] = []
    for index in (0, 1):  # --shard is 0-based (inventory.parse_shard)
        status, text = cli(
            ["run", "failed-boot", "--inventory", str(inv), "--shard", f"{index}/2", "--dry-run"]
        )
        assert status == 0, text
        shown += re.findall(r"^host (\S+) ", text, re.M)
    assert sorted(shown) == names  # the two shards split the hosts exactly


def test_run_ok_exits_0_and_records(tmp_path: Path, booted: VirtualHost) -> None:
    rb = tmp_path / "rb.yaml"
    rb.write_text("name: hello\nsteps:\n  - sendline: hostname\n  - expect: '\\nxenhost\\r'\n")
    status, text = cli(
        ["run", str(rb), "--host", booted.pty_path, "--name", "sim1", "--root", str(tmp_path)]
    )
    assert status == 0, text
    assert text.startswith("sim1: ok in ")
    recording = Path(text.split("recording ", 1)[1].split()[0])
    assert json.loads((recording / "meta.json").read_text())["outcome"] == "ok"
    assert recording.parent == tmp_path / "sim1"


def test_failed_single_host_exits_3_with_the_reason(
    tmp_path: Path, booted: VirtualHost, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOLCAP_CLI_SECRET", SECRET)
    rb = tmp_path / "rb.yaml"
    rb.write_text(SECRET_RUNBOOK)
    status, text = cli(
        [
            "run", str(rb), "--host", booted.pty_path, "--name", "sim1",
            "--var", "prompt=NEVER-PRINTED", "--root", str(tmp_path),
        ]
    )  # fmt: skip
    assert status == 3, text
    assert "sim1: FAILED" in text and "NEVER-PRINTED" in text
    assert SECRET not in text  # the Dom0 shell echoed it; the message shows <redacted>


def test_partial_success_exits_4(tmp_path: Path, booted: VirtualHost) -> None:
    inv = tmp_path / "inv.yaml"
    inv.write_text(
        f"hosts:\n  good: {{serial: {booted.pty_path}}}\n"
        f"  gone: {{serial: {tmp_path}/no-such-tty}}\n"
    )
    rb = tmp_path / "rb.yaml"
    rb.write_text("name: hello\nsteps:\n  - sendline: hostname\n  - expect: 'xenhost'\n")
    status, text = cli(["run", str(rb), "--inventory", str(inv), "--root", str(tmp_path / "r")])
    assert status == 4, text
    # Inventory runs go through the fleet: one line per host, then the table and totals.
    assert "good: ok" in text and "gone: failed" in text and "2 hosts: 1 ok, 1 failed" in text
    # The host whose console could not be opened left no (empty) recording directory.
    assert (tmp_path / "r" / "good").is_dir() and not (tmp_path / "r" / "gone").exists()


def test_bad_input_exits_2_before_any_traffic(tmp_path: Path) -> None:
    rb = tmp_path / "rb.yaml"
    rb.write_text("name: p\nsteps:\n  - power: cycle\n")
    with VirtualHost(SimConfig(fast=True, auto_power_on=False)) as vh:
        assert cli(["run", str(rb), "--host", vh.pty_path])[0] == 2  # no BMC for power
        assert cli(["run", "harvest-debug-keys", "--host", vh.pty_path, "--var", "nope=1"])[0] == 2
        assert cli(["run", "harvest-debug-keys", "--host", vh.pty_path, "--var", "keys"])[0] == 2
        assert vh.wait_idle(5)
        assert vh.sent_count() == 0
