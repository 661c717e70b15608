"""``solcap power HOST status|on|off|cycle|reset``: chassis power through the BMC.

Prints one line, ``HOST: power on|off``, with the state read after the action. The password
comes from ``--password-file`` (0600), ``IPMI_PASSWORD`` (as ``ipmitool -E``) or a prompt;
the Kg key from ``--kg-file`` or ``IPMI_KGKEY`` (:mod:`solcap.commands.ipmiopts`).
"""

from __future__ import annotations

import argparse
from typing import Any, TextIO

from solcap.commands import ipmiopts
from solcap.commands.argtypes import seconds
from solcap.errors import ExitStatus
from solcap.transports.bmc import POWER_ACTIONS, power


def register(sub: Any) -> None:
    parser = sub.add_parser("power", help="chassis power status/on/off/cycle/reset via IPMI")
    parser.add_argument("target", metavar="HOST", help="ipmi://user@bmc[:port][?cipher=17|3]")
    parser.add_argument("action", choices=POWER_ACTIONS)
    parser.add_argument(
        "--wait",
        type=seconds(zero=True, maximum=3600),
        default=30.0,
        metavar="SECONDS",
        help="how long on/off may take to show (default 30)",
    )
    ipmiopts.add_ipmi_options(parser, title="IPMI credentials (never on the command line)")
    parser.set_defaults(func=cmd_power)


def cmd_power(args: argparse.Namespace, out: TextIO) -> int:
    """Run one power action and print the state afterwards."""
    state = power(
        args.target,
        args.action,
        password_source=ipmiopts.password(args),
        kg=ipmiopts.kg(args),
        wait=args.wait,
    )
    print(f"{args.target}: power {state}", file=out)
    return ExitStatus.OK
