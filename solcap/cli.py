"""The ``solcap`` command: parse arguments, call the library, map errors to exit codes.

Kept thin on purpose: everything here is also reachable from Python (``solcap.capture``,
``solcap.console``, ``solcap.harvest``). Expected failures print one line and exit non-zero
(see docs/errors.md); only a bug in solcap shows a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import importlib
import os
import re
import signal
import sys
import time
from collections.abc import Callable, Sequence
from types import FrameType
from typing import TextIO

from solcap import __version__
from solcap.capture import Recording, RecordingSummary, check_root
from solcap.commands import ipmiopts
from solcap.commands.argtypes import OneLineParser, count, directory, seconds
from solcap.connect import ConsoleSpec, RecordedConsole, open_console
from solcap.console import Console
from solcap.errors import ConsoleClosed, ExitStatus, ExpectTimeout, SolcapError, UsageError
from solcap.harvest import HarvestResult, harvest_keys
from solcap.transports.registry import check_debug_target, debug_transports_allowed
from solcap.transports.serialport import LineSettings
from solcap.xen import parse_keys, quiet_period, refuse_dangerous

#: Modules under solcap.commands that add their own sub-commands (see that package's docstring).
COMMAND_MODULES: tuple[str, ...] = (
    "view",
    "profile",
    "grub",
    "dom0",
    "power",
    "console",
    "lab",
    "run",
    "solinfo",
    "serve",
    "status",
    "web",
)

DEFAULT_KEYS = "h,q,u,m,e,i,r"
FOREVER = 365 * 86400.0  # "no limit", kept finite because thread waits take a finite timeout


class Terminated(Exception):
    """SIGTERM arrived: unwind like Ctrl-C so recordings are closed cleanly."""


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise Terminated()


def _add_target_options(parser: argparse.ArgumentParser, *, fleet: bool = False) -> None:
    """The single-console options; ``fleet`` makes TARGET optional (``--inventory`` instead)
    and ``--label`` repeatable (host labels to select with ``--inventory``)."""
    help_target = "device path or URL: /dev/ttyS0, /dev/pts/3, socket://h:p"
    if fleet:
        parser.add_argument("target", nargs="?", help=help_target + " (or use --inventory)")
    else:
        parser.add_argument("target", help=help_target)
    parser.add_argument("--line", default="38400,8n1", help="line settings (default 38400,8n1)")
    parser.add_argument("--host", help="name for the recording directory (default: from TARGET)")
    parser.add_argument("--root", type=directory(), help="recordings root (default: ./recordings)")
    ipmiopts.add_ipmi_options(parser)
    if fleet:
        parser.add_argument(
            "--label",
            action="append",
            metavar="L",
            help="label in the recording directory name; with --inventory: select hosts "
            "having this label (repeat)",
        )
    else:
        parser.add_argument("--label", help="label in the recording directory name")


def _open(
    args: argparse.Namespace, line: LineSettings, *, serve_mode: str = "write"
) -> RecordedConsole:
    """Open and start the console (reconnecting where the scheme allows), then its recording:
    a target that cannot be opened (or a password that is missing) leaves no empty recording
    directory behind. A target some ``solcap serve`` holds is opened through it, attached
    as ``serve_mode`` (a capture only watches, so it leaves the write side to others)."""
    spec = ConsoleSpec.from_url(
        args.target,
        host=args.host,
        line=line,
        password_file=args.password_file,
        kg_file=args.kg_file,
    )
    spec = dataclasses.replace(spec, serve_mode=serve_mode)

    def make_recording() -> Recording:
        return Recording(spec.host, label=args.label_name, root=args.root)

    return open_console(spec, recording=make_recording)


def cmd_capture(args: argparse.Namespace, out: TextIO) -> int:
    """Record a console without sending anything until a stop condition holds."""
    until = None
    if args.until is not None:
        try:
            until = re.compile(args.until.encode())
        except re.error as exc:
            raise UsageError(f"--until: not a valid regular expression: {exc}") from exc
    line = LineSettings.parse(args.line)
    check_root(args.root)
    args.label_name = args.label or "capture"
    console = _open(args, line, serve_mode="spy")
    recording = console.recording
    assert recording is not None
    reason = "closed"
    try:
        with console:
            limit = args.for_seconds if args.for_seconds is not None else FOREVER
            if until is not None:
                console.expect([until], timeout=limit)
                reason = "matched --until"
            elif args.idle is not None:
                console.settle(args.idle, timeout=limit)
                reason = "idle"
            else:
                reason = _record_until_eof(console, limit)
    except (KeyboardInterrupt, Terminated):
        reason = "interrupted"
        raise
    finally:
        summary = recording.close(stop_reason=reason)
        _print_recording(summary, out)
    return ExitStatus.OK


def _record_until_eof(console: Console, limit: float) -> str:
    """Let the reader thread record until the console closes or ``limit`` seconds pass."""
    deadline = time.monotonic() + limit
    while (left := deadline - time.monotonic()) > 0:
        try:
            console.wait_for_bytes(console.received + 1, timeout=min(1.0, left))
        except ExpectTimeout:
            continue
        except ConsoleClosed:
            return "end of file"
        console.drain()  # nobody matches on a plain capture; the recording has every byte
    return "time limit"


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
    console = _open(args, line)
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
        _print_recording(summary, out)
    return ExitStatus.OK if result.complete else ExitStatus.TARGET


def cmd_demo(args: argparse.Namespace, out: TextIO) -> int:
    """Boot the built-in virtual Xen host and harvest its debug keys; no hardware needed."""
    from solcap.demo import run_demo  # the simulator is only loaded for the demo

    check_root(args.root)
    return run_demo(
        keys=parse_keys(args.keys),
        domus=args.domus,
        real_rate=args.real_rate,
        root=args.root,
        out=out,
    )


def _print_recording(summary: RecordingSummary, out: TextIO) -> None:
    print(f"recording: {summary.path}", file=out)
    print(f"  {summary.bytes} bytes, sha256 {summary.sha256}", file=out)
    for segment in summary.segments:
        state = "complete" if segment.complete else f"INCOMPLETE ({segment.reason})"
        print(
            f"  key {segment.name:>4}: {segment.end - segment.start:>9} bytes  "
            f"sha256 {segment.sha256[:16]}  {state}",
            file=out,
        )


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="solcap",
        description="Reach a server's serial console, drive Xen and GRUB, capture every byte.",
    )
    parser.add_argument("--version", action="version", version=f"solcap {__version__}")
    parser.add_argument(
        "--debug-transport",
        action="store_true",
        help="allow debug transports such as spy:// (they log every byte sent, secrets "
        "included; the log file is created 0600)",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    capture = sub.add_parser("capture", help="record a console without sending anything")
    _add_target_options(capture)
    stop = capture.add_argument_group("stop conditions (default: until Ctrl-C or EOF)")
    stop.add_argument("--for", dest="for_seconds", type=seconds(), metavar="SECONDS")
    stop.add_argument("--until", metavar="REGEX", help="stop once this regex has been seen")
    stop.add_argument("--idle", type=seconds(), metavar="SECONDS", help="stop when quiet")
    capture.set_defaults(func=cmd_capture)

    harvest = sub.add_parser(
        "harvest", help="press Xen debug keys and record each dump (one console or a fleet)"
    )
    _add_target_options(harvest, fleet=True)
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

    for name in COMMAND_MODULES:
        importlib.import_module(f"solcap.commands.{name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    """Entry point; returns the exit status (see :class:`solcap.errors.ExitStatus`)."""
    stream = out if out is not None else sys.stdout
    args = build_parser().parse_args(argv)
    previous: Callable[[int, FrameType | None], object] | int | None = None
    try:
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
        # A file-size limit must surface as an error we report, not kill us with SIGXFSZ.
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    except ValueError:  # not the main thread (e.g. called from a test's worker thread)
        previous = None
    try:
        with contextlib.ExitStack() as stack:
            if args.debug_transport:
                stack.enter_context(debug_transports_allowed())
            target = getattr(args, "target", None)
            if isinstance(target, str):
                check_debug_target(target)  # before any recording directory exists
            status: int = args.func(args, stream)
        return status
    except SolcapError as exc:
        print(f"solcap: error: {exc.one_line()}", file=sys.stderr)
        return int(exc.exit_status)
    except KeyboardInterrupt:
        print("solcap: interrupted; recording closed", file=sys.stderr)
        return int(ExitStatus.INTERRUPTED)
    except Terminated:
        print("solcap: terminated; recording closed", file=sys.stderr)
        return int(ExitStatus.TERMINATED)
    except Exception as exc:  # a bug in solcap: still one line, the traceback on request
        if os.environ.get("SOLCAP_TRACEBACK"):
            raise
        shown = " ".join(str(exc).split())
        print(
            f"solcap: internal error: {type(exc).__name__}: {shown} (a bug in solcap; "
            "SOLCAP_TRACEBACK=1 shows where)",
            file=sys.stderr,
        )
        return int(ExitStatus.FAILURE)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
