"""Suite-wide isolation from what the machine happens to run.

Every solcap command first asks whether a running ``solcap serve`` holds its console (found in
``$SOLCAP_SERVE_DIR``, else the user's runtime directory). A server someone started by hand
with the default directory could then take over a test's console, so the whole suite looks in
a private, empty directory of its own; tests that run a server pass theirs explicitly.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(autouse=True, scope="session")
def _private_serve_directory() -> Iterator[None]:
    before = os.environ.get("SOLCAP_SERVE_DIR")
    with tempfile.TemporaryDirectory(prefix="solcap-tests-serve-") as directory:
        os.chmod(directory, 0o700)
        os.environ["SOLCAP_SERVE_DIR"] = directory
        try:
            yield
        finally:
            if before is None:
                os.environ.pop("SOLCAP_SERVE_DIR", None)
            else:
                os.environ["SOLCAP_SERVE_DIR"] = before


@pytest.fixture
def udp_623() -> Iterator[None]:
    """UDP port 623 on loopback, one test at a time across processes.

    ipmiconsole and ConMan reach a BMC at port 623 only, so the tests that run them bind
    127.0.x.y:623 (the benchmarks' BMCs at 127.0.100.1 + i, the ipmiconsole test's at
    127.0.0.3): two such tests at once, in parallel workers or in another checkout's run,
    would take each other's addresses. An exclusive lock on a file in the temporary directory
    serialises them; the test's own timeout bounds the wait.
    """
    with (Path(tempfile.gettempdir()) / "solcap-tests-udp-623.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
