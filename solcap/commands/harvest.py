"""``solcap harvest``: press Xen debug keys and keep each dump as its own segment, on one
console or (``--inventory``) on a fleet."""

from __future__ import annotations

import argparse
from typing import Any, TextIO

from solcap.capture import check_root
from solcap.commands.argtypes import seconds
from solcap.commands.target import DEFAULT_KEYS, add_target_options, open_target, print_recording
from solcap.errors import ExitStatus, UsageError
from solcap.harvest import HarvestResult, harvest_keys
from solcap.transports.serialport import LineSettings
from solcap.xen import parse_keys, quiet_period, refuse_dangerous


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

    With ``--inventory`` the same harvest runs on many hosts (:mod:`solcap.commands.fleet`).
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
    quiet = args.quiet if args.quiet is not None else quiet_period(line.baud, floor=1.0)
    check_root(args.root)
    args.label_name = args.label[-1] if args.label else "harvest"
    console = open_target(args, line)
    recording = console.recording
    assert recording is not None
    result = HarvestResult()
    try:
        with console:
            result = harvest_keys(
                console,
                recording,
                keys,
                allow_dangerous=args.allow_dangerous,
                quiet=quiet,
                start_timeout=args.start_timeout,
            )
    finally:
        summary = recording.close()
        print_recording(summary, out)
    return ExitStatus.OK if result.complete else ExitStatus.TARGET
