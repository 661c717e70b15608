"""Password sources: env var, a 0600 file (others refused), a prompt only on a terminal."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from solcap.credentials import PasswordSource, kg_source, read_secret_file
from solcap.errors import UsageError

pytestmark = pytest.mark.timeout(10)


def test_env_wins(tmp_path: Path) -> None:
    src = PasswordSource(env={"IPMI_PASSWORD": "from-env"}, file=str(tmp_path / "missing"))
    assert src.get() == "from-env"


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


def test_prompt_only_on_a_terminal() -> None:
    asked: list[str] = []

    def fake_getpass(prompt: str) -> str:
        asked.append(prompt)
        return "typed"

    on_tty = PasswordSource(env={}, isatty=lambda: True, getpass_fn=fake_getpass)
    assert on_tty.get("IPMI password") == "typed" and asked == ["IPMI password: "]
    no_tty = PasswordSource(env={}, isatty=lambda: False, getpass_fn=fake_getpass)
    with pytest.raises(UsageError, match="IPMI_PASSWORD"):
        no_tty.get()


def test_kg_is_optional(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("IPMI_KG", raising=False)
    assert kg_source().get_optional() is None
    monkeypatch.setenv("IPMI_KG", "kgkey")
    assert kg_source().get_optional() == "kgkey"
