"""The SOL engine prototype through the seeded UDP fault proxy: byte-exact under drop,
duplicate, reorder and delay (late duplicates included), as the default path must be."""

from __future__ import annotations

import pytest

from solcap.capture.recording import Recording
from solcap.testing.faultproxy import Direction, FaultProxy, Faults
from solcap.transports.ipmi import IpmiSolTransport as EngineSolTransport
from solcap.transports.ipmi import IpmiTarget
from tests.resilience.conftest import (
    PASSWORD,
    USER,
    BmcProcess,
    HostWriter,
    pattern,
    sha,
    wait_until,
)

pytestmark = pytest.mark.timeout(90)


def test_engine_capture_is_byte_exact_under_faults(bmc: BmcProcess, pty_pair, tmp_path) -> None:
    faults = Faults(drop=0.05, duplicate=0.05, reorder=0.05, delay=0.05, dup_gap=0.03)
    with FaultProxy.in_front_of(bmc.port, faults, seed=1) as proxy:
        target = IpmiTarget(proxy.address[0], USER, proxy.address[1])
        rec = Recording("engine-faults", root=tmp_path)
        data = pattern(64 * 1024 + 1000)
        writer = HostWriter(pty_pair.master)
        with EngineSolTransport(target, PASSWORD, sink=rec.feed) as tr:
            session = tr.engine_session
            assert session is not None
            writer.write(data)
            assert wait_until(lambda: session.bytes_in >= len(data), 75, step=0.1)
            writer.join(5)
        summary = rec.close()
        both = proxy.stats[Direction.TO_SERVER], proxy.stats[Direction.TO_CLIENT]
        for field in ("dropped", "duplicated", "reordered", "delayed"):
            assert sum(getattr(s, field) for s in both) > 0, (field, proxy.stats)
    assert summary.sha256 == sha(data)
    assert (rec.path / "console.raw").read_bytes() == writer.sent


def test_engine_every_packet_twice_both_ways(bmc: BmcProcess, pty_pair, tmp_path) -> None:
    with FaultProxy.in_front_of(bmc.port, Faults(duplicate=1.0), seed=3) as proxy:
        target = IpmiTarget(proxy.address[0], USER, proxy.address[1])
        rec = Recording("engine-twice", root=tmp_path)
        data = pattern(16 * 1024)
        writer = HostWriter(pty_pair.master)
        with EngineSolTransport(target, PASSWORD, sink=rec.feed) as tr:
            session = tr.engine_session
            assert session is not None
            writer.write(data)
            assert wait_until(lambda: session.bytes_in >= len(data), 30, step=0.1)
            writer.join(5)
        summary = rec.close()
        assert proxy.stats[Direction.TO_CLIENT].duplicated > 0
    assert summary.sha256 == sha(data)
    assert (rec.path / "console.raw").read_bytes() == writer.sent
