"""Counting the opens of a file as the kernel sees them (inotify), for "read once" checks.

Shared by the tests that prove a password file is read once: across a reconnection
(tests/resilience/test_reconnect.py) and across the two logins of
``grub apply --oneshot --power-cycle`` (tests/grub/test_grub_oneshot_ipmi.py).
"""

from __future__ import annotations

import ctypes
import os
import struct
from pathlib import Path


class Opens:
    """Counts the opens of one file, as the kernel reports them (inotify ``IN_OPEN`` on its
    directory): every read of a password file starts with one."""

    IN_OPEN = 0x20
    #: Watched too, only so that two opens in a row are two events: the kernel merges an event
    #: identical to the last one still unread, so open, open would count as one.
    IN_CLOSE_NOWRITE = 0x10

    def __init__(self, path: Path) -> None:
        self.name = os.fsencode(path.name)
        self._libc = ctypes.CDLL(None, use_errno=True)
        self._fd = self._libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        assert self._fd >= 0, os.strerror(ctypes.get_errno())
        wd = self._libc.inotify_add_watch(
            self._fd, os.fsencode(path.parent), self.IN_OPEN | self.IN_CLOSE_NOWRITE
        )
        assert wd >= 0, os.strerror(ctypes.get_errno())
        self.count = 0

    def seen(self) -> int:
        """Opens of the file so far (reads the events queued since the last call)."""
        while True:
            try:
                buf = os.read(self._fd, 65536)
            except BlockingIOError:
                return self.count
            at = 0
            while at < len(buf):
                _wd, mask, _cookie, size = struct.unpack_from("iIII", buf, at)
                name = buf[at + 16 : at + 16 + size].rstrip(b"\0")
                if mask & self.IN_OPEN and name == self.name:
                    self.count += 1
                at += 16 + size

    def close(self) -> None:
        os.close(self._fd)
