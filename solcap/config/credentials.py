"""Where BMC passwords and Kg keys come from: a 0600 file, an environment variable, or a prompt.

Never from argv: ``-P pw`` shows up in ``/proc/PID/cmdline`` for every local user. The order is
the one ipmitool follows: a file named explicitly on the command line (``-f``) first, then the
environment (``IPMI_PASSWORD`` as ``ipmitool -E``; ``IPMI_KGKEY`` as ``ipmitool -K``, with
the older ``IPMI_KG`` still read), then an interactive prompt when stdin is a terminal (the
password only: a Kg key is optional and never asked for).
"""

from __future__ import annotations

import dataclasses
import getpass
import os
import stat
import sys
from collections.abc import Callable, Mapping
from typing import Literal

from solcap.config.limits import FILE_CAPS
from solcap.errors import UsageError

PASSWORD_ENV = "IPMI_PASSWORD"
#: What ``ipmitool -K`` reads the Kg key from.
KG_ENV = "IPMI_KGKEY"
#: The name solcap used before; read after KG_ENV.
KG_ENV_OLD = "IPMI_KG"


@dataclasses.dataclass(frozen=True)
class PasswordSource:
    """How to obtain a secret; ``get`` resolves it (and may prompt)."""

    env: Mapping[str, str] | None = None
    file: str | None = None
    prompt: bool = True
    env_name: str = PASSWORD_ENV
    #: further variables tried, in order, when ``env_name`` is unset or empty
    env_fallbacks: tuple[str, ...] = ()
    #: injectable for tests: whether a terminal is there to prompt on, and the prompt itself
    isatty: Callable[[], bool] = dataclasses.field(default=lambda: sys.stdin.isatty())
    getpass_fn: Callable[[str], str] = dataclasses.field(default=getpass.getpass)

    def _from_env(self) -> str | None:
        env = os.environ if self.env is None else self.env
        for name in (self.env_name, *self.env_fallbacks):
            value = env.get(name)
            if value:
                return value
        return None

    def get(self, what: str = "password") -> str:
        """Return the secret, or raise UsageError saying how to provide one.

        An explicit file beats the environment: a file named for this run is the more
        specific choice (as ``ipmitool -f`` beats ``IPMI_PASSWORD``).
        """
        if self.file is not None:
            return read_secret_file(self.file)
        value = self._from_env()
        if value:
            return value
        if self.prompt and self.isatty():
            return self.getpass_fn(f"{what}: ")
        raise UsageError(
            f"no {what}: set {self.env_name}, give a 0600 password file, or run on a terminal"
        )

    def get_optional(self) -> str | None:
        """For Kg: the file's content, else the environment value, else None (never prompts)."""
        if self.file is not None:
            return read_secret_file(self.file)
        return self._from_env()


def known_secret(value: str | None) -> PasswordSource:
    """A source that hands back ``value``, already read (None: nothing, as for no Kg).

    Why: a command that logs in to the same BMC twice (a power cycle and the SOL console of
    ``grub apply --oneshot --power-cycle``) reads its file, variable or prompt once and gives
    both this; a prompt asked twice, or a password file read twice, would be a surprise.
    """
    return PasswordSource(env={"v": value} if value else {}, env_name="v", prompt=False)


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
            data = handle.read(FILE_CAPS["password"] + 1)
        if len(data) > FILE_CAPS["password"]:
            raise UsageError(
                f"{path}: password file is larger than the limit of {FILE_CAPS['password']} bytes"
            )
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
    """The usual password source: ``file``, then ``IPMI_PASSWORD``, then a prompt."""
    return PasswordSource(file=file, prompt=prompt)


def kg_source(file: str | None = None) -> PasswordSource:
    """The Kg (BMC key) source: ``file``, then ``IPMI_KGKEY`` (or ``IPMI_KG``); absent means
    "use the password" (as IPMI v2.0 says for a BMC without a key)."""
    return PasswordSource(file=file, prompt=False, env_name=KG_ENV, env_fallbacks=(KG_ENV_OLD,))


@dataclasses.dataclass(frozen=True)
class SecretRef:
    """Where a secret lives: ``env:NAME`` or ``file:PATH``. Never the secret itself."""

    scheme: Literal["env", "file"]
    ref: str

    def __str__(self) -> str:
        return f"{self.scheme}:{self.ref}"

    @classmethod
    def parse(cls, spec: str, what: str = "secret") -> SecretRef:
        """``env:NAME`` or ``file:PATH``; a bare string (the secret itself) is refused, so a
        secret never ends up in a shell history or ``/proc/PID/cmdline`` by accident."""
        kind, _, rest = spec.partition(":")
        if kind == "env" and rest:
            return cls("env", rest)
        if kind == "file" and rest:
            return cls("file", rest)
        raise UsageError(f"{what} source must be env:NAME or file:PATH, got {kind!r}")

    def resolve(self, env: Mapping[str, str] | None = None) -> str:
        """The secret's value (the file must be 0600); UsageError says what is missing."""
        if self.scheme == "env":
            value = (os.environ if env is None else env).get(self.ref)
            if not value:
                raise UsageError(f"environment variable {self.ref} is not set (needed by {self})")
            return value
        return read_secret_file(os.path.expanduser(self.ref))
