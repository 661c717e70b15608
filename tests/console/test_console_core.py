"""Console logic on a real pseudo-terminal: what no transport changes.

Pattern semantics, usage errors, death strings across reads, the match buffer's limit, sink
failures and the lifecycle's edges. What a transport can change (byte-exact capture, expect
and its offsets, timeouts, sending, BREAK, close, end of file and reconnection) runs on every
transport in test_console_transports.py.
"""

from __future__ import annotations

import hashlib
import random
import re
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from solcap.console.core import EOF, TIMEOUT, Console, open_console
from solcap.errors import DeathStringSeen, ExpectTimeout, UsageError
from solcap.transports.base import Transport
from solcap.transports.serialport import SerialTransport
from tests.console.links import OneByteTransport

pytestmark = pytest.mark.timeout(60)


class Recorder:
    """A sink that keeps every chunk, so tests can compare the recording byte for byte."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []

    def __call__(self, chunk: bytes) -> None:
        self.chunks.append(chunk)

    @property
    def data(self) -> bytes:
        return b"".join(self.chunks)


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def con(pty_pair: Any, recorder: Recorder) -> Iterator[Console]:
    with Console(
        SerialTransport(pty_pair.path), sink=recorder, death_strings=[b"Panic on CPU"]
    ) as console:
        yield console


@pytest.fixture
def slow_con(pty_pair: Any, recorder: Recorder) -> Iterator[Console]:
    transport = OneByteTransport(SerialTransport(pty_pair.path))
    with Console(transport, sink=recorder, death_strings=[b"Panic on CPU"]) as console:
        yield console


# ---------------------------------------------------------------- capture


def test_sink_is_byte_exact_for_a_mebibyte_in_random_chunks(pty_pair: Any) -> None:
    rng = random.Random(1234)
    payload = rng.randbytes(1 << 20)
    recorder = Recorder()
    with Console(SerialTransport(pty_pair.path), sink=recorder) as console:

        def target() -> None:
            i = 0
            while i < len(payload):
                n = rng.randint(1, 8192)
                pty_pair.write(payload[i : i + n])
                i += n

        writer = threading.Thread(target=target)
        writer.start()
        assert console.wait_for_bytes(len(payload), timeout=50) == len(payload)
        writer.join(10)
        assert hashlib.sha256(recorder.data).hexdigest() == hashlib.sha256(payload).hexdigest()
        # The match buffer saw the same bytes, once.
        assert hashlib.sha256(console.read_available()).digest() == hashlib.sha256(payload).digest()
        assert console.position == console.received == len(payload)


def test_max_buffer_drops_from_matching_only(pty_pair: Any) -> None:
    recorder = Recorder()
    payload = bytes(range(256)) * 40  # 10240 bytes
    with Console(SerialTransport(pty_pair.path), sink=recorder, max_buffer=1000) as console:
        pty_pair.write(payload)
        console.wait_for_bytes(len(payload), timeout=10)
        assert recorder.data == payload
        assert console.discarded == len(payload) - 1000
        assert console.position == len(payload) - 1000
        assert console.read_available() == payload[-1000:]


# ---------------------------------------------------------------- expect


def test_expect_tie_goes_to_first_pattern(con: Console, pty_pair: Any) -> None:
    pty_pair.write(b"abc")
    result = con.expect([rb"ab", rb"abc"], timeout=10)
    assert result.index == 0
    assert result.after == b"ab"


def test_expect_accepts_compiled_patterns_and_groups(con: Console, pty_pair: Any) -> None:
    pty_pair.write(b"(XEN) Xen version 4.17.3 (Debian)\r\n")
    result = con.expect(re.compile(rb"Xen version (\d+)\.(\d+)"), timeout=10)
    assert result.match is not None
    assert result.match.groups() == (b"4", b"17")


def test_match_survives_later_consumption(con: Console, pty_pair: Any) -> None:
    pty_pair.write(b"first=1 second=2")
    first = con.expect(rb"first=(\d)", timeout=10)
    con.expect(rb"second=(\d)", timeout=10)
    assert first.match is not None and first.match.group(1) == b"1"


def test_match_in_buffer_wins_over_eof(con: Console, pty_pair: Any) -> None:
    pty_pair.write(b"last words")
    con.wait_for_bytes(10, timeout=10)
    pty_pair.hang_up()
    assert con.expect([rb"words", EOF], timeout=10).index == 0


def test_bad_patterns_are_usage_errors(con: Console) -> None:
    with pytest.raises(UsageError, match="not str"):
        con.expect("login:")  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="bad expect pattern"):
        con.expect(rb"(unclosed")
    with pytest.raises(UsageError, match="at least one"):
        con.expect([])


def test_expect_before_start_is_usage_error(pty_pair: Any) -> None:
    console = Console(SerialTransport(pty_pair.path))
    try:
        with pytest.raises(UsageError, match="not started"):
            console.expect(rb"x", timeout=0.1)
    finally:
        console.close()


def test_second_concurrent_waiter_is_usage_error(con: Console, pty_pair: Any) -> None:
    errors: list[BaseException] = []
    entered = threading.Event()

    def first() -> None:
        entered.set()
        try:
            con.expect(rb"release", timeout=20)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=first)
    thread.start()
    assert entered.wait(5)
    # The first waiter may not hold the console yet; retry until it does (bounded).
    deadline = time.monotonic() + 10
    while True:
        try:
            con.expect([TIMEOUT], timeout=0)
        except UsageError as exc:
            assert "already waiting" in str(exc)
            break
        assert time.monotonic() < deadline
    pty_pair.write(b"release")
    thread.join(10)
    assert errors == []


# ---------------------------------------------------------------- death strings


def test_death_string_split_across_reads_reported_once(slow_con: Console, pty_pair: Any) -> None:
    pty_pair.write(b"boot...\r\nPanic on CPU 3:\r\nrebooting\r\n")
    with pytest.raises(DeathStringSeen) as info:
        slow_con.expect(rb"never", timeout=20)
    # Reported the moment it matched: the rest of the line had not arrived yet.
    assert info.value.context == b"Panic on CPU"
    # Reported once: the console stays usable and does not raise the same death again.
    assert slow_con.expect(rb"rebooting", timeout=20).index == 0
    assert slow_con.expect([rb"never", TIMEOUT], timeout=0.2).index == 1


def test_each_occurrence_is_reported(con: Console, pty_pair: Any) -> None:
    pty_pair.write(b"Panic on CPU 0\nPanic on CPU 1\nok")
    for _ in range(2):
        with pytest.raises(DeathStringSeen):
            con.expect(rb"ok", timeout=10)
    assert con.expect(rb"ok", timeout=10).index == 0


def test_regex_death_string_not_rereported_as_it_grows(pty_pair: Any) -> None:
    transport = OneByteTransport(SerialTransport(pty_pair.path))
    pattern = re.compile(rb"Kernel panic[^\n]*")
    with Console(transport, death_strings=[pattern]) as console:
        pty_pair.write(b"Kernel panic - not syncing: VFS\nmore\n")
        with pytest.raises(DeathStringSeen):
            console.expect(rb"more\n", timeout=20)
        assert console.expect(rb"more\n", timeout=20).index == 0
        assert console.expect([rb"x", TIMEOUT], timeout=0.2).index == 1


def test_death_string_seen_by_settle_and_wait(con: Console, pty_pair: Any) -> None:
    pty_pair.write(b"Panic on CPU 0")
    with pytest.raises(DeathStringSeen):
        con.wait_for_bytes(10_000, timeout=20)


def test_empty_death_pattern_rejected(pty_pair: Any) -> None:
    with pytest.raises(UsageError, match="empty"):
        Console(SerialTransport(pty_pair.path), death_strings=[re.compile(rb"x*")])


# ---------------------------------------------------------------- settle, read, drain


def test_settle_times_out_on_a_chatty_line(con: Console, pty_pair: Any) -> None:
    stop = threading.Event()

    def chatter() -> None:
        while not stop.wait(0.02):
            pty_pair.write(b".")

    thread = threading.Thread(target=chatter)
    thread.start()
    try:
        with pytest.raises(ExpectTimeout, match=r"did not go quiet for 0.5s within 1s"):
            con.settle(quiet=0.5, timeout=1.0)
    finally:
        stop.set()
        thread.join(5)


def test_settle_rejects_quiet_longer_than_timeout(con: Console) -> None:
    with pytest.raises(UsageError):
        con.settle(quiet=2, timeout=1)


# ---------------------------------------------------------------- sending


def test_send_str_is_usage_error(con: Console) -> None:
    with pytest.raises(UsageError):
        con.send("text")  # type: ignore[arg-type]


# ---------------------------------------------------------------- errors and lifecycle


def test_sink_failure_is_raised_once_and_recording_stops(pty_pair: Any) -> None:
    calls: list[bytes] = []

    def sink(chunk: bytes) -> None:
        calls.append(chunk)
        raise OSError(28, "No space left on device")

    with Console(SerialTransport(pty_pair.path), sink=sink) as console:
        pty_pair.write(b"abc")
        with pytest.raises(OSError, match="No space left") as info:
            console.expect(rb"abc", timeout=10)
        assert "recording stopped at stream offset 0" in "".join(info.value.__notes__)
        assert console.sink_error is info.value
        # Raised once; the console still works for matching, the sink is not called again.
        assert console.expect(rb"abc", timeout=10).index == 0
        pty_pair.write(b"def")
        assert console.expect(rb"def", timeout=10).index == 0
        assert len(calls) == 1  # not called again after it failed


def test_foreign_reader_error_is_raised_to_the_waiter() -> None:
    class Broken(Transport):
        name = "broken"

        def read(self, max_bytes: int, timeout: float) -> bytes:
            raise RuntimeError("driver bug")

        def write(self, data: bytes) -> None:
            pass

        def close(self) -> None:
            pass

    with Console(Broken()) as console, pytest.raises(RuntimeError, match="driver bug"):
        console.expect([rb"x", EOF], timeout=10)


def test_host_defaults_to_transport_name(pty_pair: Any) -> None:
    transport = SerialTransport(pty_pair.path)
    with Console(transport) as a:
        assert a.host == pty_pair.path
    with (
        Console(SerialTransport(pty_pair.path), host="xen-01") as b,
        pytest.raises(ExpectTimeout, match=r"^xen-01: "),
    ):
        b.expect(rb"x", timeout=0.05)


def test_loop_url_console_round_trip() -> None:
    with open_console("loop://", host="loopy") as console:
        assert console.host == "loopy"
        console.sendline(b"echo me")
        result = console.expect(rb"echo me\r", timeout=10)
        assert (result.start, result.end) == (0, 8)


def test_open_console_bad_death_string_closes_the_transport() -> None:
    from solcap.transports.registry import register_scheme

    opened: list[OneByteTransport] = []
    closed: list[bool] = []

    class Tracking(OneByteTransport):
        def close(self) -> None:
            closed.append(True)
            super().close()

    def factory(target: str, line: object) -> Transport:
        transport = Tracking(SerialTransport("loop://"))
        opened.append(transport)
        return transport

    register_scheme("solcaptrack", factory)
    with pytest.raises(UsageError):
        open_console("solcaptrack://x", death_strings=[re.compile(rb"")])
    assert len(opened) == 1 and closed == [True]
