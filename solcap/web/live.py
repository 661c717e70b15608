"""Live consoles in the browser: the web view as one more client of ``solcap serve``.

Each browser console page opens a WebSocket; the web server opens, for it, one connection to
the serve control socket (docs/serve.md) and attaches there with ``who = "web <peer> (<scope>)"``,
so serve records the attach and every keystroke's source in the host's log exactly as it does
for ``solcap console``. The write side follows the same rules too: a page attaches as a spy
unless it asks to write (``mode=write``, or ``mode=force`` to take the write side from
another client), which needs the write token (403 otherwise) and the server's grant.

Frames from serve are relayed as they come: the screen first (``S``), then the stream (``D``)
as binary WebSocket messages, notices (``J``) as text. Between the two sockets sits a bounded
per-browser buffer (:data:`CLIENT_BUFFER`): reading from serve never waits for the browser, so
a stalled tab never slows the capture (serve's own per-client queue never fills) nor any other
viewer; a browser that falls that far behind is told so and disconnected, and its page
reconnects, which attaches afresh and so starts again from the current screen.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import struct
import time
from pathlib import Path
from typing import Any, Final

from aiohttp import WSMsgType, web

from solcap.web import auth, pages
from solcap.web.pages import esc, link, q

#: Bytes of console output one browser may have waiting before it is resynchronised.
CLIENT_BUFFER: Final = 1024 * 1024
#: The serve control protocol's frame header: type byte, big-endian length.
_HEADER: Final = struct.Struct("!cI")
_MAX_FRAME: Final = 16 * 1024 * 1024
#: Close code sent to a browser that fell behind (the page reconnects on it).
BEHIND: Final = 4000
#: Close code sent when serve's end of the relay went away (serve restarting, or the console
#: closed by a SIGHUP): RFC 6455's "service restart", on which the page reconnects too.
SERVE_GONE: Final = 1012


class LiveError(Exception):
    """The control socket could not be used (no server, refused, protocol error)."""


class LiveLink:
    """How the web view reaches ``solcap serve``: the path of its control socket."""

    def __init__(self, socket_path: Path) -> None:
        self.socket_path = socket_path

    async def _open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        try:
            return await asyncio.open_unix_connection(str(self.socket_path))
        except OSError as exc:
            raise LiveError(f"{self.socket_path}: {exc.strerror or exc}") from None

    async def status(self) -> dict[str, Any]:
        reader, writer = await self._open()
        try:
            writer.write(_json_frame({"op": "status"}))
            await writer.drain()
            frame = await asyncio.wait_for(read_frame(reader), 10)
        finally:
            writer.close()
        if frame is None or frame[0] != b"J":
            raise LiveError("the server closed without a status reply")
        reply = _decode(frame[1])
        if not reply.get("ok"):
            raise LiveError(str(reply.get("error", "status refused")))
        return reply

    async def attach(
        self, host: str, mode: str, who: str
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, dict[str, Any]]:
        reader, writer = await self._open()
        try:
            writer.write(_json_frame({"op": "attach", "host": host, "mode": mode, "who": who}))
            await writer.drain()
            frame = await asyncio.wait_for(read_frame(reader), 30)
        except BaseException:
            writer.close()
            raise
        if frame is None or frame[0] != b"J":
            writer.close()
            raise LiveError("the server closed without an attach reply")
        reply = _decode(frame[1])
        if not reply.get("ok"):
            writer.close()
        return reader, writer, reply


def _json_frame(value: dict[str, Any]) -> bytes:
    payload = json.dumps(value, separators=(",", ":")).encode()
    return _HEADER.pack(b"J", len(payload)) + payload


def _frame(kind: bytes, payload: bytes) -> bytes:
    return _HEADER.pack(kind, len(payload)) + payload


def _decode(payload: bytes) -> dict[str, Any]:
    try:
        value = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise LiveError(f"a J frame that is not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise LiveError("a J frame that is not a JSON object")
    return value


async def read_frame(reader: asyncio.StreamReader) -> tuple[bytes, bytes] | None:
    """The next frame from serve, or None at a clean end."""
    try:
        head = await reader.readexactly(_HEADER.size)
    except asyncio.IncompleteReadError as exc:
        if not exc.partial:
            return None
        raise LiveError("the connection ended inside a frame") from None
    kind, length = _HEADER.unpack(head)
    if length > _MAX_FRAME:
        raise LiveError(f"a frame of {length} bytes")
    try:
        payload = await reader.readexactly(length)
    except asyncio.IncompleteReadError:
        raise LiveError("the connection ended inside a frame") from None
    return kind, payload


LINK: web.AppKey[LiveLink] = web.AppKey("live_link", LiveLink)
#: The open browser sockets, closed (1001, going away) when the server shuts down.
SOCKETS: web.AppKey[set[web.WebSocketResponse]] = web.AppKey("live_sockets", set)


def _ago(when: object) -> str:
    if not isinstance(when, int | float):
        return "never"
    seconds = max(0.0, time.time() - float(when))
    if seconds < 120:
        return f"{seconds:.0f} s ago"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min ago"
    return f"{seconds / 3600:.1f} h ago"


async def consoles_table(link_: LiveLink) -> str:
    """Every console serve holds: state, last output, bytes, Xen input focus, panics, links."""
    try:
        status = await link_.status()
    except (TimeoutError, LiveError, OSError) as exc:
        return f'<p class="error">solcap serve is not answering: {esc(exc)}</p>'
    rows = []
    for item in status.get("hosts", []):
        if not isinstance(item, dict):
            continue
        host = str(item.get("host", "?"))
        state = str(item.get("state", "?"))
        detail = item.get("detail")
        panics = int(item.get("panics") or 0)
        clients = item.get("clients") or []
        rows.append(
            (
                link(f"/live/{q(host)}", host),
                f'<span class="state-{"up" if state == "up" else "down"}">{esc(state)}</span>'
                + (f"<br><small>{esc(detail)}</small>" if detail else ""),
                esc(_ago(item.get("last_output"))),
                esc(pages.human_size(int(item.get("bytes") or 0))),
                esc(item.get("input_focus") or "-"),
                f'<span class="panic">{panics}</span>' if panics else "0",
                esc(item.get("writer") or "-") + f" / {len(clients)}",
                link(f"/live/{q(host)}", "console")
                + " · "
                + link(f"/recordings/{q(host)}", "recordings"),
            )
        )
    if not rows:
        return "<p>serve holds no consoles.</p>"
    headers = ("host", "state", "last output", "bytes", "Xen input", "panics", "writer / clients",
               "links")  # fmt: skip
    return pages.table(headers, rows, cls="consoles", raw=True)


async def consoles_fragment(request: web.Request) -> web.Response:
    """The start page's table alone, which start.js refreshes every few seconds."""
    html = await consoles_table(request.app[LINK])
    return web.Response(text=html, content_type="text/html")


async def status_json(request: web.Request) -> web.Response:
    try:
        status = await request.app[LINK].status()
    except (TimeoutError, LiveError, OSError) as exc:
        raise web.HTTPBadGateway(text=f"solcap serve is not answering: {exc}\n") from None
    return web.json_response({"hosts": status.get("hosts", [])})


async def console_page(request: web.Request) -> web.Response:
    host = request.match_info["host"]
    can_write = auth.scope(request) >= auth.Scope.WRITE
    buttons = (
        '<button id="write">type (take the write side)</button>'
        '<button id="force">force (take it from the current writer)</button>'
        '<button id="spy">stop typing</button>'
        if can_write
        else "<span>read-only token: watching only</span>"
    )
    body = f"""<div class="controls"><span id="status">connecting…</span>{buttons}
{link(f"/recordings/{q(host)}", "recordings")}</div>
<p id="notice" class="notice" hidden></p>
<div id="term" class="term"></div>"""
    return pages.page(
        f"{host}: live console",
        body,
        crumbs=[(f"/live/{q(host)}", host)],
        scripts=("xterm.js", "addon-fit.js", "live.js"),
        styles=("xterm.css",),
        data={"ws": f"/live/{q(host)}/ws", "write": "1" if can_write else "0"},
    )


async def console_ws(request: web.Request) -> web.StreamResponse:
    """One browser's live console: attach to serve, relay both ways through a bounded buffer."""
    host = request.match_info["host"]
    mode = request.query.get("mode", "spy")
    if mode not in ("spy", "auto", "write", "force"):
        raise web.HTTPBadRequest(text="mode must be spy, auto, write or force\n")
    granted = auth.scope(request)
    if mode != "spy":
        auth.require_write(request)  # 403 before the upgrade: a read token never types
    peer = request.remote or "?"
    who = f"web {peer} ({'write' if granted >= auth.Scope.WRITE else 'read'} token)"
    try:
        reader, writer, reply = await request.app[LINK].attach(host, mode, who)
    except (TimeoutError, LiveError, OSError) as exc:
        raise web.HTTPBadGateway(text=f"solcap serve: {exc}\n") from None
    if not reply.get("ok"):
        kind = reply.get("kind")
        text = f"{reply.get('error', 'refused')}\n"
        if kind == "busy":
            raise web.HTTPConflict(text=text)
        if kind == "usage":
            raise web.HTTPNotFound(text=text)
        raise web.HTTPForbidden(text=text)
    ws = web.WebSocketResponse(heartbeat=30, max_msg_size=64 * 1024)
    await ws.prepare(request)
    role = str(reply.get("role", "spy"))
    await ws.send_str(
        json.dumps({"event": "attached", "role": role, "notice": reply.get("notice"),
                    "state": reply.get("state"), "host": host})
    )  # fmt: skip
    relay = _Relay(ws, reader, writer, role=role, may_write=granted >= auth.Scope.WRITE)
    request.app[SOCKETS].add(ws)
    try:
        await relay.run()
    finally:
        request.app[SOCKETS].discard(ws)
    return ws


async def _close_sockets(app: web.Application) -> None:
    sockets: set[web.WebSocketResponse] = app[SOCKETS]
    for ws in list(sockets):
        with contextlib.suppress(Exception):
            await asyncio.wait_for(ws.close(code=1001, message=b"server shutting down"), 2)


class _Relay:
    """serve → bounded buffer → browser, and browser keystrokes → serve (writer only)."""

    def __init__(
        self,
        ws: web.WebSocketResponse,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        role: str,
        may_write: bool,
    ) -> None:
        self.ws = ws
        self.reader = reader
        self.writer = writer
        self.role = role
        self.may_write = may_write
        self.queue: asyncio.Queue[tuple[bytes, bytes] | None] = asyncio.Queue()
        self.queued = 0
        self.behind = False
        self.serve_gone = False

    async def run(self) -> None:
        tasks = [
            asyncio.create_task(self._from_serve()),
            asyncio.create_task(self._to_browser()),
            asyncio.create_task(self._from_browser()),
        ]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            self.writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.writer.wait_closed(), 2)
            if not self.ws.closed:
                code, message = 1000, b""
                if self.behind:
                    code, message = BEHIND, b"fell behind; reconnect for the current screen"
                elif self.serve_gone:
                    code, message = SERVE_GONE, b"solcap serve went away; reconnect"
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(self.ws.close(code=code, message=message), 2)

    async def _from_serve(self) -> None:
        """Never waits for the browser: over :data:`CLIENT_BUFFER` queued, the browser goes."""
        while True:
            try:
                frame = await read_frame(self.reader)
            except (LiveError, OSError):
                frame = None  # serve died mid-frame: the same as a clean end for the page
            if frame is None:
                self.serve_gone = True
                self.queue.put_nowait(None)
                return
            kind, payload = frame
            if kind == b"J":
                notice = _decode(payload)
                if notice.get("event") == "forced":
                    self.role = "spy"
            self.queued += len(payload)
            if self.queued > CLIENT_BUFFER:
                self.behind = True
                return
            self.queue.put_nowait(frame)

    async def _to_browser(self) -> None:
        while True:
            item = await self.queue.get()
            if item is None:
                await self.ws.send_str(json.dumps({"event": "state", "state": "closed"}))
                return
            kind, payload = item
            self.queued -= len(payload)
            if kind == b"J":
                await self.ws.send_str(payload.decode("utf-8", "replace"))
            else:
                await self.ws.send_bytes(payload)

    async def _from_browser(self) -> None:
        warned = False
        async for message in self.ws:
            if message.type == WSMsgType.TEXT:
                data = message.data.encode("utf-8")
            elif message.type == WSMsgType.BINARY:
                data = bytes(message.data)
            else:
                return
            if not self.may_write or self.role != "writer":
                if not warned:
                    warned = True
                    await self.ws.send_str(
                        json.dumps({"event": "notice", "text": "read-only: input not sent"})
                    )
                continue
            self.writer.write(_frame(b"I", data))
            await self.writer.drain()


def add_routes(app: web.Application) -> None:
    app[SOCKETS] = set()
    app.on_shutdown.append(_close_sockets)
    app.router.add_get("/live/{host}", console_page)
    app.router.add_get("/live/{host}/ws", console_ws)
    app.router.add_get("/api/consoles", status_json)
    app.router.add_get("/fragment/consoles", consoles_fragment)
