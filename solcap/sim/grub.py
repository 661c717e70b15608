"""GRUB 2.06 text menu and menu-entry editor as drawn over a serial terminal — a pure model.

Why this exists: the virtual Xen host needs a bootloader that answers keystrokes with the same
VT100 bytes real GRUB 2.06 prints on a serial console (``terminal_output serial``, terminfo
``vt100``, 80x24), so console automation developed against the simulator also works on real
hosts. The byte layout follows ``grub-core/normal/menu_text.c``, ``menu_entry.c``, ``menu.c``
and ``term/terminfo.c`` and was checked against a real capture (samples/
``sol-session-grub2.06-xen4.17.raw``).

Nothing here does I/O, starts threads or reads a clock: the caller passes ``now`` (seconds, any
monotonic origin) to every call, and asks ``next_deadline()`` when it must call ``tick()``.

Faithful details worth knowing when automating real GRUB:

* Keys are decoded like terminfo's ``readkey``: after ESC (or ``ESC [``…) GRUB waits up to
  100 ms for each following byte; a bare ESC counts only after 100 ms of silence, and an
  unrecognised sequence is delivered as its separate bytes (``ESC`` then ``[``, ``x``…).
* 0x7f is Backspace; other control bytes are Ctrl-<letter>; ``\\r`` and ``\\n`` are both Enter,
  so a terminal that sends ``\\r\\n`` splits a line twice in the editor.
* The countdown is redrawn each second; the first key (any key) clears it for good.

Imports nothing from solcap (the simulator must not confirm solcap against itself).
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["BootRequest", "GrubEntry", "GrubMenu"]


@dataclass(frozen=True)
class GrubEntry:
    """One ``menuentry``: its title and body lines (without indentation)."""

    title: str
    lines: tuple[str, ...]


@dataclass(frozen=True)
class BootRequest:
    """What GRUB booted.

    ``lines`` are the entry's lines as executed (edited or not), stripped of indentation,
    without ``setparams`` and blank lines. ``edited`` is True when the entry was booted from the
    editor (Ctrl-X / F10, GRUB's "Booting a command list"), False when booted from the menu.
    """

    title: str
    lines: tuple[str, ...]
    edited: bool


# --- terminal bytes (terminfo vt100 as GRUB 2.06 emits them) ---------------------------------

CLS = b"\x1b[H\x1b[J\x1b[1;1H"  # terminfo cls followed by gotoxy(0, 0)
CURSOR_OFF = b"\x1b[?25l"
CURSOR_ON = b"\x1b[?25h"
NORMAL = b"\x1b[m"
HIGHLIGHT = b"\x1b[7m"
NL = b"\n\r"  # GRUB's putcode('\n') always adds '\r'

WIDTH = 80
FIRST_ROW = 5  # 1-based screen row of the first entry / editor row
NUM_ROWS = 12  # entry rows inside the box (rows 5..16)
FIRST_COL = 3  # 1-based column of entry text
ENTRY_WIDTH = 75  # characters per editor row (the 76th column holds the '\' marker)
CURSOR_COL = FIRST_COL + ENTRY_WIDTH  # where the menu parks the cursor (col 78)
ARROW_COL = 80  # scroll indicators ^ / v
TIMEOUT_ROW = 22
TIMEOUT_LINES = 2

MENU_HELP = (
    "Use the ^ and v keys to select which entry is highlighted.",
    "Press enter to boot the selected OS, `e' to edit the commands",
    "before booting or `c' for a command-line.",
)
EDIT_HELP = (
    "Minimum Emacs-like screen editing is supported. TAB lists",
    "completions. Press Ctrl-x or F10 to boot, Ctrl-c or F2 for",
    "a command-line or ESC to discard edits and return to the GRUB menu.",
)
CMDLINE_HELP = (
    "Minimal BASH-like line editing is supported. For the first word, TAB "
    "lists possible command completions. Anywhere else TAB lists possible "
    "device or file completions. ESC at any time exits."
)
ESC_TIMEOUT = 0.1  # terminfo CONTINUE_READ waits 100 ms per byte
WAIT_AFTER_MESSAGE = 10.0

# --- decoded keys (values mirror GRUB's, only distinctness matters) ----------------------------

CTRL = 0x02000000
EXT = 0x00800000
K_UP = EXT | 0x48
K_DOWN = EXT | 0x50
K_LEFT = EXT | 0x4B
K_RIGHT = EXT | 0x4D
K_HOME = EXT | 0x47
K_END = EXT | 0x4F
K_DC = EXT | 0x53
K_PPAGE = EXT | 0x49
K_NPAGE = EXT | 0x51
K_INSERT = EXT | 0x52
K_F1 = EXT | 0x3B  # F1..F10 are consecutive
K_F2 = K_F1 + 1
K_F4 = K_F1 + 3
K_F10 = K_F1 + 9
K_F11 = EXT | 0x57
K_F12 = EXT | 0x58
K_ESC = 0x1B


def ctrl(letter: str) -> int:
    """The key GRUB reports for Ctrl-<letter>."""
    return CTRL | ord(letter)


_THREE_CODE = {
    ord("4"): K_DC,
    ord("A"): K_UP,
    ord("B"): K_DOWN,
    ord("C"): K_RIGHT,
    ord("D"): K_LEFT,
    ord("F"): K_END,
    ord("H"): K_HOME,
    ord("K"): K_END,
    ord("P"): K_DC,
    ord("?"): K_PPAGE,
    ord("/"): K_NPAGE,
    ord("@"): K_INSERT,
}
_FOUR_CODE = {
    1: K_HOME,
    3: K_DC,
    5: K_PPAGE,
    6: K_NPAGE,
    7: K_HOME,
    8: K_END,
    17: K_F1 + 5,
    18: K_F1 + 6,
    19: K_F1 + 7,
    20: K_F1 + 8,
    21: K_F10,
    23: K_F11,
    24: K_F12,
}
_FX_CODE = [K_F1 + i for i in range(10)] + [K_F11, K_F12, K_HOME, K_END]
_FX_KEY = {c: _FX_CODE[i] for i, c in enumerate(b"PQwxtuqrpMABHF")}


class _NeedMore(Exception):
    """A partial escape sequence: wait for more bytes or the 100 ms timeout."""


def read_key(buf: bytes, timed_out: bool) -> tuple[list[int], int]:
    """Decode one ``grub_terminfo_readkey`` call from the front of ``buf``.

    Returns the keys it yields and how many bytes it consumed. Raises ``_NeedMore`` when the
    buffer ends inside an escape sequence and ``timed_out`` is False. When it is True, the bytes
    read so far are returned as separate keys, exactly as GRUB does.
    """
    keys: list[int] = []
    pos = 0

    def cont() -> int | None:
        nonlocal pos
        if pos >= len(buf):
            if timed_out:
                return None
            raise _NeedMore
        c = buf[pos]
        pos += 1
        keys.append(c)
        return c

    c = buf[0]
    pos = 1
    if c not in (0x1B, 0x9B):
        if c == 0x7F:
            c = 0x08
        if c < 0x20 and c not in (0x09, 0x08, 0x0A, 0x0D):
            c = CTRL | (c - 1 + ord("a"))
        return [c], 1
    keys.append(c)

    def done(key: int) -> tuple[list[int], int]:
        return [key], pos

    if c == 0x1B:
        n = cont()
        if n is None:
            return keys, pos
        if n == ord("O"):
            n = cont()
            if n is None:
                return keys, pos
            if n in _FX_KEY:
                return done(_FX_KEY[n])
        if n != ord("["):
            return keys, pos
    n = cont()
    if n is None:
        return keys, pos
    if n in _THREE_CODE:
        return done(_THREE_CODE[n])
    if n == ord("["):
        n = cont()
        if n is not None and ord("A") <= n <= ord("E"):
            return done(K_F1 + n - ord("A"))
        return keys, pos
    if n == ord("O"):
        n = cont()
        if n is not None and n in _FX_KEY:
            return done(_FX_KEY[n])
        return keys, pos
    if n == ord("0"):
        n = cont()
        if n is None or n not in b"01":
            return keys, pos
        num = (n - ord("0")) * 10
        n = cont()
        if n is None or not ord("0") <= n <= ord("9"):
            return keys, pos
        num += n - ord("0")
        if num == 0 or num > 12:
            return keys, pos
        n = cont()
        if n != ord("q"):
            return keys, pos
        return done(_FX_CODE[num - 1])
    if ord("1") <= n <= ord("9"):
        val = n - ord("0")
        n = cont()
        if n is not None and ord("0") <= n <= ord("9"):
            val = val * 10 + n - ord("0")
            n = cont()
        if n != ord("~") or val not in _FOUR_CODE:
            return keys, pos
        return done(_FOUR_CODE[val])
    return keys, pos


def _goto(row: int, col: int) -> bytes:
    """``ESC[row;colH`` with 1-based coordinates, as terminfo's gotoxy prints it."""
    return b"\x1b[%d;%dH" % (row, col)


def _wrap(text: str, limit: int) -> list[str]:
    """Greedy word wrap (used only for messages not checked against a real capture)."""
    lines: list[str] = []
    cur = ""
    for word in text.split():
        if cur and len(cur) + 1 + len(word) > limit:
            lines.append(cur)
            cur = word
        else:
            cur = f"{cur} {word}" if cur else word
    lines.append(cur)
    return lines


def _rows_of(line: str) -> int:
    """Screen rows a logical editor line occupies (``get_logical_num_lines``)."""
    return max(1, (len(line) + ENTRY_WIDTH - 1) // ENTRY_WIDTH)


def _is_print(key: int) -> bool:
    return 0x20 <= key < 0x7F


class _Screen:
    """A tiny VT100 model of what GRUB drew, for ``GrubMenu.screen_text()``."""

    def __init__(self) -> None:
        self.cells = [[" "] * WIDTH for _ in range(24)]
        self.row = 0
        self.col = 0
        self._esc = b""

    def feed(self, data: bytes) -> None:
        for b in data:
            if self._esc:
                self._esc += bytes([b])
                if len(self._esc) >= 2 and self._esc[1:2] != b"[":
                    self._esc = b""
                elif len(self._esc) > 2 and 0x40 <= b <= 0x7E:
                    self._csi(self._esc[2:-1].decode("ascii", "replace"), chr(b))
                    self._esc = b""
                continue
            if b == 0x1B:
                self._esc = b"\x1b"
            elif b == 0x0A:
                self.row = min(self.row + 1, 23)
            elif b == 0x0D:
                self.col = 0
            elif b == 0x08:
                self.col = max(self.col - 1, 0)
            elif b >= 0x20:
                if self.col >= WIDTH:
                    self.col = 0
                    self.row = min(self.row + 1, 23)
                self.cells[self.row][self.col] = chr(b)
                self.col += 1

    def _csi(self, params: str, final: str) -> None:
        if final == "H":
            parts = [p for p in params.split(";") if p]
            r = int(parts[0]) if parts else 1
            c = int(parts[1]) if len(parts) > 1 else 1
            self.row, self.col = min(max(r, 1), 24) - 1, min(max(c, 1), WIDTH) - 1
        elif final == "J":
            for c in range(self.col, WIDTH):
                self.cells[self.row][c] = " "
            for r in range(self.row + 1, 24):
                self.cells[r] = [" "] * WIDTH

    def text(self) -> list[str]:
        return ["".join(r).rstrip() for r in self.cells]


class GrubMenu:
    """The GRUB 2.06 menu, entry editor and a minimal command line, fed bytes and time.

    States: ``idle`` (before ``start``), ``hidden`` (hidden/countdown timeout running),
    ``menu``, ``editor``, ``user``/``password`` (superuser prompt), ``punish`` (sleep after a
    wrong password), ``cmdline``, ``booted``.
    """

    def __init__(
        self,
        entries: Sequence[GrubEntry],
        *,
        timeout: int = 5,
        default: int = 0,
        version: str = "2.06-13+deb12u2",
        timeout_style: str = "menu",
        password: tuple[str, str] | None = None,
    ) -> None:
        if not entries:
            raise ValueError("GRUB needs at least one menu entry")
        if timeout_style not in ("menu", "hidden", "countdown"):
            raise ValueError(f"unknown timeout_style {timeout_style!r}")
        self._entries = tuple(entries)
        self._timeout = timeout
        self._default = default if 0 <= default < len(self._entries) else 0
        self._version = version
        self._style = timeout_style if timeout >= 0 else "menu"
        self._password = password
        self._authenticated = password is None
        self._punishment = 1.0

        self._state = "idle"
        self._booted: BootRequest | None = None
        self._out = bytearray()
        self._screen = _Screen()

        # input decoding
        self._inbuf = bytearray()
        self._last_rx = 0.0
        # timeout bookkeeping (GRUB's "timeout" variable; -1 = unset)
        self._saved_time = 0.0
        self._deadline: float | None = None  # punish sleep / wait-after-message end
        # menu
        self._current = self._default
        self._first = 0
        self._offset = 0
        # editor
        self._lines: list[str] = []
        self._line = 0
        self._column = 0
        self._real_column = 0
        self._y_start = 0
        self._killed = ""
        self._prev_key = 0
        self._edit_entry = 0
        # prompts / cmdline
        self._typed = ""
        self._username = ""
        self._cmd_return = "menu"

    # --- public API ---------------------------------------------------------------------------

    @property
    def booted(self) -> BootRequest | None:
        """Set once an entry is booted; the model then ignores further input."""
        return self._booted

    @property
    def state(self) -> str:
        """Which screen GRUB is on (for hosts and tests): see the class docstring."""
        return self._state

    def start(self, now: float) -> bytes:
        """The bytes GRUB prints when the menu first appears (or nothing, if hidden)."""
        if self._state != "idle":
            raise RuntimeError("start() called twice")
        self._emit(CLS)
        self._saved_time = now
        if self._style in ("hidden", "countdown") and self._timeout > 0:
            self._state = "hidden"
            if self._style == "countdown":
                self._emit(_goto(1, 1) + b"%d    " % self._timeout)
        elif self._timeout == 0:
            self._boot_entry(self._default, auto=True, notify=self._style != "hidden")
        else:
            self._draw_menu(now)
        return self._take()

    def feed(self, data: bytes, now: float) -> bytes:
        """Bytes received on the serial line at ``now``; returns what GRUB prints in answer."""
        self._advance(now)
        if self._state not in ("idle", "booted"):
            self._inbuf += data
            self._last_rx = now
            self._pump(now, timed_out=False)
        return self._take()

    def tick(self, now: float) -> bytes:
        """Let time pass: countdown redraws, ESC resolution, timeout boots, sleeps ending."""
        self._advance(now)
        return self._take()

    def next_deadline(self) -> float | None:
        """When ``tick`` must next be called (same clock as ``now``), or None."""
        candidates: list[float] = []
        if self._state in ("idle", "booted"):
            return None
        if self._inbuf and self._state != "punish":
            candidates.append(self._last_rx + ESC_TIMEOUT)
        if self._countdown_running():
            candidates.append(self._saved_time + 1.0)
        if self._deadline is not None:
            candidates.append(self._deadline)
        return min(candidates) if candidates else None

    def screen_text(self) -> list[str]:
        """The 24 screen lines (trailing blanks stripped) as drawn so far; a test helper."""
        return self._screen.text()

    # --- time and input plumbing ---------------------------------------------------------------

    def _take(self) -> bytes:
        out = bytes(self._out)
        self._out.clear()
        return out

    def _emit(self, data: bytes) -> None:
        self._out += data
        self._screen.feed(data)

    def _countdown_running(self) -> bool:
        return self._state in ("hidden", "menu") and self._timeout > 0

    def _advance(self, now: float) -> None:
        """Run every timed event due at or before ``now``, earliest first."""
        while self._state not in ("idle", "booted"):
            events: list[tuple[float, int]] = []
            if self._inbuf and self._state != "punish":
                events.append((self._last_rx + ESC_TIMEOUT, 0))
            if self._countdown_running():
                events.append((self._saved_time + 1.0, 1))
            if self._deadline is not None:
                events.append((self._deadline, 2))
            due = [e for e in events if e[0] <= now]
            if not due:
                return
            when, kind = min(due)
            if kind == 0:
                self._pump(when, timed_out=True)
            elif kind == 1:
                self._second_elapsed(when)
            else:
                self._deadline_reached(when)

    def _pump(self, now: float, *, timed_out: bool) -> None:
        """Decode and dispatch as many keys as the buffered bytes allow."""
        while self._inbuf and self._state not in ("booted", "punish", "idle"):
            try:
                keys, used = read_key(bytes(self._inbuf), timed_out)
            except _NeedMore:
                return
            del self._inbuf[:used]
            timed_out = False  # only the sequence that was waiting has timed out
            for key in keys:
                if self._state in ("booted", "idle"):
                    break
                self._dispatch(key, now)

    def _dispatch(self, key: int, now: float) -> None:
        handler = {
            "hidden": self._key_hidden,
            "menu": self._key_menu,
            "editor": self._key_editor,
            "user": self._key_user,
            "password": self._key_password,
            "cmdline": self._key_cmdline,
        }.get(self._state)
        if handler is not None:
            handler(key, now)

    def _second_elapsed(self, when: float) -> None:
        """``has_second_elapsed`` fired: count down, redraw, boot at zero."""
        self._saved_time = when
        self._timeout -= 1
        if self._state == "hidden":
            if self._style == "countdown":
                self._emit(_goto(1, 1) + b"%d    " % self._timeout)
            if self._timeout == 0:
                self._boot_entry(self._default, auto=True, notify=self._style != "hidden")
            return
        self._print_timeout()
        if self._timeout == 0:
            self._menu_fini()
            self._boot_entry(self._default, auto=True, notify=True)

    def _deadline_reached(self, when: float) -> None:
        self._deadline = None
        if self._state == "punish":
            # grub_auth_check_authentication returned "access denied": back to the menu.
            self._state = "menu"
            self._draw_menu(when)
            self._pump(when, timed_out=False)

    # --- menu -------------------------------------------------------------------------------------

    def _page(self, help_lines: Sequence[str]) -> bytes:
        """``grub_menu_init_page``: header, box and help text (as in the capture)."""
        title = f"GNU GRUB  version {self._version}".encode()
        col = max((WIDTH - len(title)) // 2, 0) + 1
        out = bytearray(NORMAL + CLS + _goto(2, col) + title + NL + NL + NORMAL)
        border = b"+" + b"-" * (ENTRY_WIDTH + 1) + b"+"
        out += _goto(FIRST_ROW - 1, 2) + border
        for row in range(FIRST_ROW, FIRST_ROW + NUM_ROWS):
            out += _goto(row, 2) + b"|" + _goto(row, ARROW_COL - 1) + b"|"
        out += _goto(FIRST_ROW + NUM_ROWS, 2) + border + NORMAL
        out += _goto(FIRST_ROW + NUM_ROWS + 1, 2) + _goto(FIRST_ROW + NUM_ROWS + 2, 2) + NORMAL
        for i, text in enumerate(help_lines):
            if i == 0:
                out += b" " * 5 + text.encode().ljust(68)
            else:
                out += NL + b" " * 6 + text.encode().ljust(68)
        return bytes(out)

    def _draw_menu(self, now: float) -> None:
        """``menu_init`` + first timeout print (or clear, once the timeout is gone)."""
        self._state = "menu"
        self._offset = self._current
        self._first = 0
        if self._offset > NUM_ROWS - 1:
            self._first = self._offset - (NUM_ROWS - 1)
            self._offset = NUM_ROWS - 1
        self._emit(CURSOR_OFF + self._page(MENU_HELP))
        self._emit(self._print_entries())
        self._saved_time = now
        if self._timeout > 0:
            self._print_timeout()
        else:
            self._clear_timeout()

    def _entry_bytes(self, index: int, highlight: bool) -> bytes:
        """``print_entry`` for screen row ``index`` of the visible window."""
        row = FIRST_ROW + index
        n = self._first + index
        title = self._entries[n].title if n < len(self._entries) else ""
        title = "".join(" " if ch in "\n\b\r\x1b" else ch for ch in title)
        if len(title) > ENTRY_WIDTH:
            title = title[: ENTRY_WIDTH - 1] + ">"
        marker = b"*" if highlight else b" "
        text = marker + title.encode("utf-8", "replace").ljust(ENTRY_WIDTH)
        color = HIGHLIGHT if highlight else NORMAL
        return color + _goto(row, FIRST_COL) + text + NORMAL + _goto(row, CURSOR_COL) + NORMAL

    def _print_entries(self) -> bytes:
        out = bytearray(_goto(FIRST_ROW, ARROW_COL) + (b"^" if self._first else b" "))
        for i in range(NUM_ROWS):
            out += self._entry_bytes(i, i == self._offset)
        more = self._first + NUM_ROWS < len(self._entries)
        out += _goto(FIRST_ROW + NUM_ROWS - 1, ARROW_COL) + (b"v" if more else b" ")
        out += _goto(FIRST_ROW + self._offset, CURSOR_COL)
        return bytes(out)

    def _print_timeout(self) -> None:
        msg = f"   The highlighted entry will be executed automatically in {self._timeout}s."
        self._emit(
            _goto(TIMEOUT_ROW, 1)
            + msg.encode().ljust(WIDTH - 1)
            + _goto(FIRST_ROW + self._offset, CURSOR_COL)
        )

    def _clear_timeout(self) -> None:
        out = bytearray()
        for i in range(TIMEOUT_LINES):
            out += _goto(TIMEOUT_ROW + i, 1) + b" " * (WIDTH - 1)
        out += _goto(FIRST_ROW + self._offset, CURSOR_COL)
        self._emit(bytes(out))

    def _set_chosen(self, entry: int) -> None:
        """``menu_text_set_chosen_entry``: redraw two rows, or all when scrolling."""
        old = self._offset
        self._current = entry
        self._offset = entry - self._first
        redraw = False
        if self._offset > NUM_ROWS - 1:
            self._first = entry - (NUM_ROWS - 1)
            self._offset = NUM_ROWS - 1
            redraw = True
        if self._offset < 0:
            self._offset = 0
            self._first = entry
            redraw = True
        if redraw:
            self._emit(self._print_entries())
        else:
            self._emit(self._entry_bytes(old, False) + self._entry_bytes(self._offset, True))

    def _menu_fini(self) -> None:
        self._emit(CURSOR_ON + CLS)

    def _key_hidden(self, key: int, now: float) -> None:
        """Hidden/countdown timeout: only ESC or F4 interrupts it (no hotkeys modelled)."""
        if key in (K_ESC, K_F4):
            self._timeout = -1
            self._draw_menu(now)

    def _key_menu(self, key: int, now: float) -> None:
        if self._timeout >= 0:
            self._timeout = -1
            self._clear_timeout()
        last = len(self._entries) - 1
        cur = self._current
        if key in (K_HOME, ctrl("a")):
            self._set_chosen(0)
        elif key in (K_END, ctrl("e")):
            self._set_chosen(last)
        elif key in (K_UP, ctrl("p"), ord("^")):
            self._set_chosen(max(cur - 1, 0))
        elif key in (K_DOWN, ctrl("n"), ord("v")):
            self._set_chosen(min(cur + 1, last))
        elif key in (K_PPAGE, ctrl("g")):
            self._set_chosen(max(cur - 10, 0))
        elif key in (K_NPAGE, ctrl("c")):
            self._set_chosen(min(cur + 10, last))
        elif key in (0x0A, 0x0D, K_RIGHT, ctrl("f")):
            self._menu_fini()
            self._emit(CLS)
            self._boot_entry(cur, auto=False, notify=False)
        elif key == ord("e"):
            self._menu_fini()
            self._open_editor(cur, now)
        elif key == ord("c"):
            self._menu_fini()
            self._open_cmdline("menu")
        elif key == ctrl("l"):
            self._menu_fini()
            self._draw_menu(now)

    # --- booting ------------------------------------------------------------------------------

    def _boot_entry(self, index: int, *, auto: bool, notify: bool) -> None:
        entry = self._entries[index]
        if auto and notify:
            self._emit(b"  Booting `" + entry.title.encode() + b"'" + NL + NL)
        self._boot(entry.title, entry.lines, edited=False)

    def _boot(self, title: str, lines: Sequence[str], *, edited: bool) -> None:
        body = tuple(
            s
            for s in (line.strip() for line in lines)
            if s and not (s == "setparams" or s.startswith("setparams "))
        )
        for line in body:
            self._emit(self._run_echo(line))
        self._state = "booted"
        self._inbuf.clear()
        self._deadline = None
        self._booted = BootRequest(title=title, lines=body, edited=edited)

    @staticmethod
    def _run_echo(line: str) -> bytes:
        """What executing ``line`` prints: only ``echo`` is modelled."""
        try:
            words = shlex.split(line)
        except ValueError:
            return b""
        if not words or words[0] != "echo":
            return b""
        args = words[1:]
        newline = True
        while args and args[0] in ("-n", "-e", "-ne", "-en"):
            newline = newline and "n" not in args[0]
            args = args[1:]
        return " ".join(args).encode() + (NL if newline else b"")

    # --- superuser prompt -------------------------------------------------------------------------

    def _open_editor(self, index: int, now: float) -> None:
        if not self._authenticated:
            self._edit_entry = index
            self._typed = ""
            self._state = "user"
            self._emit(b"Enter username: " + NL)
            return
        self._edit_entry = index
        entry = self._entries[index]
        self._lines = [f"setparams '{entry.title}'", ""]
        self._lines += ["        " + line for line in entry.lines]
        self._lines.append("")
        self._line = self._column = self._real_column = 0
        self._killed = ""
        self._prev_key = 0
        self._draw_editor()
        self._emit(CURSOR_ON)

    def _key_user(self, key: int, now: float) -> None:
        if key in (0x0A, 0x0D, K_ESC):
            self._emit(NL)
            self._username = self._typed
            self._typed = ""
            if key == K_ESC:
                self._deny(now)
                return
            self._state = "password"
            self._emit(b"Enter password: " + NL)
        elif key == 0x08:
            if self._typed:
                self._typed = self._typed[:-1]
                self._emit(b"\b \b")
        elif _is_print(key):
            self._typed += chr(key)
            self._emit(bytes([key]))

    def _key_password(self, key: int, now: float) -> None:
        if key in (0x0A, 0x0D, K_ESC):
            self._emit(NL)
            typed, self._typed = self._typed, ""
            if key != K_ESC and self._password == (self._username, typed):
                self._authenticated = True
                self._punishment = 1.0
                self._open_editor(self._edit_entry, now)
            else:
                self._deny(now)
        elif key == 0x08:
            self._typed = self._typed[:-1]
        elif _is_print(key):
            self._typed += chr(key)

    def _deny(self, now: float) -> None:
        """Access denied: GRUB sleeps (1 s, doubling) and returns to the menu."""
        self._state = "punish"
        self._deadline = now + self._punishment
        self._punishment *= 2

    # --- command line (minimal) ---------------------------------------------------------------

    def _open_cmdline(self, back_to: str) -> None:
        self._cmd_return = back_to
        self._state = "cmdline"
        self._typed = ""
        title = f"GNU GRUB  version {self._version}".encode()
        col = max((WIDTH - len(title)) // 2, 0) + 1
        out = bytearray(CLS + _goto(2, col) + title + NL + NL + CURSOR_ON)
        for i, text in enumerate(_wrap(CMDLINE_HELP, 70)):
            out += (NL if i else b"") + b"   " + text.encode().ljust(71)
        out += NL + NL + NL + b"grub> "
        self._emit(bytes(out))

    def _key_cmdline(self, key: int, now: float) -> None:
        if key == K_ESC:
            self._emit(NL)
            self._leave_cmdline(now)
        elif key in (0x0A, 0x0D):
            self._emit(NL)
            command, self._typed = self._typed.strip(), ""
            word = command.split()[0] if command else ""
            if word in ("normal", "exit"):
                self._leave_cmdline(now)
                return
            if word == "echo":
                self._emit(self._run_echo(command))
            elif word == "boot":
                self._emit(b"error: you need to load the kernel first." + NL)
            elif word and word not in _KNOWN_COMMANDS:
                self._emit(b"error: can't find command `%s'." % word.encode() + NL)
            self._emit(b"grub> ")
        elif key == 0x08:
            if self._typed:
                self._typed = self._typed[:-1]
                self._emit(b"\b \b")
        elif _is_print(key):
            self._typed += chr(key)
            self._emit(bytes([key]))

    def _leave_cmdline(self, now: float) -> None:
        if self._cmd_return == "editor":
            self._state = "editor"
            self._y_start = 0
            self._draw_editor()
            self._emit(CURSOR_ON)
        else:
            self._draw_menu(now)

    # --- editor ---------------------------------------------------------------------------------

    def _draw_editor(self) -> None:
        """The ``refresh:`` path of ``grub_menu_entry_run``: page plus every line."""
        self._state = "editor"
        self._y_start = 0
        self._emit(self._page(EDIT_HELP))
        self._update(0, up=True, down=True, mode="all")

    def _line_bytes(self, text: str, y: int) -> bytes:
        """Draw one logical line whose first row is at editor row ``y`` (may be < 0)."""
        chunks = [text[i : i + ENTRY_WIDTH] for i in range(0, len(text), ENTRY_WIDTH)] or [""]
        out = bytearray()
        started = False
        for k, chunk in enumerate(chunks):
            row = y + k
            if row < 0:
                continue
            if row >= NUM_ROWS:
                break
            if not started:
                out += _goto(FIRST_ROW + row, FIRST_COL)
                started = True
            if k < len(chunks) - 1:
                out += chunk.encode("utf-8", "replace") + b"\\"
                if row + 1 < NUM_ROWS:
                    out += NL + _goto(FIRST_ROW + row + 1, FIRST_COL)
            else:
                out += chunk.encode("utf-8", "replace").ljust(ENTRY_WIDTH + 1)
        return bytes(out)

    def _cursor_offset(self) -> tuple[int, int]:
        """Row within the line and x of the cursor (GRUB's ``pos`` table)."""
        col = self._column
        if col and col == len(self._lines[self._line]) and col % ENTRY_WIDTH == 0:
            return col // ENTRY_WIDTH - 1, ENTRY_WIDTH
        return col // ENTRY_WIDTH, col % ENTRY_WIDTH

    def _update(self, region_start: int, *, up: bool, down: bool, mode: str) -> None:
        """``update_screen``: scroll if needed, redraw the dirty lines, place the cursor."""
        lines = self._lines
        y = self._y_start + sum(_rows_of(line) for line in lines[: self._line])
        y += self._cursor_offset()[0]
        if y < 0 or y >= NUM_ROWS:
            self._y_start += -y if y < 0 else NUM_ROWS - 1 - y
            region_start, up, down, mode = 0, True, True, "all"
        out = bytearray(CURSOR_OFF)
        if mode != "none":
            y = self._y_start
            i = 0
            while y + _rows_of(lines[i]) <= 0:
                y += _rows_of(lines[i])
                i += 1
            up_flag = y < 0 or i > 0
            down_flag = False
            while True:
                if i >= len(lines):
                    break
                if i == region_start or i == self._line or (i > region_start and mode == "all"):
                    out += self._line_bytes(lines[i], y)
                y += _rows_of(lines[i])
                if y >= NUM_ROWS and i + 1 < len(lines):
                    down_flag = True
                i += 1
                if mode == "all" and i == len(lines):
                    for empty in range(y, NUM_ROWS):
                        out += _goto(FIRST_ROW + empty, FIRST_COL) + b" " * (ENTRY_WIDTH + 1)
                    y = max(y, NUM_ROWS)
                if y >= NUM_ROWS:
                    break
            if up:
                out += _goto(FIRST_ROW, ARROW_COL) + (b"^" if up_flag else b" ")
            if down:
                out += _goto(FIRST_ROW + NUM_ROWS - 1, ARROW_COL) + (b"v" if down_flag else b" ")
        y = self._y_start + sum(_rows_of(line) for line in lines[: self._line])
        dy, x = self._cursor_offset()
        out += _goto(FIRST_ROW + y + dy, FIRST_COL + x) + CURSOR_ON
        self._emit(bytes(out))

    def _key_editor(self, key: int, now: float) -> None:
        prev, self._prev_key = self._prev_key, key
        lines = self._lines
        if key in (K_UP, ctrl("p")):
            if self._line > 0:
                self._line -= 1
                self._column = min(len(lines[self._line]), self._real_column)
            else:
                self._column = 0
            self._update(len(lines), up=False, down=False, mode="none")
        elif key in (K_DOWN, ctrl("n")):
            if self._line < len(lines) - 1:
                self._line += 1
                self._column = min(len(lines[self._line]), self._real_column)
            else:
                self._column = len(lines[self._line])
            self._update(len(lines), up=False, down=False, mode="none")
        elif key in (K_RIGHT, ctrl("f")):
            if self._column < len(lines[self._line]):
                self._column += 1
            elif self._line + 1 < len(lines):
                self._line += 1
                self._column = 0
            self._real_column = self._column
            self._update(len(lines), up=False, down=False, mode="none")
        elif key in (K_LEFT, ctrl("b")):
            self._backward_char()
            self._update(len(lines), up=False, down=False, mode="none")
        elif key in (K_HOME, ctrl("a")):
            self._column = self._real_column = 0
            self._update(len(lines), up=False, down=False, mode="none")
        elif key in (K_END, ctrl("e")):
            self._column = len(lines[self._line])
            self._update(len(lines), up=False, down=False, mode="none")
        elif key in (K_DC, ctrl("d")):
            self._delete_char()
        elif key == 0x08:
            line, column = self._line, self._column
            self._backward_char()
            if (line, column) != (self._line, self._column):
                self._delete_char()
        elif key == ctrl("k"):
            self._kill_line(continuous=prev == key)
        elif key == ctrl("y"):
            if self._killed:
                self._insert(self._killed)
        elif key == ctrl("o"):
            self._insert("\n", update=False)
            self._backward_char()
            self._update(self._line, up=False, down=True, mode="all")
        elif key in (0x0A, 0x0D):
            self._insert("\n")
        elif key == ctrl("l"):
            self._draw_editor()
            self._emit(CURSOR_ON)
        elif key == K_ESC:
            self._draw_menu(now)
        elif key in (ctrl("c"), K_F2):
            self._open_cmdline("editor")
        elif key in (ctrl("x"), K_F10):
            self._emit(CLS + b"  Booting a command list" + NL + NL)
            title = self._entries[self._edit_entry].title
            self._boot(title, self._lines, edited=True)
        elif _is_print(key):
            self._insert(chr(key))
        # Tab (completion), Ctrl-U/R/S/T: nothing visible is modelled.

    def _backward_char(self) -> None:
        if self._column > 0:
            self._column -= 1
        elif self._line > 0:
            self._line -= 1
            self._column = len(self._lines[self._line])
        self._real_column = self._column

    def _insert(self, text: str, *, update: bool = True) -> None:
        """``insert_string``: characters and newlines at the cursor, with GRUB's redraw."""
        region = len(self._lines)
        mode = "none"
        down = False
        for part_index, part in enumerate(text.split("\n")):
            if part_index > 0:
                cur = self._lines[self._line]
                self._lines[self._line : self._line + 1] = [
                    cur[: self._column],
                    cur[self._column :],
                ]
                region = min(region, self._line)
                mode, down = "all", True
                self._line += 1
                self._column = self._real_column = 0
            if part:
                cur = self._lines[self._line]
                before = _rows_of(cur)
                cur = cur[: self._column] + part + cur[self._column :]
                self._lines[self._line] = cur
                region = min(region, self._line)
                if _rows_of(cur) != before:
                    mode, down = "all", True
                elif mode != "all":
                    mode = "single"
                self._column += len(part)
                self._real_column = self._column
        if update:
            self._update(region, up=False, down=down, mode=mode)

    def _delete_char(self) -> None:
        lines = self._lines
        cur = lines[self._line]
        if self._column < len(cur):
            before = _rows_of(cur)
            lines[self._line] = cur[: self._column] + cur[self._column + 1 :]
            self._real_column = self._column
            changed = _rows_of(lines[self._line]) != before
            self._update(self._line, up=False, down=False, mode="all" if changed else "single")
        elif self._line + 1 < len(lines):
            lines[self._line] = cur + lines.pop(self._line + 1)
            self._real_column = self._column
            self._update(self._line, up=False, down=True, mode="all")

    def _kill_line(self, *, continuous: bool) -> None:
        if not continuous:
            self._killed = ""
        cur = self._lines[self._line]
        if self._column < len(cur):
            self._killed += cur[self._column :]
            before = _rows_of(cur)
            self._lines[self._line] = cur[: self._column]
            changed = _rows_of(self._lines[self._line]) != before
            if changed:
                self._update(self._line, up=False, down=True, mode="all")
            else:
                self._update(self._line, up=False, down=False, mode="single")
        elif self._line + 1 < len(self._lines):
            self._killed += "\n"
            self._delete_char()


_KNOWN_COMMANDS = frozenset(
    {
        "set",
        "insmod",
        "search",
        "multiboot2",
        "module2",
        "multiboot",
        "module",
        "xen_hypervisor",
        "xen_module",
        "slaunch",
        "slaunch_module",
        "linux",
        "initrd",
        "load_video",
        "terminal_output",
        "terminal_input",
        "serial",
        "ls",
        "cat",
        "reboot",
        "halt",
        "help",
    }
)
