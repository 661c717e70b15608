"""``solcap capture``: record a console without sending anything until a stop condition."""

from __future__ import annotations

import argparse
import re
import time
from typing import Any, TextIO

from solcap.capture.recording import check_root
from solcap.commands.argtypes import seconds
from solcap.commands.target import (
    FOREVER,
    Terminated,
    add_target_options,
    open_target,
    print_recording,
)
from solcap.console.core import Console
from solcap.errors import ConsoleClosed, ExitStatus, ExpectTimeout, UsageError
from solcap.transports.serialport import LineSettings


def register(sub: Any) -> None:
    capture = sub.add_parser("capture", help="record a console without sending anything")
    add_target_options(capture)
    stop = capture.add_argument_group("stop conditions (default: until Ctrl-C or EOF)")
    stop.add_argument("--for", dest="for_seconds", type=seconds(), metavar="SECONDS")
    stop.add_argument("--until", metavar="REGEX", help="stop once this regex has been seen")
    stop.add_argument("--idle", type=seconds(), metavar="SECONDS", help="stop when quiet")
    capture.set_defaults(func=cmd_capture)


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
    console = open_target(args, line, serve_mode="spy")
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
        print_recording(summary, out)
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
