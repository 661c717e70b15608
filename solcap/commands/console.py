"""``solcap console HOST``: an interactive console, recorded, with ssh-style ``~`` escapes.

HOST is any console target (``/dev/ttyS0``, ``/dev/pts/N``, ``socket://…``, ``ipmi://…``),
or with ``--inventory FILE`` a host of that inventory. ``--steal`` takes an IPMI SOL payload
another client holds (and says so). Exit status: 0 after ``~.`` or end of input, 3 when the
console closes or cannot be opened, 143 on SIGTERM, 129 on SIGHUP (see docs/ipmi.md).

When a running ``solcap serve`` holds the console (docs/serve.md), the terminal attaches
*through it*: first the server's current screen, then the live stream; one writer at a time (a
second attach is a spy, told who writes), ``--spy`` asks for read-only, ``--force`` takes the
write side (the previous writer is told). The server records, so no second recording is made.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from typing import TYPE_CHECKING, Any, TextIO

from solcap.capture.recording import Recording
from solcap.commands import ipmiopts
from solcap.commands.argtypes import directory
from solcap.connect import ConsoleSpec, open_recorded_transport, serving
from solcap.console.attach import DEFAULT_ESCAPE, AttachResult, attach, parse_escape, show_char
from solcap.errors import ExitStatus, UsageError
from solcap.transports.base import Transport

if TYPE_CHECKING:
    from solcap.serve.client import ServedHost, ServedTransport


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "console", help="attach the terminal to a console (raw, recorded; ~. quits, ~? help)"
    )
    parser.add_argument(
        "target",
        metavar="HOST",
        help="/dev/ttyS0, /dev/pts/N, ipmi://user@bmc, or a host of --inventory",
    )
    parser.add_argument(
        "--inventory", metavar="FILE", help="HOST is a host of this inventory (docs/inventory.md)"
    )
    served = parser.add_argument_group("through a running solcap serve (docs/serve.md)")
    side = served.add_mutually_exclusive_group()
    side.add_argument("--spy", action="store_true", help="attach read-only")
    side.add_argument(
        "--force", action="store_true", help="take the write side (its writer is told)"
    )
    served.add_argument("--control-dir", type=directory(), help="the servers' control directory")
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


def _spec(args: argparse.Namespace) -> ConsoleSpec:
    """What to open: an inventory host, or a target with the command line's options. Bad
    input is refused here, before anything is opened."""
    if args.inventory is None:
        spec = ConsoleSpec.from_url(
            args.target,
            host=args.host,
            line=args.line,
            password_file=args.password_file,
            kg_file=args.kg_file,
            steal=args.steal,
        )
    else:
        from solcap.inventory import load_inventory

        given = [
            f
            for f, v in (
                ("--password-file", args.password_file),
                ("--kg-file", args.kg_file),
                ("--host", args.host),
            )
            if v
        ]
        if given:
            raise UsageError(f"{given[0]} does not apply with --inventory (the inventory says)")
        spec = ConsoleSpec.from_host(load_inventory(args.inventory).host(args.target))
        if args.steal:
            if spec.scheme != "ipmi":
                raise UsageError(f"{spec.host}: --steal applies to ipmi:// consoles only")
            spec = dataclasses.replace(spec, steal=True)
    mode = "spy" if args.spy else "force" if args.force else "auto"
    return dataclasses.replace(spec, serve_mode=mode)


def _open(args: argparse.Namespace, spec: ConsoleSpec) -> tuple[Transport, Recording]:
    def make_recording() -> Recording:
        return Recording(spec.host, label=args.label, root=args.root)

    transport, recording = open_recorded_transport(
        spec, recording=make_recording, on_event=_announce, through_server=False
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


def _hint(escape: int | None) -> str:
    if escape is None:
        return "escapes off"
    return f"escape character is {show_char(escape)!r}; {show_char(escape)}? for help"


def _say(text: str) -> None:
    """One line for the person at the (raw) terminal, never into any recording."""
    sys.stderr.write(f"\r\nsolcap: {text}\r\n")
    sys.stderr.flush()


def _served_notice(notice: dict[str, Any]) -> None:
    event = notice.get("event")
    if event == "forced":
        _say(f"{notice.get('by')} took the write side (--force); you are a spy (read-only) now")
    elif event == "notice":
        _say(str(notice.get("text")))
    elif event == "state":
        detail = f": {notice['detail']}" if notice.get("detail") else ""
        _say(f"the console is {notice.get('state')}{detail}")
    elif event == "dropped":
        _say(f"the console server dropped this client: {notice.get('reason')}")


def _open_served(found: ServedHost, spec: ConsoleSpec) -> ServedTransport:
    from solcap.serve.client import open_served

    transport = open_served(
        found, mode=spec.serve_mode, wait=None, on_notice=_served_notice, quiet_spy=True
    )
    role = "writer" if transport.role == "writer" else "spy (read-only)"
    print(
        f"solcap: attached to {found.host} through solcap serve ({found.socket}) as {role}",
        file=sys.stderr,
    )
    if transport.attachment.notice:
        print(f"solcap: {transport.attachment.notice}", file=sys.stderr)
    if transport.state != "up":
        detail = f": {transport.detail}" if transport.detail else ""
        print(f"solcap: the console is {transport.state}{detail}", file=sys.stderr)
    return transport


def cmd_console_served(
    args: argparse.Namespace, out: TextIO, found: ServedHost, spec: ConsoleSpec
) -> int:
    """Attach through the server: its screen first, then the stream; the server records."""
    escape = parse_escape(args.escape)
    if args.steal:
        raise UsageError(f"{found.host}: --steal does not apply through solcap serve (--force)")
    transport = _open_served(found, spec)
    print(f"solcap: {_hint(escape)}", file=sys.stderr)
    result = _attach(transport, out, escape, found.host, screen_first=transport.attachment.screen)
    print(f"\nsolcap: {result.reason}; recorded by solcap serve", file=sys.stderr)
    return _status(result)


def _attach(
    transport: Transport,
    out: TextIO,
    escape: int | None,
    host: str,
    *,
    recording: Recording | None = None,
    screen_first: bytes = b"",
) -> AttachResult:
    """Relay this terminal (stdin, ``out``) to the console; what we printed goes out first."""
    out.flush()
    return attach(
        transport,
        recording=recording,
        stdin_fd=sys.stdin.fileno(),
        stdout_fd=_fileno(out),
        escape=escape,
        host=host,
        screen_first=screen_first,
    )


def _status(result: AttachResult) -> int:
    """The exit status of an attachment: a console that closed under us is the target's
    failure, a signal is 128 + its number, ``~.`` or EOF is success."""
    if result.reason == "closed":
        print(f"solcap: console closed: {result.detail}", file=sys.stderr)
        return int(ExitStatus.TARGET)
    if result.signum is not None:
        return int(ExitStatus.for_signal(result.signum))
    return int(ExitStatus.OK)


def cmd_console(args: argparse.Namespace, out: TextIO) -> int:
    """Open, attach until ``~.``/EOF/close/signal, close the recording, map the reason."""
    escape = parse_escape(args.escape)
    spec = _spec(args)
    found = serving(spec, directory=args.control_dir)
    if found is not None:
        return cmd_console_served(args, out, found, spec)
    if args.spy or args.force:
        flag = "--spy" if args.spy else "--force"
        raise UsageError(f"{spec.host}: no running solcap serve holds this console ({flag})")
    transport, recording = _open(args, spec)
    name = recording.host
    print(f"solcap: connected to {transport.name}; {_hint(escape)}", file=sys.stderr)
    result = None
    try:
        result = _attach(transport, out, escape, name, recording=recording)
    finally:
        reason = result.reason if result is not None else "error"
        summary = recording.close(stop_reason=reason)
        print(f"\nsolcap: {reason}; recording: {summary.path}", file=sys.stderr)
    return _status(result)
