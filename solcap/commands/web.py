"""``solcap web``: the web view on its own, and the options ``solcap serve --web`` shares.

``solcap web --root DIR`` serves the recordings under DIR (lists, replay, key dumps, events,
downloads, search); with ``--control SOCKET`` it is also a client of a running ``solcap serve``
and shows its live consoles. ``solcap serve … --web ADDR:PORT`` starts the same server inside
the serve process (:func:`start_web`). Every option is checked (address, TLS files, token
file) before anything listens; the URLs with their tokens are printed once the port is bound.
"""

from __future__ import annotations

import argparse
import threading
from pathlib import Path
from typing import Any, TextIO

from solcap.commands.argtypes import directory, existing_path
from solcap.errors import ExitStatus, UsageError

DEFAULT_LISTEN = "127.0.0.1:8080"


def add_web_options(parser: argparse.ArgumentParser, *, listen_option: str) -> None:
    """Token, TLS and Origin options (the listen option itself is the caller's)."""
    parser.add_argument(
        "--token-file",
        type=existing_path(),
        metavar="FILE",
        help="read the tokens from FILE (0600; lines 'read T' and 'write T'), making it if "
        "absent; the printed URLs then carry no token",
    )
    parser.add_argument(
        "--tls-cert", type=existing_path(), metavar="FILE", help="TLS certificate (PEM)"
    )
    parser.add_argument(
        "--tls-key", type=existing_path(), metavar="FILE", help="TLS private key (PEM)"
    )
    parser.add_argument(
        "--web-origin",
        action="append",
        default=[],
        metavar="ORIGIN",
        help=f"also accept WebSocket/POST requests from ORIGIN (e.g. behind a proxy); "
        f"{listen_option}'s own origin is always accepted",
    )


def register(sub: Any) -> None:
    web = sub.add_parser(
        "web", help="serve recordings (and, with --control, live consoles) to a browser"
    )
    web.add_argument("--root", type=directory(), default=Path("recordings"), help="recordings root")
    web.add_argument(
        "--listen",
        default=DEFAULT_LISTEN,
        metavar="ADDR:PORT",
        help=f"where to listen (default {DEFAULT_LISTEN}; non-loopback needs TLS)",
    )
    web.add_argument(
        "--control",
        type=existing_path(),
        metavar="SOCKET",
        help="control socket of a running 'solcap serve': show its live consoles too",
    )
    add_web_options(web, listen_option="--listen")
    web.set_defaults(func=cmd_web)


def check_web(args: argparse.Namespace, listen: str, root: Path, option: str = "--web") -> None:
    """Refuse a bad address, TLS pair or Origin before anything is opened (exit 2, one line)."""
    from solcap.web import auth

    host, _ = auth.parse_listen(listen, option)
    auth.check_tls(host, args.tls_cert, args.tls_key, option)
    for origin in args.web_origin:
        if not origin.startswith(("http://", "https://")) or origin.endswith("/"):
            raise UsageError(f"--web-origin {origin!r}: expected scheme://host[:port]")
    if args.token_file is not None:
        auth.load_token_file(args.token_file)


def start_web(
    args: argparse.Namespace,
    listen: str,
    root: Path,
    out: TextIO,
    *,
    control: Path | None = None,
    option: str = "--web",
) -> Any:
    """Check the options, listen, print the URLs; returns the running WebServer."""
    from solcap.web import auth
    from solcap.web.app import WebServer
    from solcap.web.catalog import Catalog
    from solcap.web.live import LiveLink

    host, port = auth.parse_listen(listen, option)
    auth.check_tls(host, args.tls_cert, args.tls_key, option)
    for origin in args.web_origin:
        if not origin.startswith(("http://", "https://")) or origin.endswith("/"):
            raise UsageError(f"--web-origin {origin!r}: expected scheme://host[:port]")
    if not root.is_dir():
        raise UsageError(f"--root {root}: not a directory")
    tokens = auth.load_token_file(args.token_file) if args.token_file else auth.Tokens.fresh()
    tls = (args.tls_cert, args.tls_key) if args.tls_cert else None
    server = WebServer(
        Catalog(root),
        tokens,
        host=host,
        port=port,
        tls=tls,
        origins=frozenset(args.web_origin),
        live_link=LiveLink(control) if control is not None else None,
    ).start()
    if args.token_file:
        print(f"web: {server.url()} (tokens in {args.token_file})", file=out, flush=True)
    else:
        print(f"web: read-only  {server.url(tokens.read)}", file=out, flush=True)
        print(f"web: read-write {server.url(tokens.write)}", file=out, flush=True)
    return server


def cmd_web(args: argparse.Namespace, out: TextIO) -> int:
    if args.control is not None and not args.control.exists():
        raise UsageError(f"--control {args.control}: no such socket (is solcap serve running?)")
    server = start_web(args, args.listen, args.root, out, control=args.control, option="--listen")
    try:
        threading.Event().wait()  # until SIGINT / SIGTERM unwinds us
    finally:
        server.stop()
    return ExitStatus.OK
