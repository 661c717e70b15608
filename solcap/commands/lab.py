"""``solcap lab up|down|status``: virtual Xen hosts behind virtual BMCs, for trying solcap."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, TextIO

from solcap.commands.argtypes import count, directory
from solcap.errors import ExitStatus
from solcap.testing.lab import Lab

DEFAULT_DIR = Path("lab")


def register(sub: Any) -> None:
    lab = sub.add_parser("lab", help="start/stop virtual Xen hosts behind virtual BMCs")
    actions = lab.add_subparsers(dest="lab_action", required=True, metavar="ACTION")
    up = actions.add_parser("up", help="start N hosts and write an inventory")
    up.add_argument("--hosts", type=count(maximum=256), required=True)
    up.add_argument(
        "--domains", type=count(minimum=0, maximum=64), default=2, help="guest domains per host"
    )
    up.add_argument("--real-rate", action="store_true", help="38400 baud instead of fast")
    up.add_argument("--dir", type=directory(), default=DEFAULT_DIR)
    up.set_defaults(func=cmd_up)
    down = actions.add_parser("down", help="stop exactly the hosts this lab started")
    down.add_argument("--dir", type=directory(), default=DEFAULT_DIR)
    down.set_defaults(func=cmd_down)
    status = actions.add_parser("status", help="list the lab's hosts")
    status.add_argument("--dir", type=directory(), default=DEFAULT_DIR)
    status.set_defaults(func=cmd_status)


def cmd_up(args: argparse.Namespace, out: TextIO) -> int:
    lab = Lab(args.dir)
    hosts = lab.up(args.hosts, domus=args.domains, fast=not args.real_rate)
    for host in hosts:
        print(f"{host.name}  {host.url}  pid {host.pid}", file=out)
    print(f"inventory: {lab.inventory}", file=out)
    print(
        f"password:  {lab.password_file} (0600; export IPMI_PASSWORD=$(cat …) or use file:)",
        file=out,
    )
    return ExitStatus.OK


def cmd_down(args: argparse.Namespace, out: TextIO) -> int:
    stopped = Lab(args.dir).down()
    print(f"stopped {len(stopped)} lab host(s)", file=out)
    return ExitStatus.OK


def cmd_status(args: argparse.Namespace, out: TextIO) -> int:
    lab = Lab(args.dir)
    for host in lab.hosts():
        state = lab.host_state(host.name)
        print(
            f"{host.name}  {host.url}  {state.get('state', '?')}  "
            f"{len(state.get('dumps', []))} dumps",
            file=out,
        )
    return ExitStatus.OK
