"""Harvest debug keys from the virtual Xen host through a real pty, byte-exactly."""

from __future__ import annotations

import hashlib
import io
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from solcap.capture.recording import Recording
from solcap.cli import main
from solcap.console.core import Console
from solcap.errors import UsageError
from solcap.sim.host import SimConfig, VirtualHost
from solcap.sim.xen import HostSpec
from solcap.transports.registry import open_transport
from solcap.xen.console import XenConsole
from solcap.xen.harvest import harvest_keys

pytestmark = pytest.mark.timeout(120)

BOOT_DONE = re.compile(rb"\(XEN\) \*\*\* Serial input to DOM0 ")


@pytest.fixture
def booted(tmp_path: Path) -> Iterator[tuple[VirtualHost, Console, Recording]]:
    config = SimConfig(spec=HostSpec(domus=20), fast=True, auto_power_on=False, grub_timeout=1)
    with VirtualHost(config) as host:
        host.start()
        recording = Recording("sim", root=tmp_path)
        with Console(open_transport(host.pty_path), host="sim", sink=recording.feed) as con:
            host.power_on()
            con.expect([BOOT_DONE], timeout=60)
            con.settle(0.3, timeout=60)
            yield host, con, recording
        recording.close()


def test_each_segment_is_byte_identical_to_the_dump_sent(
    booted: tuple[VirtualHost, Console, Recording],
) -> None:
    host, con, recording = booted
    keys = ["h", "q", "u", "m", "e", "i", "r"]
    result = harvest_keys(con, recording, keys, quiet=0.3)
    assert [s.name for s in result.segments] == keys
    assert result.complete
    sent = [dump.sha256 for dump in host.dumps]
    # One more dump than keys: the end marker ('m') that delimits the last dump.
    assert [s.sha256 for s in result.segments] == sent[:-1]
    assert host.dumps[-1].key == "m"
    assert host.input_target == "dom0"  # handed back at the end
    parsed = json.loads((recording.path / "keys" / "q.json").read_text())
    assert len(parsed["domains"]) == 21 and parsed["truncated"] is False  # Dom0 + 20 domUs


def test_star_is_recorded_as_star_txt_byte_identical_to_what_xen_printed(
    booted: tuple[VirtualHost, Console, Recording],
) -> None:
    """docs/recordings.md: the ``*`` key's dump is ``keys/star.txt``; compared per key with
    the bytes the simulated Xen put on the line for ``*`` (and for ``q``, its neighbour)."""
    host, con, recording = booted
    # '*' fires every diagnostic handler at once (it counts as dangerous: --allow-dangerous).
    result = harvest_keys(con, recording, ["q", "*"], quiet=0.3, allow_dangerous=True)
    assert [s.name for s in result.segments] == ["q", "star"]
    assert result.complete
    # What the host sent, per key, in the order it sent it.
    assert [d.key for d in host.dumps[:2]] == ["q", "*"], [d.key for d in host.dumps]
    sent = {d.key: d.data for d in host.dumps[:2]}
    keys = recording.path / "keys"
    assert sorted(p.name for p in keys.glob("*.txt")) == ["q.txt", "star.txt"]
    assert (keys / "star.txt").read_bytes() == sent["*"]
    assert (keys / "q.txt").read_bytes() == sent["q"]
    star = result.segments[1]
    assert star.file == "keys/star.txt"
    assert star.sha256 == hashlib.sha256(sent["*"]).hexdigest()
    assert b"'*' pressed" in sent["*"][:200]  # the dump really is the one '*' prints


def test_a_repeated_key_keeps_every_dump_in_its_own_file(
    booted: tuple[VirtualHost, Console, Recording],
) -> None:
    """``--keys h,q,e,q``: the second q is ``keys/q-2.txt`` beside ``q.txt`` (never replacing
    it), each file byte-identical to what the host printed for that press, in order, and
    listed in meta.json with its offsets and hash; ``show --key q-2`` prints the second."""
    host, con, recording = booted
    keys = ["h", "q", "e", "q"]
    result = harvest_keys(con, recording, keys, quiet=0.3)
    assert result.complete
    assert [s.name for s in result.segments] == ["h", "q", "e", "q-2"]
    assert [s.key for s in result.segments] == keys
    assert [d.key for d in host.dumps[:4]] == keys, [d.key for d in host.dumps]
    sent = [d.data for d in host.dumps[:4]]
    folder = recording.path / "keys"
    assert sorted(p.name for p in folder.glob("*.txt")) == ["e.txt", "h.txt", "q-2.txt", "q.txt"]
    files = ["keys/h.txt", "keys/q.txt", "keys/e.txt", "keys/q-2.txt"]
    assert [s.file for s in result.segments] == files
    for segment, data in zip(result.segments, sent, strict=True):
        on_disk = (recording.path / segment.file).read_bytes()
        assert hashlib.sha256(on_disk).hexdigest() == hashlib.sha256(data).hexdigest()
        assert segment.sha256 == hashlib.sha256(data).hexdigest()
    assert (folder / "q.json").is_file() and (folder / "q-2.json").is_file()
    recording.close()
    meta = json.loads((recording.path / "meta.json").read_text())
    listed = [(s["name"], s["key"], s["file"], s["sha256"]) for s in meta["segments"]]
    assert listed == [(s.name, s.key, s.file, s.sha256) for s in result.segments]
    raw = (recording.path / "console.raw").read_bytes()
    assert [raw[s["start"] : s["end"]] for s in meta["segments"]] == sent
    out = io.BytesIO()
    wrapper = io.TextIOWrapper(out, encoding="utf-8")
    assert main(["show", str(recording.path), "--key", "q-2"], out=wrapper) == 0
    wrapper.flush()
    assert out.getvalue() == sent[3]


def test_harvest_when_input_is_already_on_xen(
    booted: tuple[VirtualHost, Console, Recording],
) -> None:
    host, con, recording = booted
    XenConsole(con).switch_input("xen")
    assert host.input_target == "xen"
    result = harvest_keys(con, recording, ["q"], quiet=0.3)
    assert [s.sha256 for s in result.segments] == [host.dumps[-2].sha256]
    assert host.input_target == "dom0"


def test_dangerous_keys_are_refused_before_sending(
    booted: tuple[VirtualHost, Console, Recording],
) -> None:
    host, con, recording = booted
    before = con.received
    with pytest.raises(UsageError, match="R"):
        harvest_keys(con, recording, ["h", "R"], quiet=0.3)
    assert host.dumps == [] and con.received == before


def test_demo_command_verifies_its_own_capture(tmp_path: Path) -> None:
    out = io.StringIO()
    status = main(["demo", "--keys", "h,q,u", "--domus", "4", "--root", str(tmp_path)], out=out)
    text = out.getvalue()
    assert status == 0, text
    assert text.count("identical to what the host sent") == 3
    line = next(x for x in text.splitlines() if x.startswith("recording: "))
    recording = Path(line.removeprefix("recording: "))
    assert "ipmi://admin@127.0.0.1:" in text  # the demo goes through the virtual BMC
    meta = json.loads((recording / "meta.json").read_text())
    assert [s["name"] for s in meta["segments"]] == ["h", "q", "u"]
    for segment in meta["segments"]:
        data = (recording / segment["file"]).read_bytes()
        raw = (recording / "console.raw").read_bytes()
        assert raw[segment["start"] : segment["end"]] == data


def test_every_safe_debug_key_over_the_pty(
    booted: tuple[VirtualHost, Console, Recording],
) -> None:
    """Each key Xen 4.17 has a handler for on this host, harvested byte-exactly."""
    from solcap.sim.xen import DEBUG_KEYS
    from solcap.xen.console import DANGEROUS_KEYS

    host, con, recording = booted
    keys = sorted(k for k in DEBUG_KEYS if k not in DANGEROUS_KEYS)
    assert {"h", "q", "u", "m", "e", "i", "r", "a", "c", "t", "n", "z", "H", "Q", "d", "0"} <= set(
        keys
    )
    result = harvest_keys(con, recording, keys, quiet=0.3)
    assert result.complete, [s for s in result.segments if not s.complete]
    assert [s.sha256 for s in result.segments] == [d.sha256 for d in host.dumps][:-1]
    assert [d.key for d in host.dumps] == [*keys, "m"]


def test_a_key_without_a_handler_is_reported_incomplete(
    booted: tuple[VirtualHost, Console, Recording],
) -> None:
    host, con, recording = booted
    result = harvest_keys(con, recording, ["V"], quiet=0.3, start_timeout=1.0)
    (segment,) = result.segments
    assert not segment.complete and "no output" in segment.reason
    assert host.dumps == []


def test_a_dump_that_never_goes_quiet_is_kept_incomplete_and_says_why(
    booted: tuple[VirtualHost, Console, Recording],
) -> None:
    """Xen prints no end marker: a line that keeps talking past the dump's time limit is kept
    as far as it came and reported incomplete, never cut short silently."""
    import threading

    host, con, _recording = booted
    xen = XenConsole(con, quiet=0.3, dump_timeout=2.0)
    xen.switch_input("xen")
    stop = threading.Event()
    dumps_before = len(host.dumps)

    def chatter() -> None:
        # From the dump's start on (the line was quiet before the key, as it must be), well
        # inside the 0.3 s of quiet that would end the dump.
        host.wait_dumps(dumps_before + 1, 10)
        while not stop.wait(0.05):
            host.inject(b"(XEN) still talking\r\n")

    talker = threading.Thread(target=chatter, daemon=True)
    talker.start()
    try:
        dumps = list(xen.debug_keys(["h"], end_marker=None))
    finally:
        stop.set()
        talker.join(5)
    assert [(d.key, d.complete) for d in dumps] == [("h", False)]
    assert dumps[0].reason == (
        "the line never went quiet for 0.3s within 2s; the dump may go on past this segment"
    )
    assert dumps[0].end > dumps[0].start


def test_the_cli_takes_a_repeated_key_and_keeps_both_dumps(tmp_path: Path) -> None:
    """``--keys h,q,e,q`` is not refused (an operator repeats q to see state change): the CLI
    harvest through the virtual BMC keeps four dumps, each checked against what was sent."""
    out = io.StringIO()
    argv = ["demo", "--keys", "h,q,e,q", "--domus", "2", "--root", str(tmp_path)]
    status = main(argv, out=out)
    text = out.getvalue()
    assert status == 0, text
    assert text.count("identical to what the host sent") == 4
    line = next(x for x in text.splitlines() if x.startswith("recording: "))
    recording = Path(line.removeprefix("recording: "))
    meta = json.loads((recording / "meta.json").read_text())
    assert [(s["name"], s["key"]) for s in meta["segments"]] == [
        ("h", "h"), ("q", "q"), ("e", "e"), ("q-2", "q")
    ]  # fmt: skip
    raw = (recording / "console.raw").read_bytes()
    for segment in meta["segments"]:
        data = (recording / segment["file"]).read_bytes()
        assert data == raw[segment["start"] : segment["end"]]
        assert hashlib.sha256(data).hexdigest() == segment["sha256"]
