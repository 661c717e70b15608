"""Choose a transport by URL scheme, the way pyserial's ``serial_for_url`` does.

A console target is either a device path (``/dev/ttyS0``, ``/dev/pts/3``) or ``scheme://…``.
Each scheme maps to a factory ``(target, line) -> Transport``. Other transports join with
:func:`register_scheme`; a factory may also be given as ``"package.module:function"`` so that
a scheme can be declared here without importing its (heavy, optional) dependency until a
target actually uses it.

Known from the start:

    /path, serial:///path      SerialTransport on a device or pty
    rfc2217:// socket:// loop:// spy://   SerialTransport through pyserial's URL handlers
"""

from __future__ import annotations

import importlib
import re
import threading
from collections.abc import Callable
from typing import Final, TypeAlias

from solcap.errors import UsageError
from solcap.transports.base import Transport
from solcap.transports.serialport import LineSettings, SerialTransport

__all__ = [
    "TransportFactory",
    "known_schemes",
    "open_transport",
    "register_scheme",
    "split_scheme",
]

#: ``factory(target, line)`` opens ``target`` (the full URL as given) and returns a transport.
TransportFactory: TypeAlias = Callable[[str, LineSettings | None], Transport]

_SCHEME_RE: Final = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://")
_lock = threading.Lock()
_factories: dict[str, TransportFactory | str] = {}


def split_scheme(target: str) -> tuple[str, str]:
    """Return ``(scheme, rest)``; a target without ``scheme://`` is a path: ``("", target)``."""
    m = _SCHEME_RE.match(target)
    if m is None:
        return "", target
    return m.group(1).lower(), target[m.end() :]


def register_scheme(scheme: str, factory: TransportFactory | str) -> None:
    """Make ``scheme://`` targets open with ``factory``; a later registration replaces one.

    ``factory`` may be a callable or a ``"module:attribute"`` string imported on first use.
    """
    scheme = scheme.lower().removesuffix("://")
    if not re.fullmatch(r"[a-z][a-z0-9+.-]*", scheme):
        raise UsageError(f"bad scheme name {scheme!r}")
    if isinstance(factory, str) and ":" not in factory:
        raise UsageError(f"bad factory reference {factory!r}: expected 'module:attribute'")
    with _lock:
        _factories[scheme] = factory


def known_schemes() -> list[str]:
    """The registered schemes, sorted (used in error messages and ``--help``)."""
    with _lock:
        return sorted(_factories)


def _resolve(scheme: str) -> TransportFactory | None:
    with _lock:
        factory = _factories.get(scheme)
    if factory is None or callable(factory):
        return factory
    module_name, _, attr = factory.partition(":")
    resolved = getattr(importlib.import_module(module_name), attr)
    if not callable(resolved):
        raise TypeError(f"transport factory {factory!r} is not callable")
    with _lock:
        _factories[scheme] = resolved
    return resolved  # type: ignore[no-any-return]


def open_transport(target: str, *, line: LineSettings | None = None) -> Transport:
    """Open the console named by ``target`` and return its transport.

    ``line`` applies to serial-like transports and is ignored (not an error) by others; a
    target with an unknown scheme is a usage error that lists the schemes we do know.
    """
    if not target.strip():
        raise UsageError("empty console target: expected a device path or scheme://…")
    scheme, _rest = split_scheme(target)
    if not scheme:
        return SerialTransport(target, line=line)
    factory = _resolve(scheme)
    if factory is None:
        known = ", ".join(f"{s}://" for s in known_schemes())
        raise UsageError(f"unknown console scheme {scheme + '://'!r} in {target!r}; known: {known}")
    return factory(target, line)


def _open_serial_path(target: str, line: LineSettings | None) -> Transport:
    """``serial:///dev/ttyS0`` → the device ``/dev/ttyS0``."""
    _scheme, path = split_scheme(target)
    if not path:
        raise UsageError(f"{target!r}: serial:// needs a device path, e.g. serial:///dev/ttyS0")
    return SerialTransport(path, line=line, name=path)


def _open_pyserial_url(target: str, line: LineSettings | None) -> Transport:
    """pyserial understands these URLs itself."""
    return SerialTransport(target, line=line)


register_scheme("serial", _open_serial_path)
for _scheme in ("rfc2217", "socket", "loop", "spy"):
    register_scheme(_scheme, _open_pyserial_url)
# IPMI SOL: imported on first use, so serial-only users never load pyghmi.
register_scheme("ipmi", "solcap.transports.ipmi:transport_factory")
