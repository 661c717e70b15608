"""Idle CPU per held SOL session: solcap, ipmitool and ipmiconsole holding the same N BMCs.

Every client holds N active SOL payloads of the virtual BMCs of ``bench.servers`` (BMC *i* at
127.0.100.1 + i, port 623, as ipmiconsole needs) with nothing to carry but keepalives, for a
window of ``window`` seconds; CPU is the client's own in that window (solcap: the one
``bench.solclient`` process holding all N; the peers: the sum of their N processes, from
``/proc/PID/stat``). Per session = window CPU ÷ window ÷ N, as % of one core: measured at a
small N (the machine is shared) and read per session, which is what a server of 1000
sessions pays each one. With a clock tick of 10 ms a window of 15 s resolves 0.0013 % of a
core over 50 sessions: below that the row says so instead of showing 0. The BMC farms' CPU
in the same window is shown beside it (they run on the same cores).
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import peers, servers

#: Defaults of ``scripts/bench``: N and the idle window (``--quick``: 10 and 5 s).
IDLE_N = 50
IDLE_WINDOW = 15.0

TICK = 1.0 / os.sysconf("SC_CLK_TCK")


def _proc_cpu_s(pid: int) -> float:
    """utime + stime of ``pid`` so far (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) * TICK


def _row(
    client: str, n: int, held: int, cpu_s: float, window: float, farm: float
) -> dict[str, Any]:
    per = 100 * cpu_s / window / held if held else None
    floor = 100 * TICK / window / held if held else None
    return {
        "client": client,
        "n": n,
        "held": held,
        "window_s": window,
        "cpu_s": cpu_s,
        "pct_per_session": per,
        "resolution_pct": floor,
        "farm_cpu_pct": 100 * farm / window,
    }


def idle_solcap(
    ctx: Any, n: int, window: float, json_proc: Callable[..., Any], engine: bool = False
) -> dict[str, Any]:
    """One ``bench.solclient`` holding ``n`` sessions (``engine``: on the SOL engine, else on
    pyghmi's data path); ``json_proc`` is bench.run's JsonProc (passed in: ``bench.run`` runs
    as ``__main__`` and imports this module)."""
    name = "solcap engine" if engine else "solcap"
    with servers.farms_for(n, ctx.env, ctx.work) as farms:
        argv = [sys.executable, "-m", "bench.solclient"]
        client = json_proc(argv, ctx.env, ctx.work / "solclient.log")
        try:
            urls = [f"ipmi://admin@{a}:623" for a in servers.addresses(n)]
            f0 = servers.farm_cpu(farms)
            client.send(
                {
                    "urls": urls,
                    "password_file": str(ctx.pwfile),
                    "root": None,
                    "size": 1,
                    "timeout": 0.1,
                    "idle": window,
                    "max_errors": 5,
                    "engine": engine,
                }
            )
            ready = client.recv(60 + n + window)
            farm = servers.farm_cpu(farms) - f0  # login included: an upper bound
            client.send("go")
            client.recv(30)
            client.reap(30)
        except (TimeoutError, EOFError) as exc:
            client.reap(5)
            return {"client": name, "n": n, "error": str(exc)}
    return _row(name, n, int(ready["opened"]), float(ready["idle_cpu_s"]), window, farm)


def idle_peer(ctx: Any, name: str, n: int, window: float) -> dict[str, Any]:
    """``n`` processes of peer ``name`` (ipmitool or ipmiconsole), one per BMC."""
    runs: list[peers.PeerRun] = []
    with servers.farms_for(n, ctx.env, ctx.work) as farms:
        try:
            for address in servers.addresses(n):
                spec = (
                    peers.ipmitool_spec(address, 623, ctx.password)
                    if name == "ipmitool"
                    else peers.ipmiconsole_spec(address, ctx.password, ctx.work)
                )
                if spec is None:
                    return {"client": name, "n": n, "error": "not installed"}
                runs.append(peers.start_peer(spec, ctx.work))
                # One login at a time: 50 at once through one farm process time out.
                want = len(runs)
                if not servers.wait_until(lambda w=want: servers.active(farms) >= w, 20):
                    got = servers.active(farms)
                    return {"client": name, "n": n, "error": f"{got}/{want} payloads active"}
            time.sleep(1.0)  # login and activation are not idle
            c0 = sum(_proc_cpu_s(r.proc.pid) for r in runs)
            f0 = servers.farm_cpu(farms)
            time.sleep(window)
            cpu = sum(_proc_cpu_s(r.proc.pid) for r in runs) - c0
            farm = servers.farm_cpu(farms) - f0
            held = servers.active(farms)
        finally:
            for run in runs:
                with contextlib.suppress(Exception):
                    peers.finish(run, grace=0.5)
    return _row(name, n, held, cpu, window, farm)
