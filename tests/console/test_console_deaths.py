"""Death-string scanning across arbitrary chunk boundaries: every occurrence, exactly once."""

from __future__ import annotations

import itertools
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from solcap.console.core import Console
from solcap.transports.base import Transport


class _Idle(Transport):
    name = "idle"

    def read(self, max_bytes: int, timeout: float) -> bytes:
        return b""

    def write(self, data: bytes) -> None:
        pass

    def close(self) -> None:
        pass


LITERALS = [b"aba", b"bb", b"a\nb"]


@settings(max_examples=300, deadline=None)
@given(
    data=st.lists(st.sampled_from(b"ab\n"), max_size=200).map(bytes),
    cut_points=st.lists(st.floats(min_value=0, max_value=1), max_size=40),
    overlap=st.integers(min_value=2, max_value=16),
)
@pytest.mark.timeout(120)
def test_each_literal_occurrence_reported_once(
    data: bytes, cut_points: list[float], overlap: int
) -> None:
    # The reader thread is never started: chunks are delivered by hand, in the test's order.
    console = Console(_Idle(), death_strings=LITERALS, death_overlap=overlap)
    cuts = sorted({int(f * len(data)) for f in cut_points} | {0, len(data)})
    for lo, hi in itertools.pairwise(cuts):
        console._deliver(data[lo:hi])
    reported = [d.pattern for d in console._pending_deaths]
    for literal in LITERALS:
        assert reported.count(literal) == len(re.findall(re.escape(literal), data)), literal
    console.close()
