"""``solcap console HOST``: an interactive console, recorded, with ssh-style ``~`` escapes.

HOST is any console target (``/dev/ttyS0``, ``/dev/pts/N``, ``socket://…``, ``ipmi://…``).
``--steal`` takes an IPMI SOL payload another client holds (and says so). Exit status: 0 after
``~.`` or end of input, 3 when the console closes or cannot be opened, 143 on SIGTERM, 129 on
SIGHUP (see docs/ipmi.md).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, TextIO

from solcap.attach import DEFAULT_ESCAPE, attach, parse_escape, show_char
from solcap.capture import Recording, safe_name
from solcap.commands import ipmiopts
from solcap.errors import ExitStatus, UsageError
from solcap.transports.base import Transport
from solcap.transports.registry import connection_meta, host_name, open_transport
from solcap.transports.serialport import LineSettings


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "console", help="attach the terminal to a console (raw, recorded; ~. quits, ~? help)"
    )
    parser.add_argument("target", metavar="HOST", help="/dev/ttyS0, /dev/pts/N, ipmi://user@bmc")
    parser.add_argument(
        "-e",
        dest="escape",
        default=DEFAULT_ESCAPE,
        metavar="CHAR",
        help="escape character (default ~; ^X notation; 'none' disables escapes)",
    )
    parser.add_argument(
        "--steal", action="store_true", help="IPMI: deactivate another client's SOL session"
    )
    parser.add_argument("--line", default="38400,8n1", help="serial line settings")
    parser.add_argument("--host", help="name for the recording directory (default: from HOST)")
    parser.add_argument("--root", type=Path, help="recordings root (default: ./recordings)")
    parser.add_argument("--label", default="console", help="label in the recording directory")
    ipmiopts.add_ipmi_options(parser)
    parser.set_defaults(func=cmd_console)


def _open(args: argparse.Namespace) -> Transport:
    if args.target.lower().startswith("ipmi://"):
        from solcap.transports.ipmi import open_ipmi  # pyghmi only for IPMI users

        transport = open_ipmi(
            args.target,
            password_source=ipmiopts.password(args),
            kg=ipmiopts.kg(args),
            steal=args.steal,
        )
        if transport.stole:
            print("solcap: deactivated another client's SOL session (--steal)", file=sys.stderr)
        return transport
    if args.steal:
        raise UsageError("--steal applies to ipmi:// targets only")
    ipmiopts.refuse_unless_ipmi(args, args.target)
    return open_transport(args.target, line=LineSettings.parse(args.line))


def _fileno(out: TextIO) -> int:
    """The descriptor behind ``out``; the process's stdout when ``out`` has none (a StringIO)."""
    try:
        return out.fileno()
    except (AttributeError, OSError, ValueError):
        return sys.stdout.fileno()


def cmd_console(args: argparse.Namespace, out: TextIO) -> int:
    """Open, attach until ``~.``/EOF/close/signal, close the recording, map the reason."""
    escape = parse_escape(args.escape)
    name = safe_name(args.host) if args.host else host_name(args.target)
    transport = _open(args)
    try:
        recording = Recording(name, label=args.label, root=args.root)
        recording.set_meta(**connection_meta(transport))
    except BaseException:
        transport.close()
        raise
    hint = (
        f"escape character is {show_char(escape)!r}; {show_char(escape)}? for help"
        if escape
        else ""
    )
    print(f"solcap: connected to {transport.name}; {hint or 'escapes off'}", file=sys.stderr)
    result = None
    try:
        out.flush()
        result = attach(
            transport,
            recording=recording,
            stdin_fd=sys.stdin.fileno(),
            stdout_fd=_fileno(out),
            escape=escape,
            host=name,
        )
    finally:
        reason = result.reason if result is not None else "error"
        summary = recording.close(stop_reason=reason)
        print(f"\nsolcap: {reason}; recording: {summary.path}", file=sys.stderr)
    if result.reason == "closed":
        print(f"solcap: console closed: {result.detail}", file=sys.stderr)
        return int(ExitStatus.TARGET)
    if result.signum is not None:
        return int(ExitStatus.for_signal(result.signum))
    return int(ExitStatus.OK)
