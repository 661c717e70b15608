"""The virtual BMC keeps the newest 16 KiB of host output while nobody is attached.

docs/ipmi.md promises the limit; this test holds it to the byte. The host (the test, on the
pty's master) prints more than 16 KiB with no session open; the BMC, in its own process, reads
all of it; the first client to attach then receives exactly the newest 16 KiB, and the host's
next line right after them, nothing older and nothing twice.
"""

from __future__ import annotations

import fcntl
import os
import select
import struct
import termios
import time

import pytest

from solcap.transports.ipmi import IpmiSolTransport, IpmiTarget
from tests.ipmi.conftest import PASSWORD, USER, BmcAddress, PtyPair
from tests.ipmi.ipmisim import read_exactly
from tests.resilience.conftest import pattern

pytestmark = pytest.mark.timeout(60)

#: The limit docs/ipmi.md gives (solcap/sim/bmc.py's IDLE_BUFFER); spelled out, not imported,
#: so that a changed limit fails here.
KEPT = 16 * 1024


def _unread(pair: PtyPair) -> int:
    """Bytes written on the master that nobody has read from the pty yet (FIONREAD)."""
    buf = fcntl.ioctl(pair.slave, termios.FIONREAD, struct.pack("i", 0))
    return int(struct.unpack("i", buf)[0])


def _write_all(fd: int, data: bytes, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    view = memoryview(data)
    while view:
        assert time.monotonic() < deadline, "the BMC stopped reading its serial side"
        _, ready, _ = select.select([], [fd], [], 0.5)
        if ready:
            view = view[os.write(fd, view[:4096]) :]


def test_the_newest_16_kib_are_kept_while_nobody_is_attached(
    vbmc: tuple[BmcAddress, PtyPair],
) -> None:
    address, pair = vbmc
    printed = pattern(3 * KEPT + 1234, 16)  # more than twice the limit, not a multiple of it
    _write_all(pair.master, printed, 20)
    deadline = time.monotonic() + 20
    while _unread(pair):  # the BMC has read (and trimmed) every byte before anyone attaches
        assert time.monotonic() < deadline, "the BMC did not read its serial side"
        time.sleep(0.02)
    tr = IpmiSolTransport(IpmiTarget("127.0.0.1", USER, address.port), PASSWORD)
    try:
        kept = read_exactly(tr, KEPT, 20)
        assert len(kept) == KEPT, len(kept)
        after = b"\r\n<the host's next line>\r\n"
        _write_all(pair.master, after, 10)
        rest = read_exactly(tr, len(after), 20)
    finally:
        tr.close()
    # Byte-exact: the newest 16 KiB, then the next line, with nothing in between.
    assert kept == printed[-KEPT:]
    assert rest == after
