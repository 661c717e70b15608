"""The incremental search used by expect finds exactly what a full rescan finds."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from solcap.console.core import search_buffer

PATTERNS = [
    rb"ab",
    rb"a b\n",
    rb"\bab\b",
    rb"b$",
    rb"(?m)^a",
    rb"(?<=x)ab",
    rb"a(?=b)",
    rb"a(?!b)",
    rb"a(?=[ x\n]*b)",
    rb"a.*b",
    rb"x[ab]{2,5}",
    rb"\n\n",
    rb"\Ab",
    rb"(?:ab){3}\B",
]


@settings(max_examples=400, deadline=None)
@given(
    data=st.lists(st.sampled_from(b"ab x\n"), max_size=120).map(bytes),
    cut_points=st.lists(st.floats(min_value=0, max_value=1), max_size=30),
    which=st.lists(st.sampled_from(range(len(PATTERNS))), min_size=1, max_size=3, unique=True),
    offset=st.integers(min_value=0, max_value=10_000),
)
@pytest.mark.timeout(120)
def test_incremental_equals_full_rescan(
    data: bytes, cut_points: list[float], which: list[int], offset: int
) -> None:
    cuts = [int(f * len(data)) for f in cut_points]
    compiled = [(i, re.compile(PATTERNS[i])) for i in which]
    ends = sorted({c for c in cuts if c <= len(data)} | {len(data)})
    scanned: int | None = None
    for end in ends:
        buf = bytearray(data[:end])
        incremental = search_buffer(buf, offset, compiled, scanned)
        full = search_buffer(buf, offset, compiled, None)
        assert (incremental is None) == (full is None)
        if incremental is not None and full is not None:
            assert incremental[0] == full[0] and incremental[2] == full[2]
            return  # expect would return here
        scanned = offset + end


@pytest.mark.parametrize(
    ("pattern", "old", "new"),
    [
        (rb"a(?= *b)", b"a" + b" " * 40, b"b"),  # lookahead reaching far past the match
        (rb"a.*b", b"a" + b"x" * 40, b"b"),  # unbounded width
        (rb"a[ x]{0,60}b", b"a" + b"x" * 40, b"b"),  # bounded but wide
    ],
)
@pytest.mark.timeout(10)
def test_matches_starting_far_before_the_old_end_are_found(
    pattern: bytes, old: bytes, new: bytes
) -> None:
    compiled = [(0, re.compile(pattern))]
    assert search_buffer(old, 100, compiled, None) is None
    hit = search_buffer(old + new, 100, compiled, 100 + len(old))
    assert hit is not None and hit[2] == 0
