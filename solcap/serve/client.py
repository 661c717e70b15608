"""Clients of a running server: status, attach, and a console transport through it.

:class:`ServedTransport` is an ordinary :class:`~solcap.transports.base.Transport` whose bytes
come from the server's ``D`` frames and whose writes go out as ``I`` frames, so ``harvest``,
``run``, ``capture`` and ``grub --oneshot`` work unchanged on a served host: they record into
their own recording while the server's continuous log gets the same bytes, and no second SOL
session is ever opened (the BMC would refuse it, or worse, hand it over).

:func:`find_serving` is *the* discovery: which running server holds a console, found from an
inventory host (the server must serve the same inventory, as ``solcap status`` matches) or
from a console target (a served host's BMC or serial URL). :func:`solcap.connect.open_console`
asks it first and opens the console itself only when it answers None, so without a server
every command behaves as it always did. Inside the server process it always answers None
(the server is the one that opens consoles). :func:`open_served` attaches to what it found.
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from solcap.errors import ConnectError, ConsoleBusy, ConsoleClosed, UsageError
from solcap.serve import paths, protocol
from solcap.transports.base import Transport

#: Set in the server process: its own console opening must never loop back to itself.
_IN_SERVER = threading.Event()


def mark_server_process() -> None:
    _IN_SERVER.set()


def unmark_server_process() -> None:
    """The server has stopped: this process may be a client again."""
    _IN_SERVER.clear()


def _connect(path: Path, timeout: float = 10.0) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(str(path))
    except OSError as exc:
        sock.close()
        raise ConnectError(str(path), f"cannot reach the console server: {exc.strerror}") from exc
    return sock


def request_status(path: Path, timeout: float = 10.0) -> dict[str, Any]:
    """The server's status reply (``{"server": …, "hosts": […]}``)."""
    with _connect(path, timeout) as sock:
        sock.sendall(protocol.json_frame({"op": "status"}))
        item = protocol.read_frame(sock)
    if item is None or item[0] != protocol.JSON:
        raise ConnectError(str(path), "the console server sent no status")
    reply = protocol.decode_json(item[1])
    if not reply.get("ok"):
        raise ConnectError(str(path), str(reply.get("error")))
    return reply


class Attachment:
    """One attach to a host through a server: reply, screen, then frames."""

    def __init__(self, path: Path, host: str, *, mode: str = "auto", who: str = "") -> None:
        self.host = host
        self.path = path
        self._sock = _connect(path)
        try:
            self._sock.sendall(
                protocol.json_frame(
                    {"op": "attach", "host": host, "mode": mode, "who": who or _who()}
                )
            )
            item = protocol.read_frame(self._sock)
            if item is None or item[0] != protocol.JSON:
                raise ConnectError(host, "the console server closed the connection")
            reply = protocol.decode_json(item[1])
            if not reply.get("ok"):
                error = str(reply.get("error"))
                if reply.get("kind") == "busy":
                    raise ConsoleBusy(host, error.removeprefix(f"{host}: "))
                if reply.get("kind") == "usage":
                    raise UsageError(error)
                raise ConnectError(host, error)
            screen = protocol.read_frame(self._sock)
            if screen is None or screen[0] != protocol.SCREEN:
                raise ConnectError(host, "the console server sent no screen")
        except BaseException:
            self._sock.close()
            raise
        self._sock.settimeout(None)
        self.reply = reply
        self.role: str = str(reply["role"])
        self.offset: int = int(reply["offset"])
        self.notice: str | None = reply.get("notice")
        self.screen: bytes = screen[1]
        self._send_lock = threading.Lock()

    def fileno(self) -> int:
        return self._sock.fileno()

    def read_frame(self) -> tuple[bytes, bytes] | None:
        return protocol.read_frame(self._sock)

    def frames(self) -> Iterator[tuple[bytes, bytes]]:
        while True:
            item = self.read_frame()
            if item is None:
                return
            yield item

    def send(self, data: bytes) -> None:
        with self._send_lock:
            self._sock.sendall(protocol.frame(protocol.INPUT, data))

    def send_break(self) -> None:
        with self._send_lock:
            self._sock.sendall(protocol.json_frame({"op": "break"}))

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()

    def __enter__(self) -> Attachment:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _who() -> str:
    import pwd

    try:
        user = pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        user = str(os.geteuid())
    return f"{user} pid {os.getpid()}"


class ServedTransport(Transport):
    """A console reached through the server holding it (see the module docstring)."""

    interruptible = True

    def __init__(
        self,
        attachment: Attachment,
        *,
        on_notice: Callable[[dict[str, Any]], None] | None = None,
        quiet_spy: bool = False,
    ) -> None:
        """``on_notice`` sees the server's notices (forced, state, read-only); with
        ``quiet_spy`` a spy's writes are sent for the server to refuse (and tell) instead of
        raising, as an interactive spy types keys that go nowhere."""
        self.attachment = attachment
        #: Called (on the reader's thread) with each notice the server pushes.
        self.on_notice = on_notice
        self._quiet_spy = quiet_spy
        self.name = f"serve:{attachment.host}"
        self.role = attachment.role
        #: The server's console state (``up``, ``connecting``, ``down``, ``busy``, ``stopped``).
        self.state: str = str(attachment.reply.get("state", "up"))
        self.detail: str | None = attachment.reply.get("detail")
        self.forced_by: str | None = None
        self.notices: list[dict[str, Any]] = []
        self._buf = bytearray()
        self._eof: str | None = None
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        self._closed = False

    def read(self, max_bytes: int, timeout: float) -> bytes:
        if not self._buf:
            if self._eof is not None:
                raise ConsoleClosed(self.attachment.host, self._eof)
            sock = self.attachment.fileno()
            ready, _, _ = select.select([sock, self._wake_r], [], [], timeout)
            if self._wake_r in ready:
                with contextlib.suppress(BlockingIOError):
                    os.read(self._wake_r, 64)
                return b""
            if not ready:
                return b""
            self._pump()
        out = bytes(self._buf[:max_bytes])
        del self._buf[:max_bytes]
        return out

    def _pump(self) -> None:
        try:
            item = self.attachment.read_frame()
        except (OSError, protocol.ProtocolError) as exc:
            item, self._eof = None, f"the console server connection failed: {exc}"
        if item is None:
            self._eof = self._eof or "the console server closed the connection"
            if not self._buf:
                raise ConsoleClosed(self.attachment.host, self._eof)
            return
        kind, payload = item
        if kind == protocol.DATA:
            self._buf += payload
        elif kind == protocol.JSON:
            notice = protocol.decode_json(payload)
            self.notices.append(notice)
            if self.on_notice is not None:
                self.on_notice(notice)
            if notice.get("event") == "forced":
                self.role = "spy"
                self.forced_by = str(notice.get("by") or "another client")
            if notice.get("event") == "state":
                self.state = str(notice.get("state"))
                self.detail = notice.get("detail")
                if self.state == "stopped":
                    self._eof = "the console server stopped"

    def wait_up(self, timeout: float) -> None:
        """Return once the server's console is up; ConnectError/ConsoleBusy if it is down or
        busy, or still connecting after ``timeout`` seconds (output meanwhile is kept)."""
        host = self.attachment.host
        deadline = time.monotonic() + timeout
        while self.state == "connecting":
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ConnectError(
                    host, f"solcap serve is still connecting to the console after {timeout:g}s"
                )
            ready, _, _ = select.select([self.attachment.fileno()], [], [], remaining)
            if ready:
                self._pump()
        if self.state == "up":
            return
        why = f"the console held by solcap serve is {self.state}" + (
            f": {self.detail}" if self.detail else ""
        )
        if self.state == "busy":
            raise ConsoleBusy(host, why)
        raise ConnectError(host, why)

    def write(self, data: bytes) -> None:
        if self.role != "writer" and not self._quiet_spy:
            why = (
                f"the write side was taken by {self.forced_by} (--force)"
                if self.forced_by
                else "read-only through the server (a spy)"
            )
            raise ConsoleClosed(self.attachment.host, why)
        try:
            self.attachment.send(data)
        except OSError as exc:
            raise ConsoleClosed(self.attachment.host, f"console server: {exc}") from exc

    def send_break(self) -> None:
        self.attachment.send_break()

    def interrupt(self) -> None:
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"\0")

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.attachment.close()
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)


def inventory_of(origin: str) -> str | None:
    """The inventory file of an inventory host's ``origin`` (``file:line``)."""
    path = origin.rsplit(":", 1)[0] if ":" in origin else origin
    return path if path and os.path.exists(path) else None


@dataclass(frozen=True)
class ServedHost:
    """A console some running server holds: the server's announcement, the host's name there."""

    server: paths.Announcement
    host: str

    @property
    def socket(self) -> Path:
        return self.server.socket


def _target_key(target: str) -> tuple[str, ...]:
    """What makes two console targets the same console: scheme, user, address and port of a
    URL (not its options, e.g. ``?cipher=17``); the real path of a device."""
    try:  # a malformed target (NUL byte, unclosed "[") is no served console; the opener refuses it
        if "://" not in target:
            return ("path", os.path.realpath(target))
        parts = urllib.parse.urlsplit(target)
    except ValueError:
        return ("unusable", target)
    try:
        port = str(parts.port or "")
    except ValueError:
        port = ""
    return (
        parts.scheme.lower(),
        parts.username or "",
        (parts.hostname or "").lower(),
        port or ("623" if parts.scheme.lower() == "ipmi" else ""),
        parts.path.rstrip("/"),
    )


def find_serving(
    host: str | None = None,
    *,
    inventory: str | None = None,
    target: str | None = None,
    directory: Path | None = None,
) -> ServedHost | None:
    """The running server that holds a console, or None (then open it yourself).

    ``host`` with ``inventory``: a server of that same inventory (its real path) that holds
    ``host`` — with ``--shard i/N`` servers, the owner of the host's shard, found from the
    shard map (:mod:`solcap.serve.shards`); when that owner does not run here but other
    shards do, ConnectError names the shard instead of letting the command open the console
    behind its owner's back. ``target``: a server one of whose hosts has that console (BMC
    URL, serial device), matched by address, not spelling. Never in the server process itself.
    """
    if _IN_SERVER.is_set():
        return None
    if host is not None and inventory is not None:
        from solcap.serve.shards import shard_map

        found = shard_map(inventory, directory).holder(host)
        return ServedHost(found, host) if found is not None else None
    if target is not None:
        wanted = _target_key(target)
        for announced in paths.announcements(directory):
            for name, url in announced.targets:
                if _target_key(url) == wanted:
                    return ServedHost(announced, name)
    return None


def open_served(
    found: ServedHost,
    *,
    mode: str = "write",
    wait: float | None = 10.0,
    on_notice: Callable[[dict[str, Any]], None] | None = None,
    quiet_spy: bool = False,
    who: str = "",
) -> ServedTransport:
    """Attach to ``found`` as a transport. With ``wait`` (seconds), a console the server is
    still connecting is waited for, and one that is down or busy is an error at once (the
    server already retries it; opening it ourselves would collide with the server)."""
    attachment = Attachment(found.socket, found.host, mode=mode, who=who)
    transport = ServedTransport(attachment, on_notice=on_notice, quiet_spy=quiet_spy)
    if wait is not None:
        try:
            transport.wait_up(wait)
        except BaseException:
            transport.close()
            raise
    return transport
