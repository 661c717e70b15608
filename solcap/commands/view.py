"""``solcap show``, ``solcap replay`` and ``solcap export``: look at a recording afterwards."""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path
from typing import Any, TextIO

from solcap.capture import recordings
from solcap.commands.argtypes import number, seconds
from solcap.errors import ExitStatus


def register(sub: Any) -> None:
    show = sub.add_parser("show", help="summarise a recording, or print one key's dump")
    show.add_argument("recording", type=Path)
    show.add_argument("--key", help="print this debug key's dump (exact bytes)")
    show.set_defaults(func=cmd_show)

    replay = sub.add_parser("replay", help="play a recording back with its original timing")
    replay.add_argument("recording", type=Path)
    replay.add_argument(
        "--speed",
        type=number(minimum=0, maximum=1e6),
        default=1.0,
        help="2 = twice as fast; 0 = at once",
    )
    replay.add_argument(
        "--max-delay", type=seconds(zero=True), default=2.0, help="cap on any one pause (s)"
    )
    replay.set_defaults(func=cmd_replay)

    export = sub.add_parser("export", help="export a recording (asciicast v2; lossy for non-UTF-8)")
    export.add_argument("recording", type=Path)
    export.add_argument("--asciicast", type=Path, required=True, metavar="FILE")
    export.set_defaults(func=cmd_export)


def cmd_show(args: argparse.Namespace, out: TextIO) -> int:
    info = recordings.load(args.recording)
    if args.key:
        segment = info.segment(args.key)
        data = info.read(segment["file"])  # inside the recording only
        if hashlib.sha256(data).hexdigest() != segment["sha256"]:
            # A dump that changed since it was cut is not "the exact bytes": print none.
            print(
                f"solcap: {info.path}: CORRUPT: {segment['file']} no longer matches the SHA-256 "
                "in meta.json",
                file=sys.stderr,
            )
            return ExitStatus.TARGET
        buffer = getattr(out, "buffer", None)
        if buffer is not None:
            buffer.write(data)
            buffer.flush()
        else:
            out.write(data.decode("utf-8", "replace"))
        return ExitStatus.OK
    meta = info.meta
    print(f"recording: {info.path}", file=out)
    print(
        f"  host {meta.get('host', '?')}, label {meta.get('label', '?')}, "
        f"started {meta.get('started', '?')}, ended {meta.get('ended') or '-'}",
        file=out,
    )
    print(f"  console.raw: {info.raw_bytes} bytes, sha256 {info.raw_sha256}", file=out)
    status = ExitStatus.OK
    if not info.finished:
        print(
            "  UNFINISHED: solcap did not close this recording (killed or crashed); "
            "console.raw is valid up to its last flush",
            file=out,
        )
        status = ExitStatus.TARGET
    elif not info.intact:
        print("  CORRUPT: console.raw no longer matches the SHA-256 in meta.json", file=out)
        status = ExitStatus.TARGET
    elif meta.get("unwritten_bytes"):
        print(f"  INCOMPLETE: {meta['unwritten_bytes']} bytes received were not written", file=out)
        status = ExitStatus.TARGET
    else:
        print("  complete: console.raw matches meta.json", file=out)
    for segment in meta.get("segments", []):
        state = "complete" if segment.get("complete") else f"INCOMPLETE ({segment.get('reason')})"
        print(
            f"  key {segment['name']:>4}: {segment['end'] - segment['start']:>9} bytes at "
            f"{segment['start']}  sha256 {segment['sha256'][:16]}  {state}",
            file=out,
        )
    return status


def cmd_replay(args: argparse.Namespace, out: TextIO) -> int:
    info = recordings.load(args.recording)
    buffer = getattr(out, "buffer", sys.stdout.buffer)
    recordings.replay(info, buffer, speed=args.speed, max_delay=args.max_delay)
    return ExitStatus.OK


def cmd_export(args: argparse.Namespace, out: TextIO) -> int:
    info = recordings.load(args.recording)
    events = recordings.export_asciicast(info, args.asciicast)
    print(f"wrote {args.asciicast} ({events} events; non-UTF-8 bytes shown as U+FFFD)", file=out)
    return ExitStatus.OK
