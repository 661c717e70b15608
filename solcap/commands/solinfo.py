"""``solcap sol-info HOST [--profile P]``: the BMC's SOL settings, checked against a profile."""

from __future__ import annotations

import argparse
from typing import Any, TextIO

from solcap.commands import ipmiopts
from solcap.errors import ExitStatus
from solcap.transports.bmc import line_rate_warning, sol_config


def register(sub: Any) -> None:
    parser = sub.add_parser("sol-info", help="show the BMC's SOL configuration (enabled, rate)")
    parser.add_argument("host", metavar="HOST", help="ipmi://user@bmc[:port][?cipher=17|3]")
    parser.add_argument("--profile", help="warn if the BMC's rate differs from this profile's")
    ipmiopts.add_ipmi_options(parser, title="IPMI credentials (never on the command line)")
    parser.set_defaults(func=cmd_sol_info)


def cmd_sol_info(args: argparse.Namespace, out: TextIO) -> int:
    config = sol_config(args.host, password_source=ipmiopts.password(args), kg=ipmiopts.kg(args))
    enabled = {True: "yes", False: "NO", None: "unknown"}[config.enabled]
    print(f"{args.host}: SOL enabled {enabled}, bit rate {config.bit_rate or 'unknown'}", file=out)
    if args.profile:
        from solcap.boot.profiles import load_profile

        profile = load_profile(args.profile)
        if profile.console is None:
            print(f"profile {profile.name} sets no console speed; nothing to compare", file=out)
            return ExitStatus.OK
        baud = profile.console.baud
        warning = line_rate_warning(config, baud, host=args.host, profile=profile.name)
        if warning is not None:
            print(f"warning: {warning}", file=out)
            return ExitStatus.TARGET
        print(f"matches profile {profile.name} ({baud})", file=out)
    return ExitStatus.OK
