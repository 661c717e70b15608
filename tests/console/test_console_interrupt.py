"""An interruptible transport lets the Console reader wait long in read() and still stop at once.

With a thousand SOL consoles in one process, ten wake-ups a second per idle reader are a
measurable share of a core; the reader of an interruptible transport waits a second per read
and close() ends that read instead of waiting it out.
"""

from __future__ import annotations

import threading

import pytest

from solcap.console.core import IDLE_READ_WAIT, Console
from solcap.transports.base import Transport

pytestmark = pytest.mark.timeout(20)


class BlockingTransport(Transport):
    """A silent far side whose read blocks until data, interrupt, close or its timeout."""

    name = "blocking"

    def __init__(self, interruptible: bool, *, honour_timeout: bool = False) -> None:
        self.interruptible = interruptible
        self.honour_timeout = honour_timeout  # else a read waits 60 s unless interrupted
        self._cond = threading.Condition()
        self._interrupted = False
        self.timeouts: list[float] = []
        self.ended_by: list[str] = []
        self.reading = threading.Event()

    def read(self, max_bytes: int, timeout: float) -> bytes:
        with self._cond:
            self.timeouts.append(timeout)
            self.reading.set()
            self._cond.notify_all()
            wait = timeout if self.honour_timeout else (60 if timeout else 0)
            woke = self._cond.wait_for(lambda: self._interrupted, timeout=wait)
            self.ended_by.append("interrupt" if woke else "timeout")
            self._interrupted = False
            return b""

    def reads(self, count: int, timeout: float) -> bool:
        """Wait until ``count`` reads have begun."""
        with self._cond:
            return self._cond.wait_for(lambda: len(self.timeouts) >= count, timeout=timeout)

    def interrupt(self) -> None:
        if not self.interruptible:
            return
        with self._cond:
            self._interrupted = True
            self._cond.notify_all()

    def write(self, data: bytes) -> None:
        pass

    def close(self) -> None:
        pass


def test_reader_waits_long_on_an_interruptible_transport_and_close_ends_the_read() -> None:
    transport = BlockingTransport(interruptible=True)
    console = Console(transport, close_timeout=15).start()
    assert transport.reading.wait(10)
    console.close()
    # The read was given the long wait and was ended by close(), not by its timeout
    # (which this transport stretches to 60 s: a close that waited it out would time out).
    assert transport.timeouts[0] >= IDLE_READ_WAIT
    assert transport.ended_by == ["interrupt"]


def test_a_transport_that_cannot_be_interrupted_keeps_the_short_poll() -> None:
    transport = BlockingTransport(interruptible=False, honour_timeout=True)
    console = Console(transport, poll_interval=0.05).start()
    assert transport.reads(3, 10)  # the reader came back to read again and again
    console.close()
    # Every read was given the short poll (not the 1 s idle wait), each ended by its own
    # timeout: interrupt() cannot end a read here, so close() waits at most one poll.
    assert set(transport.timeouts) == {0.05}, transport.timeouts
    assert set(transport.ended_by) == {"timeout"}, transport.ended_by
