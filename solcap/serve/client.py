"""Clients of a running server: status, attach, and a console transport through it.

:class:`ServedTransport` is an ordinary :class:`~solcap.transports.base.Transport` whose bytes
come from the server's ``D`` frames and whose writes go out as ``I`` frames, so ``harvest``,
``run``, ``capture`` and ``grub --oneshot`` work unchanged on a served host: they record into
their own recording while the server's continuous log gets the same bytes, and no second SOL
session is ever opened (the BMC would refuse it, or worse, hand it over).

:func:`served_transport` is the hook the console openers call first: it finds the server
holding the host (:func:`solcap.serve.paths.find_server`) and returns None when there is none,
so without a server every command behaves as it always did. Inside the server itself it
always returns None (the server is the one that opens consoles).
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from solcap.errors import ConnectError, ConsoleBusy, ConsoleClosed, UsageError
from solcap.serve import paths, protocol
from solcap.transports.base import Transport

#: Set in the server process: its own console opening must never loop back to itself.
_IN_SERVER = threading.Event()


def mark_server_process() -> None:
    _IN_SERVER.set()


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
        self._on_notice = on_notice
        self._quiet_spy = quiet_spy
        self.name = f"serve:{attachment.host}"
        self.role = attachment.role
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
            if self._on_notice is not None:
                self._on_notice(notice)
            if notice.get("event") == "forced":
                self.role = "spy"
            if notice.get("event") == "state" and notice.get("state") == "stopped":
                self._eof = "the console server stopped"

    def write(self, data: bytes) -> None:
        if self.role != "writer" and not self._quiet_spy:
            raise ConsoleClosed(self.attachment.host, "read-only through the server (a spy)")
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


def served_transport(
    name: str, *, origin: str = "", mode: str = "write", directory: Path | None = None
) -> ServedTransport | None:
    """A transport through the server holding ``name``; None without one (or in the server)."""
    if _IN_SERVER.is_set():
        return None
    found = paths.find_server(name, inventory=inventory_of(origin), directory=directory)
    if found is None:
        return None
    return ServedTransport(Attachment(found.socket, name, mode=mode))


def served_target(
    target: str, *, mode: str = "write", directory: Path | None = None
) -> ServedTransport | None:
    """Like :func:`served_transport`, for a console given as a target (``ipmi://…``)."""
    if _IN_SERVER.is_set():
        return None
    found = paths.find_target(target, directory=directory)
    if found is None:
        return None
    return ServedTransport(Attachment(found[0].socket, found[1], mode=mode))
