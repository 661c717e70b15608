"""The Console's behaviour on every transport: the same tests, parametrised (tbot's habit).

Each test runs on each ``link`` (tests/console/links.py): a pty, a one-byte link, socket://,
ipmi:// to the virtual BMC and to ipmi_sim, and each of those under the reconnecting layer;
the console records into a real Recording and the test plays the host at the far end. Where
the transports differ the test says so: which far ends can see a BREAK, and what a dropped
link does with and without the reconnecting layer. Logic that no transport can change
(pattern syntax, usage errors, death strings cut at every boundary) stays in
test_console_core.py and the property tests.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import select
import threading
import time
import tty
from collections.abc import Iterator
from pathlib import Path

import pytest

from solcap.capture.recording import Recording
from solcap.config.credentials import PasswordSource
from solcap.connect import ConsoleSpec, open_console
from solcap.console.core import EOF, TIMEOUT
from solcap.errors import ConsoleClosed, DeathStringSeen, ExpectTimeout, UsageError
from solcap.sim.host import SimConfig, VirtualHost
from solcap.sim.xen import PROMPT
from tests.console.links import DEATH, HOST, FarEnd, Link
from tests.ipmi.conftest import PASSWORD

pytestmark = pytest.mark.timeout(30)


def _sha(data: bytes | bytearray) -> str:
    return hashlib.sha256(data).hexdigest()


# ---------------------------------------------------------------- capture


def test_capture_is_byte_exact_for_every_byte_value_in_random_chunks(link: Link) -> None:
    payload = bytes(range(256)) * 16 + random.Random(1234).randbytes(16 * 1024)
    sizes = random.Random(99)

    def host() -> None:
        i = 0
        while i < len(payload):
            n = sizes.randint(1, 4096)
            link.far.write(payload[i : i + n])
            i += n

    writer = threading.Thread(target=host)
    writer.start()
    try:
        assert link.console.wait_for_bytes(len(payload), timeout=20) == len(payload)
    finally:
        writer.join(10)
    assert _sha(link.far.written) == _sha(payload)
    assert _sha(link.recorded()) == _sha(payload)  # console.raw, as on disk
    # The match buffer saw the same bytes, once.
    assert _sha(link.console.read_available()) == _sha(payload)
    assert link.console.position == link.console.received == len(payload)


def test_every_byte_is_recorded_before_expect_returns_it(link: Link) -> None:
    link.far.write(b"unsolicited boot noise\r\nhello world\nlogin: ")
    first = link.console.expect(rb"world", timeout=10)
    assert (first.start, first.end) == (30, 35)
    assert link.recording.offset >= first.end
    assert link.recording.read_range(first.start, first.end) == b"world"
    second = link.console.expect(rb"login: ", timeout=10)
    assert (second.start, second.end) == (36, 43)
    assert link.console.received == 43
    assert link.recorded() == bytes(link.far.written)  # the unexpected noise too


# ---------------------------------------------------------------- expect


def test_expect_returns_the_earliest_match_and_keeps_the_rest(link: Link) -> None:
    link.far.write(b"xx bar yy foo")
    result = link.console.expect([rb"foo", rb"bar", TIMEOUT], timeout=10)
    assert (result.index, result.before) == (1, b"xx ")
    result = link.console.expect([rb"foo", rb"bar"], timeout=10)
    assert (result.index, result.before) == (0, b" yy ")


def test_a_timeout_keeps_the_buffer_and_names_the_host(link: Link) -> None:
    console = link.console
    link.far.write(b"GRUB loading.\r\n")
    console.wait_for_bytes(15, timeout=10)
    result = console.expect([rb"never", TIMEOUT], timeout=0.1)
    assert (result.index, result.match) == (1, None)
    assert result.before == b"GRUB loading.\r\n"
    assert (result.start, result.end) == (15, 15)
    with pytest.raises(ExpectTimeout) as info:
        console.expect([rb"never", rb"nor this"], timeout=0.1)
    message = info.value.one_line()
    assert message.startswith(f"{HOST}: waited 0.1s for [b'never', b'nor this']"), message
    assert "last bytes: b'GRUB loading.\\r\\n'" in message
    assert console.expect(rb"loading", timeout=10).before == b"GRUB "


def test_a_timeout_with_nothing_received_says_so(link: Link) -> None:
    with pytest.raises(ExpectTimeout, match="nothing received"):
        link.console.expect(rb"x", timeout=0.1)
    with pytest.raises(ExpectTimeout, match="for 5 bytes, got 0"):
        link.console.wait_for_bytes(5, timeout=0.1)


def test_a_death_string_aborts_a_long_expect_once(link: Link) -> None:
    line = b"(XEN) Panic on CPU 0:\r"
    timer = threading.Timer(
        0.1, link.far.write, args=(b"(XEN) ****\r\n" + line + b"\n(XEN) FATAL\r\n",)
    )
    start = time.monotonic()
    timer.start()
    with pytest.raises(DeathStringSeen) as info:
        link.console.expect(rb"login: ", timeout=25)
    timer.join()
    assert time.monotonic() - start < 10
    assert info.value.pattern == DEATH
    # The line as far as it had arrived when the pattern matched (a byte at a time: no more).
    context = info.value.context
    assert line.startswith(context) and context.startswith(b"(XEN) " + DEATH), context
    # Reported once: the console goes on and does not raise the same death again.
    assert link.console.expect(rb"FATAL\r\n", timeout=10).index == 0
    assert link.console.expect([rb"never", TIMEOUT], timeout=0.1).index == 1


def test_settle_returns_what_arrived_and_drain_spares_the_recording(link: Link) -> None:
    console = link.console
    link.far.write(b"menu redraw")
    assert console.settle(quiet=0.3, timeout=10) == b"menu redraw"
    assert console.position == 11
    link.far.write(b"old noise")
    console.wait_for_bytes(20, timeout=10)
    assert console.drain() == 9
    assert console.read_available() == b""
    assert link.recorded() == b"menu redrawold noise"


# ---------------------------------------------------------------- sending


def test_what_is_sent_reaches_the_far_end_exactly_once(link: Link) -> None:
    console = link.console
    console.send(b"raw")
    console.sendline("root")
    console.sendline()
    console.sendline(b"x", eol=b"\r\n")
    start = time.monotonic()
    console.send_paced(b"abcd", char_delay=0.05)
    assert time.monotonic() - start >= 0.15
    console.send(bytes(range(256)))
    console.send(b"|end")
    expected = b"raw" + b"root\r" + b"\r" + b"x\r\n" + b"abcd" + bytes(range(256)) + b"|end"
    # In order and once: a repeated keystroke would show up before the next one's bytes.
    assert link.far.read_until(b"|end", 10) == expected


def test_a_break_reaches_the_far_end(link: Link) -> None:
    if link.far.break_refused:
        # Refused in words (``~B`` says "BREAK not sent"), never dropped in silence.
        with pytest.raises(UsageError, match=f"^{HOST}: this transport cannot send a BREAK"):
            link.console.send_break()
        assert link.send_heard(b"after the refusal") == b"after the refusal"
        return
    if link.far.break_unseen is not None:
        pytest.skip(link.far.break_unseen)
    before = link.far.breaks()
    link.console.send_break()
    deadline = time.monotonic() + 5
    while link.far.breaks() == before and time.monotonic() < deadline:
        time.sleep(0.02)
    assert link.far.breaks() == before + 1
    assert link.send_heard(b"after the break") == b"after the break"  # the line goes on


# ---------------------------------------------------------------- the end of a link


def test_close_is_idempotent_bounded_and_lets_go_of_the_line(link: Link) -> None:
    console = link.console
    start = time.monotonic()
    console.close()
    console.close()
    assert time.monotonic() - start < 3
    assert console.closed
    with pytest.raises(ConsoleClosed, match="closed locally"):
        console.expect(rb"x", timeout=1)
    assert console.expect([EOF], timeout=1).index == 0
    with pytest.raises(ConsoleClosed):
        console.send(b"x")
    with pytest.raises(UsageError):
        console.start()
    # pty: the master reads EIO (no slave left); socket: the server reads the client's FIN;
    # a BMC: the payload was deactivated, so the next client activates without stealing.
    assert link.far.released(10)


def test_a_far_end_gone_for_good_is_eof(link: Link) -> None:
    link.far.write(b"Power down.\r\n")
    link.console.wait_for_bytes(13, timeout=10)
    link.far.hang_up()
    result = link.console.expect([rb"never", EOF], timeout=20)
    assert (result.index, result.before) == (1, b"Power down.\r\n")
    assert (result.start, result.end) == (13, 13)
    assert link.console.expect([EOF], timeout=1).before == b""  # EOF stays EOF
    with pytest.raises(ConsoleClosed) as info:
        link.console.expect(rb"login: ", timeout=1)
    message = info.value.one_line()
    assert message.startswith(f"{HOST}: ") and "while waiting for [b'login: ']" in message
    assert "Power down." in message
    assert isinstance(info.value.__cause__, ConsoleClosed)  # the transport's own words
    assert link.recorded() == b"Power down.\r\n"
    if link.reconnecting:
        kinds = [kind for kind, _ in link.events()]
        assert kinds[0] == "disconnected" and kinds[-1] == "reconnect_gave_up", kinds
        assert set(kinds[1:-1]) == {"reconnect_failed"}, kinds
        assert {fields["offset"] for _, fields in link.events()} == {13}
        assert "gave up reconnecting" in message


def test_a_far_end_back_after_a_drop(link: Link) -> None:
    """Without the reconnecting layer a drop is the end, even though the far end is back;
    with it, the console carries on after a gap event at the exact offset of the drop."""
    before = b"before the drop\r\n"
    link.far.write(before)
    link.console.expect(rb"drop\r\n", timeout=10)
    link.far.bounce()
    if not link.reconnecting:
        assert link.console.expect([EOF], timeout=20).before == b""
        assert link.recorded() == before
        return
    link.wait_event("gap", timeout=20)
    events = link.events()
    kinds = [kind for kind, _ in events]
    assert kinds[0] == "disconnected" and kinds[-2:] == ["reconnected", "gap"], kinds
    assert events[0][1]["cause"] == link.far.bounce_cause
    assert {fields["offset"] for _, fields in events} == {len(before)}
    after = b"after the gap\r\n"
    link.print_seen(after)
    raw = link.recorded()
    assert raw[: len(before)] == before
    assert raw[len(before) :] == after * raw[len(before) :].count(after), raw
    recorded = [json.loads(line) for line in (link.recording.path / "events.jsonl").open()]
    assert [e["offset"] for e in recorded if e["event"] == "gap"] == [len(before)]
    # The host hears what is typed afterwards.
    assert link.send_heard(b"typed after the gap\r").endswith(b"typed after the gap\r")


# ---------------------------------------------------------------- a simulated host


class _Relay:
    """Joins the virtual Xen host's line (its pty) to a far end, both ways, byte for byte."""

    def __init__(self, host: VirtualHost, far: FarEnd) -> None:
        self.far = far
        self.fd = os.open(host.pty_path, os.O_RDWR | os.O_NOCTTY)
        tty.setraw(self.fd)
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._out, name="relay-out", daemon=True),
            threading.Thread(target=self._in, name="relay-in", daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def _out(self) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select([self.fd], [], [], 0.1)
            if ready:
                self.far.write(os.read(self.fd, 65536))

    def _in(self) -> None:
        while not self._stop.is_set():
            data = self.far.read(0.1)
            if data:
                os.write(self.fd, data)

    def close(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(5)
        os.close(self.fd)


@pytest.fixture
def xen_host(far: FarEnd) -> Iterator[tuple[VirtualHost, FarEnd]]:
    host = VirtualHost(SimConfig(fast=True, grub_timeout=0, auto_power_on=False)).start()
    try:
        yield host, far
    finally:
        host.stop()


def test_a_simulated_host_boot_is_recorded_byte_exact(
    xen_host: tuple[VirtualHost, FarEnd], tmp_path: Path
) -> None:
    """Through :func:`solcap.connect.open_console`, as every command opens a console: the
    virtual Xen host boots to Dom0's prompt and answers a command; ``console.raw`` is what the
    host put on its line, byte for byte (and its summary's hash says the same)."""
    host, far = xen_host
    spec = ConsoleSpec.from_url(
        far.url,
        host=HOST,
        password=PasswordSource(env={"PW": PASSWORD}, env_name="PW", prompt=False),
    )
    console = open_console(
        spec,
        recording=lambda: Recording(HOST, label="boot", root=tmp_path / "rec"),
        reconnect=far.reconnect,
        owns_recording=True,
    )
    relay: _Relay | None = None
    try:
        far.read_quiet(0.1)  # what an earlier test typed at a shared BMC's line
        console.settle(quiet=0.2, timeout=10)  # … and what it printed there
        base = console.received
        relay = _Relay(host, far)
        host.power_on()
        console.expect(PROMPT, timeout=20)
        # An empty line in a packet of its own first: ipmi_sim may drop a new session's
        # first SOL packet (see links.sync); the command then goes second.
        console.send(b"\r")
        drain = getattr(console.transport, "drain", None)
        if callable(drain):
            drain(5.0)
        console.sendline("uname -a")
        console.expect(rb"x86_64 GNU/Linux\r", timeout=10)
        console.expect(PROMPT, timeout=10)
        assert host.wait_idle(10)
        assert console.wait_for_bytes(base + host.sent_count(), timeout=10)
    finally:
        console.close()
        if relay is not None:
            relay.close()
    summary = console.summary
    assert summary is not None
    raw = (summary.path / "console.raw").read_bytes()
    sent = host.sent_bytes()
    assert len(sent) > 10_000
    assert _sha(raw[base:]) == _sha(sent)
    if base == 0:
        assert summary.sha256 == _sha(sent)
