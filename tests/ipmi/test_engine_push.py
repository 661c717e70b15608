"""The SOL engine pushes received bytes to the console in its own thread (Transport.push_to):
no buffer and no reader wake-up between a packet and the recorder. Against the virtual BMC
in its own process and OpenIPMI's ipmi_sim, byte-exact."""

from __future__ import annotations

import hashlib
import os
import threading

import pytest

from solcap.capture.recording import Recording
from solcap.console.core import Console
from solcap.errors import ConsoleClosed
from solcap.transports.ipmi import IpmiSolTransport, IpmiTarget
from solcap.transports.ipmi.engine import shared_engine
from tests.ipmi.conftest import PASSWORD, USER, PtyPair
from tests.ipmi.ipmisim import IpmiSim as Sim

pytestmark = pytest.mark.timeout(60)


def _stream(size: int) -> bytes:
    return hashlib.shake_256(b"engine-push").digest(size)


def test_the_recording_is_fed_in_the_engine_thread(
    vbmc_process: tuple[int, PtyPair], tmp_path: os.PathLike[str]
) -> None:
    """Every chunk reaches the sink in the engine's thread, never the console's reader, and
    the recording's bytes are the host's bytes."""
    port, pty = vbmc_process
    data = _stream(30000)
    threads: set[str] = set()
    rec = Recording("vbmc", root=tmp_path)

    def sink(chunk: bytes) -> None:
        threads.add(threading.current_thread().name)
        rec.feed(chunk)

    tr = IpmiSolTransport(IpmiTarget("127.0.0.1", USER, port), PASSWORD, engine=True)
    with Console(tr, sink=sink) as con:
        assert con.pushed
        os.write(pty.master, data)
        con.wait_for_bytes(len(data), timeout=30)
        assert con.expect(data[-64:], timeout=5).end == len(data)  # the match buffer too
    summary = rec.close()
    assert threads == {shared_engine().thread.name}
    assert summary.sha256 == hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize(("env", "engine_path"), [(None, True), ("0", False)])
def test_solcap_sol_engine_0_keeps_new_sessions_on_pyghmis_path(
    vbmc_process: tuple[int, PtyPair],
    tmp_path: os.PathLike[str],
    monkeypatch: pytest.MonkeyPatch,
    env: str | None,
    engine_path: bool,
) -> None:
    """``SOLCAP_SOL_ENGINE=0`` (docs/ipmi.md): a session opened without ``engine=`` runs on
    pyghmi's pump (nothing reaches the sink from the engine's thread); unset, on the
    engine. Byte-exact either way."""
    if env is None:
        monkeypatch.delenv("SOLCAP_SOL_ENGINE", raising=False)
    else:
        monkeypatch.setenv("SOLCAP_SOL_ENGINE", env)
    port, pty = vbmc_process
    data = _stream(8000)
    threads: set[str] = set()
    rec = Recording("vbmc", root=tmp_path)

    def sink(chunk: bytes) -> None:
        threads.add(threading.current_thread().name)
        rec.feed(chunk)

    tr = IpmiSolTransport(IpmiTarget("127.0.0.1", USER, port), PASSWORD)
    with Console(tr, sink=sink) as con:
        os.write(pty.master, data)
        con.wait_for_bytes(len(data), timeout=30)
    summary = rec.close()
    assert threads, "nothing reached the sink"
    # The engine's thread feeds the sink on its path and never on pyghmi's.
    assert (threads == {shared_engine().thread.name}) is engine_path, threads
    assert summary.sha256 == hashlib.sha256(data).hexdigest()


def test_bytes_that_came_before_the_console_are_pushed_first(ipmi_sim: Sim) -> None:
    """Bytes buffered between activation and push_to go out first, then the pushed ones."""
    first, second = b"before-the-console|", bytes(range(256)) * 16
    got = bytearray()
    with IpmiSolTransport(ipmi_sim.target(), PASSWORD, engine=True) as tr:
        assert ipmi_sim.send(first)
        while len(tr._buf) < len(first):  # buffered by the transport, nobody pushed to yet
            assert tr.read(0, 0.05) == b""
        done = threading.Event()

        def receiver(chunk: bytes) -> None:
            got.extend(chunk)
            if len(got) >= len(first) + len(second):
                done.set()

        assert tr.push_to(receiver)
        assert ipmi_sim.send(second)
        assert done.wait(20)
        assert tr.read(100, 0.05) == b""  # read carries no data once pushed
    assert bytes(got) == first + second


def test_a_failing_receiver_ends_its_console_and_not_the_engine(
    vbmc_process: tuple[int, PtyPair],
) -> None:
    """A receiver that raises ends that console with ConsoleClosed; the engine thread goes on
    and serves the next session byte-exact."""
    port, pty = vbmc_process
    target = IpmiTarget("127.0.0.1", USER, port)

    def broken(chunk: bytes) -> None:
        raise RuntimeError("recorder bug")

    with IpmiSolTransport(target, PASSWORD, engine=True) as tr:
        assert tr.push_to(broken)
        os.write(pty.master, b"boom")
        with pytest.raises(ConsoleClosed, match="receiver failed: recorder bug"):
            for _ in range(200):
                tr.read(100, 0.1)
    assert shared_engine().thread.is_alive()
    data = _stream(8000)
    tr = IpmiSolTransport(target, PASSWORD, engine=True)
    with Console(tr) as con:
        os.write(pty.master, data)
        con.wait_for_bytes(len(data), timeout=30)
        assert con.read_available() == data
