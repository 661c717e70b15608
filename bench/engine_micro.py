"""Per-packet work of the two SOL data paths, without sockets or threads.

``python -m bench.engine_micro MODE N`` opens N SOL data packets from a BMC and builds the
ACK of each, with MODE ``pyghmi`` (solcap's default path: pyghmi's ``_handle_ipmi2_packet``
and ``send_payload``, which make AES and HMAC objects per packet, and solcap's SolConsole
state machine on top) or ``engine`` (``RmcpPlusCodec.open`` + ``SolChannel.got`` +
``RmcpPlusCodec.seal``, contexts made once). It prints the CPU seconds of the loop
(``time.process_time``). Run under ``valgrind --tool=callgrind`` with two values of N, the
difference of the instruction counts divided by the difference of N is the instructions per
packet, a figure the machine's load does not change (docs/benchmarks.md, section 6).
"""

from __future__ import annotations

import hashlib
import sys
import time
from typing import Any

from solcap.transports.sol_engine import (
    PAYLOAD_SOL,
    RmcpPlusCodec,
    SessionKeys,
    SolChannel,
)

K1 = hashlib.sha256(b"k1").digest()
AES = hashlib.sha256(b"k2").digest()[:16]
OURS, THEIRS = 0x55667788, 0x11223344


def packets(n: int, size: int = 230) -> list[bytes]:
    """N sealed SOL packets from the BMC (sequence 1..15 cycling), ``size`` data bytes each."""
    bmc = RmcpPlusCodec(SessionKeys(OURS, THEIRS, K1, AES, "sha256", next_seq=10))
    data = hashlib.shake_256(b"micro").digest(size)
    return [bmc.seal(PAYLOAD_SOL, bytes((i % 15 + 1, 0, 0, 0)) + data) for i in range(n)]


def run_engine(pkts: list[bytes]) -> int:
    codec = RmcpPlusCodec(SessionKeys(THEIRS, OURS, K1, AES, "sha256", next_seq=1))
    channel = SolChannel()
    got = 0
    for packet in pkts:
        opened = codec.open(packet)
        assert opened is not None
        fresh, out = channel.got(opened[1], 0.0)
        for payload in out:
            codec.seal(PAYLOAD_SOL, payload)
        got += len(fresh)
    return got


def run_pyghmi(pkts: list[bytes]) -> int:
    import pyghmi.ipmi.private.session as pyghmi_session

    from solcap.transports.ipmi import SolConsole

    sess: Any = object.__new__(pyghmi_session.Session)
    sess.__dict__.update(
        lastpayload=None,
        pendingpayloads=[],
        authtype=6,
        integrityalgo=1,
        confalgo="aes",
        ipmiversion=2.0,
        sessionid=THEIRS,
        localsid=OURS,
        sequencenumber=1,
        aeskey=AES,
        k1=K1,
        currhashlib=hashlib.sha256,
        currhashlen=16,
        _customkeepalives=None,
        last_payload_type=None,
        logged=1,
        remseqnumber=None,
    )
    sess._xmit_packet = lambda *a, **k: None  # no socket: the packet is built, not sent
    got = [0]
    console: Any = object.__new__(SolConsole)
    console._init_state(lambda b: got.__setitem__(0, got[0] + len(b)), lambda k, t: None)
    console.ipmi_session = sess
    console.connected = True
    sess.sol_handler = console._got_sol_payload
    for packet in pkts:
        sess._handle_ipmi2_packet(bytearray(packet))
    return got[0]


def main() -> int:
    mode, n = sys.argv[1], int(sys.argv[2])
    pkts = packets(n)
    run = run_engine if mode == "engine" else run_pyghmi
    run(pkts[:1] if pkts else [])  # warm: imports and first-use costs outside the loop
    t0 = time.process_time()
    got = run(pkts)
    cpu = time.process_time() - t0
    per = cpu / max(n, 1) * 1e6
    print(f"{mode} packets={n} bytes={got} cpu_s={cpu:.4f} us_per_packet={per:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
