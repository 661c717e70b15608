"""Commands on a served host go through ``solcap serve`` (real ptys as the consoles): the
command's recording and the server's continuous log get the same bytes, and nothing opens the
console a second time."""

from __future__ import annotations

import hashlib
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from solcap.serve.client import find_serving
from tests.serve.conftest import REPO, events, pieces, raw_of, wait_for, write_inventory

pytestmark = pytest.mark.timeout(120)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _solcap(control: Path, *argv: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "solcap.cli", *argv],
        cwd=REPO,
        env=dict(os.environ, SOLCAP_SERVE_DIR=str(control)),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def test_discovery_finds_the_server_by_inventory_host_and_by_target(tmp_path, ptys, serve):
    pty = ptys()
    inv = tmp_path / "inv.yaml"
    write_inventory(inv, {"h1": pty.path})
    other = tmp_path / "other.yaml"
    write_inventory(other, {"h1": "/dev/null"})
    server = serve(inv)
    found = find_serving("h1", inventory=str(inv), directory=server.control)
    assert found is not None and found.socket == server.socket and found.host == "h1"
    # The same name in another inventory is another machine: not this server's.
    assert find_serving("h1", inventory=str(other), directory=server.control) is None
    by_target = find_serving(target=pty.path, directory=server.control)
    assert by_target is not None and by_target.host == "h1"
    assert find_serving(target="/dev/null", directory=server.control) is None


def test_a_capture_of_a_served_console_goes_through_the_server(tmp_path, ptys, serve):
    pty = ptys()
    inv = tmp_path / "inv.yaml"
    write_inventory(inv, {"h1": pty.path})
    server = serve(inv)
    wait_for(lambda: server.status()["h1"]["state"] == "up", 30, "h1 up")
    before = b"before the capture\r\n"
    pty.write_all(before)
    server.wait_bytes("h1", len(before))
    rec_root = tmp_path / "captures"
    proc = _solcap(
        server.control, "capture", pty.path, "--until", "THE-END", "--root", str(rec_root)
    )
    wait_for(lambda: server.status()["h1"]["clients"], 30, "the capture to attach")
    # A capture only watches: the write side stays free for a person.
    assert [c["role"] for c in server.status()["h1"]["clients"]] == ["spy"]
    stream = random.Random(5).randbytes(150_000).replace(b"THE-END", b"") + b"THE-END"
    pty.write_all(stream)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err.decode()
    (rec,) = [p.parent for p in rec_root.rglob("console.raw")]
    # Two readers of one pty would split the bytes between them: exactness proves one reader.
    assert _sha((rec / "console.raw").read_bytes()) == _sha(stream)
    meta = json.loads((rec / "meta.json").read_text())
    assert meta["via"] == "solcap serve" and meta["serve_offset"] == len(before)
    server.wait_bytes("h1", len(before) + len(stream))
    server.stop()
    assert _sha(raw_of(server.root, "h1")) == _sha(before + stream)
    kinds = [(e["event"], e.get("role")) for p in pieces(server.root, "h1") for e in events(p)]
    assert ("attach", "spy") in kinds and ("detach", "spy") in kinds
