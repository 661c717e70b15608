"""A local command on a pty as the console: through the console server a site already runs.

Many sites' BMCs are already held by conserver or ConMan, so a second SOL session is refused;
the way in is their own client. ``exec:CMD`` runs CMD (split like a shell would, run without
one) on a fresh pseudo-terminal and treats that terminal as the console:

    exec:console -M cs1 -f node17          conserver: attach read-write, forcing (-f)
    exec:conman -d cm1:7890 -j node17      ConMan: join (-j) the console
    exec:ipmitool -I lanplus -H bmc -U admin -E sol activate     a fallback for a BMC quirk

Each far tool's grammar is known (:data:`TOOLS`): the banner that says it is attached (bytes
before it are the tool's, not the console's), its "console in use" answer (raised as
:class:`~solcap.errors.ConsoleBusy`, as a busy SOL payload is), its break, and its leave
sequence, which :meth:`ExecTransport.close` types so the tool detaches cleanly (conserver
``^Ec.``, ConMan ``&.``, ipmitool ``~.``) before it is signalled. Passwords never go in argv:
an ``ipmitool`` with ``-P`` is refused (use ``-E``: it reads ``IPMI_PASSWORD`` from the
environment, which the child inherits). An unknown program is allowed; it gets no leave
sequence and is ended with SIGHUP, then SIGTERM.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import select
import shlex
import signal
import time
from collections.abc import Mapping, Sequence
from typing import Final

import ptyprocess

from solcap.errors import ConnectError, ConsoleBusy, ConsoleClosed, UsageError
from solcap.transports.base import Transport

__all__ = ["TOOLS", "ExecTransport", "FarTool", "open_exec", "parse_exec", "transport_factory"]

SCHEME: Final = "exec:"
#: Upper bound for the tool to say it is attached.
START_TIMEOUT: Final = 15.0
#: How long close() waits for the tool to leave after its leave sequence.
LEAVE_TIMEOUT: Final = 3.0


@dataclasses.dataclass(frozen=True)
class FarTool:
    """What solcap knows of one console client program."""

    name: str
    #: Regex: the tool is attached; console bytes follow the match.
    ready: bytes | None = None
    #: Regex: the console is held by another writer (the tool did not attach).
    busy: bytes | None = None
    #: Typed to make the tool detach and exit.
    leave: bytes | None = None
    #: Typed to make the tool send a serial BREAK.
    break_sequence: bytes | None = None
    #: Options that put a secret in argv (refused).
    secret_options: tuple[str, ...] = ()


#: By program name (argv[0]'s base name). Sources: conserver's console(1) ("^Ec." disconnect,
#: "^Ecl0" send break, the "[Enter `^Ec?' for help]" greeting); ConMan's conman(1) ("&."
#: close, "&B" serial break; "Connection to console [X] opened."; "Found console already in
#: use"); ipmitool(1) SOL escapes ("~." terminate, "~B" break; "[SOL Session operational.  Use
#: ~? for help]"; "SOL payload already active on another session"); FreeIPMI
#: ipmiconsole(8) ("&." close, "&B" break, "[SOL established]"). docs/console-servers.md.
TOOLS: Final[Mapping[str, FarTool]] = {
    "console": FarTool(
        "conserver",
        ready=rb"\[Enter `\^Ec\?' for help\]\r*\n",
        busy=rb"\[(?:console is (?:in use|down)|no write access)[^\]]*\]",
        leave=b"\x05c.",
        break_sequence=b"\x05cl0",
    ),
    "conman": FarTool(
        "conman",
        ready=rb"<ConMan> Connection to console \[[^\]]*\] opened\.\r*\n",
        busy=rb"Found console already in use\.",
        leave=b"&.",
        break_sequence=b"&B",
    ),
    "ipmitool": FarTool(
        "ipmitool",
        ready=rb"\[SOL Session operational\.[^\]]*\]\r*\n",
        busy=rb"SOL payload already active on another session",
        leave=b"\r~.",
        break_sequence=b"\r~B",
        secret_options=("-P", "-k", "-y"),
    ),
    "ipmiconsole": FarTool(
        "ipmiconsole",
        ready=rb"\[SOL established\]\r*\n",
        busy=rb"SOL in use",
        leave=b"&.",
        break_sequence=b"&B",
        secret_options=("-p", "--password", "-k", "--k-g"),
    ),
}


def parse_exec(target: str) -> list[str]:
    """``exec:CMD`` → argv; bad quoting, an empty command or a secret in argv → UsageError."""
    command = target[len(SCHEME) :].removeprefix("//")
    try:
        argv = shlex.split(command)
    except ValueError as exc:
        raise UsageError(f"{target!r}: cannot split the command: {exc}") from None
    if not argv:
        raise UsageError(f'{target!r}: exec: needs a command, e.g. exec:"conman -j node17"')
    tool = TOOLS.get(os.path.basename(argv[0]))
    if tool is not None:
        for arg in argv[1:]:
            for option in tool.secret_options:
                if arg == option or (arg.startswith(option) and not option.startswith("--")):
                    raise UsageError(
                        f"{argv[0]} {option}: a secret in argv shows in /proc/PID/cmdline to "
                        "every local user; use -E with IPMI_PASSWORD in the environment"
                    )
                if option.startswith("--") and arg.startswith(option + "="):
                    raise UsageError(f"{argv[0]} {option}: a secret in argv is refused")
    return argv


class ExecTransport(Transport):
    """A child process on a pty; its terminal is the console."""

    interruptible = True

    def __init__(self, argv: Sequence[str], *, env: Mapping[str, str] | None = None) -> None:
        self.argv = list(argv)
        self.tool = TOOLS.get(os.path.basename(self.argv[0]), FarTool(self.argv[0]))
        self.name = f"exec:{shlex.join(self.argv)}"
        self._host = os.path.basename(self.argv[0])
        self._pending = b""
        self._closed = False
        #: What the tool printed before it was attached.
        self.preamble = b""
        self.left_cleanly = False
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        try:
            self._proc = ptyprocess.PtyProcess.spawn(
                self.argv, env=dict(os.environ if env is None else env), dimensions=(24, 80)
            )
        except (OSError, FileNotFoundError) as exc:
            self._close_pipe()
            raise ConnectError(self._host, f"cannot run {self.argv[0]!r}: {exc}") from exc
        self._fd: int = self._proc.fd

    def _close_pipe(self) -> None:
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)

    def start(self, timeout: float = START_TIMEOUT) -> ExecTransport:
        """Wait for the tool's attached banner (if it has one); a busy answer raises."""
        ready = self.tool.ready
        if ready is None:
            return self
        seen = bytearray()
        deadline = time.monotonic() + timeout
        while True:
            if self.tool.busy is not None and (m := re.search(self.tool.busy, seen)):
                said = m.group(0).decode("utf-8", "replace")
                raise ConsoleBusy(
                    self._host,
                    f"the console is in use by another client ({self.tool.name} said {said!r})",
                )
            m = re.search(ready, seen)
            if m is not None:
                self.preamble = bytes(seen[: m.end()])
                self._pending = bytes(seen[m.end() :])
                return self
            left = deadline - time.monotonic()
            if left <= 0:
                raise ConnectError(
                    self._host,
                    f"{self.tool.name} did not attach within {timeout:g} s: "
                    f"{_last_line(bytes(seen))!r}",
                )
            readable, _, _ = select.select([self._fd], [], [], min(left, 0.2))
            if readable:
                try:
                    data = os.read(self._fd, 65536)
                except OSError:
                    data = b""
                if not data:
                    raise ConnectError(
                        self._host,
                        f"{self.tool.name} exited before attaching ({self._status()}): "
                        f"{_last_line(bytes(seen))!r}",
                    )
                seen += data

    def _status(self) -> str:
        with contextlib.suppress(Exception):
            self._proc.wait()
        status = self._proc.exitstatus
        return f"exit status {status}" if status is not None else "killed by a signal"

    # ---- Transport -------------------------------------------------------------------------
    def read(self, max_bytes: int, timeout: float) -> bytes:
        if self._pending:
            data, self._pending = self._pending[:max_bytes], self._pending[max_bytes:]
            return data
        if self._closed:
            raise ConsoleClosed(self._host, "console was closed locally")
        readable, _, _ = select.select([self._fd, self._wake_r], [], [], timeout)
        if self._wake_r in readable:
            with contextlib.suppress(BlockingIOError, OSError):
                os.read(self._wake_r, 4096)
        if self._fd not in readable or self._closed:
            return b""
        try:
            data = os.read(self._fd, max_bytes)
        except OSError:  # EIO: the child closed its side of the pty
            data = b""
        if not data:
            raise ConsoleClosed(self._host, f"{self.tool.name} ended ({self._status()})")
        return data

    def interrupt(self) -> None:
        with contextlib.suppress(BlockingIOError, OSError):
            os.write(self._wake_w, b"x")

    def write(self, data: bytes) -> None:
        if self._closed:
            raise ConsoleClosed(self._host, "console was closed locally")
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self._fd, view) :]
        except OSError as exc:
            raise ConsoleClosed(self._host, f"{self.tool.name} is gone: {exc}") from exc

    def send_break(self) -> None:
        if self.tool.break_sequence is None:
            raise NotImplementedError(f"{self.tool.name}: no known way to send a BREAK")
        self.write(self.tool.break_sequence)

    def close(self) -> None:
        """Type the tool's leave sequence and wait for it to exit; then signal it."""
        if self._closed:
            return
        self._closed = True
        self.interrupt()
        proc = self._proc
        try:
            if self.tool.leave is not None and proc.isalive():
                with contextlib.suppress(OSError):
                    os.write(self._fd, self.tool.leave)
                deadline = time.monotonic() + LEAVE_TIMEOUT
                while proc.isalive() and time.monotonic() < deadline:
                    # Drain so the tool never blocks writing its goodbye.
                    readable, _, _ = select.select([self._fd], [], [], 0.1)
                    if readable:
                        with contextlib.suppress(OSError):
                            os.read(self._fd, 65536)
                self.left_cleanly = not proc.isalive()
            for sig in (signal.SIGHUP, signal.SIGTERM, signal.SIGKILL):
                if not proc.isalive():
                    break
                with contextlib.suppress(OSError):
                    proc.kill(sig)
                deadline = time.monotonic() + 1.0
                while proc.isalive() and time.monotonic() < deadline:
                    time.sleep(0.02)  # the child is exiting: poll its state, bounded
        finally:
            with contextlib.suppress(Exception):
                proc.close(force=True)
            self._close_pipe()


def _last_line(data: bytes) -> str:
    lines = [x.strip() for x in data.decode("utf-8", "replace").splitlines() if x.strip()]
    return lines[-1] if lines else "(nothing)"


def open_exec(target: str, *, env: Mapping[str, str] | None = None) -> ExecTransport:
    """Run ``exec:CMD`` and wait until its tool is attached to the console."""
    transport = ExecTransport(parse_exec(target), env=env)
    try:
        return transport.start()
    except BaseException:
        transport.close()
        raise


def transport_factory(target: str, options: object = None) -> Transport:
    """The ``exec:`` factory for :mod:`solcap.transports.registry` (the options' line settings
    do not apply: the far tool owns the line)."""
    return open_exec(target)


def via_command(via: str, name: str, server: str | None = None, *, where: str = "via") -> str:
    """The ``exec:`` target an inventory's ``via: conserver|conman`` builds.

    conserver: ``console [-M HOST] [-p PORT] -f NAME`` (attach read-write, forcing);
    ConMan: ``conman [-d HOST[:PORT]] -j NAME`` (join).
    """
    quoted = shlex.quote(name)
    if via == "conserver":
        options = ""
        if server:
            host, _, port = server.rpartition(":") if server.count(":") == 1 else (server, "", "")
            host = host or server
            options = f"-M {shlex.quote(host)} " + (f"-p {shlex.quote(port)} " if port else "")
        return f"exec:console {options}-f {quoted}"
    if via == "conman":
        options = f"-d {shlex.quote(server)} " if server else ""
        return f"exec:conman {options}-j {quoted}"
    raise UsageError(f"{where}: expected conserver or conman, got {via!r}")
