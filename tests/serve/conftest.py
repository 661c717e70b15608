"""Fixtures for solcap serve: real ptys as serial consoles, a server in its own process."""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]


def wait_for(cond: Callable[[], Any], timeout: float, what: str = "condition") -> Any:
    """Poll ``cond`` until it returns something true; fail naming ``what`` on the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(0.02)


class Pty:
    """A serial console on a real pseudo-terminal: the test holds the master."""

    def __init__(self) -> None:
        self.master, self.slave = os.openpty()
        self.path = os.ttyname(self.slave)

    def write_all(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            _, ready, _ = select.select([], [self.master], [], 10)
            assert ready, "pty master not writable for 10 s"
            n = os.write(self.master, view[:4096])
            view = view[n:]

    def read_until(self, want: bytes, timeout: float) -> bytes:
        got = b""
        deadline = time.monotonic() + timeout
        while want not in got and time.monotonic() < deadline:
            ready, _, _ = select.select([self.master], [], [], 0.1)
            if ready:
                got += os.read(self.master, 65536)
        return got

    def close(self) -> None:
        for fd in (self.master, self.slave):
            with contextlib.suppress(OSError):
                os.close(fd)


@pytest.fixture
def ptys() -> Iterator[Callable[[], Pty]]:
    made: list[Pty] = []

    def make() -> Pty:
        made.append(Pty())
        return made[-1]

    yield make
    for pty in made:
        pty.close()


def write_inventory(path: Path, hosts: dict[str, str]) -> None:
    lines = ["hosts:"]
    for name, device in hosts.items():
        lines += [f"  {name}:", f"    serial: {device}", "    line: 115200,8n1"]
    path.write_text("\n".join(lines) + "\n")


class ServeProcess:
    """``solcap serve`` in a process of its own (signals are real)."""

    def __init__(self, tmp: Path, inventory: Path, *extra: str) -> None:
        self.tmp = tmp
        self.inventory = inventory
        self.root = tmp / "rec"
        self.control = tmp / "ctl"
        self.extra = extra
        self.proc: subprocess.Popen[bytes] | None = None
        self.socket: Path | None = None

    def start(self) -> ServeProcess:
        argv = [sys.executable, "-m", "solcap.cli", "serve", "--inventory", str(self.inventory)]
        argv += ["--root", str(self.root), "--control-dir", str(self.control), *self.extra]
        self.proc = subprocess.Popen(
            argv,
            stdout=subprocess.PIPE,
            stderr=open(self.tmp / "serve.err", "ab"),  # noqa: SIM115
            cwd=REPO,
            env=dict(os.environ, SOLCAP_SERVE_DIR=str(self.control)),
        )
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], 60)
        assert ready, f"solcap serve not ready in 60 s: {self.stderr()}"
        line = self.proc.stdout.readline().decode()
        assert line.startswith("ready "), f"{line!r} {self.stderr()}"
        self.socket = Path(line.split(" ", 1)[1].strip())
        return self

    def stderr(self) -> str:
        return (self.tmp / "serve.err").read_text(errors="replace")

    def status(self) -> dict[str, dict[str, Any]]:
        from solcap.serve.client import request_status

        assert self.socket is not None
        return {h["host"]: h for h in request_status(self.socket)["hosts"]}

    def wait_bytes(self, host: str, n: int, timeout: float = 60) -> None:
        wait_for(lambda: self.status()[host]["bytes"] >= n, timeout, f"{host} to reach {n} B")

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def wait(self, timeout: float = 30) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


@pytest.fixture
def workers() -> int:
    """``solcap serve --workers`` for the ``serve`` fixture: one process unless a test
    parametrises ``workers`` (the important ones run with 1 and 2)."""
    return 1


@pytest.fixture
def serve(tmp_path: Path, workers: int) -> Iterator[Callable[..., ServeProcess]]:
    started: list[ServeProcess] = []

    def make(inventory: Path, *extra: str) -> ServeProcess:
        if "--workers" not in extra:
            extra = (*extra, "--workers", str(workers))
        started.append(ServeProcess(tmp_path, inventory, *extra).start())
        return started[-1]

    yield make
    for server in started:
        server.stop()


def pieces(root: Path, host: str) -> list[Path]:
    return sorted(p for p in (root / host).iterdir() if p.name.endswith("_serve"))


def raw_of(root: Path, host: str) -> bytes:
    return b"".join((p / "console.raw").read_bytes() for p in pieces(root, host))


def events(piece: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (piece / "events.jsonl").read_text().splitlines()]


def meta(piece: Path) -> dict[str, Any]:
    value: dict[str, Any] = json.loads((piece / "meta.json").read_text())
    return value
