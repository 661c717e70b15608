"""A lab of virtual Xen hosts, each behind its own virtual BMC on 127.0.0.1.

``Lab(dir).up(n)`` starts ``n`` lab-host processes (``python -m solcap.sim.labhost``), a fresh
random IPMI password in a 0600 file, and a ready inventory (``inventory.yaml``) whose hosts are
the BMCs. ``down()`` stops exactly the processes this lab started: each PID is checked against
its command line before it is signalled, so a recycled PID is never hit.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from solcap.util.lazy import lazy_module

if TYPE_CHECKING:
    import paramiko
else:
    paramiko = lazy_module("paramiko")  # only `lab up` makes a host key

from solcap.config.limits import check_depth, read_text
from solcap.errors import ConfigError, TargetError, UsageError

LABHOST_MODULE = "solcap.sim.labhost"


@dataclass(frozen=True)
class LabHost:
    name: str
    address: str
    port: int
    pid: int
    ssh_port: int | None = None

    @property
    def url(self) -> str:
        return f"ipmi://admin@{self.address}:{self.port}"

    @property
    def ssh_url(self) -> str | None:
        return f"ssh://root@{self.address}:{self.ssh_port}" if self.ssh_port else None


class Lab:
    """The lab that lives in ``directory`` (state, password, inventory, per-host logs)."""

    def __init__(self, directory: Path | str) -> None:
        self.directory = Path(directory)

    @property
    def password_file(self) -> Path:
        return self.directory / "password"

    @property
    def inventory(self) -> Path:
        return self.directory / "inventory.yaml"

    @property
    def ssh_key(self) -> Path:
        """Private key that logs in to every lab host's Dom0 (0600)."""
        return self.directory / "ssh_key"

    @property
    def known_hosts(self) -> Path:
        """The lab hosts' SSH host keys, so clients verify them like any other host."""
        return self.directory / "known_hosts"

    def host_state(self, name: str) -> dict[str, Any]:
        """What lab host ``name`` reports about itself (state, dumps it sent, …)."""
        path = self.directory / "state" / f"{name}.json"
        try:
            value: dict[str, Any] = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            return {}
        return value

    def hosts(self) -> list[LabHost]:
        """The hosts ``lab.json`` lists; none when there is no lab here.

        A damaged ``lab.json`` (cut short, edited, not this lab's) is one ConfigError naming
        the file and the field: ``down`` must not guess which processes to signal.
        """
        path = self.directory / "lab.json"
        if not path.exists() and not path.is_symlink():
            return []
        text = read_text(path, "meta")
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, RecursionError) as exc:
            line = getattr(exc, "lineno", None)
            raise ConfigError(str(path), "not valid JSON (a damaged lab file)", line=line) from None
        check_depth(data, str(path))
        entries = data.get("hosts") if isinstance(data, dict) else None
        if not isinstance(entries, list):
            raise ConfigError(str(path), "expected a list of lab hosts", field="hosts")
        return [_lab_host(entry, str(path), i) for i, entry in enumerate(entries)]

    def up(
        self,
        count: int,
        *,
        domus: int = 2,
        fast: bool = True,
        baud: int = 38400,
        faults: dict[str, list[str]] | None = None,
        extra_args: dict[str, list[str]] | None = None,
        timeout: float = 120.0,
        ready_states: tuple[str, ...] = ("running", "panicked", "hung"),
    ) -> list[LabHost]:
        """Start ``count`` hosts and wait until each is in one of ``ready_states``.

        By default that is "booted to its Dom0 prompt" (or stuck the way a fault makes it);
        hosts started with ``--off`` want ``ready_states=("off",)``.
        """
        if count < 1:
            raise UsageError(f"lab up: --hosts must be at least 1, not {count}")
        if self.hosts():
            raise UsageError(f"{self.directory}: a lab is already up here; run 'lab down' first")
        for sub in ("", "state", "logs"):
            (self.directory / sub).mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self.password_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            # IPMI v2.0 passwords are at most 20 bytes (ipmitool refuses longer ones).
            handle.write(secrets.token_urlsafe(12) + "\n")
        key = paramiko.ECDSAKey.generate()
        key.write_private_key_file(str(self.ssh_key))
        os.chmod(self.ssh_key, 0o600)
        public = self.directory / "ssh_key.pub"
        public.write_text(f"{key.get_name()} {key.get_base64()} solcap-lab\n")
        names = [f"node{i:03d}" for i in range(1, count + 1)]
        procs: dict[str, subprocess.Popen[bytes]] = {}
        try:
            for index, name in enumerate(names):
                argv = [
                    sys.executable,
                    "-m",
                    LABHOST_MODULE,
                    "--name",
                    name,
                    "--state",
                    str(self.directory / "state"),
                    "--password-file",
                    str(self.password_file),
                    "--domus",
                    str(domus),
                    "--seed",
                    str(index),
                    "--baud",
                    str(baud),
                    "--ssh-authorized-key",
                    str(public),
                ]
                argv += ["--fast"] if fast else []
                for fault in (faults or {}).get(name, []):
                    argv += ["--fault", fault]
                argv += (extra_args or {}).get(name, [])
                log = open(self.directory / "logs" / f"{name}.log", "wb")  # noqa: SIM115
                with log:
                    procs[name] = subprocess.Popen(
                        argv,
                        stdin=subprocess.DEVNULL,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,  # outlives `solcap lab up`
                    )
            hosts = self._wait_ready(procs, timeout, ready_states)
        except BaseException:
            for proc in procs.values():
                with contextlib.suppress(ProcessLookupError):
                    proc.terminate()
            raise
        self._write_lab(hosts)
        lines = [self.host_state(h.name).get("known_hosts_line") or "" for h in hosts]
        self.known_hosts.write_text("".join(lines))
        self._write_inventory(hosts)
        return hosts

    def _wait_ready(
        self,
        procs: dict[str, subprocess.Popen[bytes]],
        timeout: float,
        ready_states: tuple[str, ...],
    ) -> list[LabHost]:
        deadline = time.monotonic() + timeout
        ready: dict[str, LabHost] = {}
        while len(ready) < len(procs):
            for name, proc in procs.items():
                if name in ready:
                    continue
                if proc.poll() is not None:
                    log = (self.directory / "logs" / f"{name}.log").read_text(errors="replace")
                    raise TargetError(name, f"lab host exited ({proc.returncode}): {log[-300:]}")
                state = self.host_state(name)
                if state.get("state") in ready_states:
                    ready[name] = LabHost(
                        name, state["address"], state["port"], proc.pid, state.get("ssh_port")
                    )
            if time.monotonic() > deadline:
                missing = sorted(set(procs) - set(ready))
                raise TargetError(missing[0], f"lab hosts not booted after {timeout:g}s: {missing}")
            time.sleep(0.05)
        return [ready[name] for name in procs]

    def _write_lab(self, hosts: list[LabHost]) -> None:
        value = {"hosts": [asdict(h) for h in hosts], "password_file": str(self.password_file)}
        (self.directory / "lab.json").write_text(json.dumps(value, indent=2) + "\n")

    def _write_inventory(self, hosts: list[LabHost]) -> None:
        lines = [
            "# Written by `solcap lab up`: virtual Xen hosts behind virtual BMCs on 127.0.0.1.",
            "defaults:",
            f"  password: file:{self.password_file.resolve()}",
            "  cipher: 17",
            f"  ssh_key: {self.ssh_key.resolve()}",
            f"  known_hosts: {self.known_hosts.resolve()}",
            "hosts:",
        ]
        for host in hosts:
            lines += [f"  {host.name}:", f"    bmc: {host.url}"]
            if host.ssh_url:
                lines.append(f"    ssh: {host.ssh_url}")
            lines.append("    labels: [lab]")
        self.inventory.write_text("\n".join(lines) + "\n")

    def down(self, timeout: float = 10.0) -> list[str]:
        """Stop this lab's processes (and only those); returns the names stopped."""
        stopped = []
        hosts = self.hosts()
        for host in hosts:
            if _is_our_process(host.pid, self.directory):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(host.pid, signal.SIGTERM)
                stopped.append(host.name)
        deadline = time.monotonic() + timeout
        for host in hosts:
            while _is_our_process(host.pid, self.directory) and time.monotonic() < deadline:
                time.sleep(0.05)
            if _is_our_process(host.pid, self.directory):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(host.pid, signal.SIGKILL)
        with contextlib.suppress(FileNotFoundError):
            (self.directory / "lab.json").unlink()
        return stopped

    def __enter__(self) -> Lab:
        return self

    def __exit__(self, *exc: object) -> None:
        self.down()


_HOST_FIELDS = {"name": str, "address": str, "port": int, "pid": int}


def _lab_host(entry: object, path: str, index: int) -> LabHost:
    """One ``hosts[i]`` entry of lab.json, checked field by field."""
    where = f"hosts[{index}]"
    if not isinstance(entry, dict):
        raise ConfigError(path, "expected an object", field=where)
    for name, kind in _HOST_FIELDS.items():
        value = entry.get(name)
        if not isinstance(value, kind) or isinstance(value, bool):
            raise ConfigError(path, f"missing or not a {kind.__name__}", field=f"{where}.{name}")
    ssh_port = entry.get("ssh_port")
    if ssh_port is not None and (not isinstance(ssh_port, int) or isinstance(ssh_port, bool)):
        raise ConfigError(path, "not a whole number", field=f"{where}.ssh_port")
    if entry["pid"] <= 1:
        raise ConfigError(path, f"{entry['pid']} is not a lab host's process", field=f"{where}.pid")
    return LabHost(entry["name"], entry["address"], entry["port"], entry["pid"], ssh_port)


def _is_our_process(pid: int, directory: Path) -> bool:
    """True if ``pid`` is alive and is a lab host of ``directory`` (not a recycled PID)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        status = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    if status == "Z":
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        return False
    state_dir = str(directory / "state").encode()
    return LABHOST_MODULE.encode() in cmdline and state_dir in cmdline
