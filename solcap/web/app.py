"""The aiohttp application: routes, the token middleware, static files, and running it.

:func:`make_app` builds the application from its parts (a :class:`~.catalog.Catalog` of
recordings, an auth :class:`~.auth.Policy`, and optionally a live link to ``solcap serve``);
:class:`WebServer` runs it on its own event loop in a thread, so ``solcap serve`` (whose
consoles live in threads) and the stand-alone ``solcap web`` host it the same way, and a test
can start and stop it in-process.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import threading
from importlib import resources
from pathlib import Path

from aiohttp import web

from solcap.errors import UsageError
from solcap.web import auth, live, pages, recviews, search
from solcap.web.catalog import Catalog, NotFound
from solcap.web.pages import esc, link, q

#: Files shipped in solcap/web/static (xterm.js and its fit addon from npm, with licences).
STATIC = resources.files("solcap.web") / "static"


async def start_page(request: web.Request) -> web.Response:
    catalog = request.app[recviews.CATALOG]
    link_ = request.app.get(live.LINK)
    body = ""
    scripts: tuple[str, ...] = ()
    if link_ is not None:
        body += "<h2>Consoles</h2>" + await live.consoles_table(link_)
        scripts = ("start.js",)
    body += "<h2>Recordings</h2>" + await recviews._in_thread(recviews.hosts_table, catalog)
    return pages.page("Consoles and recordings", body, scripts=scripts)


def _hits_html(hits: list[search.Hit], more: bool) -> str:
    if not hits:
        return "<p>No match.</p>"
    rows = []
    for hit in hits:
        target = f"/recordings/{q(hit.host)}/{q(hit.recording)}?t={max(0.0, hit.seconds):.6f}"
        context = (
            f"<code>{esc(pages.shown_bytes(hit.before))}<mark>"
            f"{esc(pages.shown_bytes(hit.match))}</mark>{esc(pages.shown_bytes(hit.after))}</code>"
        )
        rows.append(
            (
                link(f"/recordings/{q(hit.host)}", hit.host),
                link(target, hit.recording),
                esc(hit.when or "-"),
                esc(f"{hit.seconds:.3f} s"),
                esc(hit.offset),
                context,
            )
        )
    note = f"<p>only the first {len(hits)} hits are shown</p>" if more else ""
    return (
        pages.table(("host", "recording", "time", "into", "offset", "bytes"), rows, cls="hit",
                    raw=True)
        + note
    )  # fmt: skip


async def search_page(request: web.Request) -> web.Response:
    text = request.query.get("q", "")
    host = request.query.get("host") or None
    catalog = request.app[recviews.CATALOG]
    form = f"""<form action="/search" method="get"><input name="q" size="50" value="{esc(text)}"
aria-label="pattern"> <input name="host" size="16" value="{esc(host or "")}"
placeholder="all hosts" aria-label="host"> <button>search</button></form>
<p>A Python regular expression over the exact bytes of every console.raw (so <code>\\x1b</code>
finds escapes and <code>(?i)</code> ignores case).</p>"""
    result = ""
    if text:
        try:
            pattern = search.compile_pattern(text)
            hits, more = await recviews._in_thread(
                lambda: search.search(catalog, pattern, host=host)
            )
        except NotFound:
            result = '<p class="error">no such host</p>'
        except UsageError as exc:
            result = f'<p class="error">{esc(exc.one_line())}</p>'
        else:
            result = f'<p id="count">{len(hits)}{"+" if more else ""} hits</p>' + _hits_html(
                hits, more
            )
    return pages.page("Search recordings", form + result, crumbs=[("/search", "search")])


async def _static(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    if "/" in name or name.startswith("."):
        raise web.HTTPNotFound()
    item = STATIC / name
    if not item.is_file():
        raise web.HTTPNotFound()
    types = {
        ".js": "text/javascript",
        ".css": "text/css",
        ".png": "image/png",
    }
    suffix = Path(name).suffix
    response = web.Response(
        body=item.read_bytes(), content_type=types.get(suffix, "text/plain"), charset=None
    )
    response.headers["Cache-Control"] = "max-age=3600"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def make_app(
    catalog: Catalog, policy: auth.Policy, live_link: live.LiveLink | None = None
) -> web.Application:
    app = web.Application(middlewares=[auth.middleware(policy)], client_max_size=64 * 1024)
    app[recviews.CATALOG] = catalog
    if live_link is not None:
        app[live.LINK] = live_link
        live.add_routes(app)
    app.router.add_get("/", start_page)
    app.router.add_get("/search", search_page)
    app.router.add_get("/static/{name}", _static)
    recviews.add_routes(app)
    return app


class WebServer:
    """The web view on ``host:port``, served by an event loop in a thread of its own."""

    def __init__(
        self,
        catalog: Catalog,
        tokens: auth.Tokens,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        tls: tuple[Path, Path] | None = None,
        origins: frozenset[str] = frozenset(),
        live_link: live.LiveLink | None = None,
    ) -> None:
        auth.check_tls(host, tls[0] if tls else None, tls[1] if tls else None)
        self.host = host
        self.port = port
        self.tokens = tokens
        self._ssl: ssl.SSLContext | None = None
        if tls is not None:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            try:
                context.load_cert_chain(str(tls[0]), str(tls[1]))
            except (OSError, ssl.SSLError) as exc:
                raise UsageError(f"--tls-cert/--tls-key: cannot load: {exc}") from None
            self._ssl = context
        self._catalog = catalog
        self._origins = origins
        self._live = live_link
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="solcap-web")
        self._runner: web.AppRunner | None = None

    @property
    def scheme(self) -> str:
        return "https" if self._ssl is not None else "http"

    def url(self, token: str | None = None) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        base = f"{self.scheme}://{host}:{self.port}/"
        return f"{base}?{auth.QUERY}={token}" if token else base

    def start(self) -> WebServer:
        """Listen (a busy port is a one-line UsageError) and serve until :meth:`stop`."""
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self.port))
            sock.listen(128)
        except OSError as exc:
            sock.close()
            raise UsageError(
                f"--web {self.host}:{self.port}: cannot listen: {exc.strerror or exc}"
            ) from None
        self.port = int(sock.getsockname()[1])
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(self._start(sock), self._loop)
        try:
            future.result(timeout=30)
        except BaseException:
            self.stop()
            raise
        return self

    async def _start(self, sock: socket.socket) -> None:
        self._runner = web.AppRunner(self._build(), access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.SockSite(self._runner, sock, ssl_context=self._ssl)
        await site.start()

    def _build(self) -> web.Application:
        policy = auth.Policy(
            tokens=self.tokens,
            cookie=auth.cookie_name(self.port),
            secure=self._ssl is not None,
            extra_origins=self._origins,
        )
        return make_app(self._catalog, policy, self._live)

    def stop(self) -> None:
        if self._runner is not None and self._thread.is_alive():
            future = asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop)
            # Shutting down anyway: a stuck client must not hang the exit.
            with contextlib.suppress(Exception):
                future.result(timeout=10)
            self._runner = None
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
        if not self._loop.is_running():
            self._loop.close()
