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
