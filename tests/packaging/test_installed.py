"""The built wheel carries the shipped profiles and runbooks and finds them from any directory.

The wheel is built from this checkout and unpacked outside it; solcap then runs from ``/`` with
only the unpacked copy importable as ``solcap`` (its dependencies come from the test's own
environment), so a profile or runbook that exists only in the checkout is not found.
scripts/check-installed (run by CI) does the same with a real ``pip install`` into a fresh venv.
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def unpacked(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    dist = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(dist), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = dist.glob("solcap-*.whl")
    site = tmp_path_factory.mktemp("site")
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site)
    yield site


def _solcap(site: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(site)}
    env.pop("SOLCAP_PROFILES", None)
    return subprocess.run(
        [sys.executable, "-c", "import sys, solcap.cli; sys.exit(solcap.cli.main(sys.argv[1:]))",
         *argv],
        cwd="/",
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )  # fmt: skip


def test_wheel_ships_every_profile_and_runbook_byte_for_byte(unpacked: Path) -> None:
    for kind, pattern in (("profiles", "*.toml"), ("runbooks", "*.yaml")):
        shipped = unpacked / "solcap" / "_shipped" / kind
        names = sorted(p.name for p in (ROOT / kind).glob(pattern))
        assert names and sorted(p.name for p in shipped.iterdir()) == names
        for name in names:
            assert (shipped / name).read_bytes() == (ROOT / kind / name).read_bytes()


def test_installed_copy_uses_its_package_data(unpacked: Path) -> None:
    code = "import solcap.config.shipped as s; print(s.__file__); print(s.shipped_dir('profiles'))"
    env = {**os.environ, "PYTHONPATH": str(unpacked)}
    shown = subprocess.run(
        [sys.executable, "-c", code], cwd="/", env=env, capture_output=True, text=True, check=True
    ).stdout.split()
    assert shown == [
        str(unpacked / "solcap" / "config" / "shipped.py"),
        str(unpacked / "solcap" / "_shipped" / "profiles"),
    ]


def test_profile_list_from_root(unpacked: Path) -> None:
    result = _solcap(unpacked, "profile", "list")
    assert result.returncode == 0, result.stderr
    names = [line.split()[0] for line in result.stdout.splitlines()]
    assert names == sorted(p.stem for p in (ROOT / "profiles").glob("*.toml"))


def test_profile_by_name_from_root(unpacked: Path) -> None:
    """The newcomer's first command (a one-shot dry run: nothing is opened)."""
    argv = ["grub", "apply", "/dev/ttyS9", "--profile", "xen-serial-debug", "--oneshot"]
    result = _solcap(unpacked, *argv)
    assert result.returncode == 0, result.stderr
    assert "+console=com1" in result.stdout


def test_runbook_by_name_from_root(unpacked: Path) -> None:
    result = _solcap(unpacked, "run", "harvest-debug-keys", "--host", "/dev/ttyS9", "--dry-run")
    assert result.returncode == 0, result.stderr
    assert str(unpacked / "solcap" / "_shipped" / "runbooks") in result.stdout


def test_unknown_runbook_names_the_search_path(unpacked: Path) -> None:
    result = _solcap(unpacked, "run", "no-such-runbook", "--host", "/dev/ttyS9", "--dry-run")
    assert result.returncode == 2
    assert result.stderr == (
        "solcap: error: no runbook named 'no-such-runbook' (not a file here; searched "
        f"{unpacked / 'solcap' / '_shipped' / 'runbooks'})\n"
    )


def test_wheel_ships_the_web_views_static_files_byte_for_byte(unpacked: Path) -> None:
    """xterm.js, its fit addon, their licences and the pages' scripts: no CDN, so the wheel
    must carry them all (package data), exactly as vendored."""
    source = ROOT / "solcap" / "web" / "static"
    shipped = unpacked / "solcap" / "web" / "static"
    names = sorted(p.name for p in source.iterdir() if p.is_file())
    assert {"xterm.js", "xterm.css", "addon-fit.js", "LICENSE.xterm", "LICENSE.addon-fit"} <= set(
        names
    )
    assert sorted(p.name for p in shipped.iterdir()) == names
    for name in names:
        assert (shipped / name).read_bytes() == (source / name).read_bytes(), name
