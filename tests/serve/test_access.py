"""Access to ``solcap serve``'s control socket with real second Unix users.

The test (as root) creates a group and three users with useradd/groupadd and removes them
afterwards; each client runs in a child process that has really become that user (setuid),
so the server sees it through ``SO_PEERCRED`` and the kernel checks the file modes. Needs
root (the CI runs as root); elsewhere it is skipped, saying why.
"""

from __future__ import annotations

import grp
import json
import os
import pwd
import secrets
import shutil
import socket
import stat
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from solcap.serve import protocol
from tests import peers
from tests.serve.conftest import ServeProcess, events, pieces, wait_for

pytestmark = pytest.mark.timeout(120)


class Users:
    def __init__(self) -> None:
        tag = secrets.token_hex(3)
        self.group = f"scg{tag}"
        self.a, self.b, self.c = f"sca{tag}", f"scb{tag}", f"scc{tag}"

    def uid(self, name: str) -> int:
        return pwd.getpwnam(name).pw_uid

    def gid(self) -> int:
        return grp.getgrnam(self.group).gr_gid


def _run(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True, timeout=30)


@pytest.fixture
def users() -> Iterator[Users]:
    peers.need("useradd")
    if os.geteuid() != 0:
        peers.missing("root", "creating a second Unix user needs root (the CI runs as root)")
    made = Users()
    _run("groupadd", made.group)
    created: list[str] = []
    try:
        for name, extra in ((made.a, ["-G", made.group]), (made.b, ["-G", made.group])):
            _run("useradd", "-M", "-N", "-s", "/usr/sbin/nologin", *extra, name)
            created.append(name)
        _run("useradd", "-M", "-N", "-s", "/usr/sbin/nologin", made.c)
        created.append(made.c)
        yield made
    finally:
        for name in created:
            subprocess.run(["userdel", name], capture_output=True, timeout=30)
        subprocess.run(["groupdel", made.group], capture_output=True, timeout=30)


def as_user(name: str, fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Run ``fn`` in a forked child that has become user ``name`` (its groups included)."""
    entry = pwd.getpwnam(name)
    groups = os.getgrouplist(name, entry.pw_gid)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: only this thread exists; no imports, no logging
        try:
            os.close(r)
            os.setgroups(groups)
            os.setgid(entry.pw_gid)
            os.setuid(entry.pw_uid)
            result = fn()
        except BaseException as exc:
            result = {"exception": type(exc).__name__, "error": str(exc)}
        try:
            os.write(w, json.dumps(result).encode())
        finally:
            os._exit(0)
    os.close(w)
    data = b""
    while chunk := os.read(r, 65536):
        data += chunk
    os.close(r)
    os.waitpid(pid, 0)
    value: dict[str, Any] = json.loads(data)
    return value


def attach(path: Path, host: str, mode: str = "auto", send: bytes | None = None) -> Callable:
    def go() -> dict[str, Any]:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(10)
            sock.connect(str(path))
            sock.sendall(protocol.json_frame({"op": "attach", "host": host, "mode": mode}))
            item = protocol.read_frame(sock)
            assert item is not None
            reply = json.loads(item[1])
            if not reply["ok"]:
                return {"reply": reply}
            protocol.read_frame(sock)  # the screen
            notices = []
            if send is not None:
                sock.sendall(protocol.frame(protocol.INPUT, send))
                if reply["role"] == "spy":  # the server says why nothing was sent
                    while not notices:
                        kind, payload = protocol.read_frame(sock) or (b"", b"")
                        if kind == protocol.JSON:
                            notices.append(json.loads(payload))
            return {"reply": reply, "notices": notices}

    return go


def _private_parent() -> Path:
    """A directory others may traverse but not list, for the control directory."""
    parent = Path(tempfile.mkdtemp(prefix="solcap-access-"))
    parent.chmod(0o711)
    return parent


def _server(tmp: Path, inventory: Path, control: Path, *extra: str) -> ServeProcess:
    server = ServeProcess(tmp, inventory, *extra)
    server.control = control
    return server.start()


@pytest.mark.parametrize("workers", ["1", "2"])
def test_owner_only_by_default_and_per_host_rights_by_peer_credentials(
    tmp_path, ptys, users, workers
):
    parent = _private_parent()
    h1, h2, h3 = ptys(), ptys(), ptys()
    inv = tmp_path / "inv.yaml"
    inv.write_text(
        "hosts:\n"
        f"  h1: {{serial: {h1.path}, access: {{write: [{users.a}], read: ['@{users.group}']}}}}\n"
        f"  h2: {{serial: {h2.path}}}\n"
        f"  h3: {{serial: {h3.path}, access: {{write: [root]}}}}\n"
    )
    try:
        # Default: the directory 0700, the socket 0600; another user cannot even connect.
        alone = _server(tmp_path, inv, parent / "solo", "--workers", workers)
        try:
            assert alone.socket is not None
            assert stat.S_IMODE(os.stat(parent / "solo").st_mode) == 0o700
            assert stat.S_IMODE(os.stat(alone.socket).st_mode) == 0o600
            refused = as_user(users.a, attach(alone.socket, "h1"))
            assert refused.get("exception") == "PermissionError", refused
        finally:
            alone.stop()

        control = parent / "ctl"
        server = _server(tmp_path, inv, control, "--group", users.group, "--workers", workers)
        try:
            assert server.socket is not None
            info, sock_info = os.stat(control), os.stat(server.socket)
            assert (stat.S_IMODE(info.st_mode), info.st_gid) == (0o750, users.gid())
            assert (stat.S_IMODE(sock_info.st_mode), sock_info.st_gid) == (0o660, users.gid())
            wait_for(
                lambda: all(h["state"] == "up" for h in server.status().values()), 30, "all up"
            )
            # c is in no group: the kernel refuses the connection (file modes, first gate).
            c = as_user(users.c, attach(server.socket, "h2"))
            assert c.get("exception") == "PermissionError", c
            # h1: a is listed as a writer; what a types reaches the host, byte for byte.
            a = as_user(users.a, attach(server.socket, "h1", "write", b"typed-by-a\r"))
            assert a["reply"]["role"] == "writer", a
            assert h1.read_until(b"typed-by-a\r", 10) == b"typed-by-a\r"
            # h1: b is only in the read group; even --force gives a spy, input is refused.
            b = as_user(users.b, attach(server.socket, "h1", "force", b"typed-by-b\r"))
            assert b["reply"]["role"] == "spy", b
            assert "read-only" in b["notices"][0]["text"]
            assert b"typed-by-b" not in h1.read_until(b"typed-by-b", 1.0)
            # h2 has no access: list: --group members write.
            b2 = as_user(users.b, attach(server.socket, "h2", "write", b"b-on-h2\r"))
            assert b2["reply"]["role"] == "writer", b2
            assert h2.read_until(b"b-on-h2\r", 10) == b"b-on-h2\r"
            # h3 lets only root write: a is refused, by the server this time.
            a3 = as_user(users.a, attach(server.socket, "h3"))
            assert a3["reply"]["kind"] == "access" and "may not attach" in a3["reply"]["error"]
        finally:
            server.stop()
        attached = [e for p in pieces(server.root, "h1") for e in events(p)]
        uids = {(e["uid"], e["role"]) for e in attached if e["event"] == "attach"}
        assert (users.uid(users.a), "writer") in uids and (users.uid(users.b), "spy") in uids
        writes = [e for e in attached if e["event"] == "write"]
        assert len(writes) == 1 and f"uid {users.uid(users.a)}" in writes[0]["who"]
    finally:
        shutil.rmtree(parent, ignore_errors=True)


def test_unknown_users_and_groups_in_access_are_one_line_and_exit_2(tmp_path, ptys, capsys):
    from io import StringIO

    from solcap.cli import main

    inv = tmp_path / "inv.yaml"
    for access, message in (
        ("{write: [no-such-user-solcap]}", "h1.access.write: no user named"),
        ("{read: ['@no-such-group-solcap']}", "h1.access.read: no group named"),
        ("{admin: [root]}", "h1.access.admin: unknown field"),
        ("[root]", "h1.access: expected a mapping"),
    ):
        inv.write_text(f"hosts:\n  h1:\n    serial: {ptys().path}\n    access: {access}\n")
        root, ctl = tmp_path / "rec", tmp_path / "ctl"
        argv = ["serve", "--inventory", str(inv), "--root", str(root), "--control-dir", str(ctl)]
        assert main(argv, out=StringIO()) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and f"{inv}:4:" in err and message in err, err
        assert not root.exists() and not ctl.exists()
