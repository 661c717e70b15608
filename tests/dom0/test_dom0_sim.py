"""Dom0 over SSH against the virtual host's own SSH server, with verified host keys.

The serial side is the virtual host's real pty; the SSH side a paramiko server on 127.0.0.1
whose commands run on the same simulated Xen. Truth for the serial bytes is what the host
says it put on the line (``host.dumps``), compared by SHA-256.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import stat
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import paramiko
import pytest

from solcap.capture.recording import Recording
from solcap.cli import main
from solcap.console.core import Console
from solcap.errors import ConnectError, TargetError
from solcap.sim.dom0ssh import Dom0SshServer
from solcap.sim.host import SimConfig, VirtualHost
from solcap.sim.xen import HostSpec
from solcap.transports.registry import open_transport
from solcap.transports.ssh import SshTarget, connect
from solcap.xen.dom0 import DOM0_COMMANDS, compare_ring, run_dom0, trigger_key_via_ssh
from solcap.xen.harvest import harvest_keys
from tests.peers import need

pytestmark = pytest.mark.timeout(60)

BOOT_DONE = re.compile(rb"\(XEN\) \*\*\* Serial input to DOM0 ")
QUIET = 0.3


@dataclass
class Sim:
    host: VirtualHost
    server: Dom0SshServer
    key_file: Path
    known_hosts: Path
    tmp: Path

    def target(self, **options: object) -> SshTarget:
        return SshTarget.parse(
            self.server.url,
            key_file=str(self.key_file),
            known_hosts=str(self.known_hosts),
            **options,
        )

    def ssh_options(self) -> list[str]:
        return [
            "--known-hosts",
            str(self.known_hosts),
            "--ssh-key",
            str(self.key_file),
            "--root",
            str(self.tmp / "rec"),
        ]


@contextlib.contextmanager
def booted_sim(tmp: Path, spec: HostSpec, sftp_root: Path | None = None) -> Iterator[Sim]:
    """Boot a fast virtual host to its Dom0 prompt (draining the pty), serve its Dom0 on SSH."""
    client_key = paramiko.ECDSAKey.generate()
    key_file = tmp / "id_ecdsa"
    client_key.write_private_key_file(str(key_file))
    config = SimConfig(spec=spec, fast=True, auto_power_on=False, grub_timeout=1)
    with (
        VirtualHost(config) as host,
        Dom0SshServer(host, authorized_keys=[client_key], sftp_root=sftp_root) as server,
    ):
        known = tmp / "known_hosts"
        known.write_text(server.known_hosts_line)
        with Console(open_transport(host.pty_path), host="boot") as con:
            host.power_on()
            con.expect([BOOT_DONE], timeout=30)
            con.settle(QUIET, timeout=30)
        yield Sim(host, server, key_file, known, tmp)


def only_recording(root: Path) -> Path:
    found = [p.parent for p in root.glob("*/*/meta.json")]
    assert len(found) == 1, found
    return found[0]


def field(text: str, name: str) -> str:
    match = re.search(rf"^{name}\s*: (.*)$", text, re.M)
    assert match, name
    return match.group(1)


# --------------------------------------------------------------------------- commands


def test_cli_xl_info_matches_the_host_and_is_recorded_privately(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = HostSpec(pcpus=6, numa_nodes=2, domus=3, hostname="xen-a1")
    with booted_sim(tmp_path, spec) as sim:
        status = main(["dom0", sim.server.url, "xl-info", *sim.ssh_options()])
        printed = capsys.readouterr()
        assert status == 0, printed.err
        assert sim.server.commands == ["xl info -n"]
    text = printed.out
    assert field(text, "host") == "xen-a1"
    assert field(text, "nr_cpus") == "6" and field(text, "max_cpu_id") == "5"
    assert field(text, "nr_nodes") == "2"
    assert (field(text, "xen_major"), field(text, "xen_minor")) == ("4", "17")
    assert "numa_info" in text  # -n asked for the NUMA part
    rec = only_recording(tmp_path / "rec")
    saved = rec / "dom0" / "xl-info.txt"
    assert saved.read_text() == text
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600
    assert stat.S_IMODE(saved.parent.stat().st_mode) == 0o700
    events = [json.loads(line) for line in (rec / "events.jsonl").read_text().splitlines()]
    output = [e for e in events if e["event"] == "dom0-output"]
    assert output[0]["sha256"] == hashlib.sha256(text.encode()).hexdigest()
    meta = json.loads((rec / "meta.json").read_text())
    assert meta["files"]["dom0/xl-info.txt"] == output[0]["sha256"]


def test_every_seed_command_is_recorded_consistently(tmp_path: Path) -> None:
    spec = HostSpec(pcpus=4, domus=5, vcpus_per_domu=3, dom0_vcpus=2)
    with booted_sim(tmp_path, spec) as sim, connect(sim.target()) as ssh:
        recording = Recording("sim", root=tmp_path / "rec")
        outputs = {name: run_dom0(ssh, recording, name) for name in DOM0_COMMANDS}
        recording.close()
    rec = recording.path
    for name, data in outputs.items():
        assert (rec / "dom0" / f"{name}.txt").read_bytes() == data
    vcpus = outputs["vcpu-list"].decode().splitlines()
    assert len(vcpus) == 1 + 2 + 5 * 3  # header, Dom0's vCPUs, each domU's
    assert sum(line.startswith("guest005") for line in vcpus) == 3
    topology = outputs["cpu-topology"].decode().splitlines()
    assert topology[0].split() == ["CPU", "core", "socket", "node"] and len(topology) == 5
    xenstore = outputs["xenstore-ls"].decode()
    assert xenstore.count('name = "guest') == 2 * 5  # /local/domain/N and /vm/UUID
    assert outputs["xl-dmesg"].startswith(b"(XEN) ") and b"\r" not in outputs["xl-dmesg"]


def test_a_failing_command_is_kept_and_reported(tmp_path: Path) -> None:
    with booted_sim(tmp_path, HostSpec(domus=1)) as sim, connect(sim.target()) as ssh:
        recording = Recording("sim", root=tmp_path / "rec")
        with pytest.raises(TargetError, match="exited 127: -bash: xentop: command not found"):
            run_dom0(ssh, recording, "xentop -b")
        recording.close()
    assert (recording.path / "dom0" / "xentop_-b.txt").read_bytes() == b""


# --------------------------------------------------------------------------- host keys


def test_a_wrong_host_key_is_refused_before_any_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with booted_sim(tmp_path, HostSpec(domus=1)) as sim:
        impostor = paramiko.ECDSAKey.generate()
        line = f"[127.0.0.1]:{sim.server.port} {impostor.get_name()} {impostor.get_base64()}\n"
        sim.known_hosts.write_text(line)
        with pytest.raises(ConnectError, match="host key CHANGED"):
            connect(sim.target())
        status = main(["dom0", sim.server.url, "xl-dmesg", *sim.ssh_options()])
        assert status == 3
        assert "host key CHANGED" in capsys.readouterr().err
        # an unknown key is refused too (no silent acceptance) unless explicitly accepted
        sim.known_hosts.write_text("")
        with pytest.raises(ConnectError, match="unknown host key"):
            connect(sim.target())
        assert sim.server.commands == []
        with connect(sim.target(accept_new_host_key=True)) as ssh:
            assert ssh.run("hostname").stdout == "xenhost\n"
        assert sim.known_hosts.read_text() == sim.server.known_hosts_line


def test_sftp_fetches_files_byte_exact(tmp_path: Path) -> None:
    root = tmp_path / "dom0fs"
    (root / "var" / "tmp").mkdir(parents=True)
    payload = bytes(range(256)) * 64
    (root / "var" / "tmp" / "xentrace.bin").write_bytes(payload)
    local = tmp_path / "fetched.bin"
    with (
        booted_sim(tmp_path, HostSpec(domus=1), sftp_root=root) as sim,
        connect(sim.target()) as ssh,
    ):
        assert ssh.list_dir("/var/tmp") == ["xentrace.bin"]
        ssh.sftp().get("/var/tmp/xentrace.bin", str(local))
        assert ssh.read_file("/var/tmp/missing") is None
    assert local.read_bytes() == payload


# --------------------------------------------------------------------------- ring loss


def test_300_domains_serial_is_complete_and_xl_dmesg_is_truncated(tmp_path: Path) -> None:
    """The issue's Done-when: a serial harvest of 'q' is byte-identical to what the host sent;
    ``xl debug-keys q; xl dmesg`` over SSH is shown to be truncated."""
    spec = HostSpec(domus=300, vcpus_per_domu=4, pcpus=16)
    with booted_sim(tmp_path, spec) as sim, connect(sim.target()) as ssh:
        recording = Recording("sim300", root=tmp_path / "rec")
        with Console(open_transport(sim.host.pty_path), host="sim", sink=recording.feed) as con:
            # 1. the serial harvest: every byte
            harvest = harvest_keys(con, recording, ["q"], quiet=QUIET)
            serial_q = harvest.segments[0]
            assert serial_q.complete
            sent = sim.host.dumps[0]  # then the harvest's end marker ('m')
            assert sent.key == "q" and serial_q.sha256 == sent.sha256
            assert [d.key for d in sim.host.dumps] == ["q", "m"]
            data = recording.read_range(serial_q.start, serial_q.end)
            assert data == sent.data
            # ... while the ring, read right after, lost the start of that same dump
            ring = run_dom0(ssh, recording, "xl-dmesg")
            lost = compare_ring(data, ring)
            assert lost.missing_lines > 0 and lost.missing_bytes > 0
            assert lost.first_missing_line is not None
            assert lost.first_missing_line.startswith("'q' pressed -> dumping domain info")
            assert lost.ring_is_suffix
            assert sim.host.xen is not None and len(ring) <= sim.host.xen.conring_size
            # 2. `xl debug-keys q` over SSH: the serial capture still gets all of it
            via_ssh = trigger_key_via_ssh(ssh, con, recording, "q", QUIET, name="q-ssh")
            assert sim.host.dumps[-1].key == "q" and len(sim.host.dumps) == 3
            assert via_ssh.segment.complete
            assert via_ssh.segment.sha256 == sim.host.dumps[-1].sha256
            ring_cmp = via_ssh.comparison
            assert ring_cmp.missing_lines > 0 and ring_cmp.ring_is_suffix
            assert ring_cmp.first_missing_index == 0
        summary = recording.close()
    assert sim.server.commands == ["xl dmesg", "xl debug-keys q", "xl dmesg"]
    rec = summary.path
    saved = json.loads((rec / "compare" / "q-ssh.json").read_text())
    assert saved["missing_lines"] == ring_cmp.missing_lines
    assert (rec / via_ssh.dmesg_file).is_file()
    parsed = json.loads((rec / "keys" / "q-ssh.json").read_text())
    assert len(parsed["domains"]) == 301 and parsed["truncated"] is False
    out = io.StringIO()
    assert main(["compare", str(rec), "--key", "q-ssh"], out=out) == 0
    assert f"LOST {ring_cmp.missing_lines} of {ring_cmp.serial_lines} lines" in out.getvalue()
    assert "first missing line (0): 'q' pressed -> dumping domain info" in out.getvalue()


def test_cli_presses_a_key_over_ssh_and_compare_reads_it_back(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = HostSpec(domus=40, vcpus_per_domu=4, pcpus=4)  # q dump ≫ the 32 KiB ring
    with booted_sim(tmp_path, spec) as sim:
        args = [sim.server.url, "vcpu-list", *sim.ssh_options(), "--key", "q"]
        status = main(["dom0", *args, "--serial", sim.host.pty_path, "--quiet", str(QUIET)])
        printed = capsys.readouterr()
        assert status == 0, printed.err
        sent = sim.host.dumps[-1]
    assert "xl dmesg LOST" in printed.out
    rec = only_recording(tmp_path / "rec")
    meta = json.loads((rec / "meta.json").read_text())
    (segment,) = meta["segments"]
    assert segment["name"] == "q" and segment["sha256"] == sent.sha256
    assert (rec / "keys" / "q.txt").read_bytes() == sent.data
    assert os.path.isfile(rec / "dom0" / "xl-dmesg-after-q.txt")
    out = io.StringIO()
    assert main(["compare", str(rec), "--key", "q"], out=out) == 0
    assert "LOST" in out.getvalue() and "dom0/xl-dmesg-after-q.txt" in out.getvalue()


def test_openssh_client_runs_a_command_and_terminates(tmp_path: Path) -> None:
    ssh = need("ssh")
    with booted_sim(tmp_path, HostSpec(domus=2)) as sim:
        base = [ssh, "-F", "/dev/null", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes"]
        base += ["-o", f"UserKnownHostsFile={sim.known_hosts}", "-i", str(sim.key_file)]
        base += ["-p", str(sim.server.port), "root@127.0.0.1"]
        done = subprocess.run(
            [*base, "xl vcpu-list"], capture_output=True, timeout=20, stdin=subprocess.DEVNULL
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.decode().splitlines()[1].startswith("Domain-0")
        missing = subprocess.run(
            [*base, "xentop"], capture_output=True, timeout=20, stdin=subprocess.DEVNULL
        )
        assert missing.returncode == 127 and b"command not found" in missing.stderr


def test_password_login_from_an_environment_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = SimConfig(spec=HostSpec(domus=1), fast=True, auto_power_on=False, grub_timeout=1)
    with VirtualHost(config) as host, Dom0SshServer(host, password="s3cret pw") as server:
        known = tmp_path / "known_hosts"
        known.write_text(server.known_hosts_line)
        with Console(open_transport(host.pty_path), host="boot") as con:
            host.power_on()
            con.expect([BOOT_DONE], timeout=30)
        monkeypatch.setenv("DOM0_PW", "s3cret pw")
        good = SshTarget.parse(server.url, password="env:DOM0_PW", known_hosts=str(known))
        with connect(good) as ssh:
            assert ssh.run("hostname").stdout == "xenhost\n"
        monkeypatch.setenv("DOM0_PW", "wrong")
        with pytest.raises(ConnectError, match="authentication failed"):
            connect(good)
