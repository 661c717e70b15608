"""Suite-wide isolation from what the machine happens to run.

Every solcap command first asks whether a running ``solcap serve`` holds its console (found in
``$SOLCAP_SERVE_DIR``, else the user's runtime directory). A server someone started by hand
with the default directory could then take over a test's console, so the whole suite looks in
a private, empty directory of its own; tests that run a server pass theirs explicitly.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator

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
