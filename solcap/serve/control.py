"""The control socket: a Unix socket only its owner (and an optional group) can use.

The socket is 0600 in a 0700 directory (0660/0750 with ``--group``): file modes are the first
gate. The second is the peer's credentials (``SO_PEERCRED``), checked on every connection:
our own uid and root may do anything; a host whose inventory entry says ``access:``
(:mod:`solcap.config.access`) lets its ``write`` users/groups attach read-write and its ``read``
ones only watch, and nobody else; any other host lets members of ``--group`` attach
read-write and members of ``--spy-group`` only watch (their attach is always a spy, their
input is refused). Every attach, force and write is an event in the host's log with the
peer's uid.

One thread per connection reads frames; one more sends the client's queue, so a slow
reader never blocks the console (it is dropped when it falls :data:`CLIENT_QUEUE_MAX` behind).
"""

from __future__ import annotations

import contextlib
import grp
import logging
import os
import socket
import struct
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from solcap.config.access import Right, peer_groups
from solcap.errors import ConsoleBusy, SolcapError
from solcap.serve import protocol
from solcap.serve.holder import Client, ConsoleHolder

_log = logging.getLogger("solcap.serve")
_CRED = struct.Struct("3i")


class Owner(Protocol):
    """What the control socket needs from the server."""

    def holder(self, name: str) -> ConsoleHolder | None: ...

    def hand_over(self, name: str, conn: socket.socket, request: dict[str, Any]) -> bool:
        """Pass ``conn`` to the worker process that holds ``name``; False when this process
        holds it (or nobody does) and answers itself."""
        ...

    def status_json(self) -> dict[str, Any]: ...

    def grants(self, uid: int, groups: frozenset[int]) -> bool:
        """Whether some held host's ``access:`` lets this peer in at all."""
        ...


def peer_credentials(sock: socket.socket) -> tuple[int, int, int]:
    """(pid, uid, gid) of the process at the other end of a Unix socket."""
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _CRED.size)
    pid, uid, gid = _CRED.unpack(raw)
    return pid, uid, gid


def group_id(name: str) -> int:
    """A group name or number → gid (UsageError-free: callers check first)."""
    return int(name) if name.isdigit() else grp.getgrnam(name).gr_gid


class ControlServer:
    """Listens on ``path`` and serves :mod:`solcap.serve.protocol` for ``owner``."""

    def __init__(
        self,
        path: Path,
        owner: Owner,
        *,
        group: int | None = None,
        spy_group: int | None = None,
        handoff: bool = False,
    ) -> None:
        self.path = path
        self.owner = owner
        self.group = group
        self.spy_group = spy_group
        #: A worker's socket (:mod:`solcap.serve.workers`): only the parent connects, and
        #: each message is a client connection passed with its first request.
        self.handoff = handoff
        with contextlib.suppress(FileNotFoundError):
            path.unlink()  # a stale socket of ours (the directory is ours and private)
        kind = socket.SOCK_SEQPACKET if handoff else socket.SOCK_STREAM
        self._sock = socket.socket(socket.AF_UNIX, kind)
        shared = group is not None and not handoff
        old = os.umask(0o117 if shared else 0o177)
        try:
            self._sock.bind(str(path))
        finally:
            os.umask(old)
        if shared:
            assert group is not None
            os.chown(path, -1, group)
            os.chmod(path, 0o660)
        else:
            os.chmod(path, 0o600)
        self._sock.listen(128)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, name="solcap-serve-control")
        self._conns: set[socket.socket] = set()
        self._lock = threading.Lock()

    def start(self) -> ControlServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()
        self._thread.join(5)
        with self._lock:
            conns = list(self._conns)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            request: dict[str, Any] | None = None
            if self.handoff:
                passed = self._receive(conn)
                if passed is None:
                    continue
                conn, request = passed
            threading.Thread(
                target=self._serve, args=(conn, request), name="solcap-serve-conn", daemon=True
            ).start()

    def _receive(self, port: socket.socket) -> tuple[socket.socket, dict[str, Any]] | None:
        """A connection the parent passed (:func:`solcap.serve.workers.hand_over`)."""
        from solcap.serve.workers import receive

        with port:
            try:
                if peer_credentials(port)[1] != os.geteuid():  # only our own parent
                    return None
                port.settimeout(5.0)
                return receive(port)
            except OSError as exc:
                _log.debug("hand-over failed: %s", exc)
                return None

    def _access(self, conn: socket.socket) -> tuple[int, frozenset[int], Right]:
        """The peer's uid and groups (from ``SO_PEERCRED``) and its server-wide right:
        ``write`` for our own user, root and ``--group``, ``read`` for ``--spy-group``,
        ``none`` otherwise (a host's ``access:`` may still grant it that host)."""
        _pid, uid, gid = peer_credentials(conn)
        if uid in (os.geteuid(), 0):
            return uid, frozenset({gid}), "write"
        groups = peer_groups(uid, gid)
        if self.group is not None and self.group in groups:
            return uid, groups, "write"
        if self.spy_group is not None and self.spy_group in groups:
            return uid, groups, "read"
        return uid, groups, "none"

    def _host_right(
        self, holder: ConsoleHolder, uid: int, groups: frozenset[int], server: Right
    ) -> Right:
        """A host's ``access:`` decides for it (our own user and root always write)."""
        access = holder.host.access
        if access is None or uid in (os.geteuid(), 0):
            return server
        return access.right(uid, groups)

    def _serve(self, conn: socket.socket, request: dict[str, Any] | None = None) -> None:
        with self._lock:
            self._conns.add(conn)
        try:
            self._converse(conn, request)
        except (OSError, protocol.ProtocolError) as exc:
            _log.debug("control connection ended: %s", exc)
        finally:
            with self._lock:
                self._conns.discard(conn)
            with contextlib.suppress(OSError):
                conn.close()

    def _converse(self, conn: socket.socket, request: dict[str, Any] | None) -> None:
        uid, groups, server_right = self._access(conn)
        if request is None:
            first = protocol.read_frame(conn)
            if first is None:
                return
            kind, payload = first
            if kind != protocol.JSON:
                raise protocol.ProtocolError("the first frame must be a J request")
            request = protocol.decode_json(payload)
        op = request.get("op")
        if op == "status":
            if server_right == "none" and not self.owner.grants(uid, groups):
                conn.sendall(_refused(f"uid {uid} may not use this console server"))
                return
            conn.sendall(protocol.json_frame({"ok": True, **self.owner.status_json()}))
            return
        if op != "attach":
            conn.sendall(protocol.json_frame({"ok": False, "error": f"unknown op {op!r}"}))
            return
        name = str(request.get("host", ""))
        if self.owner.hand_over(name, conn, request):
            return  # the worker that holds the console talks to the client from now on
        holder = self.owner.holder(name)
        if holder is None:
            error = {"ok": False, "error": f"{name}: not held by this server", "kind": "usage"}
            conn.sendall(protocol.json_frame(error))
            return
        right = self._host_right(holder, uid, groups, server_right)
        if right == "none":
            conn.sendall(_refused(f"{name}: uid {uid} may not attach to this console"))
            return
        mode = "spy" if right == "read" else str(request.get("mode", "auto"))
        who = f"{request.get('who') or 'client'} (uid {uid})"
        try:
            client, offset, snapshot, notice = holder.attach(who, uid, mode)
        except ConsoleBusy as exc:
            conn.sendall(
                protocol.json_frame({"ok": False, "error": exc.one_line(), "kind": "busy"})
            )
            return
        except SolcapError as exc:
            conn.sendall(
                protocol.json_frame({"ok": False, "error": exc.one_line(), "kind": "usage"})
            )
            return
        try:
            now = holder.status()
            reply = {
                "ok": True,
                "role": client.role,
                "offset": offset,
                "notice": notice,
                "state": now.state,
                "detail": now.detail,
                "host": name,
            }
            conn.sendall(protocol.json_frame(reply) + protocol.frame(protocol.SCREEN, snapshot))
            sender = threading.Thread(
                target=_send_queue, args=(conn, client), name="solcap-serve-send", daemon=True
            )
            sender.start()
            self._read_input(conn, holder, client)
        finally:
            holder.detach(client)

    def _read_input(self, conn: socket.socket, holder: ConsoleHolder, client: Client) -> None:
        warned = False
        while True:
            item = protocol.read_frame(conn)
            if item is None or client.closed:
                return
            kind, payload = item
            if kind == protocol.INPUT:
                if not holder.write(client, payload) and not warned:
                    warned = True
                    why = "read-only" if client.role != "writer" else "console not up"
                    client.put(protocol.JSON, _text_notice(f"{why}: input not sent"))
                elif client.role == "writer":
                    warned = False
            elif kind == protocol.JSON:
                request = protocol.decode_json(payload)
                if request.get("op") == "break":
                    holder.send_break(client)


def _refused(text: str) -> bytes:
    return protocol.json_frame({"ok": False, "error": text, "kind": "access"})


def _text_notice(text: str) -> bytes:
    import json

    return json.dumps({"event": "notice", "text": text}).encode()


def _send_queue(conn: socket.socket, client: Client) -> None:
    """Send the client's frames until it is closed; a dropped client is told why."""
    send: Callable[[bytes], None] = conn.sendall
    try:
        while True:
            item = client.get(1.0)
            if item is None:
                if client.closed:
                    break
                continue
            kind, payload = item
            send(protocol.frame(kind, payload))
        if client.dropped:
            send(protocol.json_frame({"event": "dropped", "reason": "client too slow"}))
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            conn.shutdown(socket.SHUT_RDWR)
