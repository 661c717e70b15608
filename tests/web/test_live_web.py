"""Live consoles in headless Chromium, through a real ``solcap serve`` holding a real pty.

The web server is the in-process ``WebServer`` with a link to serve's control socket (what
``solcap web --control SOCKET`` runs); serve runs in its own process, as in production.
"""

from __future__ import annotations

import http.client
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

pytestmark = pytest.mark.timeout(150)
#: MiB sent past a stalled browser: well beyond its 1 MiB buffer plus what the kernel's
#: loopback socket buffers absorb (a few MiB), so only the web's own limit can drop it.
FLOOD = 16
UPGRADE = {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
           "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}  # fmt: skip


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[tuple[Pty, ServeProcess, WebServer]]:
    pty = Pty()
    inventory = tmp_path / "inventory.yaml"
    write_inventory(inventory, {"node09": pty.path})
    serve = ServeProcess(tmp_path, inventory).start()
    assert serve.socket is not None
    web = WebServer(Catalog(serve.root), Tokens.fresh(), live_link=LiveLink(serve.socket))
    web.start()
    try:
        yield pty, serve, web
    finally:
        web.stop()
        serve.stop()
        pty.close()


@pytest.fixture
def stalled(lab: tuple[Pty, ServeProcess, WebServer]) -> Iterator[socket.socket]:
    """A viewer of node09's live console that attached and never reads again (a 4 KiB
    receive buffer, so the web's own limit is what must drop it)."""
    _pty, serve, web = lab
    wait_for("serve to hold node09", lambda: serve.status()["node09"]["state"] == "up")
    sock = socket.create_connection((web.host, web.port), timeout=WAIT)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        head = "".join(f"{k}: {v}\r\n" for k, v in UPGRADE.items())
        sock.sendall(
            f"GET /live/node09/ws HTTP/1.1\r\nHost: {web.host}:{web.port}\r\n"
            f"Authorization: Bearer {web.tokens.read}\r\n{head}\r\n".encode()
        )
        assert sock.recv(12) == b"HTTP/1.1 101"  # attached, and from now on never read
        yield sock
    finally:
        sock.close()


def _web_detached(serve: ServeProcess) -> bool:
    """Whether serve's log shows a web viewer of node09 detached."""
    logs = (serve.root / "node09").glob("*_serve/events.jsonl")
    return '"event": "detach", "who": "web 127.0.0.1' in "".join(p.read_text() for p in logs)


def _status(web: WebServer, path: str, **headers: str) -> int:
    conn = http.client.HTTPConnection(web.host, web.port, timeout=WAIT)
    try:
        conn.request("GET", path, headers=headers)
        return conn.getresponse().status
    finally:
        conn.close()


def test_live_console_shows_screen_and_stream_and_only_a_write_token_types(
    page: Any, lab: tuple[Pty, ServeProcess, WebServer], shots: Path
) -> None:
    pty, serve, web = lab
    wait_for("serve to hold node09", lambda: serve.status()["node09"]["state"] == "up")
    pty.write_all(b"\x1b[2J\x1b[Hscreen-before-open 4411\r\nroot@node09:~# ")
    serve.wait_bytes("node09", 20)
    # The start page lists the console with its state.
    page.get(web.url(web.tokens.write))
    rows = wait_for(
        "the console table",
        lambda: page.find_elements("css selector", "table.consoles tbody tr"),
    )
    assert rows[0].find_elements("xpath", "./td")[0].text == "node09"
    assert rows[0].find_elements("xpath", "./td")[1].text.startswith("up")
    page.save_screenshot(str(shots / "start-live.png"))
    # The console page: the current screen on open, then the live stream.
    page.get(f"{web.url()}live/node09")
    wait_for("the screen", lambda: "screen-before-open 4411" in terminal_text(page))
    pty.write_all(b"live-line 5522\r\n")
    wait_for("the stream", lambda: "live-line 5522" in terminal_text(page))
    # Typing with the write token reaches the host once the write side is granted.
    page.find_element("id", "write").click()
    body = page.find_element("css selector", "body")
    wait_for("the write side", lambda: body.get_attribute("data-role") == "writer")
    page.find_element("css selector", ".xterm-helper-textarea").send_keys("typed-7788")
    got = pty.read_until(b"typed-7788", WAIT)
    assert got.endswith(b"typed-7788"), got
    page.save_screenshot(str(shots / "live.png"))
    # Refused without the write token (403) and without any token (401); bad Origin 403.
    path = "/live/node09/ws?mode=write"
    assert _status(web, path, Authorization=f"Bearer {web.tokens.read}", **UPGRADE) == 403
    assert _status(web, path, **UPGRADE) == 401
    evil = {"Origin": "http://evil.example", "Authorization": f"Bearer {web.tokens.write}"}
    assert _status(web, "/live/node09/ws", **evil, **UPGRADE) == 403
    # serve recorded the web attach and the keystrokes' source.
    events = (serve.root / "node09").glob("*_serve/events.jsonl")
    text = "".join(p.read_text() for p in events)
    assert '"event": "attach"' in text and "web 127.0.0.1 (write token)" in text
    assert '"event": "write"' in text


def test_serve_web_serves_the_same_pages_from_inside_serve(page: Any, tmp_path: Path) -> None:
    pty = Pty()
    inventory = tmp_path / "inventory.yaml"
    write_inventory(inventory, {"node11": pty.path})
    serve = ServeProcess(tmp_path, inventory, "--web", "127.0.0.1:0").start()
    try:
        assert serve.proc is not None and serve.proc.stdout is not None
        lines = [serve.proc.stdout.readline().decode() for _ in range(2)]
        assert lines[0].startswith("web: read-only  http://127.0.0.1:"), lines
        assert lines[1].startswith("web: read-write http://127.0.0.1:"), lines
        page.get(lines[0].split()[-1])
        rows = wait_for(
            "the console table",
            lambda: page.find_elements("css selector", "table.consoles tbody tr"),
        )
        assert rows[0].find_elements("xpath", "./td")[0].text == "node11"
    finally:
        serve.stop()
        pty.close()


def test_serve_web_off_loopback_without_tls_is_refused_before_any_console_opens(
    tmp_path: Path,
) -> None:
    import subprocess
    import sys

    inventory = tmp_path / "inventory.yaml"
    write_inventory(inventory, {"node12": "/dev/null"})
    done = subprocess.run(
        [sys.executable, "-m", "solcap.cli", "serve", "--inventory", str(inventory), "--root",
         str(tmp_path / "rec"), "--web", "0.0.0.0:0"],
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert done.returncode == 2 and done.stdout == ""
    assert len(done.stderr.splitlines()) == 1 and "needs TLS" in done.stderr
    assert not (tmp_path / "rec").exists()


def test_a_stalled_browser_slows_neither_the_capture_nor_another_viewer(
    page: Any, lab: tuple[Pty, ServeProcess, WebServer], stalled: socket.socket
) -> None:
    pty, serve, web = lab
    page.get(web.url(web.tokens.read))
    page.get(f"{web.url()}live/node09")
    body = wait_for("the page", lambda: page.find_element("css selector", "body"))
    wait_for("the viewer", lambda: body.get_attribute("data-state") == "attached")
    block = (b"x" * 1023 + b"\n") * 1024  # 1 MiB
    before = serve.status()["node09"]["bytes"]
    for _ in range(FLOOD):
        pty.write_all(block)
    pty.write_all(b"\r\nafter-the-flood 9911\r\n")
    total = before + FLOOD * len(block) + len(b"\r\nafter-the-flood 9911\r\n")
    serve.wait_bytes("node09", total, timeout=WAIT)
    wait_for("the other viewer's stream", lambda: "after-the-flood 9911" in terminal_text(page))

    # The web dropped the stalled one when its buffer overflowed (serve's own 8 MiB queue never
    # did): its serve connection is gone while the other viewer is still attached.
    wait_for("the stalled browser to be dropped", lambda: _web_detached(serve))
    assert body.get_attribute("data-state") == "attached"


def test_a_stalled_viewer_leaves_another_viewer_and_the_recording_byte_exact(
    lab: tuple[Pty, ServeProcess, WebServer], stalled: socket.socket
) -> None:
    """Browser-less: one WebSocket that never reads, one that reads; SHA-256 of all three."""
    import asyncio
    import hashlib
    import threading
    import time

    import aiohttp

    from tests.serve.conftest import raw_of

    pty, serve, web = lab
    sent = hashlib.shake_256(b"stalled-viewer").digest(FLOOD * 1024 * 1024)
    stream = bytearray()  # what the reading viewer got after the screen
    attached = threading.Event()
    errors: list[BaseException] = []

    async def view() -> None:
        auth_header = {"Authorization": f"Bearer {web.tokens.read}"}
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(f"{web.url()}live/node09/ws", headers=auth_header) as ws,
        ):
            first = await ws.receive(timeout=WAIT)
            assert first.type == aiohttp.WSMsgType.TEXT and '"attached"' in first.data
            attached.set()
            screen: bytes | None = None  # the first binary message; not part of the stream
            while len(stream) < len(sent):
                message = await ws.receive(timeout=WAIT)
                if message.type == aiohttp.WSMsgType.BINARY:
                    if screen is None:
                        screen = bytes(message.data)
                    else:
                        stream.extend(message.data)
                elif message.type != aiohttp.WSMsgType.TEXT:
                    raise AssertionError(f"the reading viewer was closed: {message}")
            # Still attached here, so a web detach in serve's log is the stalled one's.
            deadline = time.monotonic() + WAIT
            while not _web_detached(serve):
                assert time.monotonic() < deadline, "the stalled viewer was never dropped"
                await asyncio.sleep(0.05)

    def run() -> None:
        try:
            asyncio.run(view())
        except BaseException as exc:  # reported by the test thread below
            errors.append(exc)
            attached.set()

    viewer = threading.Thread(target=run, daemon=True)
    viewer.start()
    assert attached.wait(WAIT) and not errors, errors
    assert serve.status()["node09"]["bytes"] == 0, "a silent console, so the hashes line up"
    pty.write_all(sent)
    serve.wait_bytes("node09", len(sent), timeout=WAIT)
    viewer.join(2 * WAIT)
    assert not viewer.is_alive() and not errors, errors
    want = hashlib.sha256(sent).hexdigest()
    assert hashlib.sha256(stream).hexdigest() == want
    assert hashlib.sha256(raw_of(serve.root, "node09")).hexdigest() == want
