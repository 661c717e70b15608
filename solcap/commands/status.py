"""``solcap status --inventory I [--json]``: what the console servers hold, for people and
for monitoring.

One line per inventory host: state (``up``, ``connecting``, ``down``, ``busy``, or
``unserved`` when no running server holds it), since when, bytes received, age of the last
output, attached clients; with ``--shard i/N`` servers, each host's owning shard (and, for a
host whose owner does not run here, which shard that is). Exit status, for Nagios-style
checks: 0 every console up, 4 some not up, 3 none up (or no server at all).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any, TextIO

from solcap.commands.argtypes import directory
from solcap.errors import ExitStatus, SolcapError


def register(sub: Any) -> None:
    parser = sub.add_parser("status", help="state of the consoles held by solcap serve")
    parser.add_argument("--inventory", required=True, metavar="FILE")
    parser.add_argument("--control-dir", type=directory(), help="control socket directory")
    parser.add_argument("--json", action="store_true", help="one JSON document")
    parser.set_defaults(func=cmd_status)


def _age(now: float, then: float | None) -> str:
    if then is None:
        return "-"
    seconds = max(0, int(now - then))
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    return f"{seconds // 3600}h"


def collect(inventory: str, control_dir: Path | None) -> list[dict[str, Any]]:
    """Every inventory host with its state from whichever server holds it, and its
    ``owner``: the shard (``i/N``) the shard map gives it, when servers run with ``--shard``."""
    from solcap.inventory import load_inventory
    from solcap.serve.client import request_status
    from solcap.serve.shards import shard_map

    names = load_inventory(inventory).names()
    shards = shard_map(inventory, control_dir)
    seen: dict[str, dict[str, Any]] = {}
    for found in shards.servers:
        try:
            reply = request_status(found.socket)
        except SolcapError:
            continue
        for host in reply["hosts"]:
            host["server"] = reply["server"]["socket"]
            host["shard"] = reply["server"]["shard"]
            seen[host["host"]] = host
    rows = []
    for name in names:
        row = seen.get(name) or {"host": name, "state": "unserved", "clients": []}
        row["owner"] = shards.owner(name)
        if row["state"] == "unserved" and row["owner"] is not None:
            row["detail"] = f"its shard {row['owner']} has no server running here"
        rows.append(row)
    return rows


def cmd_status(args: argparse.Namespace, out: TextIO) -> int:
    rows = collect(args.inventory, args.control_dir)
    if args.json:
        json.dump({"hosts": rows}, out, indent=2)
        out.write("\n")
    else:
        now = time.time()
        for row in rows:
            clients = ",".join(f"{c['who']}[{c['role']}]" for c in row.get("clients", []))
            detail = f"  {row['detail']}" if row.get("detail") else ""
            print(
                f"{row['host']:<20} {row['state']:<10} since {_age(now, row.get('since')):>4}  "
                f"{row.get('bytes', 0):>10} B  last output {_age(now, row.get('last_output')):>4}"
                f"  clients {len(row.get('clients', []))}{' ' + clients if clients else ''}"
                f"{detail}",
                file=out,
            )
    up = sum(1 for row in rows if row["state"] == "up")
    if up == len(rows):
        return int(ExitStatus.OK)
    return int(ExitStatus.PARTIAL if up else ExitStatus.TARGET)
