"""The ``solcap`` command: parse arguments, call the library, map errors to exit codes.

Kept thin on purpose: everything here is also reachable from Python (``solcap.capture.recording``,
``solcap.console.core``, ``solcap.xen.harvest``). Expected failures print one line and exit non-zero
(see docs/errors.md); only a bug in solcap shows a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import signal
import sys
from collections.abc import Callable, Sequence
from types import FrameType
from typing import TextIO

from solcap import __version__
from solcap.commands.argtypes import OneLineParser
from solcap.commands.target import Terminated
from solcap.errors import ExitStatus, SolcapError
from solcap.transports.registry import check_debug_target, debug_transports_allowed

#: Modules under solcap.commands that add their own sub-commands (see that package's docstring).
COMMAND_MODULES: tuple[str, ...] = (
    "capture",
    "harvest",
    "demo",
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


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise Terminated()


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
