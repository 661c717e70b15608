"""What the single-console commands share: the TARGET options, opening TARGET with its
recording (solcap.connect), and the recording summary they print.

``capture`` and ``harvest`` (and ``demo``'s report) use these; the other commands have their
own argument shapes (``console``, ``grub``, ``dom0`` …).
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import TextIO

from solcap.capture.recording import Recording, RecordingSummary
from solcap.commands import ipmiopts
from solcap.commands.argtypes import directory
from solcap.connect import ConsoleSpec, RecordedConsole, open_console
from solcap.transports.serialport import LineSettings

DEFAULT_KEYS = "h,q,u,m,e,i,r"
FOREVER = 365 * 86400.0  # "no limit", kept finite because thread waits take a finite timeout


class Terminated(Exception):
    """SIGTERM arrived: unwind like Ctrl-C so recordings are closed cleanly."""


def add_target_options(parser: argparse.ArgumentParser, *, fleet: bool = False) -> None:
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


def open_target(
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


def print_recording(summary: RecordingSummary, out: TextIO) -> None:
    print(f"recording: {summary.path}", file=out)
    print(f"  {summary.bytes} bytes, sha256 {summary.sha256}", file=out)
    for segment in summary.segments:
        state = "complete" if segment.complete else f"INCOMPLETE ({segment.reason})"
        print(
            f"  key {segment.name:>4}: {segment.end - segment.start:>9} bytes  "
            f"sha256 {segment.sha256[:16]}  {state}",
            file=out,
        )
