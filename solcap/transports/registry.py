"""Choose a transport by URL scheme, the way pyserial's ``serial_for_url`` does.

A console target is either a device path (``/dev/ttyS0``, ``/dev/pts/3``) or ``scheme://…``.
Each scheme maps to a factory ``(target, options) -> Transport``, where ``options`` is an
:class:`OpenOptions` (line settings, resolved credentials, cipher, steal, timeouts, an event
sink). Secrets arrive here already resolved: :mod:`solcap.connect` is the one place that reads
them from a reference (a file, ``env:NAME``, a prompt). Other transports join with
:func:`register_scheme`; a factory may also be given as ``"package.module:function"`` so that
a scheme can be declared here without importing its (heavy, optional) dependency until a
target actually uses it.

Known from the start:

    /path, serial:///path      SerialTransport on a device or pty
    rfc2217:// socket:// loop://   SerialTransport through pyserial's URL handlers
    spy://                     pyserial's logging wrapper: a *debug* transport, see below
    ipmi://                    IPMI SOL (solcap.transports.ipmi)
    ssh+openbmc:// ssh+idrac:// ssh+ilo:// ssh+smc:// ssh+console://
                               a BMC's SSH console (solcap.transports.bmcssh)
    exec:CMD                   a local command on a pty: conserver, ConMan, ipmitool
                               (solcap.transports.execpty)

Debug transports log every byte sent (passwords typed at a login prompt included), so they
are refused unless the caller allows them (:func:`debug_transports_allowed`; the CLI's
``--debug-transport``), and a ``spy://…?file=PATH`` log is created 0600 by solcap itself,
never through a symlink (:func:`solcap.transports.serialport.open_spy`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import re
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from typing import Any, Final, TypeAlias

from solcap.config.limits import split_url
from solcap.errors import UsageError
from solcap.transports.base import Transport
from solcap.transports.serialport import LineSettings, SerialTransport, open_spy

__all__ = [
    "DEBUG_SCHEMES",
    "OpenOptions",
    "TransportFactory",
    "check_debug_target",
    "connection_meta",
    "debug_transports_allowed",
    "host_name",
    "known_schemes",
    "open_transport",
    "register_scheme",
    "split_scheme",
]


@dataclasses.dataclass(frozen=True)
class OpenOptions:
    """How to open a target, beyond its address; each transport uses what applies to it.

    ``password`` and ``kg`` are the secrets themselves (resolved by :mod:`solcap.connect`),
    so they are left out of ``repr``; ``cipher`` (17 or 3) pins an IPMI cipher suite over
    the URL's; ``connect_timeout`` bounds login and activation (None: the transport's own
    default); ``liveness`` is an IPMI :class:`~solcap.transports.ipmi.Liveness`;
    ``event_sink(kind, **fields)`` receives a transport's own events, where it has any.
    """

    line: LineSettings | None = None
    password: str | None = dataclasses.field(default=None, repr=False)
    kg: str | None = dataclasses.field(default=None, repr=False)
    cipher: int | None = None
    steal: bool = False
    connect_timeout: float | None = None
    liveness: Any = None
    event_sink: Callable[..., None] | None = None


#: ``factory(target, options)`` opens ``target`` (the full URL as given) and returns a transport.
TransportFactory: TypeAlias = Callable[[str, OpenOptions], Transport]

_SCHEME_RE: Final = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://")
_lock = threading.Lock()
_factories: dict[str, TransportFactory | str] = {}
#: Schemes that write what is sent (secrets included) somewhere: allowed only on request.
DEBUG_SCHEMES: Final = frozenset({"spy"})
_debug_allowed = 0  # nesting depth of debug_transports_allowed()


@contextlib.contextmanager
def debug_transports_allowed() -> Iterator[None]:
    """Allow ``spy://`` and other debug schemes inside the block (process-wide: fleet
    workers open their consoles in threads)."""
    global _debug_allowed
    with _lock:
        _debug_allowed += 1
    try:
        yield
    finally:
        with _lock:
            _debug_allowed -= 1


def check_debug_target(target: str) -> None:
    """Refuse a debug-scheme target unless allowed; cheap, so callers check before acting."""
    scheme, _rest = split_scheme(target)
    with _lock:
        allowed = _debug_allowed > 0
    if scheme in DEBUG_SCHEMES and not allowed:
        raise UsageError(
            f"{scheme}:// is a debug transport that logs every byte sent, passwords included; "
            "give --debug-transport to use it"
        )


def split_scheme(target: str) -> tuple[str, str]:
    """Return ``(scheme, rest)``; a target without ``scheme://`` is a path: ``("", target)``."""
    m = _SCHEME_RE.match(target)
    if m is None:
        return "", target
    return m.group(1).lower(), target[m.end() :]


#: Ports left out of a recording name because they are the scheme's default.
_DEFAULT_PORTS: Final = {"ipmi": "623", "ssh": "22"}


def host_name(target: str) -> str:
    """The recording directory name for a console target: its host, never its options.

    ``ipmi://admin@127.0.0.1:9623?cipher=3`` → ``127.0.0.1_9623`` (user and query dropped, a
    default port dropped too: ``ipmi://admin@bmc01`` → ``bmc01``); ``/dev/ttyS0`` → ``ttyS0``;
    ``socket://127.0.0.1:7000`` → ``127.0.0.1_7000``. Made safe as one path component.
    """
    from solcap.capture.recording import safe_name

    scheme, rest = split_scheme(target)
    if not scheme:
        return safe_name(rest.removeprefix("/dev/"))
    if scheme == "serial":
        return safe_name(rest.removeprefix("/").removeprefix("dev/"))
    netloc = re.split(r"[/?#]", rest, maxsplit=1)[0].rsplit("@", 1)[-1]
    host, port = netloc, ""
    if netloc.startswith("["):  # [IPv6]:port
        host, _, tail = netloc[1:].partition("]")
        port = tail.removeprefix(":")
    elif netloc.count(":") == 1:
        host, port = netloc.split(":")
    if port and port != _DEFAULT_PORTS.get(scheme):
        host = f"{host}:{port}"
    return safe_name(host or rest)


def connection_meta(transport: Transport) -> dict[str, Any]:
    """What a recording's meta.json should say about how ``transport`` connected.

    For IPMI SOL: the cipher suite and how it was chosen (``cipher_suite``, ``cipher_choice``,
    ``cipher_suites_offered``); looks through a reconnecting wrapper. Empty for other kinds.
    """
    for candidate in (transport, getattr(transport, "inner", None)):
        choice = getattr(candidate, "cipher_choice", None)
        as_meta = getattr(choice, "as_meta", None)
        if callable(as_meta):
            meta: dict[str, Any] = as_meta()
            return meta
    return {}


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


def open_transport(
    target: str, options: OpenOptions | None = None, *, line: LineSettings | None = None
) -> Transport:
    """Open the console named by ``target`` once and return its transport (no reconnection:
    :func:`solcap.connect.open_console` adds that, the recording and the credentials).

    ``options.line`` (or ``line``) applies to serial-like transports and is ignored (not an
    error) by others; a target with an unknown scheme is a usage error that lists the schemes
    we do know.
    """
    if options is None:
        options = OpenOptions(line=line)
    elif line is not None:
        options = dataclasses.replace(options, line=line)
    if not target.strip():
        raise UsageError("empty console target: expected a device path or scheme://…")
    if "\0" in target:
        raise UsageError(f"{target!r}: a NUL byte is not allowed in a console target")
    scheme, _rest = split_scheme(target)
    if target.startswith("exec:"):  # exec:CMD, a command line rather than an address
        scheme = "exec"
    if not scheme:
        return SerialTransport(target, line=options.line)
    check_debug_target(target)
    factory = _resolve(scheme)
    if factory is None:
        known = ", ".join(f"{s}://" for s in known_schemes())
        raise UsageError(f"unknown console scheme {scheme + '://'!r} in {target!r}; known: {known}")
    return factory(target, options)


def check_target(target: str) -> None:
    """Refuse, without opening anything, a console target :func:`open_transport` would refuse
    for its form: empty, an unknown scheme, a debug scheme not allowed, a bad ``ipmi://``,
    ``socket://`` or ``rfc2217://`` address. For commands that open a console only after
    something else (``dom0 --serial`` after its SSH login), so a typo is exit 2 before that.
    """
    if not target.strip():
        raise UsageError("empty console target: expected a device path or scheme://…")
    if "\0" in target:
        raise UsageError(f"{target!r}: a NUL byte is not allowed in a console target")
    if target.startswith("exec:"):
        return
    scheme, rest = split_scheme(target)
    if not scheme:
        return
    check_debug_target(target)
    with _lock:
        known = scheme in _factories
    if not known:
        schemes = ", ".join(f"{s}://" for s in known_schemes())
        raise UsageError(
            f"unknown console scheme {scheme + '://'!r} in {target!r}; known: {schemes}"
        )
    if scheme == "ipmi":
        from solcap.transports.ipmi.target import IpmiTarget

        parts, _port = split_url(target, default_port=623)
        query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
        kept = [(k, v) for k, v in query if k != "reconnect"]  # solcap.connect reads that one
        IpmiTarget.parse(parts._replace(query=urllib.parse.urlencode(kept)).geturl())
    elif scheme in ("socket", "rfc2217"):
        parts, _port = split_url(target)
        if not parts.hostname:
            raise UsageError(f"{target}: expected {scheme}://host:port")
    elif scheme == "serial" and not rest:
        raise UsageError(f"{target!r}: serial:// needs a device path, e.g. serial:///dev/ttyS0")


def _open_serial_path(target: str, options: OpenOptions) -> Transport:
    """``serial:///dev/ttyS0`` → the device ``/dev/ttyS0``."""
    _scheme, path = split_scheme(target)
    if not path:
        raise UsageError(f"{target!r}: serial:// needs a device path, e.g. serial:///dev/ttyS0")
    return SerialTransport(path, line=options.line, name=path)


def _open_spy(target: str, options: OpenOptions) -> Transport:
    return open_spy(target, options.line)


def _open_pyserial_url(target: str, options: OpenOptions) -> Transport:
    """pyserial understands these URLs itself; a network one must name a host and a real port
    (pyserial would take ``socket://h:0`` or an unclosed ``[`` further than it should)."""
    scheme, _rest = split_scheme(target)
    if scheme in ("socket", "rfc2217"):
        parts, _port = split_url(target)
        if not parts.hostname:
            raise UsageError(f"{target}: expected {scheme}://host:port")
    if scheme == "rfc2217":
        return SerialTransport(_rfc2217_compatible(target), line=options.line, name=target)
    return SerialTransport(target, line=options.line)


def _rfc2217_compatible(target: str) -> str:
    """``rfc2217://host:port`` with ``ign_set_control``, so that ser2net in front of a pty works.

    pyserial's client waits for the server to confirm every SET-CONTROL (flow control, then
    DTR and RTS at open) and fails with "timeout while waiting for option 'control'" when
    no answer comes. ser2net 4 (dataxfer.c ``sergensio_val_set``) answers only once the
    device applied the value, and sends nothing when that failed; on a device without modem
    lines (a pty, where TIOCMBIS is ENOTTY; some USB adapters) setting DTR fails, so the
    answer never comes. solcap uses neither DTR nor RTS, so it opens with pyserial's own
    compatibility option ``ign_set_control`` (made for servers that do not answer), unless
    the URL already has it. Baud rate and framing are still negotiated and confirmed.
    """
    base, _, query = target.partition("?")
    options = [item for item in query.split("&") if item]
    if not any(item.partition("=")[0] == "ign_set_control" for item in options):
        options.append("ign_set_control")
    return f"{base}?{'&'.join(options)}"


register_scheme("serial", _open_serial_path)
for _scheme in ("rfc2217", "socket", "loop"):
    register_scheme(_scheme, _open_pyserial_url)
register_scheme("spy", _open_spy)
# IPMI SOL: imported on first use, so serial-only users never load pyghmi.
register_scheme("ipmi", "solcap.transports.ipmi:transport_factory")
# A BMC's own SSH console (solcap.transports.bmcssh; paramiko loaded on first use).
for _flavour in ("openbmc", "idrac", "ilo", "smc", "console"):
    register_scheme(f"ssh+{_flavour}", "solcap.transports.bmcssh:transport_factory")
# A local command on a pty (conserver's console, conman, ipmitool sol activate).
register_scheme("exec", "solcap.transports.execpty:transport_factory")
