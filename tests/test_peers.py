"""A missing real peer fails a CI run and skips elsewhere, naming the Debian package to install."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests import peers

ROOT = Path(__file__).resolve().parents[1]

NEEDS_IPMITOOL = """
from tests.peers import need

def test_needs_ipmitool():
    need("ipmitool")
"""


@pytest.mark.parametrize(
    ("env", "strict"),
    [
        ({}, False),
        ({"CI": "true"}, True),
        ({"CI": ""}, False),
        ({"SOLCAP_REQUIRE_PEERS": "1"}, True),
        ({"CI": "1", "SOLCAP_REQUIRE_PEERS": "0"}, False),
    ],
)
def test_peers_are_required_under_ci(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], strict: bool
) -> None:
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.delenv("SOLCAP_REQUIRE_PEERS", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert peers.peers_required() is strict


def _run_without_peers(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """Run a one-test file that needs ipmitool, with a PATH that holds no peer at all."""
    test = tmp_path / "test_needs.py"
    test.write_text(NEEDS_IPMITOOL)
    clean = {k: v for k, v in os.environ.items() if k not in ("CI", "SOLCAP_REQUIRE_PEERS")}
    clean.update(PATH=str(tmp_path / "empty-bin"), PYTHONPATH=str(ROOT), **env)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", str(test)],
        cwd=tmp_path,
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_missing_peer_skips_naming_the_package_outside_ci(tmp_path: Path) -> None:
    done = _run_without_peers(tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 skipped" in done.stdout
    assert "ipmitool is missing: apt-get install ipmitool" in done.stdout


def test_a_missing_peer_fails_the_run_under_ci(tmp_path: Path) -> None:
    done = _run_without_peers(tmp_path, CI="true")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "1 failed" in done.stdout
    assert "ipmitool is missing: apt-get install ipmitool" in done.stdout
    done = _run_without_peers(tmp_path, SOLCAP_REQUIRE_PEERS="1")
    assert done.returncode == 1 and "1 failed" in done.stdout, done.stdout
