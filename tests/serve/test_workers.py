"""``solcap serve --workers 2``: each console held and recorded by the worker that owns it.

Real ptys as consoles. The proof that a console lives in a worker is the kernel's: the
worker process (``/proc/PID/fd``) has the console's device open and the parent has not; the
recordings are compared byte for byte with what was written; clients attach through the
parent's socket and are handed to the owning worker.
"""

from __future__ import annotations

import hashlib
import os
import random
import signal
from pathlib import Path

import pytest

from solcap.serve.client import Attachment
from solcap.serve.workers import worker_of
from tests.serve.conftest import meta, pieces, raw_of, wait_for, write_inventory

pytestmark = pytest.mark.timeout(120)

#: n2, n3 hash to worker 0 and n1, n4 to worker 1 (checked below, so a changed split fails
#: loudly instead of testing one worker).
HOSTS = ("n1", "n2", "n3", "n4")


def _open_devices(pid: int) -> set[str]:
    fds = Path(f"/proc/{pid}/fd")
    out = set()
    for fd in fds.iterdir():
        try:
            out.add(os.readlink(fd))
        except OSError:
            continue
    return out


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_two_workers_hold_the_consoles_in_two_processes_and_record_every_byte(
    tmp_path, ptys, serve
):
    assert {worker_of(h, 2) for h in HOSTS} == {0, 1}
    consoles = {name: ptys() for name in HOSTS}
    inv = tmp_path / "inv.yaml"
    write_inventory(inv, {name: pty.path for name, pty in consoles.items()})
    server = serve(inv, "--workers", "2")
    assert server.proc is not None
    parent = server.proc.pid
    up = lambda: all(h["state"] == "up" for h in server.status().values())  # noqa: E731
    wait_for(up, 30, "every console up")
    status = server.status()
    owners = {name: status[name]["pid"] for name in HOSTS}
    assert len(set(owners.values())) == 2 and parent not in owners.values()
    for name in HOSTS:  # same worker for the same hash, and that worker has the device open
        assert owners[name] == next(
            owners[o] for o in HOSTS if worker_of(o, 2) == worker_of(name, 2)
        )
        assert consoles[name].path in _open_devices(owners[name])
    assert not {p.path for p in consoles.values()} & _open_devices(parent)

    # A writer on one console of each worker, attached through the parent's socket.
    assert server.socket is not None
    writers = {name: Attachment(server.socket, name, who=f"w-{name}") for name in ("n1", "n2")}
    assert all(w.role == "writer" for w in writers.values())
    for name, writer in writers.items():
        writer.send(f"typed-{name}\r".encode())
        want = f"typed-{name}\r".encode()
        assert want in consoles[name].read_until(want, 10)
    status = server.status()
    assert {c["who"].split()[0] for c in status["n1"]["clients"]} == {"w-n1"}

    streams = {name: random.Random(name).randbytes(96 * 1024) for name in HOSTS}
    for name, data in streams.items():
        consoles[name].write_all(data)
    for name, data in streams.items():
        server.wait_bytes(name, len(data))
    for writer in writers.values():
        writer.close()
    server.signal(signal.SIGTERM)
    assert server.wait() == 143
    for name, data in streams.items():
        assert _sha(raw_of(server.root, name)) == _sha(data), name
        assert all(meta(p)["finished"] for p in pieces(server.root, name))
    for pid in set(owners.values()):  # no worker outlives the server
        assert not Path(f"/proc/{pid}").exists() or "Z" in _state(pid)


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "gone"


def test_a_worker_killed_stops_the_server_with_exit_1_and_the_other_closes_cleanly(
    tmp_path, ptys, serve
):
    consoles = {name: ptys() for name in ("n1", "n2")}
    inv = tmp_path / "inv.yaml"
    write_inventory(inv, {name: pty.path for name, pty in consoles.items()})
    server = serve(inv, "--workers", "2")
    wait_for(lambda: all(h["state"] == "up" for h in server.status().values()), 30, "up")
    consoles["n2"].write_all(b"n2 before\r\n")
    server.wait_bytes("n2", 11)
    os.kill(server.status()["n1"]["pid"], signal.SIGKILL)
    assert server.wait() == 1
    assert "worker 1" in server.stderr() and "SIGKILL" in server.stderr()
    assert raw_of(server.root, "n2") == b"n2 before\r\n"
    assert all(meta(p)["finished"] for p in pieces(server.root, "n2"))


def test_a_sigkilled_server_takes_its_workers_with_it_and_a_restart_holds_the_consoles(
    tmp_path, ptys, serve
):
    consoles = {name: ptys() for name in ("n1", "n2")}
    inv = tmp_path / "inv.yaml"
    write_inventory(inv, {name: pty.path for name, pty in consoles.items()})
    server = serve(inv, "--workers", "2")
    wait_for(lambda: all(h["state"] == "up" for h in server.status().values()), 30, "up")
    owners = {h["host"]: h["pid"] for h in server.status().values()}
    for name, pty in consoles.items():
        pty.write_all(f"{name} before\r\n".encode())
        server.wait_bytes(name, 11)
    server.signal(signal.SIGKILL)
    server.wait()
    for pid in owners.values():  # each worker closes its consoles and goes
        wait_for(lambda p=pid: _state(p) in ("gone", "Z"), 30, f"worker {pid} to end")
    for name in consoles:
        assert all(meta(p)["finished"] for p in pieces(server.root, name)), name
    again = serve(inv, "--workers", "2")
    wait_for(lambda: all(h["state"] == "up" for h in again.status().values()), 30, "up again")
    for name, pty in consoles.items():
        pty.write_all(f"{name} after\r\n".encode())
        again.wait_bytes(name, 10)
    again.stop()
    for name in consoles:
        assert raw_of(again.root, name) == f"{name} before\r\n{name} after\r\n".encode(), name
