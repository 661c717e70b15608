"""The escape rules of ``solcap console``, byte by byte (the pty tests drive the real thing)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from solcap.console.attach import EscapeFilter, help_text, parse_escape
from solcap.errors import UsageError

TILDE = ord("~")
Actions = list[tuple[str, bytes]]


def run(
    data: bytes, escape: int | None = TILDE, split: int | None = None
) -> list[tuple[str, bytes]]:
    keys = EscapeFilter(escape)
    parts = [data] if split is None else [data[:split], data[split:]]
    actions: Actions = []
    for part in parts:
        actions += keys.feed(part)
    # Merge neighbouring sends so the assertions read like what reaches the console.
    merged: Actions = []
    for kind, payload in actions:
        if kind == "send" and merged and merged[-1][0] == "send":
            merged[-1] = ("send", merged[-1][1] + payload)
        else:
            merged.append((kind, payload))
    return merged


def test_quit_at_start_and_after_cr_or_lf() -> None:
    assert run(b"~.") == [("quit", b"")]
    assert run(b"ls\r~.") == [("send", b"ls\r"), ("quit", b"")]
    assert run(b"ls\n~.") == [("send", b"ls\n"), ("quit", b"")]


def test_nothing_after_quit_is_sent() -> None:
    assert run(b"\r~.rm -rf /\r") == [("send", b"\r"), ("quit", b"")]


def test_tilde_mid_line_is_literal() -> None:
    assert run(b"a~.b") == [("send", b"a~.b")]
    assert run(b"cd ~\r") == [("send", b"cd ~\r")]


def test_double_tilde_sends_one() -> None:
    assert run(b"~~x\r") == [("send", b"~x\r")]
    # after ~~ we are mid-line: a following ~. is literal
    assert run(b"~~~.") == [("send", b"~~.")]


def test_unknown_escape_sends_both_characters() -> None:
    assert run(b"~x") == [("send", b"~x")]
    assert run(b"~\r~.") == [("send", b"~\r"), ("quit", b"")]


def test_break_and_help_then_another_escape() -> None:
    assert run(b"~B~?~.") == [("break", b""), ("help", b""), ("quit", b"")]
    assert run(b"x\r~Bz") == [("send", b"x\r"), ("break", b""), ("send", b"z")]


def test_escape_split_across_reads() -> None:
    for split in range(1, 4):
        assert run(b"\r~.", split=split) == [("send", b"\r"), ("quit", b"")]


def test_ctrl_a_always_passes_through() -> None:
    assert run(b"\x01\x01\x01") == [("send", b"\x01\x01\x01")]
    assert run(b"\r\x01\x01\x01~.") == [("send", b"\r\x01\x01\x01~.")]


def test_changed_and_disabled_escape() -> None:
    ctrl_bracket = 0x1D
    assert run(b"~.", escape=ctrl_bracket) == [("send", b"~.")]
    assert run(b"\x1d.", escape=ctrl_bracket) == [("quit", b"")]
    assert run(b"\x1d\x1d", escape=ctrl_bracket) == [("send", b"\x1d")]
    assert run(b"~.~B", escape=None) == [("send", b"~.~B")]


def test_parse_escape() -> None:
    assert parse_escape("~") == TILDE
    assert parse_escape("^]") == 0x1D
    assert parse_escape("%") == ord("%")
    assert parse_escape("none") is None
    with pytest.raises(UsageError, match="Ctrl-A cannot be the escape"):
        parse_escape("^A")
    with pytest.raises(UsageError, match="Ctrl-A cannot be the escape"):
        parse_escape("\x01")
    with pytest.raises(UsageError):
        parse_escape("ab")
    with pytest.raises(UsageError):
        parse_escape("^M")


def test_help_names_the_chosen_escape() -> None:
    assert " ^]." in help_text(0x1D)
    assert " ~~  - send the escape character" in help_text(TILDE)


@given(st.binary(max_size=200))
def test_without_tildes_everything_passes_unchanged(data: bytes) -> None:
    data = data.replace(b"~", b"")
    sent = b"".join(p for kind, p in run(data) if kind == "send")
    assert sent == data
    assert all(kind == "send" for kind, _ in run(data))


@given(st.binary(max_size=200), st.integers(min_value=0, max_value=200))
def test_any_split_gives_the_same_actions(data: bytes, split: int) -> None:
    assert run(data, split=min(split, len(data))) == run(data)
