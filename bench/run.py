"""The benchmark command: solcap vs ipmitool vs ipmiconsole through the virtual BMC.

``scripts/bench`` (or ``python -m bench.run``) measures, in one run:

1. single-host capture of a deterministic stream at line rate (time ratio to S/(baud/10),
   SHA-256 byte-exactness, CPU seconds and peak RSS of the client process);
2. the same with ipmitool and FreeIPMI ipmiconsole as peers;
3. N sessions at once in one solcap process (and N ipmitool processes);
4. keystroke latency (send -> echo seen) and idle CPU per held session
   (:mod:`bench.idle`), solcap, ipmitool and ipmiconsole one after another;
5. console servers beside each other: solcap serve, conserver and ConMan holding the same
   virtual BMCs (:mod:`bench.servers`);
6. the web view under load: 50 WebSocket viewers, a start page over 1,000 consoles
   (:mod:`bench.webload`);

and writes ``docs/benchmarks.md`` and ``docs/benchmarks.json``. Every client runs in a process
of its own and every BMC in a farm process (:mod:`bench.bmcfarm`), so CPU and RSS belong to the
client alone. Nothing is tuned to pass: targets are printed beside what was measured.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import hashlib
import json
import os
import platform
import queue
import resource
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from bench import peers, report, servers
from bench.workloads import line_rate, make_stream

TOP = Path(__file__).resolve().parent.parent
PY = sys.executable
#: The row name of the SOL engine prototype (`--engine`).
ENGINE_CLIENT = "solcap engine"

#: Full run: (size, baud) pairs. 1 MiB at 38400 would take 273 s per client (819 s for three),
#: so the full run stops at 64 KiB for 38400 and does 1 MiB at 115200 only.
FULL_SINGLE = [(64 * 1024, 38400), (64 * 1024, 115200), (1024 * 1024, 115200)]
QUICK_SINGLE = [(64 * 1024, 115200)]
FULL_MANY = [10, 100, 300, 1000]
QUICK_MANY = [10]
#: ipmitool is one process per session (~15 MiB each): 300 fit in memory here, so the N = 300
#: row has its peer beside it; at 1000 the machine would be measuring fork and page tables.
IPMITOOL_MANY = [10, 100, 300]
MANY_SIZE = 64 * 1024
MANY_BAUD = 115200
#: BMCs per farm process.
FARM_SIZE = 50
LATENCY_KEYS = 200
#: Console servers: (N, stream bytes per console (0 = idle), restart one farm of BMCs).
FULL_SERVERS = [(100, 0, True), (1000, 0, False), (200, 64 * 1024, False)]
QUICK_SERVERS = [(10, 0, True), (20, 16 * 1024, False)]


class JsonProc:
    """A child speaking JSON lines on stdin/stdout; ``recv`` has a timeout."""

    def __init__(self, argv: list[str], env: dict[str, str], log: Path) -> None:
        self._log = open(log, "ab")  # noqa: SIM115 - lives as long as the child
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            env=env,
            cwd=TOP,
            text=True,
            start_new_session=True,
        )
        self._q: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._reader, daemon=True).start()
        self.rusage: resource.struct_rusage | None = None

    def _reader(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._q.put(line)
        self._q.put(None)

    def send(self, value: Any) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write((value if isinstance(value, str) else json.dumps(value)) + "\n")
        self.proc.stdin.flush()

    def recv(self, timeout: float) -> dict[str, Any]:
        try:
            line = self._q.get(timeout=timeout)
        except queue.Empty as exc:
            raise TimeoutError(f"{self.proc.args!r}: no answer in {timeout:g} s") from exc
        if line is None:
            raise EOFError(f"{self.proc.args!r}: exited ({self._log.name})")
        value: dict[str, Any] = json.loads(line)
        return value

    def ask(self, value: Any, timeout: float = 30.0) -> dict[str, Any]:
        self.send(value)
        return self.recv(timeout)

    def reap(self, timeout: float) -> resource.struct_rusage:
        """Wait for exit (SIGTERM, then SIGKILL, after ``timeout``); the child's rusage."""
        deadline = time.monotonic() + timeout
        while True:
            pid, status, ru = os.wait4(self.proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.proc.pid, 15)
                _pid, status, ru = os.wait4(self.proc.pid, 0)
                break
            time.sleep(0.05)
        self.proc.returncode = status
        self._log.close()
        self.rusage = ru
        return ru


@dataclass
class Ctx:
    work: Path
    password: str
    pwfile: Path
    env: dict[str, str]
    log: list[str]

    def say(self, text: str) -> None:
        stamp = time.strftime("%H:%M:%S")
        line = f"[{stamp} load {os.getloadavg()[0]:.2f}] {text}"
        print(line, file=sys.stderr, flush=True)
        self.log.append(line)


def start_farm(ctx: Ctx, count: int, address: str = "127.0.0.1", port: int = 0) -> JsonProc:
    argv = [PY, "-m", "bench.bmcfarm", "--count", str(count), "--address", address]
    argv += ["--port", str(port)]
    return JsonProc(argv, ctx.env, ctx.work / "farm.log")


def farm_ports(farm: JsonProc, timeout: float) -> list[int]:
    ports: list[int] = farm.recv(timeout)["ports"]
    return ports


def quit_farm(farm: JsonProc) -> resource.struct_rusage:
    with contextlib.suppress(OSError, ValueError):
        farm.send({"cmd": "quit"})
    return farm.reap(10)


def wait_active(farms: list[JsonProc], want: int, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    active = 0
    while time.monotonic() < deadline:
        active = sum(f.ask({"cmd": "active"})["active"] for f in farms)
        if active >= want:
            break
        time.sleep(0.1)
    return active


def ipmiconsole_farm(ctx: Ctx) -> tuple[JsonProc, str]:
    """ipmiconsole only reaches port 623: bind a BMC there on the first free 127.0.0.x."""
    last = ""
    for last_octet in range(5, 40):
        address = f"127.0.0.{last_octet}"
        farm = start_farm(ctx, 1, address, 623)
        try:
            farm_ports(farm, 20)
            return farm, address
        except (EOFError, TimeoutError) as exc:
            last = str(exc)
            farm.reap(5)
    raise RuntimeError(f"no 127.0.0.x:623 free for ipmiconsole: {last}")


def verdict(
    size: int, data_len: int, digest: str, want: str, stream: bytes | None = None
) -> dict[str, Any]:
    """Loss against the stream. With ``stream``, a session that had not received everything
    when the run's time ran out, but whose bytes so far are exactly the stream's first bytes,
    is *unfinished* (slow), not lossy: its missing tail is counted apart."""
    prefix = stream[:data_len] if stream is not None and data_len < size else None
    if prefix is not None and hashlib.sha256(prefix).hexdigest() == digest:
        return {"lost": 0, "dup": 0, "exact": False, "unfinished": size - data_len}
    return {
        "lost": max(0, size - data_len),
        "dup": max(0, data_len - size),
        "exact": digest == want,
        "unfinished": 0,
    }


# ---------------------------------------------------------------------------------- single


def single_solcap(ctx: Ctx, size: int, baud: int, engine: bool = False) -> dict[str, Any]:
    farm = start_farm(ctx, 1)
    port = farm_ports(farm, 30)[0]
    client = JsonProc([PY, "-m", "bench.solclient"], ctx.env, ctx.work / "solclient.log")
    ideal = size / line_rate(baud)
    try:
        root = tempfile.mkdtemp(dir=ctx.work, prefix="rec-")
        client.send(
            {
                "urls": [f"ipmi://admin@127.0.0.1:{port}"],
                "password_file": str(ctx.pwfile),
                "root": root,
                "size": size,
                "timeout": ideal * 3 + 30,
                "engine": engine,
            }
        )
        client.recv(60)
        wait_active([farm], 1, 15)
        start = time.monotonic() + 0.3
        farm.send(
            {"cmd": "stream", "size": size, "rate": line_rate(baud), "seed0": 0, "start": start}
        )
        client.send("go")
        res = client.recv(ideal * 3 + 60)
        fr = farm.recv(ideal * 3 + 60)
        ru = client.reap(30)
        shutil.rmtree(root, ignore_errors=True)
    finally:
        quit_farm(farm)
    sess = res["sessions"][0]
    want = hashlib.sha256(make_stream(size, 0)).hexdigest()
    return {
        "client": ENGINE_CLIENT if engine else "solcap",
        "ratio": (sess["last"] - fr["first"][0]) / ideal if sess["bytes"] else None,
        **verdict(size, sess["bytes"], sess["sha256"], want),
        "cpu_s": ru.ru_utime + ru.ru_stime,
        # The streaming phase alone (the process's own rusage from "go" to the last byte):
        # without the interpreter's start-up and the login, which the whole-process figure has.
        "stream_cpu_s": res["cpu_s"],
        "maxrss_kib": res["hwm_kib"],  # VmHWM: ru_maxrss would include the pre-exec fork
        "writer_stalls": fr["stalls"][0],
    }


def peer_farm(ctx: Ctx, name: str) -> tuple[JsonProc, peers.PeerSpec | None]:
    """One virtual BMC and the command line of peer ``name`` for it (None: not installed,
    and the farm is already stopped). ipmiconsole needs port 623, so its farm gets a
    127.0.0.x address of its own."""
    if name == "ipmiconsole":
        farm, address = ipmiconsole_farm(ctx)
        spec = peers.ipmiconsole_spec(address, ctx.password, ctx.work)
    else:
        farm = start_farm(ctx, 1)
        port = farm_ports(farm, 30)[0]
        spec = peers.ipmitool_spec("127.0.0.1", port, ctx.password)
    if spec is None:
        quit_farm(farm)
    return farm, spec


def single_peer(ctx: Ctx, name: str, size: int, baud: int) -> dict[str, Any]:
    farm, spec = peer_farm(ctx, name)
    if spec is None:
        return {"client": name, "error": "not installed"}
    ideal = size / line_rate(baud)
    try:
        run = peers.start_peer(spec, ctx.work)
        if not wait_active([farm], 1, 15):
            peers.finish(run)
            return {"client": name, "error": f"SOL not activated: {run.stderr()}"}
        start = time.monotonic() + 0.3
        farm.send(
            {"cmd": "stream", "size": size, "rate": line_rate(baud), "seed0": 0, "start": start}
        )
        peers.pump_until([run], lambda r: len(r.payload) >= size, ideal * 3 + 30)
        fr = farm.recv(ideal * 3 + 60)
        peers.pump_until([run], lambda r: False, 0.3)  # anything extra counts as duplicated
        peers.finish(run)
    finally:
        quit_farm(farm)
    data = run.payload
    want = hashlib.sha256(make_stream(size, 0)).hexdigest()
    return {
        "client": name,
        "ratio": (run.last - fr["first"][0]) / ideal if data else None,
        **verdict(size, len(data), hashlib.sha256(data).hexdigest(), want),
        "cpu_s": run.cpu_s,
        "maxrss_kib": run.maxrss_kib,
        "writer_stalls": fr["stalls"][0],
    }


# ---------------------------------------------------------------------------------- many


def start_farms(ctx: Ctx, n: int) -> tuple[list[JsonProc], list[int]]:
    farms = [start_farm(ctx, min(FARM_SIZE, n - i)) for i in range(0, n, FARM_SIZE)]
    ports: list[int] = []
    for farm in farms:
        ports += farm_ports(farm, 120)
    return farms, ports


def farm_cpu(farms: list[JsonProc]) -> float:
    return float(sum(f.ask({"cmd": "usage"})["cpu"] for f in farms))


def stream_all(farms: list[JsonProc], size: int, baud: int, start: float) -> None:
    seed = 0
    for farm in farms:
        farm.send(
            {"cmd": "stream", "size": size, "rate": line_rate(baud), "seed0": seed, "start": start}
        )
        seed += FARM_SIZE


def collect_farms(farms: list[JsonProc], timeout: float) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {"first": [], "last": [], "stalls": []}
    for farm in farms:
        fr = farm.recv(timeout)
        for key in out:
            out[key] += fr[key]
    return out


def many_solcap(
    ctx: Ctx, n: int, record: bool, fix: bool = False, engine: bool = False
) -> dict[str, Any]:
    size, baud = MANY_SIZE, MANY_BAUD
    ideal = size / line_rate(baud)
    ctx.say(f"many: solcap N={n} record={record}: starting {n} BMCs")
    farms, ports = start_farms(ctx, n)
    client = JsonProc([PY, "-m", "bench.solclient"], ctx.env, ctx.work / "solclient.log")
    name = "solcap + pyghmi I/O fix" if fix else ENGINE_CLIENT if engine else "solcap"
    result: dict[str, Any] = {"client": name, "n": n, "record": record}
    root = tempfile.mkdtemp(dir=ctx.work, prefix="rec-") if record else None
    try:
        timeout = ideal * 20 + 60
        client.send(
            {
                "urls": [f"ipmi://admin@127.0.0.1:{p}" for p in ports],
                "password_file": str(ctx.pwfile),
                "root": root,
                "size": size,
                "timeout": timeout,
                "idle": 10,
                "max_errors": 20,
                "pyghmi_fix": fix,
                "engine": engine,
            }
        )
        ready = client.recv(60 + n * 1.0)
        opened = ready["opened"]
        result.update(
            opened=opened,
            open_errors=ready["error_count"],
            open_error_examples=ready["errors"],
            open_s=ready["open_s"],
            rss_base_kib=ready["rss_base_kib"],
            rss_idle_kib=ready["rss_idle_kib"],
            idle_cpu_pct_per_session=(
                100 * ready["idle_cpu_s"] / ready["idle_s"] / opened if opened else None
            ),
            rss_idle_per_session_kib=(
                (ready["rss_idle_kib"] - ready["rss_base_kib"]) / opened if opened else None
            ),
        )
        ctx.say(f"many: N={n}: {opened} sessions open in {ready['open_s']:.1f} s; streaming")
        wait_active(farms, opened, 30)
        bmc_cpu0 = farm_cpu(farms)
        start = time.monotonic() + 0.5
        stream_all(farms, size, baud, start)
        client.send("go")
        res = client.recv(timeout + 60)
        fr = collect_farms(farms, timeout + 60)
        bmc_cpu = farm_cpu(farms) - bmc_cpu0
        by_url = {s["url"]: s for s in res["sessions"]}
        ratios, lost, dup, inexact, complete, unfinished = [], 0, 0, 0, 0, 0
        span_end = start
        for i, port in enumerate(ports):
            sess = by_url.get(f"ipmi://admin@127.0.0.1:{port}")
            if sess is None:
                continue
            stream = make_stream(size, i)
            want = hashlib.sha256(stream).hexdigest()
            v = verdict(size, sess["bytes"], sess["sha256"], want, stream)
            lost += v["lost"]
            dup += v["dup"]
            unfinished += v["unfinished"]
            inexact += 0 if v["exact"] or v["unfinished"] else 1
            if sess["bytes"] >= size:
                complete += 1
                ratios.append((sess["last"] - fr["first"][i]) / ideal)
                span_end = max(span_end, sess["last"])
        span = max(span_end - start, ideal)
        result.update(
            complete=complete,
            lost=lost,
            dup=dup,
            inexact=inexact,
            unfinished=unfinished,
            ratio_p50=statistics.median(ratios) if ratios else None,
            ratio_max=max(ratios) if ratios else None,
            stream_wall_s=res["wall_s"],
            cpu_pct_per_stream=100 * res["cpu_s"] / span / opened if opened else None,
            client_cpu_s=res["cpu_s"],
            bmc_cpu_s=bmc_cpu,
            rss_active_per_session_kib=(
                (res["rss_active_kib"] - ready["rss_base_kib"]) / opened if opened else None
            ),
            hwm_kib=res["hwm_kib"],
            writer_stalls=sum(fr["stalls"]),
        )
        ru = client.reap(60 + n * 0.5)
        result["client_total_cpu_s"] = ru.ru_utime + ru.ru_stime
    except (TimeoutError, EOFError) as exc:
        result["error"] = str(exc)
        client.reap(5)
    finally:
        for farm in farms:
            quit_farm(farm)
        if root:
            shutil.rmtree(root, ignore_errors=True)
    return result


def many_ipmitool(ctx: Ctx, n: int) -> dict[str, Any]:
    size, baud = MANY_SIZE, MANY_BAUD
    ideal = size / line_rate(baud)
    ctx.say(f"many: ipmitool N={n}")
    farms, ports = start_farms(ctx, n)
    result: dict[str, Any] = {"client": "ipmitool", "n": n}
    runs: list[peers.PeerRun] = []
    try:
        for port in ports:
            spec = peers.ipmitool_spec("127.0.0.1", port, ctx.password)
            if spec is None:
                return {"client": "ipmitool", "n": n, "error": "not installed"}
            runs.append(peers.start_peer(spec, ctx.work))
        active = wait_active(farms, n, 30 + n * 0.2)
        rss_idle = sum(peers.vm_kib(r.proc.pid) for r in runs)
        result.update(opened=active, rss_idle_per_session_kib=rss_idle / n)
        start = time.monotonic() + 0.5
        stream_all(farms, size, baud, start)
        peers.pump_until(runs, lambda r: len(r.payload) >= size, ideal * 20 + 60)
        fr = collect_farms(farms, ideal * 20 + 60)
        for run in runs:
            peers.finish(run, grace=1.0)
        ratios, lost, dup, inexact = [], 0, 0, 0
        for i, run in enumerate(runs):
            data = run.payload
            want = hashlib.sha256(make_stream(size, i)).hexdigest()
            v = verdict(size, len(data), hashlib.sha256(data).hexdigest(), want)
            lost, dup = lost + v["lost"], dup + v["dup"]
            inexact += 0 if v["exact"] else 1
            if len(data) >= size:
                ratios.append((run.last - fr["first"][i]) / ideal)
        span = max(max((r.last for r in runs), default=start) - start, ideal)
        cpu = sum(r.cpu_s for r in runs)
        result.update(
            complete=len(ratios),
            lost=lost,
            dup=dup,
            inexact=inexact,
            ratio_p50=statistics.median(ratios) if ratios else None,
            ratio_max=max(ratios) if ratios else None,
            cpu_pct_per_stream=100 * cpu / span / n,
            client_cpu_s=cpu,
            rss_active_per_session_kib=sum(r.maxrss_kib for r in runs) / n,
        )
    finally:
        for run in runs:
            if run.status is None:
                with contextlib.suppress(Exception):
                    peers.finish(run, grace=0.2)
        for farm in farms:
            quit_farm(farm)
    return result


# ---------------------------------------------------------------------------------- latency


def latency_solcap(ctx: Ctx, keys: int, engine: bool = False) -> dict[str, Any]:
    farm = start_farm(ctx, 1)
    port = farm_ports(farm, 30)[0]
    farm.ask({"cmd": "echo"})
    client = JsonProc([PY, "-m", "bench.solclient"], ctx.env, ctx.work / "solclient.log")
    try:
        client.send(
            {
                "urls": [f"ipmi://admin@127.0.0.1:{port}"],
                "password_file": str(ctx.pwfile),
                "root": None,
                "mode": "latency",
                "keys": keys,
                "engine": engine,
            }
        )
        client.recv(60)
        client.send("go")
        res = client.recv(keys * 6 + 30)
        client.reap(30)
    finally:
        quit_farm(farm)
    return {"client": ENGINE_CLIENT if engine else "solcap", **_percentiles(res["latency_s"])}


def latency_peer(ctx: Ctx, name: str, keys: int) -> dict[str, Any]:
    farm, spec = peer_farm(ctx, name)
    if spec is None:
        return {"client": name, "error": "not installed"}
    farm.ask({"cmd": "echo"})
    lat: list[float] = []
    try:
        run = peers.start_peer(spec, ctx.work)
        if not wait_active([farm], 1, 15):
            peers.finish(run)
            return {"client": name, "error": f"SOL not activated: {run.stderr()}"}
        if name == "ipmitool":  # its banner comes late on a pipe; let it through first
            peers.pump_until([run], lambda r: r.connected_at > 0, 0.5)
        for i in range(keys):
            before = len(run.payload)
            t = time.monotonic()
            os.write(run.master, bytes([0x61 + i % 26]))
            echoed = peers.pump_until(
                [run],
                lambda r, b=before: len(r.payload) > b,  # type: ignore[misc]
                5,
            )
            if not echoed:
                peers.finish(run)
                return {"client": name, "error": f"no echo for keystroke {i}: {run.stderr()}"}
            lat.append(time.monotonic() - t)
            time.sleep(0.02)
        peers.finish(run)
    finally:
        quit_farm(farm)
    return {"client": name, **_percentiles(lat)}


def _percentiles(lat: list[float]) -> dict[str, Any]:
    ordered = sorted(lat)
    if not ordered:
        return {"error": "no samples"}

    def pct(p: float) -> float:
        return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]

    return {
        "n": len(ordered),
        "p50_ms": pct(50) * 1000,
        "p99_ms": pct(99) * 1000,
        "max_ms": ordered[-1] * 1000,
    }


# ---------------------------------------------------------------------------------- machine


def machine() -> dict[str, Any]:
    mem = Path("/proc/meminfo").read_text().split("\n", 1)[0].split()[1]
    return {
        "nproc": os.cpu_count(),
        "mem_gib": round(int(mem) / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "pyghmi": metadata.version("pyghmi"),
        "solcap": metadata.version("solcap") if _has_dist("solcap") else "?",
        "ipmitool": peers.tool_version(["ipmitool", "-V"]),
        "ipmiconsole": peers.tool_version([peers.which("ipmiconsole") or "ipmiconsole", "-V"]),
        "git": _git_rev(),
        "uncommitted": _git_dirty(),
    }


def _git_dirty() -> list[str]:
    """solcap files that differ from the commit (the machine is shared with other editors)."""
    try:
        res = subprocess.run(
            ["git", "-C", str(TOP), "status", "--porcelain", "--", "solcap"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except OSError:
        return []
    return [line[3:] for line in res.stdout.splitlines()]


def _has_dist(name: str) -> bool:
    try:
        metadata.version(name)
    except metadata.PackageNotFoundError:
        return False
    return True


def _git_rev() -> str:
    try:
        res = subprocess.run(
            ["git", "-C", str(TOP), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except OSError:
        return "?"
    return res.stdout.strip() or "?"


def _row_key(part: str, row: dict[str, Any]) -> tuple[Any, ...]:
    if part == "single":
        return (row.get("client"), row.get("size"), row.get("baud"))
    if part in ("many", "idle"):
        return (row.get("client"), row.get("n"))
    if part == "servers":
        return (row.get("server"), row.get("n"), row.get("mode"))
    if part == "web":
        return (row.get("workload"),)
    return (row.get("client"),)


def merge(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """``old`` with the rows ``new`` measured again replaced (marked ``rerun``)."""
    for part in ("single", "many", "latency", "idle", "servers", "web"):
        fresh = {_row_key(part, r): r for r in new.get(part, [])}
        rows = []
        for row in old.get(part, []):
            key = _row_key(part, row)
            rows.append(dict(fresh.pop(key), rerun=True) if key in fresh else row)
        rows += [dict(r, rerun=True) for r in fresh.values()]
        old[part] = rows
    old["command"] = f"{old['command']}; then {new['command']}"
    old["log"] = [*old.get("log", []), "-- rerun --", *new["log"]]
    old["duration_s"] = old.get("duration_s", 0) + new["duration_s"]
    old["load_end"] = new["load_end"]
    return old


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/bench", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="64 KiB at 115200 only, N=10, 50 keystrokes (about 2 minutes)",
    )
    parser.add_argument("--many", help="comma-separated N values (default 10,100,300,1000)")
    parser.add_argument(
        "--only",
        default="single,many,latency,idle,servers,web",
        help="comma-separated parts to run: single, many, latency, idle, servers, web",
    )
    parser.add_argument(
        "--idle-n", type=int, help="idle part: sessions held per client (default 50)"
    )
    parser.add_argument(
        "--server-n",
        help="servers part: only the runs with these N (comma-separated; default all)",
    )
    parser.add_argument(
        "--pyghmi-fix",
        action="store_true",
        help="also run the many-hosts part with bench/pyghmi_fix.py applied in solcap's process",
    )
    parser.add_argument(
        "--engine",
        action="store_true",
        help="also measure the SOL engine prototype (solcap/transports/sol_engine.py) "
        "beside solcap's default path, in every part",
    )
    parser.add_argument(
        "--merge",
        action="store_true",
        help="rerun only the parts asked for and replace those rows in the existing JSON "
        "(for figures a busy machine distorted); the rest of the report is kept",
    )
    parser.add_argument("--out", default=str(TOP / "docs" / "benchmarks.md"))
    parser.add_argument("--json", default=str(TOP / "docs" / "benchmarks.json"))
    args = parser.parse_args(argv)
    parts = set(args.only.split(","))
    clients = ("solcap", ENGINE_CLIENT) if args.engine else ("solcap",)
    clients += ("ipmitool", "ipmiconsole")
    with contextlib.suppress(ValueError, OSError):
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 65536)), hard))

    work = Path(tempfile.mkdtemp(prefix="solcap-bench-"))
    os.chmod(work, 0o700)
    password = secrets.token_urlsafe(12)  # IPMI passwords are at most 20 bytes
    pwfile = work / "password"
    fd = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(password + "\n")
    env = dict(os.environ, IPMI_PASSWORD=password, PYTHONPATH=str(TOP))
    ctx = Ctx(work, password, pwfile, env, [])
    started = dt.datetime.now(dt.UTC)
    command = " ".join(["scripts/bench", *(sys.argv[1:] if argv is None else argv)])
    data: dict[str, Any] = {
        "command": command,
        "date": started.strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "load_start": os.getloadavg(),
        "single": [],
        "many": [],
        "latency": [],
        "idle": [],
        "servers": [],
        "web": [],
        "phases": [],
    }
    t_all = time.monotonic()
    try:
        if "single" in parts:
            for size, baud in QUICK_SINGLE if args.quick else FULL_SINGLE:
                for client in clients:
                    ctx.say(f"single: {client} {size // 1024} KiB at {baud}")
                    load = os.getloadavg()[0]
                    try:
                        if client == "solcap":
                            row = single_solcap(ctx, size, baud)
                        elif client == ENGINE_CLIENT:
                            row = single_solcap(ctx, size, baud, engine=True)
                        else:
                            row = single_peer(ctx, client, size, baud)
                    except Exception as exc:  # one failed client must not sink the report
                        row = {"client": client, "error": f"{type(exc).__name__}: {exc}"}
                    row.update(size=size, baud=baud, load1=load, load1_end=os.getloadavg()[0])
                    ctx.say(f"  -> {row}")
                    data["single"].append(row)
        if "latency" in parts:
            keys = 50 if args.quick else LATENCY_KEYS
            for client in clients:
                ctx.say(f"latency: {client}")
                try:
                    row = (
                        latency_solcap(ctx, keys, engine=client == ENGINE_CLIENT)
                        if client in ("solcap", ENGINE_CLIENT)
                        else latency_peer(ctx, client, keys)
                    )
                except Exception as exc:
                    row = {"client": client, "error": f"{type(exc).__name__}: {exc}"}
                row["load1"] = os.getloadavg()[0]
                ctx.say(f"  -> {row}")
                data["latency"].append(row)
        if "idle" in parts:
            from bench import idle

            n = args.idle_n or (10 if args.quick else idle.IDLE_N)
            window = 5.0 if args.quick else idle.IDLE_WINDOW
            for client in clients:
                ctx.say(f"idle: {client} N={n}")
                load = os.getloadavg()[0]
                try:
                    row = (
                        idle.idle_solcap(ctx, n, window, JsonProc, client == ENGINE_CLIENT)
                        if client in ("solcap", ENGINE_CLIENT)
                        else idle.idle_peer(ctx, client, n, window)
                    )
                except Exception as exc:
                    row = {"client": client, "n": n, "error": f"{type(exc).__name__}: {exc}"}
                row.update(load1=load, load1_end=os.getloadavg()[0])
                ctx.say(f"  -> {row}")
                data["idle"].append(row)
        if "many" in parts:
            ns = (
                [int(x) for x in args.many.split(",")]
                if args.many
                else (QUICK_MANY if args.quick else FULL_MANY)
            )
            for n in ns:
                load = os.getloadavg()[0]
                try:
                    row = many_solcap(ctx, n, record=True)
                except Exception as exc:
                    row = {"client": "solcap", "n": n, "error": f"{type(exc).__name__}: {exc}"}
                row.update(load1=load, load1_end=os.getloadavg()[0])
                ctx.say(f"  -> {row}")
                data["many"].append(row)
            for n in ns if args.engine else []:
                load = os.getloadavg()[0]
                try:
                    row = many_solcap(ctx, n, record=True, engine=True)
                except Exception as exc:
                    row = {"client": ENGINE_CLIENT, "n": n, "error": f"{exc!r}"}
                row.update(load1=load, load1_end=os.getloadavg()[0])
                ctx.say(f"  -> {row}")
                data["many"].append(row)
            for n in ns if args.pyghmi_fix else []:
                load = os.getloadavg()[0]
                try:
                    row = many_solcap(ctx, n, record=True, fix=True)
                except Exception as exc:
                    row = {"client": "solcap + fix", "n": n, "error": f"{exc!r}"}
                row.update(load1=load, load1_end=os.getloadavg()[0])
                ctx.say(f"  -> {row}")
                data["many"].append(row)
            for n in [n for n in ns if n in IPMITOOL_MANY]:
                load = os.getloadavg()[0]
                try:
                    row = many_ipmitool(ctx, n)
                except Exception as exc:
                    row = {"client": "ipmitool", "n": n, "error": f"{type(exc).__name__}: {exc}"}
                row.update(load1=load, load1_end=os.getloadavg()[0])
                ctx.say(f"  -> {row}")
                data["many"].append(row)
        if "servers" in parts:
            wanted = {int(x) for x in args.server_n.split(",")} if args.server_n else None
            for n, size, restart in QUICK_SERVERS if args.quick else FULL_SERVERS:
                if wanted is not None and n not in wanted:
                    continue
                for name in servers.SERVERS:  # one after another, so the ratios share a run
                    ctx.say(f"servers: {name} N={n} {'stream' if size else 'idle'}")
                    try:
                        row = servers.measure(
                            name, n, stream_size=size, restart=restart, password=ctx.password,
                            pwfile=ctx.pwfile, env=ctx.env, work=ctx.work, say=ctx.say,
                        )  # fmt: skip
                    except Exception as exc:
                        row = {"server": name, "n": n, "mode": "stream" if size else "idle",
                               "error": f"{type(exc).__name__}: {exc}"}  # fmt: skip
                    ctx.say(f"  -> {row}")
                    data["servers"].append(row)
        if "web" in parts:
            from bench import webload

            for workload in webload.WORKLOADS:
                ctx.say(f"web: {workload}")
                try:
                    row = webload.measure(workload, quick=args.quick, work=ctx.work, say=ctx.say)
                except Exception as exc:
                    row = {"workload": workload, "error": f"{type(exc).__name__}: {exc}"}
                ctx.say(f"  -> {row}")
                data["web"].append(row)
    finally:
        data["load_end"] = os.getloadavg()
        data["duration_s"] = time.monotonic() - t_all
        data["log"] = ctx.log
        if args.merge and Path(args.json).exists():
            data = merge(json.loads(Path(args.json).read_text()), data)
        Path(args.json).write_text(json.dumps(data, indent=2) + "\n")
        Path(args.out).write_text(report.render(data))
        shutil.rmtree(work, ignore_errors=True)
    print(f"wrote {args.out} and {args.json}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
