"""Drive GRUB's interactive menu and entry editor over a console to boot a profile once.

Why: when a host does not boot (or must not be changed for good), the only way to get Xen's
console onto the serial line is to edit the boot entry in GRUB's menu for one boot. A person
does that by eye; solcap does the same, *by reading the screen*: every byte received since
attaching is fed into a real terminal emulator (pyte, 80x24 like GRUB's serial terminfo), and
the menu rows, the highlighted entry (reverse video), the editor's lines (with GRUB's ``\\``
continuation markers) and the cursor are read from that screen. Regexes over escape codes
would break on the first redraw that takes a different path.

GRUB facts this module is built around (``grub-core/normal/menu.c``, ``menu_entry.c``,
``term/terminfo.c``, and the real capture in ``samples/``):

* any key stops the countdown; an arrow key does so without other effects;
* ``GRUB_TIMEOUT_STYLE=hidden`` draws nothing until Esc/F4 — so we poke Esc while idle;
* a bare Esc counts only after ~100 ms of silence, so nothing is sent for 150 ms after one;
* Ctrl-L redraws the menu (needed when attaching to a menu that is already on screen);
* in the editor Enter *inserts a newline*: it is never sent there. Home/End are Ctrl-A/Ctrl-E,
  Ctrl-K kills to the end of the line (and, on an empty line, joins the next one — so it is
  never pressed on an empty line), Ctrl-X boots, Esc discards the edits;
* GRUB polls the UART: bytes typed in a burst are lost when its 16-byte FIFO overflows. Typing
  is paced, the echo is read back from the screen and compared token by token with the
  intended line, and a damaged line is retyped more carefully (small chunks, each one waited
  for) before anything is booted.

Out of scope (raise clearly instead): entries inside submenus, editor lines longer than the
editor window (12 rows, 900 characters), GRUB's graphical (gfxterm) menu.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass

import pyte

from solcap.boot.bootline import Kind, merge
from solcap.boot.profiles import Options, Profile
from solcap.console.core import TIMEOUT, Console, ExpectResult, Patterns
from solcap.errors import TargetError, UsageError
from solcap.grub.chain import ChainError, ChainLine, find_chain, split_command

__all__ = ["OneshotResult", "apply_oneshot"]

# --- keys GRUB understands on a serial terminal ------------------------------------------------
KEY_UP = b"\x1b[A"
KEY_DOWN = b"\x1b[B"
KEY_HOME_MENU = b"\x1b[H"  # Home in the menu: first entry
CTRL_A = b"\x01"  # editor: beginning of line
CTRL_E = b"\x05"  # editor: end of line
CTRL_K = b"\x0b"  # editor: kill to end of line
CTRL_L = b"\x0c"  # redraw
CTRL_X = b"\x18"  # editor: boot the edited entry once
ESC = b"\x1b"
#: GRUB counts a bare Esc after 100 ms of silence; keep a margin.
ESC_SILENCE = 0.15

# --- screen geometry (GRUB 2.06 text menu, 80x24) ------------------------------------------------
COLS, ROWS = 80, 24
BOX_ROWS = range(4, 16)  # 0-based screen rows inside the box (entries / editor lines)
TEXT_COL = 2  # editor text starts here; menu rows: highlight marker '*' here, title after it
EDIT_WIDTH = 75  # characters per editor row
MARKER_COL = TEXT_COL + EDIT_WIDTH  # '\' when the logical line continues on the next row
ARROW_COL = 79  # '^' / 'v' scroll indicators
TOP_ROW, BOTTOM_ROW = BOX_ROWS[0], BOX_ROWS[-1]

# --- texts ------------------------------------------------------------------------------------
MENU_HEADER = re.compile(rb"GNU GRUB  version")
COUNTDOWN = re.compile(rb"The highlighted entry will be executed automatically in")
#: Output that means the countdown ran out and something is booting (or booted).
BOOT_OUTPUT = re.compile(
    rb"Booting `|Loading Xen|\(XEN\) |Linux version \d|\[ *\d+\.\d+\] |login: "
)
XEN_CMDLINE = re.compile(rb"\(XEN\) Command line: ([^\r\n]*)\r?\n")
_MENU_HELP = "Use the ^ and v keys"
_EDITOR_HELP = "Minimum Emacs-like screen editing"
_USER_PROMPT = "Enter username:"
_PASSWORD_PROMPT = "Enter password:"
_LOADER = re.compile(r"^(?P<head>\s*(?P<cmd>\S+)(?:\s+--\S+)*\s+\S+)(?:\s+(?P<args>.*?))?\s*$")


@dataclass(frozen=True)
class OneshotResult:
    """What one-shot editing did and what Xen reported booting.

    ``*_before``/``*_after`` are the arguments after the image path, as read from GRUB's
    editor before and after the edit (``dom0_*`` are None when the profile has no Dom0
    options and the line was not touched). ``booted_cmdline`` is Xen's ``(XEN) Command line:``
    (None when ``verify`` was off); ``verified`` says it matched ``xen_after``.
    """

    entry_title: str
    xen_before: str
    xen_after: str
    dom0_before: str | None
    dom0_after: str | None
    booted_cmdline: str | None
    verified: bool
    #: The entry's boot chain as :meth:`solcap.grub.chain.Chain.describe` puts it.
    chain: str | None = None


def apply_oneshot(
    console: Console,
    profile: Profile,
    *,
    entry: str = r"Xen",
    power_cycle: Callable[[], None] | None = None,
    menu_timeout: float = 300.0,
    char_delay: float = 0.02,
    verify: bool = True,
    password: bytes | None = None,
    username: bytes | None = None,
    quiet: float = 0.2,
    retries: int = 3,
    boot_timeout: float = 120.0,
    poke_interval: float = 1.0,
) -> OneshotResult:
    """Catch GRUB's menu, edit the entry matching ``entry`` for ``profile``, boot it once.

    ``power_cycle`` (e.g. a BMC's) is called first if given; otherwise solcap attaches to a
    GRUB that is already waiting (it pokes Esc and Ctrl-L to get a full screen). The entry is
    chosen by regex over the titles; zero or several matches are refused (UsageError).
    ``password`` (with ``username``) answers a ``superusers`` prompt. ``quiet`` is how long
    the line must be silent for a screen update to count as complete (raise it over slow
    SOL links); ``retries`` bounds retyping a damaged line. With ``verify`` the booted
    ``(XEN) Command line:`` must carry the intended arguments, else TargetError.
    """
    if retries < 0 or quiet <= 0 or char_delay < 0 or poke_interval <= 0:
        raise UsageError("retries, char_delay must be >= 0; quiet, poke_interval > 0")
    try:
        pattern = re.compile(entry)
    except re.error as exc:
        raise UsageError(f"bad entry pattern {entry!r}: {exc}") from exc
    driver = _Driver(console, quiet=quiet, char_delay=char_delay, poke_interval=poke_interval)
    driver.catch_menu(power_cycle, time.monotonic() + menu_timeout)
    title = driver.select_entry(pattern)
    driver.open_editor(username, password)
    lines = driver.read_lines()
    try:
        chain = find_chain(lines, title)
    except ChainError as exc:
        driver.key(ESC, "Esc (leave the editor unchanged)")
        raise TargetError(console.host, f"{exc}; nothing typed, GRUB is at its menu") from exc
    dom0_wanted = bool(profile.dom0.options or profile.dom0.remove)
    if dom0_wanted and chain.kernel is None:
        driver.key(ESC, "Esc (leave the editor unchanged)")
        raise TargetError(
            console.host,
            f"entry {title!r} has no Dom0 kernel line after {chain.hypervisor.command} "
            f"{chain.hypervisor.image}; nothing typed, GRUB is at its menu",
        )
    driver.goto_index(chain.hypervisor)
    xen_before, xen_after = driver.edit_loader(
        chain.hypervisor.command, profile.xen, "xen", retries
    )
    dom0_before: str | None = None
    dom0_after: str | None = None
    if dom0_wanted and chain.kernel is not None:
        driver.goto_index(chain.kernel)
        dom0_before, dom0_after = driver.edit_loader(
            chain.kernel.command, profile.dom0, "linux", retries
        )
    driver.boot()
    booted: str | None = None
    if verify:
        booted = driver.booted_xen_cmdline(boot_timeout)
        problem = _cmdline_difference(xen_after, booted)
        if problem:
            raise TargetError(
                console.host,
                f"Xen booted with {booted!r} but solcap typed {xen_after!r}: {problem}",
            )
    return OneshotResult(
        entry_title=title,
        xen_before=xen_before,
        xen_after=xen_after,
        dom0_before=dom0_before,
        dom0_after=dom0_after,
        booted_cmdline=booted,
        verified=verify,
        chain=chain.describe(),
    )


def _cmdline_difference(intended: str, booted: str) -> str:
    """Why ``booted`` is not ``intended`` ("" if it is), token-wise.

    GRUB expands ``$variables`` (``${xen_rm_opts}``) before Xen sees the line, so such tokens
    are wildcards: the other tokens must then appear in order, extra booted tokens allowed.
    A leading ``placeholder`` is ignored on both sides (loaders differ in passing it).
    """
    want = intended.split()
    got = booted.split()
    if want[:1] == ["placeholder"]:
        want = want[1:]
    if got[:1] == ["placeholder"]:
        got = got[1:]
    fixed = [t for t in want if not t.startswith("$")]
    if len(fixed) == len(want):
        if want == got:
            return ""
        missing = [t for t in want if t not in got]
        extra = [t for t in got if t not in want]
        return f"missing {missing}, unexpected {extra}" if missing or extra else "order differs"
    it = iter(got)
    missing = [t for t in fixed if t not in it]
    return f"missing or out of order: {missing}" if missing else ""


class _Driver:
    """One GRUB session: the console, a pyte screen fed with every byte, and key helpers."""

    def __init__(
        self, console: Console, *, quiet: float, char_delay: float, poke_interval: float
    ) -> None:
        self.con = console
        self.host = console.host
        self.quiet = quiet
        self.char_delay = char_delay
        self.poke_interval = poke_interval
        self.key_timeout = max(5.0, 20 * quiet)
        self.screen = pyte.Screen(COLS, ROWS)
        self.stream = pyte.ByteStream(self.screen)
        self._esc_at = 0.0
        #: Index of the editor line the cursor is on (kept by read_lines / goto_index).
        self.line = 0
        self.feed(console.read_available())

    # ------------------------------------------------------------------ bytes in

    def feed(self, data: bytes) -> None:
        """Put received bytes on the emulated screen (all of them, in order)."""
        if data:
            self.stream.feed(data)

    def expect(self, patterns: Patterns, timeout: float) -> ExpectResult:
        """Console.expect, feeding what it consumes to the screen (TIMEOUT consumes nothing)."""
        result = self.con.expect(patterns, timeout)
        self.feed(result.before + result.after)
        return result

    def pump(self, timeout: float | None = None) -> bool:
        """Wait for GRUB's answer: at least one byte, then ``quiet`` s of silence.

        False when nothing at all arrived within ``timeout``.
        """
        wait = self.key_timeout if timeout is None else timeout
        first = self.expect([re.compile(rb"[\s\S]"), TIMEOUT], wait)
        if first.index == 1:
            return False
        self.feed(self.con.settle(self.quiet, timeout=max(60.0, 10 * self.quiet)))
        return True

    # ------------------------------------------------------------------ bytes out

    def _esc_gap(self) -> None:
        # A protocol-mandated silence, not a hope: GRUB decides "bare Esc" by a 100 ms timer.
        wait = self._esc_at + ESC_SILENCE - time.monotonic()
        if wait > 0:
            time.sleep(wait)

    def send(self, data: bytes) -> None:
        """Send a key (sequence) as one write, keeping Esc's silence rule."""
        self._esc_gap()
        self.con.send(data)
        if data == ESC:
            self._esc_at = time.monotonic()

    def key(self, data: bytes, what: str) -> None:
        """Send one key and wait until GRUB has redrawn; every key GRUB knows draws something."""
        self.send(data)
        if not self.pump():
            raise TargetError(self.host, f"GRUB did not answer {what} within {self.key_timeout:g}s")

    def type_text(self, text: str, *, careful: bool) -> None:
        """Type printable text: paced; ``careful`` = 4-byte chunks, each echo waited for."""
        raw = text.encode()
        if not careful:
            self._esc_gap()
            self.con.send_paced(raw, self.char_delay)
            self.pump()
            return
        delay = max(self.char_delay, 0.05)
        for i in range(0, len(raw), 4):
            self._esc_gap()
            self.con.send_paced(raw[i : i + 4], delay)
            if not self.pump():
                raise TargetError(self.host, f"GRUB stopped echoing while typing {text!r}")

    # ------------------------------------------------------------------ screen reading

    def row(self, y: int, x0: int = 0, x1: int = COLS) -> str:
        line = self.screen.buffer[y]
        return "".join(line[x].data for x in range(x0, x1))

    def text(self) -> str:
        return "\n".join(self.screen.display)

    def snapshot(self) -> tuple[tuple[str, ...], int, int]:
        return tuple(self.screen.display), self.screen.cursor.x, self.screen.cursor.y

    def on_menu(self) -> bool:
        return "GNU GRUB" in self.row(1) and _MENU_HELP in self.text()

    def on_editor(self) -> bool:
        return "GNU GRUB" in self.row(1) and _EDITOR_HELP in self.text()

    def menu_rows(self) -> list[tuple[str, bool]]:
        """Visible entries as (title, highlighted), top to bottom; blank rows end the list."""
        rows: list[tuple[str, bool]] = []
        for y in BOX_ROWS:
            title = self.row(y, TEXT_COL + 1, MARKER_COL + 1).rstrip()
            if not title:
                break
            rows.append((title, bool(self.screen.buffer[y][TEXT_COL].reverse)))
        return rows

    def highlighted(self) -> tuple[int, str] | None:
        """(visible row index, title) of the highlighted entry."""
        for i, (title, lit) in enumerate(self.menu_rows()):
            if lit:
                return i, title
        return None

    def more_above(self) -> bool:
        return self.screen.buffer[TOP_ROW][ARROW_COL].data == "^"

    def more_below(self) -> bool:
        return self.screen.buffer[BOTTOM_ROW][ARROW_COL].data == "v"

    def _continues(self, y: int) -> bool:
        return self.screen.buffer[y][MARKER_COL].data == "\\"

    def line_at_cursor(self) -> str:
        """The logical editor line the cursor is on, rebuilt from its wrapped rows.

        Called with the cursor at the line's end: GRUB has scrolled so the last row is
        visible, and the first row stayed visible (it was when the cursor was at column 0),
        so walking up the ``\\`` markers finds it — unless the line is taller than the
        window, which is refused.
        """
        y = self.screen.cursor.y
        if y not in BOX_ROWS:
            raise TargetError(self.host, f"the editor cursor is outside the box (row {y + 1})")
        start = y
        while start > TOP_ROW and self._continues(start - 1):
            start -= 1
        end = y
        while end < BOTTOM_ROW and self._continues(end):
            end += 1
        cut_top = start == TOP_ROW and self.more_above()
        cut_bottom = self._continues(end)
        if cut_bottom or (cut_top and end - start + 1 >= len(BOX_ROWS)):
            raise TargetError(
                self.host, "an editor line is taller than GRUB's window; edit it by hand"
            )
        parts = [self.row(r, TEXT_COL, MARKER_COL) for r in range(start, end)]
        parts.append(self.row(end, TEXT_COL, MARKER_COL).rstrip())
        return "".join(parts)

    # ------------------------------------------------------------------ menu

    def poke(self, redraw: bool) -> None:
        """Esc (shows a hidden menu; harmless in the menu) and, to attach late, Ctrl-L."""
        self.send(ESC)
        if redraw:
            self.send(CTRL_L)

    def catch_menu(self, power_cycle: Callable[[], None] | None, deadline: float) -> None:
        """Get GRUB's menu on screen with its countdown stopped (labgrid's poke loop)."""
        if power_cycle is not None:
            self.feed(self.con.read_available())  # the old boot's bytes are not the menu
            power_cycle()
        else:
            self.poke(redraw=True)
        last_rx = self.con.received
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TargetError(
                    self.host,
                    "no GRUB menu appeared"
                    + (" after the power cycle" if power_cycle else "")
                    + "; the host may have booted already (power-cycle it and retry with "
                    "power cycling enabled) or GRUB does not use this serial line",
                )
            found = self.expect(
                [MENU_HEADER, COUNTDOWN, BOOT_OUTPUT, TIMEOUT],
                min(self.poke_interval, remaining),
            )
            if found.index in (0, 1):
                break
            if found.index == 2:
                raise TargetError(
                    self.host,
                    f"the GRUB menu timed out before solcap could stop it (saw {found.after!r});"
                    " power-cycle with the BMC and retry (pass --power-cycle / power_cycle=), "
                    "or raise GRUB_TIMEOUT",
                )
            if self.con.received == last_rx:
                self.poke(redraw=power_cycle is None)
            last_rx = self.con.received
        # Stop the countdown at once; an arrow has no other effect.
        self.key(KEY_UP, "the arrow key that stops the countdown")
        for _ in range(3):
            if self.on_menu():
                return
            if self.on_editor() or "grub>" in self.text():
                # Someone left the editor (its echo lines say "Loading Xen") or command line.
                self.key(ESC, "Esc (leave the editor / command line)")
            elif BOOT_OUTPUT.search(self.text().encode()):
                raise TargetError(
                    self.host,
                    "the GRUB menu timed out before solcap could stop it; power-cycle with "
                    "the BMC and retry (pass --power-cycle / power_cycle=), or raise "
                    "GRUB_TIMEOUT",
                )
            else:
                self.key(CTRL_L, "Ctrl-L (redraw)")
        if not self.on_menu():
            raise TargetError(self.host, f"could not get GRUB's menu on screen:\n{self.text()}")

    def select_entry(self, pattern: re.Pattern[str]) -> str:
        """Highlight the one entry whose title matches ``pattern``; return its title."""
        if self.more_above() or self.more_below():
            titles = self._all_titles_by_walking()
            current = len(titles) - 1  # the walk ends on the last entry
        else:
            titles = [title for title, _ in self.menu_rows()]
            lit = self.highlighted()
            if lit is None:
                raise TargetError(self.host, "no highlighted entry in GRUB's menu")
            current = lit[0]
        matches = [i for i, title in enumerate(titles) if pattern.search(title)]
        if len(matches) != 1:
            shown = "; ".join(repr(t) for t in titles)
            what = "no entry matches" if not matches else f"{len(matches)} entries match"
            raise UsageError(
                f"{self.host}: {what} {pattern.pattern!r} in GRUB's menu ({shown}); "
                "GRUB stays at its menu with the countdown stopped"
            )
        target = matches[0]
        step = KEY_DOWN if target > current else KEY_UP
        for _ in range(abs(target - current)):
            self.key(step, "an arrow key in the menu")
        lit = self.highlighted()
        if lit is None or lit[1] != titles[target]:
            raise TargetError(
                self.host,
                f"tried to highlight {titles[target]!r} but GRUB highlights "
                f"{lit[1] if lit else None!r}",
            )
        return titles[target]

    def _all_titles_by_walking(self) -> list[str]:
        """Entries do not all fit the box: Home, then Down through the list, one by one."""
        self.key(KEY_HOME_MENU, "Home in the menu")
        titles: list[str] = []
        while True:
            lit = self.highlighted()
            if lit is None:
                raise TargetError(self.host, "no highlighted entry in GRUB's menu")
            titles.append(lit[1])
            before = self.snapshot()
            self.key(KEY_DOWN, "Down in the menu")
            if self.snapshot() == before:
                return titles
            if len(titles) > 1000:
                raise TargetError(self.host, "GRUB's menu seems endless")

    # ------------------------------------------------------------------ editor

    def open_editor(self, username: bytes | None, password: bytes | None) -> None:
        """Press ``e``; answer a superusers prompt; wait for the editor screen."""
        self.key(b"e", "`e' (edit entry)")
        if _USER_PROMPT in self.text():
            if username is None or password is None:
                self.key(ESC, "Esc at the username prompt")
                raise TargetError(
                    self.host,
                    "GRUB asks for a superuser to edit entries; give a username and password",
                )
            self._esc_gap()
            self.con.send_paced(username + b"\r", max(self.char_delay, 0.02))
            self.expect([re.compile(re.escape(_PASSWORD_PROMPT.encode()))], self.key_timeout)
            self.con.send_paced(password + b"\r", max(self.char_delay, 0.02))
            found = self.expect(
                [re.compile(re.escape(text.encode())) for text in (_EDITOR_HELP, _MENU_HELP)],
                30.0,
            )
            self.pump(self.quiet * 2)
            if found.index == 1:
                raise TargetError(self.host, "GRUB refused the superuser name or password")
        if not self.on_editor():
            raise TargetError(self.host, f"GRUB's entry editor did not open:\n{self.text()}")

    def read_lines(self) -> list[ChainLine]:
        """Walk the editor from the top and note each line's command, options and image.

        Each step is Ctrl-E, Down, Ctrl-A: from a line's end Down reaches the next *line*
        (from column 0 of a wrapped line GRUB would move to its second row), and Ctrl-A puts
        the cursor on the new line's first row, where its command is readable. The walk ends
        when Down changes nothing; ``self.line`` is then the last line's index.
        """
        self.key(CTRL_A, "Ctrl-A")
        found: list[ChainLine] = []
        index = 0
        while True:
            words = self.row(self.screen.cursor.y, TEXT_COL, MARKER_COL).split()
            line = split_command(index, words)
            if line is not None:
                found.append(line)
            self.key(CTRL_E, "Ctrl-E")
            before = self.snapshot()
            self.key(KEY_DOWN, "Down in the editor")
            if self.snapshot() == before:
                break
            self.key(CTRL_A, "Ctrl-A")
            index += 1
            if index > 500:
                raise TargetError(self.host, "GRUB's entry editor seems endless")
        self.line = index
        return found

    def goto_index(self, target: ChainLine) -> None:
        """Move to the editor line ``target`` came from and check it is still that line."""
        while self.line != target.index:
            if self.line > target.index:
                self.key(CTRL_A, "Ctrl-A")
                self.key(KEY_UP, "Up in the editor")
                self.line -= 1
            else:
                self.key(CTRL_E, "Ctrl-E")
                self.key(KEY_DOWN, "Down in the editor")
                self.line += 1
        self.key(CTRL_A, "Ctrl-A")
        words = self.row(self.screen.cursor.y, TEXT_COL, MARKER_COL).split()
        seen = split_command(target.index, words)
        if seen is None or (seen.command, seen.image) != (target.command, target.image):
            raise TargetError(
                self.host,
                f"expected the `{target.command} {target.image}' line in GRUB's editor but "
                f"the cursor is on {' '.join(words)!r}",
            )

    def edit_loader(
        self, command: str, options: Options, kind: Kind, retries: int
    ) -> tuple[str, str]:
        """Edit the ``command`` line under the cursor; return its arguments (before, after)."""
        self.key(CTRL_E, "Ctrl-E")
        current = self.line_at_cursor()
        m = _LOADER.match(current)
        if m is None:
            raise TargetError(self.host, f"cannot parse the {command} line {current!r}")
        head, args = m.group("head"), m.group("args") or ""
        new_args = merge(args, options.options, options.remove, kind=kind)
        if new_args.split() == args.split():
            return args, args
        intended = f"{head.strip()} {new_args}"
        if not args:
            self.type_text(" " + new_args, careful=False)  # append at the end
        elif new_args.startswith(args + " "):
            self.type_text(new_args[len(args) :], careful=False)
        else:
            self._retype(intended, careful=False)
        for _ in range(retries):
            if self.line_at_cursor().split() == intended.split():
                return args, new_args
            self._retype(intended, careful=True)
        seen = self.line_at_cursor()
        if seen.split() == intended.split():
            return args, new_args
        self.key(ESC, "Esc (discard edits)")
        raise TargetError(
            self.host,
            f"typed {intended!r} into GRUB's editor {retries + 1} times but it shows {seen!r} "
            "(keystrokes lost on the line); edits discarded with Esc, GRUB is at its menu",
        )

    def _retype(self, line: str, *, careful: bool) -> None:
        """Ctrl-A, Ctrl-K (only on a non-empty line: on an empty one it joins the next), type."""
        self.key(CTRL_A, "Ctrl-A")
        y = self.screen.cursor.y
        if self.row(y, TEXT_COL, MARKER_COL).strip() or self._continues(y):
            self.key(CTRL_K, "Ctrl-K")
        self.type_text(line, careful=careful)

    # ------------------------------------------------------------------ boot

    def boot(self) -> None:
        """Ctrl-X: boot the edited entry once (never Enter, which inserts a newline)."""
        self._esc_gap()
        self.con.send(CTRL_X)

    def booted_xen_cmdline(self, timeout: float) -> str:
        found = self.con.expect([XEN_CMDLINE, TIMEOUT], timeout)
        if found.index == 1 or found.match is None:
            raise TargetError(
                self.host,
                f"no '(XEN) Command line:' within {timeout:g}s of booting; cannot confirm the "
                "booted line (does the profile send Xen's console to this serial line?)",
            )
        return found.match.group(1).decode("utf-8", "replace").strip()
