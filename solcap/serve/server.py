"""The server: an inventory's consoles held at once, a control socket, signals.

:class:`Server` holds one :class:`~solcap.serve.holder.ConsoleHolder` per inventory host (of
its shard), each recording into its own continuous log under ``root/<host>/``. Everything is
checked (inventory, root, control directory) before any console is opened: a bad inventory is
one line and exit 2 with nothing created.

Signals (:meth:`Server.run`, the foreground loop):

``SIGTERM``/``SIGINT``  close every console (SOL deactivated, session logged out) and every
                        recording (``meta.json`` finished), remove the socket; exit 143/130.
``SIGHUP``              re-read the inventory: new hosts are opened, removed ones closed, a
                        host whose entry changed is reopened, every other console is left
                        exactly as it is (same session, same recording). A bad inventory is
                        logged and the running set kept.
``SIGKILL``             nothing runs, but nothing written is lost: each chunk was written to
                        ``console.raw`` as it came; the next start records the gap.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import os
import random
import signal
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from solcap.capture.recording import check_root
from solcap.errors import UsageError
from solcap.inventory import Host, Shard, load_inventory, select_hosts
from solcap.orchestration.runbook import HostPlan
from solcap.orchestration.workers import fork_refusal
from solcap.serve import paths, protocol
from solcap.serve.control import ControlServer
from solcap.serve.holder import Backoff, ConsoleHolder, Opener, Trigger
from solcap.serve.metrics import MetricsServer
from solcap.serve.rotation import RotatingLog, RotationPolicy
from solcap.serve.triggers import TriggerRunner, plans_for
from solcap.serve.workers import WorkerPool, hand_over, worker_of, worker_socket
from solcap.transports.base import Transport
from solcap.util.sigwake import SignalWake

_log = logging.getLogger("solcap.serve")


def open_held_transport(host: Host, *, connect_timeout: float | None = None) -> Transport:
    """How the server opens a console: the library's inventory opener, stealing a busy SOL
    payload only when the host says ``steal: true`` (``vars: {steal: true}``).
    ``connect_timeout`` bounds one BMC login (a dark BMC costs that long per attempt)."""
    from solcap.connect import ConsoleSpec, open_recorded_transport

    spec = ConsoleSpec.from_host(host, connect_timeout=connect_timeout)
    if host.vars.get("steal") is True and spec.scheme == "ipmi":
        spec = dataclasses.replace(spec, steal=True)
    # One session, as before: the server holds and reopens its consoles itself.
    transport, _ = open_recorded_transport(spec, reconnect=False, through_server=False)
    return transport


@dataclasses.dataclass(frozen=True)
class ServeOptions:
    """Everything ``solcap serve`` was told, validated by the command."""

    inventory: str
    root: Path
    control_dir: Path | None = None
    shard: Shard | None = None
    group: int | None = None
    spy_group: int | None = None
    policy: RotationPolicy = dataclasses.field(default_factory=RotationPolicy)
    backoff: Backoff = dataclasses.field(default_factory=Backoff)
    #: Seconds one BMC login may take (None: the transport's default, 10 s).
    connect_timeout: float | None = None
    #: ``--metrics``: a loopback (address, port) for the Prometheus endpoint.
    metrics: tuple[str, int] | None = None
    #: ``--workers``: processes holding the consoles (1: this one; :mod:`.workers`).
    workers: int = 1
    #: Set in a worker process only: which share of the hosts it holds.
    worker: Shard | None = None


class Server:
    """Holds the consoles of ``options.inventory``; see the module docstring."""

    def __init__(self, options: ServeOptions, *, opener: Opener | None = None) -> None:
        self.options = options
        self._opener = opener or functools.partial(
            open_held_transport, connect_timeout=options.connect_timeout
        )
        self._holders: dict[str, ConsoleHolder] = {}
        self._hosts: dict[str, Host] = {}
        self._plans: dict[str, dict[str, HostPlan]] = {}
        self._lock = threading.Lock()
        self._started = time.time()
        self._control: ControlServer | None = None
        self._ident = paths.server_id(
            options.inventory, str(options.shard) if options.shard else None
        )
        self._dir = (options.control_dir or paths.default_dir()).absolute()
        self.socket_path = self._dir / f"{self._ident}.sock"
        self._announcement: Path | None = None
        self._rng = random.Random()
        self.metrics: MetricsServer | None = None
        self._pool: WorkerPool | None = None
        if options.worker is not None:  # a worker's private hand-over socket
            self.socket_path = worker_socket(self.socket_path, options.worker.index)

    # -- inventory

    def _load(self) -> dict[str, Host]:
        inventory = load_inventory(self.options.inventory)
        hosts = select_hosts(inventory.hosts, shard=self.options.shard)
        worker = self.options.worker
        if worker is not None:
            hosts = [h for h in hosts if worker_of(h.name, worker.count) == worker.index]
        held = {}
        for host in hosts:
            if host.console_url is None:
                if worker is not None or self.options.workers == 1:  # said once, by the owner
                    _log.warning("%s: no console in the inventory; not held", host.name)
                continue
            held[host.name] = host
        # Every trigger's runbook is loaded and planned now: an error is exit 2 at start
        # (a SIGHUP with one keeps the running set), never a failure at the first panic.
        self._plans = {name: plans_for(host) for name, host in held.items()}
        return held

    def _holder_for(self, host: Host) -> ConsoleHolder:
        log = RotatingLog(host.name, self.options.root, self.options.policy)
        runner = TriggerRunner(host, self._plans.get(host.name, {}), self.options.root)
        holder = ConsoleHolder(
            host,
            log,
            self._opener,
            backoff=self.options.backoff,
            triggers=[Trigger.of(spec) for spec in host.triggers],
            on_trigger=runner.fire,
            rng=random.Random(self._rng.random()),
        )
        runner.attach(holder)
        return holder

    # -- lifecycle

    def start(self) -> Server:
        """Check everything, then open the control socket and every console."""
        hosts = self._load()  # bad inventory: ConfigError before anything exists
        if self.options.worker is not None:
            return self._start_worker(hosts)
        longest = self.socket_path
        if self.options.workers > 1:
            longest = worker_socket(self.socket_path, self.options.workers - 1)
        length = len(os.fsencode(longest))
        if length > _SUN_PATH_MAX:  # bind() would fail after the root was made
            raise UsageError(
                f"--control-dir {self._dir}: the control socket's path would be {length} bytes;"
                f" a Unix socket's is at most {_SUN_PATH_MAX} (choose a shorter directory)"
            )
        if self.options.metrics is not None:  # a port in use: exit 2, still nothing made
            self.metrics = MetricsServer(self.options.metrics, self.status_json)
        check_root(self.options.root)
        paths.check_private_dir(self._dir, create=True, group=self.options.group)
        if self.socket_path.exists() and _socket_alive(self.socket_path):
            raise UsageError(f"{self.socket_path}: a server for this inventory already runs")
        if self.options.workers > 1 and (why := fork_refusal()) is not None:
            _log.warning("one process, no workers: %s", why)
        elif self.options.workers > 1:
            # Forked before this process has a thread or a socket of its own besides the
            # metrics listener (closed in each worker).
            self._pool = WorkerPool(self.options.workers, self.socket_path)
            self._pool.start(self._run_worker)
        self._control = ControlServer(
            self.socket_path, self, group=self.options.group, spy_group=self.options.spy_group
        ).start()
        with self._lock:
            for name, host in hosts.items():
                self._hosts[name] = host
                if self._pool is None:
                    self._holders[name] = self._holder_for(host).start()
        self._announce()
        if self.metrics is not None:
            self.metrics.start()
        _log.info("serving %d consoles; control socket %s", len(hosts), self.socket_path)
        return self

    def _start_worker(self, hosts: dict[str, Host]) -> Server:
        """A worker: its share of the consoles and a hand-over socket for the parent."""
        self._control = ControlServer(
            self.socket_path,
            self,
            group=self.options.group,
            spy_group=self.options.spy_group,
            handoff=True,
        ).start()
        with self._lock:
            for name, host in hosts.items():
                self._hosts[name] = host
                self._holders[name] = self._holder_for(host).start()
        _log.info("worker %s: holding %d consoles", self.options.worker, len(hosts))
        return self

    def _run_worker(self, index: int, ready: Callable[[], None]) -> int:
        """Worker ``index``'s life in the forked process: hold its share until SIGTERM."""
        if self.metrics is not None:  # the parent's listener, inherited: not ours to serve
            self.metrics.stop()
        assert self._pool is not None
        options = dataclasses.replace(
            self.options, metrics=None, workers=1, worker=self._pool.shard(index)
        )
        return Server(options, opener=self._opener).run(ready=ready)

    def _announce(self) -> None:
        with self._lock:
            names = tuple(self._hosts)
            targets = tuple(
                (name, url)
                for name in names
                for url in {self._hosts[name].console_url, self._hosts[name].bmc_url}
                if url
            )
        value = paths.Announcement(
            socket=self.socket_path,
            pid=os.getpid(),
            inventory=os.path.realpath(self.options.inventory),
            shard=str(self.options.shard) if self.options.shard else None,
            hosts=names,
            targets=targets,
        )
        self._announcement = paths.write_announcement(self._dir, self._ident, value)

    def reload(self) -> dict[str, list[str]]:
        """SIGHUP: re-read the inventory; returns what was added, removed, reopened."""
        try:
            hosts = self._load()
        except Exception as exc:
            _log.error("reload: keeping the running consoles: %s", exc)
            return {"added": [], "removed": [], "reopened": [], "error": [str(exc)]}
        if self._pool is not None:
            return self._reload_workers(hosts)
        stopping: list[ConsoleHolder] = []
        added, removed, reopened = [], [], []
        with self._lock:
            for name in list(self._holders):
                if name not in hosts:
                    stopping.append(self._holders.pop(name))
                    del self._hosts[name]
                    removed.append(name)
                elif hosts[name] != self._hosts[name]:
                    stopping.append(self._holders.pop(name))
                    reopened.append(name)
        _stop_all(stopping)
        with self._lock:
            for name, host in hosts.items():
                if name not in self._holders:
                    self._hosts[name] = host
                    self._holders[name] = self._holder_for(host).start()
                    if name not in reopened:
                        added.append(name)
        self._announce()
        _log.info("reload: added %s, removed %s, reopened %s", added, removed, reopened)
        return {"added": added, "removed": removed, "reopened": reopened}

    def _reload_workers(self, hosts: dict[str, Host]) -> dict[str, list[str]]:
        """SIGHUP with workers: each re-reads its share itself; this process only updates
        what it routes and announces."""
        assert self._pool is not None
        with self._lock:
            old = dict(self._hosts)
            self._hosts = dict(hosts)
        self._pool.signal(signal.SIGHUP)
        self._announce()
        added = [n for n in hosts if n not in old]
        removed = [n for n in old if n not in hosts]
        reopened = [n for n in hosts if n in old and hosts[n] != old[n]]
        return {"added": added, "removed": removed, "reopened": reopened}

    def stop(self) -> None:
        """Close every console and recording, then the control socket."""
        with self._lock:
            holders = list(self._holders.values())
            self._holders.clear()
        if self._announcement is not None:
            with contextlib.suppress(FileNotFoundError):
                self._announcement.unlink()
        _stop_all(holders)
        if self._pool is not None:
            self._pool.stop()
        if self._control is not None:
            self._control.stop()
        if self.metrics is not None:
            self.metrics.stop()

    def run(self, ready: Callable[[], None] | None = None) -> int:
        """Foreground loop until SIGTERM/SIGINT; SIGHUP reloads. Returns the exit status."""
        signals: tuple[int, ...] = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
        if self.options.workers > 1:
            signals += (signal.SIGCHLD,)  # a worker that dies
        with SignalWake(signals) as wake:
            try:
                self.start()
                if ready is not None:
                    ready()
                while True:
                    got = wake.wait()
                    for signum in (signal.SIGTERM, signal.SIGINT):
                        if signum in got:
                            _log.info("%s: closing every console", signal.Signals(signum).name)
                            return 128 + signum
                    if signal.SIGCHLD in got and self._pool is not None and self._pool.reap():
                        _log.error("a worker ended: stopping every console")
                        return 1
                    if signal.SIGHUP in got:
                        self.reload()
            finally:
                self.stop()

    # -- for the control socket

    def holder(self, name: str) -> ConsoleHolder | None:
        with self._lock:
            return self._holders.get(name)

    def hand_over(self, name: str, conn: socket.socket, request: dict[str, Any]) -> bool:
        with self._lock:
            if self._pool is None or name not in self._hosts:
                return False
            worker = self._pool.owner(name)
        try:
            hand_over(worker.socket, conn, request)
        except OSError as exc:
            error = f"{name}: its worker (pid {worker.pid}) is not answering: {exc}"
            with contextlib.suppress(OSError):
                conn.sendall(protocol.json_frame({"ok": False, "error": error, "kind": "usage"}))
        return True

    def grants(self, uid: int, groups: frozenset[int]) -> bool:
        with self._lock:
            hosts = list(self._hosts.values())
        return any(h.access is not None and h.access.right(uid, groups) != "none" for h in hosts)

    def status_json(self) -> dict[str, Any]:
        with self._lock:
            holders = list(self._holders.values())
            order = list(self._hosts)
        workers: list[dict[str, Any]] = []
        if self._pool is not None:
            hosts, workers = self._pool.status()
            rank = {name: i for i, name in enumerate(order)}
            hosts.sort(key=lambda h: rank.get(h.get("host", ""), len(rank)))
        else:
            hosts = [{**dataclasses.asdict(h.status()), "pid": os.getpid()} for h in holders]
        return {
            "server": {
                "pid": os.getpid(),
                "inventory": os.path.realpath(self.options.inventory),
                "shard": str(self.options.shard) if self.options.shard else None,
                "root": str(self.options.root.absolute()),
                "started": self._started,
                "socket": str(self.socket_path),
                "workers": workers,
            },
            "hosts": hosts,
        }


#: Linux's ``sun_path`` is 108 bytes with its terminating NUL.
_SUN_PATH_MAX = 107


def _stop_all(holders: list[ConsoleHolder]) -> None:
    """Stop holders in parallel: a thousand SOL logouts must not take a thousand seconds."""
    threads = [threading.Thread(target=h.stop, name=f"stop-{h.name}") for h in holders]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(15)


def _socket_alive(path: Path) -> bool:
    import socket

    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(1.0)
        try:
            probe.connect(str(path))
        except OSError:
            return False
    return True
