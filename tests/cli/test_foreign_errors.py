"""No built-in exception reaches the CLI for an expected failure (issue 13, deliver 3).

Each case is one line on stderr with the exit code docs/errors.md gives it: a busy IPMI I/O
thread (exit 3, the BMC named; raised by the pump itself, so every caller gets it), a
recording that cannot be created (exit 5, RecordingError), a segment outside the recording
(a caller's mistake: UsageError).
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from solcap.capture.recording import Recording
from solcap.cli import main
from solcap.errors import ConnectError, RecordingError, TargetError, UsageError
from solcap.transports.ipmi import IpmiSolTransport, IpmiTarget, ioloop
from tests.ipmi.conftest import PASSWORD, USER, free_udp_port

pytestmark = pytest.mark.timeout(60)

#: A directory even root cannot create entries in (procfs), so the test holds as any user.
UNCREATABLE = "/proc/solcap-no-such-dir/rec"


def _one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


@contextlib.contextmanager
def _pump_held() -> Iterator[ioloop.Pump]:
    """The process's IPMI pump, kept busy by a job of ours until the block ends."""
    pump = ioloop.Pump.get()
    release = threading.Event()
    started = threading.Event()

    def block() -> None:
        started.set()
        release.wait(20)

    kwargs = {"host": "holder", "queue_timeout": 30}
    holder = threading.Thread(target=pump.call, args=(block, 30), kwargs=kwargs)
    holder.start()
    try:
        assert started.wait(10)
        yield pump
    finally:
        release.set()
        holder.join(10)


def test_pump_timeouts_are_solcap_errors_naming_the_bmc() -> None:
    with _pump_held() as pump:
        with pytest.raises(ioloop.PumpTimeout, match=r"^bmc-a: .*busy for 0.2s") as info:
            pump.call(lambda: None, 5, host="bmc-a", queue_timeout=0.2)
        assert isinstance(info.value, TargetError) and info.value.host == "bmc-a"
    pump = ioloop.Pump.get()
    slow = threading.Event()
    with pytest.raises(ioloop.PumpTimeout, match=r"^bmc-b: .*did not answer within 0.2s"):
        pump.call(lambda: slow.wait(1.0), 0.2, host="bmc-b")


def test_a_busy_pump_at_login_is_a_connect_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """IpmiSolTransport's own construction maps the pump's timeout (it used to surface as a
    built-in TimeoutError: a traceback, exit 1)."""
    with _pump_held():
        monkeypatch.setattr(ioloop, "QUEUE_TIMEOUT", 0.3)
        target = IpmiTarget("127.0.0.1", USER, free_udp_port(), 3)
        with pytest.raises(ConnectError, match=r"cannot start the session: .*busy") as info:
            IpmiSolTransport(target, PASSWORD, connect_timeout=5)
        assert info.value.exit_status == 3


def test_a_busy_pump_on_the_command_line_is_one_line_exit_3(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setenv("IPMI_PASSWORD", PASSWORD)
    port = free_udp_port()
    with _pump_held():
        monkeypatch.setattr(ioloop, "QUEUE_TIMEOUT", 0.3)
        url = f"ipmi://{USER}@127.0.0.1:{port}?reconnect=0"
        status = main(["capture", url, "--for", "1", "--root", str(tmp_path / "rec")])
    line = _one_line(capsys.readouterr().err)
    assert status == 3, line
    assert line.startswith("solcap: error: 127.0.0.1") and "busy" in line, line
    assert not (tmp_path / "rec").exists()  # refused before any recording was made


def test_a_recording_that_cannot_be_created_is_exit_5(
    capsys: pytest.CaptureFixture[str],
) -> None:
    master, slave = os.openpty()
    try:
        status = main(["capture", os.ttyname(slave), "--for", "1", "--root", UNCREATABLE])
    finally:
        os.close(slave)
        os.close(master)
    line = _one_line(capsys.readouterr().err)
    assert status == 5, line
    assert line.startswith("solcap: error: /proc/solcap-no-such-dir") and "cannot create" in line


def test_recording_creation_failure_is_a_recording_error() -> None:
    with pytest.raises(RecordingError, match="cannot create recordings root"):
        Recording("h", label="x", root=UNCREATABLE)


def test_a_segment_outside_the_recording_is_a_usage_error(tmp_path: Path) -> None:
    rec = Recording("h", label="x", root=tmp_path)
    try:
        rec.feed(b"0123456789")
        with pytest.raises(UsageError, match=r"segment q \[4, 99\) outside 0..10"):
            rec.add_segment("q", 4, 99, complete=True)
    finally:
        rec.close()
