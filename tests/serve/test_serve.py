"""``solcap serve`` over real ptys: continuous recording, rotation under a 256 KiB/s stream,
SIGTERM/SIGKILL/SIGHUP, and clients (status, a writer and a spy seeing the same bytes)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
import signal
import time

import pytest

from solcap.cli import main
from solcap.errors import ConsoleBusy
from solcap.serve import protocol
from solcap.serve.client import Attachment, find_serving
from tests.serve.conftest import events, meta, pieces, raw_of, wait_for, write_inventory

pytestmark = pytest.mark.timeout(120)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("workers", [1, 2])
def test_rotation_under_a_256_kib_per_second_stream_loses_nothing(tmp_path, ptys, serve):
    pty = ptys()
    inv = tmp_path / "inv.yaml"
    write_inventory(inv, {"h1": pty.path})
    server = serve(inv, "--rotate-size", "96K", "--rotate-age", "0.7")
    wait_for(lambda: server.status()["h1"]["state"] == "up", 30, "h1 up")
    stream = random.Random(1).randbytes(640 * 1024)
    begin = time.monotonic()
    for i in range(0, len(stream), 8192):  # paced at 256 KiB/s
        pty.write_all(stream[i : i + 8192])
        ahead = begin + (i + 8192) / (256 * 1024) - time.monotonic()
        if ahead > 0:
            time.sleep(ahead)
    server.wait_bytes("h1", len(stream))
    server.signal(signal.SIGTERM)
    assert server.wait() == 143
    got = pieces(server.root, "h1")
    assert len(got) >= 6, [p.name for p in got]
    assert _sha(raw_of(server.root, "h1")) == _sha(stream)
    reasons = {meta(p).get("rotated") for p in got[:-1]}
    assert reasons <= {"size", "age"} and "size" in reasons
    assert all(meta(p)["finished"] for p in got)
    offset = 0
    for piece in got:
        assert meta(piece)["stream_offset"] == offset
        offset += meta(piece)["bytes"]


def test_sigkill_then_restart_keeps_every_written_byte_and_records_the_gap(tmp_path, ptys, serve):
    pty = ptys()
    inv = tmp_path / "inv.yaml"
    write_inventory(inv, {"h1": pty.path})
    server = serve(inv)
    wait_for(lambda: server.status()["h1"]["state"] == "up", 30, "h1 up")
    before = random.Random(2).randbytes(100_000)
    pty.write_all(before)
    server.wait_bytes("h1", len(before))
    server.signal(signal.SIGKILL)
    server.wait()
    (killed,) = pieces(server.root, "h1")
    assert meta(killed)["finished"] is False
    assert (killed / "console.raw").read_bytes() == before

    again = serve(inv)
    wait_for(lambda: again.status()["h1"]["state"] == "up", 30, "h1 up again")
    pty.write_all(b"after the restart\r\n")
    again.wait_bytes("h1", 19)
    again.stop()
    old, new = pieces(again.root, "h1")
    assert old == killed and (old / "console.raw").read_bytes() == before
    (gap,) = [e for e in events(new) if e["event"] == "gap"]
    assert gap["previous"] == old.name and gap["previous_bytes"] == len(before)
    assert gap["previous_finished"] is False and gap["last_write"]
    assert (new / "console.raw").read_bytes() == b"after the restart\r\n"


@pytest.mark.parametrize("workers", [1, 2])
def test_sighup_adds_and_removes_hosts_and_leaves_the_others_alone(tmp_path, ptys, serve):
    a, b, c = ptys(), ptys(), ptys()
    inv = tmp_path / "inv.yaml"
    write_inventory(inv, {"a": a.path, "b": b.path})
    server = serve(inv)
    wait_for(lambda: all(h["state"] == "up" for h in server.status().values()), 30, "up")
    a.write_all(b"a-before\r\n")
    server.wait_bytes("a", 10)
    kept = server.status()["a"]
    write_inventory(inv, {"a": a.path, "c": c.path})
    server.signal(signal.SIGHUP)
    wait_for(lambda: set(server.status()) == {"a", "c"}, 30, "the reload")
    wait_for(lambda: server.status()["c"]["state"] == "up", 30, "c up")
    now = server.status()["a"]
    assert (now["since"], now["recording"], now["bytes"]) == (
        kept["since"],
        kept["recording"],
        kept["bytes"],
    )
    a.write_all(b"a-after\r\n")
    c.write_all(b"c-new\r\n")
    server.wait_bytes("a", 19)
    server.wait_bytes("c", 7)
    (b_piece,) = pieces(server.root, "b")
    assert meta(b_piece)["finished"] is True  # b was closed cleanly at the reload
    # A broken inventory on SIGHUP keeps everything running.
    inv.write_text("hosts: [not a mapping\n")
    server.signal(signal.SIGHUP)
    wait_for(
        lambda: "reload: keeping the running consoles" in server.stderr(), 30, "reload refused"
    )
    assert set(server.status()) == {"a", "c"}
    server.stop()
    assert raw_of(server.root, "a") == b"a-before\r\na-after\r\n"
    assert len(pieces(server.root, "a")) == 1


def _collect(att: Attachment, n: int, timeout: float = 30) -> tuple[bytes, list[dict]]:
    data, notices = b"", []
    deadline = time.monotonic() + timeout
    while len(data) < n and time.monotonic() < deadline:
        item = att.read_frame()
        assert item is not None, "server closed the attachment"
        kind, payload = item
        if kind == protocol.DATA:
            data += payload
        elif kind == protocol.JSON:
            notices.append(json.loads(payload))
    return data, notices


@pytest.mark.parametrize("workers", [1, 2])
def test_a_writer_and_a_spy_see_the_same_bytes_and_only_the_writer_types(tmp_path, ptys, serve):
    pty = ptys()
    inv = tmp_path / "inv.yaml"
    write_inventory(inv, {"h1": pty.path})
    server = serve(inv)
    wait_for(lambda: server.status()["h1"]["state"] == "up", 30, "h1 up")
    banner = b"\x1b[2J\x1b[Hlogin: "
    pty.write_all(banner)
    server.wait_bytes("h1", len(banner))
    assert server.socket is not None
    writer = Attachment(server.socket, "h1", who="alice")
    spy = Attachment(server.socket, "h1", who="bob")
    assert (writer.role, writer.notice) == ("writer", None)
    assert spy.role == "spy" and "alice" in (spy.notice or "")
    assert b"login:" in writer.screen and writer.screen == spy.screen
    with pytest.raises(ConsoleBusy, match="held for writing"):
        Attachment(server.socket, "h1", mode="write", who="carol")
    stream = random.Random(3).randbytes(200_000)
    pty.write_all(stream)
    got_w, _ = _collect(writer, len(stream))
    got_s, _ = _collect(spy, len(stream))
    assert writer.offset == spy.offset == len(banner)
    assert _sha(got_w) == _sha(got_s) == _sha(stream)
    writer.send(b"root\r")
    assert b"root\r" in pty.read_until(b"root\r", 10)
    spy.send(b"spy-typed\r")
    assert b"spy-typed" not in pty.read_until(b"spy-typed", 1.0)
    item = spy.read_frame()  # the server says why nothing was sent
    assert item is not None and item[0] == protocol.JSON
    assert "read-only" in json.loads(item[1])["text"]
    # --force: carol takes the write side, alice is told and becomes a spy.
    carol = Attachment(server.socket, "h1", mode="force", who="carol")
    assert carol.role == "writer"
    item = writer.read_frame()
    assert item is not None and json.loads(item[1])["event"] == "forced"
    carol.send(b"carol\r")
    assert b"carol\r" in pty.read_until(b"carol\r", 10)
    status = server.status()["h1"]
    assert status["writer"].startswith("carol")
    assert sorted(c["role"] for c in status["clients"]) == ["spy", "spy", "writer"]
    for att in (writer, spy, carol):
        att.close()
    server.stop()
    kinds = [e["event"] for p in pieces(server.root, "h1") for e in events(p)]
    assert kinds.count("attach") == 3 and "force" in kinds and kinds.count("write") == 2


@pytest.mark.parametrize("workers", [1, 2])
def test_status_command_and_its_exit_codes(tmp_path, ptys, serve, capsys):
    pty = ptys()
    inv = tmp_path / "inv.yaml"
    write_inventory(inv, {"h1": pty.path, "gone": "/dev/pts/nonexistent-9999"})
    control = ["--control-dir", str(tmp_path / "ctl")]
    # No server at all: every host unserved, exit 3.
    out = io.StringIO()
    assert main(["status", "--inventory", str(inv), *control, "--json"], out=out) == 3
    assert {h["state"] for h in json.loads(out.getvalue())["hosts"]} == {"unserved"}
    server = serve(inv, "--backoff-base", "0.05", "--backoff-max", "0.2")
    wait_for(lambda: server.status()["h1"]["state"] == "up", 30, "h1 up")
    wait_for(lambda: server.status()["gone"]["state"] == "down", 30, "gone down")
    out = io.StringIO()
    assert main(["status", "--inventory", str(inv), *control, "--json"], out=out) == 4
    rows = {h["host"]: h for h in json.loads(out.getvalue())["hosts"]}
    assert rows["h1"]["state"] == "up" and rows["gone"]["state"] == "down"
    assert rows["gone"]["detail"]
    out = io.StringIO()
    assert main(["status", "--inventory", str(inv), *control], out=out) == 4
    assert "h1" in out.getvalue() and "down" in out.getvalue()
    # one log line per state change, not one per reconnect attempt: several attempts later
    wait_for(lambda: server.status()["gone"]["attempts"] >= 5, 30, "gone retried 5 times")
    assert server.stderr().count("gone: down") == 1


def test_without_a_server_nothing_is_found(tmp_path):
    assert find_serving("h1", inventory=str(tmp_path), directory=tmp_path / "none") is None
    os.mkdir(tmp_path / "empty", 0o700)
    assert find_serving("h1", inventory=str(tmp_path), directory=tmp_path / "empty") is None


def test_a_control_directory_too_long_for_a_unix_socket_is_one_line_and_nothing_made(
    tmp_path, ptys, capsys
):
    inv = tmp_path / "inv.yaml"
    write_inventory(inv, {"h1": ptys().path})
    root, ctl = tmp_path / "rec", tmp_path / ("c" * 120)
    argv = ["serve", "--inventory", str(inv), "--root", str(root), "--control-dir", str(ctl)]
    assert main(argv, out=io.StringIO()) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--control-dir" in err and "at most 107" in err, err
    assert not root.exists() and not ctl.exists()
