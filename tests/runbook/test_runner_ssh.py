"""Runbook ``ssh`` steps: the virtual host's Dom0 SSH server and a real OpenSSH server.

The virtual Dom0 answers the Xen tools consistently with the simulated Xen; the real sshd
(tests/grub/conftest.py) is a machine *without* Xen, which is exactly what the ``require``
check must report clearly.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import paramiko
import pytest

from solcap.console.core import Console
from solcap.grub.remote import RemoteLayout
from solcap.inventory import Host, SshTarget
from solcap.orchestration.outcomes import HostResult
from solcap.orchestration.runbook import load_runbook, plan
from solcap.orchestration.runner import open_host_ssh, run_host
from solcap.sim.dom0ssh import Dom0SshServer
from solcap.sim.host import SimConfig, VirtualHost
from solcap.sim.xen import HostSpec
from solcap.transports.registry import open_transport
from tests.grub.conftest import Sshd, sshd  # noqa: F401 - the session fixture, reused
from tests.grub.test_grub_remote import _stub

pytestmark = pytest.mark.timeout(90)

DATA = Path(__file__).parent / "data"
GRUB_DATA = Path(__file__).resolve().parent.parent / "profiles" / "data"
BOOT_DONE = re.compile(rb"login: root \(automatic login\)")


def run(runbook: str | Path, host: Host, root: Path) -> HostResult:
    rb = load_runbook(runbook)
    return run_host(
        plan(rb, [host]).hosts[0],
        console_factory=None,
        power=None,
        ssh_factory=open_host_ssh,
        recordings_root=root,
        runbook_name=rb.name,
    )


def events(outcome: HostResult) -> list[dict[str, object]]:
    lines = (outcome.recording / "events.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


@contextlib.contextmanager
def sim_dom0(tmp: Path) -> Iterator[tuple[VirtualHost, Dom0SshServer, Host]]:
    """A booted virtual host whose Dom0 serves SSH (key auth, verified host key) and SFTP."""
    key = paramiko.ECDSAKey.generate()
    key_file = tmp / "id_ecdsa"
    key.write_private_key_file(str(key_file))
    sftp_root = tmp / "dom0-fs"
    sftp_root.mkdir()
    config = SimConfig(spec=HostSpec(pcpus=4, domus=3), fast=True, auto_power_on=False)
    with (
        VirtualHost(config) as vh,
        Dom0SshServer(vh, authorized_keys=[key], sftp_root=sftp_root) as server,
    ):
        known = tmp / "known_hosts"
        known.write_text(server.known_hosts_line)
        with Console(open_transport(vh.pty_path), host="boot") as con:
            vh.power_on()
            con.expect([BOOT_DONE], timeout=60)
            con.settle(0.3, timeout=60)
        host = Host(
            name="sim1",
            origin="test",
            ssh=SshTarget(
                host="127.0.0.1",
                user="root",
                port=server.port,
                key_file=str(key_file),
                known_hosts=str(known),
            ),
        )
        yield vh, server, host


SIM_RUNBOOK = """\
name: dom0-collect
steps:
  - ssh: {command: "xl info -n", save: xl-info-n.txt}
  - ssh: {command: "xl vcpu-list", save: xl-vcpu-list.txt}
  - ssh:
      command: "hostname"
      save: hostname.txt
      fetch: [{remote: /tmp/trace.bin, save: trace.bin}, /tmp/notes.txt]
"""


def test_ssh_steps_record_dom0_output_and_fetch_files(tmp_path: Path) -> None:
    with sim_dom0(tmp_path) as (vh, server, host):
        trace = os.urandom(300_000)
        (tmp_path / "dom0-fs" / "tmp").mkdir()
        (tmp_path / "dom0-fs" / "tmp" / "trace.bin").write_bytes(trace)
        (tmp_path / "dom0-fs" / "tmp" / "notes.txt").write_bytes(b"notes\n")
        rb = tmp_path / "rb.yaml"
        rb.write_text(SIM_RUNBOOK)
        outcome = run(rb, host, tmp_path / "rec")
        expected_info = vh.dom0_exec("xl info -n")
        expected_vcpus = vh.dom0_exec("xl vcpu-list")
        asked = list(server.commands)
    assert outcome.outcome == "ok", outcome.error
    assert asked[:3] == ["xl info -n", "xl vcpu-list", "hostname"]
    ssh_dir = outcome.recording / "ssh"
    assert (ssh_dir / "xl-info-n.txt").read_bytes() == expected_info
    assert (ssh_dir / "xl-vcpu-list.txt").read_bytes() == expected_vcpus
    assert (ssh_dir / "hostname.txt").read_text() == "xenhost\n"
    fetched = (ssh_dir / "trace.bin").read_bytes()
    assert hashlib.sha256(fetched).hexdigest() == hashlib.sha256(trace).hexdigest()
    assert (ssh_dir / "notes.txt").read_bytes() == b"notes\n"
    assert (ssh_dir / "trace.bin").stat().st_mode & 0o777 == 0o600
    meta = json.loads((outcome.recording / "meta.json").read_text())
    assert meta["files"]["ssh/trace.bin"] == hashlib.sha256(trace).hexdigest()
    assert outcome.bytes == 0  # no console in an SSH-only runbook


def test_missing_fetch_fails_the_host_naming_the_file(tmp_path: Path) -> None:
    with sim_dom0(tmp_path) as (_vh, _server, host):
        rb = tmp_path / "rb.yaml"
        rb.write_text("name: f\nsteps:\n  - ssh: {command: hostname, fetch: [/tmp/nothing.bin]}\n")
        outcome = run(rb, host, tmp_path / "rec")
    assert outcome.outcome == "failed"
    assert outcome.error is not None and "cannot fetch /tmp/nothing.bin" in outcome.error
    assert "no such file" in outcome.error


# --------------------------------------------------------------------------- real sshd


def real_host(server: Sshd) -> Host:
    return Host(
        name="lab1",
        origin="test",
        ssh=SshTarget(
            host=server.host,
            user=server.user,
            port=server.port,
            key_file=str(server.client_key),
            known_hosts=str(server.known_hosts),
        ),
    )


def test_dom0_topology_on_a_machine_without_xen_says_xl_is_missing(
    sshd: Sshd,  # noqa: F811 - the fixture imported above
    tmp_path: Path,
) -> None:
    outcome = run("dom0-topology", real_host(sshd), tmp_path)
    assert outcome.outcome == "failed"
    assert outcome.error is not None
    assert outcome.error.startswith("lab1: xl is not installed on lab1")
    assert "xl info -n" in outcome.error
    kinds = [e["event"] for e in events(outcome)]
    assert "ssh-missing" in kinds and "ssh-command" not in kinds  # nothing was run
    assert not (outcome.recording / "ssh").exists()
    meta = json.loads((outcome.recording / "meta.json").read_text())
    assert meta["outcome"] == "failed" and meta["finished"]


def test_failing_command_keeps_its_output_and_quotes_stderr(
    sshd: Sshd,  # noqa: F811
    tmp_path: Path,
) -> None:
    rb = tmp_path / "rb.yaml"
    rb.write_text(
        "name: f\nsteps:\n"
        "  - ssh: {command: 'echo partial; echo boom >&2; exit 3', save: out.txt}\n"
        "  - ssh: {command: 'echo never', save: never.txt}\n"
    )
    outcome = run(rb, real_host(sshd), tmp_path / "rec")
    assert outcome.outcome == "failed"
    assert outcome.error is not None and "exited 3" in outcome.error and "boom" in outcome.error
    assert (outcome.recording / "ssh" / "out.txt").read_text() == "partial\n"
    assert (outcome.recording / "ssh" / "out.stderr.txt").read_text() == "boom\n"
    assert not (outcome.recording / "ssh" / "never.txt").exists()


def test_virt_mode_analysis_of_a_guest_dmesg(sshd: Sshd, tmp_path: Path) -> None:  # noqa: F811
    rb = tmp_path / "rb.yaml"
    dmesg = DATA / "dmesg-pvh.txt"
    rb.write_text(
        "name: vm\nsteps:\n"
        f"  - ssh: {{command: 'cat {dmesg}', save: dmesg.txt, analyze: virt_mode}}\n"
    )
    outcome = run(rb, real_host(sshd), tmp_path / "rec")
    assert outcome.outcome == "ok", outcome.error
    assert (outcome.recording / "ssh" / "dmesg.txt").read_bytes() == dmesg.read_bytes()
    found = json.loads((outcome.recording / "ssh" / "dmesg.virt-mode.json").read_text())
    assert found["mode"] == "PVH" and found["evidence"]


def test_unknown_host_key_is_a_failed_outcome_not_a_traceback(
    sshd: Sshd,  # noqa: F811
    tmp_path: Path,
) -> None:
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    host = real_host(sshd)
    assert host.ssh is not None
    host = Host(
        name=host.name,
        origin=host.origin,
        ssh=SshTarget(
            host=host.ssh.host,
            user=host.ssh.user,
            port=host.ssh.port,
            key_file=host.ssh.key_file,
            known_hosts=str(empty),
        ),
    )
    outcome = run("dom0-topology", host, tmp_path / "rec")
    # A refused connection is the far side's (solcap.orchestration.outcomes: ConnectError is a
    # TargetError), the same word a harvest fleet uses for it.
    assert outcome.outcome == "failed"
    assert outcome.error is not None and "unknown host key" in outcome.error
    assert outcome.recording is not None
    assert json.loads((outcome.recording / "meta.json").read_text())["finished"]


def grub_root(tmp_path: Path, speed: int = 38400) -> tuple[Path, Path]:
    """Debian 12's GRUB files under a temporary root (grub.cfg's ``serial --speed`` at line 58
    set to ``speed``) and a directory with a stub ``update-grub`` regenerating from them."""
    root = tmp_path / "root"
    (root / "etc/default/grub.d").mkdir(parents=True)
    (root / "boot/grub").mkdir(parents=True)
    for name, where in (
        ("debian12-default-grub", "etc/default/grub"),
        ("debian12-grub.d-xen.cfg", "etc/default/grub.d/xen.cfg"),
        ("debian12-grub.cfg", "boot/grub/grub.cfg"),
    ):
        shutil.copy(GRUB_DATA / name, root / where)
    cfg = root / "boot/grub/grub.cfg"
    cfg.write_text(cfg.read_text().replace("--speed=38400", f"--speed={speed}"))
    bin_dir = tmp_path / "bin"
    _stub(bin_dir, "update-grub", "boot/grub/grub.cfg")
    return root, bin_dir


GRUB_FAST = (
    "lab1: GRUB's serial --speed is 115200 (/boot/grub/grub.cfg:58) but the BMC runs SOL at "
    "38400 bit/s: GRUB's menu reaches the capture garbled, so a one-shot edit cannot read it "
    "(set serial --speed=38400 in GRUB_SERIAL_COMMAND)"
)


def run_persistent_grub(
    server: Sshd, tmp_path: Path, root: Path, bin_dir: Path, **options: Any
) -> HostResult:
    """A one-step runbook (``grub: {mode: persistent}``) run on the real sshd's host, with the
    GRUB tree under ``root`` and its tools from ``bin_dir``; ``options`` go to run_host."""
    runbook = tmp_path / "grub-persistent.yaml"
    runbook.write_text(
        "name: grub-persistent\nsteps:\n  - grub: {mode: persistent, profile: xen-serial-debug}\n"
    )
    rb = load_runbook(runbook)
    return run_host(
        plan(rb, [real_host(server)]).hosts[0],
        console_factory=None,
        power=None,
        ssh_factory=open_host_ssh,
        recordings_root=tmp_path / "rec",
        runbook_name=rb.name,
        grub_layout=RemoteLayout(root=str(root), path_prefix=(str(bin_dir),)),
        **options,
    )


def test_persistent_grub_step_checks_grub_serial_speed_read_over_ssh(
    sshd: Sshd,  # noqa: F811
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Before a persistent edit the baud check reads GRUB's speed from the host's grub.cfg over
    the step's SSH connection (under the run's GRUB layout) and compares it with the BMC's
    SOL rate and the profile's com1=; a mismatch is a warning, the edit still happens."""
    root, bin_dir = grub_root(tmp_path, speed=115200)
    outcome = run_persistent_grub(sshd, tmp_path, root, bin_dir, sol_rate=lambda host: 38400)
    assert outcome.outcome == "ok", outcome.error
    found = events(outcome)
    (check,) = [e for e in found if e["event"] == "baud-check"]
    assert (check["before"], check["bmc"], check["grub"], check["xen"]) == (
        "persistent",
        38400,
        115200,
        38400,
    )
    assert [e["message"] for e in found if e["event"] == "warning"] == [GRUB_FAST]
    assert f"solcap: warning: {GRUB_FAST}\n" in capsys.readouterr().err
    assert [e["event"] for e in found].index("baud-check") < [e["event"] for e in found].index(
        "grub-persistent"
    )


def test_harvest_after_an_ssh_step_reads_grub_serial_speed_over_that_connection(
    sshd: Sshd,  # noqa: F811
    tmp_path: Path,
) -> None:
    """A harvest on the virtual host's console whose Dom0 SSH (the real sshd) is already open
    from an earlier step: GRUB's speed comes from grub.cfg over it, and the mismatch with the
    BMC is named before the keys are pressed."""
    from solcap.orchestration.runner import open_host_console

    root, _bin = grub_root(tmp_path, speed=115200)
    runbook = tmp_path / "harvest.yaml"
    runbook.write_text(
        "name: harvest\nsteps:\n  - ssh: {command: 'true', save: true.txt}\n"
        "  - settle: {quiet: 0.3, timeout: 30}\n  - xen_input: hypervisor\n"
        "  - debug_keys: {keys: h, quiet: 0.3}\n  - xen_input: dom0\n"
    )
    rb = load_runbook(runbook)
    config = SimConfig(fast=True, auto_power_on=False)
    with VirtualHost(config) as vh:
        with Console(open_transport(vh.pty_path), host="boot") as con:
            vh.power_on()
            con.expect([BOOT_DONE], timeout=60)
            con.settle(0.3, timeout=60)
        host = replace(real_host(sshd), serial=vh.pty_path)
        outcome = run_host(
            plan(rb, [host]).hosts[0],
            console_factory=open_host_console,
            power=None,
            ssh_factory=open_host_ssh,
            recordings_root=tmp_path / "rec",
            runbook_name=rb.name,
            grub_layout=RemoteLayout(root=str(root)),
            sol_rate=lambda host: 38400,
        )
    assert outcome.outcome == "ok", outcome.error
    found = events(outcome)
    (check,) = [e for e in found if e["event"] == "baud-check"]
    assert (check["before"], check["bmc"], check["grub"]) == ("harvest", 38400, 115200)
    assert [e["message"] for e in found if e["event"] == "warning"] == [GRUB_FAST]


def test_persistent_grub_step_edits_backs_up_and_regenerates_over_real_ssh(
    sshd: Sshd,  # noqa: F811
    tmp_path: Path,
) -> None:
    """``grub: {mode: persistent}`` end to end: a real sshd, Debian 12's real GRUB files (under
    a temporary root, never this machine's /etc), a stub ``update-grub`` that regenerates
    grub.cfg from them. The Xen line on disk afterwards carries the profile; the old file is
    kept as a backup; the recording holds the diff and a ``grub-persistent`` event naming
    the regenerated entry it read back."""
    root, bin_dir = grub_root(tmp_path)
    before = (root / "etc/default/grub.d/xen.cfg").read_text()
    outcome = run_persistent_grub(sshd, tmp_path, root, bin_dir)
    assert outcome.outcome == "ok", outcome.error
    after = (root / "etc/default/grub.d/xen.cfg").read_text()
    assert after != before
    xen_line = next(x for x in after.splitlines() if x.startswith("GRUB_CMDLINE_XEN"))
    for option in ("loglvl=all", "guest_loglvl=all", "console=com1"):
        assert option in xen_line, (option, xen_line)
    backups = [p for p in (root / "etc/default/grub.d").iterdir() if p.name != "xen.cfg"]
    assert [p.read_text() for p in backups] == [before]  # exactly one backup, of the old file
    assert "loglvl=all" in (root / "boot/grub/grub.cfg").read_text()  # regenerated
    report = (outcome.recording / "grub" / "persistent.txt").read_text()
    assert "+" in report and "GRUB_CMDLINE_XEN" in report
    done = [e for e in events(outcome) if e["event"] == "grub-persistent"]
    assert len(done) == 1, done
    # the regenerated grub.cfg was read back: its Xen entry carries the options
    assert done[0]["verified"] == ["Debian GNU/Linux, with Xen hypervisor"], done
    assert done[0]["written"] == ["/etc/default/grub.d/xen.cfg"]
