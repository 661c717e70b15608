"""A small SSH layer over paramiko: verified host keys, commands, files, optional sudo.

Why a wrapper: paramiko's defaults are easy to get wrong in ways that matter here. A tool
that rewrites a host's boot configuration must not talk to an impostor, so host keys are
always verified (system and user ``known_hosts``, or one given file); an unknown key is
refused with the command that adds it, accepting a new key is an explicit option that is
logged and written to ``known_hosts``, and a *changed* key is always refused. There is no
auto-accept policy anywhere (paramiko's auto-add is never used).

Secrets never come from argv: passwords are named by source, ``env:NAME`` or ``file:PATH``
(a 0600 file). The sudo password is fed on stdin to ``sudo -S -p ''``; commands run under
sudo never read stdin themselves (file contents are staged through SFTP), so a sudo that
needs no password cannot mistake the password line for data.

Every paramiko/socket exception is translated here, at the boundary, into
:class:`~solcap.errors.ConnectError` (could not connect or log in) or
:class:`~solcap.errors.TargetError` (a command or file operation failed), naming the host.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import hashlib
import logging
import os
import re
import select
import shlex
import stat
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from struct import error as struct_error
from types import TracebackType
from typing import TYPE_CHECKING, NoReturn, TypeVar, cast
from urllib.parse import unquote

from solcap.util.lazy import lazy_module

if TYPE_CHECKING:
    import paramiko
else:
    paramiko = lazy_module("paramiko")  # ~30 MiB: loaded by the first connection

from solcap.config.credentials import SecretRef
from solcap.config.limits import read_text, split_url
from solcap.errors import ConnectError, SolcapError, TargetError, UsageError

log = logging.getLogger(__name__)

SYSTEM_KNOWN_HOSTS = "/etc/ssh/ssh_known_hosts"
USER_KNOWN_HOSTS = "~/.ssh/known_hosts"
#: Appended to PATH on the remote: a non-root login on Debian has no sbin directories, where
#: update-grub and grub-mkconfig live.
SBIN_PATH = "/usr/local/sbin:/usr/sbin:/sbin"
#: Exit status a helper script uses to say "no such file" (distinct from sudo's 1).
_MISSING = 44
_T = TypeVar("_T")


# --------------------------------------------------------------------------- target


def resolve_secret(spec: str, what: str = "password") -> str:
    """Resolve ``env:NAME`` or ``file:PATH`` (0600); anything else is refused
    (:class:`solcap.config.credentials.SecretRef`, the one reader of secret references)."""
    try:
        return SecretRef.parse(spec, what).resolve()
    except UsageError as exc:
        if exc.one_line().startswith(f"{what} "):
            raise
        raise UsageError(f"{what}: {exc.one_line()}") from exc


@dataclass(frozen=True)
class SshTarget:
    """Where to log in and how; built from ``ssh://user@host[:port]`` plus options."""

    host: str
    user: str
    port: int = 22
    key_file: str | None = None
    #: ``env:NAME`` / ``file:PATH``; None = key or agent authentication only.
    password: str | None = None
    #: One known_hosts file used instead of the system and user files (and written to when
    #: a new key is accepted).
    known_hosts: str | None = None
    sudo: bool = False
    #: ``env:NAME`` / ``file:PATH``; None = reuse ``password`` if given, else ``sudo -n``.
    sudo_password: str | None = None
    accept_new_host_key: bool = False
    connect_timeout: float = 15.0
    #: Directories put first on the remote PATH for every command (site wrappers, test stubs
    #: such as a stand-in ``sudo``).
    path_prefix: tuple[str, ...] = ()

    @classmethod
    def parse(cls, url: str, **options: object) -> SshTarget:
        """Parse ``ssh://user@host[:port]`` (IPv6 in brackets); options are the other fields."""
        parts, port = split_url(url, default_port=22)
        if parts.scheme != "ssh" or not parts.hostname:
            raise UsageError(f"expected ssh://user@host[:port], got {url!r}")
        if parts.password is not None:
            raise UsageError(
                "a password in the URL would show up in argv; use --ssh-password-env NAME"
            )
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise UsageError(f"unexpected path or query in {url!r}")
        user = unquote(parts.username) if parts.username else os.environ.get("USER", "root")
        return cls(host=parts.hostname, user=user, port=port, **options)  # type: ignore[arg-type]

    @property
    def display(self) -> str:
        """``user@host[:port]`` for messages."""
        port = "" if self.port == 22 else f":{self.port}"
        return f"{self.user}@{self.host}{port}"

    @property
    def host_key_name(self) -> str:
        """The name known_hosts uses: ``host``, or ``[host]:port`` off port 22."""
        return self.host if self.port == 22 else f"[{self.host}]:{self.port}"


@dataclass(frozen=True)
class Result:
    """What a remote command did."""

    exit_status: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.exit_status == 0


# --------------------------------------------------------------------------- host keys


def fingerprint(key: paramiko.PKey) -> str:
    """OpenSSH's ``SHA256:…`` fingerprint, as ``ssh-keygen -l`` prints it."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


class _UnknownHostKey(Exception):
    def __init__(self, key: paramiko.PKey) -> None:
        super().__init__("unknown host key")
        self.key = key


class _RevokedHostKey(Exception):
    def __init__(self, key: paramiko.PKey, where: str) -> None:
        super().__init__("revoked host key")
        self.key = key
        self.where = where


class _VerifyPolicy:
    """Called only for a host with no known key at all: refuse, or accept-and-record.

    A paramiko ``MissingHostKeyPolicy`` by shape, not by base class: subclassing would load
    paramiko whenever this module is imported. paramiko's ``SSHClient`` only ever calls
    ``missing_host_key`` on the policy it is given (``client.py``, ``connect``).
    """

    def __init__(self, target: SshTarget, known: _KnownHosts) -> None:
        self.target = target
        self.known = known
        self.file = known.write_to

    def missing_host_key(
        self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey
    ) -> None:
        revoked = self.known.revocation(key)
        if revoked is not None:  # never accepted, whatever the options say
            raise _RevokedHostKey(key, revoked)
        if not self.target.accept_new_host_key:
            raise _UnknownHostKey(key)
        log.warning(
            "accepting new host key for %s: %s %s (written to %s)",
            hostname,
            key.get_name(),
            fingerprint(key),
            self.file,
        )
        client.get_host_keys().add(hostname, key.get_name(), key)
        _append_known_host(self.file, hostname, key)


def _append_known_host(path: Path, hostname: str, key: paramiko.PKey) -> None:
    """Append one line (never rewrite: the file may hold hashed entries and comments)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    line = f"{hostname} {key.get_name()} {key.get_base64()}\n"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        size = os.fstat(fd).st_size
        if size:
            with open(path, "rb") as existing:
                existing.seek(size - 1)
                if existing.read(1) != b"\n":
                    line = "\n" + line
        os.write(fd, line.encode())
        os.fsync(fd)
    finally:
        os.close(fd)


# --------------------------------------------------------------------------- connection


class SshConnection:
    """One logged-in SSH session; use as a context manager (see :func:`connect`)."""

    def __init__(self, target: SshTarget, client: paramiko.SSHClient) -> None:
        self.target = target
        self._client = client
        self._sftp: paramiko.SFTPClient | None = None

    # -- lifecycle

    def close(self) -> None:
        """Close SFTP and the connection; safe to call twice."""
        if self._sftp is not None:
            with contextlib.suppress(OSError, paramiko.SSHException):
                self._sftp.close()
            self._sftp = None
        self._client.close()

    def __enter__(self) -> SshConnection:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _fail(self, message: str, exc: BaseException | None = None) -> NoReturn:
        raise TargetError(self.target.display, message) from exc

    def live_transport(self) -> paramiko.Transport:
        """The logged-in paramiko transport, for a caller that opens its own channel (a BMC's
        console session in :mod:`solcap.transports.bmcssh`); the host key was verified."""
        transport = self._client.get_transport()
        if transport is None or not transport.is_active():
            self._fail("SSH connection is closed")
        return transport

    # -- commands

    def wrap(
        self, command: str, *, sudo: bool = False, path_prefix: Sequence[str] = ()
    ) -> tuple[str, bytes]:
        """The shell line actually sent, and the stdin that must precede any data.

        The command runs under ``sh -c`` with PATH = ``path_prefix``, the login PATH, then the
        sbin directories; under sudo that PATH is set again inside (sudo resets it).
        """
        path = ":".join([*path_prefix, *self.target.path_prefix, '"$PATH"', SBIN_PATH])
        inner = f"PATH={path}; export PATH; {command}"
        if not sudo:
            return f"sh -c {shlex.quote(inner)}", b""
        secret = self.sudo_secret()
        flags = "-S -p ''" if secret is not None else "-n"
        outer = f"PATH={path}; export PATH; exec sudo {flags} -- sh -c {shlex.quote(inner)}"
        stdin = (secret + "\n").encode() if secret is not None else b""
        return f"sh -c {shlex.quote(outer)}", stdin

    def sudo_secret(self) -> str | None:
        """The sudo password (resolved now, never stored on disk), or None for ``sudo -n``."""
        spec = self.target.sudo_password or self.target.password
        return resolve_secret(spec, "sudo password") if spec else None

    def run(
        self,
        command: str,
        *,
        sudo: bool = False,
        timeout: float = 120.0,
        path_prefix: Sequence[str] = (),
        check: bool = False,
    ) -> Result:
        """Run a shell command; stdout/stderr decoded as UTF-8 (invalid bytes replaced).

        ``check=True`` turns a non-zero exit into a TargetError quoting stderr's last line.
        """
        line, stdin = self.wrap(command, sudo=sudo, path_prefix=path_prefix)
        result = self._exec(line, stdin, timeout, shown=command)
        if check and not result.ok:
            self._fail(f"`{command}` exited {result.exit_status}: {_last_line(result.stderr)}")
        return result

    def _exec(self, line: str, stdin: bytes, timeout: float, shown: str) -> Result:
        transport = self._client.get_transport()
        if transport is None or not transport.is_active():
            self._fail("SSH connection is closed")
        try:
            channel = transport.open_session(timeout=timeout)
        except (paramiko.SSHException, OSError) as exc:
            self._fail(f"cannot open an SSH channel: {exc}", exc)
        out = bytearray()
        err = bytearray()
        deadline = time.monotonic() + timeout
        try:
            channel.exec_command(line)
            if stdin:
                channel.sendall(stdin)
            channel.shutdown_write()
            while True:
                while channel.recv_ready():
                    out += channel.recv(65536)
                while channel.recv_stderr_ready():
                    err += channel.recv_stderr(65536)
                if channel.exit_status_ready() and (channel.eof_received or channel.closed):
                    if not channel.recv_ready() and not channel.recv_stderr_ready():
                        break
                    continue
                left = deadline - time.monotonic()
                if left <= 0:
                    self._fail(f"`{shown}` did not finish within {timeout:g} s")
                select.select([channel], [], [], min(left, 1.0))
            status = channel.recv_exit_status()
        except (paramiko.SSHException, OSError) as exc:
            self._fail(f"`{shown}` failed on the SSH channel: {exc}", exc)
        finally:
            channel.close()
        return Result(status, out.decode("utf-8", "replace"), err.decode("utf-8", "replace"))

    # -- files

    def sftp(self) -> paramiko.SFTPClient:
        """The session's SFTP client, opened on first use."""
        if self._sftp is None:
            try:
                self._sftp = self._client.open_sftp()
            except (paramiko.SSHException, OSError) as exc:
                self._fail(f"cannot start SFTP: {exc}", exc)
        return self._sftp

    def read_file(self, path: str, *, sudo: bool = False) -> str | None:
        """A remote text file's content, or None when it does not exist."""
        if sudo:
            quoted = shlex.quote(path)
            result = self.run(f"test -e {quoted} || exit {_MISSING}; cat -- {quoted}", sudo=True)
            if result.exit_status == _MISSING:
                return None
            if not result.ok:
                self._fail(f"cannot read {path}: {_last_line(result.stderr)}")
            return result.stdout

        def read() -> bytes:
            with self.sftp().open(path, "rb") as handle:
                return bytes(handle.read())

        data = self._unless_missing("read", path, read)
        if data is None:
            return None
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as exc:
            self._fail(f"{path} is not UTF-8 text", exc)

    def list_dir(self, path: str) -> list[str] | None:
        """Names in a remote directory, sorted; None when it does not exist."""
        return self._unless_missing("list", path, lambda: sorted(self.sftp().listdir(path)))

    def stat_mode(self, path: str) -> int | None:
        """Permission bits of a remote file, or None when it does not exist."""
        return self._unless_missing(
            "stat", path, lambda: stat.S_IMODE(self.sftp().stat(path).st_mode or 0)
        )

    def _unless_missing(self, verb: str, path: str, call: Callable[[], _T]) -> _T | None:
        """``call()``, one SFTP operation on ``path``: None when the path does not exist (SFTP
        reports that as FileNotFoundError or an OSError with ENOENT), any other failure a
        TargetError saying ``cannot <verb> <path>``."""
        try:
            return call()
        except FileNotFoundError:
            return None
        except OSError as exc:
            if getattr(exc, "errno", None) == errno.ENOENT:
                return None
            self._fail(f"cannot {verb} {path}: {exc}", exc)
        except paramiko.SSHException as exc:
            self._fail(f"cannot {verb} {path}: {exc}", exc)

    def exists(self, path: str) -> bool:
        """True if ``path`` exists on the remote (as the login user sees it)."""
        return self.run(f"test -e {shlex.quote(path)}").ok

    def _stage(self, text: str) -> tuple[str, str]:
        """Upload ``text`` to a private temp directory; returns (directory, file)."""
        made = self.run("umask 077; mktemp -d /tmp/solcap.XXXXXXXX", check=True)
        directory = made.stdout.strip()
        staged = f"{directory}/content"
        try:
            with self.sftp().open(staged, "wb") as handle:
                handle.write(text.encode("utf-8"))
        except (OSError, paramiko.SSHException) as exc:
            self.run(f"rm -rf -- {shlex.quote(directory)}")
            self._fail(f"cannot upload to {staged}: {exc}", exc)
        return directory, staged

    def write_file_atomic(
        self, path: str, text: str, mode: int | None = None, *, sudo: bool = False
    ) -> None:
        """Replace ``path`` so readers see the old or the new file, never a partial one.

        The content is staged through SFTP, copied into a temp file in the same directory
        (same filesystem, so the rename is atomic), given ``mode`` (default: the old file's
        mode and owner, else 0644), flushed to disk with ``sync FILE`` and renamed over
        ``path``. Under sudo only the copy/rename runs privileged.
        """
        directory, staged = self._stage(text)
        target = shlex.quote(path)
        parent = shlex.quote(os.path.dirname(path) or ".")
        base = shlex.quote("." + os.path.basename(path) + ".solcap.XXXXXX")
        set_mode = (
            f'chmod {mode:o} "$tmp"'
            if mode is not None
            else f'if [ -e {target} ]; then chmod --reference={target} "$tmp" && '
            f'chown --reference={target} "$tmp"; else chmod 644 "$tmp"; fi'
        )
        script = (
            f"set -e; tmp=$(mktemp {parent}/{base}); "
            f"trap 'rm -f \"$tmp\"' EXIT; "
            f'cat -- {shlex.quote(staged)} > "$tmp"; {set_mode}; '
            f'sync -- "$tmp" 2>/dev/null || sync; mv -f -- "$tmp" {target}; trap - EXIT; '
            f"sync -- {parent} 2>/dev/null || true"
        )
        try:
            result = self.run(script, sudo=sudo)
        finally:
            self.run(f"rm -rf -- {shlex.quote(directory)}")
        if not result.ok:
            self._fail(f"cannot write {path}: {_last_line(result.stderr)}")

    def copy_file(self, source: str, dest: str, *, sudo: bool = False) -> None:
        """``cp -p`` (mode, owner, times kept); refuses to overwrite ``dest``."""
        src, dst = shlex.quote(source), shlex.quote(dest)
        result = self.run(
            f"if [ -e {dst} ]; then echo 'exists already' >&2; exit 1; fi; cp -p -- {src} {dst}",
            sudo=sudo,
        )
        if not result.ok:
            self._fail(f"cannot copy {source} to {dest}: {_last_line(result.stderr)}")


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "(no message)"


# --------------------------------------------------------------------------- connect


@dataclass
class _KnownHosts:
    """Which files were loaded, which one a newly accepted key goes to, and revoked keys."""

    loaded: list[str] = field(default_factory=list)
    write_to: Path = Path(os.path.expanduser(USER_KNOWN_HOSTS))
    #: (key type, key blob) -> "file:line" of its ``@revoked`` line.
    revoked: dict[tuple[str, bytes], str] = field(default_factory=dict)

    def revocation(self, key: paramiko.PKey) -> str | None:
        return self.revoked.get((key.get_name(), key.asbytes()))


_HASHED = re.compile(r"\|1\|([A-Za-z0-9+/=]+)\|([A-Za-z0-9+/=]+)")


def _host_names(field_text: str) -> str | None:
    """Why a hosts field cannot be matched by paramiko, or None when it can.

    paramiko matches plain names, ``[host]:port`` and hashed ``|1|salt|hash`` names, but not
    OpenSSH's patterns (``*``, ``?``, ``!negation``): such a line would silently never match.
    """
    for name in field_text.split(","):
        if name.startswith("|1|"):
            match = _HASHED.fullmatch(name)
            if match is None:
                return f"malformed hashed host name {name!r}"
            try:
                base64.b64decode(match.group(1), validate=True)
                base64.b64decode(match.group(2), validate=True)
            except ValueError:
                return f"hashed host name {name!r} is not valid base64"
        elif not name or any(c in name for c in "*?!"):
            return f"host pattern {name!r} is not supported (only plain or hashed names)"
    return None


def _parse_known_hosts(name: str, known: _KnownHosts) -> list[tuple[str, paramiko.PKey, str]]:
    """Usable (hosts, key, "file:line") entries of one file; revoked keys into ``known``.

    Lines solcap cannot use are skipped with a warning naming file:line, so one odd line
    (a ``@cert-authority`` entry, a truncated key, a type paramiko lacks) does not make every
    host in the file unknown; ``@revoked`` keys are remembered and refused.
    """
    try:
        text = read_text(name, "known_hosts")
    except UsageError as exc:
        raise UsageError(f"cannot read known_hosts: {exc.one_line()}") from None
    if "\x00" in text:
        raise UsageError(f"{name}: cannot read known_hosts: contains a NUL byte")
    entries: list[tuple[str, paramiko.PKey, str]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            continue
        where = f"{name}:{number}"
        marker = fields.pop(0) if fields[0].startswith("@") else None
        if marker not in (None, "@revoked"):
            log.warning(
                "%s: %s lines are not supported (plain host keys only); skipped", where, marker
            )
            continue
        if len(fields) < 3:
            log.warning("%s: expected HOSTS KEYTYPE BASE64-KEY; skipped", where)
            continue
        hosts, key_type, blob_text = fields[:3]
        try:
            blob = base64.b64decode(blob_text, validate=True)
        except ValueError:
            log.warning("%s: key is not valid base64; skipped", where)
            continue
        try:
            key = paramiko.PKey.from_type_string(key_type, blob)
        except paramiko.pkey.UnknownKeyType:
            log.warning("%s: unknown key type %r; skipped", where, key_type)
            continue
        except (paramiko.SSHException, ValueError, TypeError, IndexError, struct_error) as exc:
            log.warning("%s: %s key does not decode (%s); skipped", where, key_type, exc)
            continue
        if marker == "@revoked":
            known.revoked.setdefault((key.get_name(), key.asbytes()), where)
            continue
        problem = _host_names(hosts)
        if problem is not None:
            log.warning("%s: %s; skipped", where, problem)
            continue
        entries.append((hosts, key, where))
    return entries


def _load_host_keys(client: paramiko.SSHClient, target: SshTarget) -> _KnownHosts:
    known = _KnownHosts()
    if target.known_hosts is not None:
        files = [os.path.expanduser(target.known_hosts)]
        known.write_to = Path(files[0])
    else:
        files = [SYSTEM_KNOWN_HOSTS, os.path.expanduser(USER_KNOWN_HOSTS)]
    entries: list[tuple[str, paramiko.PKey, str]] = []
    for name in files:
        if not os.path.exists(name):
            continue
        entries += _parse_known_hosts(name, known)
        known.loaded.append(name)
    keys = client.get_host_keys()
    for hosts, key, where in entries:
        revoked = known.revocation(key)
        if revoked is not None:
            log.warning("%s: key is @revoked at %s; not trusted", where, revoked)
            continue
        for host in hosts.split(","):
            keys.add(host, key.get_name(), key)
    return known


def _revoked_message(key: paramiko.PKey, where: str) -> str:
    return f"host key {key.get_name()} {fingerprint(key)} is REVOKED ({where}); refusing to connect"


def connect(target: SshTarget) -> SshConnection:
    """Log in to ``target`` with verified host keys; raises ConnectError naming the host."""
    client = paramiko.SSHClient()
    known = _load_host_keys(client, target)
    policy = _VerifyPolicy(target, known)
    client.set_missing_host_key_policy(cast("paramiko.MissingHostKeyPolicy", policy))
    password = resolve_secret(target.password, "SSH password") if target.password else None
    explicit = target.key_file is not None or password is not None
    name = target.display
    try:
        client.connect(
            target.host,
            port=target.port,
            username=target.user,
            key_filename=os.path.expanduser(target.key_file) if target.key_file else None,
            password=password,
            allow_agent=not explicit,
            look_for_keys=not explicit,
            timeout=target.connect_timeout,
            banner_timeout=target.connect_timeout,
            auth_timeout=target.connect_timeout,
        )
    except _UnknownHostKey as exc:
        client.close()
        where = str(known.write_to)
        port = "" if target.port == 22 else f"-p {target.port} "
        raise ConnectError(
            name,
            f"unknown host key {exc.key.get_name()} {fingerprint(exc.key)}; verify it, then "
            f"add it with `ssh-keyscan {port}{target.host} >> {where}` "
            "or pass --accept-new-host-key",
        ) from None
    except _RevokedHostKey as exc:
        client.close()
        raise ConnectError(name, _revoked_message(exc.key, exc.where)) from None
    except paramiko.BadHostKeyException as exc:
        client.close()
        revoked = known.revocation(exc.key)
        if revoked is not None:
            raise ConnectError(name, _revoked_message(exc.key, revoked)) from None
        loaded = ", ".join(known.loaded) or "known_hosts"
        raise ConnectError(
            name,
            f"host key CHANGED: got {exc.key.get_name()} {fingerprint(exc.key)}, expected "
            f"{exc.expected_key.get_name()} {fingerprint(exc.expected_key)} ({loaded}); "
            "refusing to connect (possible man-in-the-middle). If the host was reinstalled, "
            f"remove the old key with `ssh-keygen -R '{target.host_key_name}'`",
        ) from None
    except paramiko.AuthenticationException as exc:
        client.close()
        how = "key " + target.key_file if target.key_file else "password" if password else "agent"
        raise ConnectError(name, f"authentication failed ({how}): {exc}") from None
    except (paramiko.SSHException, OSError, EOFError) as exc:
        client.close()
        raise ConnectError(name, f"cannot connect: {exc or type(exc).__name__}") from exc
    except SolcapError:
        client.close()
        raise
    return SshConnection(target, client)
