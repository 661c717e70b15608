"""The current screen of a console, for a client that attaches late.

conserver replays the last lines and ConMan the last 4 KB as raw bytes, which is garbage when
those bytes start inside an escape sequence or a GRUB menu redraw; confluent keeps a virtual
screen. We keep the *tail* of the stream (``TAIL`` bytes, a ring) and, only when a client
attaches, run it through a terminal model (pyte, already solcap's GRUB screen) and render that
screen as plain terminal output: clear, the lines, the cursor. Feeding pyte every byte of
every console all the time would cost more CPU than holding the consoles does; a console
screen older than 64 KiB of output has scrolled away anyway (a full-screen program that
drew more than that long ago and never redrew is the rare exception).
"""

from __future__ import annotations

import threading
from typing import Final

import pyte

COLS: Final = 80
ROWS: Final = 24
TAIL: Final = 64 * 1024


class ScreenModel:
    """The last :data:`TAIL` bytes of a console and the screen they draw."""

    def __init__(self, cols: int = COLS, rows: int = ROWS, tail: int = TAIL) -> None:
        self.cols = cols
        self.rows = rows
        self._limit = tail
        self._tail = bytearray()
        self._lock = threading.Lock()

    def feed(self, data: bytes) -> None:
        with self._lock:
            self._tail += data
            excess = len(self._tail) - self._limit
            if excess > self._limit // 4:  # trim in batches, not per chunk
                del self._tail[:excess]

    def tail(self) -> bytes:
        with self._lock:
            return bytes(self._tail[-self._limit :])

    def lines(self) -> list[str]:
        """The screen's rows as text (trailing blanks removed)."""
        screen = self._render()
        return [line.rstrip() for line in screen.display]

    def _render(self) -> pyte.Screen:
        screen = pyte.Screen(self.cols, self.rows)
        stream = pyte.ByteStream(screen)
        stream.feed(self.tail())
        return screen

    def snapshot(self) -> bytes:
        """Terminal output that draws the current screen: clear, rows, cursor."""
        screen = self._render()
        rows = [line.rstrip() for line in screen.display]
        while rows and not rows[-1] and len(rows) > screen.cursor.y + 1:
            rows.pop()
        body = "\r\n".join(rows)
        cursor = f"\x1b[{screen.cursor.y + 1};{screen.cursor.x + 1}H"
        return ("\x1b[H\x1b[2J" + body + cursor).encode("utf-8", errors="replace")
