"""Commands on a served host go through ``solcap serve`` (real ptys as the consoles): the
command's recording and the server's continuous log get the same bytes, and nothing opens the
console a second time."""

from __future__ import annotations

import hashlib
import io
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


class Terminal:
    """``solcap console`` on a real pty (pexpect) as a person's terminal."""

    def __init__(self, *argv: str) -> None:
        import pexpect

        self.shown = io.BytesIO()
        self.child = pexpect.spawn(
            sys.executable,
            ["-m", "solcap.cli", "console", *argv],
            cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO)},
            timeout=20,
        )
        self.child.logfile_read = self.shown

    def expect(self, pattern: bytes) -> None:
        self.child.expect(pattern)

    def quit(self) -> int:
        import pexpect

        self.child.send(b"\r~.")
        self.child.expect(pexpect.EOF)
        self.child.close()
        return int(self.child.exitstatus)

    def close(self) -> None:
        if self.child.isalive():
            self.child.close(force=True)


def _between(shown: bytes, start: bytes, end: bytes) -> bytes:
    at = shown.index(start)
    return shown[at : shown.index(end, at) + len(end)]


@pytest.mark.parametrize("workers", [1, 2])
def test_console_through_the_server_one_writer_spies_and_force(tmp_path, ptys, serve):
    pty = ptys()
    inv = tmp_path / "inv.yaml"
    write_inventory(inv, {"h1": pty.path})
    server = serve(inv)
    wait_for(lambda: server.status()["h1"]["state"] == "up", 30, "h1 up")
    pty.write_all(b"\x1b[2J\x1b[HWelcome to h1\r\nh1 login: ")
    server.wait_bytes("h1", 20)
    termrec = tmp_path / "terminal-recordings"
    base = ["h1", "--inventory", str(inv), "--control-dir", str(server.control)]
    base += ["--root", str(termrec)]
    terms: list[Terminal] = []
    try:
        alice = Terminal(*base)
        terms.append(alice)
        alice.expect(rb"as writer")
        alice.expect(rb"Welcome to h1\r\nh1 login:")  # the current screen first, exactly
        bob = Terminal(*base)
        terms.append(bob)
        bob.expect(rb"as spy \(read-only\)")
        bob.expect(rb"has the write side; you are a spy")
        bob.expect(rb"Welcome to h1")
        wait_for(lambda: len(server.status()["h1"]["clients"]) == 2, 30, "two clients")
        # Both see the same live bytes (the same digest of what each terminal showed).
        lines = b"".join(b"%06d %s\r\n" % (i, os.urandom(12).hex().encode()) for i in range(400))
        stream = b"<<START>>" + lines + b"<<END>>"
        pty.write_all(stream)
        alice.expect(rb"<<END>>")
        bob.expect(rb"<<END>>")
        seen_a = _between(alice.shown.getvalue(), b"<<START>>", b"<<END>>")
        seen_b = _between(bob.shown.getvalue(), b"<<START>>", b"<<END>>")
        assert _sha(seen_a) == _sha(seen_b) == _sha(stream)
        alice.child.send(b"alice-typed\r")
        assert b"alice-typed\r" in pty.read_until(b"alice-typed\r", 10)
        bob.child.send(b"bob-typed\r")
        bob.expect(rb"read-only: input not sent")
        # --force: carol takes the write side; alice is told on her screen.
        carol = Terminal(*base, "--force")
        terms.append(carol)
        carol.expect(rb"as writer")
        alice.expect(rb"took the write side \(--force\); you are a spy")
        carol.child.send(b"carol-typed\r")
        got = pty.read_until(b"carol-typed\r", 10)
        assert b"carol-typed\r" in got and b"bob-typed" not in got
        alice.child.send(b"alice-again\r")
        alice.expect(rb"read-only: input not sent")
        assert [t.quit() for t in terms] == [0, 0, 0]
    finally:
        for term in terms:
            term.close()
    assert b"alice-again" not in pty.read_until(b"alice-again", 0.5)
    server.stop()
    log = [e for p in pieces(server.root, "h1") for e in events(p)]
    kinds = [e["event"] for e in log]
    assert kinds.count("attach") == 3 and kinds.count("detach") == 3
    (force,) = [e for e in log if e["event"] == "force"]
    assert "pid" in force["by"] and "pid" in force["previous"] != force["by"]
    assert kinds.count("write") >= 2
    assert not termrec.exists()  # the server's log is the recording; no second one


def test_spy_and_force_without_a_server_are_refused(tmp_path, capsys):
    from solcap.cli import main

    inv = tmp_path / "inv.yaml"
    write_inventory(inv, {"h1": "/dev/null"})
    control = ["--control-dir", str(tmp_path / "ctl")]
    for flag in ("--spy", "--force"):
        assert main(["console", "h1", "--inventory", str(inv), *control, flag]) == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and "no running solcap serve holds" in err and flag in err
    assert main(["console", "nosuch", "--inventory", str(inv), *control]) == 2
    assert "no host named 'nosuch'" in capsys.readouterr().err


def test_a_command_does_not_type_into_a_persons_session_and_writes_once_it_is_free(
    tmp_path, ptys, serve, monkeypatch
):
    import solcap
    from solcap.errors import ConsoleBusy
    from solcap.serve.client import Attachment

    pty = ptys()
    inv = tmp_path / "inv.yaml"
    write_inventory(inv, {"h1": pty.path})
    server = serve(inv)
    wait_for(lambda: server.status()["h1"]["state"] == "up", 30, "h1 up")
    monkeypatch.setenv("SOLCAP_SERVE_DIR", str(server.control))
    assert server.socket is not None
    person = Attachment(server.socket, "h1", who="alice")
    root = tmp_path / "api"
    with pytest.raises(ConsoleBusy, match="held for writing by alice"):
        solcap.open_console(pty.path, root=root)
    assert not root.exists()  # refused before any recording was made
    person.close()
    wait_for(lambda: not server.status()["h1"]["clients"], 30, "alice detached")
    typed = random.Random(9).randbytes(4096)
    with solcap.open_console(pty.path, root=root) as con:
        assert con.transport.name == "serve:h1"
        con.send(typed)
        got = b""
        while len(got) < len(typed):
            got += pty.read_until(typed[-16:], 10)
            assert got, "nothing reached the host"
        pty.write_all(b"answer\r\n")
        con.expect([b"answer\r\n"], timeout=10)
    assert _sha(got) == _sha(typed)
    server.stop()
    log = [e for p in pieces(server.root, "h1") for e in events(p)]
    assert sum(e["bytes"] for e in log if e["event"] == "write") == len(typed)
