"""Where BMC passwords and Kg keys come from: an environment variable, a 0600 file, or a prompt.

Never from argv: ``-P pw`` shows up in ``/proc/PID/cmdline`` for every local user. The order is
the one ``ipmitool -E`` taught operators: ``IPMI_PASSWORD`` (and ``IPMI_KG``) first, then a file
named by the caller that must not be readable by group or others, then an interactive prompt
when stdin is a terminal.
"""

from __future__ import annotations

import dataclasses
import getpass
import os
import stat
import sys
from collections.abc import Callable, Mapping

from solcap.errors import UsageError

PASSWORD_ENV = "IPMI_PASSWORD"
KG_ENV = "IPMI_KG"


@dataclasses.dataclass(frozen=True)
class PasswordSource:
    """How to obtain a secret; ``get`` resolves it (and may prompt)."""

    env: Mapping[str, str] | None = None
    file: str | None = None
    prompt: bool = True
    env_name: str = PASSWORD_ENV
    #: injectable for tests: whether a terminal is there to prompt on, and the prompt itself
    isatty: Callable[[], bool] = dataclasses.field(default=lambda: sys.stdin.isatty())
    getpass_fn: Callable[[str], str] = dataclasses.field(default=getpass.getpass)

    def get(self, what: str = "password") -> str:
        """Return the secret, or raise UsageError saying how to provide one."""
        env = os.environ if self.env is None else self.env
        value = env.get(self.env_name)
        if value:
            return value
        if self.file is not None:
            return read_secret_file(self.file)
        if self.prompt and self.isatty():
            return self.getpass_fn(f"{what}: ")
        raise UsageError(
            f"no {what}: set {self.env_name}, give a 0600 password file, or run on a terminal"
        )

    def get_optional(self) -> str | None:
        """For Kg: the environment value or file content, else None (never prompts)."""
        env = os.environ if self.env is None else self.env
        value = env.get(self.env_name)
        if value:
            return value
        if self.file is not None:
            return read_secret_file(self.file)
        return None


def read_secret_file(path: str) -> str:
    """The first line of ``path``; refuse a file that group or others may read or write."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError as exc:
        raise UsageError(f"{path}: cannot read password file: {exc.strerror}") from exc
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise UsageError(f"{path}: password file is not a regular file")
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise UsageError(
                f"{path}: password file is accessible by group or others "
                f"(mode {stat.S_IMODE(mode):04o}); run: chmod 600 {path}"
            )
        with os.fdopen(fd, "rb", closefd=False) as handle:
            data = handle.read(4096)
    finally:
        os.close(fd)
    try:
        line = data.decode("utf-8").splitlines()[0] if data else ""
    except UnicodeDecodeError:
        raise UsageError(f"{path}: password file is not UTF-8 text") from None
    if not line:
        raise UsageError(f"{path}: password file is empty")
    return line


def password_source(file: str | None = None, *, prompt: bool = True) -> PasswordSource:
    """The usual password source: ``IPMI_PASSWORD``, then ``file``, then a prompt."""
    return PasswordSource(file=file, prompt=prompt)


def kg_source(file: str | None = None) -> PasswordSource:
    """The Kg (BMC key) source: ``IPMI_KG``, then ``file``; absent means "use the password"."""
    return PasswordSource(file=file, prompt=False, env_name=KG_ENV)
