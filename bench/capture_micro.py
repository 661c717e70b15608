"""Micro-benchmark of solcap's recording path: CPU per received chunk, and descriptors held.

Run: ``.venv/bin/python bench/capture_micro.py [--mib 64] [--chunk 255] [--paced]``

Feeds real GRUB/Xen/Dom0 console bytes (``/work/shared/samples``, repeated) in SOL-sized
chunks (≤ 255 bytes) into a :class:`solcap.capture.recording.Recording` in a temporary directory and
prints the process CPU time (user + system, so syscalls count) per chunk, the throughput, and
how many file descriptors one open recording holds. At the end it checks that
``console.raw`` is byte-exact, so a faster recorder cannot win by dropping bytes.

Two clocks:

* default: the real clock. The chunks arrive back to back, so batching by size dominates.
* ``--paced``: the recorder sees a simulated clock advancing 1/45 s per chunk — the rate at
  which a 115200 baud SOL stream delivers 255-byte chunks — so its time-based work (fsync of
  ``console.raw`` every ``FSYNC_INTERVAL``, derived-file flushes) happens as often per chunk
  as it does in the field. Only the recorder's clock is simulated; the CPU figure is real.

Measured on the 2-core development VM (ext4, Python 3.11, two other jobs sharing the cores),
64 MiB in 263172 chunks of 255 bytes, two runs each, before (solcap 728d456: six descriptors,
one ``write`` per file per chunk) and after (batched derived files):

=========================================  ===============  ===============
                                           before           after
=========================================  ===============  ===============
CPU µs per chunk, real clock               29.1 – 29.9      7.6 – 7.7
CPU µs per chunk, ``--paced``              33.4 – 33.6      12.7 – 15.8
same, as % of a core at 45 chunks/s        0.15 %           0.06 – 0.07 %
throughput, real clock                     8.5 MB/s         33 MB/s
descriptors held by an open recording      6                2
=========================================  ===============  ===============

What is left per chunk: the ``write`` of ``console.raw`` (≈ 1.3 µs on this VM, the floor),
SHA-256, one timing line, and the human log (≈ 4 µs: one cleaned, routed block per chunk).
``--paced`` adds the once-a-second work: ``fsync`` of ``console.raw`` (the policy, unchanged)
and one append to each derived file. In ``--paced`` the recorder's flusher thread also sees the
simulated clock, wakes for many simulated seconds per real one and so costs a little more here
than in the field.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
import time
import types
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from solcap.capture import recording as capture  # noqa: E402  (after the path fix, so the checkout is measured)

SAMPLES = Path("/work/shared/samples")
SOL_CHUNKS_PER_SECOND = 45.0  # 115200 baud ≈ 11520 B/s ÷ 255 B


def corpus() -> bytes:
    """The sample session followed by every debug-key dump, as one realistic console text."""
    parts = [(SAMPLES / "sol-session-grub2.06-xen4.17.raw").read_bytes()]
    for path in sorted(SAMPLES.glob("xen4.17-key-*.txt")):
        parts.append(path.read_bytes().replace(b"\n", b"\r\n"))
    return b"".join(parts)


def stream(total: int) -> bytes:
    text = corpus()
    return (text * (total // len(text) + 1))[:total]


def open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


class _PacedTime(types.SimpleNamespace):
    """The ``time`` module as the recorder sees it, with ``monotonic`` driven by the bench."""

    def __init__(self) -> None:
        super().__init__()
        self.now = time.monotonic()

    def __getattr__(self, name: str) -> object:
        return getattr(time, name)

    def monotonic(self) -> float:
        return self.now


def run(total: int, chunk: int, paced: bool, root: Path) -> dict[str, float]:
    data = stream(total)
    chunks = [data[i : i + chunk] for i in range(0, len(data), chunk)]
    clock = _PacedTime()
    saved = getattr(capture, "time")  # noqa: B009  (the module the recorder reads its clock from)
    if paced:
        setattr(capture, "time", clock)  # noqa: B010
    try:
        before_open = open_descriptors()
        rec = capture.Recording("bench-host", label="micro", root=root)
        held = open_descriptors() - before_open
        rec.feed(chunks[0])
        held = max(held, open_descriptors() - before_open)
        step = 1.0 / SOL_CHUNKS_PER_SECOND
        feed = rec.feed
        cpu0, wall0 = time.process_time(), time.perf_counter()
        for piece in chunks[1:]:
            clock.now += step
            feed(piece)
        cpu1, wall1 = time.process_time(), time.perf_counter()
        held = max(held, open_descriptors() - before_open)
        summary = rec.close()
        cpu2 = time.process_time()
    finally:
        setattr(capture, "time", saved)  # noqa: B010
    raw = (summary.path / "console.raw").read_bytes()
    if hashlib.sha256(raw).digest() != hashlib.sha256(data).digest():
        raise SystemExit("console.raw is not byte-exact: the measurement is void")
    n = len(chunks) - 1
    return {
        "chunks": float(n),
        "cpu_us_per_chunk": (cpu1 - cpu0) / n * 1e6,
        "close_ms": (cpu2 - cpu1) * 1e3,
        "mb_per_s": total / (wall1 - wall0) / 1e6,
        "cpu_pct_of_core_at_115200": (cpu1 - cpu0) / n * SOL_CHUNKS_PER_SECOND * 100,
        "descriptors": float(held),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--mib", type=float, default=64.0, help="bytes to feed, MiB")
    parser.add_argument("--chunk", type=int, default=255, help="bytes per feed() call")
    parser.add_argument("--paced", action="store_true", help="simulated 45 chunks/s clock")
    parser.add_argument("--root", type=Path, default=None, help="where the recording goes")
    args = parser.parse_args(argv)
    total = int(args.mib * 1024 * 1024)
    with tempfile.TemporaryDirectory(dir=args.root) as tmp:
        result = run(total, args.chunk, args.paced, Path(tmp))
    clock = "paced 45 chunks/s" if args.paced else "real clock"
    print(f"{args.mib:g} MiB in {int(result['chunks'])} chunks of {args.chunk} B ({clock})")
    print(f"  CPU per chunk        {result['cpu_us_per_chunk']:8.2f} µs")
    print(f"  throughput           {result['mb_per_s']:8.2f} MB/s")
    print(f"  CPU at 45 chunks/s   {result['cpu_pct_of_core_at_115200']:8.3f} % of a core")
    print(f"  close()              {result['close_ms']:8.1f} ms CPU")
    print(f"  descriptors held     {int(result['descriptors']):8d} per open recording")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
