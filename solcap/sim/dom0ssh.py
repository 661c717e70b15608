"""The virtual host's Dom0 over SSH: a paramiko server on 127.0.0.1.

Why it exists: solcap's Dom0 paths (``xl dmesg``, ``xl debug-keys K`` while the serial line
records the dump, file fetches) must be tested end to end against a Dom0 that is consistent
with the simulated Xen, without a lab machine. Every command runs through
:meth:`VirtualHost.dom0_run`, i.e. on the host's machine thread like a line typed at the
console shell: ``xl debug-keys q`` puts its dump on the *serial* line (and into Xen's ring and
``host.dumps``), and stdout comes back over the SSH channel.

What a real client sends is a shell line, not a bare command (:mod:`solcap.transports.ssh` wraps
every command as ``sh -c 'PATH=…; export PATH; CMD'``), so a tiny shell is modelled here: ``sh -c``,
``;``/``&&``/``||`` lists, ``NAME=value`` assignments, ``export``, ``exec``, ``2>/dev/null``,
and ``|`` into ``grep`` (the shell's own filter; ``grep PATTERN FILE`` reads the file with
Dom0's ``cat``) — anything else is one Dom0 command line. Exit status 127 for unknown commands
(message on stderr), as bash does.

SFTP serves a plain directory (``sftp_root``), e.g. for xentrace output a runbook fetches.
Authentication: public keys in ``authorized_keys`` and/or one password (compared in constant
time); one user name. This module imports only the stdlib, paramiko and ``solcap.sim``.
"""

from __future__ import annotations

import contextlib
import hmac
import os
import re
import shlex
import socket
import stat
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import paramiko
from paramiko.common import (
    AUTH_FAILED,
    AUTH_SUCCESSFUL,
    OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED,
    OPEN_SUCCEEDED,
)
from paramiko.sftp import SFTP_OK

from solcap.sim.host import VirtualHost

#: Exit status of a command the shell does not know, and of a Dom0 that is not running.
NOT_FOUND = 127
NO_DOM0 = 255
#: Longest wait for a client's EOF before the server closes an exec channel itself.
CLOSE_GRACE = 2.0


#: One command's words; a pipeline of commands; a list of pipelines joined by ``;``, ``&&``
#: or ``||`` (the connector that precedes each pipeline; ``;`` for the first).
Words = list[str]
Script = list[tuple[str, list[Words]]]

_SHELLS = ("sh", "bash", "/bin/sh")
_CONNECTORS = (";", "&&", "||")


def parse_script(command: str) -> Script | None:
    """The pipelines a shell line runs, in order (None: beyond this little shell).

    ``sh -c 'PATH=/x:"$PATH"; export PATH; xl dmesg | grep -i hap || echo none'`` →
    ``[(";", [["xl", "dmesg"], ["grep", "-i", "hap"]]), ("||", [["echo", "none"]])]``.
    Assignments, ``export`` and ``exec`` are dropped; ``2>/dev/null`` and ``>/dev/null``
    discard a stream; other redirections, background jobs and subshells are refused.
    """
    try:
        lexer = shlex.shlex(command, posix=True, punctuation_chars=";&|<>")
        lexer.whitespace_split = True
        tokens = list(lexer)
    except ValueError:
        return None
    if len(tokens) >= 3 and tokens[0] in _SHELLS and tokens[1] == "-c":
        return parse_script(tokens[2])
    script: Script = []
    connector = ";"
    pipeline: list[Words] = []
    words: Words = []
    redirect: str | None = None

    def end_command() -> bool:
        nonlocal words
        while words and ("=" in words[0] and not words[0].startswith("=")):
            words.pop(0)  # NAME=value prefix assignments
        if words and words[0] == "exec":
            words.pop(0)
        if words and words[0] == "sudo":  # solcap's "sudo -S -p '' -- CMD": root already
            words = words[words.index("--") + 1 :] if "--" in words else words[1:]
        if words and words[0] in _SHELLS and len(words) >= 3 and words[1] == "-c":
            inner = parse_script(words[2])
            if inner is None or len(inner) != 1 or len(inner[0][1]) != 1:
                return False  # a nested list or pipeline: not modelled
            words = inner[0][1][0]
        if words and words[0] != "export":
            pipeline.append(words)
        words = []
        return True

    for token in [*tokens, ";"]:
        if redirect is not None:
            if token != "/dev/null":
                return None  # only discarding a stream is modelled
            redirect = None
        elif token in (">", ">>"):
            if words and words[-1] in ("1", "2"):
                words.pop()
            redirect = token
        elif token == "|":
            if not words or not end_command():
                return None
        elif token in _CONNECTORS:
            if not end_command():
                return None
            if pipeline:
                script.append((connector, pipeline))
            elif token != ";" or connector != ";":
                return None  # "&& ||" with nothing before it
            connector, pipeline = token, []
        elif token and set(token) <= set(";&|<>"):
            return None  # background jobs, input redirection, "|&", …
        else:
            words.append(token)
    return script


class _Server(paramiko.ServerInterface):
    """One connection's policy: who may log in, and what a session channel may do."""

    def __init__(self, owner: Dom0SshServer) -> None:
        self.owner = owner

    def get_allowed_auths(self, username: str) -> str:
        kinds = []
        if self.owner.authorized_keys:
            kinds.append("publickey")
        if self.owner.password is not None:
            kinds.append("password")
        return ",".join(kinds) or "none"

    def check_auth_publickey(self, username: str, key: paramiko.PKey) -> int:
        if username == self.owner.username and any(
            key.get_name() == k.get_name() and key.asbytes() == k.asbytes()
            for k in self.owner.authorized_keys
        ):
            return AUTH_SUCCESSFUL
        return AUTH_FAILED

    def check_auth_password(self, username: str, password: str) -> int:
        wanted = self.owner.password
        if (
            wanted is not None
            and username == self.owner.username
            and hmac.compare_digest(password.encode(), wanted.encode())
        ):
            return AUTH_SUCCESSFUL
        return AUTH_FAILED

    def check_channel_request(self, kind: str, chanid: int) -> int:
        if kind == "session":
            return OPEN_SUCCEEDED
        return OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED

    def check_channel_exec_request(self, channel: paramiko.Channel, command: bytes) -> bool:
        text = command.decode("utf-8", "replace")
        thread = threading.Thread(
            target=self.owner._exec, args=(channel, text), name="sim-dom0-exec", daemon=True
        )
        thread.start()
        return True


class _SftpHandle(paramiko.SFTPHandle):
    def __init__(self, file: Any, flags: int) -> None:
        super().__init__(flags)
        self.readfile = file
        self.writefile = file

    def stat(self) -> paramiko.SFTPAttributes | int:
        try:
            return paramiko.SFTPAttributes.from_stat(os.fstat(self.readfile.fileno()))
        except OSError as exc:
            return paramiko.SFTPServer.convert_errno(exc.errno or 0)


class _Sftp(paramiko.SFTPServerInterface):
    """A plain directory as the SFTP view of Dom0's filesystem (``/`` = ``root``)."""

    def __init__(self, server: _Server, *args: Any, **kwargs: Any) -> None:
        super().__init__(server, *args, **kwargs)
        self.root = server.owner.sftp_root

    def _real(self, path: str) -> str:
        assert self.root is not None
        clean = os.path.normpath("/" + self.canonicalize(path)).lstrip("/")
        return os.path.join(self.root, clean)

    def _err(self, exc: OSError) -> int:
        return paramiko.SFTPServer.convert_errno(exc.errno or 0)

    def list_folder(self, path: str) -> list[paramiko.SFTPAttributes] | int:
        real = self._real(path)
        try:
            out = []
            for name in os.listdir(real):
                attr = paramiko.SFTPAttributes.from_stat(os.lstat(os.path.join(real, name)))
                attr.filename = name
                out.append(attr)
            return out
        except OSError as exc:
            return self._err(exc)

    def stat(self, path: str) -> paramiko.SFTPAttributes | int:
        try:
            return paramiko.SFTPAttributes.from_stat(os.stat(self._real(path)))
        except OSError as exc:
            return self._err(exc)

    def lstat(self, path: str) -> paramiko.SFTPAttributes | int:
        try:
            return paramiko.SFTPAttributes.from_stat(os.lstat(self._real(path)))
        except OSError as exc:
            return self._err(exc)

    def open(
        self, path: str, flags: int, attr: paramiko.SFTPAttributes
    ) -> paramiko.SFTPHandle | int:
        real = self._real(path)
        mode = getattr(attr, "st_mode", None) or 0o644
        try:
            fd = os.open(real, flags | os.O_NOFOLLOW | os.O_CLOEXEC, stat.S_IMODE(mode))
        except OSError as exc:
            return self._err(exc)
        if flags & os.O_WRONLY:
            fmode = "ab" if flags & os.O_APPEND else "wb"
        elif flags & os.O_RDWR:
            fmode = "a+b" if flags & os.O_APPEND else "r+b"
        else:
            fmode = "rb"
        return _SftpHandle(os.fdopen(fd, fmode), flags)

    def remove(self, path: str) -> int:
        try:
            os.remove(self._real(path))
        except OSError as exc:
            return self._err(exc)
        return SFTP_OK

    def rename(self, oldpath: str, newpath: str) -> int:
        try:
            os.rename(self._real(oldpath), self._real(newpath))
        except OSError as exc:
            return self._err(exc)
        return SFTP_OK

    def posix_rename(self, oldpath: str, newpath: str) -> int:
        return self.rename(oldpath, newpath)

    def mkdir(self, path: str, attr: paramiko.SFTPAttributes) -> int:
        try:
            os.mkdir(self._real(path), stat.S_IMODE(getattr(attr, "st_mode", None) or 0o755))
        except OSError as exc:
            return self._err(exc)
        return SFTP_OK

    def rmdir(self, path: str) -> int:
        try:
            os.rmdir(self._real(path))
        except OSError as exc:
            return self._err(exc)
        return SFTP_OK

    def chattr(self, path: str, attr: paramiko.SFTPAttributes) -> int:
        try:
            if getattr(attr, "st_mode", None) is not None:
                os.chmod(self._real(path), stat.S_IMODE(attr.st_mode or 0))
        except OSError as exc:
            return self._err(exc)
        return SFTP_OK


class Dom0SshServer:
    """An SSH server for one :class:`VirtualHost`'s Dom0; use as a context manager.

    ``host_key`` defaults to a fresh ECDSA key (paramiko cannot generate Ed25519); tests write
    ``known_hosts_line`` into a known_hosts file so clients verify it.
    """

    def __init__(
        self,
        host: VirtualHost,
        *,
        address: str = "127.0.0.1",
        port: int = 0,
        host_key: paramiko.PKey | None = None,
        username: str = "root",
        authorized_keys: Sequence[paramiko.PKey] = (),
        password: str | None = None,
        sftp_root: str | Path | None = None,
        command_timeout: float = 30.0,
    ) -> None:
        if not authorized_keys and password is None:
            raise ValueError("Dom0SshServer needs authorized_keys or a password")
        self.host = host
        self.address = address
        self.host_key: paramiko.PKey = (
            host_key if host_key is not None else paramiko.ECDSAKey.generate()
        )
        self.username = username
        self.authorized_keys = list(authorized_keys)
        self.password = password
        self.sftp_root = str(sftp_root) if sftp_root is not None else None
        self.command_timeout = command_timeout
        #: Every command line run, in order (for tests: what did the client really ask?).
        self.commands: list[str] = []
        self._requested_port = port
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._transports: list[paramiko.Transport] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()

    # ---- lifecycle ---------------------------------------------------------------------

    def start(self) -> Dom0SshServer:
        """Listen and serve in a background thread; returns self. Idempotent."""
        if self._sock is not None:
            return self
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.address, self._requested_port))
        sock.listen(8)
        sock.settimeout(0.2)
        self._sock = sock
        self._thread = threading.Thread(target=self._accept_loop, name="sim-dom0-ssh", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening and close every connection; safe to call twice."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.close()
        with self._lock:
            transports, self._transports = self._transports, []
        for transport in transports:
            with contextlib.suppress(Exception):
                transport.close()

    def __enter__(self) -> Dom0SshServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The port actually listened on (an ephemeral one unless a port was given)."""
        if self._sock is None:
            raise RuntimeError("Dom0SshServer is not started")
        port: int = self._sock.getsockname()[1]
        return port

    @property
    def url(self) -> str:
        return f"ssh://{self.username}@{self.address}:{self.port}"

    @property
    def known_hosts_line(self) -> str:
        """``[127.0.0.1]:PORT <type> <base64>`` for a known_hosts file."""
        key = self.host_key
        return f"[{self.address}]:{self.port} {key.get_name()} {key.get_base64()}\n"

    # ---- serving -----------------------------------------------------------------------

    def _accept_loop(self) -> None:
        assert self._sock is not None
        while not self._stopping.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(None)
            transport = paramiko.Transport(conn)
            transport.add_server_key(self.host_key)
            if self.sftp_root is not None:
                transport.set_subsystem_handler("sftp", paramiko.SFTPServer, _Sftp)
            with self._lock:
                self._transports.append(transport)
            try:
                transport.start_server(server=_Server(self))
            except (paramiko.SSHException, OSError, EOFError):
                transport.close()

    def run(self, command: str) -> tuple[int, bytes, bytes]:
        """(exit status, stdout, stderr) of one exec request — also callable directly."""
        script = parse_script(command)
        if script is None:
            return 2, b"", f"sh: cannot parse: {command}\n".encode()
        out = bytearray()
        err = bytearray()
        status = 0
        for connector, pipeline in script:
            if (connector == "&&" and status != 0) or (connector == "||" and status == 0):
                continue
            data = b""
            for index, words in enumerate(pipeline):
                status, data, stderr = self._command(words, data if index else None)
                err += stderr
                if status == NO_DOM0:
                    return NO_DOM0, bytes(out), bytes(err)
            out += data
        return status, bytes(out), bytes(err)

    def _command(self, words: list[str], stdin: bytes | None) -> tuple[int, bytes, bytes]:
        """One command of a pipeline: ``grep`` is the shell's own filter, the rest is Dom0's."""
        if words[0] == "grep":
            return self._grep(words, stdin)
        line = " ".join(words)
        with self._lock:
            self.commands.append(line)
        ran = self.host.dom0_run(line, timeout=self.command_timeout)
        if ran is None:
            return NO_DOM0, b"", b"Dom0 is not running\n"
        status, result, stderr = ran
        if status != 0 or stderr:
            return status, result, stderr
        if result.startswith(b"-bash: ") and result.rstrip().endswith(b"command not found"):
            return NOT_FOUND, b"", result
        if words[0] == "cat" and result.rstrip().endswith(b"No such file or directory"):
            return 1, b"", result
        if words[:2] == ["command", "-v"] and not result:
            return 1, b"", b""  # as the shell builtin: silent, status 1
        return 0, result, b""

    def _grep(self, words: list[str], stdin: bytes | None) -> tuple[int, bytes, bytes]:
        """GNU grep's common options (-i -E -F -v -c -m N) over stdin or Dom0 files."""
        flags = 0
        fixed = invert = count = False
        limit: int | None = None
        args = words[1:]
        while args and args[0].startswith("-") and len(args[0]) > 1:
            opt = args.pop(0)
            if opt == "--":
                break
            letters = opt[1:]
            while letters:
                letter, letters = letters[0], letters[1:]
                if letter == "i":
                    flags |= re.IGNORECASE
                elif letter == "E":
                    pass  # Python's regexes are extended ones
                elif letter == "F":
                    fixed = True
                elif letter == "v":
                    invert = True
                elif letter == "c":
                    count = True
                elif letter == "m":
                    number = letters or (args.pop(0) if args else "")
                    letters = ""
                    if not number.isdigit():
                        return 2, b"", b"grep: invalid max count\n"
                    limit = int(number)
                else:
                    return 2, b"", f"grep: invalid option -- '{letter}'\n".encode()
        if not args:
            return 2, b"", b"Usage: grep [OPTION]... PATTERNS [FILE]...\n"
        pattern, files = args[0], args[1:]
        try:
            regex = re.compile(re.escape(pattern) if fixed else pattern, flags)
        except re.error as exc:
            return 2, b"", f"grep: {exc}\n".encode()
        text = stdin or b""
        if files:
            chunks = []
            for name in files:
                status, data, stderr = self._command(["cat", name], None)
                if status:
                    return 2, b"", stderr.replace(b"cat: ", b"grep: ", 1)
                chunks.append(data)
            text = b"".join(chunks)
        found = []
        for line in text.decode("utf-8", "replace").splitlines(keepends=True):
            if bool(regex.search(line.rstrip("\n"))) != invert:
                found.append(line)
                if limit is not None and len(found) >= limit:
                    break
        out = f"{len(found)}\n" if count else "".join(found)
        return (0 if found else 1), out.encode(), b""

    def _exec(self, channel: paramiko.Channel, command: str) -> None:
        try:
            status, out, err = self.run(command)
            if out:
                channel.sendall(out)
            if err:
                channel.sendall_stderr(err)
            channel.send_exit_status(status)
            channel.shutdown_write()
            _await_client_eof(channel, CLOSE_GRACE)
        except (OSError, paramiko.SSHException, EOFError):
            pass  # the client went away
        finally:
            with contextlib.suppress(Exception):
                channel.close()


def _await_client_eof(channel: paramiko.Channel, limit: float) -> None:
    """Wait (at most ``limit`` s) for the client's EOF or close, discarding its stdin.

    This thread starts inside ``check_channel_exec_request``, i.e. before paramiko has sent
    the request's success reply; a client that sees the channel closed first fails its exec
    ("Channel closed"), while OpenSSH's client waits for our close. Clients send EOF only after
    the reply reached them (solcap's and ``ssh … </dev/null`` do at once), so closing after
    their EOF is safe; ``limit`` bounds the wait for a client that keeps stdin open.
    """
    deadline = time.monotonic() + limit
    while (left := deadline - time.monotonic()) > 0:
        channel.settimeout(left)
        try:
            if not channel.recv(65536):
                return
        except TimeoutError:
            return
