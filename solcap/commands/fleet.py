"""Fleet options shared by ``solcap harvest`` and ``solcap run``, and the fleet harvest command.

Not a sub-command module (it has no ``register``): :func:`add_fleet_options` adds
``--inventory --limit --label --shard --parallel --workers --host-timeout --summary --retry-failed
--progress`` to an existing parser, :func:`select` turns them into hosts (inventory validated
before any host is contacted), and :func:`run_fleet` runs a job over them, prints progress and
the summary table, and writes the JSON summary (into ``<root>/_fleet/…`` and ``--summary``).
"""

from __future__ import annotations

import argparse
import contextlib
import signal
from collections.abc import Iterator, Mapping
from types import FrameType
from typing import Any, TextIO

from solcap.commands.argtypes import count, output_file, seconds
from solcap.commands.progress import make_progress
from solcap.commands.target import Terminated
from solcap.errors import UsageError
from solcap.inventory import Host, load_inventory, parse_shard, select_hosts
from solcap.orchestration.fleet import (
    FleetInterrupted,
    FleetSummary,
    Job,
    harvest_job,
    retry_selection,
    run,
)
from solcap.xen.console import parse_keys

DEFAULT_PARALLEL = 8
#: argparse destinations that only mean something with --inventory.
FLEET_ONLY = ("limit", "shard", "parallel", "workers", "host_timeout", "summary", "retry_failed")


def add_fleet_options(
    parser: argparse.ArgumentParser, *, inventory: bool = True, selection: bool = True
) -> None:
    """Add the fleet options; ``inventory``/``selection`` False when the parser has its own
    ``--inventory`` or ``--limit/--label/--shard`` already (``solcap run``)."""
    group = parser.add_argument_group("fleet (with --inventory)")
    if inventory:
        group.add_argument("--inventory", metavar="FILE", help="solcap or Ansible inventory")
    group.add_argument(
        "--bmc-var",
        action="append",
        default=[],
        metavar="NAME",
        help="Ansible variable holding the BMC address, tried after solcap_bmc and before "
        "the known names (ipmi_address, bmc_address, …; docs/inventory.md); repeat",
    )
    group.add_argument(
        "--inventory-reader",
        choices=("auto", "ansible-inventory", "static"),
        default="auto",
        help="how Ansible inventories are read: ansible-inventory --list where installed "
        "(auto, the default) or solcap's static reader",
    )
    if selection:
        group.add_argument(
            "--limit", action="append", default=[], metavar="GLOB", help="host name glob (repeat)"
        )
        group.add_argument(
            "--shard", metavar="i/N", help="only share i of N (stable split by host name)"
        )
    group.add_argument(
        "--parallel",
        type=count(maximum=1024),
        metavar="N",
        help=f"hosts at once (default {DEFAULT_PARALLEL})",
    )
    group.add_argument(
        "--workers",
        type=count(maximum=256),
        metavar="N",
        help="processes to share the hosts (default one per core; 1: this process only)",
    )
    group.add_argument(
        "--host-timeout",
        type=seconds(),
        metavar="S",
        help="give up on a host after S seconds (its console is closed; outcome timeout)",
    )
    group.add_argument(
        "--summary", metavar="FILE", type=output_file(), help="also write the JSON summary here"
    )
    group.add_argument(
        "--retry-failed",
        metavar="SUMMARY",
        help="only the hosts that were not ok in this earlier JSON summary",
    )
    group.add_argument(
        "--progress",
        choices=("auto", "rich", "plain", "none"),
        default="auto",
        help="live view on a terminal, one line per host otherwise (default auto)",
    )


def refuse_fleet_options(args: argparse.Namespace, command: str) -> None:
    """Fleet options without --inventory are a mistake worth saying so."""
    for dest in FLEET_ONLY:
        value = getattr(args, dest, None)
        if value:
            flag = "--" + dest.replace("_", "-")
            raise UsageError(f"{command}: {flag} applies to --inventory runs")


def select(args: argparse.Namespace, labels: list[str]) -> list[Host]:
    """The hosts this run takes: inventory → --limit/--label → --shard → --retry-failed."""
    inventory = load_inventory(
        args.inventory,
        bmc_vars=getattr(args, "bmc_var", None) or (),
        reader=getattr(args, "inventory_reader", "auto"),
    )
    shard = parse_shard(args.shard) if args.shard else None
    hosts = select_hosts(inventory.hosts, names=args.limit, labels=labels, shard=shard)
    if args.retry_failed:
        hosts = retry_selection(hosts, args.retry_failed)
        if not hosts:
            return hosts
    if not hosts:
        raise UsageError(f"{args.inventory}: no host matches the selection")
    return hosts


def run_fleet(
    args: argparse.Namespace,
    hosts: list[Host],
    job: Job,
    out: TextIO,
    *,
    label: str,
    meta: Mapping[str, Any],
) -> int:
    """Run ``job`` over ``hosts`` as the options say; write summaries; return the exit status.

    On Ctrl-C or SIGTERM the summary (running hosts ``interrupted``, the rest ``not started``)
    is still written before the interrupt goes on to the CLI (exit 130, 143 after SIGTERM).
    """
    info = {
        **meta,
        "inventory": str(args.inventory),
        "shard": args.shard,
        "retry_of": args.retry_failed,
    }
    with _sigterm_as_interrupt() as terminated:
        return _run_fleet(args, hosts, job, out, label=label, info=info, terminated=terminated)


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[list[bool]]:
    """SIGTERM unwinds the fleet as Ctrl-C does; the list yielded says whether it came.

    The scheduler (in-process or :mod:`solcap.orchestration.workers`) cancels its running hosts and
    reports them on ``KeyboardInterrupt`` only; the CLI's SIGTERM handler raised
    :class:`~solcap.commands.target.Terminated`, which went past it: no summary was written
    and forked workers died with the caller, their recordings unfinished. A second SIGTERM
    during the cancel is ignored (it would cut short the reports being collected).
    """
    came: list[bool] = []

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        if not came:
            came.append(True)
            raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, on_sigterm)
    except ValueError:  # not the main thread: signals are not ours to handle
        yield came
        return
    try:
        yield came
    finally:
        signal.signal(signal.SIGTERM, previous)


def _run_fleet(
    args: argparse.Namespace,
    hosts: list[Host],
    job: Job,
    out: TextIO,
    *,
    label: str,
    info: Mapping[str, Any],
    terminated: list[bool],
) -> int:
    try:
        summary = run(
            hosts,
            job,
            parallel=args.parallel or DEFAULT_PARALLEL,
            workers=args.workers,  # None: one per core
            host_timeout=args.host_timeout,
            progress=make_progress(args.progress, out),
            root=args.root,
            meta=info,
        )
    except FleetInterrupted as exc:
        _write(exc.summary, args, out, label)
        if terminated:
            raise Terminated() from None
        raise
    _write(summary, args, out, label)
    return int(summary.exit_status)


def _write(summary: FleetSummary, args: argparse.Namespace, out: TextIO, label: str) -> None:
    path = summary.write_run_dir(args.root, label)
    print(f"summary: {path}", file=out)
    if args.summary:
        print(f"summary: {summary.write(args.summary)}", file=out)


def harvest_inventory(args: argparse.Namespace, out: TextIO) -> int:
    """``solcap harvest --inventory I``: the debug-key harvest on every selected host."""
    if args.target is not None:
        raise UsageError("harvest: give either TARGET or --inventory, not both")
    if args.host is not None:
        raise UsageError("harvest: --host names a single TARGET's recording; not with --inventory")
    keys = parse_keys(args.keys)
    job = harvest_job(
        keys,
        quiet=args.quiet,
        allow_dangerous=args.allow_dangerous,
        start_timeout=args.start_timeout,
    )
    hosts = select(args, list(args.label or []))
    if not hosts:
        print(f"{args.retry_failed}: every host was ok; nothing to retry", file=out)
        return 0
    return run_fleet(args, hosts, job, out, label="harvest", meta={"kind": "harvest", "keys": keys})
