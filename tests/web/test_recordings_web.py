"""Recordings in a real headless Chromium: list, replay with timing, jump, key dump, search.

The recording is made by solcap's own :class:`~solcap.capture.recording.Recording` (the format every
capture writes), with a real Xen 'h' dump from the parser corpus and a pause the replay must
keep. The web server runs in-process on 127.0.0.1; the browser reaches it only with the token.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from solcap.capture.recording import Recording
from solcap.web.app import WebServer
from solcap.web.auth import Tokens
from solcap.web.catalog import Catalog
from solcap.xen.parsers import parse_dump
from tests.web.conftest import WAIT, terminal_text, wait_for

pytestmark = pytest.mark.timeout(120)
ROOT = Path(__file__).resolve().parents[2]
H_DUMP = (ROOT / "tests/parsers/data/real-key-h.txt").read_bytes()
GAP = 1.0  # seconds between boot text and the dump: the replay must take at least this long
BOOT = b"GRUB loading.\r\n\x1b[1mXen 4.17\x1b[m booting\r\n"
TAIL = b"root@node07:~# echo needle-7731\r\nneedle-7731\r\n"


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("recordings")
    rec = Recording("node07", root=root, label="boot")
    rec.feed(BOOT)
    time.sleep(GAP)  # the pause the timing file records (the input, not a wait)
    start = rec.offset
    rec.feed(H_DUMP)
    rec.add_segment("h", start, rec.offset, complete=True)
    rec.add_json("keys/h.json", parse_dump("h", H_DUMP))
    rec.event("power", action="cycle")
    rec.feed(TAIL)
    return rec.close().path


@pytest.fixture(scope="module")
def server(recording: Path) -> Iterator[WebServer]:
    web = WebServer(Catalog(recording.parents[1]), Tokens.fresh()).start()
    try:
        yield web
    finally:
        web.stop()


def _get(server: WebServer, path: str, **headers: str) -> tuple[int, bytes, Any]:
    conn = http.client.HTTPConnection(server.host, server.port, timeout=WAIT)
    try:
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        return response.status, response.read(), response.headers
    finally:
        conn.close()


def _open(page: Any, server: WebServer, path: str, token: str) -> None:
    """Log in with the URL token (as the printed URL does), then go to ``path``."""
    page.get(server.url(token))
    wait_for("the start page", lambda: page.find_element("css selector", "h1").text)
    page.get(f"{server.url()}{path.lstrip('/')}")


def test_nothing_is_served_without_the_token(server: WebServer, recording: Path) -> None:
    rec = f"/recordings/node07/{recording.name}/raw"
    for path in ("/", rec, "/search?q=needle"):
        status, _, headers = _get(server, path)
        assert status == 401 and headers["WWW-Authenticate"].startswith("Bearer")
        assert _get(server, path, Authorization="Bearer not-the-token")[0] == 401
    status, _, headers = _get(server, f"/?token={server.tokens.read}")
    assert status == 303 and headers["Location"] == "/"
    assert f"={server.tokens.read};" in headers["Set-Cookie"]
    assert "HttpOnly" in headers["Set-Cookie"] and "SameSite=Strict" in headers["Set-Cookie"]
    # Downloads are the exact bytes of the recording.
    status, body, _ = _get(server, rec, Authorization=f"Bearer {server.tokens.read}")
    assert status == 200
    expected = (recording / "console.raw").read_bytes()
    assert hashlib.sha256(body).hexdigest() == hashlib.sha256(expected).hexdigest()


def test_a_bad_origin_is_refused(server: WebServer) -> None:
    auth = {"Authorization": f"Bearer {server.tokens.write}"}
    upgrade = {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
               "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}  # fmt: skip
    bad = _get(server, "/live/node07/ws", Origin="http://evil.example", **auth, **upgrade)
    assert bad[0] == 403 and b"Origin" in bad[1]
    own = f"http://{server.host}:{server.port}"
    assert _get(server, "/", Origin=own, **auth)[0] == 200


def test_start_page_lists_the_host_and_a_recording_replays_with_its_timing(
    page: Any, server: WebServer, recording: Path, shots: Path
) -> None:
    page.get(server.url(server.tokens.read))
    hosts = wait_for(
        "the host list",
        lambda: [a.text for a in page.find_elements("css selector", "table.hosts a")],
    )
    assert hosts == ["node07"]
    assert page.current_url == server.url()  # the token left the address bar
    page.save_screenshot(str(shots / "start-recordings.png"))
    page.find_element("link text", "node07").click()
    wait_for("the recording list", lambda: page.find_elements("css selector", "tbody a"))
    page.find_elements("css selector", "tbody a")[0].click()
    body = wait_for("the replay to start", lambda: page.find_element("css selector", "body"))
    wait_for("the replay to finish", lambda: body.get_attribute("data-state") == "done")
    elapsed = float(body.get_attribute("data-elapsed"))
    assert elapsed >= GAP * 1000 * 0.9, f"replayed in {elapsed} ms, the recording has a {GAP}s gap"
    assert int(body.get_attribute("data-written")) == len((recording / "console.raw").read_bytes())
    text = terminal_text(page)
    assert "GRUB loading." in text and "Xen 4.17 booting" in text
    assert text.count("needle-7731") == 2
    events = [row.text for row in page.find_elements("css selector", "table.events tbody tr")]
    assert any(" power " in f" {row} " and "cycle" in row for row in events)
    page.save_screenshot(str(shots / "replay.png"))


def test_jump_to_a_time_shows_the_screen_of_that_moment(
    page: Any, server: WebServer, recording: Path
) -> None:
    _open(page, server, f"/recordings/node07/{recording.name}?t={GAP / 2}", server.tokens.read)
    body = wait_for("the page", lambda: page.find_element("css selector", "body"))
    wait_for("the jump", lambda: body.get_attribute("data-state") == "paused")
    wait_for("the boot text", lambda: "Xen 4.17 booting" in terminal_text(page))
    assert int(body.get_attribute("data-written")) == len(BOOT)
    assert "needle-7731" not in terminal_text(page)
    page.find_element("id", "jump").send_keys(str(GAP + 5))
    page.find_element("id", "go").click()
    wait_for("the end of the recording", lambda: "needle-7731" in terminal_text(page))


def test_a_key_dump_shows_its_parsed_table(
    page: Any, server: WebServer, recording: Path, shots: Path
) -> None:
    _open(page, server, f"/recordings/node07/{recording.name}/keys/h", server.tokens.read)
    wait_for("the parsed table", lambda: page.find_elements("css selector", "#parsed table"))
    pairs = set()
    for row in page.find_elements("css selector", "#parsed tr"):
        cells = row.find_elements("xpath", "./td")
        if len(cells) == 2:
            pairs.add((cells[0].text, cells[1].text))
    handlers = parse_dump("h", H_DUMP)["handlers"]  # type: ignore[index]
    assert len(handlers) > 10
    missing = {(k, v) for k, v in handlers.items() if (k, v) not in pairs}
    assert not missing, f"handlers not in the page's table: {sorted(missing)[:5]}"
    dump = page.find_element("css selector", "pre.dump").text
    assert dump.splitlines()[0] == H_DUMP.decode().splitlines()[0]
    page.save_screenshot(str(shots / "key-dump.png"))


def test_search_finds_a_string_with_its_host_and_time(
    page: Any, server: WebServer, recording: Path, shots: Path
) -> None:
    _open(page, server, "/", server.tokens.read)
    box = wait_for("the search box", lambda: page.find_element("css selector", "header input"))
    box.send_keys(r"needle-\d+")
    page.find_element("css selector", "header button").click()
    wait_for("the hits", lambda: page.find_elements("css selector", "table.hit tbody tr"))
    rows = [
        [c.text for c in r.find_elements("xpath", "./td")]
        for r in page.find_elements("css selector", "table.hit tbody tr")
    ]
    raw = (recording / "console.raw").read_bytes()
    offsets = [str(i) for i in range(len(raw)) if raw.startswith(b"needle-7731", i)]
    assert [r[4] for r in rows] == offsets  # every occurrence, at its exact byte offset
    for host, name, when, into, _offset, context in rows:
        assert (host, name) == ("node07", recording.name)
        assert when.startswith(time.strftime("%Y-", time.gmtime())) and when.endswith("Z")
        assert float(into.split()[0]) >= GAP * 0.9  # after the pause, so its time is real
        assert "needle-7731" in context
    page.save_screenshot(str(shots / "search.png"))
    bad = urllib.parse.quote("needle(")
    page.get(f"{server.url()}search?q={bad}")
    error = wait_for("the error", lambda: page.find_element("css selector", "p.error").text)
    assert error.startswith("not a valid regular expression")


def _solcap(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "solcap.cli", *argv],
        cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


def test_bad_web_options_are_one_line_before_anything_listens(tmp_path: Path) -> None:
    loose = tmp_path / "tokens"
    loose.write_text("read aaaaaaaaaaaaaaaaaaaa\nwrite bbbbbbbbbbbbbbbbbbbb\n")
    loose.chmod(0o644)
    cases = [
        (["--listen", "0.0.0.0:0"], "not a loopback address; serving consoles beyond"),
        (["--listen", "127.0.0.1"], "expected ADDR:PORT"),
        (["--token-file", str(loose)], "lets others read it; chmod 600 it"),
        (["--tls-cert", str(loose)], "--tls-cert and --tls-key go together"),
    ]
    for extra, words in cases:
        done = _solcap("web", "--root", str(tmp_path), *extra)
        assert done.returncode == 2, (extra, done.stderr)
        assert done.stdout == ""  # no URL: nothing listened
        assert len(done.stderr.splitlines()) == 1 and words in done.stderr, done.stderr


def test_a_key_pressed_twice_has_two_pages_with_their_own_bytes(tmp_path: Path) -> None:
    """The second press of h is ``h-2``: listed, linked, served byte-exact beside the first,
    and parsed with h's parser (no stored JSON for it: the key comes from meta.json)."""
    first, second = H_DUMP, H_DUMP + b"(XEN) pressed again\r\n"
    rec = Recording("node09", root=tmp_path, label="twice")
    for data in (first, second):
        start = rec.offset
        rec.feed(data)
        rec.add_segment("h", start, rec.offset, complete=True)
    path = rec.close().path
    web = WebServer(Catalog(tmp_path), Tokens.fresh()).start()
    try:
        auth = {"Authorization": f"Bearer {web.tokens.read}"}
        base = f"/recordings/node09/{urllib.parse.quote(path.name)}"
        status, body, _ = _get(web, base, **auth)
        assert status == 200
        assert f'href="{base}/keys/h"'.encode() in body
        assert f'href="{base}/keys/h-2"'.encode() in body
        for name, data in (("h", first), ("h-2", second)):
            status, got, _ = _get(web, f"{base}/keys/{name}/raw", **auth)
            assert status == 200
            assert hashlib.sha256(got).hexdigest() == hashlib.sha256(data).hexdigest()
        status, body, _ = _get(web, f"{base}/keys/h-2", **auth)
        assert status == 200
        assert b"parsed now by solcap.xen.parsers (key &#x27;h&#x27;)" in body, body[:2000]
    finally:
        web.stop()
