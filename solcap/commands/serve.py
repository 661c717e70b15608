"""``solcap serve --inventory I --root DIR``: hold every console of an inventory, always.

Foreground (systemd runs it as ``Type=simple``; docs/serve.md has the unit). Logs one line per
console state change on stderr. Exit status: 143 after SIGTERM, 130 after SIGINT (every
recording closed, SOL deactivated, sessions logged out), 2 for bad input before anything is
opened. The work is :class:`solcap.serve.server.Server`.
"""

from __future__ import annotations

import argparse
import grp
import logging
import re
import sys
from typing import Any, TextIO

from solcap.commands import web as web_options
from solcap.commands.argtypes import count, directory, seconds
from solcap.errors import UsageError
from solcap.inventory import parse_shard

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?i?B?)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def size(text: str) -> int:
    """``65536``, ``64K``, ``64KiB``, ``1.5G`` → bytes (binary units, as du and conserver)."""
    m = _SIZE.match(text)
    if m is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size such as 64M or 1G")
    unit = (m.group(2) or "").lower().rstrip("b").rstrip("i")
    value = int(float(m.group(1)) * _UNITS[unit])
    if value < 1024:
        raise argparse.ArgumentTypeError(f"{text!r}: a size limit must be at least 1K")
    return value


def _group(text: str) -> int:
    try:
        return int(text) if text.isdigit() else grp.getgrnam(text).gr_gid
    except KeyError:
        raise argparse.ArgumentTypeError(f"no group named {text!r}") from None


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "serve", help="hold every inventory console, record it all the time, share it"
    )
    parser.add_argument("--inventory", required=True, metavar="FILE", help="hosts to hold")
    parser.add_argument("--root", required=True, type=directory(), help="where the logs go")
    parser.add_argument("--control-dir", type=directory(), help="control socket directory")
    parser.add_argument("--shard", type=_shard, metavar="I/N", help="hold only shard I of N")
    parser.add_argument("--group", type=_group, help="this group may attach read-write")
    parser.add_argument("--spy-group", type=_group, help="this group may only watch")
    parser.add_argument("--rotate-size", type=size, default=64 << 20, metavar="SIZE")
    parser.add_argument(
        "--rotate-age", type=seconds(maximum=366 * 86400), default=86400.0, metavar="SECONDS"
    )
    parser.add_argument("--keep-size", type=size, metavar="SIZE", help="per host")
    parser.add_argument("--keep-age", type=seconds(maximum=10 * 366 * 86400), metavar="SECONDS")
    parser.add_argument(
        "--backoff-max",
        type=seconds(maximum=3600),
        default=60.0,
        metavar="SECONDS",
        help="longest wait between reconnects (default 60; jittered)",
    )
    parser.add_argument(
        "--backoff-base", type=seconds(maximum=3600), default=1.0, metavar="SECONDS"
    )
    parser.add_argument(
        "--connect-timeout",
        type=seconds(maximum=600),
        metavar="SECONDS",
        help="longest one BMC login may take (default 10)",
    )
    parser.add_argument(
        "--workers",
        type=count(maximum=256),
        metavar="N",
        help="processes to hold the consoles (default one per core; 1: this process only)",
    )
    parser.add_argument(
        "--metrics",
        metavar="ADDR:PORT",
        help="serve Prometheus metrics at http://ADDR:PORT/metrics (loopback only)",
    )
    parser.add_argument(
        "--web",
        metavar="ADDR:PORT",
        help="also serve the web view here (docs/web.md; loopback unless --tls-cert/--tls-key)",
    )
    web_options.add_web_options(parser, listen_option="--web")
    parser.set_defaults(func=cmd_serve)


def _shard(text: str) -> Any:
    try:
        return parse_shard(text)
    except UsageError as exc:
        raise argparse.ArgumentTypeError(exc.one_line()) from None


def _workers(asked: int | None) -> int:
    """``--workers``, default one per core (the server itself runs in one process where it
    may not fork, :meth:`solcap.serve.server.Server.start`)."""
    from solcap.orchestration.workers import default_workers

    return asked if asked is not None else default_workers()


def cmd_serve(args: argparse.Namespace, out: TextIO) -> int:
    from solcap.serve.client import mark_server_process, unmark_server_process
    from solcap.serve.holder import Backoff
    from solcap.serve.metrics import parse_listen
    from solcap.serve.rotation import RotationPolicy
    from solcap.serve.server import ServeOptions, Server

    if args.backoff_base > args.backoff_max:
        raise UsageError("--backoff-base must not exceed --backoff-max")
    options = ServeOptions(
        inventory=args.inventory,
        root=args.root,
        control_dir=args.control_dir,
        shard=args.shard,
        group=args.group,
        spy_group=args.spy_group,
        policy=RotationPolicy(
            max_bytes=args.rotate_size,
            max_age=args.rotate_age,
            keep_bytes=args.keep_size,
            keep_age=args.keep_age,
        ),
        backoff=Backoff(base=args.backoff_base, cap=args.backoff_max),
        connect_timeout=args.connect_timeout,
        metrics=parse_listen(args.metrics) if args.metrics is not None else None,
        workers=_workers(args.workers),
    )
    if args.web is not None:
        web_options.check_web(args, args.web, args.root)  # refused before any console opens
    server = Server(options)
    web: list[Any] = []

    def ready() -> None:
        print(f"ready {server.socket_path}", file=out, flush=True)
        if server.metrics is not None:
            print(f"metrics {server.metrics.url}", file=out, flush=True)
        if args.web is not None:
            web.append(
                web_options.start_web(args, args.web, args.root, out, control=server.socket_path)
            )

    # Set up only once every check has passed: a refused start (exit 2, e.g. a test calling
    # main() in-process) must leave neither a log handler nor the server mark behind, or the
    # same process's later commands would skip every server (find_serving answers None).
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("solcap serve: %(message)s"))
    logger = logging.getLogger("solcap.serve")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    mark_server_process()
    try:
        return server.run(ready=ready)
    finally:
        unmark_server_process()
        for running in web:
            running.stop()
        logger.removeHandler(handler)
