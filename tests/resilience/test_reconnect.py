"""Lost sessions: blackhole, BMC killed and restarted, SOL deactivated by real ipmitool.

Each test states its "nothing lost" property. The virtual BMC keeps the host's output while no
session is active (ipmi_sim discards it), so where the BMC stays up the capture must equal
everything the host wrote, with the gap event at the exact offset where the session ended.
When the BMC process is killed, what it had read from the host and not delivered dies with it:
then the capture is ``sent[:gap] + sent[k:]`` — all missing bytes sit at the gap offset.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from solcap.capture.recording import Recording
from solcap.console.core import Console
from solcap.errors import ConsoleClosed, ExpectTimeout
from solcap.testing.faultproxy import FaultProxy, proxy_address
from solcap.transports.ipmi import IpmiSolTransport, IpmiTarget, Liveness
from solcap.transports.reconnect import ReconnectingTransport, ReconnectPolicy
from tests.ipmi.conftest import ipmi_env, need, read_until
from tests.opens import Opens
from tests.resilience.conftest import PASSWORD, USER, BmcProcess, HostWriter, pattern, sha

pytestmark = pytest.mark.timeout(60)

FAST = Liveness(keepalive=1.0, retry_interval=0.5, retries=3)
POLICY = ReconnectPolicy(initial_delay=0.2, max_delay=2.0, max_attempts=30, max_total=40.0)


def _transport(host: str, port: int, policy: ReconnectPolicy = POLICY) -> ReconnectingTransport:
    target = IpmiTarget(host, USER, port)
    return ReconnectingTransport(
        lambda: IpmiSolTransport(target, PASSWORD, liveness=FAST, connect_timeout=6.0),
        policy=policy,
    )


def _events(rec: Recording) -> list[dict[str, object]]:
    lines = (rec.path / "events.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def _wait_event(tr: ReconnectingTransport, kind: str, timeout: float) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for k, fields in tr.events:
            if k == kind:
                return fields
        time.sleep(0.05)
    raise AssertionError(f"no {kind} event in {timeout} s: {tr.events}")


def test_blackhole_longer_than_keepalive_reconnects_with_an_exact_gap(
    bmc: BmcProcess, pty_pair, tmp_path
) -> None:
    with FaultProxy(proxy_address(bmc.port), ("127.0.0.1", bmc.port), seed=5) as proxy:
        tr = _transport(proxy.address[0], proxy.address[1])
        rec = Recording("blackhole", root=tmp_path)
        tr.set_event_sink(rec.event)
        writer = HostWriter(pty_pair.master)
        a, b, c = pattern(20_000, 1), pattern(5_000, 2), pattern(20_000, 3)
        with Console(tr, sink=rec.feed) as con:
            writer.write(a)
            con.wait_for_bytes(len(a), timeout=20)
            proxy.blackhole(FAST.detection_bound + 2.0)
            t_black = time.monotonic()
            writer.write(b)  # written during the blackhole: the BMC holds it
            lost = _wait_event(tr, "disconnected", FAST.detection_bound + 2.0)
            assert time.monotonic() - t_black <= FAST.detection_bound + 1.0
            gap = _wait_event(tr, "gap", 40)
            writer.write(c)
            con.wait_for_bytes(len(a) + len(b) + len(c), timeout=30)
            writer.join(5)
        rec.close()
    raw = (rec.path / "console.raw").read_bytes()
    # Nothing lost: the BMC buffered B, so the capture is all of A + B + C, in order ...
    assert sha(raw) == sha(a + b + c)
    # ... and the gap sits exactly where A ended (nothing of A is after it, nothing before).
    assert lost["cause"] == "lost" and lost["offset"] == len(a)
    assert gap["offset"] == len(a) and float(str(gap["duration_s"])) > 0
    recorded = [e for e in _events(rec) if e["event"] == "gap"]
    assert len(recorded) == 1 and recorded[0]["offset"] == len(a)
    assert "discard" in str(recorded[0]["may_be_missing"])
    log = (rec.path / "console.log").read_bytes()
    assert b"gap offset=" + str(len(a)).encode() in log  # the [-- … gap … --] line
    assert b"[--" not in raw  # console.raw stays exactly what was received


def test_bmc_killed_and_restarted_capture_resumes_and_marks_the_gap(
    bmc: BmcProcess, pty_pair, tmp_path
) -> None:
    tr = _transport("127.0.0.1", bmc.port)
    rec = Recording("killed", root=tmp_path)
    tr.set_event_sink(rec.event)
    writer = HostWriter(pty_pair.master)
    data = pattern(120_000, 4)
    with Console(tr, sink=rec.feed) as con:
        writer.write(data, chunk=512, pace=0.01)  # ~50 KB/s: the kill lands mid-stream
        con.wait_for_bytes(20_000, timeout=20)
        bmc.kill()
        t_kill = time.monotonic()
        lost = _wait_event(tr, "disconnected", FAST.detection_bound + 2.0)
        assert time.monotonic() - t_kill <= FAST.detection_bound + 1.0
        bmc.start()  # same address and port
        gap = _wait_event(tr, "gap", 30)
        writer.join(30)
        sent = writer.sent
        assert con.wait_for_bytes(1, timeout=1) > 0
        # Everything after the restart arrives: wait for the stream's last bytes.
        con.expect([data[-64:]], timeout=30)
    rec.close()
    raw = (rec.path / "console.raw").read_bytes()
    at = int(str(gap["offset"]))
    assert lost["offset"] == at and lost["cause"] == "lost"
    # Nothing earlier lost: everything before the gap is the exact prefix of what was sent.
    assert raw[:at] == sent[:at]
    # What follows is the exact rest of the stream from some k >= at: every missing byte is
    # covered by the gap marker (they died in the killed BMC's buffer), none elsewhere.
    tail = raw[at:]
    k = len(sent) - len(tail)
    assert k >= at and sent[k:] == tail, (at, k, len(sent), len(raw))


def _ipmitool_deactivate(port: int) -> None:
    argv = [need("ipmitool"), "-I", "lanplus", "-H", "127.0.0.1", "-p", str(port)]
    argv += ["-U", USER, "-E", "sol", "deactivate"]
    res = subprocess.run(argv, env=ipmi_env(), capture_output=True, text=True, timeout=20)
    assert res.returncode == 0, res.stderr


def test_sol_stolen_by_ipmitool_deactivate_is_detected_and_reconnected(
    bmc: BmcProcess, pty_pair, tmp_path
) -> None:
    tr = _transport("127.0.0.1", bmc.port)
    rec = Recording("stolen", root=tmp_path)
    tr.set_event_sink(rec.event)
    writer = HostWriter(pty_pair.master)
    a, b = pattern(10_000, 5), pattern(10_000, 6)
    with Console(tr, sink=rec.feed) as con:
        writer.write(a)
        con.wait_for_bytes(len(a), timeout=20)
        t0 = time.monotonic()
        _ipmitool_deactivate(bmc.port)
        lost = _wait_event(tr, "disconnected", 5)
        assert time.monotonic() - t0 < 5  # the BMC tells the holder; no keepalive wait
        writer.write(b)
        gap = _wait_event(tr, "gap", 20)
        con.wait_for_bytes(len(a) + len(b), timeout=20)
    rec.close()
    raw = (rec.path / "console.raw").read_bytes()
    assert lost["cause"] == "deactivated" and "deactivated" in str(lost["reason"])
    assert gap["offset"] == len(a) and gap["cause"] == "deactivated"
    assert sha(raw) == sha(a + b)  # the BMC held B; nothing lost


def test_sol_stolen_with_stop_policy_ends_the_console_with_the_cause(
    bmc: BmcProcess, pty_pair
) -> None:
    policy = ReconnectPolicy(on_deactivated="stop")
    tr = _transport("127.0.0.1", bmc.port, policy)
    writer = HostWriter(pty_pair.master)
    with Console(tr) as con:
        writer.write(b"before\r\n")
        con.expect([b"before"], timeout=10)
        _ipmitool_deactivate(bmc.port)
        with pytest.raises(ConsoleClosed, match="deactivated"):
            con.expect([b"never"], timeout=10)
    kinds = [k for k, _ in tr.events]
    assert kinds == ["disconnected", "reconnect_gave_up"]


def test_ipmi_sim_sol_deactivated_by_ipmitool_is_detected_and_reconnected(ipmi_sim) -> None:
    """OpenIPMI's ipmi_sim (suite 3): the same steal against an independent BMC."""
    target = ipmi_sim.target()
    tr = ReconnectingTransport(
        lambda: IpmiSolTransport(target, PASSWORD, liveness=FAST, connect_timeout=6.0),
        policy=POLICY,
    )
    with Console(tr) as con:
        ipmi_sim.serial.sendall(b"first line\r\n")
        con.expect([b"first line\r\n"], timeout=10)
        t0 = time.monotonic()
        argv = [need("ipmitool"), "-I", "lanplus", "-C", "3", "-H", "127.0.0.1"]
        argv += ["-p", str(ipmi_sim.port), "-U", USER, "-E", "sol", "deactivate"]
        res = subprocess.run(argv, env=ipmi_env(), capture_output=True, text=True, timeout=20)
        assert res.returncode == 0, res.stderr
        lost = _wait_event(tr, "disconnected", FAST.detection_bound + 2.0)
        assert time.monotonic() - t0 <= FAST.detection_bound + 1.0
        gap = _wait_event(tr, "gap", 30)
        # ipmi_sim discarded whatever the host wrote in between; after the gap bytes flow.
        for _ in range(20):
            ipmi_sim.serial.sendall(b"after\r\n")
            try:
                con.expect([b"after\r\n"], timeout=1)
                break
            except ExpectTimeout:
                continue
        else:
            raise AssertionError("no bytes after the reconnect")
    assert lost["offset"] == gap["offset"] == len(b"first line\r\n")
    # ipmi_sim does not tell the session it took SOL from (no "deactivated" reply, it just
    # stops acknowledging), so liveness finds the loss: cause "lost", never anything else.
    # The virtual BMC, which does answer, is checked for "deactivated" above.
    assert lost["cause"] == "lost", lost


def test_keystrokes_unacknowledged_at_the_loss_are_reported_and_not_resent(
    bmc: BmcProcess, pty_pair, tmp_path
) -> None:
    """docs/resilience.md: keystrokes written but not acknowledged when a session is lost are
    not resent on the new one; the ``disconnected`` event says how many (``unsent_input``)."""
    typed = b"typed-into-the-blackhole"
    with FaultProxy(proxy_address(bmc.port), ("127.0.0.1", bmc.port), seed=9) as proxy:
        tr = _transport(proxy.address[0], proxy.address[1])
        writer = HostWriter(pty_pair.master)
        with Console(tr) as con:
            writer.write(b"ready\r\n")
            con.expect([b"ready\r\n"], timeout=20)
            proxy.blackhole(FAST.detection_bound + 2.0)
            tr.write(typed)  # the packet dies in the blackhole: never acknowledged
            # Host output the BMC cannot deliver makes it give the dead session up (its SOL
            # retries run out), as the blackhole test relies on; else it holds SOL for 60 s.
            writer.write(b"host output during the blackhole\r\n")
            lost = _wait_event(tr, "disconnected", FAST.detection_bound + 5.0)
            _wait_event(tr, "gap", 40)
            tr.write(b"|after")
            got = read_until(pty_pair.master, b"|after", 20)
            writer.join(5)
    assert lost["cause"] == "lost" and lost["unsent_input"] == len(typed), lost
    assert got == b"|after"  # the host got the new keystrokes, none of the lost ones


def test_reconnect_0_gives_the_bare_transport_that_ends_at_the_first_loss(
    bmc: BmcProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    """docs/resilience.md: ``?reconnect=0`` is the bare IpmiSolTransport, which raises
    ``ConsoleClosed`` at the first loss instead of reconnecting."""
    from solcap.connect import ConsoleSpec, open_recorded_transport

    monkeypatch.setenv("IPMI_PASSWORD", PASSWORD)
    url = f"ipmi://{USER}@127.0.0.1:{bmc.port}"
    default, _ = open_recorded_transport(ConsoleSpec.from_url(url, prompt=False))
    try:
        assert isinstance(default, ReconnectingTransport)
    finally:
        default.close()
    bare, _ = open_recorded_transport(ConsoleSpec.from_url(url + "?reconnect=0", prompt=False))
    try:
        assert isinstance(bare, IpmiSolTransport) and not isinstance(bare, ReconnectingTransport)
        _ipmitool_deactivate(bmc.port)
        with pytest.raises(ConsoleClosed, match="deactivated"):
            for _ in range(100):  # 20 s at most; the BMC tells the holder at once
                bare.read(100, 0.2)
        with pytest.raises(ConsoleClosed):
            bare.read(100, 0.2)  # and it stays closed: nothing reconnected behind our back
    finally:
        bare.close()


def test_reconnection_gives_up_after_max_total_seconds(bmc: BmcProcess, pty_pair) -> None:
    """docs/resilience.md: gives up after ``max_attempts`` or ``max_total`` s, with a
    ``reconnect_gave_up`` event, and the next call raises ConsoleClosed naming the last error."""
    policy = ReconnectPolicy(initial_delay=0.2, max_delay=0.5, max_attempts=1000, max_total=4.0)
    target = IpmiTarget("127.0.0.1", USER, bmc.port)
    tr = ReconnectingTransport(
        lambda: IpmiSolTransport(target, PASSWORD, liveness=FAST, connect_timeout=1.0),
        policy=policy,
    )
    with Console(tr) as con:
        bmc.kill()  # gone for good: every reconnection finds nobody
        started = time.monotonic()
        with pytest.raises(ConsoleClosed, match="gave up reconnecting after") as info:
            con.expect([b"never"], timeout=60)
        took = time.monotonic() - started
    gave_up = _wait_event(tr, "reconnect_gave_up", 1)
    attempts = int(str(gave_up["attempts"]))
    assert 1 <= attempts < 1000  # max_total ended it, not max_attempts
    # Within max_total of the loss (plus one connect attempt's 1 s and the detection).
    assert float(str(gave_up["elapsed_s"])) <= policy.max_total + 1.0 + 1.0, gave_up
    assert took <= FAST.detection_bound + policy.max_total + 5.0, took
    assert "no answer" in str(info.value), info.value


def test_the_password_file_is_read_once_and_reused_for_the_reconnection(
    bmc: BmcProcess, pty_pair, tmp_path: Path
) -> None:
    """docs/resilience.md: the password is read once and reused for reconnections. The file
    is opened once (the kernel counts), and after the first login it holds a wrong password:
    a reconnection that read it again could not log in."""
    from solcap.connect import ConsoleSpec, open_recorded_transport

    secrets = tmp_path / "secrets"
    secrets.mkdir(mode=0o700)
    pw = secrets / "bmc-pw"
    pw.write_text(PASSWORD + "\n")
    pw.chmod(0o600)
    opens = Opens(pw)
    try:
        spec = ConsoleSpec.from_url(
            f"ipmi://{USER}@127.0.0.1:{bmc.port}", password_file=str(pw), prompt=False
        )
        tr, _ = open_recorded_transport(spec, reconnect=POLICY)
        assert isinstance(tr, ReconnectingTransport)
        assert opens.seen() == 1
        wrong = secrets / "bmc-pw.new"
        wrong.write_text("not-the-password\n")
        wrong.chmod(0o600)
        os.replace(wrong, pw)  # the file now says something no login accepts
        writer = HostWriter(pty_pair.master)
        with Console(tr) as con:
            writer.write(b"before the loss\r\n")
            con.expect([b"before the loss\r\n"], timeout=20)
            _ipmitool_deactivate(bmc.port)  # the session ends; the console logs in again
            lost = _wait_event(tr, "disconnected", 10)
            _wait_event(tr, "reconnected", 30)
            writer.write(b"after the reconnection\r\n")
            con.expect([b"after the reconnection\r\n"], timeout=20)
            writer.join(5)
        assert lost["cause"] == "deactivated", lost
        assert [k for k, _ in tr.events if k == "reconnect_failed"] == [], tr.events
        assert opens.seen() == 1  # never opened again: the reconnection used the one read
    finally:
        opens.close()
