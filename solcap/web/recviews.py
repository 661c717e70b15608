"""Pages and downloads for recordings on disk: lists, one recording, key dumps, replay data.

Everything here reads files only, so it works the same under ``solcap serve --web`` and the
stand-alone ``solcap web --root DIR``. Work that touches the disk (hashing console.raw, parsing
a dump, writing an asciicast) runs in a worker thread so a large recording never stalls the
event loop that also carries live consoles.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from aiohttp import web

from solcap.capture import recordings
from solcap.errors import SolcapError
from solcap.web import pages
from solcap.web.catalog import Catalog, Clock, Entry, NotFound, events
from solcap.web.pages import esc, human_size, link, q
from solcap.xen.parsers import PARSERS, parse_dump

T = TypeVar("T")
CATALOG: web.AppKey[Catalog] = web.AppKey("catalog", Catalog)


async def _in_thread(func: Callable[..., T], *args: Any) -> T:
    return await asyncio.get_running_loop().run_in_executor(None, func, *args)


def _entry(request: web.Request) -> Entry:
    try:
        return request.app[CATALOG].entry(request.match_info["host"], request.match_info["rec"])
    except NotFound:
        raise web.HTTPNotFound(text="no such recording\n") from None


def rec_url(entry: Entry, tail: str = "") -> str:
    return f"/recordings/{q(entry.host)}/{q(entry.name)}{tail}"


def hosts_table(catalog: Catalog) -> str:
    """Every host with recordings, for the start page and /recordings."""
    rows = []
    for host in catalog.hosts():
        entries = catalog.entries(host)
        newest = entries[0].started if entries else ""
        rows.append((link(f"/recordings/{q(host)}", host), str(len(entries)), esc(newest or "-")))
    if not rows:
        return f"<p>No recordings under <code>{esc(catalog.root)}</code> yet.</p>"
    return pages.table(("host", "recordings", "newest"), rows, cls="hosts", raw=True)


async def recordings_index(request: web.Request) -> web.Response:
    catalog = request.app[CATALOG]
    body = await _in_thread(hosts_table, catalog)
    return pages.page("Recordings", body, crumbs=[("/recordings", "recordings")])


async def host_recordings(request: web.Request) -> web.Response:
    host = request.match_info["host"]
    try:
        entries = await _in_thread(request.app[CATALOG].entries, host)
    except NotFound:
        raise web.HTTPNotFound(text="no such host\n") from None
    rows = []
    for entry in entries:
        keys = " ".join(
            link(rec_url(entry, f"/keys/{q(str(s.get('name')))}"), str(s.get("name")))
            for s in entry.meta.get("segments", [])
            if isinstance(s, dict)
        )
        state = "finished" if entry.meta.get("finished") else "open or unfinished"
        rows.append(
            (
                link(rec_url(entry), entry.started or entry.name),
                esc(entry.label),
                esc(human_size(entry.raw_bytes)),
                esc(state),
                keys or "-",
            )
        )
    body = pages.table(("started", "label", "console.raw", "state", "keys"), rows, raw=True)
    body += f"""<form class="search" action="/search" method="get">
<input type="hidden" name="host" value="{esc(host)}">
<input name="q" placeholder="regex in {esc(host)}'s recordings" aria-label="search this host">
<button>search this host</button></form>"""
    crumbs = [("/recordings", "recordings"), (f"/recordings/{q(host)}", host)]
    return pages.page(f"Recordings of {host}", body, crumbs=crumbs)


def _integrity(info: recordings.RecordingInfo) -> str:
    if not info.finished:
        return "UNFINISHED: solcap did not close this recording (still capturing, or killed)"
    if not info.intact:
        return "CORRUPT: console.raw no longer matches the SHA-256 in meta.json"
    if info.meta.get("unwritten_bytes"):
        return f"INCOMPLETE: {info.meta['unwritten_bytes']} bytes received were not written"
    return "complete: console.raw matches meta.json"


def _event_row(entry: Entry, item: dict[str, Any]) -> tuple[str, ...]:
    fields = {k: v for k, v in item.items() if k not in ("time", "offset", "event")}
    offset = item.get("offset")
    at = (
        link(f"#at-{offset}", str(offset), data_offset=str(offset))
        if isinstance(offset, int)
        else "-"
    )
    detail = " ".join(f"{k}={json.dumps(v, default=str)}" for k, v in fields.items())
    return (esc(item.get("time", "")), at, esc(item.get("event", "")), esc(detail[:400]))


def _recording_body(entry: Entry) -> str:
    info = recordings.load(entry.path)
    meta = info.meta
    segments = [s for s in meta.get("segments", []) if isinstance(s, dict)]
    seg_rows = [
        (
            link(rec_url(entry, f"/keys/{q(str(s['name']))}"), str(s["name"])),
            esc(s["end"] - s["start"]),
            esc(s["start"]),
            esc("complete" if s.get("complete") else f"INCOMPLETE ({s.get('reason', '')})"),
        )
        for s in segments
    ]
    found, more = events(entry)
    event_rows = [_event_row(entry, item) for item in found]
    summary = pages.table(
        ("field", "value"),
        [
            ("host", esc(meta.get("host", entry.host))),
            ("label", esc(entry.label)),
            ("started", esc(meta.get("started", "?"))),
            ("ended", esc(meta.get("ended") or "-")),
            ("console.raw", esc(f"{info.raw_bytes} bytes, sha256 {info.raw_sha256}")),
            ("integrity", esc(_integrity(info))),
        ],
        cls="kv",
        raw=True,
    )
    downloads = " · ".join(
        (
            link(rec_url(entry, "/raw"), "console.raw", download=f"{entry.name}.raw"),
            link(rec_url(entry, "/asciicast"), "asciicast", download=f"{entry.name}.cast"),
            link(rec_url(entry, "/timing"), "console.timing", download=f"{entry.name}.timing"),
        )
    )
    player = """<section id="player"><div class="controls">
<button id="play">play</button><button id="pause">pause</button>
<label>speed <select id="speed"><option>0.5</option><option selected>1</option><option>2</option>
<option>4</option><option>16</option><option>64</option><option value="0">instant</option></select>
</label><label>idle gaps at most <select id="maxdelay"><option value="0.5">0.5 s</option>
<option value="2" selected>2 s</option><option value="1e9">as recorded</option></select></label>
<label>jump to <input id="jump" size="8" placeholder="seconds"></label><button id="go">go</button>
<span id="clock">0.000 s</span> / <span id="total">?</span></div>
<div id="term" class="term"></div></section>"""
    return (
        summary
        + f"<p>download: {downloads}</p>"
        + "<h2>Replay</h2>"
        + player
        + "<h2>Key dumps</h2>"
        + (pages.table(("key", "bytes", "at", "state"), seg_rows, raw=True) if seg_rows else "")
        + ("" if seg_rows else "<p>none</p>")
        + "<h2>Events</h2>"
        + pages.table(("time", "offset", "event", "fields"), event_rows, cls="events", raw=True)
        + (f"<p>only the first {len(found)} events are shown</p>" if more else "")
    )


async def recording(request: web.Request) -> web.Response:
    entry = _entry(request)
    try:
        body = await _in_thread(_recording_body, entry)
    except SolcapError as exc:
        raise web.HTTPUnprocessableEntity(text=exc.one_line() + "\n") from None
    crumbs = [
        ("/recordings", "recordings"),
        (f"/recordings/{q(entry.host)}", entry.host),
        (rec_url(entry), entry.name),
    ]
    return pages.page(
        f"{entry.host} {entry.label} {entry.started}",
        body,
        crumbs=crumbs,
        scripts=("xterm.js", "addon-fit.js", "replay.js"),
        styles=("xterm.css",),
        data={"raw": rec_url(entry, "/raw"), "steps": rec_url(entry, "/steps")},
    )


def _file_response(entry: Entry, relative: str, content_type: str) -> web.StreamResponse:
    try:
        handle = recordings.open_inside(entry.path, relative)
    except (OSError, SolcapError):
        raise web.HTTPNotFound(text=f"no {relative} in this recording\n") from None
    with handle:
        data = handle.read()
    return web.Response(
        body=data,
        content_type=content_type,
        headers={"Content-Disposition": f'attachment; filename="{entry.name}-{relative}"'},
    )


async def raw(request: web.Request) -> web.StreamResponse:
    entry = _entry(request)
    return await _in_thread(_file_response, entry, "console.raw", "application/octet-stream")


async def timing(request: web.Request) -> web.StreamResponse:
    entry = _entry(request)
    return await _in_thread(_file_response, entry, "console.timing", "text/plain")


async def steps(request: web.Request) -> web.Response:
    """The timing as JSON ``{"steps": [[delay, count], …]}`` for the replay page."""
    entry = _entry(request)
    clock = await _in_thread(Clock.of, entry)
    return web.json_response({"steps": clock.steps, "bytes": entry.raw_bytes})


def _asciicast(entry: Entry) -> bytes:
    info = recordings.load(entry.path)
    with tempfile.TemporaryDirectory(prefix="solcap-web-") as scratch:
        target = Path(scratch) / "out.cast"
        recordings.export_asciicast(info, target)
        return target.read_bytes()


async def asciicast(request: web.Request) -> web.Response:
    entry = _entry(request)
    try:
        data = await _in_thread(_asciicast, entry)
    except SolcapError as exc:
        raise web.HTTPUnprocessableEntity(text=exc.one_line() + "\n") from None
    return web.Response(
        body=data,
        content_type="application/x-asciicast",
        headers={"Content-Disposition": f'attachment; filename="{entry.name}.cast"'},
    )


def _parser_key(name: str, stored: dict[str, Any] | None) -> str | None:
    """The debug key whose parser reads this dump: a repeated press (``q-2``) is still q's."""
    if stored is not None and isinstance(stored.get("key"), str):
        return str(stored["key"])
    if name == "star":
        return "*"
    return name if name in PARSERS else None


def _key_body(entry: Entry, name: str) -> tuple[str, str]:
    info = recordings.load(entry.path)
    segment = info.segment(name)
    data = info.read(segment["file"])
    stored: dict[str, Any] | None = None
    json_name = segment["file"].rsplit(".", 1)[0] + ".json"
    if info.has(json_name):
        try:
            loaded = json.loads(info.read(json_name, 64 << 20))
            stored = loaded if isinstance(loaded, dict) else None
        except ValueError:
            stored = None
    key = _parser_key(str(segment.get("key") or segment["name"]), stored)
    parsed = parse_dump(key, data) if key is not None else None
    if parsed is None and stored is not None:
        parsed, origin = stored, f"from {json_name} (written at capture time)"
    else:
        origin = f"parsed now by solcap.xen.parsers (key {key!r})"
    state = "complete" if segment.get("complete") else f"INCOMPLETE ({segment.get('reason')})"
    head = pages.table(
        ("field", "value"),
        [
            ("key", esc(name)),
            ("bytes", esc(f"{len(data)} at offset {segment['start']} of console.raw")),
            ("sha256", esc(segment["sha256"])),
            ("state", esc(state)),
        ],
        cls="kv",
        raw=True,
    )
    if parsed is None:
        table_html = "<p>No parser for this key; the exact bytes are below.</p>"
    else:
        table_html = f'<p class="origin">{esc(origin)}</p><div id="parsed">' + (
            pages.value_html(dict(parsed)) + "</div>"
        )
    dump = f'<pre class="dump">{esc(pages.text_of(data))}</pre>'
    download = link(rec_url(entry, f"/keys/{q(name)}/raw"), "exact bytes", download=f"{name}.txt")
    body = (
        head + f"<p>download: {download}</p><h2>Parsed</h2>" + table_html + "<h2>Dump</h2>" + dump
    )
    return body, segment["file"]


async def key_dump(request: web.Request) -> web.Response:
    entry = _entry(request)
    name = request.match_info["key"]
    try:
        body, _ = await _in_thread(_key_body, entry, name)
    except SolcapError as exc:
        raise web.HTTPNotFound(text=exc.one_line() + "\n") from None
    crumbs = [
        ("/recordings", "recordings"),
        (f"/recordings/{q(entry.host)}", entry.host),
        (rec_url(entry), entry.name),
        (rec_url(entry, f"/keys/{q(name)}"), f"key {name}"),
    ]
    return pages.page(f"{entry.host}: key {name}", body, crumbs=crumbs)


def _key_bytes(entry: Entry, name: str) -> bytes:
    info = recordings.load(entry.path)
    return info.read(info.segment(name)["file"])


async def key_raw(request: web.Request) -> web.Response:
    entry = _entry(request)
    name = request.match_info["key"]
    try:
        data = await _in_thread(_key_bytes, entry, name)
    except SolcapError as exc:
        raise web.HTTPNotFound(text=exc.one_line() + "\n") from None
    return web.Response(body=data, content_type="application/octet-stream")


def add_routes(app: web.Application) -> None:
    app.router.add_get("/recordings", recordings_index)
    app.router.add_get("/recordings/{host}", host_recordings)
    app.router.add_get("/recordings/{host}/{rec}", recording)
    app.router.add_get("/recordings/{host}/{rec}/raw", raw)
    app.router.add_get("/recordings/{host}/{rec}/timing", timing)
    app.router.add_get("/recordings/{host}/{rec}/steps", steps)
    app.router.add_get("/recordings/{host}/{rec}/asciicast", asciicast)
    app.router.add_get("/recordings/{host}/{rec}/keys/{key}", key_dump)
    app.router.add_get("/recordings/{host}/{rec}/keys/{key}/raw", key_raw)
