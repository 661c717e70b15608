"""The public API is ``solcap.open_console``, ``solcap.Console`` and ``solcap.Recording``,
whatever the tree's layout: each name resolves to the object the library itself uses, and a
plain ``import solcap`` loads none of the heavy modules behind them."""

from __future__ import annotations

import subprocess
import sys

import pytest

import solcap
from solcap.api import open_console
from solcap.capture.recording import Recording
from solcap.console.core import Console

pytestmark = pytest.mark.timeout(60)


def test_public_names_are_the_library_objects() -> None:
    assert solcap.open_console is open_console
    assert solcap.Console is Console
    assert solcap.Recording is Recording
    assert set(solcap.__all__) == {"Console", "Recording", "__version__", "open_console"}
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        _ = solcap.Nope  # type: ignore[attr-defined]


def test_import_solcap_loads_neither_console_nor_recording() -> None:
    probe = (
        "import sys, solcap\n"
        "heavy = [m for m in ('solcap.console.core', 'solcap.capture.recording', 'pyghmi')"
        " if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
