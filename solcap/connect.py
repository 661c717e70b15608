"""One way to open a console: what to open (:class:`ConsoleSpec`) and :func:`open_console`.

Every command, the Python API, the runbook runner and the fleet open their consoles here, so
they all behave alike:

* **Credentials** are resolved in this module and nowhere else: a spec holds *references* (a
  :class:`~solcap.config.credentials.PasswordSource` for a command line — ``--password-file``,
  ``$IPMI_PASSWORD``, a prompt — or an inventory's ``env:NAME`` / ``file:PATH``
  :class:`~solcap.inventory.SecretRef` for the BMC password and the Kg key), read once, just
  before the first login, and handed to the transport as an
  :class:`~solcap.transports.registry.OpenOptions`. Reconnections reuse them (they stay in
  this process only).
* **The transport** comes from the registry for every scheme, ``ipmi://`` included.
* **Reconnection** (:class:`~solcap.transports.reconnect.ReconnectingTransport`: jittered backoff, a
cap on
  attempts and total time, ``disconnected``/``gap``/``reconnected`` events at the exact
  stream offset) is on for the schemes whose sessions end without the host going away —
  ``ipmi://`` and a BMC's SSH console — unless the address says ``reconnect=0`` or the caller
  passes ``reconnect=False``. A Console reading through it only sees a quiet spell, so a
  step waiting for a prompt keeps waiting through the reconnection, its timeout still counting.
* **A running ``solcap serve``** holding the console comes first: when one holds the
  inventory host (a server of the same inventory) or the target (a served host's BMC or
  serial URL), the console is opened *through it* (:mod:`solcap.serve.client`) instead of a
  second SOL session, which the BMC would refuse or take from the server; the server's
  continuous log gets the same bytes. No server: everything below, unchanged.
* **The recording** is created only once the console is open (a host whose console cannot
  be opened leaves no empty recording directory), gets the connection's metadata and a
  ``connect`` event, and then every byte from the first one.

Why one module: the eight openers this replaced disagreed on reconnection, on which Kg
reference they honoured, on death strings and on host names.
"""

from __future__ import annotations

import dataclasses
import os
import re
import sys
import urllib.parse
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from solcap.capture.recording import Recording, RecordingSummary, safe_name
from solcap.config.credentials import PasswordSource, kg_source, known_secret, password_source
from solcap.config.limits import split_url
from solcap.console.core import Console
from solcap.errors import UsageError
from solcap.inventory import Host, SecretRef
from solcap.transports.base import Transport
from solcap.transports.reconnect import EventSink, ReconnectingTransport, ReconnectPolicy
from solcap.transports.registry import (
    OpenOptions,
    connection_meta,
    host_name,
    open_transport,
    split_scheme,
)
from solcap.transports.serialport import LineSettings
from solcap.xen.console import XenConsole

if TYPE_CHECKING:
    from solcap.serve.client import ServedHost, ServedTransport
    from solcap.xen.harvest import HarvestResult

__all__ = [
    "ConsoleSpec",
    "RecordedConsole",
    "RecordingFactory",
    "SecretSource",
    "bmc_kg",
    "bmc_password",
    "bmc_sources",
    "open_console",
    "open_recorded_transport",
    "open_through_server",
    "resolve_options",
    "serving",
]

#: Where a secret comes from: a command line's source, an inventory reference, or nothing.
SecretSource = PasswordSource | SecretRef | None
#: Creates the recording once the console is open (so a failed open leaves nothing behind).
RecordingFactory = Callable[[], Recording]
#: Schemes whose sessions end without the host going away: reconnected by default.
RECONNECTING_SCHEMES = frozenset(
    {"ipmi", "ssh+openbmc", "ssh+idrac", "ssh+ilo", "ssh+smc", "ssh+console"}
)
_FLAG_VALUES = {"0": False, "no": False, "false": False, "1": True, "yes": True, "true": True}


@dataclasses.dataclass(frozen=True)
class ConsoleSpec:
    """What console to open and how, with secrets as references (never their values).

    Build one with :meth:`from_url` (a command line or the API) or :meth:`from_host` (an
    inventory host). ``host`` names the recording directory; ``profile`` (inventory hosts)
    lets the BMC's SOL bit rate be checked against the profile's console speed.
    """

    target: str
    host: str
    line: LineSettings | None = None
    password: SecretSource = None
    kg: SecretSource = None
    cipher: int | None = None
    steal: bool = False
    connect_timeout: float | None = None
    #: Who the secrets' error messages name (an inventory host), or None.
    owner: str | None = None
    profile: str | None = None
    #: The inventory file of an inventory host: a ``solcap serve`` of that inventory holding
    #: ``host`` is used instead of opening the console (see :func:`serving`).
    inventory: str | None = None
    #: How to attach through a server: ``write`` (a command: fails if someone writes),
    #: ``auto`` (write if free, else spy), ``spy`` or ``force``.
    serve_mode: str = "write"

    @classmethod
    def from_url(
        cls,
        target: str,
        *,
        host: str | None = None,
        line: LineSettings | str | None = None,
        password_file: str | None = None,
        kg_file: str | None = None,
        password: PasswordSource | None = None,
        kg: PasswordSource | None = None,
        steal: bool = False,
        prompt: bool = True,
        connect_timeout: float | None = None,
    ) -> ConsoleSpec:
        """A console named by a device path or URL; ``password_file`` (0600) beats
        ``$IPMI_PASSWORD``, which beats a prompt (when ``prompt`` and on a terminal)."""
        if not target.strip():
            raise UsageError("empty console target: expected a device path or scheme://…")
        if "\0" in target:
            raise UsageError(f"{target!r}: a NUL byte is not allowed in a console target")
        settings = LineSettings.parse(line) if isinstance(line, str) else line
        scheme, _rest = split_scheme(target)
        if steal and scheme != "ipmi":
            raise UsageError("--steal applies to ipmi:// targets only")
        if scheme != "ipmi" and (password_file or kg_file):
            given = [
                f for f, v in (("--password-file", password_file), ("--kg-file", kg_file)) if v
            ]
            verb = "apply" if len(given) > 1 else "applies"
            raise UsageError(f"{' and '.join(given)} {verb} to ipmi:// targets only")
        return cls(
            target=target,
            host=safe_name(host) if host else host_name(target),
            line=settings,
            password=password or password_source(_expand(password_file), prompt=prompt),
            kg=kg or kg_source(_expand(kg_file)),
            steal=steal,
            connect_timeout=connect_timeout,
        )

    @classmethod
    def from_host(cls, host: Host, *, connect_timeout: float | None = None) -> ConsoleSpec:
        """An inventory host's console: ``console``/``via`` (an ``exec:`` console client or a
        BMC's SSH console), else its serial device or URL, else its BMC's SOL.

        The BMC password and Kg come from the inventory's references and never from a prompt,
        so an unattended run cannot hang on one; no Kg reference means ``$IPMI_KGKEY`` (or
        none).
        """
        from solcap.serve.client import inventory_of

        inventory = inventory_of(host.origin)
        given = host.console if host.console is not None else host.serial
        if given is not None:
            return cls(
                target=given, host=host.name, line=host.line, owner=host.name, inventory=inventory
            )
        if host.bmc is None:
            raise UsageError(f"{host.name}: no console (serial: or bmc:) in the inventory")
        return cls(
            target=host.bmc_url or host.bmc.url,
            host=host.name,
            password=bmc_password(host),
            kg=bmc_kg(host),
            cipher=host.cipher,
            connect_timeout=connect_timeout,
            owner=host.name,
            profile=host.profile,
            inventory=inventory,
        )

    @property
    def scheme(self) -> str:
        """The target's scheme (``exec`` for ``exec:CMD``; empty for a device path)."""
        if self.target.startswith("exec:"):
            return "exec"
        return split_scheme(self.target)[0]


def bmc_password(host: Host) -> SecretRef:
    """The inventory's BMC password reference; UsageError (naming the host) without one."""
    if host.password is None:
        raise UsageError(f"{host.name}: the inventory gives no BMC password reference")
    return host.password


def bmc_kg(host: Host) -> SecretSource:
    """The inventory's Kg reference (``env:NAME`` or ``file:PATH``); none: ``$IPMI_KGKEY``."""
    return host.kg if host.kg is not None else kg_source()


def bmc_sources(host: Host) -> tuple[PasswordSource, PasswordSource]:
    """The host's BMC password and Kg as sources for BMC commands besides the console (power,
    SOL configuration), resolved here like the console's."""
    return (
        as_password_source(bmc_password(host), owner=host.name, what="BMC password"),
        as_password_source(bmc_kg(host), owner=host.name, what="Kg"),
    )


def _expand(path: str | None) -> str | None:
    return os.path.expanduser(path) if path else None


def _resolve(source: SecretSource, what: str, *, owner: str | None, required: bool) -> str | None:
    """The secret's value: the one place references become secrets."""
    try:
        if source is None:
            if required:
                raise UsageError(f"no {what}")
            return None
        if isinstance(source, SecretRef):
            return source.resolve()
        return source.get(what) if required else source.get_optional()
    except UsageError as exc:
        if owner is None:
            raise
        raise UsageError(f"{owner}: {what}: {exc.one_line()}") from exc


def as_password_source(source: SecretSource, *, owner: str | None, what: str) -> PasswordSource:
    """A reference as a :class:`PasswordSource` (for BMC commands besides the console)."""
    if isinstance(source, PasswordSource):
        return source
    return known_secret(_resolve(source, what, owner=owner, required=False))


def resolve_options(spec: ConsoleSpec) -> OpenOptions:
    """The spec's :class:`OpenOptions`, its secrets read now (only ``ipmi://`` takes them:
    other transports name their own references, e.g. ``ssh+idrac://…?password=env:NAME``)."""
    if spec.scheme != "ipmi":
        return OpenOptions(line=spec.line, connect_timeout=spec.connect_timeout)
    from solcap.transports.ipmi import IpmiTarget

    parsed = IpmiTarget.parse(split_reconnect_option(spec.target)[0])
    password = _resolve(
        spec.password,
        f"IPMI password for {parsed.user}@{parsed.name}",
        owner=spec.owner,
        required=True,
    )
    key = _resolve(spec.kg, "Kg", owner=spec.owner, required=False)
    return OpenOptions(
        password=password,
        kg=key,
        cipher=spec.cipher,
        steal=spec.steal,
        connect_timeout=spec.connect_timeout,
    )


def split_reconnect_option(target: str) -> tuple[str, bool | None]:
    """Take ``reconnect=0|1|no|yes|false|true`` out of an ``ipmi://`` address; read it (and
    leave it for the transport's own parser) in a BMC SSH console's. None: not given."""
    scheme, _rest = split_scheme(target)
    if scheme not in RECONNECTING_SCHEMES:
        return target, None
    parts, _port = split_url(target, default_port=623 if scheme == "ipmi" else 22)
    query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    wanted: bool | None = None
    rest = []
    for key, value in query:
        if key == "reconnect":
            if value.lower() not in _FLAG_VALUES:
                raise UsageError(f"{target}: reconnect must be 0 or 1")
            wanted = _FLAG_VALUES[value.lower()]
        else:
            rest.append((key, value))
    if scheme != "ipmi":
        return target, wanted
    return parts._replace(query=urllib.parse.urlencode(rest)).geturl(), wanted


def _policy(
    spec: ConsoleSpec, wanted: bool | None, reconnect: ReconnectPolicy | bool | None
) -> ReconnectPolicy | None:
    if reconnect is False or wanted is False:
        return None
    if isinstance(reconnect, ReconnectPolicy):
        return reconnect
    if reconnect is True or spec.scheme in RECONNECTING_SCHEMES:
        return ReconnectPolicy()
    return None


def _tee(*sinks: Callable[..., None] | None) -> EventSink | None:
    live = [s for s in sinks if s is not None]
    if not live:
        return None

    def sink(kind: str, /, **fields: Any) -> None:
        for each in live:
            each(kind, **fields)

    return sink


def serving(spec: ConsoleSpec, *, directory: Path | None = None) -> ServedHost | None:
    """The running ``solcap serve`` holding ``spec``'s console, or None: by inventory host
    when the spec comes from an inventory, else by target (see
    :func:`solcap.serve.client.find_serving`; ``directory``: the servers' control directory,
    default ``$SOLCAP_SERVE_DIR`` or the runtime directory)."""
    from solcap.serve.client import find_serving

    if spec.inventory is not None:
        return find_serving(spec.host, inventory=spec.inventory, directory=directory)
    return find_serving(target=split_reconnect_option(spec.target)[0], directory=directory)


def open_through_server(
    spec: ConsoleSpec, found: ServedHost | None = None, **options: Any
) -> ServedTransport | None:
    """``spec``'s console through the server holding it (``found``, else :func:`serving`),
    attached as ``spec.serve_mode``; None when no server holds it. ``options`` go to
    :func:`solcap.serve.client.open_served`."""
    from solcap.serve.client import open_served

    found = found if found is not None else serving(spec)
    if found is None:
        return None
    options.setdefault("wait", spec.connect_timeout or 10.0)
    return open_served(found, mode=spec.serve_mode, **options)


def _served_meta(transport: ServedTransport) -> dict[str, Any]:
    attachment = transport.attachment
    return {
        "via": "solcap serve",
        "serve_socket": str(attachment.path),
        "serve_role": transport.role,
        "serve_offset": attachment.offset,
    }


def open_recorded_transport(
    spec: ConsoleSpec,
    *,
    recording: Recording | RecordingFactory | None = None,
    reconnect: ReconnectPolicy | bool | None = None,
    on_event: EventSink | None = None,
    through_server: bool = True,
) -> tuple[Transport, Recording | None]:
    """Open ``spec``'s transport (reconnecting where that applies), then its recording.

    ``recording`` is a :class:`Recording`, a factory called once the transport is open, or
    None. ``reconnect``: a policy, True/False to force, None for the scheme's default (the
    address's ``reconnect=`` wins over a default). Reconnection events go to the recording
    and to ``on_event`` (e.g. to tell an attached person that the console is down or up).
    ``through_server=False`` never looks for a ``solcap serve`` (the server itself opening).
    """
    served = open_through_server(spec) if through_server else None
    if served is not None:
        transport: Transport = served
        policy = None  # the server reconnects; its state notices become events here
    else:
        target, wanted = split_reconnect_option(spec.target)
        policy = _policy(spec, wanted, reconnect)
        options = resolve_options(spec)

        def connect() -> Transport:
            return open_transport(target, options)

        transport = connect() if policy is None else ReconnectingTransport(connect, policy=policy)
    try:
        rec = recording() if callable(recording) else recording
    except BaseException:
        transport.close()
        raise
    sink = _tee(rec.event if rec is not None else None, on_event)
    if isinstance(transport, ReconnectingTransport):
        transport.set_event_sink(sink)
    if served is not None and sink is not None:
        served.on_notice = _notice_events(sink)
    if rec is not None:
        meta = _served_meta(served) if served is not None else connection_meta(transport)
        rec.set_meta(**meta)
        line = str(spec.line) if spec.line is not None and spec.scheme != "ipmi" else None
        fields: dict[str, Any] = {"target": spec.target, **meta}
        if line is not None:
            fields["line"] = line
        if policy is not None:
            fields["reconnect"] = True
        rec.event("connect", **fields)
        if spec.profile is not None and spec.scheme == "ipmi":
            check_sol_rate(spec, rec)
    return transport, rec


def _notice_events(sink: EventSink) -> Callable[[dict[str, Any]], None]:
    """A server's notices (``forced``, ``state``, ``notice``) as ``serve-…`` events."""

    def on_notice(notice: dict[str, Any]) -> None:
        fields = {k: v for k, v in notice.items() if k != "event"}
        sink(f"serve-{notice.get('event', 'notice')}", **fields)

    return on_notice


def check_sol_rate(spec: ConsoleSpec, recording: Recording) -> None:
    """Warn (event + stderr) when the BMC's SOL bit rate is not the profile's console speed."""
    from solcap.boot.profiles import load_profile
    from solcap.errors import SolcapError
    from solcap.transports.bmc import line_rate_warning, sol_config

    assert spec.profile is not None
    try:
        profile = load_profile(spec.profile)
        config = sol_config(
            split_reconnect_option(spec.target)[0],
            password_source=as_password_source(spec.password, owner=spec.owner, what="password"),
            kg=as_password_source(spec.kg, owner=spec.owner, what="Kg"),
        )
    except SolcapError as exc:
        recording.event("sol-config-unavailable", error=exc.one_line())
        return
    recording.event("sol-config", enabled=config.enabled, bit_rate=config.bit_rate)
    if profile.console is None:
        return
    warning = line_rate_warning(config, profile.console.baud, host=spec.host, profile=profile.name)
    if warning is not None:
        recording.event("warning", message=warning)
        print(f"solcap: warning: {warning}", file=sys.stderr)


class RecordedConsole(Console):
    """A :class:`Console` whose sink is a :class:`Recording`, with Xen helpers attached.

    With ``owns_recording`` (the Python API) closing the console closes the recording too;
    commands and fleet jobs close it themselves, with their outcome.
    """

    def __init__(
        self,
        transport: Transport,
        recording: Recording | None,
        *,
        host: str,
        quiet: float = 1.0,
        death_strings: Sequence[bytes | re.Pattern[bytes]] = (),
        owns_recording: bool = False,
    ) -> None:
        super().__init__(
            transport,
            host=host,
            sink=recording.feed if recording is not None else None,
            death_strings=death_strings,
        )
        self.recording = recording
        self.owns_recording = owns_recording
        #: Xen console control over this console (switch input, debug keys).
        self.xen = XenConsole(self, quiet=quiet)
        self.summary: RecordingSummary | None = None

    def harvest(self, keys: Sequence[str], **options: Any) -> HarvestResult:
        """Harvest debug keys into this console's recording (see :func:`harvest_keys`)."""
        from solcap.errors import RecordingError
        from solcap.xen.harvest import harvest_keys

        if self.recording is None:
            raise RecordingError("harvest needs a recording; open the console with record=True")
        options.setdefault("quiet", self.xen.quiet)
        return harvest_keys(self, self.recording, keys, **options)

    def close(self) -> None:
        """Close the console, then (when it owns it) the recording: meta.json is written."""
        try:
            super().close()
        finally:
            if self.owns_recording and self.recording is not None and self.summary is None:
                self.summary = self.recording.close()

    def __enter__(self) -> RecordedConsole:
        self.start()
        return self


def open_console(
    spec: ConsoleSpec,
    *,
    recording: Recording | RecordingFactory | None = None,
    death_strings: Sequence[bytes | re.Pattern[bytes]] = (),
    reconnect: ReconnectPolicy | bool | None = None,
    quiet: float = 1.0,
    owns_recording: bool = False,
    on_event: EventSink | None = None,
) -> RecordedConsole:
    """Open ``spec`` and return a *started* :class:`RecordedConsole` (capture has begun).

    See :func:`open_recorded_transport` for ``recording``, ``reconnect`` and ``on_event``;
    ``death_strings`` are watched from the first byte. Close it (or use it as a context
    manager); a failure to start closes the transport.
    """
    transport, rec = open_recorded_transport(
        spec, recording=recording, reconnect=reconnect, on_event=on_event
    )
    console = RecordedConsole(
        transport,
        rec,
        host=spec.host,
        quiet=quiet,
        death_strings=death_strings,
        owns_recording=owns_recording,
    )
    try:
        console.start()
    except BaseException:
        console.close()
        raise
    return console
