"""``solcap power HOST status|on|off|cycle|reset``: chassis power through the BMC.

Prints one line, ``HOST: power on|off``, with the state read after the action. The password
comes from ``IPMI_PASSWORD`` (as ``ipmitool -E``), ``--password-file`` (0600) or a prompt.
"""

from __future__ import annotations

import argparse
from typing import Any, TextIO

from solcap.bmc import POWER_ACTIONS, power
from solcap.commands.argtypes import seconds
from solcap.credentials import password_source
from solcap.errors import ExitStatus


def register(sub: Any) -> None:
    parser = sub.add_parser("power", help="chassis power status/on/off/cycle/reset via IPMI")
    parser.add_argument("target", metavar="HOST", help="ipmi://user@bmc[:port][?cipher=17|3]")
    parser.add_argument("action", choices=POWER_ACTIONS)
    parser.add_argument("--password-file", metavar="PATH", help="BMC password from a 0600 file")
    parser.add_argument("--kg-file", metavar="PATH", help="BMC key (Kg) from a 0600 file")
    parser.add_argument(
        "--wait",
        type=seconds(zero=True, maximum=3600),
        default=30.0,
        metavar="SECONDS",
        help="how long on/off may take to show (default 30)",
    )
    parser.set_defaults(func=cmd_power)


def cmd_power(args: argparse.Namespace, out: TextIO) -> int:
    """Run one power action and print the state afterwards."""
    state = power(
        args.target,
        args.action,
        password_source=password_source(args.password_file),
        kg_file=args.kg_file,
        wait=args.wait,
    )
    print(f"{args.target}: power {state}", file=out)
    return ExitStatus.OK
