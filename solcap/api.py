"""The Python API for people who script solcap: one call opens a recorded console.

    import solcap

    with solcap.open_console("ipmi://admin@bmc01", password_file="~/.bmc-pw") as con:
        con.expect(rb"login: ", timeout=300)
        con.xen.switch_input("xen")
        dump = con.xen.debug_key("q")
        print(con.recording.read_range(dump.start, dump.end).decode(errors="replace"))

Everything the console prints goes to a private recording (``recordings/<host>/…``) from the
first byte, exactly as the CLI does it; closing the console closes the recording. The objects
returned are the library's own (:class:`~solcap.console.core.Console`,
:class:`~solcap.xen.console.XenConsole`, :class:`~solcap.capture.recording.Recording`), so
everything documented for them applies.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from solcap.capture.recording import Recording
from solcap.connect import ConsoleSpec, RecordedConsole
from solcap.connect import open_console as _open_spec
from solcap.transports.serialport import LineSettings

__all__ = ["RecordedConsole", "open_console"]


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
    ``password_file`` (0600), never from an argument, and the console reconnects after a
    lost or stolen session (``gap`` events in the recording) unless the address says
    ``reconnect=0``. It is :func:`solcap.connect.open_console` with the recording owned by
    the console: closing the console closes the recording.
    """
    spec = ConsoleSpec.from_url(
        target, host=host, line=line, password_file=password_file, steal=steal, prompt=False
    )

    def make_recording() -> Recording:
        return Recording(spec.host, label=label, root=root)

    return _open_spec(
        spec,
        recording=make_recording if record else None,
        death_strings=death_strings,
        quiet=quiet,
        owns_recording=True,
    )
