"""Where servers put their control sockets, and how a client finds the one holding a host.

Each server owns ``<dir>/<id>.sock`` and announces itself in ``<dir>/<id>.json`` (pid,
inventory, shard, the hosts it holds). ``<dir>`` is ``--control-dir``, else
``$SOLCAP_SERVE_DIR``, else ``$XDG_RUNTIME_DIR/solcap-serve``, else ``/tmp/solcap-serve-<uid>``;
it is created 0700 (0750 with a group) and refused if another user owns it or can write to it,
so nobody can plant a socket a client would then trust with keystrokes.

A client looking for host H reads the announcements of live servers (the pid is checked) and
takes the one that holds H — with ``--shard i/N`` servers that is the owner of H's shard
(:mod:`solcap.serve.shards`), as conserver redirects a client to a console's master. No
server: None, and the command opens the console itself, exactly as without ``serve``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from solcap.errors import UsageError

ENV_DIR = "SOLCAP_SERVE_DIR"


def default_dir() -> Path:
    given = os.environ.get(ENV_DIR)
    if given:
        return Path(given)
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and os.path.isdir(runtime):
        return Path(runtime) / "solcap-serve"
    return Path(f"/tmp/solcap-serve-{os.geteuid()}")


def check_private_dir(path: Path, *, create: bool, group: int | None = None) -> bool:
    """Make sure ``path`` is ours and nobody else can write to it; False if it is absent."""
    if create:
        with contextlib.suppress(FileExistsError):
            os.mkdir(path, 0o700)
    try:
        info = os.stat(path, follow_symlinks=False)
    except FileNotFoundError:
        return False
    if not stat.S_ISDIR(info.st_mode):
        raise UsageError(f"{path}: control directory is not a directory")
    if info.st_uid != os.geteuid():
        raise UsageError(f"{path}: control directory is owned by uid {info.st_uid}, not us")
    if create:
        mode = 0o750 if group is not None else 0o700
        if group is not None:
            os.chown(path, -1, group)
        os.chmod(path, mode)
    elif info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise UsageError(f"{path}: control directory is writable by other users; refusing it")
    return True


def server_id(inventory: str, shard: str | None) -> str:
    """A stable name for one server: the inventory's real path (and shard) hashed."""
    digest = hashlib.sha256(os.path.realpath(inventory).encode()).hexdigest()[:12]
    return digest if shard is None else f"{digest}-{shard.replace('/', 'of')}"


@dataclass(frozen=True)
class Announcement:
    """What one running server says about itself in ``<id>.json``."""

    socket: Path
    pid: int
    inventory: str
    shard: str | None
    hosts: tuple[str, ...]
    #: Each host's console target (``ipmi://…``, ``/dev/…``), so a command given a target
    #: rather than an inventory host still finds the server holding it.
    targets: tuple[tuple[str, str], ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "socket": str(self.socket),
            "pid": self.pid,
            "inventory": self.inventory,
            "shard": self.shard,
            "hosts": list(self.hosts),
            "targets": dict(self.targets),
        }


def write_announcement(directory: Path, ident: str, value: Announcement) -> Path:
    """Atomically (temp + rename) write ``<id>.json``, 0600."""
    path = directory / f"{ident}.json"
    tmp = directory / f".{ident}.json.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(value.to_json(), handle)
    os.replace(tmp, path)
    return path


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def announcements(directory: Path | None = None) -> list[Announcement]:
    """Live servers in ``directory`` (default: :func:`default_dir`); stale files are skipped."""
    where = directory if directory is not None else default_dir()
    try:
        if not check_private_dir(where, create=False):
            return []
    except UsageError:
        return []  # not ours: never trust a socket found there
    found = []
    for path in sorted(where.glob("*.json")):
        try:
            data = json.loads(path.read_text())
            item = Announcement(
                socket=Path(data["socket"]),
                pid=int(data["pid"]),
                inventory=str(data["inventory"]),
                shard=data.get("shard"),
                hosts=tuple(str(h) for h in data["hosts"]),
                targets=tuple((str(k), str(v)) for k, v in data.get("targets", {}).items()),
            )
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if _alive(item.pid) and item.socket.exists():
            found.append(item)
    return found
