"""Render the benchmark results (the JSON written beside it) as docs/benchmarks.md."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

RATIO_TARGET = 1.05
CPU_TARGET_PCT = 1.0
IDLE_RSS_TARGET_KIB = 1024
SESSIONS_TARGET = 1000


#: Seconds one many-hosts stream (64 KiB) takes at 115200 baud.
MANY_IDEAL_S = 64 * 1024 / 11520


def _cpu_line_rate(row: dict[str, Any]) -> float | None:
    """% of a core one stream costs at line rate: client CPU s per stream / ideal seconds.

    Dividing by the ideal (not the measured) duration keeps a client that falls behind from
    looking cheaper because it spread the same work over more seconds.
    """
    cpu, opened = row.get("client_cpu_s"), row.get("opened")
    if cpu is None or not opened:
        return None
    return float(100 * cpu / opened / MANY_IDEAL_S)


def _f(value: Any, fmt: str = "{:.3f}") -> str:
    return "—" if value is None else fmt.format(value)


def _mark(ok: bool | None) -> str:
    return "n/a" if ok is None else ("**met**" if ok else "**missed**")


def _loss(row: dict[str, Any]) -> str:
    if "error" in row:
        return "—"
    bad = row.get("lost", 0) + row.get("dup", 0)
    exact = row.get("exact", row.get("inexact", 0) == 0)
    text = f"{row.get('lost', 0)} / {row.get('dup', 0)}"
    text += "" if exact and not bad else " (not byte-exact)"
    if row.get("unfinished"):
        text += f"; {row['unfinished']} not yet received when time ran out (what came is exact)"
    return text


def single_table(rows: list[dict[str, Any]]) -> list[str]:
    out = [
        "| stream | baud | client | time ratio (target ≤ 1.05) | lost / dup bytes "
        "(target 0) | CPU s (× solcap) | peak RSS MiB | load1 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    by_key: dict[tuple[int, int], dict[str, dict[str, Any]]] = {}
    for row in rows:
        by_key.setdefault((row["size"], row["baud"]), {})[row["client"]] = row
    for (size, baud), clients in by_key.items():
        base = clients.get("solcap", {}).get("cpu_s")
        for name in ("solcap", "ipmitool", "ipmiconsole"):
            if name not in clients:
                continue
            row = clients[name]
            if "error" in row:
                out.append(
                    f"| {size // 1024} KiB | {baud} | {name} | error: {row['error']} | | | | |"
                )
                continue
            ratio = row.get("ratio")
            met = ratio is not None and ratio <= RATIO_TARGET
            rel = f" ({row['cpu_s'] / base:.2f}×)" if base and name != "solcap" else ""
            out.append(
                f"| {size // 1024} KiB | {baud} | {name} | {_f(ratio)} "
                f"{_mark(met) if name == 'solcap' else ''} | {_loss(row)} | "
                f"{row['cpu_s']:.2f}{rel} | {row['maxrss_kib'] / 1024:.1f} | "
                f"{row.get('load1', 0):.1f} |"
            )
    return out


def many_table(rows: list[dict[str, Any]]) -> list[str]:
    out = [
        "| N | client | sessions open | complete | time ratio p50 / max (≤ 1.05) | "
        "lost / dup bytes (0) | CPU % of a core per stream at line rate (≤ 1 %) | "
        "RSS/session idle KiB (≤ 1024) | RSS/session active KiB | BMC-farm CPU s | "
        "load1 start→end |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        n, name = row["n"], row["client"]
        if "error" in row and "opened" not in row:
            out.append(f"| {n} | {name} | error: {row['error']} | | | | | | | | |")
            continue
        ratio_max = row.get("ratio_max")
        ratio_ok = None
        if n == 300 and name == "solcap":
            ratio_ok = (
                ratio_max is not None and ratio_max <= RATIO_TARGET and row.get("complete") == n
            )
        cpu = _cpu_line_rate(row)
        rss = row.get("rss_idle_per_session_kib")
        solcap = name == "solcap"
        err = f" (error: {row['error']})" if "error" in row else ""
        ratio_mark = _mark(ratio_ok) if ratio_ok is not None else ""
        # A run whose streams never completed says nothing about the cost of a stream.
        cpu_ok = cpu is not None and cpu <= CPU_TARGET_PCT if row.get("complete") else None
        cpu_mark = _mark(cpu_ok) if solcap else ""
        rss_mark = _mark(rss is not None and rss <= IDLE_RSS_TARGET_KIB) if solcap else ""
        if row.get("rerun"):
            name += " (rerun)"
        out.append(
            f"| {n} | {name} | {row.get('opened', '—')}{err} | {row.get('complete', '—')} | "
            f"{_f(row.get('ratio_p50'))} / {_f(ratio_max)} {ratio_mark} | "
            f"{_loss(row)} | {_f(cpu, '{:.2f}')} {cpu_mark} | "
            f"{_f(rss, '{:.0f}')} {rss_mark} | "
            f"{_f(row.get('rss_active_per_session_kib'), '{:.0f}')} | "
            f"{_f(row.get('bmc_cpu_s'), '{:.1f}')} | "
            f"{row.get('load1', 0):.1f}→{row.get('load1_end', 0):.1f} |"
        )
    return out


def latency_table(rows: list[dict[str, Any]]) -> list[str]:
    out = ["| client | keystrokes | p50 ms | p99 ms | max ms |", "|---|---|---|---|---|"]
    for row in rows:
        if "error" in row:
            out.append(f"| {row['client']} | error: {row['error']} | | | |")
            continue
        out.append(
            f"| {row['client']} | {row['n']} | {row['p50_ms']:.1f} | {row['p99_ms']:.1f} | "
            f"{row['max_ms']:.1f} |"
        )
    return out


def idle_table(rows: list[dict[str, Any]]) -> list[str]:
    out = [
        "| client | N held | window s | client CPU s in the window | % of a core per held "
        "session (× solcap) | extrapolated to 1000 sessions, % of a core | BMC farms % | load1 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    base = next((r.get("pct_per_session") for r in rows if r.get("client") == "solcap"), None)
    for row in rows:
        if "error" in row:
            out.append(f"| {row['client']} | {row.get('n', '')} | error: {row['error']} "
                       "| | | | | |")  # fmt: skip
            continue
        per = row.get("pct_per_session")
        if not row.get("cpu_s"):
            shown = f"< {row['resolution_pct']:.4f} (no clock tick in the window)"
            scaled = f"< {1000 * row['resolution_pct']:.2f}"
        else:
            shown = f"{per:.4f}{_ratio(per, base)}"
            scaled = f"{1000 * per:.2f}"
        out.append(
            f"| {row['client']} | {row['held']}/{row['n']} | {row['window_s']:.0f} | "
            f"{row['cpu_s']:.2f} | {shown} | {scaled} | {row['farm_cpu_pct']:.1f} | "
            f"{row.get('load1', 0):.1f}→{row.get('load1_end', 0):.1f} |"
        )
    return out


def _ratio(value: Any, base: Any) -> str:
    if not isinstance(value, int | float) or not isinstance(base, int | float) or base <= 0:
        return ""
    return f" ({value / base:.2f}×)"


SERVER_NOTE = {
    "solcap": "one process",
    "conserver": "daemon + children + one ipmiconsole per console (`type exec`)",
    "conman": "one process (libipmiconsole threads)",
}


def _idle_cpu(row: dict[str, Any], ref: dict[str, Any]) -> str:
    """Idle CPU per console; 0 ticks in the window is shown as below one tick, not as 0."""
    value, res = row.get("idle_cpu_pct_per_console"), row.get("idle_cpu_resolution_pct")
    if value == 0 and res:
        return f"< {res:.4f} (no clock tick in the window)"
    base = ref.get("idle_cpu_pct_per_console")
    return f"{_f(value, '{:.4f}')}" + (_ratio(value, base) if base else "")


def servers_table(rows: list[dict[str, Any]]) -> list[str]:
    """Console servers on the same BMCs; × is the ratio to solcap's row of the same N and mode."""
    out = [
        "| N | mode | server | SOL active / N (s to all) | processes | idle CPU % of a core "
        "per console (× solcap) | RSS KiB per console (× solcap) | PSS KiB per console "
        "(× solcap) | streams exact / missing bytes | CPU % of a core per console streaming "
        "(× solcap) | BMC restart: logging again / restarted, p50 / max s | BMC farms CPU % "
        "(idle / stream) | load1 |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    base = {(r["n"], r["mode"]): r for r in rows if r.get("server") == "solcap"}
    for row in rows:
        n, mode, name = row["n"], row["mode"], row["server"]
        ref = base.get((n, mode), {})
        if "error" in row and "active" not in row:
            out.append(f"| {n} | {mode} | {name} | error: {row['error']} |" + " |" * 9)
            continue
        up = row.get("up_s")
        active = (
            f"{row.get('active')}/{n} ({_f(up, '{:.1f}')})"
            if up
            else f"{row.get('active')}/{n} (not all)"
        )
        stream = "—"
        if row.get("stream_size"):
            stream = f"{row.get('exact')}/{n} / {row.get('missing_bytes')}"
            if not row.get("stream_complete"):
                stream += " (some logs short at the deadline)"
        restart = "—"
        if row.get("restarted"):
            restart = (
                f"{row['back']}/{row['restarted']}, {_f(row.get('back_p50_s'), '{:.1f}')} / "
                f"{_f(row.get('back_max_s'), '{:.1f}')}"
                + (f" (cap {row['restart_cap_s']:.0f} s)" if row["back"] < row["restarted"] else "")
            )
        farms = f"{_f(row.get('farm_idle_cpu_pct'), '{:.0f}')}"
        if row.get("farm_stream_cpu_pct") is not None:
            farms += f" / {row['farm_stream_cpu_pct']:.0f}"
        err = f" (error: {row['error']})" if "error" in row else ""
        cpu_key = "stream_cpu_pct_per_console"
        out.append(
            f"| {n} | {mode} | {name}{' (rerun)' if row.get('rerun') else ''}{err} | {active} | "
            f"{row.get('procs', '—')} | "
            f"{_idle_cpu(row, ref)} | "
            f"{_f(row.get('rss_per_console_kib'), '{:.0f}')}"
            f"{_ratio(row.get('rss_per_console_kib'), ref.get('rss_per_console_kib'))} | "
            f"{_f(row.get('pss_per_console_kib'), '{:.0f}')}"
            f"{_ratio(row.get('pss_per_console_kib'), ref.get('pss_per_console_kib'))} | "
            f"{stream} | "
            f"{_f(row.get(cpu_key), '{:.2f}') if row.get(cpu_key) is not None else '—'}"
            f"{_ratio(row.get(cpu_key), ref.get(cpu_key))} | "
            f"{restart} | {farms} | {row.get('load1', 0):.1f}→{row.get('load1_end', 0):.1f} |"
        )
    return out


def servers_targets(rows: list[dict[str, Any]]) -> list[str]:
    """The issue's targets for solcap serve, from the servers rows."""
    out: list[str] = []
    solcap = [r for r in rows if r.get("server") == "solcap" and "active" in r]
    big = [r for r in solcap if r["mode"] == "idle" and r["n"] >= 1000]
    for r in big:
        total_cpu = r.get("idle_cpu_pct")
        mib = r.get("rss_kib", 0) / 1024
        ok = r.get("active") == r["n"] and total_cpu is not None and total_cpu <= 5 and mib <= 200
        out.append(
            f"| ≥ 1,000 idle consoles in one server, ≤ 5 % of a core, ≤ 200 MiB | "
            f"{r.get('active')}/{r['n']} active, {_f(total_cpu, '{:.1f}')} % of a core, "
            f"{mib:.0f} MiB RSS | {_mark(ok)} |"
        )
    for r in [r for r in solcap if r["mode"] == "stream"]:
        ok = r.get("exact") == r["n"] and r.get("missing_bytes") == 0
        out.append(
            f"| {r['n']} simultaneous streams, 0 bytes lost | {r.get('exact')}/{r['n']} exact, "
            f"{r.get('missing_bytes')} bytes missing | {_mark(ok)} |"
        )
    for key, what in (
        ("idle_cpu_pct_per_console", "idle CPU per console"),
        ("pss_per_console_kib", "PSS per console"),
        ("stream_cpu_pct_per_console", "streaming CPU per console"),
    ):
        worse = []
        compared = 0
        for r in solcap:
            for peer in rows:
                if peer.get("server") == "solcap" or (peer["n"], peer["mode"]) != (
                    r["n"],
                    r["mode"],
                ):
                    continue
                mine, theirs = r.get(key), peer.get(key)
                if not mine or not theirs:
                    continue  # below one clock tick: nothing to compare
                if isinstance(mine, int | float) and isinstance(theirs, int | float):
                    compared += 1
                    if mine > theirs:
                        worse.append(f"{peer['server']} N = {r['n']} ({mine / theirs:.2f}×)")
        if compared:
            text = "worse than " + ", ".join(worse) if worse else f"no worse in {compared} pairs"
            out.append(f"| {what} no worse than conserver's and ConMan's | {text} | "
                       f"{_mark(not worse)} |")  # fmt: skip
    return out


def web_table(rows: list[dict[str, Any]]) -> list[str]:
    out: list[str] = []
    for row in rows:
        if "error" in row:
            out.append(f"- {row['workload']}: error: {row['error']}")
            continue
        if row["workload"] == "viewers":
            out += [
                f"**{row['viewers']} viewers of one console streaming {row['stream_size'] // 1024} "
                f"KiB at 115200** (load1 {row['load1']:.1f}→{row['load1_end']:.1f})",
                "",
                "| | no viewer | with the viewers |",
                "|---|---|---|",
                f"| stream wall s (line rate {row['ideal_s']:.1f} s) | {row['alone_wall_s']:.1f} | "
                f"{row['watched_wall_s']:.1f} |",
                f"| serve CPU s (% of a core) | {row['alone_cpu_s']:.2f} "
                f"({row['cpu_pct_alone']:.1f} %) | {row['watched_cpu_s']:.2f} "
                f"({row['cpu_pct_watched']:.1f} %) |",
                f"| serve RSS MiB | {row['rss_alone_kib'] / 1024:.1f} | "
                f"{row['rss_watched_kib'] / 1024:.1f} |",
                f"| extra per viewer | | {row['extra_cpu_ms_per_viewer']:.1f} ms CPU for the "
                f"stream, {row['rss_per_viewer_kib']:.0f} KiB RSS |",
                f"| byte-exact (SHA-256) | recording {'yes' if row['recording_exact'] else 'NO'} | "
                f"{row['viewers_exact']}/{row['viewers']} viewers |",
                "",
            ]
        else:
            out += [
                f"**Start page over {row['consoles']} consoles** (idle serial consoles on ptys; "
                f"load1 {row['load1']:.1f}→{row['load1_end']:.1f})",
                "",
                "| | value |",
                "|---|---|",
                f"| all consoles up | {'yes' if row['all_up'] else 'NO'} |",
                f"| serve idle CPU, % of a core (all consoles, web on) | "
                f"{row['idle_cpu_pct']:.2f} |",
                f"| serve RSS MiB (peak) | {row['rss_kib'] / 1024:.1f} "
                f"({_f((row.get('hwm_kib') or 0) / 1024, '{:.1f}')}) |",
                f"| `/` p50 / max ms, serve CPU ms per request, KiB, consoles listed | "
                f"{row['page_p50_ms']:.0f} / {row['page_max_ms']:.0f}, {row['page_cpu_ms']:.0f}, "
                f"{row['page_kib']:.0f}, {row['page_consoles_listed']} |",
                f"| `/fragment/consoles` (start.js, every 3 s) p50 / max ms, CPU ms, KiB, listed | "
                f"{row['fragment_p50_ms']:.0f} / {row['fragment_max_ms']:.0f}, "
                f"{row['fragment_cpu_ms']:.0f}, {row['fragment_kib']:.0f}, "
                f"{row['fragment_consoles_listed']} |",
                "",
            ]
    return out


def targets(data: dict[str, Any]) -> list[str]:
    """One line per target: measured value, target, met/missed."""
    out = ["| target | measured | verdict |", "|---|---|---|"]
    solo = [r for r in data["single"] if r.get("client") == "solcap"]
    many = [r for r in data["many"] if r.get("client") == "solcap"]
    if solo:
        worst = max((r.get("ratio") or float("inf")) for r in solo)
        out.append(
            f"| time ratio ≤ 1.05 at N = 1 | worst {_f(worst)} over "
            f"{len(solo)} workloads | {_mark(worst <= RATIO_TARGET)} |"
        )
    at300 = [r for r in many if r["n"] == 300]
    if at300:
        r = at300[0]
        ok = r.get("complete") == 300 and (r.get("ratio_max") or 99) <= RATIO_TARGET
        out.append(
            f"| time ratio ≤ 1.05 at N = 300 | {r.get('complete', 0)}/300 complete, "
            f"max {_f(r.get('ratio_max'))} | {_mark(ok)} |"
        )
    all_rows = [r for r in data["single"] + data["many"] if r.get("client") == "solcap"]
    bad = [
        r
        for r in all_rows
        if "error" in r
        or r.get("lost")
        or r.get("dup")
        or r.get("inexact")
        or r.get("exact") is False
    ]
    out.append(
        f"| zero loss everywhere (solcap) | {len(all_rows) - len(bad)}/{len(all_rows)} "
        f"runs byte-exact | {_mark(not bad)} |"
    )
    cpu_rows = [r for r in many if _cpu_line_rate(r) is not None and r.get("complete")]
    if cpu_rows:
        worst = max(_cpu_line_rate(r) or 0.0 for r in cpu_rows)
        best = min(_cpu_line_rate(r) or 0.0 for r in cpu_rows)
        out.append(
            f"| ≤ 1 % of a core per 115200 stream | {best:.2f} % – {worst:.2f} % "
            f"over N = {', '.join(str(r['n']) for r in cpu_rows)} | "
            f"{_mark(worst <= CPU_TARGET_PCT)} |"
        )
    rss_rows = [r for r in many if r.get("rss_idle_per_session_kib") is not None]
    if rss_rows:
        worst = max(r["rss_idle_per_session_kib"] for r in rss_rows)
        out.append(
            f"| ≤ 1 MiB RSS per idle session | up to {worst:.0f} KiB | "
            f"{_mark(worst <= IDLE_RSS_TARGET_KIB)} |"
        )
    held = max((r.get("opened", 0) for r in many), default=0)
    out.append(
        f"| ≥ 1000 sessions in one process | {held} held | {_mark(held >= SESSIONS_TARGET)} |"
    )
    out += servers_targets(data.get("servers", []))
    return out


def render(data: dict[str, Any]) -> str:
    m = data["machine"]
    ls, le = data["load_start"], data.get("load_end", data["load_start"])
    lines = [
        "# Benchmarks",
        "",
        "Generated by the benchmark command; do not edit by hand (see `bench/README.md`).",
        "",
        f"- command: `{data['command']}` ({data.get('duration_s', 0) / 60:.1f} min)",
        f"- date: {data['date']}; solcap git {m['git']}"
        + (
            f" plus uncommitted changes to {', '.join(m['uncommitted'])}"
            if m.get("uncommitted")
            else ""
        ),
        f"- machine: {m['nproc']} cores, {m['mem_gib']} GiB, Linux {m['kernel']}, "
        f"Python {m['python']}, pyghmi {m['pyghmi']}, {m['ipmitool']}, {m['ipmiconsole']}",
        f"- load average (1/5/15 min) at start {ls[0]:.2f}/{ls[1]:.2f}/{ls[2]:.2f}, at end "
        f"{le[0]:.2f}/{le[1]:.2f}/{le[2]:.2f} — the machine is shared; each row shows the "
        "1-minute load when it started",
        "",
        "## Targets",
        "",
        *targets(data),
        "",
        "## Single host: capture at line rate through the virtual BMC",
        "",
        "Stream: S pseudo-random bytes written into the BMC's pty at baud/10 B/s (8N1). Time "
        "ratio = (last byte seen by the client - first byte written) ÷ (S ÷ (baud/10)). Loss: "
        "SHA-256 of what the client delivered (solcap: the recording's `console.raw`; peers: "
        "stdout minus the banner line) against the stream. CPU and peak RSS: the client "
        "process's rusage (`os.wait4`), login to exit.",
        "",
        *single_table(data["single"]),
        "",
        "## Many hosts in one process",
        "",
        "Each session receives 64 KiB at 115200 baud at the same time; BMCs run 50 per farm "
        "process. CPU % per stream = client CPU seconds ÷ N ÷ 5.69 s (the stream's line-rate "
        "duration): the share of a core one stream costs at line rate (solcap: CPU of the "
        "streaming phase; ipmitool: whole process lifetimes, login included). "
        "RSS per session = (RSS with N sessions open - RSS before opening) ÷ N. solcap records "
        "every session to disk (the production path); ipmitool is one process per session "
        "(its RSS is per process).",
        "",
        *many_table(data["many"]),
        "",
        "## Keystroke latency (send → echo seen)",
        "",
        "One key at a time through the virtual BMC to a far side that echoes it.",
        "",
        *latency_table(data["latency"]),
        "",
    ]
    if data.get("idle"):
        lines += [
            "## Idle CPU per held session",
            "",
            "`bench/idle.py`: each client holds N active SOL payloads of the same virtual BMCs "
            "(127.0.100.1 + i, port 623) with nothing to carry but keepalives; CPU is the "
            "client's own in the window (solcap: the one process holding all N; the peers: "
            "the sum of their N processes, from `/proc`), per session = CPU ÷ window ÷ N, and "
            "× 1000 for what a thousand held sessions would cost at that rate. The clients "
            "run one after another, after the keystroke latency rows, in the same run.",
            "",
            *idle_table(data["idle"]),
            "",
        ]
    if data.get("servers"):
        lines += [
            "## Console servers: solcap serve, conserver and ConMan on the same virtual BMCs",
            "",
            "Each server holds N virtual BMCs (`bench/servers.py`; 50 per farm process, BMC i "
            "at 127.0.100.1 + i, port 623, since ipmiconsole and ConMan's `ipmi:HOST` take no "
            "port), configured as each is deployed: solcap serve with an inventory of "
            "`ipmi://` hosts; conserver (Debian's build has no FreeIPMI) with `type exec` "
            "consoles running `ipmiconsole -I 17`, as xCAT's generated conserver.cf does; "
            'ConMan with `dev="ipmi:ADDR"`. The servers run one after another, so every '
            "ratio (×, to solcap's row of the same N and mode) is from the same run. CPU, RSS "
            "and PSS are of the server's whole process tree from `/proc` (conserver: "
            + SERVER_NOTE["conserver"]
            + "); PSS divides shared pages among the processes sharing them, so it is the "
            "fairer memory figure for conserver's many processes. Idle: a 15 s window after "
            "every payload is active. Streaming: every BMC sends 64 KiB at 115200 at once; "
            "each console's log is searched for its stream (exact, else the 256-byte blocks "
            "of it not found). BMC restart (N = 100): the first farm's 50 BMCs are killed, "
            "started again 2 s later on the same addresses, and a marker is written into "
            "each; seconds from the restart until the marker is in that console's log. The "
            "BMC farms run on the same 2 cores: their CPU is shown, and where it and the "
            "server together need more than the machine has, the row says more about the "
            "machine than about the server.",
            "",
            *servers_table(data["servers"]),
            "",
        ]
    if data.get("web"):
        lines += [
            "## Web view under load (`solcap serve --web`)",
            "",
            "`bench/webload.py`: serve in a process of its own (its CPU and memory from "
            "`/proc`), the load generator (browser-less aiohttp WebSocket clients with a read "
            "token, and HTTP GETs) in the benchmark's process on the same 2 cores.",
            "",
            *web_table(data["web"]),
        ]
    findings = Path(__file__).with_name("findings.md")
    if findings.exists():
        lines += [findings.read_text().rstrip(), ""]
    lines += ["## Run log", "", "```", *data.get("log", []), "```", ""]
    return "\n".join(lines)


def main() -> int:
    """``python -m bench.report [JSON [MD]]``: re-render the Markdown from a run's JSON."""
    top = Path(__file__).resolve().parent.parent
    src = Path(sys.argv[1]) if len(sys.argv) > 1 else top / "docs" / "benchmarks.json"
    dst = Path(sys.argv[2]) if len(sys.argv) > 2 else src.with_suffix(".md")
    dst.write_text(render(json.loads(src.read_text())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
