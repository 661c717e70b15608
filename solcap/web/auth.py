"""Who may look and who may type: tokens with read and write scopes, Origin checks, TLS rules.

A console shows root prompts and BMC banners, and a keystroke can reboot a host, so nothing is
served without a token. There are two: the *read* token opens every page and the live streams;
the *write* token also lets a browser type into a console (the server must still grant the
write side, as for ``solcap console``). Tokens are random (``secrets.token_urlsafe``), compared
in constant time, and reach the server in one of three ways:

* ``?token=…`` in the URL solcap prints: answered with a redirect that sets an HttpOnly,
  SameSite=Strict cookie and drops the token from the address bar (and so from history and
  ``Referer``);
* the cookie itself, on every later request and on the WebSocket upgrade;
* ``Authorization: Bearer …`` for scripts.

A missing or wrong token is 401; a read token where writing is asked is 403. A WebSocket
upgrade or a state-changing request whose ``Origin`` is not this server's own (or one named
with ``--web-origin``) is 403: a page on another site cannot drive a console through the
operator's browser. Loopback listeners may be plain HTTP; any other address needs a
certificate and key, refused before anything listens.
"""

from __future__ import annotations

import enum
import hmac
import ipaddress
import os
import secrets
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from solcap.errors import ConfigError, UsageError

#: Query parameter that carries a token in the printed URL.
QUERY = "token"


class Scope(enum.IntEnum):
    """What a token allows; a higher scope includes the lower ones."""

    NONE = 0
    READ = 1
    WRITE = 2


@dataclass(frozen=True)
class Tokens:
    """The server's two secrets. ``write`` also reads."""

    read: str
    write: str

    @classmethod
    def fresh(cls) -> Tokens:
        return cls(secrets.token_urlsafe(24), secrets.token_urlsafe(24))

    def scope_of(self, offered: str | None) -> Scope:
        """The scope ``offered`` grants, comparing in constant time (no timing oracle)."""
        if not offered:
            return Scope.NONE
        given = offered.encode()
        if hmac.compare_digest(given, self.write.encode()):
            return Scope.WRITE
        if hmac.compare_digest(given, self.read.encode()):
            return Scope.READ
        return Scope.NONE


def load_token_file(path: Path) -> Tokens:
    """Tokens from ``path`` (lines ``read TOKEN`` and ``write TOKEN``), making it if absent.

    An existing file must be a regular file of ours that nobody else can read (0600 or
    stricter): a token others can read is no secret. A new one is created 0600 with ``O_EXCL``.
    """
    shown = str(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return _create_token_file(path)
    except OSError as exc:
        raise UsageError(f"--token-file {shown}: cannot open: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise UsageError(f"--token-file {shown}: not a regular file")
        if info.st_mode & 0o077:
            raise UsageError(
                f"--token-file {shown}: mode {stat.S_IMODE(info.st_mode):04o} lets others read "
                "it; chmod 600 it"
            )
        if info.st_uid != os.getuid():
            raise UsageError(f"--token-file {shown}: owned by uid {info.st_uid}, not by us")
        data = handle.read(4097)
    if len(data) > 4096:
        raise ConfigError(shown, "larger than 4096 bytes; expected two lines")
    found: dict[str, str] = {}
    for number, line in enumerate(data.decode("utf-8", "replace").splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parts = line.split()
        if len(parts) != 2 or parts[0] not in ("read", "write"):
            raise ConfigError(shown, "expected 'read TOKEN' or 'write TOKEN'", line=number)
        if len(parts[1]) < 16:
            raise ConfigError(shown, "token shorter than 16 characters", line=number)
        found[parts[0]] = parts[1]
    for scope in ("read", "write"):
        if scope not in found:
            raise ConfigError(shown, f"no '{scope} TOKEN' line")
    if found["read"] == found["write"]:
        raise ConfigError(shown, "the read and write tokens are the same")
    return Tokens(found["read"], found["write"])


def _create_token_file(path: Path) -> Tokens:
    tokens = Tokens.fresh()
    body = f"read {tokens.read}\nwrite {tokens.write}\n".encode()
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(path, flags, 0o600)
    except OSError as exc:
        raise UsageError(f"--token-file {path}: cannot create: {exc.strerror}") from None
    with os.fdopen(fd, "wb") as handle:
        handle.write(body)
    return tokens


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and ``localhost``: the only places plain HTTP may listen."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_listen(text: str, option: str = "--web") -> tuple[str, int]:
    """``ADDR:PORT`` (``[::1]:PORT`` for IPv6) into its parts; UsageError naming ``option``."""
    host, sep, port_text = text.rpartition(":")
    if not sep or not host:
        raise UsageError(f"{option} {text!r}: expected ADDR:PORT, e.g. 127.0.0.1:8080")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise UsageError(f"{option} {text!r}: port must be a number 0..65535")
    if host != "localhost":
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise UsageError(f"{option} {text!r}: {host!r} is not an IP address") from None
    return host, int(port_text)


def check_tls(host: str, cert: Path | None, key: Path | None, option: str = "--web") -> None:
    """Refuse a non-loopback listener without TLS, and half a TLS configuration."""
    if (cert is None) != (key is None):
        raise UsageError("--tls-cert and --tls-key go together: give both or neither")
    if cert is None and not is_loopback(host):
        raise UsageError(
            f"{option} {host}: not a loopback address; serving consoles beyond this machine "
            "needs TLS (--tls-cert FILE --tls-key FILE)"
        )
    for name, path in (("--tls-cert", cert), ("--tls-key", key)):
        if path is not None and not path.is_file():
            raise UsageError(f"{name} {path}: no such file")


def cookie_name(port: int) -> str:
    """Cookies ignore ports: two servers on one machine must not overwrite each other's."""
    return f"solcap_token_{port}"


@dataclass(frozen=True)
class Policy:
    """How requests are let in: the tokens, the cookie name and the Origins accepted."""

    tokens: Tokens
    cookie: str
    secure: bool
    extra_origins: frozenset[str] = frozenset()

    def offered(self, request: web.Request) -> str | None:
        header = request.headers.get("Authorization", "")
        if header.startswith("Bearer "):
            return header[len("Bearer ") :].strip()
        query = request.query.get(QUERY)
        if query:
            return query
        return request.cookies.get(self.cookie)

    def origin_ok(self, request: web.Request) -> bool:
        """A browser's ``Origin`` must be this server as the browser reached it (or allowed).

        No ``Origin`` at all means not a browser (curl, a script): the token alone decides.
        """
        origin = request.headers.get("Origin")
        if origin is None:
            return True
        own = f"{request.scheme}://{request.host}"
        return origin == own or origin in self.extra_origins


#: Where the middleware leaves the scope it granted.
SCOPE: web.RequestKey[Scope] = web.RequestKey("solcap_scope", Scope)


def scope(request: web.Request) -> Scope:
    """The scope the middleware granted this request."""
    value = request.get(SCOPE)
    return value if isinstance(value, Scope) else Scope.NONE


def require_write(request: web.Request) -> None:
    """403 unless the request carries the write token."""
    if scope(request) < Scope.WRITE:
        raise web.HTTPForbidden(text="this needs the write token (the read token only looks)\n")


#: Paths served without a token: the static files hold no data (xterm.js, CSS, the page script).
PUBLIC_PREFIXES: tuple[str, ...] = ("/static/",)


def middleware(policy: Policy, public: Iterable[str] = PUBLIC_PREFIXES) -> Middleware:
    """The aiohttp middleware enforcing :class:`Policy` on every request."""
    prefixes = tuple(public)

    @web.middleware
    async def check(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith(prefixes):
            return await handler(request)
        offered = policy.offered(request)
        granted = policy.tokens.scope_of(offered)
        if granted is Scope.NONE:
            raise web.HTTPUnauthorized(
                text="a token is needed: open the URL solcap printed at start-up\n",
                headers={"WWW-Authenticate": 'Bearer realm="solcap"'},
            )
        upgrade = request.headers.get("Upgrade", "").lower() == "websocket"
        if (upgrade or request.method not in ("GET", "HEAD")) and not policy.origin_ok(request):
            raise web.HTTPForbidden(text="Origin not allowed\n")
        if request.query.get(QUERY) and request.method == "GET" and not upgrade:
            # Trade the URL token for a cookie and take it out of the address bar.
            query = {k: v for k, v in request.query.items() if k != QUERY}
            target = request.rel_url.with_query(query)
            redirect = web.HTTPSeeOther(location=str(target))
            redirect.set_cookie(
                policy.cookie,
                offered or "",
                httponly=True,
                samesite="Strict",
                secure=policy.secure,
                path="/",
            )
            raise redirect
        request[SCOPE] = granted
        response = await handler(request)
        if response.prepared:
            return response  # a WebSocket or a stream: its headers are gone already
        response.headers.setdefault("Cache-Control", "no-store")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        response.headers.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
            "connect-src 'self' ws: wss:; frame-ancestors 'none'",
        )
        return response

    return check
