"""The host console a BMC offers over its own SSH service: OpenBMC, iDRAC, iLO, Supermicro.

Many BMCs give the host's serial console over SSH as well as (or instead of) IPMI SOL, and
operators often prefer it: encrypted with keys they already manage, no RMCP+ on the network.
Each vendor wraps it differently, so a *flavour* says how to get from login to console and
back (docs/bmc-ssh.md cites the vendor documentation for each):

    ssh+openbmc://user@bmc[:2200]   obmc-console: the SSH session is the console; leave ``\\r~.``
    ssh+idrac://user@idrac          ``console com2`` at the CLI prompt; leave Ctrl-\\
    ssh+ilo://user@ilo              ``vsp`` at ``hpiLO->``; leave ``Esc (``
    ssh+smc://user@bmc              ``cd /system1/sol1``, ``start``; leave Enter Esc T
    ssh+console://user@host?start=CMD&leave=SEQ   any other CLI (see :data:`GRAMMAR_OPTIONS`)

The guarantees are those of the other transports: the host key is verified exactly as for
Dom0 SSH (:func:`solcap.transports.ssh.connect`: known_hosts, refusal of an unknown or changed key),
a password comes only from ``env:NAME`` or a 0600 ``file:PATH``, a PTY is requested and bytes
pass untouched both ways (no local echo, no newline translation), and :meth:`close` leaves the
console with the flavour's own sequence and logs out of the CLI, because most BMCs have a
single console slot that a dropped session keeps busy until it times out.

A BMC that answers the start command with "in use" raises :class:`~solcap.errors.ConsoleBusy`,
the class a busy SOL payload raises too (exit 3). Taking the console over (``steal=1``) is done
only where a takeover command is known (``takeover=`` for ``ssh+console://``); none of the
four vendor CLIs documents one, so there ``steal=1`` is refused before connecting.

Query options (any flavour): ``key=PATH``, ``known_hosts=PATH``, ``password=env:NAME|file:PATH``,
``accept_new_host_key=1``, ``steal=1``, ``reconnect=0``, ``timeout=SECONDS``, and the grammar
options of :data:`GRAMMAR_OPTIONS` that override the flavour's.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import select
import threading
import time
import urllib.parse
from collections.abc import Mapping
from typing import Any, Final

import paramiko

from solcap.errors import ConnectError, ConsoleBusy, ConsoleClosed, SolcapError, UsageError
from solcap.transports import ssh
from solcap.transports.base import Transport
from solcap.transports.sequences import parse_sequence, show_sequence

__all__ = [
    "FLAVOURS",
    "GRAMMAR_OPTIONS",
    "BmcSshSpec",
    "BmcSshTransport",
    "Flavour",
    "open_bmc_ssh",
    "transport_factory",
]


@dataclasses.dataclass(frozen=True)
class Flavour:
    """How one BMC CLI goes from login to the host console and back."""

    name: str
    port: int = 22
    #: Regex matched at the end of the output: the CLI waits for a command. None: the session
    #: is the console from the first byte (OpenBMC).
    prompt: bytes | None = None
    #: Commands typed at the prompt in order (each followed by CR; a prompt between them).
    start: tuple[bytes, ...] = ()
    #: Regex: the console has started; bytes after the match are console bytes. None: the
    #: console starts after the command's echo line once ``settle`` seconds passed quietly
    #: enough for a refusal to have shown.
    ready: bytes | None = None
    #: Regex: the CLI says another session holds the console.
    busy: bytes | None = None
    #: Typed to leave the console (back to the CLI prompt, or end of session for OpenBMC).
    leave: bytes = b""
    #: Typed at the prompt after leaving, to log out (None: just close the channel).
    exit: bytes | None = b"exit"
    #: Start commands that take the console from another session (None: no takeover known).
    takeover: tuple[bytes, ...] | None = None
    #: In-band bytes that make the BMC send a serial BREAK (None: none documented).
    break_sequence: bytes | None = None
    #: Send BREAK as an SSH "break" channel request (RFC 4335) instead.
    ssh_break: bool = False
    #: Seconds to wait after the start command's echo for a refusal (``ready`` = None only).
    settle: float = 0.7


#: The common core of the vendors' "console in use" answers (their exact words are not all
#: documented: docs/bmc-ssh.md says which are; ``busy=`` overrides).
_BUSY_WORDS: Final = rb"(?i)(?:already in use|in use by another|is busy"

#: The vendor flavours; docs/bmc-ssh.md gives the source of every field.
FLAVOURS: Final[Mapping[str, Flavour]] = {
    "openbmc": Flavour(
        "openbmc",
        port=2200,
        leave=b"\r~.",  # obmc-console-client's escape (docs/console.md: "return ~ .")
        exit=None,
        ssh_break=True,
    ),
    "idrac": Flavour(
        "idrac",
        prompt=rb"(?:/admin1->|racadm>>) ?$",
        start=(b"console com2",),
        busy=_BUSY_WORDS + rb"|another (?:user|session) is)[^\r\n]*",
        leave=b"\x1c",  # Ctrl-\
    ),
    "ilo": Flavour(
        "ilo",
        prompt=rb"hpiLO-> ?$",
        start=(b"vsp",),
        ready=rb"Press 'ESC \(' to return to the CLI Session\.\r*\n",
        busy=_BUSY_WORDS + rb")[^\r\n]*",
        leave=b"\x1b(",
    ),
    "smc": Flavour(
        "smc",
        prompt=rb"-> ?$",
        start=(b"cd /system1/sol1", b"start"),
        busy=_BUSY_WORDS + rb"|already (?:active|started))[^\r\n]*",
        leave=b"\r\x1bT",  # "press <Enter>, <Esc>, and then <T> to terminate session"
    ),
    "console": Flavour("console"),
}

#: Query options that override a flavour's grammar (regexes as Python ``re`` syntax, commands
#: and sequences in the notation of :mod:`solcap.transports.sequences`; ``start`` and
#: ``takeover`` may repeat, one command each).
GRAMMAR_OPTIONS: Final = (
    "prompt",
    "start",
    "ready",
    "busy",
    "leave",
    "exit",
    "takeover",
    "break",
    "settle",
)
_CONNECTION_OPTIONS: Final = (
    "key",
    "known_hosts",
    "password",
    "accept_new_host_key",
    "steal",
    "reconnect",
    "timeout",
)
_TRUE: Final = ("1", "yes", "true", "on")
_FALSE: Final = ("0", "no", "false", "off")
#: Upper bound for login, prompt and start command.
START_TIMEOUT: Final = 15.0
#: How long :meth:`BmcSshTransport.close` waits for the prompt after the leave sequence.
LEAVE_TIMEOUT: Final = 3.0


def _flag(url: str, name: str, value: str) -> bool:
    low = value.lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise UsageError(f"{url}: {name} must be 0 or 1, got {value!r}")


def _regex(url: str, name: str, value: str) -> bytes:
    try:
        re.compile(value.encode())
    except re.error as exc:
        raise UsageError(f"{url}: {name}: not a valid regular expression: {exc}") from exc
    return value.encode()


@dataclasses.dataclass(frozen=True)
class BmcSshSpec:
    """A parsed ``ssh+FLAVOUR://`` address: where to log in, the grammar, the options."""

    url: str
    flavour: Flavour
    target: ssh.SshTarget
    steal: bool = False
    reconnect: bool = True

    @classmethod
    def parse(cls, url: str) -> BmcSshSpec:
        """Check everything (flavour, address, options, regexes) before any traffic."""
        parts = urllib.parse.urlsplit(url)
        scheme = parts.scheme.lower()
        kind = scheme.removeprefix("ssh+")
        if not scheme.startswith("ssh+") or kind not in FLAVOURS:
            known = ", ".join(f"ssh+{name}://" for name in FLAVOURS)
            raise UsageError(f"{url}: unknown BMC SSH flavour {scheme!r}; known: {known}")
        if not parts.hostname:
            raise UsageError(f"{url}: expected {scheme}://user@host[:port]")
        if parts.password is not None:
            raise UsageError(
                f"{scheme}://: a password in the URL would show up in argv and logs; "
                "use ?password=env:NAME or ?password=file:PATH (a 0600 file)"
            )
        if parts.path not in ("", "/") or parts.fragment:
            raise UsageError(f"{url}: unexpected path or fragment")
        try:
            port = parts.port
        except ValueError as exc:
            raise UsageError(f"{url}: bad port") from exc
        try:
            query = urllib.parse.parse_qsl(
                parts.query, keep_blank_values=True, strict_parsing=False
            )
        except ValueError as exc:
            raise UsageError(f"{url}: bad query: {exc}") from exc
        flavour = FLAVOURS[kind]
        grammar: dict[str, object] = {}
        starts: list[bytes] = []
        takeovers: list[bytes] = []
        options: dict[str, str] = {}
        for name, value in query:
            if name == "start":
                starts.append(parse_sequence(value, f"{url}: start"))
            elif name == "takeover":
                takeovers.append(parse_sequence(value, f"{url}: takeover"))
            elif name in ("prompt", "ready", "busy"):
                grammar[name] = _regex(url, name, value) if value else None
            elif name == "leave":
                grammar["leave"] = parse_sequence(value, f"{url}: leave")
            elif name == "exit":
                grammar["exit"] = parse_sequence(value, f"{url}: exit") if value else None
            elif name == "break":
                if value == "ssh":
                    grammar["ssh_break"] = True
                    grammar["break_sequence"] = None
                else:
                    grammar["ssh_break"] = False
                    grammar["break_sequence"] = parse_sequence(value, f"{url}: break") or None
            elif name == "settle":
                grammar["settle"] = _seconds(url, name, value)
            elif name in _CONNECTION_OPTIONS:
                if name in options:
                    raise UsageError(f"{url}: {name} given twice")
                options[name] = value
            else:
                allowed = ", ".join(sorted((*_CONNECTION_OPTIONS, *GRAMMAR_OPTIONS)))
                raise UsageError(f"{url}: unknown option {name!r} (allowed: {allowed})")
        if starts:
            grammar["start"] = tuple(starts)
        if takeovers:
            grammar["takeover"] = tuple(takeovers)
        flavour = dataclasses.replace(flavour, **grammar)  # type: ignore[arg-type]
        if kind == "console" and not flavour.start and flavour.prompt is None:
            pass  # a plain SSH session that is the console (like OpenBMC), allowed
        if flavour.start and flavour.prompt is None:
            raise UsageError(f"{url}: start= needs prompt=REGEX (the CLI's prompt)")
        if not flavour.leave and kind == "console" and flavour.start:
            raise UsageError(f"{url}: ssh+console:// with start= needs leave=SEQUENCE")
        password = options.get("password")
        if password is not None and not password.startswith(("env:", "file:")):
            raise UsageError(
                f"{scheme}://: password must be env:NAME or file:PATH (never the password)"
            )
        steal = _flag(url, "steal", options.get("steal", "0"))
        if steal and flavour.takeover is None:
            raise UsageError(
                f"{url}: {scheme}:// has no documented takeover, so steal=1 cannot be honoured; "
                "free the console on the BMC (or give ssh+console:// a takeover= command)"
            )
        user = urllib.parse.unquote(parts.username) if parts.username else None
        target = ssh.SshTarget(
            host=parts.hostname,
            user=user or os.environ.get("USER", "root"),
            port=port or flavour.port,
            key_file=options.get("key") or None,
            password=password,
            known_hosts=options.get("known_hosts") or None,
            accept_new_host_key=_flag(
                url, "accept_new_host_key", options.get("accept_new_host_key", "0")
            ),
            connect_timeout=_seconds(url, "timeout", options.get("timeout", "15")),
        )
        return cls(
            url=url,
            flavour=flavour,
            target=target,
            steal=steal,
            reconnect=_flag(url, "reconnect", options.get("reconnect", "1")),
        )

    @property
    def name(self) -> str:
        """``ssh+idrac://root@host:22`` without the query (for messages and recordings)."""
        return f"ssh+{self.flavour.name}://{self.target.display}"


def _seconds(url: str, name: str, value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        raise UsageError(f"{url}: {name} must be a number of seconds, got {value!r}") from None
    if not 0 < seconds <= 3600:
        raise UsageError(f"{url}: {name} must be between 0 and 3600 seconds")
    return seconds


def _last_line(data: bytes) -> str:
    lines = [x.strip() for x in data.decode("utf-8", "replace").splitlines() if x.strip()]
    return lines[-1] if lines else "(nothing)"


class BmcSshTransport(Transport):
    """One logged-in BMC SSH session whose channel now carries the host console."""

    interruptible = True

    def __init__(self, spec: BmcSshSpec, connection: ssh.SshConnection) -> None:
        self.spec = spec
        self.name = spec.name
        self._host = spec.target.display
        self._connection = connection
        self._channel: paramiko.Channel | None = None
        self._pending = b""
        #: What the CLI printed before the console started (banner, prompt, echo).
        self.preamble = b""
        self._lock = threading.Lock()  # one reader of the channel at a time
        self._closed = False
        self._leaving = False
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        #: True once close() saw the CLI prompt again after the leave sequence.
        self.left_cleanly = False
        self._started = False

    # ---- opening ---------------------------------------------------------------------------
    def open(self) -> BmcSshTransport:
        """Open the channel with a PTY and walk the flavour's start grammar to the console."""
        try:
            channel = self._connection.live_transport().open_session(timeout=START_TIMEOUT)
            # A terminal type the BMC CLIs know; the console's bytes are not interpreted here.
            channel.get_pty(term="vt100", width=80, height=24)
            channel.invoke_shell()
        except (paramiko.SSHException, OSError, EOFError) as exc:
            raise ConnectError(self._host, f"cannot open the console channel: {exc}") from exc
        self._channel = channel
        self._start(time.monotonic() + START_TIMEOUT)
        self._started = True
        return self

    def _recv(self, deadline: float, seen: bytearray, waiting_for: str) -> None:
        """Append what arrives before ``deadline`` to ``seen``; EOF there is a ConnectError."""
        channel = self._channel
        assert channel is not None
        left = max(0.0, deadline - time.monotonic())
        readable, _, _ = select.select([channel], [], [], min(left, 0.1))
        if not readable and not channel.recv_ready():
            if channel.exit_status_ready() or channel.closed:
                raise ConnectError(
                    self._host,
                    f"the BMC ended the session while {waiting_for}: {_last_line(bytes(seen))!r}",
                )
            return
        data = channel.recv(65536)
        if not data:
            raise ConnectError(
                self._host,
                f"the BMC ended the session while {waiting_for}: {_last_line(bytes(seen))!r}",
            )
        seen += data

    def _check_busy(self, seen: bytes) -> None:
        busy = self.spec.flavour.busy
        if busy is None:
            return
        m = re.search(busy, seen)
        if m is None:
            return
        start = max(seen.rfind(b"\n", 0, m.start()), seen.rfind(b"\r", 0, m.start())) + 1
        ends = [i for i in (seen.find(b"\r", m.end()), seen.find(b"\n", m.end())) if i >= 0]
        said = seen[start : min(ends, default=len(seen))].decode("utf-8", "replace").strip()
        raise ConsoleBusy(
            self._host,
            f"the console is in use by another session (the BMC said {said!r}); "
            + (
                "add steal=1 to take it over"
                if self.spec.flavour.takeover is not None
                else f"ssh+{self.spec.flavour.name}:// has no takeover: free it on the BMC"
            ),
        )

    def _wait_prompt(self, deadline: float, seen: bytearray, after: str) -> None:
        prompt = self.spec.flavour.prompt
        assert prompt is not None
        while not re.search(prompt, bytes(seen[-256:])):
            self._check_busy(bytes(seen))
            if time.monotonic() >= deadline:
                raise ConnectError(
                    self._host,
                    f"no CLI prompt ({prompt.decode()!r}) {after}; last output "
                    f"{_last_line(bytes(seen))!r}",
                )
            self._recv(deadline, seen, "waiting for the CLI prompt")

    def _send(self, data: bytes) -> None:
        assert self._channel is not None
        try:
            self._channel.sendall(data)
        except (OSError, paramiko.SSHException, EOFError) as exc:
            raise ConnectError(self._host, f"cannot send to the BMC: {exc}") from exc

    def _start(self, deadline: float) -> None:
        flavour = self.spec.flavour
        seen = bytearray()
        commands = flavour.takeover if self.spec.steal else flavour.start
        assert commands is not None  # parse() refused steal without takeover
        if flavour.prompt is None:
            return  # the session is the console (OpenBMC)
        preamble = bytearray()
        self._wait_prompt(deadline, seen, "after login")
        for command in commands:
            preamble += seen
            seen.clear()
            self._send(command + b"\r")
            if command is not commands[-1]:
                self._wait_prompt(deadline, seen, f"after {command.decode(errors='replace')!r}")
        self._await_console(deadline, seen, commands[-1] if commands else b"")
        self.preamble = bytes(preamble)

    def _await_console(self, deadline: float, seen: bytearray, command: bytes) -> None:
        """After the start command: the ready banner (or the settle time), a busy answer, or
        the prompt again (the command was refused)."""
        flavour = self.spec.flavour
        shown = command.decode("utf-8", "replace")
        echo_end: int | None = None
        echo_at = 0.0
        while True:
            data = bytes(seen)
            self._check_busy(data)
            if echo_end is None and b"\n" in data:
                echo_end = data.index(b"\n") + 1
                echo_at = time.monotonic()
            rest = data[echo_end:] if echo_end is not None else b""
            if flavour.ready is not None:
                m = re.search(flavour.ready, data)
                if m is not None:
                    self._pending = data[m.end() :]
                    return
            elif echo_end is not None and time.monotonic() - echo_at >= flavour.settle:
                self._pending = rest
                return
            if (
                flavour.prompt is not None
                and echo_end is not None
                and re.search(flavour.prompt, rest[-256:])
            ):
                raise ConnectError(self._host, f"the BMC refused {shown!r}: {_last_line(rest)!r}")
            if time.monotonic() >= deadline:
                raise ConnectError(
                    self._host, f"no console after {shown!r}; last output {_last_line(data)!r}"
                )
            self._recv(deadline, seen, f"starting the console ({shown!r})")

    # ---- Transport -------------------------------------------------------------------------
    def read(self, max_bytes: int, timeout: float) -> bytes:
        if self._pending:
            data, self._pending = self._pending[:max_bytes], self._pending[max_bytes:]
            return data
        channel = self._channel
        if self._closed or self._leaving or channel is None:
            raise ConsoleClosed(self._host, "console was closed locally")
        with self._lock:
            if not channel.recv_ready():
                waitables: list[Any] = [channel, self._wake_r]
                readable, _, _ = select.select(waitables, [], [], timeout)
                if self._wake_r in readable:
                    with contextlib.suppress(BlockingIOError):
                        os.read(self._wake_r, 4096)
                    if not channel.recv_ready():
                        return b""
                if self._leaving:
                    return b""
                if not channel.recv_ready() and not (channel.eof_received or channel.closed):
                    return b""
            try:
                data = channel.recv(max_bytes)
            except (OSError, paramiko.SSHException, EOFError) as exc:
                raise ConsoleClosed(self._host, f"the SSH session failed: {exc}") from exc
        if not data:
            raise ConsoleClosed(self._host, "the BMC ended the console session")
        return data

    def interrupt(self) -> None:
        with contextlib.suppress(BlockingIOError, OSError):
            os.write(self._wake_w, b"x")

    def write(self, data: bytes) -> None:
        channel = self._channel
        if self._closed or channel is None or channel.closed:
            raise ConsoleClosed(self._host, "the console session is closed")
        try:
            channel.sendall(data)
        except (OSError, paramiko.SSHException, EOFError) as exc:
            raise ConsoleClosed(self._host, f"the SSH session failed: {exc}") from exc

    def send_break(self) -> None:
        flavour = self.spec.flavour
        if flavour.break_sequence is not None:
            self.write(flavour.break_sequence)
            return
        if not flavour.ssh_break:
            raise NotImplementedError(
                f"ssh+{flavour.name}:// has no documented way to send a serial BREAK"
            )
        channel = self._channel
        if channel is None or channel.closed:
            raise ConsoleClosed(self._host, "the console session is closed")
        if not _request_break(channel):
            raise ConnectError(self._host, "the BMC refused the SSH break request")

    def close(self) -> None:
        """Leave the console with the flavour's sequence, log out of the CLI, disconnect."""
        if self._closed:
            return
        self._leaving = True
        self.interrupt()
        with self._lock:  # wait for a read in flight (the Console's reader stops first anyway)
            self._closed = True
        try:
            self._leave()
        finally:
            channel = self._channel
            if channel is not None:
                with contextlib.suppress(Exception):
                    channel.close()
            self._connection.close()
            for fd in (self._wake_r, self._wake_w):
                with contextlib.suppress(OSError):
                    os.close(fd)

    def _leave(self) -> None:
        flavour = self.spec.flavour
        channel = self._channel
        if channel is None or channel.closed:
            return
        deadline = time.monotonic() + LEAVE_TIMEOUT
        seen = bytearray()
        try:
            if self._started and flavour.leave:
                channel.sendall(flavour.leave)
                if flavour.prompt is None:
                    # The session ends with the console (OpenBMC): wait for the far side.
                    while time.monotonic() < deadline and not channel.exit_status_ready():
                        self._recv(deadline, seen, "leaving")
                    self.left_cleanly = channel.exit_status_ready()
                    return
                shown = show_sequence(flavour.leave)
                self._wait_prompt(deadline, seen, f"after the leave sequence {shown!r}")
                self.left_cleanly = True
            if flavour.prompt is not None and flavour.exit is not None:
                channel.sendall(flavour.exit + b"\r")
                seen.clear()
                while time.monotonic() < deadline and not channel.exit_status_ready():
                    self._recv(deadline, seen, "logging out")
        except (SolcapError, OSError, paramiko.SSHException, EOFError):
            return  # the session is going away regardless; closing it frees the slot too


def _request_break(channel: paramiko.Channel, length_ms: int = 500) -> bool:
    """Send an RFC 4335 "break" channel request and wait for the reply.

    paramiko has no public call for it; this mirrors how its own ``get_pty`` sends a
    channel request with want-reply (message layout from RFC 4335 section 3).
    """
    from paramiko.common import cMSG_CHANNEL_REQUEST
    from paramiko.message import Message

    message = Message()
    message.add_byte(cMSG_CHANNEL_REQUEST)
    message.add_int(channel.remote_chanid)
    message.add_string("break")
    message.add_boolean(True)
    message.add_int(length_ms)
    raw: Any = channel  # private API: see the docstring
    raw._event_pending()
    raw.transport._send_user_message(message)
    try:
        raw._wait_for_event()
    except paramiko.SSHException:
        return False
    return True


def open_bmc_ssh(url: str, *, steal: bool | None = None) -> BmcSshTransport:
    """Log in to the BMC at ``url`` and start the host console; see the module docstring."""
    spec = BmcSshSpec.parse(url)
    if steal is not None and steal != spec.steal:
        if steal and spec.flavour.takeover is None:
            raise UsageError(f"{spec.name}: no documented takeover for this flavour")
        spec = dataclasses.replace(spec, steal=steal)
    connection = ssh.connect(spec.target)
    transport = BmcSshTransport(spec, connection)
    try:
        return transport.open()
    except BaseException:
        transport.close()
        raise


def transport_factory(target: str, options: object = None) -> Transport:
    """The ``ssh+FLAVOUR://`` factory for :mod:`solcap.transports.registry`: one connection.

    Reconnection (gap events in the recording) is :func:`solcap.connect.open_console`'s job,
    on unless the address says ``reconnect=0``; the line settings in ``options`` do not apply
    (the BMC owns the serial line), and the password comes from the address's own
    ``password=env:NAME|file:PATH`` reference.
    """
    return open_bmc_ssh(target)
