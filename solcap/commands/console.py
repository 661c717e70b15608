"""``solcap console HOST``: an interactive console, recorded, with ssh-style ``~`` escapes.

HOST is any console target (``/dev/ttyS0``, ``/dev/pts/N``, ``socket://…``, ``ipmi://…``).
``--steal`` takes an IPMI SOL payload another client holds (and says so). Exit status: 0 after
``~.`` or end of input, 3 when the console closes or cannot be opened, 143 on SIGTERM, 129 on
SIGHUP (see docs/ipmi.md).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, TextIO

from solcap.attach import DEFAULT_ESCAPE, attach, parse_escape, show_char
from solcap.capture import Recording
from solcap.commands import ipmiopts
from solcap.commands.argtypes import directory
from solcap.connect import ConsoleSpec, open_recorded_transport
from solcap.errors import ExitStatus
from solcap.transports.base import Transport


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
    parser.add_argument("--root", type=directory(), help="recordings root (default: ./recordings)")
    parser.add_argument("--label", default="console", help="label in the recording directory")
    ipmiopts.add_ipmi_options(parser)
    parser.set_defaults(func=cmd_console)


def _announce(kind: str, /, **fields: Any) -> None:
    """Tell the person at the terminal when the console goes down and comes back (the
    terminal is raw, hence ``\r\n``); the recording has the same events in full."""
    if kind == "disconnected":
        text = f"console down ({fields.get('cause')}): {fields.get('reason')}; reconnecting"
    elif kind == "gap":
        text = (
            f"console up again after {fields.get('duration_s')} s; output the host wrote "
            "in between may be missing"
        )
    elif kind == "reconnect_gave_up":
        text = f"gave up reconnecting: {fields.get('error')}"
    else:
        return
    sys.stderr.write(f"\r\nsolcap: {text}\r\n")
    sys.stderr.flush()


def _stole(transport: Transport) -> bool:
    """Whether the first activation took the payload from someone (through a reconnector)."""
    for candidate in (transport, getattr(transport, "inner", None)):
        if getattr(candidate, "stole", False):
            return True
    return False


def _open(args: argparse.Namespace) -> tuple[Transport, Recording]:
    spec = ConsoleSpec.from_url(
        args.target,
        host=args.host,
        line=args.line,
        password_file=args.password_file,
        kg_file=args.kg_file,
        steal=args.steal,
    )

    def make_recording() -> Recording:
        return Recording(spec.host, label=args.label, root=args.root)

    transport, recording = open_recorded_transport(
        spec, recording=make_recording, on_event=_announce
    )
    assert recording is not None
    if _stole(transport):
        print("solcap: deactivated another client's SOL session (--steal)", file=sys.stderr)
    return transport, recording


def _fileno(out: TextIO) -> int:
    """The descriptor behind ``out``; the process's stdout when ``out`` has none (a StringIO)."""
    try:
        return out.fileno()
    except (AttributeError, OSError, ValueError):
        return sys.stdout.fileno()


def cmd_console(args: argparse.Namespace, out: TextIO) -> int:
    """Open, attach until ``~.``/EOF/close/signal, close the recording, map the reason."""
    escape = parse_escape(args.escape)
    transport, recording = _open(args)
    name = recording.host
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
