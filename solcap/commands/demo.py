"""``solcap demo``: harvest debug keys from the built-in virtual Xen host; no hardware."""

from __future__ import annotations

import argparse
from typing import Any, TextIO

from solcap.capture.recording import check_root
from solcap.commands.argtypes import count, directory
from solcap.commands.target import DEFAULT_KEYS
from solcap.xen.console import parse_keys


def register(sub: Any) -> None:
    demo = sub.add_parser("demo", help="harvest debug keys from the built-in virtual Xen host")
    demo.add_argument("--keys", default=DEFAULT_KEYS, help=f"default {DEFAULT_KEYS}")
    demo.add_argument(
        "--domus",
        type=count(minimum=0, maximum=64),
        default=8,
        help="guest domains on the virtual host",
    )
    demo.add_argument(
        "--real-rate",
        action="store_true",
        help="pace the virtual line at 38400 baud instead of the fast test rate",
    )
    demo.add_argument("--root", type=directory(), help="recordings root (default: ./recordings)")
    demo.set_defaults(func=cmd_demo)


def cmd_demo(args: argparse.Namespace, out: TextIO) -> int:
    """Boot the built-in virtual Xen host and harvest its debug keys; no hardware needed."""
    from solcap.orchestration.demo import run_demo  # the simulator is only loaded for the demo

    check_root(args.root)
    return run_demo(
        keys=parse_keys(args.keys),
        domus=args.domus,
        real_rate=args.real_rate,
        root=args.root,
        out=out,
    )
