"""The one interface every console transport implements.

A transport moves raw bytes and nothing else: no expect logic, no decoding. ``read`` returns
whatever is available (at least one byte) within ``timeout`` seconds, ``b""`` when nothing came,
and raises :class:`solcap.errors.ConsoleClosed` at end of file. Errors are translated to solcap's
own exceptions inside each implementation.
"""

from __future__ import annotations

import abc
from collections.abc import Callable

#: Takes each chunk received, in the transport's own I/O thread (:meth:`Transport.push_to`).
Receiver = Callable[[bytes], None]


class Transport(abc.ABC):
    """A raw-bytes channel to a console."""

    #: A short name for the far side, used in error messages and recordings (e.g. ``/dev/pts/3``).
    name: str = "console"

    @abc.abstractmethod
    def read(self, max_bytes: int, timeout: float) -> bytes:
        """Return 1..max_bytes bytes, or b"" if none arrived within ``timeout`` seconds."""

    @abc.abstractmethod
    def write(self, data: bytes) -> None:
        """Send all of ``data``; raise ConsoleClosed if the channel is gone."""

    #: True when :meth:`interrupt` can end a read blocked in another thread. A reader may then
    #: wait long in ``read`` (one wake-up a second per idle console instead of ten, which
    #: counts with a thousand consoles in one process) and still stop at once.
    interruptible: bool = False

    def interrupt(self) -> None:
        """Make the current (or next) ``read`` return ``b""`` at once; see :attr:`interruptible`."""
        return  # a transport that cannot: its reader polls instead

    def push_to(self, receiver: Receiver) -> bool:
        """Hand every chunk from now on to ``receiver`` in the transport's I/O thread; True if
        this transport can (else False, and nothing changes).

        Why: a transport with an I/O thread of its own (the SOL engine) would otherwise buffer
        each chunk and wake a reader thread to fetch it; pushing skips that hand-off. Bytes
        already buffered go to ``receiver`` first, so the order holds. From then on
        :meth:`read` returns no data: it waits, returns ``b""``, and raises ConsoleClosed at
        the end of the stream, after the last chunk was pushed. ``receiver`` must not block
        (it runs beside every other session of that I/O thread); what it raises ends this
        console, as a ConsoleClosed from :meth:`read`.
        """
        del receiver
        return False

    def send_break(self) -> None:
        """Send a serial BREAK where the transport can."""
        raise NotImplementedError(f"{type(self).__name__} cannot send a break")

    @abc.abstractmethod
    def close(self) -> None:
        """Release the channel; idempotent."""

    def __enter__(self) -> Transport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
