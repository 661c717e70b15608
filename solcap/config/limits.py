"""Bounds on what a person or a file hands solcap, checked before anything is created or sent.

Why one module: every number typed on a command line, every file read and every URL parsed
used to be checked (or not) where it was used, so ``--quiet nan`` hung a harvest, ``--for 1e18``
overflowed a thread wait, a runbook read from ``/dev/zero`` grew until the kernel killed it and
``ipmi://admin@[::1`` showed a traceback. Here each kind of input has one validator that raises
:class:`~solcap.errors.UsageError` (or :class:`~solcap.errors.ConfigError` for files) with a
one-line message naming the option, file or URL; callers use these and nothing else.

* :func:`seconds`, :func:`count`, :func:`number` — finite, in range, no NaN or infinity;
* :func:`read_text`, :func:`read_bytes` — a size cap per kind of file (:data:`FILE_CAPS`),
  non-UTF-8 named with its line, directories and unreadable files as one line;
* :func:`directory_path`, :func:`output_file` — paths solcap will create or write (never
  empty, never through a regular file);
* :func:`check_depth` — nesting of loaded data (a TOML or JSON nested thousands deep);
* :func:`split_url` — ``urllib.parse.urlsplit`` whose ``ValueError`` (unclosed ``[``, a bad
  or zero port) becomes one line naming the URL.
"""

from __future__ import annotations

import math
import os
import stat
import urllib.parse
from pathlib import Path
from typing import Any, Final

from solcap.errors import ConfigError, UsageError

#: The longest wait anything accepts: a year (thread waits need a finite timeout).
MAX_SECONDS: Final = 365 * 86400.0
#: Per kind of file, the most bytes solcap will read; far beyond any real one.
FILE_CAPS: Final = {
    "runbook": 1 << 20,
    "inventory": 16 << 20,
    "profile": 256 << 10,
    "password": 4096,
    "meta": 16 << 20,
    "summary": 16 << 20,
    "dmesg": 64 << 20,
    "known_hosts": 16 << 20,
}
#: How deeply lists and mappings may nest in a loaded file (real files use fewer than ten).
MAX_DEPTH: Final = 64
#: The most hosts one inventory may name (host ranges included).
MAX_HOSTS: Final = 100_000
#: The longest line an INI inventory may have (a real host line is a few hundred bytes).
MAX_LINE: Final = 64 << 10
#: The largest port number there is; 0 is never a port anyone listens on.
MAX_PORT: Final = 65535


def _say(what: str, message: str) -> str:
    """``what: message``, or the bare message where the caller names the option itself."""
    return f"{what}: {message}" if what else message


def _as_float(value: object, what: str) -> float:
    if isinstance(value, bool):
        raise UsageError(_say(what, f"expected a number, got {value!r}"))
    if isinstance(value, int | float):
        result = float(value)
    elif isinstance(value, str):
        try:
            result = float(value.strip())
        except ValueError:
            raise UsageError(_say(what, f"{value!r} is not a number")) from None
    else:
        raise UsageError(_say(what, f"expected a number, got {type(value).__name__}"))
    if not math.isfinite(result):
        raise UsageError(_say(what, f"{value!r} is not a finite number"))
    return result


def number(
    value: object, what: str, *, minimum: float, maximum: float, allow_minimum: bool = True
) -> float:
    """A finite number in ``[minimum, maximum]`` (``(minimum, …]`` when not ``allow_minimum``)."""
    result = _as_float(value, what)
    low_ok = result >= minimum if allow_minimum else result > minimum
    if not low_ok or result > maximum:
        low = "[" if allow_minimum else "("
        raise UsageError(_say(what, f"{value!r} is out of range {low}{minimum:g}, {maximum:g}]"))
    return result


def seconds(value: object, what: str, *, zero: bool = False, maximum: float = MAX_SECONDS) -> float:
    """A duration in seconds: finite, greater than zero (or ``zero`` allowed), at most a year."""
    result = _as_float(value, what)
    if result < 0 or (result == 0 and not zero):
        bound = "zero or more" if zero else "greater than zero"
        raise UsageError(_say(what, f"{value!r} must be {bound}"))
    if result > maximum:
        raise UsageError(_say(what, f"{value!r} is longer than the limit of {maximum:g} seconds"))
    return result


def count(value: object, what: str, *, minimum: int = 1, maximum: int = 10_000) -> int:
    """A whole number in ``[minimum, maximum]``."""
    if isinstance(value, bool):
        raise UsageError(_say(what, f"expected a whole number, got {value!r}"))
    if isinstance(value, int):
        result = value
    elif isinstance(value, str):
        try:
            result = int(value.strip(), 10)
        except ValueError:
            raise UsageError(_say(what, f"{value!r} is not a whole number")) from None
    else:
        raise UsageError(_say(what, f"expected a whole number, got {type(value).__name__}"))
    if not minimum <= result <= maximum:
        raise UsageError(_say(what, f"{value!r} is out of range {minimum}..{maximum}"))
    return result


# --------------------------------------------------------------------------- files


def read_bytes(path: str | Path, kind: str) -> bytes:
    """At most ``FILE_CAPS[kind]`` bytes of ``path``; more, a directory or no file is an error.

    Reads through one descriptor with a bounded read, so ``/dev/zero``, a FIFO that never ends
    or a file that grows while being read cannot exhaust memory.
    """
    shown = str(path)
    cap = FILE_CAPS[kind]
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise ConfigError(shown, "no such file") from None
    except OSError as exc:
        raise ConfigError(shown, f"cannot read: {exc.strerror or exc}") from None
    except ValueError:  # a NUL byte in the path
        raise ConfigError(repr(shown), "not a valid file name") from None
    try:
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            raise ConfigError(shown, f"is a directory; expected a {kind} file")
        chunks: list[bytes] = []
        size = 0
        while size <= cap:
            block = os.read(fd, min(1 << 20, cap + 1 - size))
            if not block:
                break
            chunks.append(block)
            size += len(block)
    except OSError as exc:
        raise ConfigError(shown, f"cannot read: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
    if size > cap:
        raise ConfigError(shown, f"{kind} file is larger than the limit of {cap} bytes")
    return b"".join(chunks)


def decode_utf8(data: bytes, shown: str) -> str:
    """``data`` as UTF-8; otherwise a ConfigError naming the line and the offending byte."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        byte = data[exc.start]
        raise ConfigError(shown, f"not UTF-8 text (byte 0x{byte:02x})", line=line) from None


def read_text(path: str | Path, kind: str) -> str:
    """:func:`read_bytes` decoded as UTF-8 (a leading BOM is dropped)."""
    return decode_utf8(read_bytes(path, kind), str(path)).removeprefix("\ufeff")


def depth_of(data: Any, limit: int = MAX_DEPTH) -> int:
    """How deeply lists and mappings nest in ``data``; stops counting past ``limit``."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(data, 0)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict | list | tuple):
            level += 1
            deepest = max(deepest, level)
            if deepest > limit:
                return deepest
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, level) for child in children)
    return deepest


def check_depth(data: Any, shown: str, limit: int = MAX_DEPTH) -> None:
    """Refuse data nested more than ``limit`` levels (iterative: never a RecursionError)."""
    if depth_of(data, limit) > limit:
        raise ConfigError(shown, f"nested more than {limit} levels deep")


# --------------------------------------------------------------------------- paths


def _blocked_by_file(path: Path) -> str | None:
    """Why ``path`` can never be a directory: an ancestor (or itself) that is not one."""
    for part in (path, *path.parents):
        if str(part) in ("", ".", "/"):
            return None
        if part.is_dir():
            return None
        if part.is_symlink() and not part.exists():
            return f"{part} is a dangling symbolic link"
        if part.exists():
            return f"{part} is not a directory"
    return None


def _nonempty_path(value: str, what: str) -> Path:
    if not value.strip():
        raise UsageError(_say(what, "an empty path; give a directory or file name"))
    if "\0" in value:
        raise UsageError(_say(what, f"{value!r}: a NUL byte is not allowed in a path"))
    return Path(os.path.expanduser(value))


def existing_path(value: str, what: str) -> Path:
    """A path that must name something already there (``web --control SOCKET``).

    Refused: an empty path (``Path('')`` is the working directory, which exists, so an
    empty ``--control`` passed the existence check and failed later as a bad socket) and a
    NUL byte. Whether it exists is checked by the command, which says what it expected.
    """
    return _nonempty_path(value, what)


def directory_path(value: str, what: str) -> Path:
    """A directory solcap may create (``--root``, ``--dir``, ``--recordings``, …).

    Refused: an empty path (``Path('')`` is the working directory, so ``--root ''`` used to
    scatter recordings there), a NUL byte, and a path that runs through a regular file, which
    no mkdir could ever create. Checked when the command line is parsed, before anything is
    created or sent; permissions still surface when the directory is made.
    """
    path = _nonempty_path(value, what)
    problem = _blocked_by_file(path)
    if problem is not None:
        raise UsageError(_say(what, f"{value}: {problem}"))
    return path


def output_file(value: str, what: str) -> Path:
    """A file solcap will write (``--summary``): not a directory, in an existing directory."""
    path = _nonempty_path(value, what)
    if path.is_dir():
        raise UsageError(_say(what, f"{value}: is a directory; expected a file name"))
    parent = path.parent
    problem = _blocked_by_file(parent)
    if problem is not None:
        raise UsageError(_say(what, f"{value}: {problem}"))
    if not parent.is_dir():
        raise UsageError(_say(what, f"{value}: no such directory {parent}"))
    return path


# --------------------------------------------------------------------------- URLs


def split_url(url: str, *, default_port: int | None = None) -> tuple[urllib.parse.SplitResult, int]:
    """``urlsplit(url)`` and its port, checked: ``(parts, port)``.

    ``urlsplit`` raises ``ValueError`` for an unclosed IPv6 bracket and ``.port`` for a port out
    of range; both become one UsageError naming the URL. Port 0 is refused rather than taken as
    "no port" (it used to become the default silently). Without ``default_port`` a URL must
    name its port.
    """
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UsageError(f"{url}: bad address: {exc}") from None
    if port is None:
        if default_port is None:
            raise UsageError(f"{url}: no port given")
        port = default_port
    if not 1 <= port <= MAX_PORT:
        raise UsageError(f"{url}: bad port {port}: expected 1..{MAX_PORT}")
    return parts, port


# --------------------------------------------------------------------------- Xen debug keys

#: Every key Xen 4.17 registers a handler for (``register_keyhandler`` /
#: ``register_irq_keyhandler`` across ``xen/common``, ``xen/arch/x86`` and
#: ``xen/drivers``): the diagnostics (``h q u m e i r a c t n z H Q M I g s d 0 v V o D * w x
#: p l``) and the state-changing ones (``R C N S % A T G P L O + -``). Any other byte does
#: nothing on Xen, or worse, reaches Dom0 as typed input, and a harvest would wait for a dump
#: that never comes.
XEN_DEBUG_KEYS: Final = frozenset("hqumeiratcnzHQMIgsd0vVoD*wxplRCNS%ATGPLO+-")


def key_problem(key: str) -> str | None:
    """Why ``key`` is not a Xen debug key, or None when it is one."""
    if len(key) != 1:
        return f"{key!r} is not a single debug-key character"
    if key not in XEN_DEBUG_KEYS:
        shown = key if key.isprintable() else f"\\x{ord(key):02x}"
        return f"'{shown}' is not a Xen debug key (known: {''.join(sorted(XEN_DEBUG_KEYS))})"
    return None
