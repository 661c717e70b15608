"""HTML for the web view: a page frame and the few building blocks every page uses.

Plain server-side HTML, escaped at one place (:func:`esc`): console output is attacker-
controlled text (anything on the serial line), so nothing from a recording or a console reaches
the page unescaped, and the Content-Security-Policy (see :mod:`.auth`) forbids inline script.
No template engine: the pages are small and a dependency would buy nothing.
"""

from __future__ import annotations

import html
import json
import re
import urllib.parse
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from aiohttp import web

#: Escape sequences (CSI, OSC, two-byte) stripped when console bytes are shown as text.
_ESCAPES = re.compile(rb"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-_]")
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def q(value: str) -> str:
    """A path segment for a URL (host and recording names are plain already; this is belt)."""
    return urllib.parse.quote(value, safe="")


def text_of(data: bytes) -> str:
    """Console bytes as readable text: escapes dropped, CR LF folded, other controls shown."""
    text = _ESCAPES.sub(b"", data).replace(b"\r\n", b"\n").decode("utf-8", "replace")
    return _CONTROLS.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def shown_bytes(data: bytes) -> str:
    """Bytes for a search hit: printable ASCII as is, everything else as ``\\xNN``."""
    return "".join(
        chr(b) if 32 <= b < 127 else "\\n" if b == 10 else "\\r" if b == 13 else f"\\x{b:02x}"
        for b in data
    )


def human_size(count: int) -> str:
    size = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{count} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{count} B"


def table(
    headers: Sequence[str], rows: Iterable[Sequence[str]], *, cls: str = "", raw: bool = False
) -> str:
    """An HTML table; cells are escaped unless ``raw`` (then the caller escaped them)."""
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td>{c if raw else esc(c)}</td>" for c in row) + "</tr>" for row in rows
    )
    klass = f' class="{esc(cls)}"' if cls else ""
    return f"<table{klass}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def link(href: str, text: str, **attrs: str) -> str:
    extra = "".join(f' {esc(k.replace("_", "-"))}="{esc(v)}"' for k, v in attrs.items())
    return f'<a href="{esc(href)}"{extra}>{esc(text)}</a>'


def value_html(value: Any, depth: int = 0) -> str:
    """A parsed result (nested dicts and lists) as nested tables; scalars as text."""
    if depth > 6:
        return f"<code>{esc(json.dumps(value, default=str)[:2000])}</code>"
    if isinstance(value, Mapping):
        if not value:
            return "<em>none</em>"
        rows = [(esc(k), value_html(v, depth + 1)) for k, v in value.items()]
        return table(("field", "value"), rows, cls="kv", raw=True)
    if isinstance(value, list):
        if not value:
            return "<em>none</em>"
        if all(isinstance(item, Mapping) for item in value):
            columns: list[str] = []
            for item in value:
                for key in item:
                    if key not in columns:
                        columns.append(str(key))
            rows2 = [
                [value_html(item.get(c, ""), depth + 1) for c in columns] for item in value[:2000]
            ]
            more = f"<p>… {len(value) - 2000} more rows</p>" if len(value) > 2000 else ""
            return table(columns, rows2, cls="rows", raw=True) + more
        return "<br>".join(value_html(item, depth + 1) for item in value[:2000])
    if isinstance(value, bool):
        return "yes" if value else "no"
    return esc(value)


def page(
    title: str,
    body: str,
    *,
    crumbs: Sequence[tuple[str, str]] = (),
    scripts: Sequence[str] = (),
    styles: Sequence[str] = (),
    data: Mapping[str, str] | None = None,
) -> web.Response:
    """A whole page: header with breadcrumbs and search, the body, and the page's scripts.

    ``data`` becomes ``data-*`` attributes of ``<body>``: how a script learns its parameters
    without inline JavaScript.
    """
    nav = " / ".join([link("/", "solcap"), *(link(h, t) for h, t in crumbs)])
    attributes = "".join(f' data-{esc(k)}="{esc(v)}"' for k, v in (data or {}).items())
    css = "".join(
        f'<link rel="stylesheet" href="/static/{esc(s)}">' for s in ("solcap.css", *styles)
    )
    js = "".join(f'<script src="/static/{esc(s)}"></script>' for s in scripts)
    text = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{esc(title)} · solcap</title>
<meta name="viewport" content="width=device-width, initial-scale=1">{css}</head>
<body{attributes}><header><nav>{nav}</nav>
<form class="search" action="/search" method="get">
<input name="q" placeholder="regex over all recordings" aria-label="search recordings">
<button>search</button></form></header>
<main><h1>{esc(title)}</h1>
{body}
</main>{js}</body></html>
"""
    return web.Response(text=text, content_type="text/html", charset="utf-8")
