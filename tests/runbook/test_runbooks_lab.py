"""Every shipped runbook end to end against lab hosts, the way an operator runs them.

``solcap run RUNBOOK --inventory lab/inventory.yaml --limit HOST`` in a process of its own:
consoles are IPMI SOL sessions through each lab host's virtual BMC, power is IPMI chassis
control through the same BMC, Dom0 commands go over SSH to the lab host's SSH server (key
login, host key verified against the lab's known_hosts). Truth comes from the lab hosts
(the dumps they report sending, the machine they simulate), never from solcap's own view.

One lab serves the module:

* ``node001``: a healthy host with 6 physical CPUs (harvest, topology, xentrace, virt mode);
* ``node002``: Xen and Dom0 booted without any console options (nothing of Xen reaches the
  serial line) and a host that panics while building Dom0;
* ``node003``: the same console-less boot, without the fault.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import select
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from solcap.boot.profiles import load_profile
from solcap.testing.lab import Lab

pytestmark = pytest.mark.timeout(180)

RUNBOOKS = Path(__file__).resolve().parents[2] / "runbooks"
#: Xen and Dom0 arguments with no console option at all: only the profile can make Xen heard.
NO_CONSOLE = ["--xen-args", "dom0_mem=1024M", "--dom0-args", "root=/dev/mapper/vg-root ro"]
PCPUS = 6


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    the_lab = Lab(tmp_path_factory.mktemp("lab"))
    try:
        the_lab.up(
            3,
            fast=True,
            faults={"node002": ["panic"]},
            extra_args={
                "node001": ["--pcpus", str(PCPUS)],
                "node002": NO_CONSOLE,
                "node003": NO_CONSOLE,
            },
        )
        yield the_lab
    finally:
        the_lab.down()


def solcap(*args: str | Path, timeout: float = 150) -> subprocess.CompletedProcess[str]:
    """The CLI in its own process, as an operator starts it (no IPMI_PASSWORD needed)."""
    env = {k: v for k, v in os.environ.items() if k != "IPMI_PASSWORD"}
    return subprocess.run(
        [sys.executable, "-m", "solcap.cli", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )


def run(
    lab: Lab, runbook: str, host: str, root: Path, *extra: str
) -> tuple[subprocess.CompletedProcess[str], Path]:
    """``solcap run`` one shipped runbook on one lab host; returns the result and recording."""
    result = solcap(
        "run", runbook, "--inventory", lab.inventory, "--limit", host, "--root", root, *extra
    )
    recordings = sorted((root / host).glob(f"*_{runbook}"))
    assert len(recordings) == 1, result.stdout + result.stderr
    return result, recordings[0]


def meta(recording: Path) -> dict[str, Any]:
    value: dict[str, Any] = json.loads((recording / "meta.json").read_text())
    return value


def events(recording: Path) -> list[dict[str, Any]]:
    lines = (recording / "events.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --------------------------------------------------------------------------- console runbooks


def test_harvest_debug_keys_segments_are_what_the_host_sent(lab: Lab, tmp_path: Path) -> None:
    result, rec = run(lab, "harvest-debug-keys", "node001", tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.match(r"\[1/1\] node001: ok [\d.]+s \d+ bytes ", result.stdout)
    info = meta(rec)
    assert info["outcome"] == "ok" and info["error"] is None and info["finished"]
    keys = [s for s in info["segments"] if s["name"] in ("h", "q", "u", "m")]
    assert [s["name"] for s in keys] == ["h", "q", "u", "m"]
    sent = {(d["key"], d["sha256"]) for d in lab.host_state("node001")["dumps"]}
    raw = (rec / "console.raw").read_bytes()
    for segment in keys:
        data = (rec / segment["file"]).read_bytes()
        assert data == raw[segment["start"] : segment["end"]]
        assert sha256(data) == segment["sha256"]
        assert segment["complete"], segment
        assert (segment["name"], segment["sha256"]) in sent, segment["name"]
    # Input went to Xen and came back to Dom0, each switch confirmed by Xen's banner.
    assert raw.count(b"*** Serial input to Xen") >= 1
    assert raw.rstrip().endswith(b"(type 'CTRL-a' three times to switch input)")
    assert lab.host_state("node001")["input_target"] == "dom0"


def test_failed_boot_catches_the_panic_with_the_profiles_console(lab: Lab, tmp_path: Path) -> None:
    """node002 boots silently (no console options) and panics: only the one-shot profile
    edit over SOL, after an IPMI power cycle, lets the panic be seen and captured."""
    result, rec = run(lab, "failed-boot", "node002", tmp_path, "--var", "boot_timeout=120")
    assert result.returncode == 3, result.stdout + result.stderr
    info = meta(rec)
    assert info["outcome"] == "failed"
    assert "Panic on CPU" in info["error"] and "Panic on CPU" in result.stdout
    assert info["duration"] < 60  # the death string ended the wait, not the login timeout
    raw = (rec / "console.raw").read_bytes()
    profile = load_profile("xen-serial-debug")
    line = re.search(rb"\(XEN\) Command line: ([^\r\n]*)", raw)
    assert line is not None
    xen_args = line.group(1).decode().split()
    assert xen_args[0] == "dom0_mem=1024M"
    assert set(profile.xen.options) <= set(xen_args)
    assert b"Panic on CPU 0:" in raw
    assert b"login: " not in raw
    kinds = [e["event"] for e in events(rec)]
    assert kinds.index("power") < kinds.index("grub-oneshot") < kinds.index("failed")
    oneshot = next(e for e in events(rec) if e["event"] == "grub-oneshot")
    assert oneshot["xen_before"] == "dom0_mem=1024M"
    # The IPMI power cycle really restarted the machine: its firmware came over SOL first.
    assert raw.index(b"SeaBIOS") < raw.index(b"GNU GRUB") < line.start()
    boot = next(s for s in info["segments"] if s["name"] == "boot")
    assert boot["complete"] is False  # the open mark is kept, said to be cut short


def test_failed_boot_reaches_login_without_the_fault(lab: Lab, tmp_path: Path) -> None:
    result, rec = run(lab, "failed-boot", "node003", tmp_path, "--var", "boot_timeout=120")
    assert result.returncode == 0, result.stdout + result.stderr
    info = meta(rec)
    assert info["outcome"] == "ok", info["error"]
    raw = (rec / "console.raw").read_bytes()
    profile = load_profile("xen-serial-debug")
    line = re.search(rb"\(XEN\) Command line: ([^\r\n]*)", raw)
    assert line is not None
    assert set(profile.xen.options) <= set(line.group(1).decode().split())
    dom0 = re.search(rb"\] Command line: ([^\r\n]*)", raw)
    assert dom0 is not None and set(profile.dom0.options) <= set(dom0.group(1).decode().split())
    assert b"node003 login: " in raw[line.end() :]
    assert b"Panic" not in raw
    boot = next(s for s in info["segments"] if s["name"] == "boot")
    assert boot["complete"] and boot["start"] < line.start() < boot["end"]
    assert lab.host_state("node003")["state"] == "running"


# --------------------------------------------------------------------------- Dom0 runbooks


def test_dom0_topology_matches_the_lab_host(lab: Lab, tmp_path: Path) -> None:
    result, rec = run(lab, "dom0-topology", "node001", tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert meta(rec)["outcome"] == "ok"
    ssh = rec / "ssh"
    info = dict(
        (k.strip(), v.strip())
        for k, _, v in (
            line.partition(":") for line in (ssh / "xl-info-n.txt").read_text().splitlines()
        )
    )
    assert info["host"] == "node001"
    assert info["nr_cpus"] == str(PCPUS)
    assert "numa_info" in info
    topology = (ssh / "xenpm-cpu-topology.txt").read_text().splitlines()
    assert topology[0].split() == ["CPU", "core", "socket", "node"]
    assert [row.split()[0] for row in topology[1:]] == [f"CPU{c}" for c in range(PCPUS)]
    vcpus = (ssh / "xl-vcpu-list.txt").read_text().splitlines()
    assert {row.split()[0] for row in vcpus[1:]} == {"Domain-0", "guest001", "guest002"}
    store = (ssh / "xenstore-ls.txt").read_text()
    assert '/local/domain/0/name = "Domain-0"' in store
    assert '/local/domain/2/name = "guest002"' in store
    features = (ssh / "hw-virt-features.txt").read_text().splitlines()
    wanted = re.compile(
        r"VT-d|AMD-Vi|IOMMU|HAP|VMX|SVM|EPT|NPT|interrupt remapping|x2APIC", re.IGNORECASE
    )
    assert features and all(line.startswith("(XEN) ") and wanted.search(line) for line in features)
    assert "(XEN) HVM: Hardware Assisted Paging (HAP) not detected" in features
    assert "(XEN) HVM: SVM enabled" in features
    outputs = [e for e in events(rec) if e["event"] == "ssh-output"]
    assert len(outputs) == 5
    for event in outputs:
        assert event["exit_status"] == 0
        assert sha256((rec / event["file"]).read_bytes()) == event["sha256"]


def test_xentrace_says_the_tool_is_missing_and_runs_nothing_after(lab: Lab, tmp_path: Path) -> None:
    result, rec = run(lab, "xentrace", "node001", tmp_path)
    assert result.returncode == 3, result.stdout + result.stderr
    info = meta(rec)
    assert info["outcome"] == "failed"
    message = info["error"]
    assert message.startswith("node001: xentrace is not installed on node001 ")
    assert "xentrace.yaml:" in message and "xentrace -D -c all" in message
    assert "xentrace is not installed on node001" in result.stdout
    log = events(rec)
    assert [e["index"] for e in log if e["event"] == "step"] == [1, 2]
    commands = [e["command"] for e in log if e["event"] == "ssh-command"]
    assert commands == ["grep -m1 'cpu MHz' /proc/cpuinfo"]
    assert [e["commands"] for e in log if e["event"] == "ssh-missing"] == [["xentrace"]]
    assert sorted(p.name for p in (rec / "ssh").iterdir()) == ["cpuinfo-mhz.txt"]
    assert (rec / "ssh" / "cpuinfo-mhz.txt").read_text() == "cpu MHz\t: 2445.412\n"


def test_guest_virt_mode_classifies_dom0_as_pv(lab: Lab, tmp_path: Path) -> None:
    result, rec = run(lab, "guest-virt-mode", "node001", tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert meta(rec)["outcome"] == "ok"
    dmesg = (rec / "ssh" / "dmesg.txt").read_text()
    assert "] Command line: root=/dev/mapper/vg-root ro console=hvc0 earlyprintk=xen\n" in dmesg
    verdict = json.loads((rec / "ssh" / "dmesg.virt-mode.json").read_text())
    assert verdict["mode"] == "PV"
    assert any(line.endswith("] Hypervisor detected: Xen PV") for line in verdict["evidence"])
    # Linux 6.1's own PV banner (xen_banner), not paravirt.c's "paravirtualized" one.
    assert any(line.endswith("] Booting kernel on Xen") for line in verdict["evidence"])
    assert all(line in dmesg for line in verdict["evidence"])
    assert [e["mode"] for e in events(rec) if e["event"] == "virt-mode"] == ["PV"]


# --------------------------------------------------------------------------- bad input


class Decoy:
    """A BMC address (UDP) and an SSH address (TCP) that record any contact at all."""

    def __init__(self) -> None:
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind(("127.0.0.1", 0))
        self.tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.tcp.bind(("127.0.0.1", 0))
        self.tcp.listen(8)

    def contacted(self) -> bool:
        ready, _, _ = select.select([self.udp, self.tcp], [], [], 0)
        return bool(ready)

    def close(self) -> None:
        self.udp.close()
        self.tcp.close()


BAD_REGEX = """\
name: bad-regex
steps:
  - power: cycle
  - expect:
      patterns: ["login: ", "([unclosed"]
      timeout: 5
"""
DANGEROUS = """\
name: dangerous
steps:
  - debug_keys: "h,R"
"""
UNKNOWN_VAR = """\
name: unknown-var
steps:
  - sendline: "${nope}"
"""


@pytest.mark.parametrize(
    ("runbook", "where", "message"),
    [
        (BAD_REGEX, "rb.yaml:5:29", "steps[1].expect.patterns[1]: bad regular expression"),
        (DANGEROUS, "rb.yaml:3:17", "steps[0].debug_keys: 'R' changes the host's state"),
        (UNKNOWN_VAR, "rb.yaml:3:15", "steps[0].sendline: unknown variable ${nope}"),
        ("harvest-debug-keys", "inv.yaml:11:15", "aaa-decoy.password: inline passwords"),
    ],
)
def test_bad_runbooks_and_inventories_fail_before_any_contact(
    lab: Lab, tmp_path: Path, runbook: str, where: str, message: str
) -> None:
    """Exit 2 with one precise line, and not one packet to any BMC or SSH server.

    The inventory is the lab's with a decoy host first; a run that started would contact
    the decoy (and then the lab hosts) — the decoy's sockets prove that nothing did."""
    decoy = Decoy()
    try:
        bmc_port = decoy.udp.getsockname()[1]
        ssh_port = decoy.tcp.getsockname()[1]
        lines = lab.inventory.read_text().splitlines()
        at = lines.index("hosts:") + 1
        assert at == 7  # the decoy's lines below are numbered from here
        decoy_host = [
            "  aaa-decoy:",
            f"    bmc: ipmi://admin@127.0.0.1:{bmc_port}",
            f"    ssh: ssh://root@127.0.0.1:{ssh_port}",
        ]
        if runbook == "harvest-debug-keys":
            decoy_host.append("    password: hunter2")
        inventory = tmp_path / "inv.yaml"
        inventory.write_text("\n".join([*lines[:at], *decoy_host, *lines[at:]]) + "\n")
        if runbook != "harvest-debug-keys":
            (tmp_path / "rb.yaml").write_text(runbook)
            runbook = "rb.yaml"
        before = {h.name: lab.host_state(h.name)["power"] for h in lab.hosts()}
        result = subprocess.run(
            [sys.executable, "-m", "solcap.cli", "run", runbook, "--inventory", "inv.yaml"],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=tmp_path,
            check=False,
        )
        assert result.returncode == 2, result.stdout + result.stderr
        assert result.stdout == ""
        assert result.stderr.count("\n") == 1
        assert result.stderr.startswith(f"solcap: error: {where}: {message}")
        assert not decoy.contacted()
        assert {h.name: lab.host_state(h.name)["power"] for h in lab.hosts()} == before
        assert not (tmp_path / "recordings").exists()
    finally:
        decoy.close()
