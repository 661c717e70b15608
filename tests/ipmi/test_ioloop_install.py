"""solcap's replacement of pyghmi's I/O loop is installed when a session starts, never at import.

Checked in fresh interpreters (pyghmi's state is process-wide, so this test process proves
nothing about import order), and pyghmi is imported only where the tree says it is.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(60)
ROOT = Path(__file__).resolve().parents[2]

_PROBE = """
import pyghmi.ipmi.private.session as s
own = (s._io_wait, s._io_sendto, s._io_graball, s.select)
import solcap.cli, solcap.transports.ipmi as ipmi
from solcap.transports.ipmi import engine, ioloop, power, session, sol, transport
ipmi.IpmiSolTransport, ipmi.power_action
print((s._io_wait, s._io_sendto, s._io_graball, s.select) == own, ioloop.installed())
ioloop.Pump.get()
print((s._io_graball, s.select) == (ioloop._ready_graball, ioloop._POLL_SELECT), ioloop.installed())
"""


def test_importing_changes_nothing_in_pyghmi_and_the_first_session_installs_the_loop() -> None:
    res = subprocess.run(
        [sys.executable, "-c", _PROBE], cwd=ROOT, capture_output=True, text=True, timeout=30
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.split("\n")[:2] == ["True False", "True True"]


def test_the_simulator_process_keeps_pyghmi_s_own_loop() -> None:
    probe = (
        "import pyghmi.ipmi.private.session as s, select\n"
        "import solcap.sim.bmc\n"
        "print(s.select is select, s._io_graball.__module__)\n"
    )
    res = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=30
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "True pyghmi.ipmi.private.session"


def test_pyghmi_is_imported_only_under_transports_ipmi_and_sim() -> None:
    allowed = (ROOT / "solcap/transports/ipmi", ROOT / "solcap/sim")
    importing = re.compile(r"^\s*(import|from)\s+pyghmi\b", re.M)
    offenders = [
        str(path.relative_to(ROOT))
        for path in sorted((ROOT / "solcap").rglob("*.py"))
        if importing.search(path.read_text())
        and not path.is_relative_to(allowed[0])
        and not path.is_relative_to(allowed[1])
    ]
    assert offenders == []
    assert importing.search((ROOT / "solcap/transports/ipmi/session.py").read_text())
