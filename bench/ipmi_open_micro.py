"""How long N recorded SOL sessions take to open in one solcap process (a micro-benchmark).

``python -m bench.ipmi_open_micro [--count N] [--no-record]`` starts N virtual BMCs (50 per
:mod:`bench.bmcfarm` process, as the benchmark does), opens N sessions exactly as
:mod:`bench.solclient` does (``open_ipmi`` + ``Console`` + ``Recording``, 16 at a time) and
prints one JSON line: total seconds, per-session p50/max, and when the 100th/200th was up.

Why it exists: a synchronous pyghmi command (login, activation) that waits for "the next packet
from its BMC" used to sleep until its retry deadline when the reply had been read before it
began to wait; with the faster I/O loop that race was hit on most logins, and 300 recorded
sessions took 22 s to open instead of 1 s. Only the many-hosts part of :mod:`bench.run` would
show it, and only in its ``open_s`` figure.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.solclient import Session

PASSWORD = "bench-open-micro"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ipmi_open_micro")
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--no-record", action="store_true", help="no Recording on disk")
    args = parser.parse_args(argv)
    env = dict(os.environ, IPMI_PASSWORD=PASSWORD)
    farms: list[subprocess.Popen[str]] = []
    ports: list[int] = []
    with tempfile.TemporaryDirectory() as work:
        pwfile = Path(work) / "pw"
        pwfile.write_text(PASSWORD + "\n")
        pwfile.chmod(0o600)
        root = None if args.no_record else str(Path(work) / "rec")
        try:
            for first in range(0, args.count, 50):
                size = str(min(50, args.count - first))
                farm = subprocess.Popen(
                    [sys.executable, "-m", "bench.bmcfarm", "--count", size],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    text=True,
                    env=env,
                )
                farms.append(farm)
                assert farm.stdout is not None
                ports += json.loads(farm.stdout.readline())["ports"]
            t0 = time.monotonic()
            up: list[float] = []

            def connect(port: int) -> tuple[Session, float]:
                t = time.monotonic()
                session = Session(f"ipmi://admin@127.0.0.1:{port}", str(pwfile), root, 0)
                up.append(time.monotonic() - t0)
                return session, time.monotonic() - t

            with concurrent.futures.ThreadPoolExecutor(16) as pool:
                opened = list(pool.map(connect, ports))
            total = time.monotonic() - t0
            each = sorted(s for _, s in opened)
            up.sort()
            print(
                json.dumps(
                    {
                        "count": args.count,
                        "record": root is not None,
                        "open_s": round(total, 3),
                        "p50_s": round(each[len(each) // 2], 3),
                        "max_s": round(each[-1], 3),
                        "up_100_s": round(up[min(99, len(up) - 1)], 3),
                        "up_200_s": round(up[min(199, len(up) - 1)], 3),
                    }
                ),
                flush=True,
            )
            for session, _ in opened:
                session.close()
        finally:
            for farm in farms:
                farm.kill()
                farm.wait(timeout=10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
