"""``python -m solcap.sim``: run a virtual Xen host on a pseudo-terminal until told to stop.

The first line on stdout is the pty path to open (flushed at once, so a parent process can read
it and connect); the process then runs until SIGINT or SIGTERM and exits 0.
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Sequence

from solcap.sim.host import DEFAULT_XEN_ARGS, FAULTS, SimConfig, VirtualHost
from solcap.sim.xen import HostSpec
from solcap.util.sigwake import SignalWake


def build_parser() -> argparse.ArgumentParser:
    defaults = SimConfig()
    spec = HostSpec()
    parser = argparse.ArgumentParser(
        prog="python -m solcap.sim",
        description="Run a virtual Xen host (firmware, GRUB, Xen, Dom0) on a pseudo-terminal.",
    )
    parser.add_argument("--baud", type=int, default=defaults.baud, help="line rate (8N1)")
    parser.add_argument("--fast", action="store_true", help="pace at a fast test rate instead")
    parser.add_argument("--domus", type=int, default=spec.domus, help="number of DomUs")
    parser.add_argument("--pcpus", type=int, default=spec.pcpus, help="physical CPUs")
    parser.add_argument("--numa-nodes", type=int, default=spec.numa_nodes, help="NUMA nodes")
    parser.add_argument("--hostname", default=spec.hostname, help="Dom0 host name")
    parser.add_argument("--seed", type=int, default=spec.seed, help="content seed")
    parser.add_argument(
        "--xen-args",
        default=None,
        help=f"Xen command line (default: {defaults.xen_args!r}, com1= set to --baud)",
    )
    parser.add_argument("--dom0-args", default=defaults.dom0_args, help="Dom0 command line")
    parser.add_argument(
        "--fault",
        action="append",
        default=[],
        choices=sorted(FAULTS),
        help="misbehave during boot (repeatable)",
    )
    parser.add_argument("--grub-timeout", type=int, default=defaults.grub_timeout)
    parser.add_argument(
        "--timeout-style", default=defaults.timeout_style, choices=("menu", "hidden", "countdown")
    )
    parser.add_argument(
        "--no-power-on", action="store_true", help="start powered off (a BMC powers it on)"
    )
    return parser


def config_from_args(args: argparse.Namespace) -> SimConfig:
    spec = HostSpec(
        hostname=args.hostname,
        pcpus=args.pcpus,
        numa_nodes=args.numa_nodes,
        domus=args.domus,
        seed=args.seed,
    )
    xen_args = DEFAULT_XEN_ARGS if args.xen_args is None else args.xen_args  # com1= follows baud
    return SimConfig(
        spec=spec,
        baud=args.baud,
        fast=args.fast,
        grub_timeout=args.grub_timeout,
        xen_args=xen_args,
        dom0_args=args.dom0_args,
        timeout_style=args.timeout_style,
        faults=frozenset(args.fault),
        auto_power_on=not args.no_power_on,
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # A pipe, not an Event, wakes the main thread on a signal (solcap.util.sigwake says why).
    signals = (signal.SIGINT, signal.SIGTERM)
    with SignalWake(signals) as wake, VirtualHost(config_from_args(args)) as host:
        print(host.pty_path, flush=True)
        while not wake.wait():
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
