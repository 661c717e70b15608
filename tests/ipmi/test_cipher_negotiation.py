"""Cipher suite choice as ipmitool makes it, against OpenIPMI's ipmi_sim and the virtual BMC.

ipmi_sim speaks suite 3 only and answers Get Channel Cipher Suites in the IPMI v1.5 form (its
list, 0-14, lacks 17); the virtual BMC lists 17 and 3. Without ``?cipher=`` solcap must reach
both; with it, exactly the suite named, never a fallback.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from solcap.errors import ConnectError
from solcap.transports.ipmi import (
    CipherRefused,
    IpmiSolTransport,
    IpmiTarget,
    negotiate,
    offered_suites,
)
from solcap.transports.ipmi.session import _gccs_reply, _gccs_requests, _suite_ids
from tests.ipmi.conftest import PASSWORD, USER
from tests.ipmi.ipmisim import IpmiSim as Sim
from tests.ipmi.ipmisim import read_exactly

pytestmark = pytest.mark.timeout(60)
ROOT = Path(__file__).resolve().parents[2]


def _unpinned(sim: Sim) -> IpmiTarget:
    return IpmiTarget("127.0.0.1", USER, sim.port)


def test_ipmi_sim_lists_its_suites_without_17(ipmi_sim: Sim) -> None:
    offered = offered_suites("127.0.0.1", ipmi_sim.port)
    assert offered is not None and 3 in offered and 17 not in offered


def test_default_picks_3_from_what_ipmi_sim_offers(ipmi_sim: Sim) -> None:
    with IpmiSolTransport(_unpinned(ipmi_sim), PASSWORD) as tr:
        assert tr.negotiated_suite == 3 and tr.target.cipher == 3
        assert tr.cipher_choice.how == "offered"
        assert tr.cipher_choice.offered is not None and 3 in tr.cipher_choice.offered
        ipmi_sim.serial.sendall(b"negotiated")
        assert read_exactly(tr, 10, 10) == b"negotiated"


def test_without_an_answer_to_the_query_17_then_3(ipmi_sim: Sim) -> None:
    """A BMC that ignores Get Channel Cipher Suites: 17 is refused, 3 is taken."""
    tried: list[int | None] = []

    def login(target: IpmiTarget) -> int:
        tried.append(target.cipher)
        with IpmiSolTransport(target, PASSWORD) as tr:
            assert tr.negotiated_suite is not None
            return tr.negotiated_suite

    suite, choice = negotiate(_unpinned(ipmi_sim), login, query=lambda host, port: None)
    assert tried == [17, 3] and suite == 3
    assert (choice.suite, choice.how, choice.offered) == (3, "tried", None)


def test_pinned_17_never_falls_back_and_names_the_fix(ipmi_sim: Sim) -> None:
    target = IpmiTarget.parse(f"ipmi://{USER}@127.0.0.1:{ipmi_sim.port}?cipher=17")
    with pytest.raises(CipherRefused) as info:
        IpmiSolTransport(target, PASSWORD)
    message = info.value.one_line()
    assert message.startswith(f"127.0.0.1:{ipmi_sim.port}: BMC refused cipher suite 17: ")
    assert "leave ?cipher= out of the address" in message and "?cipher=3" in message


def test_a_wrong_password_is_not_taken_for_a_refused_suite(ipmi_sim: Sim) -> None:
    tried: list[int | None] = []

    def login(target: IpmiTarget) -> None:
        tried.append(target.cipher)
        IpmiSolTransport(target, "wrong-password").close()

    with pytest.raises(ConnectError, match="authentication failed") as info:
        negotiate(_unpinned(ipmi_sim), login)
    assert not isinstance(info.value, CipherRefused) and tried == [3]


def test_virtual_bmc_offers_17_and_3_and_17_is_chosen(vbmc_process: tuple[int, object]) -> None:
    port, _pty = vbmc_process
    assert offered_suites("127.0.0.1", port) == frozenset({17, 3})
    with IpmiSolTransport(IpmiTarget("127.0.0.1", USER, port), PASSWORD) as tr:
        assert tr.negotiated_suite == 17
        assert tr.cipher_choice.as_meta() == {
            "cipher_suite": 17,
            "cipher_choice": "offered",
            "cipher_suites_offered": [3, 17],
        }


def test_no_suite_solcap_speaks_is_refused_before_any_login() -> None:
    def login(target: IpmiTarget) -> None:
        raise AssertionError("no login may be tried")

    target = IpmiTarget("127.0.0.1", USER, 9)
    with pytest.raises(ConnectError, match="offers cipher suites 0, 1, 2 but neither 17 nor 3"):
        negotiate(target, login, query=lambda host, port: frozenset({0, 1, 2}))


def test_records_parse_standard_and_oem_suites() -> None:
    # OpenIPMI lanserv's table (suites 0-3), then an OEM suite 0x80 with IANA 0x0002A2.
    records = bytes.fromhex("c0000040 80c00101 4080c002 014180c0 03014181 c180a20200")
    assert _suite_ids(records) == {0, 1, 2, 3, 0x80}


def test_requests_are_well_formed_in_both_framings() -> None:
    v15, v20 = _gccs_requests(2)
    for packet, start in ((v15, 14), (v20, 16)):
        message = packet[start:]
        assert packet[:4] == b"\x06\x00\xff\x07"
        assert sum(message[:3]) % 256 == 0 and sum(message[3:]) % 256 == 0
        assert message[5] == 0x54 and message[6:9] == bytes([0x0E, 0x00, 0x82])
    # A reply in either framing is understood, and an error reply is not a list.
    body = bytes([0x20, 0x1C, 0xC4, 0x81, 2 << 2, 0x54, 0x00, 0x01]) + b"\xc0\x03" + b"\x00"
    assert _gccs_reply(b"\x06\x00\xff\x07\x00" + b"\x00" * 8 + bytes([len(body)]) + body) == (
        2,
        b"\xc0\x03",
    )
    failed = body[:6] + b"\xc1" + body[7:]
    assert (
        _gccs_reply(b"\x06\x00\xff\x07\x00" + b"\x00" * 8 + bytes([len(failed)]) + failed) is None
    )


def test_capture_from_ipmi_sim_needs_no_cipher_flag(ipmi_sim: Sim, tmp_path: Path) -> None:
    """`solcap capture ipmi://admin@…` as a user types it: suite 3 found, stored in meta.json,
    the recording named after the host and port."""
    ipmi_sim.serial.settimeout(5)
    env = dict(os.environ, IPMI_PASSWORD=PASSWORD, PYTHONPATH=str(ROOT))
    url = f"ipmi://{USER}@127.0.0.1:{ipmi_sim.port}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "solcap.cli", "capture", url, "--until", "sim-says-bye",
         "--for", "30", "--root", str(tmp_path)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
    )  # fmt: skip
    try:
        host_dir = tmp_path / f"127.0.0.1_{ipmi_sim.port}"
        meta: dict[str, object] = {}
        for _ in range(100):  # meta.json carries the suite as soon as SOL is active
            found = list(host_dir.glob("*/meta.json"))
            if found:
                meta = json.loads(found[0].read_text())
                if "cipher_suite" in meta:
                    break
            if proc.poll() is not None:
                break
            ipmi_sim.serial_read_until(b"\x00", 0.1)  # keep the serial side drained
        assert meta.get("cipher_suite") == 3, proc.stderr.read() if proc.stderr else ""
        for _ in range(20):  # ipmi_sim may drop a new session's first packet
            ipmi_sim.serial.sendall(b"sim-says-bye\r\n")
            try:
                proc.wait(timeout=0.5)
                break
            except subprocess.TimeoutExpired:
                continue
        _out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    (recording,) = host_dir.iterdir()
    meta = json.loads((recording / "meta.json").read_text())
    assert meta["cipher_suite"] == 3 and meta["cipher_choice"] == "offered"
    events = [json.loads(line) for line in (recording / "events.jsonl").read_text().splitlines()]
    assert [e.get("cipher_suite") for e in events if e.get("event") == "connect"] == [3]
    assert b"sim-says-bye" in (recording / "console.raw").read_bytes()
