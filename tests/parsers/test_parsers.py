"""Debug-key parsers on real Xen 4.17 captures, samples written from Xen's format strings,
the simulator's output at scale, and hostile input.

Real captures (``data/real-key-*.txt``) are the ground truth: their expected values below were
read off the files by hand, not produced by the parsers.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from solcap.parsers import PARSER_VERSION, PARSERS, parse_dump
from solcap.parsers.text import bitmap, cpulist, split_lines

DATA = Path(__file__).parent / "data"


def real(key: str) -> bytes:
    return (DATA / f"real-key-{key}.txt").read_bytes()


def written(name: str) -> bytes:
    return (DATA / name).read_bytes()


def check_common(result: dict[str, object] | None, key: str) -> dict[str, object]:
    assert result is not None
    assert result["key"] == key
    assert result["parser_version"] == PARSER_VERSION
    assert isinstance(result["unparsed"], list)
    json.dumps(result)  # JSON-ready, no custom encoder needed
    return result


# --------------------------------------------------------------------------- text layer
def test_split_lines_separates_dom0_stamps_and_escapes() -> None:
    raw = (
        b"(XEN) [2026-11-25 10:00:00.123] first\r\n"
        b"[   49.75] dom0 line\r\r\n"
        b"solcap-dom0:/# \x1b[6n(XEN) [    1.234567] second\r\n"
        b"(XEN) [00000012abcdef01] \tthird\x07\r\n"
        b"(XEN)\r\n"
        b"(XEN) cut"
    )
    lines = split_lines(raw)
    assert lines.xen == ["first", "second", "\tthird", "", "cut"]
    assert lines.foreign == ["[   49.75] dom0 line", "solcap-dom0:/#"]
    assert lines.timestamps == 3
    assert lines.partial_last


def test_split_lines_partial_dom0_prompt_is_not_truncation() -> None:
    lines = split_lines(b"(XEN) done\r\nroot@xenhost:~# ")
    assert lines.xen == ["done"]
    assert not lines.partial_last


def test_cpulist_and_bitmap() -> None:
    assert cpulist("0-3,6,8-9") == [0, 1, 2, 3, 6, 8, 9]
    assert cpulist("") == []
    assert cpulist("x") is None
    assert cpulist("3-1") is None
    assert bitmap("3") == [0, 1]
    assert bitmap("00000001,80000000") == [31, 32]
    assert bitmap("zz") is None


def test_registry() -> None:
    assert parse_dump("R", b"(XEN) 'R' pressed -> rebooting machine\r\n") is None
    assert {"h"} <= set(PARSERS)


# --------------------------------------------------------------------------- h
def test_h_real() -> None:
    r = check_common(parse_dump("h", real("h")), "h")
    handlers = r["handlers"]
    assert isinstance(handlers, dict)
    assert len(handlers) == 31
    assert handlers["q"] == "dump domain (and guest debug) info"
    assert handlers["%"] == "trap to xendbg"
    assert handlers["w"] == "synchronously dump console ring buffer (dmesg)"
    assert r["header"] is True
    assert r["unparsed"] == [] and r["foreign"] == [] and r["truncated"] is False


def test_h_nonprintable_keys_do_not_collide() -> None:
    raw = (
        b"(XEN) 'h' pressed -> showing installed handlers\r\n"
        b"(XEN)  key ' ' (ascii '01') => one\r\n"
        b"(XEN)  key ' ' (ascii '1b') => esc\r\n"
    )
    r = check_common(parse_dump("h", raw), "h")
    assert r["handlers"] == {"\x01": "one", "\x1b": "esc"}


# --------------------------------------------------------------------------- robustness
_NOISY = st.lists(
    st.one_of(
        st.binary(max_size=40),
        st.sampled_from(
            [
                b"(XEN) ",
                b"\r\n",
                b"\r\r\n",
                b"\x1b[",
                b"{",
                b"}",
                b"=",
                b"-",
                b"CPU[00] ",
                b"Domain 0 (total: ",
                b"General information for domain 1:\r\n",
                b"    VCPU0: CPU0 [has=T] poll=0 upcall_pend=00 upcall_mask=00 dirty_cpu=",
                b"Runqueue 0:\r\n",
            ]
        ),
    ),
    max_size=40,
).map(b"".join)


@pytest.mark.parametrize("key", sorted(PARSERS))
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=_NOISY)
def test_parsers_never_raise(key: str, data: bytes) -> None:
    check_common(parse_dump(key, data), key)
