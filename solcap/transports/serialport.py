"""Serial consoles through pyserial: device paths, ptys and pyserial's URL handlers.

One class covers ``/dev/ttyS0``, ``/dev/pts/N`` (the simulator and tests use ptys),
``rfc2217://host:port`` (network serial servers), ``socket://host:port`` (raw TCP serial
servers, ``ipmi_sim``'s SOL back end) and ``loop://``, because pyserial already hides their
differences behind ``serial_for_url``. What pyserial does not give us is a read that returns *as
soon as* one byte is there without spinning, so :meth:`SerialTransport.read` waits with
``select`` on the port's file descriptor where there is one, and only falls back to pyserial's
own blocking read (with a timeout) for handlers that have no descriptor (``loop://``,
``rfc2217://``).

pyserial's exceptions never leave this module: a port that cannot be opened becomes
:class:`~solcap.errors.ConnectError` naming the port and the cause; a port that fails or hangs up
while open becomes :class:`~solcap.errors.ConsoleClosed`; a malformed URL or line setting is the
user's mistake and becomes :class:`~solcap.errors.UsageError`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import os
import re
import select
import stat
import urllib.parse
from typing import Final, TextIO

import serial

from solcap.errors import ConnectError, ConsoleClosed, UsageError
from solcap.transports.base import Transport

__all__ = ["LineSettings", "SerialTransport", "open_spy"]

_PARITIES: Final = {
    "n": serial.PARITY_NONE,
    "e": serial.PARITY_EVEN,
    "o": serial.PARITY_ODD,
    "m": serial.PARITY_MARK,
    "s": serial.PARITY_SPACE,
}
_STOPBITS: Final = {
    1.0: serial.STOPBITS_ONE,
    1.5: serial.STOPBITS_ONE_POINT_FIVE,
    2.0: serial.STOPBITS_TWO,
}
_LINE_RE: Final = re.compile(r"(\d+)(?:,([5-8])([neoms])(1|1\.5|2))?", re.IGNORECASE)
_MAX_BAUD: Final = 4_000_000
#: The rates a UART driver is asked for by name (termios ``B50`` … ``B4000000``): Xen's
#: ``com1=``, GRUB's ``serial --speed`` and every console server use these; ``12345`` is a
#: typing mistake that would otherwise show up only as garbage on the line.
STANDARD_BAUDS: Final = frozenset(
    {50, 75, 110, 134, 150, 200, 300, 600, 1200, 1800, 2400, 4800, 9600, 19200, 38400}
    | {57600, 115200, 230400, 460800, 500000, 576000, 921600, 1000000, 1152000, 1500000}
    | {2000000, 2500000, 3000000, 3500000, 4000000}
)


@dataclasses.dataclass(frozen=True)
class LineSettings:
    """Serial line parameters, written the way Xen's ``com1=`` and GRUB's docs write them.

    The default is 38400 8N1 because that is the profile Xen and GRUB serial setups in the
    field use most (``com1=38400,8n1``, ``serial --speed=38400``); a faster line must be asked
    for explicitly so that a mismatch shows up as a setting, not as garbage on the screen.
    """

    baud: int = 38400
    bits: int = 8
    parity: str = "n"
    stop: float = 1.0

    def __post_init__(self) -> None:
        if not 0 < self.baud <= _MAX_BAUD:
            raise UsageError(f"bad baud rate {self.baud}: expected 1..{_MAX_BAUD}")
        if self.baud not in STANDARD_BAUDS:
            raise UsageError(
                f"bad baud rate {self.baud}: not a standard serial rate "
                "(e.g. 9600, 38400, 57600, 115200)"
            )
        if self.bits not in (5, 6, 7, 8):
            raise UsageError(f"bad data bits {self.bits}: expected 5, 6, 7 or 8")
        if self.parity not in _PARITIES:
            raise UsageError(f"bad parity {self.parity!r}: expected one of n, e, o, m, s")
        if float(self.stop) not in _STOPBITS:
            raise UsageError(f"bad stop bits {self.stop}: expected 1, 1.5 or 2")

    @classmethod
    def parse(cls, text: str) -> LineSettings:
        """Parse ``BAUD[,DPS]`` such as ``38400,8n1`` or ``115200`` (Xen's ``com1=`` syntax)."""
        m = _LINE_RE.fullmatch(text.strip())
        if m is None:
            raise UsageError(
                f"bad line settings {text!r}: expected BAUD[,DATABITS PARITY STOPBITS]"
                " such as '38400,8n1'"
            )
        baud_s, bits_s, parity_s, stop_s = m.groups()
        if bits_s is None:
            return cls(baud=int(baud_s))
        return cls(baud=int(baud_s), bits=int(bits_s), parity=parity_s.lower(), stop=float(stop_s))

    def __str__(self) -> str:
        stop = f"{self.stop:g}"
        return f"{self.baud},{self.bits}{self.parity}{stop}"

    @property
    def pyserial_parity(self) -> str:
        """pyserial's spelling of the parity (``"N"``, ``"E"``, …)."""
        return _PARITIES[self.parity]

    @property
    def pyserial_stopbits(self) -> float:
        """pyserial's spelling of the stop bits."""
        return _STOPBITS[float(self.stop)]


_ERRNO_RES: Final = (re.compile(r"\[Errno (\d+)\]"), re.compile(r"\((\d+), '"))


def _cause(exc: BaseException) -> str:
    """A short human cause for a pyserial/OS error, in the OS's words where there is an errno.

    pyserial wraps OS errors in prose of its own ("could not open port X: [Errno 2] …"); the
    port is already named by the exception we raise, so only the cause is kept.
    """
    errno_ = getattr(exc, "errno", None)
    if isinstance(errno_, int) and errno_ > 0:
        return os.strerror(errno_)
    text = " ".join(str(exc).split())
    for pattern in _ERRNO_RES:
        m = pattern.search(text)
        if m is not None:
            return os.strerror(int(m.group(1)))
    if "returned no data" in text or "socket disconnected" in text:
        return "end of file (the far side hung up)"
    return text or type(exc).__name__


def _open_keeping_input(port: serial.Serial) -> None:
    """``port.open()`` without the ``reset_input_buffer()`` pyserial ends every open with.

    That "clean start" throws away what the host printed just before we connected: on a
    device the kernel's input queue, on ``rfc2217://`` the server's (ser2net flushes the device
    on the purge request), on ``socket://`` whatever already arrived. A console recorder's
    first bytes are often the panic that made someone connect, so nothing is discarded. The
    no-op lives on this one object for the length of the call and never on the class.
    """
    port.reset_input_buffer = lambda: None  # type: ignore[method-assign]
    try:
        port.open()
    finally:
        del port.reset_input_buffer


class SerialTransport(Transport):
    """A console on a serial device or a pyserial URL.

    ``url`` is anything ``serial.serial_for_url`` accepts. The port is opened immediately, in
    non-blocking mode (pyserial's ``timeout=0``), so :meth:`read` can wait in ``select`` and
    then drain exactly what is already there.
    """

    def __init__(
        self,
        url: str,
        *,
        line: LineSettings | None = None,
        name: str | None = None,
        spy_output: TextIO | None = None,
    ) -> None:
        self.url = url
        self.line = line if line is not None else LineSettings()
        self.name = name if name is not None else url
        self._closed = False
        self._spy_output = spy_output
        try:
            port = serial.serial_for_url(
                url,
                baudrate=self.line.baud,
                bytesize=self.line.bits,
                parity=self.line.pyserial_parity,
                stopbits=self.line.pyserial_stopbits,
                timeout=0,
                do_not_open=True,
            )
        except ValueError as exc:  # unknown pyserial protocol or bad parameter
            raise UsageError(f"{url}: {_cause(exc)}") from exc
        except (serial.SerialException, OSError) as exc:
            raise ConnectError(self.name, f"cannot open serial port: {_cause(exc)}") from exc
        formatter = getattr(port, "formatter", None)
        if spy_output is not None and formatter is not None:
            formatter.output = spy_output  # spy://: our 0600 file, not one pyserial opens
        try:
            _open_keeping_input(port)
        except (serial.SerialException, OSError) as exc:
            raise ConnectError(self.name, f"cannot open serial port: {_cause(exc)}") from exc
        except ValueError as exc:  # e.g. a bad host:port in socket:// or rfc2217://
            raise UsageError(f"{url}: {_cause(exc)}") from exc
        self._port = port
        self._fd: int | None
        try:
            self._fd = int(port.fileno())
        except (AttributeError, NotImplementedError, OSError, serial.SerialException):
            self._fd = None
        # Only handlers without a descriptor use pyserial's timeout; remember the one set so
        # that we do not reconfigure the port (rfc2217 renegotiates!) on every read.
        self._port_timeout: float | None = 0.0

    def read(self, max_bytes: int, timeout: float) -> bytes:
        """Wait up to ``timeout`` s for one byte, then return everything already there."""
        if self._closed:
            raise ConsoleClosed(self.name, "console was closed locally")
        if self._fd is not None:
            return self._read_fd(self._fd, max_bytes, timeout)
        return self._read_blocking(max_bytes, timeout)

    def _read_fd(self, fd: int, max_bytes: int, timeout: float) -> bytes:
        try:
            ready, _, _ = select.select([fd], [], [], max(0.0, timeout))
        except (OSError, ValueError) as exc:
            raise ConsoleClosed(self.name, f"read failed: {_cause(exc)}") from exc
        if not ready:
            return b""
        try:
            # timeout=0: pyserial reads what is there (up to max_bytes) and returns. A
            # descriptor that selects readable but yields nothing has hung up (pty master
            # closed, USB adapter unplugged); pyserial reports that as an exception too.
            data = self._port.read(max_bytes)
        except (serial.SerialException, OSError) as exc:
            raise ConsoleClosed(self.name, f"console hung up: {_cause(exc)}") from exc
        return bytes(data)

    def _read_blocking(self, max_bytes: int, timeout: float) -> bytes:
        timeout = max(0.0, timeout)
        try:
            if self._port_timeout != timeout:
                self._port.timeout = timeout
                self._port_timeout = timeout
            data = bytes(self._port.read(1))
            if data and max_bytes > 1:
                waiting = int(self._port.in_waiting)
                if waiting:
                    data += bytes(self._port.read(min(waiting, max_bytes - 1)))
        except (serial.SerialException, OSError) as exc:
            raise ConsoleClosed(self.name, f"console hung up: {_cause(exc)}") from exc
        if not data and not self._port.is_open:
            raise ConsoleClosed(self.name, "console was closed")
        return data

    def write(self, data: bytes) -> None:
        """Write all of ``data`` (pyserial loops over partial writes for us)."""
        if self._closed:
            raise ConsoleClosed(self.name, "console was closed locally")
        try:
            self._port.write(data)
        except (serial.SerialException, OSError) as exc:
            raise ConsoleClosed(self.name, f"write failed: {_cause(exc)}") from exc

    def send_break(self) -> None:
        """Hold the line in BREAK for 0.25 s (SysRq on Linux, attention on some firmware).

        ``socket://`` refuses (NotImplementedError): raw TCP has no way to say BREAK, and
        pyserial's socket handler would drop it without a word, so ``~B`` would claim a BREAK
        the host never got; ``rfc2217://`` carries one.
        """
        if self._closed:
            raise ConsoleClosed(self.name, "console was closed locally")
        if type(self._port).__module__ == "serial.urlhandler.protocol_socket":
            raise NotImplementedError(f"{self.name}: socket:// is raw TCP and carries no BREAK")
        try:
            self._port.send_break(duration=0.25)
        except (serial.SerialException, OSError) as exc:
            raise ConsoleClosed(self.name, f"break failed: {_cause(exc)}") from exc

    def close(self) -> None:
        """Close the port; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        # Closing a port that already failed has nothing left to report.
        with contextlib.suppress(serial.SerialException, OSError):
            self._port.close()
        if self._spy_output is not None:
            with contextlib.suppress(OSError):
                self._spy_output.close()


def _private_log(path: str) -> TextIO:
    """Create or truncate ``path`` as a 0600 file of ours; never follow a symlink."""
    try:
        fd = os.open(
            path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600
        )
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UsageError(f"spy:// file {path!r} is a symlink; refusing to follow it") from exc
        raise UsageError(f"spy:// file {path!r}: {_cause(exc)}") from exc
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode) or info.st_uid != os.geteuid():
        os.close(fd)
        raise UsageError(f"spy:// file {path!r} is not a regular file of ours")
    os.fchmod(fd, 0o600)
    return open(fd, "w", encoding="utf-8", errors="replace")


def open_spy(url: str, line: LineSettings | None) -> SerialTransport:
    """``spy://DEVICE?file=PATH``: pyserial's logging wrapper, its log made private.

    pyserial would ``open(PATH, "w")`` itself (mode 0644 under the usual umask, following
    symlinks) and write every byte sent into it; so the ``file`` option is taken out of the
    URL and the log is a 0600 file solcap created (see :func:`_private_log`).
    """
    base, _, query = url.partition("?")
    kept: list[str] = []
    log: str | None = None
    for item in query.split("&") if query else []:
        name, _, value = item.partition("=")
        if urllib.parse.unquote_plus(name) == "file":
            log = urllib.parse.unquote_plus(value)
        else:
            kept.append(item)
    stripped = base + ("?" + "&".join(kept) if kept else "")
    output = _private_log(log) if log else None
    try:
        return SerialTransport(stripped, line=line, name=url, spy_output=output)
    except BaseException:
        if output is not None:
            output.close()
        raise
