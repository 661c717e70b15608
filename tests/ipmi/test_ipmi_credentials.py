"""Password sources: env var, a 0600 file (others refused). The prompt on a terminal is
tested on a real pty: tests/ipmi/test_password_prompt_pty.py."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

from solcap.config.credentials import PasswordSource, kg_source, read_secret_file
from solcap.errors import UsageError

pytestmark = pytest.mark.timeout(10)


def test_explicit_file_beats_the_environment(tmp_path: Path) -> None:
    """As ipmitool: -f FILE beats IPMI_PASSWORD (-E); -K's IPMI_KGKEY loses to --kg-file."""
    path = tmp_path / "pw"
    path.write_text("from-file\n")
    os.chmod(path, 0o600)
    src = PasswordSource(env={"IPMI_PASSWORD": "from-env"}, file=str(path))
    assert src.get() == "from-file"
    kg = dataclasses.replace(kg_source(str(path)), env={"IPMI_KGKEY": "kg-env"})
    assert kg.get_optional() == "from-file"


def test_environment_without_a_file(tmp_path: Path) -> None:
    assert PasswordSource(env={"IPMI_PASSWORD": "from-env"}).get() == "from-env"
    assert dataclasses.replace(kg_source(), env={"IPMI_KGKEY": "k"}).get_optional() == "k"


def test_a_missing_explicit_file_is_an_error_not_a_fallback(tmp_path: Path) -> None:
    src = PasswordSource(env={"IPMI_PASSWORD": "from-env"}, file=str(tmp_path / "missing"))
    with pytest.raises(UsageError, match="cannot read password file"):
        src.get()


def test_0600_file_is_read(tmp_path: Path) -> None:
    path = tmp_path / "pw"
    path.write_text("from-file\nignored\n")
    os.chmod(path, 0o600)
    assert PasswordSource(env={}, file=str(path)).get() == "from-file"


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660])
def test_group_or_world_readable_file_is_refused(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "pw"
    path.write_text("secret\n")
    os.chmod(path, mode)
    with pytest.raises(UsageError, match="chmod 600"):
        read_secret_file(str(path))


def test_kg_is_optional(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("IPMI_KG", raising=False)
    monkeypatch.delenv("IPMI_KGKEY", raising=False)
    assert kg_source().get_optional() is None
    monkeypatch.setenv("IPMI_KG", "old-name")
    assert kg_source().get_optional() == "old-name"
    monkeypatch.setenv("IPMI_KGKEY", "kgkey")  # what ipmitool -K reads; wins over the old name
    assert kg_source().get_optional() == "kgkey"
