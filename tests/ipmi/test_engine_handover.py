"""The SOL engine's take-over from pyghmi while output flows: no byte twice, none lost.

When the payload becomes active, :func:`solcap.transports.ipmi.engine.take_over` moves the
session into a fresh :class:`~solcap.transports.sol_engine.SolChannel` (``remseq = 0``). A
SOL packet pyghmi's I/O thread read around it is handed to the engine, in order (a BMC that
never resends it must not stall the stream: ``--early-once``); one pyghmi had delivered and
ACKed would be delivered again by the fresh channel. The host here writes a
stream of numbered records without pause, before, during and after each activation, so the
first packets race the hand-over; what each session delivered must be exactly one contiguous
slice of the stream (SHA-256), from the first record it saw to the last.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from solcap.transports.ipmi import IpmiSolTransport, IpmiTarget
from tests.ipmi.conftest import PASSWORD, USER, PtyPair, vbmc_running
from tests.ipmi.ipmisim import IpmiSim

pytestmark = pytest.mark.timeout(90)

RECORD = 10  # b"%09d\n"
SESSIONS = 3


def _records(first: int, count: int) -> bytes:
    return b"".join(b"%09d\n" % i for i in range(first, first + count))


class Host:
    """Writes numbered records into the console, 64 per 50 ms (~12.8 KB/s, about 115200
    baud), until stopped."""

    def __init__(self, write: Callable[[bytes], Any]) -> None:
        self._write = write
        self._stop = threading.Event()
        self.written = 0
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Host:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        n = 0
        while not self._stop.is_set():
            self._write(_records(n, 64))
            n += 64
            self.written = n
            self._stop.wait(0.05)


def _check_slice(got: bytes, what: str) -> None:
    """``got`` must be the stream from some point on, byte for byte."""
    assert len(got) > 20 * RECORD, f"{what}: only {len(got)} bytes came"
    cut = got.index(b"\n") + 1  # the first record may be partial: the BMC's buffer edge
    first = int(got[cut : cut + RECORD - 1])
    whole = _records(first - 1, (len(got) - cut) // RECORD + 2)
    want = whole[RECORD - cut : RECORD - cut + len(got)]
    if hashlib.sha256(got).hexdigest() != hashlib.sha256(want).hexdigest():
        at = next((i for i, (a, b) in enumerate(zip(got, want, strict=False)) if a != b), None)
        raise AssertionError(
            f"{what}: {len(got)} bytes are not one slice of the stream from record {first}; "
            f"first difference at byte {at}: {got[max(0, (at or 0) - 20) : (at or 0) + 20]!r}"
        )


def _session(target: IpmiTarget, host: Host, what: str) -> bytes:
    got = bytearray()
    lock = threading.Lock()

    def sink(data: bytes) -> None:
        with lock:
            got.extend(data)

    before = host.written
    with IpmiSolTransport(target, PASSWORD, sink=sink) as tr:
        assert tr.engine_session is not None, "the session was not taken over by the engine"
        assert before > 0  # the host was writing before the activation and the take-over
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline:
            time.sleep(0.05)
    with lock:
        _check_slice(bytes(got), what)
        return bytes(got)


def _pty_writer(pty: PtyPair) -> Callable[[bytes], None]:
    def write(data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(pty.master, view) :]

    return write


def test_take_over_from_pyghmi_while_the_virtual_bmc_streams(
    vbmc_process: tuple[int, PtyPair],
) -> None:
    port, pty = vbmc_process
    target = IpmiTarget("127.0.0.1", USER, port)
    with Host(_pty_writer(pty)) as host:
        time.sleep(0.3)  # output is flowing before the first activation
        for i in range(SESSIONS):
            _session(target, host, f"virtual BMC session {i}")


def test_take_over_from_pyghmi_while_ipmi_sim_streams(ipmi_sim: IpmiSim) -> None:
    serial = ipmi_sim.serial
    assert serial is not None
    with Host(serial.sendall) as host:
        time.sleep(0.3)
        for i in range(SESSIONS):
            _session(ipmi_sim.target(), host, f"ipmi_sim session {i}")


def test_a_sol_packet_that_came_before_the_activate_reply_reaches_the_recording(
    pty_pair: PtyPair,
) -> None:
    """The BMC sends its first SOL packet before it answers Activate Payload and never sends
    it again (``--early-once``): pyghmi's I/O thread reads it while pyghmi still owns the
    session. It must reach the engine, in order, not be dropped waiting for a retransmission
    that does not come. The first session starts at the stream's first byte: the virtual
    BMC buffered everything the host wrote before it."""
    with vbmc_running(pty_pair.path, "--early-once") as port:
        target = IpmiTarget("127.0.0.1", USER, port)
        with Host(_pty_writer(pty_pair)) as host:
            time.sleep(0.3)
            got = _session(target, host, "first session")
            assert got[: 20 * RECORD] == _records(0, 20)
            for i in range(1, SESSIONS):
                _session(target, host, f"session {i}")
