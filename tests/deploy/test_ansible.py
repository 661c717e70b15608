"""The Ansible playbooks of docs/ run, as written there, by a real ``ansible-playbook``.

Three local runners (``127.0.0.1`` … ``127.0.0.3`` with ``ansible_connection=local``: no
traffic leaves the machine) and a lab of five virtual Xen hosts behind virtual BMCs, split
1/3/1 across the three shards. The playbook text is cut from the docs file itself, so a docs
change that breaks it fails here. Only paths and the ``solcap`` command are overridden with
``-e`` (the playbooks say their ``solcap_*`` variables are for that).

- docs/fleet.md ``harvest-shards.yml``: every lab host harvested exactly once, by the runner of
  its shard; the fetched summaries are the runners' own; every dump byte-identical to what its
  host sent; the password never shows in Ansible's output.
- docs/serve.md ``solcap-serve.yml``: each runner's unit passes ``systemd-analyze verify``;
  each unit's ``ExecStart``, started with the unit's environment, is a server holding exactly
  its shard, so ``solcap status`` finds every host up and each at the server of its shard, and
  a harvest of the whole inventory goes through each host's owner (byte-exact, and in the
  owner's continuous log); a second run of the playbook changes nothing.
"""

from __future__ import annotations

import configparser
import getpass
import grp
import hashlib
import io
import json
import os
import re
import select
import shlex
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from solcap.cli import main
from solcap.inventory import shard_of
from solcap.testing.lab import Lab, LabHost
from tests.deploy.docblocks import block
from tests.keyed import assert_sent_for_key, sent_by_key
from tests.peers import need
from tests.serve.conftest import wait_for

pytestmark = pytest.mark.timeout(600)  # ansible and a lab on a loaded 2-core machine

RUNNERS = ["127.0.0.1", "127.0.0.2", "127.0.0.3"]
HOSTS = 5  # node001..node005: shards 1, 0, 0, 0, 2 of 3
SOLCAP = str(Path(sys.executable).parent / "solcap")


@dataclass
class LabRun:
    lab: Lab
    hosts: list[LabHost]
    password: str


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabRun]:
    lab = Lab(tmp_path_factory.mktemp("deploylab") / "lab")
    try:
        hosts = lab.up(HOSTS, domus=1)
        yield LabRun(lab, hosts, lab.password_file.read_text().strip())
    finally:
        lab.down()


def shards_of(names: list[str]) -> list[list[str]]:
    return [[n for n in names if shard_of(n, len(RUNNERS)) == i] for i in range(len(RUNNERS))]


def fleet_inventory(path: Path, run: LabRun, password_file: Path) -> Path:
    """The lab's hosts, the password from the file the playbook writes."""
    lines = ["defaults:", f"  password: file:{password_file}", "  cipher: 17", "hosts:"]
    for host in run.hosts:
        lines += [f"  {host.name}:", f"    bmc: {host.url}"]
    path.write_text("\n".join(lines) + "\n")
    return path


def private(path: Path, text: str) -> Path:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    return path


def ansible_playbook(
    tmp: Path, playbook: str, group: str, extra: dict[str, Any], password: str
) -> subprocess.CompletedProcess[str]:
    """Run ``playbook`` (the docs' text) on the three local runners; secrets in a 0600 file."""
    binary = need("ansible-playbook")
    book = tmp / "playbook.yml"
    book.write_text(playbook)
    inventory = tmp / "runners.ini"
    inventory.write_text(
        f"[{group}]\n"
        + "".join(f"{r}\n" for r in RUNNERS)
        + f"\n[{group}:vars]\nansible_connection=local\n"
        + f"ansible_python_interpreter={sys.executable}\n"
    )
    extra_file = tmp / "extra.json"
    extra_file.write_text(json.dumps(extra))
    vault = private(tmp / "vault.yml", json.dumps({"vault_bmc_password": password}) + "\n")
    env = dict(
        os.environ,
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        ANSIBLE_LOCAL_TEMP=str(tmp / "ansible-tmp"),
        ANSIBLE_REMOTE_TEMP=str(tmp / "ansible-tmp"),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_RETRY_FILES_ENABLED="0",
        ANSIBLE_FORKS=str(len(RUNNERS)),
        ANSIBLE_CONFIG=str(tmp / "ansible.cfg"),  # absent: no site configuration leaks in
    )
    argv = [binary, "-i", str(inventory), str(book), "-e", f"@{extra_file}", "-e", f"@{vault}"]
    return subprocess.run(
        argv, cwd=tmp, env=env, capture_output=True, text=True, timeout=420, check=False
    )


def recap(out: str) -> dict[str, dict[str, int]]:
    """PLAY RECAP counters per host."""
    found = {}
    for m in re.finditer(r"^(\S+)\s+:\s+((?:\w+=\d+\s*)+)$", out, re.MULTILINE):
        found[m.group(1)] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", m.group(2))}
    return found


def test_fleet_md_sharded_harvest_playbook_harvests_each_host_once_on_its_shards_runner(
    tmp_path: Path, lab: LabRun
) -> None:
    password_file = tmp_path / "etc" / "bmc-password"
    password_file.parent.mkdir()
    inventory = fleet_inventory(tmp_path / "fleet.yaml", lab, password_file)
    playbook = block("fleet.md", "harvest-shards.yml")
    extra = {
        "solcap_bin": SOLCAP,
        "solcap_fleet_inventory": str(inventory),
        "solcap_password_file": str(password_file),
        "solcap_state_dir": str(tmp_path / "runners" / "{{ inventory_hostname }}"),
        "solcap_keys": "h",
    }
    result = ansible_playbook(tmp_path, playbook, "solcap_runners", extra, lab.password)
    assert result.returncode == 0, result.stdout + result.stderr
    assert lab.password not in result.stdout + result.stderr
    assert password_file.stat().st_mode & 0o777 == 0o600
    assert password_file.read_text() == lab.password + "\n"
    assert set(recap(result.stdout)) == set(RUNNERS)

    names = [h.name for h in lab.hosts]
    expected = shards_of(names)
    assert all(expected), expected  # the split gives every runner work
    harvested: list[str] = []
    for index, runner in enumerate(RUNNERS):
        fetched = tmp_path / "summaries" / f"{runner}.json"
        own = tmp_path / "runners" / runner / "summary.json"
        assert fetched.read_bytes() == own.read_bytes()
        summary = json.loads(fetched.read_text())
        assert summary["shard"] == f"{index}/{len(RUNNERS)}"
        assert [h["host"] for h in summary["hosts"]] == expected[index]
        for entry in summary["hosts"]:
            assert entry["outcome"] == "ok", entry
            assert Path(entry["recording"]).is_relative_to(tmp_path / "runners" / runner)
            sent = sent_by_key(lab.lab.host_state(entry["host"])["dumps"])
            (segment,) = entry["segments"]
            data = (Path(entry["recording"]) / segment["file"]).read_bytes()
            assert len(data) == segment["bytes"] > 1000
            assert hashlib.sha256(data).hexdigest() == segment["sha256"]
            assert_sent_for_key(sent, "h", segment["sha256"], entry["host"])
        harvested += [h["host"] for h in summary["hosts"]]
    assert sorted(harvested) == sorted(names)  # every host exactly once


def unit_service(path: Path) -> dict[str, str]:
    """The [Service] section of a systemd unit (continuation lines joined)."""
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(path.read_text().replace("\\\n", " "))
    return dict(parser["Service"])


def start_unit(service: dict[str, str], runtime: Path, log: Path) -> subprocess.Popen[bytes]:
    """What systemd does with this [Service] before ExecStart, for the keys the unit uses:
    RuntimeDirectory= made with its mode, ``%t`` expanded, Environment= set."""
    (runtime / service["RuntimeDirectory"]).mkdir(
        mode=int(service["RuntimeDirectoryMode"], 8), exist_ok=True
    )
    env = dict(os.environ)
    for item in shlex.split(service["Environment"]):
        key, _, value = item.partition("=")
        env[key] = value.replace("%t", str(runtime))
    argv = shlex.split(service["ExecStart"])
    assert not any("%" in arg for arg in argv), argv
    return subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=open(log, "ab"),
        stdin=subprocess.DEVNULL,
        env=env,
    )


@pytest.fixture
def runtime() -> Iterator[Path]:
    """systemd's ``%t`` for the units: short and under /tmp, because a Unix socket's path is at
    most 107 bytes and pytest's own temporary paths (longer still under parallel workers) leave
    serve's control socket past it."""
    with tempfile.TemporaryDirectory(prefix="solcap-t-", dir="/tmp") as directory:
        yield Path(directory)


def test_serve_md_playbook_deploys_one_shard_server_per_host_and_status_finds_every_owner(
    tmp_path: Path, lab: LabRun, runtime: Path
) -> None:
    analyze = need("systemd-analyze")
    etc = tmp_path / "etc"
    inventory_src = fleet_inventory(tmp_path / "hosts.yaml", lab, etc / "bmc-password")
    for runner in RUNNERS:
        (tmp_path / "servers" / runner / "systemd").mkdir(parents=True)
    user, group = getpass.getuser(), grp.getgrgid(os.getgid()).gr_name
    extra = {
        "solcap_bin": SOLCAP,
        "solcap_inventory_src": str(inventory_src),
        "solcap_etc": str(etc),
        "solcap_root": str(tmp_path / "servers" / "{{ inventory_hostname }}" / "log"),
        "solcap_unit_dir": str(tmp_path / "servers" / "{{ inventory_hostname }}" / "systemd"),
        "solcap_user": user,
        "solcap_group": group,
        "solcap_operators": group,
        "solcap_manage_service": False,
    }
    playbook = block("serve.md", "solcap-serve.yml")
    first = ansible_playbook(tmp_path, playbook, "solcap_servers", extra, lab.password)
    assert first.returncode == 0, first.stdout + first.stderr
    assert lab.password not in first.stdout + first.stderr
    assert (etc / "bmc-password").stat().st_mode & 0o777 == 0o600

    servers: list[subprocess.Popen[bytes]] = []
    try:
        for index, runner in enumerate(RUNNERS):
            unit = tmp_path / "servers" / runner / "systemd" / "solcap-serve.service"
            check = subprocess.run(
                [analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60
            )
            assert (check.returncode, check.stderr) == (0, ""), check.stderr
            service = unit_service(unit)
            assert service["User"] == user and service["Group"] == group
            assert f"--shard {index}/{len(RUNNERS)}" in service["ExecStart"]
            servers.append(start_unit(service, runtime, tmp_path / f"serve-{index}.err"))
        for index, server in enumerate(servers):
            assert server.stdout is not None
            ready, _, _ = select.select([server.stdout], [], [], 120)
            err = (tmp_path / f"serve-{index}.err").read_text()
            assert ready, f"server {index} not ready: {err}"
            assert server.stdout.readline().startswith(b"ready "), err

        control = runtime / "solcap-serve"
        names = [h.name for h in lab.hosts]

        def all_up() -> dict[str, Any] | None:
            out = io.StringIO()
            code = main(
                [
                    "status",
                    "--inventory",
                    str(etc / "hosts.yaml"),
                    "--control-dir",
                    str(control),
                    "--json",
                ],
                out=out,
            )
            doc: dict[str, Any] = json.loads(out.getvalue())
            return doc if code == 0 else None

        doc = wait_for(all_up, 180, "every lab host up at its shard's server")
        rows = {row["host"]: row for row in doc["hosts"]}
        assert sorted(rows) == sorted(names)
        sockets: dict[str, set[str]] = {}
        for name, row in rows.items():
            assert row["state"] == "up"
            assert row["shard"] == row["owner"] == f"{shard_of(name, len(RUNNERS))}/{len(RUNNERS)}"
            sockets.setdefault(row["shard"], set()).add(row["server"])
        assert len(sockets) == len(RUNNERS) and all(len(s) == 1 for s in sockets.values())
        for index, runner in enumerate(RUNNERS):
            held = sorted(p.name for p in (tmp_path / "servers" / runner / "log").iterdir())
            assert held == shards_of(names)[index]  # each logs its shard, and only it

        # A harvest of the whole inventory goes through each host's owner: every host ok (no
        # busy payload), byte-exact, and the dump is in the owner's continuous log too.
        summary_path = tmp_path / "harvest-summary.json"
        harvest = ["harvest", "--inventory", str(etc / "hosts.yaml"), "--keys", "h"]
        harvest += ["--root", str(tmp_path / "harvests"), "--summary", str(summary_path)]
        harvest += ["--progress", "none"]
        done = subprocess.run(
            [SOLCAP, *harvest],
            env=dict(os.environ, SOLCAP_SERVE_DIR=str(control)),
            capture_output=True,
            text=True,
            timeout=240,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        for entry in json.loads(summary_path.read_text())["hosts"]:
            assert entry["outcome"] == "ok", entry
            (segment,) = entry["segments"]
            dump = (Path(entry["recording"]) / segment["file"]).read_bytes()
            sent = sent_by_key(lab.lab.host_state(entry["host"])["dumps"])
            assert_sent_for_key(sent, "h", hashlib.sha256(dump).hexdigest(), entry["host"])
            runner = RUNNERS[shard_of(entry["host"], len(RUNNERS))]
            log = tmp_path / "servers" / runner / "log" / entry["host"]
            continuous = b"".join(p.read_bytes() for p in sorted(log.glob("*/console.raw")))
            assert dump in continuous
    finally:
        for server in servers:
            server.send_signal(signal.SIGTERM)
        codes = [server.wait(30) for server in servers]
    assert codes == [143] * len(RUNNERS)

    again = ansible_playbook(tmp_path, playbook, "solcap_servers", extra, lab.password)
    assert again.returncode == 0, again.stdout + again.stderr
    counts = recap(again.stdout)
    assert set(counts) == set(RUNNERS)
    assert all(c["changed"] == 0 and c["failed"] == 0 for c in counts.values()), counts
