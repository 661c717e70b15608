"""``solcap harvest``: press Xen debug keys and keep each dump as its own segment, on one
console or (``--inventory``) on a fleet."""

from __future__ import annotations

import argparse
from typing import Any, TextIO

from solcap.capture.recording import check_root
from solcap.commands.argtypes import seconds
from solcap.commands.target import DEFAULT_KEYS, add_target_options, open_target, print_recording
from solcap.errors import ExitStatus, UsageError
from solcap.transports.serialport import LineSettings
from solcap.xen.console import parse_keys, refuse_dangerous


def register(sub: Any) -> None:
    harvest = sub.add_parser(
        "harvest", help="press Xen debug keys and record each dump (one console or a fleet)"
    )
    add_target_options(harvest, fleet=True)
    harvest.add_argument("--keys", default=DEFAULT_KEYS, help=f"default {DEFAULT_KEYS}")
    harvest.add_argument(
        "--quiet",
        type=seconds(),
        metavar="SECONDS",
        help="silence that ends a dump (default: from the line rate, ≥ 1 s)",
    )
    harvest.add_argument(
        "--start-timeout",
        type=seconds(),
        default=10.0,
        metavar="SECONDS",
        help="how long a key may take to show its first line (default 10); above the BMC's "
        "loss detection (about 12 s over SOL) a key pressed as the BMC restarts is waited "
        "for through the reconnection",
    )
    harvest.add_argument(
        "--allow-dangerous",
        action="store_true",
        help="allow state-changing keys (R reboot, C crash, N NMI, …)",
    )
    from solcap.commands.fleet import add_fleet_options

    add_fleet_options(harvest)
    harvest.set_defaults(func=cmd_harvest)


def cmd_harvest(args: argparse.Namespace, out: TextIO) -> int:
    """Switch input to Xen, press debug keys, keep each dump as its own segment.

    With ``--inventory`` the same harvest runs on many hosts (:mod:`solcap.commands.fleet`);
    one TARGET runs the fleet job's own body (:func:`solcap.orchestration.fleet.harvest_console`) on
    it, so its recording ends with the same outcome, and a failure is raised again for its exit
    status.
    """
    if args.inventory is not None:
        from solcap.commands.fleet import harvest_inventory

        return harvest_inventory(args, out)
    if args.target is None:
        raise UsageError("harvest: give TARGET (a console) or --inventory FILE")
    from solcap.commands.fleet import refuse_fleet_options

    refuse_fleet_options(args, "harvest")
    keys = parse_keys(args.keys)
    refuse_dangerous(keys, allowed=args.allow_dangerous)
    line = LineSettings.parse(args.line)
    check_root(args.root)
    args.label_name = args.label[-1] if args.label else "harvest"
    from solcap.orchestration.fleet import harvest_console

    console = open_target(args, line)
    done = harvest_console(
        console,
        keys,
        baud=line.baud,
        quiet=args.quiet,
        allow_dangerous=args.allow_dangerous,
        start_timeout=args.start_timeout,
        closed=lambda summary: print_recording(summary, out),
    )
    if done.exception is not None:
        raise done.exception
    return ExitStatus.OK if done.outcome == "ok" else ExitStatus.TARGET
