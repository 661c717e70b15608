"""A workaround for a pyghmi 1.6 I/O race, applied in the benchmark's BMC farm processes.

``pyghmi.ipmi.private.session._io_sendto`` calls ``sock.setblocking(1)`` before each send, from
whatever thread sends (a pump thread), while pyghmi's I/O thread drains the same socket with
``_io_recvfrom``: ``sock.setblocking(0)`` then ``sock.recvfrom()``. When the sender's
``setblocking(1)`` lands between those two calls, the I/O thread blocks in ``recvfrom`` on that
one socket; every other socket in the process starves, and ``Session.wait_for_rsp`` (which
waits on an event with no timeout) never returns, so the pump stops too. Seen in the benchmark
as all BMCs of a farm holding an unacknowledged packet with 0 retries for 40 s (py-spy: the
I/O thread in ``_io_recvfrom``, the pump in ``_io_wait``).

The replacement leaves every socket non-blocking: a loopback UDP send that would block (full
send buffer) is dropped, which pyghmi's own ``_io_sendto`` already did for any send error, and
which SOL retransmission covers.
"""

from __future__ import annotations

import contextlib
import socket
from typing import Any

import pyghmi.ipmi.private.session as ipmisession


def _io_sendto(mysocket: Any, packet: Any, sockaddr: Any) -> None:
    sock = getattr(mysocket, "fd", mysocket)
    with contextlib.suppress(OSError):
        sock.sendto(packet, sockaddr)


def apply() -> None:
    """Replace pyghmi's ``_io_sendto`` in this process (idempotent)."""
    ipmisession._io_sendto = _io_sendto
    # Sockets that exist already and were left blocking by an earlier send.
    for sock in list(ipmisession.iosockets):
        if isinstance(sock, socket.socket):
            sock.setblocking(False)
