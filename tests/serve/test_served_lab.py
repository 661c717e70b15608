"""``solcap serve`` holding ``solcap lab`` hosts (virtual Xen hosts behind virtual BMCs, SOL
over IPMI on 127.0.0.1): a panic while nobody is attached is in the log, a harvest goes
through the server (no busy payload) into both recordings, and SIGTERM gives the SOL payload
back so a real ``ipmitool sol activate`` opens it afterwards."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pexpect
import pytest

from solcap.config.credentials import password_source
from solcap.testing.lab import Lab, LabHost
from solcap.transports.bmc import power
from tests import peers
from tests.keyed import assert_sent_for_key, sent_by_key
from tests.serve.conftest import REPO, events, pieces, raw_of, wait_for

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """node001 booted to its Dom0 prompt; node002 powered off, set to panic when it boots."""
    the_lab = Lab(tmp_path_factory.mktemp("lab"))
    try:
        the_lab.up(
            2,
            faults={"node002": ["panic"]},
            extra_args={"node002": ["--off"]},
            ready_states=("running", "off"),
        )
        wait_for(lambda: the_lab.host_state("node001").get("state") == "running", 60, "node001")
        yield the_lab
    finally:
        the_lab.down()


def _host(lab: Lab, name: str) -> LabHost:
    (host,) = [h for h in lab.hosts() if h.name == name]
    return host


def test_a_panic_while_no_client_is_attached_is_in_the_log(lab: Lab, serve) -> None:
    server = serve(lab.inventory)
    wait_for(lambda: server.status()["node002"]["state"] == "up", 60, "node002 held")
    host = _host(lab, "node002")
    power(host.url, "on", password_source=password_source(str(lab.password_file), prompt=False))
    wait_for(lambda: server.status()["node002"]["panics"] >= 1, 90, "the panic seen")
    status = server.status()["node002"]
    assert status["clients"] == []  # nobody was attached: the server alone caught it
    server.signal(signal.SIGTERM)
    assert server.wait() == 143
    raw = raw_of(server.root, "node002")
    assert b"Panic on CPU 0:" in raw and b"(XEN) Command line:" in raw
    (panic,) = [
        e for p in pieces(server.root, "node002") for e in events(p) if e["event"] == "panic"
    ]
    assert panic["text"] == "Panic on CPU 0"


def _on_served_node001(
    lab: Lab, server: Any, root: Path, *command: str
) -> tuple[Path, dict[str, Any], int]:
    """Run ``solcap COMMAND`` on node001 while ``server`` holds it: its recording, that
    recording's meta.json, and how many dumps the host had printed before."""
    wait_for(lambda: server.status()["node001"]["state"] == "up", 60, "node001 held")
    dumps_before = len(lab.host_state("node001").get("dumps", []))
    proc = subprocess.run(
        [
            *(sys.executable, "-m", "solcap.cli", *command, "--inventory", str(lab.inventory)),
            *("--limit", "node001", "--root", str(root)),
        ],
        cwd=REPO,
        env=dict(os.environ, SOLCAP_SERVE_DIR=str(server.control)),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=150,
    )
    assert proc.returncode == 0, proc.stdout.decode() + proc.stderr.decode()
    assert b"busy" not in proc.stderr and b"already active" not in proc.stderr
    (rec,) = [p.parent for p in (root / "node001").rglob("console.raw")]
    return rec, json.loads((rec / "meta.json").read_text()), dumps_before


@pytest.mark.slow
def test_a_harvest_of_a_served_host_goes_through_the_server_into_both_logs(
    lab: Lab, serve, tmp_path: Path
) -> None:
    server = serve(lab.inventory)
    root = tmp_path / "harvests"
    rec, meta, dumps_before = _on_served_node001(
        lab, server, root, "harvest", "--keys", "h,q", "--quiet", "0.5"
    )
    assert meta["via"] == "solcap serve" and meta["serve_role"] == "writer"
    harvested = (rec / "console.raw").read_bytes()
    sent = sent_by_key(lab.host_state("node001")["dumps"][dumps_before:])
    segments = [e for e in events(rec) if e["event"] == "segment"]
    assert [s["name"] for s in segments] == ["h", "q"]
    for seg in segments:
        assert seg["complete"], seg
        assert_sent_for_key(sent, seg["name"], seg["sha256"], "node001")
        assert (rec / seg["file"]).read_bytes() == harvested[seg["start"] : seg["end"]]
    status = server.status()["node001"]
    assert status["reconnects"] == 0 and status["state"] == "up"
    server.signal(signal.SIGTERM)
    assert server.wait() == 143
    # The harvest's recording is exactly the continuous log from the stream offset it was
    # given: the same bytes, none missing, none extra.
    logged = raw_of(server.root, "node001")
    offset = meta["serve_offset"]
    assert logged[offset : offset + len(harvested)] == harvested
    log = [e for p in pieces(server.root, "node001") for e in events(p)]
    (attach,) = [e for e in log if e["event"] == "attach"]
    assert (attach["role"], attach["mode"]) == ("writer", "write")
    assert any(e["event"] == "write" for e in log)
    assert [e["event"] for e in log].count("detach") == 1


@pytest.mark.slow
def test_a_runbook_run_on_a_served_host_goes_through_the_server(
    lab: Lab, serve, tmp_path: Path
) -> None:
    server = serve(lab.inventory)
    root = tmp_path / "runs"
    rec, meta, dumps_before = _on_served_node001(
        lab, server, root, "run", "harvest-debug-keys", "--var", "keys=h", "--var", "quiet=0.5"
    )
    assert meta["via"] == "solcap serve" and meta["outcome"] == "ok"
    ran = (rec / "console.raw").read_bytes()
    sent = sent_by_key(lab.host_state("node001")["dumps"][dumps_before:])
    (seg,) = [e for e in events(rec) if e["event"] == "segment" and e["name"] == "h"]
    assert seg["complete"]
    assert_sent_for_key(sent, "h", seg["sha256"], "node001")
    server.signal(signal.SIGTERM)
    assert server.wait() == 143
    logged = raw_of(server.root, "node001")
    assert logged[meta["serve_offset"] : meta["serve_offset"] + len(ran)] == ran


def test_sigterm_gives_the_sol_payload_back_for_a_direct_client(lab: Lab, serve) -> None:
    server = serve(lab.inventory)
    wait_for(lambda: server.status()["node001"]["state"] == "up", 60, "node001 held")
    server.signal(signal.SIGTERM)
    assert server.wait() == 143
    host = _host(lab, "node001")
    env = dict(os.environ, IPMI_PASSWORD=lab.password_file.read_text().strip())
    argv = ["-I", "lanplus", "-H", host.address, "-p", str(host.port), "-U", "admin", "-E"]
    sol = pexpect.spawn(
        peers.need("ipmitool"), [*argv, "-C", "17", "sol", "activate"], env=env, timeout=30
    )
    try:
        # Not "SOL payload already active on another session": the server deactivated it.
        assert sol.expect_exact(["[SOL Session operational", "already active"]) == 0
        sol.send(b"\r")
        sol.expect_exact("root@node001:~# ")
        sol.send(b"~.")
        sol.expect(pexpect.EOF)
    finally:
        sol.close(force=True)
    assert "node001: stopped" in server.stderr()
