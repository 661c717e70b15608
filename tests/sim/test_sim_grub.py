"""The GRUB 2.06 model, judged by what a person would see in a real terminal emulator (pyte).

The model's bytes are rendered with pyte (an independent VT100 implementation), never with the
model's own screen helper, except where that helper itself is under test.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pyte
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from solcap.sim.grub import BootRequest, GrubEntry, GrubMenu

pytestmark = pytest.mark.timeout(60)

SAMPLE = (
    Path(__file__).resolve().parents[1] / "data" / "samples" / "sol-session-grub2.06-xen4.17.raw"
)
XEN_TITLE = "Xen 4.17 hypervisor + Debian Linux Dom0 (busybox initramfs)"
XEN_LINE = (
    "multiboot2 /boot/xen.gz com1=38400,8n1 console=com1 loglvl=all guest_loglvl=all "
    "dom0_mem=512M,max:512M dom0_max_vcpus=1"
)
SAMPLE_ENTRIES = (
    GrubEntry(
        XEN_TITLE,
        (
            "echo 'Loading Xen 4.17 ...'",
            XEN_LINE,
            "echo 'Loading Linux (Dom0) ...'",
            "module2 /boot/vmlinuz console=hvc0 earlyprintk=xen loglevel=7 panic=30",
            "echo 'Loading initial ramdisk ...'",
            "module2 /boot/initrd.img",
        ),
    ),
    GrubEntry(
        "Debian Linux (no hypervisor, console on ttyS0)",
        ("linux /boot/vmlinuz console=ttyS0", "initrd /boot/initrd.img"),
    ),
)
SHORT_ENTRY = GrubEntry("Short", ("echo 'hi'", "linux /vmlinuz ro", "initrd /initrd.img"))

UP, DOWN, RIGHT, LEFT = b"\x1b[A", b"\x1b[B", b"\x1b[C", b"\x1b[D"
CTRL_A, CTRL_D, CTRL_E, CTRL_K, CTRL_X = b"\x01", b"\x04", b"\x05", b"\x0b", b"\x18"
DELETE, F10, HOME, END = b"\x1b[3~", b"\x1b[21~", b"\x1b[H", b"\x1b[F"


class Term:
    """A GrubMenu wired to a pyte screen, with a clock the test moves by hand."""

    def __init__(self, menu: GrubMenu, now: float = 100.0) -> None:
        self.menu = menu
        self.now = now
        self.screen = pyte.Screen(80, 24)
        self.stream = pyte.ByteStream(self.screen)
        self.raw = bytearray()

    def _show(self, data: bytes) -> bytes:
        self.raw += data
        self.stream.feed(data)
        return data

    def start(self) -> bytes:
        return self._show(self.menu.start(self.now))

    def key(self, data: bytes, advance: float = 0.2) -> bytes:
        """Type ``data`` as one burst, then let ``advance`` seconds pass."""
        out = self._show(self.menu.feed(data, self.now))
        return out + self.wait(advance)

    def wait(self, seconds: float) -> bytes:
        """Move the clock forward, calling tick() at every deadline on the way."""
        end = self.now + seconds
        out = bytearray()
        while True:
            deadline = self.menu.next_deadline()
            if deadline is None or deadline > end:
                break
            self.now = max(self.now, deadline)
            out += self._show(self.menu.tick(self.now))
        self.now = end
        out += self._show(self.menu.tick(self.now))
        return bytes(out)

    def row(self, n: int) -> str:
        """Screen row ``n`` (1-based, like ESC[n;…H), trailing blanks stripped."""
        return str(self.screen.display[n - 1]).rstrip()

    def text(self) -> str:
        return "\n".join(line.rstrip() for line in self.screen.display)

    def reverse_row(self) -> int | None:
        """The 1-based row whose title cell (column 4) is drawn in reverse video."""
        for y in range(24):
            if self.screen.buffer[y][3].reverse:
                return y + 1
        return None

    def cursor(self) -> tuple[int, int]:
        """Cursor as 1-based (row, column)."""
        return self.screen.cursor.y + 1, self.screen.cursor.x + 1


def make(entries: tuple[GrubEntry, ...] = SAMPLE_ENTRIES, **kw: object) -> Term:
    term = Term(GrubMenu(entries, **kw))  # type: ignore[arg-type]
    term.start()
    return term


def editor(entry: GrubEntry = SHORT_ENTRY) -> Term:
    term = make((entry, SAMPLE_ENTRIES[1]), timeout=-1)
    term.key(b"e")
    return term


# --- against the real capture ------------------------------------------------------------------


def sample_session() -> tuple[bytes, bytes]:
    data = SAMPLE.read_bytes()
    begin = data.index(b"[SOL Session operational.")
    begin = data.index(b"\r\n", begin) + 2
    countdown = data.index(b"   The highlighted entry", begin)
    first_draw = data[begin : data.index(b"\x1b", countdown)]
    grub_part = data[begin : data.index(b"(XEN)", begin)]
    return first_draw, grub_part


def test_first_menu_draw_is_byte_identical_to_the_sample() -> None:
    first_draw, _ = sample_session()
    out = GrubMenu(SAMPLE_ENTRIES, timeout=8).start(0.0)
    # The sample's draw continues with the cursor parked on the highlighted entry.
    assert out == first_draw + b"\x1b[5;78H"
    assert hashlib.sha256(out[: len(first_draw)]).hexdigest() == (
        hashlib.sha256(first_draw).hexdigest()
    )


def test_whole_sample_session_is_reproduced_byte_for_byte() -> None:
    """`e`, three Down, Ctrl-E, typing " solcap_edit=1", Ctrl-X — as in the capture."""
    _, grub_part = sample_session()
    menu = GrubMenu(SAMPLE_ENTRIES, timeout=8)
    out = menu.start(0.0) + menu.feed(b"e", 0.5)
    now = 0.6
    for chunk in [DOWN] * 3 + [CTRL_E] + [bytes([c]) for c in b" solcap_edit=1"] + [CTRL_X]:
        now += 0.2
        out += menu.feed(chunk, now)
    assert out == grub_part
    assert menu.booted == BootRequest(
        XEN_TITLE,
        (
            "echo 'Loading Xen 4.17 ...'",
            XEN_LINE + " solcap_edit=1",
            "echo 'Loading Linux (Dom0) ...'",
            "module2 /boot/vmlinuz console=hvc0 earlyprintk=xen loglevel=7 panic=30",
            "echo 'Loading initial ramdisk ...'",
            "module2 /boot/initrd.img",
        ),
        True,
    )


# --- menu --------------------------------------------------------------------------------------


def test_menu_shows_header_box_titles_help_and_highlight() -> None:
    term = make()
    assert term.row(2).strip() == "GNU GRUB  version 2.06-13+deb12u2"
    assert term.row(4) == " +" + "-" * 76 + "+"
    assert term.row(5).startswith(" |*" + XEN_TITLE)
    assert term.row(6).startswith(" | Debian Linux (no hypervisor, console on ttyS0)")
    assert term.row(19).strip() == "Use the ^ and v keys to select which entry is highlighted."
    assert term.reverse_row() == 5
    assert term.screen.cursor.hidden
    assert term.row(22) == "   The highlighted entry will be executed automatically in 5s."


def test_arrows_and_emacs_keys_move_the_highlight() -> None:
    entries = tuple(GrubEntry(f"Entry {i}", (f"linux /k{i}",)) for i in range(4))
    term = make(entries)
    term.key(DOWN)
    assert term.reverse_row() == 6 and term.row(6).startswith(" |*Entry 1")
    assert term.row(5).startswith(" | Entry 0")
    term.key(b"\x0e")  # Ctrl-N
    assert term.reverse_row() == 7
    term.key(UP)
    assert term.reverse_row() == 6
    term.key(END)
    assert term.reverse_row() == 8
    term.key(DOWN)  # already last: stays
    assert term.reverse_row() == 8
    term.key(b"\x1b[1~")  # Home, VT220 style
    assert term.reverse_row() == 5
    term.key(b"\r")
    assert term.menu.booted == BootRequest("Entry 0", ("linux /k0",), False)


def test_countdown_decreases_every_second_and_boots_the_default() -> None:
    term = make(timeout=3, default=1)
    start = term.now
    assert term.menu.next_deadline() == pytest.approx(start + 1.0)
    term.wait(1.0)
    assert "automatically in 2s." in term.row(22)
    term.wait(1.0)
    assert "automatically in 1s." in term.row(22)
    assert term.menu.booted is None
    term.wait(1.0)
    booted = term.menu.booted
    assert booted == BootRequest(
        "Debian Linux (no hypervisor, console on ttyS0)",
        ("linux /boot/vmlinuz console=ttyS0", "initrd /boot/initrd.img"),
        False,
    )
    assert term.row(1) == "  Booting `Debian Linux (no hypervisor, console on ttyS0)'"
    assert term.menu.next_deadline() is None
    assert term.menu.feed(b"\r", term.now) == b""


def test_any_key_stops_the_countdown_for_good() -> None:
    term = make(timeout=5)
    term.wait(1.0)
    assert "in 4s." in term.row(22)
    term.key(b"x")  # not a menu key, but it still stops the countdown
    assert term.row(22) == "" and term.row(23) == ""
    assert term.menu.next_deadline() is None
    term.wait(30.0)
    assert term.menu.booted is None
    assert term.row(22) == ""


def test_echo_lines_are_printed_when_booting_from_the_menu() -> None:
    term = make(timeout=5)
    term.key(b"\r")
    assert term.menu.booted is not None and not term.menu.booted.edited
    assert term.row(1) == "Loading Xen 4.17 ..."
    assert term.row(3) == "Loading initial ramdisk ..."


def test_timeout_zero_boots_immediately() -> None:
    menu = GrubMenu(SAMPLE_ENTRIES, timeout=0)
    out = menu.start(0.0)
    assert b"Booting `" + XEN_TITLE.encode() in out
    assert menu.booted is not None and menu.booted.title == XEN_TITLE


def test_many_entries_scroll_with_indicators() -> None:
    entries = tuple(GrubEntry(f"Entry {i:02d}", ("linux /k",)) for i in range(15))
    term = make(entries, timeout=-1)
    assert term.row(16).endswith("v") and term.row(5)[79:] == ""
    for _ in range(13):
        term.key(DOWN)
    assert term.row(16).startswith(" |*Entry 13")
    assert term.row(5)[79] == "^"
    term.key(b"\x0c")  # Ctrl-L redraws everything the same way
    assert term.row(16).startswith(" |*Entry 13") and term.row(5)[79] == "^"


def test_ctrl_l_redraws_the_menu() -> None:
    term = make(timeout=-1)
    term.screen.reset()
    term.key(b"\x0c")
    assert term.row(5).startswith(" |*" + XEN_TITLE)


def test_c_opens_a_minimal_command_line() -> None:
    term = make(timeout=-1)
    term.key(b"c")
    assert term.text().rstrip().endswith("grub>")
    term.key(b"echo hello\r")
    assert "hello" in term.text().splitlines()
    term.key(b"frobnicate\r")
    assert "error: can't find command `frobnicate'." in term.text()
    term.key(b"\x1b", advance=0.2)
    assert term.row(5).startswith(" |*" + XEN_TITLE)


# --- timeout styles and password -------------------------------------------------------------


def test_hidden_timeout_boots_silently() -> None:
    term = make(timeout=2, timeout_style="hidden")
    assert "GNU GRUB" not in term.text()
    term.key(b"x")  # ordinary keys do not interrupt a hidden timeout
    term.wait(2.0)
    assert term.menu.booted is not None and term.menu.booted.title == XEN_TITLE
    assert "Booting" not in term.text()
    assert term.row(1) == "Loading Xen 4.17 ..."


@pytest.mark.parametrize("key", [b"\x1b", b"\x1bOx", b"\x1b[[D"], ids=["esc", "f4", "f4-linux"])
def test_hidden_timeout_esc_or_f4_shows_the_menu(key: bytes) -> None:
    term = make(timeout=5, timeout_style="hidden")
    term.key(key, advance=0.3)
    assert term.row(5).startswith(" |*" + XEN_TITLE)
    assert term.row(22) == ""
    term.wait(10.0)
    assert term.menu.booted is None


def test_password_protects_the_editor() -> None:
    term = make(timeout=-1, password=("root", "s3cret"))
    term.key(b"e")
    assert term.row(1) == "Enter username:"
    term.key(b"root\r")
    assert term.row(2) == "root"
    assert term.row(3) == "Enter password:"
    term.key(b"s3cret")
    assert "s3cret" not in term.text()
    term.key(b"\r")
    assert term.row(5).startswith(" |setparams '" + XEN_TITLE)


def test_wrong_password_returns_to_the_menu_after_a_delay() -> None:
    term = make(timeout=-1, password=("root", "s3cret"))
    term.key(b"e")
    term.key(b"root\r")
    term.key(b"guess\r", advance=0.5)
    assert "Enter password:" in term.text()
    term.wait(0.6)
    assert term.row(5).startswith(" |*" + XEN_TITLE)
    term.key(b"e")
    assert term.row(1) == "Enter username:"  # still not authenticated


# --- editor -------------------------------------------------------------------------------------


def test_e_shows_setparams_blank_line_then_the_entry() -> None:
    term = make(timeout=-1)
    term.key(b"e")
    assert term.row(5) == " |setparams '" + XEN_TITLE + "'" + " " * 5 + "|"
    assert term.row(6) == " |" + " " * 76 + "|"
    assert term.row(7).startswith(" |        echo 'Loading Xen 4.17 ...'")
    assert term.row(8).startswith(" |        multiboot2 /boot/xen.gz")
    assert term.row(19).strip().startswith("Minimum Emacs-like screen editing is supported.")
    assert term.cursor() == (5, 3)
    assert not term.screen.cursor.hidden


def test_ctrl_e_and_typing_append_to_the_line() -> None:
    term = editor()
    term.key(DOWN * 3)  # the linux line is the 4th
    term.key(CTRL_E)
    assert term.cursor() == (8, 3 + 8 + len("linux /vmlinuz ro"))
    for c in b" quiet":
        term.key(bytes([c]), advance=0.05)
    assert term.row(8).startswith(" |        linux /vmlinuz ro quiet ")
    assert term.cursor() == (8, 3 + 8 + len("linux /vmlinuz ro quiet"))
    term.key(CTRL_X)
    assert term.row(1) == "  Booting a command list"
    assert term.row(3) == "hi"
    assert term.menu.booted == BootRequest(
        "Short", ("echo 'hi'", "linux /vmlinuz ro quiet", "initrd /initrd.img"), True
    )


def test_enter_splits_the_line() -> None:
    term = editor()
    term.key(DOWN * 3 + CTRL_A + RIGHT * 14)  # after "        linux "
    term.key(b"\r")
    assert term.row(8).startswith(" |        linux  ")
    assert term.row(9).startswith(" |/vmlinuz ro ")
    assert term.row(10).startswith(" |        initrd /initrd.img")
    assert term.cursor() == (9, 3)
    term.key(F10)
    assert term.menu.booted is not None
    assert term.menu.booted.lines == ("echo 'hi'", "linux", "/vmlinuz ro", "initrd /initrd.img")


@pytest.mark.parametrize("backspace", [b"\x7f", b"\x08"], ids=["del", "ctrl-h"])
def test_backspace_at_column_zero_joins_lines(backspace: bytes) -> None:
    term = editor()
    term.key(DOWN * 4 + CTRL_A)  # start of the initrd line
    term.key(backspace)
    assert term.row(8).startswith(" |        linux /vmlinuz ro        initrd /initrd.img")
    assert term.row(9) == " |" + " " * 76 + "|"
    assert term.cursor() == (8, 3 + len("        linux /vmlinuz ro"))
    term.key(backspace * 2)
    assert term.row(8).startswith(" |        linux /vmlinuz         initrd /initrd.img ")
    term.key(CTRL_X)
    assert term.menu.booted is not None
    assert term.menu.booted.lines == ("echo 'hi'", "linux /vmlinuz         initrd /initrd.img")


def test_ctrl_k_kills_to_end_of_line_and_ctrl_y_yanks() -> None:
    term = editor()
    term.key(DOWN * 3 + CTRL_A + RIGHT * 14)
    term.key(CTRL_K)
    assert term.row(8) == " |        linux" + " " * 63 + "|"
    term.key(DOWN + CTRL_E + b"\x19")  # Ctrl-Y at the end of the initrd line
    assert term.row(9).startswith(" |        initrd /initrd.img/vmlinuz ro ")
    term.key(CTRL_X)
    assert term.menu.booted is not None
    assert term.menu.booted.lines[1:] == ("linux", "initrd /initrd.img/vmlinuz ro")


def test_delete_and_ctrl_d_remove_the_character_under_the_cursor() -> None:
    term = editor()
    term.key(DOWN * 3 + CTRL_A + RIGHT * 8)
    term.key(DELETE)
    assert term.row(8).startswith(" |        inux /vmlinuz ro ")
    term.key(CTRL_D)
    assert term.row(8).startswith(" |        nux /vmlinuz ro ")
    term.key(END + DELETE)  # at the end of a line Delete joins the next one
    assert term.row(8).startswith(" |        nux /vmlinuz ro        initrd")


def test_bare_esc_discards_only_after_100_ms() -> None:
    term = editor()
    term.key(DOWN * 3 + CTRL_E + b"X")
    term.key(b"\x1b", advance=0.0)
    assert term.menu.next_deadline() == pytest.approx(term.now + 0.1)
    term.wait(0.05)
    assert term.menu.state == "editor"
    term.key(b"[A", advance=0.0)  # within 100 ms: ESC [ A is the Up arrow
    assert term.menu.state == "editor"
    assert term.cursor() == (7, 3 + 8 + len("echo 'hi'"))
    term.key(b"\x1b", advance=0.099)
    assert term.menu.state == "editor"
    term.wait(0.002)
    assert term.menu.state == "menu"
    assert term.row(5).startswith(" |*Short")
    term.key(b"\r")
    assert term.menu.booted == BootRequest("Short", SHORT_ENTRY.lines, False)


def test_esc_followed_by_another_byte_is_esc_then_that_key() -> None:
    term = editor()
    term.key(b"\x1bv", advance=0.3)  # ESC discards; 'v' moves the menu highlight down
    assert term.menu.state == "menu"
    assert term.reverse_row() == 6


def test_long_lines_wrap_with_a_backslash_marker() -> None:
    long = "linux /vmlinuz " + " ".join(f"opt{i}=value{i}" for i in range(12))
    term = editor(GrubEntry("Long", ("echo 'hi'", long, "initrd /initrd.img")))
    full = "        " + long
    assert len(full) > 150
    assert term.row(8) == " |" + full[:75] + "\\|"
    assert term.row(9) == " |" + full[75:150] + "\\|"
    assert term.row(10) == " |" + full[150:].ljust(76) + "|"
    assert term.row(11).startswith(" |        initrd")
    term.key(DOWN * 3 + CTRL_E)
    assert term.cursor() == (10, 3 + len(full) - 150)
    # Grow the line by a row: everything below moves down.
    term.key(b"x" * (76 - (len(full) - 150)))
    assert term.row(10).endswith("\\|")
    assert term.row(12).startswith(" |        initrd")


def test_editor_scrolls_when_the_cursor_leaves_the_box() -> None:
    body = tuple(f"echo line{i}" for i in range(20))
    term = editor(GrubEntry("Many", body))
    assert term.row(16)[79] == "v"
    term.key(DOWN * 14)  # line index 14 = "echo line12"
    assert term.row(16).startswith(" |        echo line12")
    assert term.row(5)[79] == "^"
    assert term.cursor()[0] == 16
    term.key(UP * 14)
    assert term.row(5).startswith(" |setparams 'Many'")


def test_unknown_sequence_bytes_are_delivered_as_keys() -> None:
    term = editor()
    term.key(b"\x1b[9", advance=0.3)  # times out after '9': ESC, '[' and '9' are keys
    assert term.menu.state == "menu"


def test_screen_text_helper_matches_pyte() -> None:
    term = editor()
    term.key(DOWN * 3 + CTRL_E + b" quiet")
    assert term.menu.screen_text() == [line.rstrip() for line in term.screen.display]


# --- a property: incremental redraws always equal a full redraw --------------------------------

EDIT_KEYS = [UP, DOWN, LEFT, RIGHT, CTRL_A, CTRL_E, CTRL_K, CTRL_D, DELETE, b"\x7f", b"\r"]
EDIT_KEYS += [b"\x19", b"\x0f", b"a", b"Z", b" ", b"=" * 30]


def expected_rows(lines: list[str], y_start: int) -> list[str]:
    rows: list[str] = []
    for line in lines:
        chunks = [line[i : i + 75] for i in range(0, len(line), 75)] or [""]
        rows += [c + "\\" for c in chunks[:-1]] + [chunks[-1].ljust(76)]
    visible = rows[-y_start:][:12]
    return visible + [" " * 76] * (12 - len(visible))


@settings(max_examples=40, deadline=None)
@given(st.lists(st.sampled_from(EDIT_KEYS), max_size=40))
def test_incremental_redraw_matches_a_full_render(keys: list[bytes]) -> None:
    long = "module2 /boot/vmlinuz " + "x" * 118  # 148 columns: edits cross the 150 boundary
    term = editor(GrubEntry("P", ("echo 'hi'", long, "initrd /i")))
    term.key(DOWN * 3 + CTRL_E)  # start at the end of the long line
    for k in keys:
        term.key(k, advance=0.0)
    term.wait(0.2)
    assert term.menu.state == "editor"
    model = term.menu
    shown = [str(term.screen.display[r])[2:78] for r in range(4, 16)]
    # White-box: the model's own buffer, rendered from scratch, is what the terminal shows.
    assert shown == expected_rows(model._lines, model._y_start)
    row, col = term.cursor()
    assert 5 <= row <= 16 and 3 <= col <= 78
