"""``solcap dom0`` and ``solcap compare``: Dom0's view over SSH, and what ``xl dmesg`` lost.

``solcap dom0 ssh://root@host xl-info vcpu-list`` runs the named Dom0 commands (see
:data:`solcap.xen.dom0.DOM0_COMMANDS`), prints their output and keeps it in a new recording
(``dom0/<name>.txt``). With ``--key q --serial TARGET`` it also presses the key with
``xl debug-keys`` over SSH while recording the serial console, then fetches ``xl dmesg`` and
compares the two. ``solcap compare REC --key q`` prints that comparison again for a recording
that holds both.

Host keys are always verified (``--known-hosts`` or the system and user files); a new key is
accepted only with ``--accept-new-host-key``, which logs it and writes it to known_hosts. The
SSH options are :mod:`solcap.commands.sshopts`' (``--ssh-key``, ``--ssh-password-env``, …;
the older ``--identity``/``--password-env``/``--password-file`` still work).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Any, TextIO

from solcap.capture import recordings
from solcap.capture.recording import Recording, check_root, safe_name
from solcap.commands.argtypes import directory, seconds
from solcap.commands.sshopts import ALIASES, add_ssh_options, ssh_target
from solcap.config.limits import FILE_CAPS, key_problem, read_bytes
from solcap.connect import ConsoleSpec, open_console
from solcap.errors import ExitStatus, UsageError
from solcap.transports.registry import check_target
from solcap.transports.serialport import LineSettings
from solcap.transports.ssh import SshConnection, connect
from solcap.xen.console import quiet_period, refuse_dangerous
from solcap.xen.dom0 import (
    DOM0_COMMANDS,
    compare_ring,
    run_dom0,
    trigger_key_via_ssh,
)


def register(sub: Any) -> None:
    dom0 = sub.add_parser(
        "dom0", help="run Dom0's Xen tools over SSH and record their output (verified host key)"
    )
    dom0.add_argument("ssh_url", metavar="HOST", help="ssh://user@host[:port]")
    dom0.add_argument(
        "commands",
        nargs="*",
        metavar="COMMAND",
        help=f"any of {', '.join(DOM0_COMMANDS)}",
    )
    add_ssh_options(dom0, sudo="run the commands under sudo", old_spellings=tuple(ALIASES.values()))
    dom0.add_argument(
        "--timeout", type=seconds(maximum=86400), default=120.0, help="per command (s)"
    )
    dom0.add_argument("--key", help="also press this key via `xl debug-keys` (needs --serial)")
    dom0.add_argument("--serial", metavar="TARGET", help="serial console to record for --key")
    dom0.add_argument("--line", default="38400,8n1", help="serial line settings for --serial")
    dom0.add_argument("--quiet", type=seconds(), help="silence that ends the dump (s)")
    dom0.add_argument("--host", help="name for the recording directory (default: SSH host)")
    dom0.add_argument("--root", type=directory(), help="recordings root (default: ./recordings)")
    dom0.add_argument("--label", help="label in the recording directory name")
    dom0.set_defaults(func=cmd_dom0)

    compare = sub.add_parser(
        "compare", help="show what `xl dmesg` lost of a key dump the serial console got in full"
    )
    compare.add_argument("recording", type=Path)
    compare.add_argument("--key", required=True, help="the debug key (or segment name)")
    compare.add_argument("--dmesg", type=Path, metavar="FILE", help="xl dmesg output to use")
    compare.set_defaults(func=cmd_compare)


def _checked_key(args: argparse.Namespace) -> tuple[LineSettings, ConsoleSpec] | None:
    """``--key``, ``--serial`` and ``--line``, all checked before the SSH login: the serial
    console's spec and line settings, or None without ``--key``."""
    if args.key is not None and args.serial is None:
        raise UsageError("--key needs --serial TARGET: the serial console is the full record")
    if args.serial is not None and args.key is None:
        raise UsageError("--serial is recorded only for --key: give the debug key to press")
    if args.key is None:
        return None
    if (problem := key_problem(args.key)) is not None:
        raise UsageError(f"--key: {problem}")
    try:
        refuse_dangerous([args.key], allowed=False)
    except UsageError as exc:
        raise UsageError(f"--key: {exc.one_line()}") from None
    try:
        line = LineSettings.parse(args.line)
    except UsageError as exc:
        raise UsageError(f"--line: {exc.one_line()}") from None
    try:
        check_target(args.serial)
        spec = ConsoleSpec.from_url(args.serial, line=line)
    except UsageError as exc:
        raise UsageError(f"--serial: {exc.one_line()}") from None
    return line, spec


def cmd_dom0(args: argparse.Namespace, out: TextIO) -> int:
    unknown = [c for c in args.commands if c not in DOM0_COMMANDS]
    if unknown:
        raise UsageError(f"unknown Dom0 command {unknown[0]!r}: use {', '.join(DOM0_COMMANDS)}")
    if not args.commands and args.key is None:
        raise UsageError(f"name at least one command ({', '.join(DOM0_COMMANDS)}) or --key")
    serial = _checked_key(args)
    target = ssh_target(args, args.ssh_url)
    check_root(args.root)
    status: int = ExitStatus.OK
    with connect(target) as ssh:
        # Only now, logged in: a host that cannot be reached leaves no empty recording.
        recording = Recording(
            args.host or safe_name(target.host), label=args.label or "dom0", root=args.root
        )
        try:
            recording.event("connect", target=f"ssh://{target.display}")
            for name in args.commands:
                data = run_dom0(ssh, recording, name, timeout=args.timeout)
                out.write(data.decode("utf-8", "replace"))
            if serial is not None:
                status = _key_via_ssh(args, ssh, recording, serial, out)
        finally:
            summary = recording.close()
            print(f"recording: {summary.path}", file=sys.stderr)
    return status


def _key_via_ssh(
    args: argparse.Namespace,
    ssh: SshConnection,
    recording: Recording,
    serial: tuple[LineSettings, ConsoleSpec],
    out: TextIO,
) -> int:
    line, checked = serial
    quiet = args.quiet if args.quiet is not None else quiet_period(line.baud, floor=1.0)
    spec = dataclasses.replace(checked, host=recording.host)
    with open_console(spec, recording=recording) as console:
        result = trigger_key_via_ssh(ssh, console, recording, args.key, quiet)
    segment = result.segment
    state = "complete" if segment.complete else f"INCOMPLETE ({segment.reason})"
    print(
        f"key {segment.name}: serial {segment.end - segment.start} bytes "
        f"sha256 {segment.sha256[:16]} {state}",
        file=out,
    )
    print(result.comparison.summary(), file=out)
    return ExitStatus.OK if segment.complete else ExitStatus.TARGET


def cmd_compare(args: argparse.Namespace, out: TextIO) -> int:
    info = recordings.load(args.recording)
    segment = info.segment(args.key)
    name = str(segment["name"])  # q-2 for q's second press: its own xl-dmesg-after-q-2.txt
    serial = info.read(segment["file"])  # inside the recording only
    if args.dmesg is not None:
        dmesg_path = args.dmesg
        dmesg = read_bytes(dmesg_path, "dmesg")
    else:
        candidates = [f"dom0/xl-dmesg-after-{safe_name(name)}.txt", "dom0/xl-dmesg.txt"]
        found = [c for c in candidates if info.has(c)]
        if not found:
            raise UsageError(
                f"{info.path}: no xl dmesg output recorded for key {args.key!r} "
                "(record one with `solcap dom0 … --key`, or pass --dmesg FILE)"
            )
        dmesg_path = info.path / found[0]
        dmesg = info.read(found[0], FILE_CAPS["dmesg"])  # inside the recording only
    result = compare_ring(serial, dmesg)
    print(f"serial: {segment['file']} ({len(serial)} bytes)", file=out)
    print(f"ring:   {_shown(dmesg_path, info.path)} ({len(dmesg)} bytes)", file=out)
    print(result.summary(), file=out)
    return ExitStatus.OK


def _shown(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)
