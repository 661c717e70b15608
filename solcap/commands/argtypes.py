"""argparse ``type=`` functions over :mod:`solcap.config.limits`, and a parser whose errors are one
line.

Not a sub-command module (no ``register``). The validators themselves live in
:mod:`solcap.config.limits` so that the library, runbooks and the command line refuse the same
values with the same words; this module only turns their :class:`~solcap.errors.UsageError` into the
``argparse.ArgumentTypeError`` argparse expects, so the message reads
``solcap: error: capture: argument --for: 'nan' is not a finite number``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn, TypeVar

from solcap.config import limits
from solcap.errors import ExitStatus, UsageError

T = TypeVar("T")


def _adapt(check: Callable[[str], T]) -> Callable[[str], T]:
    def convert(text: str) -> T:
        try:
            return check(text)
        except UsageError as exc:
            raise argparse.ArgumentTypeError(exc.one_line()) from None

    return convert


def seconds(*, zero: bool = False, maximum: float = limits.MAX_SECONDS) -> Callable[[str], float]:
    """A duration option: finite, > 0 (or ≥ 0 with ``zero``), at most ``maximum``."""
    return _adapt(lambda text: limits.seconds(text, "", zero=zero, maximum=maximum))


def count(*, minimum: int = 1, maximum: int = 10_000) -> Callable[[str], int]:
    """A whole-number option in ``[minimum, maximum]``."""
    return _adapt(lambda text: limits.count(text, "", minimum=minimum, maximum=maximum))


def number(*, minimum: float, maximum: float, allow_minimum: bool = True) -> Callable[[str], float]:
    """A finite number option in range."""
    return _adapt(
        lambda text: limits.number(
            text, "", minimum=minimum, maximum=maximum, allow_minimum=allow_minimum
        )
    )


def directory() -> Callable[[str], Path]:
    """A directory option solcap may create: not empty, not through a regular file."""
    return _adapt(lambda text: limits.directory_path(text, ""))


def existing_path() -> Callable[[str], Path]:
    """A path option naming something that exists already: not empty, no NUL byte."""
    return _adapt(lambda text: limits.existing_path(text, ""))


def output_file() -> Callable[[str], Path]:
    """A file option solcap will write: not empty, not a directory, its directory exists."""
    return _adapt(lambda text: limits.output_file(text, ""))


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a bad command line is one line on stderr and exit 2 like every UsageError.

    argparse prints the whole usage block before its message; solcap's rule is one line naming
    what is wrong (``--help`` still shows the usage).
    """

    def error(self, message: str) -> NoReturn:
        where = self.prog.removeprefix("solcap").strip()
        prefix = f"{where}: " if where else ""
        text = " ".join(f"{prefix}{message}".split())
        print(f"solcap: error: {text} (see {self.prog} --help)", file=sys.stderr)
        raise SystemExit(int(ExitStatus.USAGE))
