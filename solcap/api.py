"""The Python API for people who script solcap: one call opens a recorded console.

    import solcap

    with solcap.open_console("ipmi://admin@bmc01", password_file="~/.bmc-pw") as con:
        con.expect(rb"login: ", timeout=300)
        con.xen.switch_input("xen")
        dump = con.xen.debug_key("q")
        print(con.recording.read_range(dump.start, dump.end).decode(errors="replace"))

Everything the console prints goes to a private recording (``recordings/<host>/…``) from the
first byte, exactly as the CLI does it; closing the console closes the recording. The objects
returned are the library's own (:class:`~solcap.console.Console`,
:class:`~solcap.xen.XenConsole`, :class:`~solcap.capture.Recording`), so everything documented
for them applies.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from solcap.capture import Recording, RecordingSummary, safe_name
from solcap.console import Console
from solcap.harvest import HarvestResult, harvest_keys
from solcap.transports.base import Transport
from solcap.transports.registry import open_transport, split_scheme
from solcap.transports.serialport import LineSettings
from solcap.xen import XenConsole


class RecordedConsole(Console):
    """A :class:`Console` whose sink is a :class:`Recording`, with Xen helpers attached."""

    def __init__(
        self,
        transport: Transport,
        recording: Recording | None,
        *,
        host: str,
        quiet: float,
        death_strings: Sequence[bytes | re.Pattern[bytes]] = (),
    ) -> None:
        super().__init__(
            transport,
            host=host,
            sink=recording.feed if recording is not None else None,
            death_strings=death_strings,
        )
        self.recording = recording
        #: Xen console control over this console (switch input, debug keys).
        self.xen = XenConsole(self, quiet=quiet)
        self.summary: RecordingSummary | None = None

    def harvest(self, keys: Sequence[str], **options: Any) -> HarvestResult:
        """Harvest debug keys into this console's recording (see :func:`harvest_keys`)."""
        if self.recording is None:
            raise ValueError("harvest needs a recording; open the console with record=True")
        options.setdefault("quiet", self.xen.quiet)
        return harvest_keys(self, self.recording, keys, **options)

    def close(self) -> None:
        """Close the console, then the recording (meta.json is written)."""
        try:
            super().close()
        finally:
            if self.recording is not None and self.summary is None:
                self.summary = self.recording.close()

    def __enter__(self) -> RecordedConsole:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _host_name(scheme: str, rest: str) -> str:
    """``ipmi://admin@bmc01:623`` → ``bmc01``; ``/dev/ttyS0`` → ``ttyS0``."""
    if not scheme:
        return safe_name(rest.removeprefix("/dev/"))
    netloc = rest.split("/", 1)[0].split("?", 1)[0].rsplit("@", 1)[-1]
    return safe_name(netloc.rsplit(":", 1)[0] if netloc.count(":") == 1 else netloc)


def open_console(
    target: str,
    *,
    record: bool = True,
    root: Path | str | None = None,
    label: str = "session",
    host: str | None = None,
    line: LineSettings | str | None = None,
    password_file: str | None = None,
    steal: bool = False,
    quiet: float = 1.0,
    death_strings: Sequence[bytes | re.Pattern[bytes]] = (),
) -> RecordedConsole:
    """Open ``target`` (``ipmi://user@bmc``, a serial device, a pty, ``socket://…``).

    The console is started before it is returned, so capture begins at once; use it as a
    context manager. For ``ipmi://`` the password comes from ``IPMI_PASSWORD`` or
    ``password_file`` (0600), never from an argument.
    """
    settings = LineSettings.parse(line) if isinstance(line, str) else line
    scheme, rest = split_scheme(target)
    if scheme == "ipmi":
        from solcap.credentials import password_source
        from solcap.transports.ipmi import open_ipmi

        secret_file = os.path.expanduser(password_file) if password_file else None
        source = password_source(file=secret_file, prompt=False)
        transport: Transport = open_ipmi(target, password_source=source, steal=steal)
    else:
        transport = open_transport(target, line=settings)
    name = host or _host_name(scheme, rest)
    try:
        recording = Recording(name, label=label, root=root) if record else None
    except BaseException:
        transport.close()
        raise
    console = RecordedConsole(
        transport, recording, host=name, quiet=quiet, death_strings=death_strings
    )
    if recording is not None:
        recording.event("connect", target=target)
    return console.start()  # type: ignore[return-value]
