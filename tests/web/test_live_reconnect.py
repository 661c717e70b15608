"""The live console page in headless Chromium comes back by itself after its server goes away.

Two ways the page's WebSocket ends without anybody closing the tab: ``solcap serve`` restarts
under a standalone web view (the web server closes the page's socket because serve's end of the
relay went away), and ``solcap serve --web`` itself restarts (the socket drops with the process).
Either way the page must attach again on its own and show the stream, with no reload.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from solcap.web.app import WebServer
from solcap.web.auth import Tokens
from solcap.web.catalog import Catalog
from solcap.web.live import LiveLink
from tests.serve.conftest import Pty, ServeProcess, write_inventory
from tests.web.conftest import WAIT, terminal_text, wait_for

pytestmark = pytest.mark.timeout(180)


@pytest.fixture
def pty() -> Iterator[Pty]:
    made = Pty()  # the test holds both ends: the console survives every restart of serve
    yield made
    made.close()


def _attached(page: Any) -> bool:
    body = page.find_element("css selector", "body")
    return body.get_attribute("data-state") == "attached"


def _show_line(page: Any, pty: Pty, serve: ServeProcess, line: bytes) -> None:
    """Write ``line`` once serve holds the console again; the page must show it."""
    wait_for("serve to hold node21", lambda: serve.status()["node21"]["state"] == "up")
    pty.write_all(line + b"\r\n")
    wait_for(f"the page to show {line!r}", lambda: line.decode() in terminal_text(page))


def test_page_reattaches_when_serve_restarts_under_the_web_view(
    page: Any, pty: Pty, tmp_path: Path
) -> None:
    inventory = tmp_path / "inventory.yaml"
    write_inventory(inventory, {"node21": pty.path})
    serve = ServeProcess(tmp_path, inventory).start()
    assert serve.socket is not None
    web = WebServer(Catalog(serve.root), Tokens.fresh(), live_link=LiveLink(serve.socket))
    web.start()
    try:
        page.get(web.url(web.tokens.read))
        page.get(f"{web.url()}live/node21")
        wait_for("the page to attach", lambda: _attached(page))
        _show_line(page, pty, serve, b"before-restart 3141")
        serve.stop()  # SIGTERM: serve closes every client, the web closes the page's socket
        wait_for("the page to see the end", lambda: not _attached(page))
        serve.start()  # the same inventory, so the same control socket path
        wait_for("the page to attach again", lambda: _attached(page))
        _show_line(page, pty, serve, b"after-restart 2718")
    finally:
        web.stop()
        serve.stop()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class _ServeWeb(ServeProcess):
    """``solcap serve --web`` on a fixed port with tokens from a file, so a restart keeps both."""

    def start(self) -> _ServeWeb:
        super().start()
        assert self.proc is not None and self.proc.stdout is not None
        line = self.proc.stdout.readline().decode()
        assert line.startswith("web: http://127.0.0.1:"), line
        return self


def test_page_reconnects_when_serve_web_itself_restarts(
    page: Any, pty: Pty, tmp_path: Path
) -> None:
    inventory = tmp_path / "inventory.yaml"
    write_inventory(inventory, {"node21": pty.path})
    tokens = tmp_path / "tokens"
    port = _free_port()
    serve = _ServeWeb(
        tmp_path, inventory, "--web", f"127.0.0.1:{port}", "--token-file", str(tokens)
    ).start()
    try:
        read = tokens.read_text().split("read ", 1)[1].split()[0]
        base = f"http://127.0.0.1:{port}/"
        page.get(f"{base}?token={read}")
        page.get(f"{base}live/node21")
        wait_for("the page to attach", lambda: _attached(page))
        _show_line(page, pty, serve, b"before-kill 1618")
        assert serve.proc is not None
        serve.proc.kill()  # no goodbye: the page's socket just drops
        serve.proc.wait(30)
        wait_for("the page to see the drop", lambda: not _attached(page))
        serve.start()
        wait_for("the page to reconnect", lambda: _attached(page), timeout=WAIT)
        _show_line(page, pty, serve, b"after-kill 1414")
    finally:
        serve.stop()
