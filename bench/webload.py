"""The web view under load: ``solcap serve --web`` with many viewers, and with many consoles.

Two workloads, each a fresh ``solcap serve --web`` in a process of its own (its CPU and memory
are read from ``/proc``; the load generator is this process, on the same 2 cores):

* ``viewers``: one console on a real pty, S bytes written at 115200 (8N1 line rate) twice:
  first with no viewer, then with V browser-less WebSocket viewers (aiohttp, read token)
  attached. Figures: serve's CPU for each stream, the extra CPU per viewer, RSS, and whether
  every viewer and the recording got every byte (SHA-256; a viewer's first binary message is
  the screen, the rest is the stream).
* ``start-page``: C consoles on real ptys (idle); serve's RSS and idle CPU with them, then the
  start page (``/``) and the table start.js refreshes every 3 s (``/fragment/consoles``)
  fetched R times each: latency p50/max, serve CPU per request, page size, and that the page
  lists all C consoles.

``python -m bench.webload --quick`` runs both small (5 viewers, 50 consoles).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import re
import select
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import tty
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.servers import tree_usage
from bench.workloads import PacedStream, PacedWriter, line_rate, make_stream

PY = sys.executable
TOP = Path(__file__).resolve().parent.parent
WORKLOADS = ("viewers", "start-page")
VIEWERS, CONSOLES, STREAM, REQUESTS = 50, 1000, 128 * 1024, 20
QUICK = {"viewers": 5, "consoles": 50, "stream": 16 * 1024, "requests": 5}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Serve:
    """``solcap serve --web`` over ``count`` fresh ptys, tokens in a 0600 file."""

    def __init__(self, work: Path, count: int) -> None:
        self.work = work
        self.ptys = [os.openpty() for _ in range(count)]
        for master, _slave in self.ptys:
            tty.setraw(master)
        lines = ["hosts:"]
        for i, (_master, slave) in enumerate(self.ptys):
            lines += [f"  c{i}:", f"    serial: {os.ttyname(slave)}", "    line: 115200,8n1"]
        inventory = work / "inventory.yaml"
        inventory.write_text("\n".join(lines) + "\n")
        self.root, self.port, tokens = work / "rec", _free_port(), work / "tokens"
        self.root.mkdir()
        argv = [PY, "-m", "solcap.cli", "serve", "--inventory", str(inventory)]
        argv += ["--root", str(self.root), "--control-dir", str(work / "ctl")]
        argv += ["--web", f"127.0.0.1:{self.port}", "--token-file", str(tokens)]
        self.proc = subprocess.Popen(
            argv,
            stdout=subprocess.PIPE,
            stderr=open(work / "serve.err", "ab"),  # noqa: SIM115 - the child keeps it
            cwd=TOP,
            env=dict(os.environ, PYTHONPATH=str(TOP)),
        )
        assert self.proc.stdout is not None
        poller = select.poll()  # not select(): 1,000 ptys put this descriptor past 1024
        poller.register(self.proc.stdout, select.POLLIN)
        for _ in range(2):  # "ready SOCKET", then "web: URL (tokens in FILE)"
            ready = poller.poll(120_000)
            line = self.proc.stdout.readline().decode() if ready else ""
            if not line:
                raise RuntimeError(f"solcap serve --web did not start: see {work}/serve.err")
            if line.startswith("ready "):
                self.socket = Path(line.split(" ", 1)[1].strip())
        self.token = tokens.read_text().split("read ", 1)[1].split()[0]
        self.base = f"http://127.0.0.1:{self.port}"

    def status(self) -> list[dict[str, Any]]:
        from solcap.serve.client import request_status

        hosts: list[dict[str, Any]] = request_status(self.socket, timeout=60)["hosts"]
        return hosts

    def wait_up(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(TimeoutError, OSError):  # busy opening: ask again
                if all(h["state"] == "up" for h in self.status()):
                    return True
            time.sleep(0.5)
        return False

    def usage(self) -> dict[str, float]:
        value = tree_usage(self.proc.pid)
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    value["hwm_kib"] = float(line.split()[1])
        return value

    def raw(self, host: str) -> bytes:
        pieces = sorted((self.root / host).glob("*_serve/console.raw"))
        return b"".join(p.read_bytes() for p in pieces)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        for master, slave in self.ptys:
            for fd in (master, slave):
                with contextlib.suppress(OSError):
                    os.close(fd)


def _paced(master: int, data: bytes) -> None:
    PacedWriter([PacedStream(master, data)], line_rate(115200)).run(time.monotonic())


async def _viewers(serve: Serve, count: int, size: int, attached: threading.Event,
                   go: threading.Event) -> list[bytes]:  # fmt: skip
    import aiohttp

    headers = {"Authorization": f"Bearer {serve.token}"}
    url = f"{serve.base}/live/c0/ws"
    async with aiohttp.ClientSession() as session:
        sockets = [await session.ws_connect(url, headers=headers) for _ in range(count)]
        for ws in sockets:
            first = await ws.receive(timeout=60)
            assert '"attached"' in str(first.data), first

        async def collect(ws: aiohttp.ClientWebSocketResponse) -> bytes:
            screen, got = None, bytearray()
            while len(got) < size:
                message = await ws.receive(timeout=120)
                if message.type == aiohttp.WSMsgType.BINARY:
                    if screen is None:
                        screen = message.data
                    else:
                        got.extend(message.data)
                elif message.type != aiohttp.WSMsgType.TEXT:
                    break
            return bytes(got)

        tasks = [asyncio.create_task(collect(ws)) for ws in sockets]
        attached.set()
        results = await asyncio.gather(*tasks)
        for ws in sockets:
            await ws.close()
        return list(results)


def viewers(work: Path, count: int, size: int, say: Callable[[str], None]) -> dict[str, Any]:
    serve = Serve(work, 1)
    try:
        if not serve.wait_up(60):
            raise RuntimeError("the console never came up")
        master = serve.ptys[0][0]
        row: dict[str, Any] = {"workload": "viewers", "viewers": count, "stream_size": size}
        alone = make_stream(size, 1)
        u0, t0 = serve.usage(), time.monotonic()
        _paced(master, alone)
        deadline = time.monotonic() + 60
        while len(serve.raw("c0")) < size and time.monotonic() < deadline:
            time.sleep(0.1)
        u1, t1 = serve.usage(), time.monotonic()
        row.update(alone_cpu_s=u1["cpu_s"] - u0["cpu_s"], alone_wall_s=t1 - t0,
                   rss_alone_kib=u1["rss_kib"])  # fmt: skip
        say(f"web: viewers: stream alone {row['alone_cpu_s']:.2f} CPU s; attaching {count}")
        watched = make_stream(size, 2)
        attached, go, results = threading.Event(), threading.Event(), []

        def run() -> None:
            results.extend(asyncio.run(_viewers(serve, count, size, attached, go)))

        loader = threading.Thread(target=run, daemon=True)
        loader.start()
        if not attached.wait(120):
            raise RuntimeError("the viewers never attached")
        u2, t2 = serve.usage(), time.monotonic()
        _paced(master, watched)
        loader.join(180)
        u3, t3 = serve.usage(), time.monotonic()
        want = hashlib.sha256(watched).hexdigest()
        exact = sum(1 for r in results if hashlib.sha256(r).hexdigest() == want)
        recorded = serve.raw("c0")
        row.update(
            watched_cpu_s=u3["cpu_s"] - u2["cpu_s"],
            watched_wall_s=t3 - t2,
            ideal_s=size / line_rate(115200),
            cpu_pct_alone=100 * row["alone_cpu_s"] / row["alone_wall_s"],
            cpu_pct_watched=100 * (u3["cpu_s"] - u2["cpu_s"]) / (t3 - t2),
            extra_cpu_ms_per_viewer=1000
            * ((u3["cpu_s"] - u2["cpu_s"]) - row["alone_cpu_s"])
            / count,
            rss_watched_kib=u3["rss_kib"],
            hwm_kib=u3.get("hwm_kib"),
            rss_per_viewer_kib=(u3["rss_kib"] - row["rss_alone_kib"]) / count,
            viewers_exact=exact,
            recording_exact=hashlib.sha256(recorded).hexdigest()
            == hashlib.sha256(alone + watched).hexdigest(),
        )
        return row
    finally:
        serve.stop()


def _get(serve: Serve, path: str) -> tuple[float, bytes]:
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", serve.port, timeout=120)
    try:
        t0 = time.monotonic()
        conn.request("GET", path, headers={"Authorization": f"Bearer {serve.token}"})
        response = conn.getresponse()
        body = response.read()
        if response.status != 200:
            raise RuntimeError(f"GET {path}: {response.status}")
        return time.monotonic() - t0, body
    finally:
        conn.close()


def start_page(work: Path, count: int, requests: int, say: Callable[[str], None]) -> dict[str, Any]:
    serve = Serve(work, count)
    try:
        t0 = time.monotonic()
        up = serve.wait_up(120 + count * 0.1)
        row: dict[str, Any] = {"workload": "start-page", "consoles": count, "all_up": up,
                               "up_s": time.monotonic() - t0}  # fmt: skip
        say(f"web: start-page: {count} consoles up={up} in {row['up_s']:.1f} s")
        time.sleep(3)
        u0, w0 = serve.usage(), time.monotonic()
        time.sleep(10)
        u1, w1 = serve.usage(), time.monotonic()
        row.update(
            idle_cpu_pct=100 * (u1["cpu_s"] - u0["cpu_s"]) / (w1 - w0),
            rss_kib=u1["rss_kib"],
            rss_per_console_kib=u1["rss_kib"] / count,
        )
        times = []
        for _ in range(requests):  # what every page load asks serve first
            t = time.monotonic()
            self_status = serve.status()
            times.append(time.monotonic() - t)
        row.update(status_p50_ms=1000 * statistics.median(times),
                   status_max_ms=1000 * max(times), status_hosts=len(self_status))  # fmt: skip
        for path, key in (("/", "page"), ("/fragment/consoles", "fragment")):
            times, body = [], b""
            before = serve.usage()
            for _ in range(requests):
                took, body = _get(serve, path)
                times.append(took)
            after = serve.usage()
            rows = len(re.findall(rb'href="/live/c\d+">c\d+<', body))
            row.update({
                f"{key}_p50_ms": 1000 * statistics.median(times),
                f"{key}_max_ms": 1000 * max(times),
                f"{key}_cpu_ms": 1000 * (after["cpu_s"] - before["cpu_s"]) / requests,
                f"{key}_kib": len(body) / 1024,
                f"{key}_consoles_listed": rows,
            })  # fmt: skip
        row["hwm_kib"] = serve.usage().get("hwm_kib")
        return row
    finally:
        serve.stop()


def measure(
    workload: str, *, quick: bool, work: Path, say: Callable[[str], None]
) -> dict[str, Any]:
    sizes = QUICK if quick else {"viewers": VIEWERS, "consoles": CONSOLES, "stream": STREAM,
                                 "requests": REQUESTS}  # fmt: skip
    here = Path(tempfile.mkdtemp(dir=work, prefix=f"web-{workload}-"))
    load = os.getloadavg()[0]
    if workload == "viewers":
        row = viewers(here, sizes["viewers"], sizes["stream"], say)
    elif workload == "start-page":
        row = start_page(here, sizes["consoles"], sizes["requests"], say)
    else:
        raise ValueError(workload)
    row.update(load1=load, load1_end=os.getloadavg()[0])
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.webload")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", default=",".join(WORKLOADS))
    args = parser.parse_args(argv)
    import resource
    import shutil

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 65536)), hard))
    work = Path(tempfile.mkdtemp(prefix="solcap-bench-web-"))
    try:
        for workload in args.only.split(","):
            row = measure(workload, quick=args.quick, work=work,
                          say=lambda t: print(t, file=sys.stderr, flush=True))  # fmt: skip
            print(json.dumps(row), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
