"""`solcap lab`: N virtual hosts behind N virtual BMCs, and a clean `down`."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from solcap.cli import main
from solcap.inventory import load_inventory
from solcap.orchestration.runner import host_ssh_target
from solcap.testing.lab import Lab
from solcap.transports.ssh import connect

pytestmark = pytest.mark.timeout(120)


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return stat != "Z"


def test_up_writes_a_valid_inventory_and_down_stops_only_its_hosts(tmp_path: Path) -> None:
    # A lab host that belongs to another lab directory must survive our `down`.
    other = tmp_path / "other"
    (other / "state").mkdir(parents=True)
    env = dict(os.environ, IPMI_PASSWORD="x" * 12)
    bystander = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "solcap.sim.labhost",
            "--name",
            "by",
            "--fast",
            "--state",
            str(other / "state"),
        ],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
    )
    try:
        out = io.StringIO()
        assert (
            main(
                ["lab", "up", "--hosts", "3", "--domains", "1", "--dir", str(tmp_path / "lab")],
                out=out,
            )
            == 0
        )
        lab = Lab(tmp_path / "lab")
        hosts = lab.hosts()
        assert [h.name for h in hosts] == ["node001", "node002", "node003"]
        assert len({h.port for h in hosts}) == 3
        assert all(h.address == "127.0.0.1" for h in hosts)
        assert (lab.password_file.stat().st_mode & 0o777) == 0o600
        inventory = load_inventory(lab.inventory)
        assert sorted(h.name for h in inventory.hosts) == ["node001", "node002", "node003"]
        assert all(lab.host_state(h.name)["state"] == "running" for h in hosts)
        # Dom0 over SSH works with verified host keys from the lab's known_hosts.
        first = next(h for h in inventory.hosts if h.name == "node001")
        with connect(host_ssh_target(first)) as ssh:
            assert ssh.run("hostname", timeout=10).stdout.strip() == "node001"

        assert main(["lab", "down", "--dir", str(tmp_path / "lab")], out=out) == 0
        deadline = time.monotonic() + 10
        while any(_alive(h.pid) for h in hosts) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not any(_alive(h.pid) for h in hosts)
        assert bystander.poll() is None, "lab down must not touch another lab's host"
        assert lab.hosts() == []
    finally:
        bystander.terminate()
        bystander.wait(10)
