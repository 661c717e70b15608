"""One exception tree for all of solcap, so the CLI can map any failure to an exit code.

    SolcapError                      base; never raised directly
    ├── UsageError                   bad input: exit 2, one line naming file/line/field
    │   └── ConfigError              a file (profile, runbook, inventory) failed validation
    ├── TargetError                  the far side failed: exit 3, names the host and the cause
        ├── ConnectError             could not reach or open the console
        │   └── ConsoleBusy          the console is held by another client (SOL payload, BMC slot)
        ├── ConsoleClosed            the console went away (EOF) while we needed it
        ├── ExpectTimeout            a wait ran out before any pattern matched
        └── DeathStringSeen          the target printed a line that means it is dead (panic, …)
    └── RecordingError               the local disk failed (full, quota): exit 5, says what was kept

Foreign exceptions (OSError, serial.SerialException, pyghmi's dicts, paramiko's errors) are
translated once, at the boundary that sees them, with ``raise … from exc``.
"""

from __future__ import annotations

import enum
import re


class ExitStatus(enum.IntEnum):
    """Process exit codes; documented in docs/errors.md."""

    OK = 0
    FAILURE = 1  # an unexpected internal error (a bug in solcap)
    USAGE = 2  # bad input: command line, profile, runbook, inventory
    TARGET = 3  # the far side failed: unreachable, closed, timed out, died
    PARTIAL = 4  # a fleet run where some hosts succeeded and some failed
    RECORDING = 5  # the local recording could not be written (disk full, quota, permissions)
    HANGUP = 129  # SIGHUP (solcap console: the terminal went away)
    INTERRUPTED = 130  # SIGINT
    TERMINATED = 143  # SIGTERM

    @classmethod
    def for_signal(cls, signum: int) -> ExitStatus:
        """The status for a run ended by ``signum`` (128 + signal number, as shells do)."""
        try:
            return cls(128 + signum)
        except ValueError:
            return cls.FAILURE


class SolcapError(Exception):
    """Base of every error solcap raises on purpose."""

    exit_status: ExitStatus = ExitStatus.FAILURE

    def one_line(self) -> str:
        """The message shown to a person: a single line, no traceback."""
        return " ".join(str(self).split()) or type(self).__name__


class UsageError(SolcapError):
    """The user's input is wrong; nothing was sent anywhere because of it."""

    exit_status = ExitStatus.USAGE


class ConfigError(UsageError):
    """A file failed validation; the message names file, line and field."""

    def __init__(
        self, path: str, message: str, *, line: int | None = None, field: str | None = None
    ) -> None:
        self.path = path
        self.line = line
        self.field = field
        where = path if line is None else f"{path}:{line}"
        what = f"{field}: {message}" if field else message
        super().__init__(f"{where}: {what}")


class TargetError(SolcapError):
    """The far side (BMC, serial line, host) failed; the message names the host."""

    exit_status = ExitStatus.TARGET

    def __init__(self, host: str, message: str) -> None:
        self.host = host
        #: The cause without the host (for a caller that re-words it under another class).
        self.message = message
        super().__init__(f"{host}: {message}")


class ConnectError(TargetError):
    """The console could not be reached or opened."""


class ConsoleBusy(ConnectError):
    """Another client holds the console (an active SOL payload, a BMC's single console slot).

    One class for every transport, so an operator's script tells "busy, try later or steal"
    apart from "unreachable" the same way whatever the console is reached through.
    """


class ConsoleClosed(TargetError):
    """The console reached end of file while we were still using it."""


class ExpectTimeout(TargetError):
    """No pattern matched before the deadline."""


class DeathStringSeen(TargetError):
    """A death string (e.g. ``Panic on CPU``) appeared; waiting any longer is pointless."""

    def __init__(self, host: str, pattern: bytes, context: bytes) -> None:
        self.pattern = pattern
        self.context = context
        shown = context.decode("utf-8", "replace").strip()
        # Show a pattern as a person wrote it: "Panic on CPU", not b'Panic\\ on\\ CPU'.
        wanted = re.sub(r"\\([^A-Za-z0-9])", r"\1", pattern.decode("utf-8", "replace"))
        super().__init__(host, f"target died: {wanted!r} appeared: {shown!r}")


class RecordingError(SolcapError):
    """Writing the recording failed; the message says how many bytes are safely on disk."""

    exit_status = ExitStatus.RECORDING
