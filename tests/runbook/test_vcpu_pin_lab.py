"""Dom0 vCPU pinning end to end against lab hosts, the way an operator runs it.

``solcap run`` in a process of its own: the console is IPMI SOL through each lab host's
virtual BMC, power is IPMI chassis control, Dom0 commands go over SSH to the lab host's SSH
server (key login, host key verified). Truth comes from the lab hosts: the affinities they
report holding (``state/<host>.json``) and the Xen command line they printed on the wire.

* ``node001``: Xen 4.17, 4 pCPUs, first booted without console options (nothing on the wire),
  then booted once with a site profile that extends ``xen-dom0-vcpu-pin`` and adds COM1;
* ``node002``: Xen 4.12.4 booted with ``dom0_vcpus_pin``: re-pinning Dom0 is refused.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from solcap.testing.lab import Lab

pytestmark = pytest.mark.timeout(240)

NO_CONSOLE = ["--xen-args", "dom0_mem=1024M", "--dom0-args", "root=/dev/mapper/vg-root ro"]
#: A site's own profile: the shipped pinning profile plus a serial console, N from the runbook.
SITE_PROFILE = """\
name = "pinned-serial"
extends = "xen-dom0-vcpu-pin"
[vars]
dom0_vcpus = 4
[xen]
options = ["com1=38400,8n1", "console=com1"]
[dom0]
options = ["console=hvc0"]
[console]
baud = 38400
"""
PINNED_412 = ["--xen-version", "4.12.4", "--xen-args",
              "com1=38400,8n1 console=com1 loglvl=all dom0_max_vcpus=2 dom0_vcpus_pin"]  # fmt: skip
BOOT_PINNED = """\
name: boot-pinned
vars: {dom0_vcpus: 2}
steps:
  - power: cycle
  - grub: {mode: oneshot, profile: pinned-serial}
  - expect: {patterns: ["login: "], timeout: 120}
  - vcpu_pin: {domain: guest001, vcpu: all, cpus: "2-3"}
  - vcpu_pin: {domain: Domain-0, vcpu: 1, cpus: "0-1"}
"""


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    the_lab = Lab(tmp_path_factory.mktemp("lab"))
    try:
        the_lab.up(
            2,
            fast=True,
            extra_args={"node001": ["--pcpus", "4", *NO_CONSOLE], "node002": PINNED_412},
        )
        yield the_lab
    finally:
        the_lab.down()


def run(
    lab: Lab, runbook: str | Path, host: str, root: Path, *extra: str, profiles: Path | None = None
) -> tuple[subprocess.CompletedProcess[str], Path]:
    env = {k: v for k, v in os.environ.items() if k not in ("IPMI_PASSWORD", "SOLCAP_PROFILES")}
    if profiles is not None:
        env["SOLCAP_PROFILES"] = str(profiles)
    result = subprocess.run(
        [sys.executable, "-m", "solcap.cli", "run", str(runbook), "--inventory",
         str(lab.inventory), "--limit", host, "--root", str(root), *extra],
        capture_output=True, text=True, timeout=200, env=env, check=False,
    )  # fmt: skip
    name = Path(runbook).stem
    recordings = sorted((root / host).glob(f"*_{name}"))
    assert len(recordings) == 1, result.stdout + result.stderr
    return result, recordings[0]


def events(recording: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (recording / "events.jsonl").read_text().splitlines()]


def meta(recording: Path) -> dict[str, Any]:
    value: dict[str, Any] = json.loads((recording / "meta.json").read_text())
    return value


def test_profile_boots_dom0_pinned_and_the_step_pins_and_verifies(lab: Lab, tmp_path: Path) -> None:
    book = tmp_path / "boot-pinned.yaml"
    book.write_text(BOOT_PINNED)
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "pinned-serial.toml").write_text(SITE_PROFILE)
    result, rec = run(
        lab, book, "node001", tmp_path / "rec", "--var", "dom0_vcpus=3",
        profiles=tmp_path / "profiles",
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert meta(rec)["outcome"] == "ok", meta(rec)["error"]
    raw = (rec / "console.raw").read_bytes()
    lines = re.findall(rb"\(XEN\) Command line: ([^\r\n]*)", raw)
    assert lines, raw[-2000:]
    words = lines[-1].decode().split()
    # ... and it is the boot after the power cycle and the one-shot edit.
    assert raw.rindex(b"GNU GRUB") < raw.rindex(b"(XEN) Command line: ")
    # --var beat the site profile's default (4), which beat the shipped one's (2).
    assert words[0] == "dom0_mem=1024M" and "dom0_vcpus_pin" in words, words
    assert [w for w in words if w.startswith("dom0_max_vcpus=")] == ["dom0_max_vcpus=3"]
    held = lab.host_state("node001")["affinity"]
    # Dom0's 3 vCPUs pinned 1:1 at boot, then vCPU 1 re-pinned (allowed from Xen 4.13).
    assert [held[f"0.{v}"] for v in range(3)] == [["0", "all"], ["0-1", "all"], ["2", "all"]]
    assert held["1.0"] == held["1.1"] == ["2-3", "all"]
    assert held["2.0"] == held["2.1"] == ["all", "all"]
    log = events(rec)
    pinned = [e for e in log if e["event"] == "vcpu-pinned"]
    assert [(e["domain"], e["vcpus"], e["hard"]) for e in pinned] == [
        ("guest001", [0, 1], "2-3"),
        ("Domain-0", [1], "0-1"),
    ]
    outputs = [e for e in log if e["event"] == "ssh-output"]
    assert [e["command"] for e in outputs] == [
        "xl info -n", "xl vcpu-pin guest001 all 2-3", "xl vcpu-list guest001",
        "xl info -n", "xl vcpu-pin Domain-0 1 0-1", "xl vcpu-list Domain-0",
    ]  # fmt: skip
    for event in outputs:
        data = (rec / event["file"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == event["sha256"]
    listing = (rec / "ssh" / "xl-vcpu-list.txt").read_text().splitlines()
    assert listing[0].startswith("Name ") and len(listing) == 3
    assert all(row.endswith("  2-3 / all") for row in listing[1:])


def test_shipped_runbook_refuses_dom0_pinned_at_boot_on_xen_4_12(lab: Lab, tmp_path: Path) -> None:
    before = lab.host_state("node002")["affinity"]
    assert before["0.0"] == ["0", "all"] and before["0.1"] == ["1", "all"]
    result, rec = run(
        lab, "vcpu-pin", "node002", tmp_path, "--var", "domain=Domain-0", "--var", "cpus=3"
    )
    assert result.returncode == 3, result.stdout + result.stderr
    info = meta(rec)
    assert info["outcome"] == "failed"
    assert "Dom0 was pinned at boot (dom0_vcpus_pin" in info["error"]
    assert "Xen 4.12.4 does not allow changing that" in info["error"]
    assert "vcpu-pin.yaml:" in info["error"]
    commands = [e["command"] for e in events(rec) if e["event"] == "ssh-output"]
    assert commands == ["xl info -n"]  # refused before anything was pinned
    assert lab.host_state("node002")["affinity"] == before


def test_shipped_runbook_pins_a_guest_on_xen_4_12(lab: Lab, tmp_path: Path) -> None:
    result, _ = run(
        lab, "vcpu-pin", "node002", tmp_path, "--var", "domain=guest002", "--var", "cpus=1,3"
    )
    assert result.returncode == 0, result.stdout + result.stderr
    held = lab.host_state("node002")["affinity"]
    assert held["2.0"] == held["2.1"] == ["1,3", "all"]
    assert held["0.0"] == ["0", "all"]


def test_a_cpu_the_host_lacks_fails_before_pinning(lab: Lab, tmp_path: Path) -> None:
    before = lab.host_state("node001")["affinity"]
    result, rec = run(
        lab, "vcpu-pin", "node001", tmp_path, "--var", "domain=guest002", "--var", "cpus=2-5"
    )
    assert result.returncode == 3, result.stdout + result.stderr
    assert "item '2-5': no CPU 4 (the host has CPUs 0-3)" in meta(rec)["error"]
    assert [e["command"] for e in events(rec) if e["event"] == "ssh-output"] == ["xl info -n"]
    assert lab.host_state("node001")["affinity"] == before
