"""Peer SOL clients (ipmitool, FreeIPMI ipmiconsole) run the way an operator runs them.

Each client is a child process whose stdin is a pty slave (both want a terminal to put in raw
mode) and whose stdout is a pipe read byte-exactly: the pipe does no newline translation, and the
one banner line each prints on connecting is stripped exactly. CPU seconds and peak RSS come
from ``os.wait4`` (the kernel's rusage of that child alone).
"""

from __future__ import annotations

import contextlib
import os
import resource
import selectors
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class PeerSpec:
    """How to start one peer against a BMC, and what it prints before the console's bytes."""

    name: str
    argv: list[str]
    env: dict[str, str]
    banner: bytes  # printed once on stdout when SOL is up (ipmiconsole prints none there)
    escape: bytes  # typed to leave the session cleanly (deactivating the payload)


def which(binary: str) -> str | None:
    return shutil.which(binary) or shutil.which(binary, path="/usr/sbin:/sbin:/usr/bin")


def tool_version(argv: list[str]) -> str:
    try:
        res = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "not installed"
    return (res.stdout + res.stderr).strip().splitlines()[0] if res.stdout + res.stderr else "?"


def ipmitool_spec(host: str, port: int, password: str) -> PeerSpec | None:
    path = which("ipmitool")
    if path is None:
        return None
    argv = [path, "-I", "lanplus", "-H", host, "-p", str(port), "-U", "admin", "-E", "-C", "17"]
    return PeerSpec(
        "ipmitool",
        [*argv, "sol", "activate"],
        dict(os.environ, IPMI_PASSWORD=password),
        b"[SOL Session operational.  Use ~? for help]\n",
        b"\r~.",
    )


def ipmiconsole_spec(host: str, password: str, workdir: Path) -> PeerSpec | None:
    """ipmiconsole takes the password from a 0600 config file (never argv); port 623 only."""
    path = which("ipmiconsole")
    if path is None:
        return None
    conf = workdir / "freeipmi.conf"
    fd = os.open(conf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(f"username admin\npassword {password}\n")
    argv = [path, "-h", host, "--config-file", str(conf), "-I", "17"]
    return PeerSpec("ipmiconsole", argv, dict(os.environ), b"", b"\r&.")


@dataclass
class PeerRun:
    """One running peer: its process, its terminal, and what it has printed."""

    spec: PeerSpec
    proc: subprocess.Popen[bytes]
    master: int
    stderr_path: Path
    out: bytearray = field(default_factory=bytearray)
    connected_at: float = 0.0
    first: float = 0.0
    last: float = 0.0
    cpu_s: float = 0.0
    maxrss_kib: int = 0
    status: int | None = None
    eof: bool = False

    @property
    def payload(self) -> bytes:
        """Console bytes: stdout without the banner line (empty until the banner was seen)."""
        i = self.out.find(self.spec.banner)
        if i < 0:
            return b""
        # The banner goes through stdio (buffered on a pipe), the console bytes may not: strip
        # exactly one banner wherever it landed.
        return bytes(self.out[:i] + self.out[i + len(self.spec.banner) :])

    def stderr(self) -> str:
        try:
            return self.stderr_path.read_text(errors="replace")[-400:]
        except OSError:
            return ""


def vm_kib(pid: int, field: str = "VmRSS") -> int:
    """A VmRSS/VmHWM figure (KiB) of a live process from /proc, 0 if it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def start_peer(spec: PeerSpec, workdir: Path) -> PeerRun:
    master, slave = os.openpty()
    with tempfile.NamedTemporaryFile(
        dir=workdir, prefix=spec.name, suffix=".err", delete=False
    ) as err:
        proc = subprocess.Popen(
            spec.argv,
            stdin=slave,
            stdout=subprocess.PIPE,
            stderr=err,
            env=spec.env,
            start_new_session=True,
        )
    os.close(slave)
    assert proc.stdout is not None
    os.set_blocking(proc.stdout.fileno(), False)
    return PeerRun(spec, proc, master, Path(err.name))


def pump_until(runs: list[PeerRun], done: Callable[[PeerRun], bool], timeout: float) -> bool:
    """Read every peer's stdout (timestamping the payload) until ``done`` holds for all."""
    sel = selectors.DefaultSelector()
    for run in runs:
        assert run.proc.stdout is not None
        sel.register(run.proc.stdout, selectors.EVENT_READ, run)
    deadline = time.monotonic() + timeout
    waiting = [r for r in runs if not done(r)]
    try:
        while waiting:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            for key, _ev in sel.select(min(left, 0.5)):
                run = key.data
                try:
                    chunk = os.read(key.fd, 65536)
                except BlockingIOError:
                    continue
                now = time.monotonic()
                if not chunk:
                    sel.unregister(key.fileobj)
                    run.eof = True
                    continue
                had = len(run.payload)
                run.out += chunk
                if not run.connected_at and run.spec.banner in run.out:
                    run.connected_at = now
                got = len(run.payload)
                if got > had:
                    if not had:
                        run.first = now
                    run.last = now
            waiting = [r for r in waiting if not done(r) and not r.eof]
        return all(done(r) for r in runs)
    finally:
        sel.close()


def finish(run: PeerRun, grace: float = 3.0) -> None:
    """Leave with the escape sequence (so the BMC frees SOL), else SIGTERM; reap with rusage.

    Peak RSS is VmHWM read while the process lives: ``ru_maxrss`` from ``wait4`` would also
    count the Python parent's memory the child had between fork and exec.
    """
    run.maxrss_kib = vm_kib(run.proc.pid, "VmHWM")
    with contextlib.suppress(OSError):
        os.write(run.master, run.spec.escape)
    deadline = time.monotonic() + grace
    status: int | None = None
    ru: resource.struct_rusage | None = None
    while time.monotonic() < deadline:
        pid, st, usage = os.wait4(run.proc.pid, os.WNOHANG)
        if pid:
            status, ru = st, usage
            break
        time.sleep(0.05)
    if ru is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(run.proc.pid, signal.SIGTERM)
        _pid, status, ru = os.wait4(run.proc.pid, 0)
    run.proc.returncode = status  # reaped here; keep Popen from waiting again
    run.status = status
    run.cpu_s = ru.ru_utime + ru.ru_stime
    os.close(run.master)
    if run.proc.stdout is not None:
        run.proc.stdout.close()
