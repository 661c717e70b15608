"""Fixtures for the web view: a real headless Chromium (Debian's chromium + chromium-driver,
driven by Selenium) and helpers to wait on what a page shows.

One browser serves the whole directory (starting Chromium is the slow part); each test gets a
fresh cookie jar. Every wait polls the page with a deadline, never a fixed sleep, and the
deadlines are generous so a loaded machine is slow, not red.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from tests import peers

T = TypeVar("T")
#: Seconds any one thing a page should show may take to appear.
WAIT = 30.0
#: Where screenshots go: SOLCAP_WEB_SHOTS (docs/web.md: docs/images/web/), else a temp dir.
SHOTS_ENV = "SOLCAP_WEB_SHOTS"


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    chromium = peers.need("chromium")
    driver_path = peers.need("chromedriver")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="solcap-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in (
        "--headless=new",
        "--no-sandbox",  # CI runs as root, where Chromium's sandbox refuses to start
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1100,900",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    driver.set_page_load_timeout(WAIT)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """The browser with no cookies: each test proves its own token."""
    browser.delete_all_cookies()
    yield browser
    browser.delete_all_cookies()


def wait_for(what: str, check: Callable[[], T | None], timeout: float = WAIT) -> T:
    """Poll ``check`` until it returns something truthy; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = check()
        except Exception as exc:  # the page may be mid-load: keep polling
            last = exc
            value = None
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout:g}s waiting for {what} (last error: {last})")


def terminal_text(driver: Any) -> str:
    """Everything in the page's xterm.js buffer (scrollback included), one line per row."""
    text = driver.execute_script("return (window.solcapReplay || window.solcapLive).text()")
    return str(text)


def screen_text(driver: Any) -> str:
    """Only what xterm.js shows on screen now (its DOM renderer's rows)."""
    rows = driver.find_elements("css selector", ".xterm-rows > div")
    return "\n".join(row.text for row in rows)


@pytest.fixture(scope="session")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where screenshots are written: the docs' directory when asked, else a temp dir."""
    given = os.environ.get(SHOTS_ENV)
    path = Path(given) if given else tmp_path_factory.mktemp("shots")
    path.mkdir(parents=True, exist_ok=True)
    return path
