"""The solcap side of a benchmark, in a process of its own (so CPU and RSS are its alone).

``python -m bench.solclient`` reads one JSON job from stdin::

    {"urls": [...], "password_file": P, "root": DIR|null, "mode": "stream"|"latency",
     "size": S, "timeout": T, "keys": K, "idle": seconds, "max_errors": E,
     "pyghmi_fix": false}

``pyghmi_fix`` applies :mod:`bench.pyghmi_fix` in this process too (off by default: the
benchmark measures solcap as shipped; ``--pyghmi-fix`` shows what the fix would change).

For each URL it opens SOL exactly as solcap's commands do (:func:`solcap.transports.ipmi.open_ipmi`
with a 0600 password file), puts a :class:`solcap.console.core.Console` on it whose sink is a
:class:`solcap.capture.recording.Recording` on disk, and reports ``{"ready": ...}`` (RSS before and
after opening, idle CPU). It then waits for ``go`` on stdin and either captures ``size`` bytes per
session (stream) or types ``keys`` single keystrokes and times each echo (latency), and prints
the result as one JSON line. Byte counts and SHA-256 come from the recording's ``console.raw``.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import resource
import sys
import threading
import time
from pathlib import Path
from typing import Any

from solcap.capture.recording import Recording
from solcap.config.credentials import password_source
from solcap.console.core import Console
from solcap.transports.ipmi import open_ipmi


def rss_kib(field: str = "VmRSS") -> int:
    """This process's resident set (or VmHWM, its peak) in KiB, from /proc."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


class Session:
    """One SOL session recorded to disk, with arrival times of the first and last byte."""

    def __init__(
        self, url: str, pwfile: str, root: str | None, want: int, engine: bool = False
    ) -> None:
        self.url = url
        self.want = want
        self.count = 0
        self.first = 0.0
        self.last = 0.0
        self.done = threading.Event()
        self.echo = threading.Event()
        # Without a root, only a running SHA-256 (to separate recording cost from SOL cost).
        self.recording = (
            Recording(url.rsplit("@", 1)[1], root=root, label="bench") if root else None
        )
        self.hash = hashlib.sha256()
        self.console: Console | None = None
        if engine:
            # The SOL engine with the recorder as its sink: bytes reach it in the engine thread.
            self.transport: Any = open_ipmi(
                url, password_source=password_source(file=pwfile), engine=True, sink=self._sink
            )
        else:
            # pyghmi's data path (SOLCAP_SOL_ENGINE=0), read by a Console as before the engine.
            self.transport = open_ipmi(
                url, password_source=password_source(file=pwfile), engine=False
            )
            self.console = Console(self.transport, sink=self._sink).start()

    def _sink(self, chunk: bytes) -> None:
        if self.recording is not None:
            self.recording.feed(chunk)
        else:
            self.hash.update(chunk)
        now = time.monotonic()
        if not self.count:
            self.first = now
        self.count += len(chunk)
        self.last = now
        self.echo.set()
        if self.want and self.count >= self.want:
            self.done.set()

    def state(self) -> dict[str, Any]:
        """The SOL state machine's fields, to explain a stalled stream."""
        con = getattr(self.transport, "_console", None)
        engine_session = getattr(self.transport, "engine_session", None)
        if engine_session is not None:
            con = engine_session.channel
            return {n: getattr(con, n, None) for n in ("awaiting", "myseq", "remseq", "tries")}
        names = ("awaitingack", "myseq", "remseq", "prevremseq", "lastsize", "retries", "broken")
        return {n: getattr(con, n, None) for n in names}

    def result(self) -> dict[str, Any]:
        if self.recording is not None:
            data = (self.recording.path / "console.raw").read_bytes()
            size, digest = len(data), hashlib.sha256(data).hexdigest()
        else:
            size, digest = self.count, self.hash.hexdigest()
        return {
            "url": self.url,
            "bytes": size,
            "sha256": digest,
            "first": self.first,
            "last": self.last,
            "state": self.state() if self.count < self.want else None,
        }

    def send(self, data: bytes) -> None:
        if self.console is not None:
            self.console.send(data)
        else:
            self.transport.write(data)

    def close(self) -> None:
        if self.console is not None:
            self.console.close()
        else:
            self.transport.close()
        if self.recording is not None:
            self.recording.close()


def main() -> int:
    job = json.loads(sys.stdin.readline())
    if job.get("pyghmi_fix"):
        from bench import pyghmi_fix

        pyghmi_fix.apply()
    urls: list[str] = job["urls"]
    mode = job.get("mode", "stream")
    want = int(job.get("size", 0)) if mode == "stream" else 0
    base = rss_kib()
    t0 = time.monotonic()
    sessions: list[Session] = []
    errors: list[str] = []

    give_up = threading.Event()
    max_errors = int(job.get("max_errors", 20))

    def opener(url: str) -> Session:
        if give_up.is_set():
            raise RuntimeError("not attempted: too many sessions had already failed")
        return Session(url, job["password_file"], job.get("root"), want, bool(job.get("engine")))

    with concurrent.futures.ThreadPoolExecutor(max_workers=min(len(urls), 16)) as pool:
        futures = [pool.submit(opener, url) for url in urls]
        for fut in futures:
            try:
                sessions.append(fut.result())
            except Exception as exc:  # reported, not hidden: a session that failed to open
                errors.append(f"{type(exc).__name__}: {exc}")
                if len(errors) >= max_errors:
                    give_up.set()
    open_s = time.monotonic() - t0
    idle_s = float(job.get("idle", 0))
    c0 = cpu()
    time.sleep(idle_s)
    idle_cpu = cpu() - c0
    ready = {
        "ready": True,
        "opened": len(sessions),
        "errors": sorted(set(errors))[:5],
        "error_count": len(errors),
        "open_s": open_s,
        "rss_base_kib": base,
        "rss_idle_kib": rss_kib(),
        "idle_cpu_s": idle_cpu,
        "idle_s": idle_s,
        "threads": threading.active_count(),
    }
    print(json.dumps(ready), flush=True)
    sys.stdin.readline()  # "go"
    c0 = cpu()
    w0 = time.monotonic()
    out: dict[str, Any] = {}
    if mode == "stream":
        deadline = w0 + float(job["timeout"])
        for s in sessions:
            s.done.wait(max(0.0, deadline - time.monotonic()))
        out["wall_s"] = time.monotonic() - w0
        out["cpu_s"] = cpu() - c0
        out["rss_active_kib"] = rss_kib()
        out["sessions"] = [s.result() for s in sessions]
    else:
        s = sessions[0]
        lat = []
        for i in range(int(job["keys"])):
            key = bytes([0x61 + i % 26])
            s.echo.clear()
            before = s.count
            t = time.monotonic()
            s.send(key)
            while s.count <= before:
                if not s.echo.wait(5):
                    break
                s.echo.clear()
            lat.append(time.monotonic() - t)
            time.sleep(0.02)
        out["latency_s"] = lat
        out["cpu_s"] = cpu() - c0
    out["hwm_kib"] = rss_kib("VmHWM")
    print(json.dumps(out), flush=True)
    for s in sessions:
        s.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
