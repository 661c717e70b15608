"""The control-socket protocol: length-prefixed frames, JSON for control, raw bytes for data.

Every frame is ``TYPE (1 byte) | LENGTH (4 bytes, big-endian) | PAYLOAD``:

``J``  a JSON object (UTF-8): requests, replies, notices.
``D``  console output, exactly the bytes the console sent (server → client).
``S``  the current screen rendered as terminal output (server → client, once, on attach).
``I``  keyboard input for the console (client → server; only the writer's is sent on).

A client opens the socket and sends one ``J`` request:

* ``{"op": "status"}`` → ``{"ok": true, "server": {...}, "hosts": [...]}``, then the server
  closes the connection.
* ``{"op": "attach", "host": H, "mode": "auto"|"write"|"spy"|"force", "who": TEXT}`` →
  ``{"ok": true, "role": "writer"|"spy", "offset": N, "notice": TEXT|null}``, then one ``S``
  frame, then ``D`` frames for as long as the client stays; ``offset`` is the stream offset
  (bytes the server has received from H since it started holding it) of the first ``D`` byte,
  so two clients can line their streams up. ``auto`` takes the write side if it is free and
  spies otherwise; ``write`` fails if it is taken; ``force`` takes it and the previous writer
  gets ``{"event": "forced", "by": …}`` and becomes a spy.
* after attaching, ``J`` ``{"op": "break"}`` sends a serial BREAK (writer only).

Errors are ``{"ok": false, "error": TEXT, "kind": "usage"|"busy"|"down"|"access"}``. Notices
the server pushes later are ``J`` frames with an ``event`` key (``forced``, ``state``,
``dropped``). Bytes are never re-encoded: a ``D`` payload is a slice of ``console.raw``.
"""

from __future__ import annotations

import json
import socket
import struct
from typing import Any, Final

HEADER: Final = struct.Struct("!cI")
JSON: Final = b"J"
DATA: Final = b"D"
SCREEN: Final = b"S"
INPUT: Final = b"I"
KINDS: Final = frozenset({JSON, DATA, SCREEN, INPUT})
#: A frame larger than this is a protocol error (a confused or hostile peer), not data.
MAX_FRAME: Final = 16 * 1024 * 1024


class ProtocolError(Exception):
    """The peer sent something that is not a frame of this protocol."""


def frame(kind: bytes, payload: bytes) -> bytes:
    """One encoded frame."""
    return HEADER.pack(kind, len(payload)) + payload


def json_frame(value: dict[str, Any]) -> bytes:
    return frame(JSON, json.dumps(value, separators=(",", ":"), default=str).encode())


def _recv_exact(sock: socket.socket, n: int) -> bytes | None:
    """Exactly ``n`` bytes, or None at a clean end of stream before the first byte."""
    parts = bytearray()
    while len(parts) < n:
        chunk = sock.recv(n - len(parts))
        if not chunk:
            if not parts:
                return None
            raise ProtocolError("the connection ended inside a frame")
        parts += chunk
    return bytes(parts)


def read_frame(sock: socket.socket) -> tuple[bytes, bytes] | None:
    """The next ``(kind, payload)``; None when the peer closed between frames."""
    head = _recv_exact(sock, HEADER.size)
    if head is None:
        return None
    kind, length = HEADER.unpack(head)
    if kind not in KINDS or length > MAX_FRAME:
        raise ProtocolError(f"not a solcap serve frame (type {kind!r}, length {length})")
    payload = _recv_exact(sock, length) if length else b""
    if payload is None:
        raise ProtocolError("the connection ended inside a frame")
    return kind, payload


def decode_json(payload: bytes) -> dict[str, Any]:
    try:
        value = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProtocolError(f"a J frame that is not JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise ProtocolError("a J frame must hold a JSON object")
    return value
