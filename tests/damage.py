"""Damaged documents: one definition of "a broken file", shared by every suite that reads one.

The CLI fuzz suite (tests/fuzz/) draws from :func:`damaged` and :func:`damaged_bytes`; the
malformed-file tests (tests/cli/test_damaged_files.py) walk :func:`fixed_damage`, the same kinds
of damage at fixed places, so a failure there is a named case rather than a hypothesis example.
What a real file goes through: cut short by a full disk or a kill mid-write (truncation, at a
line or inside one), lines deleted, duplicated or replaced by a hostile value, NUL bytes (a
sparse file, a binary pasted in), bytes that are not UTF-8, a value of the wrong type, nesting
thousands deep, one enormous line. Endless input (``/dev/zero``) is :data:`ENDLESS`: a path,
since no file can hold it.
"""

from __future__ import annotations

import json

from hypothesis import strategies as st

#: A path that never ends when read; every reader must stop at its size cap.
ENDLESS = "/dev/zero"

#: Values that break parsers: unclosed brackets and quotes, YAML tags and anchors, absurd
#: numbers, bad host ranges, deep nesting on one line, a replacement character, bidi control.
HOSTILE_VALUES = (
    '"',
    "[",
    "{",
    "- - -",
    "&a *a",
    "!!python/object:os.system",
    "1e999",
    "x" * 300,
    "node[1:5:0]",
    "node[1:99999999]",
    "a = " + "[" * 3000,
    "\ufffd",
    "ø\u202e",
    "\t",
    "\x00",
)
HOSTILE_LINES = st.sampled_from(HOSTILE_VALUES)


@st.composite
def damaged(
    draw: st.DrawFn,
    text: str,
    *,
    least: int = 0,
    values: st.SearchStrategy[str] = HOSTILE_LINES,
) -> str:
    """``text`` with ``least`` to three line edits: delete, duplicate, hostile value (drawn
    from ``values``), insert, cut."""
    lines = text.splitlines()
    for _ in range(draw(st.integers(least, 3))):
        if not lines:
            break
        i = draw(st.integers(0, len(lines) - 1))
        op = draw(st.sampled_from(["delete", "duplicate", "value", "insert", "cut"]))
        if op == "delete":
            del lines[i]
        elif op == "duplicate":
            lines.insert(i, lines[i])
        elif op == "value":
            head, sep, _ = lines[i].partition("=" if "=" in lines[i] else ":")
            lines[i] = head + (sep or ":") + " " + draw(values)
        elif op == "insert":
            lines.insert(i, draw(values))
        else:
            lines[i] = lines[i][: draw(st.integers(0, len(lines[i])))]
            lines = lines[: i + 1]
    return "\n".join(lines) + "\n"


def _deep(kind: str) -> bytes:
    """Nesting far past any depth cap, in the syntax of ``kind``."""
    if kind == "toml":
        return b"a = " + b"[" * 5000 + b"]" * 5000 + b"\n"
    if kind in ("yaml", "ini"):
        return b"a: " + b"[" * 5000 + b"]" * 5000 + b"\n"
    return b"[" * 100_000


def _wrong_type(kind: str) -> bytes:
    """A well-formed document whose top level is not the mapping solcap expects."""
    if kind == "toml":
        return b'name = ["not", "a", "string"]\n'
    if kind == "json":
        return b"[1, 2]"
    if kind == "jsonl":
        return b'[1, 2]\n3\n"x"\n'
    if kind == "yaml":
        return b"- a\n- b\n"
    return b"\x00\x01\x02\n"


def fixed_damage(text: str, kind: str) -> list[tuple[str, bytes]]:
    """The damage kinds at fixed places, as ``(case id, content)``; ``kind`` is the syntax
    (``toml``, ``yaml``, ``ini``, ``json``, ``jsonl`` or ``text``)."""
    data = text.encode()
    lines = data.splitlines(keepends=True)
    mid = len(data) // 2
    cases = [
        ("empty", b""),
        ("truncated-half", data[:mid]),
        ("truncated-one-byte", data[:1]),
        ("truncated-last-line", b"".join(lines[:-1]) + lines[-1][: len(lines[-1]) // 2]),
        ("nul-inside", data[:mid] + b"\x00" + data[mid:]),
        ("nul-only", b"\x00" * 64),
        ("not-utf8", data[:mid] + b"\xff\xfe" + data[mid:]),
        ("bom-then-garbage", b"\xef\xbb\xbf\xc3("),
        ("deep", _deep(kind)),
        ("wrong-type", _wrong_type(kind)),
        ("huge-line", data + b"x" * (2 << 20) + b"\n"),
        ("duplicated", data + data),
        ("lines-reversed", b"".join(reversed(lines))),
    ]
    for i, value in enumerate(HOSTILE_VALUES):
        cases.append((f"hostile-{i}", data + value.encode() + b"\n"))
    return cases


@st.composite
def damaged_bytes(draw: st.DrawFn, text: str, kind: str) -> bytes:
    """Either line edits (:func:`damaged`) or one of :func:`fixed_damage`'s whole-file kinds."""
    if draw(st.booleans()):
        return draw(damaged(text)).encode("utf-8", "surrogateescape")
    return draw(st.sampled_from(fixed_damage(text, kind)))[1]


def meta_json() -> str:
    """A recording's meta.json as solcap writes it (one segment), to damage."""
    segment = {"name": "h", "start": 0, "end": 5, "sha256": "0" * 64, "file": "keys/h.txt"}
    return json.dumps({"host": "x", "finished": True, "segments": [segment]}, indent=1)


EVENTS_JSONL = (
    '{"t": 0.0, "kind": "connect", "offset": 0, "target": "loop://"}\n'
    '{"t": 0.1, "kind": "key", "offset": 3, "key": "h"}\n'
    '{"t": 0.2, "kind": "closed", "offset": 6}\n'
)
KNOWN_HOSTS = (
    "[127.0.0.1]:2222 ssh-ed25519 "
    "AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n"
)
