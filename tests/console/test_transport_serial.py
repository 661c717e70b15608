"""SerialTransport and open_transport against real ptys, a real TCP server and loop://."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from solcap.errors import ConnectError, ConsoleClosed, UsageError
from solcap.transports.base import Transport
from solcap.transports.registry import (
    known_schemes,
    open_transport,
    register_scheme,
    split_scheme,
)
from solcap.transports.serialport import LineSettings, SerialTransport

pytestmark = pytest.mark.timeout(30)


def test_read_returns_empty_after_timeout(pty_pair: Any) -> None:
    with SerialTransport(pty_pair.path) as t:
        start = time.monotonic()
        assert t.read(100, 0.2) == b""
        assert time.monotonic() - start >= 0.19


def test_read_wakes_as_soon_as_a_byte_arrives(pty_pair: Any) -> None:
    with SerialTransport(pty_pair.path) as t:
        got: list[bytes] = []
        reading = threading.Event()

        def reader() -> None:
            reading.set()
            got.append(t.read(100, 20.0))

        thread = threading.Thread(target=reader)
        thread.start()
        assert reading.wait(5)
        start = time.monotonic()
        pty_pair.write(b"x")
        thread.join(10)
        assert got == [b"x"]
        assert time.monotonic() - start < 5.0  # woke on the byte, not at the 20 s timeout


def test_read_drains_what_is_there_up_to_max(pty_pair: Any) -> None:
    with SerialTransport(pty_pair.path) as t:
        pty_pair.write(b"0123456789" * 3)
        first = t.read(10, 5.0)
        assert first == b"0123456789"
        rest = b""
        while len(rest) < 20:
            chunk = t.read(100, 5.0)
            assert chunk
            rest += chunk
        assert rest == b"0123456789" * 2


def test_write_reaches_the_target_byte_exact(pty_pair: Any) -> None:
    payload = bytes(range(256)) * 4  # raw mode: no CR/LF translation, no echo
    with SerialTransport(pty_pair.path) as t:
        t.write(payload)
        assert pty_pair.read_exactly(len(payload)) == payload


def test_hangup_is_console_closed(pty_pair: Any) -> None:
    with SerialTransport(pty_pair.path) as t:
        pty_pair.hang_up()
        with pytest.raises(ConsoleClosed) as info:
            t.read(100, 5.0)
        assert info.value.host == pty_pair.path
        assert "hung up" in str(info.value)


def test_send_break_on_a_pty_does_not_fail(pty_pair: Any) -> None:
    with SerialTransport(pty_pair.path) as t:
        t.send_break()
        t.write(b"after")
        assert pty_pair.read_exactly(5) == b"after"


def test_close_is_idempotent_and_read_after_close_is_closed(pty_pair: Any) -> None:
    t = SerialTransport(pty_pair.path)
    t.close()
    t.close()
    with pytest.raises(ConsoleClosed):
        t.read(1, 0.1)
    with pytest.raises(ConsoleClosed):
        t.write(b"x")


def test_nonexistent_device_is_connect_error_on_one_line() -> None:
    with pytest.raises(ConnectError) as info:
        open_transport("/dev/solcap-no-such-tty")
    message = info.value.one_line()
    assert message == "/dev/solcap-no-such-tty: cannot open serial port: No such file or directory"
    assert "\n" not in str(info.value)


def test_non_tty_file_is_connect_error(tmp_path: Any) -> None:
    path = tmp_path / "plain"
    path.write_bytes(b"")
    with pytest.raises(ConnectError, match="Inappropriate ioctl"):
        open_transport(str(path))


def test_unknown_scheme_is_usage_error_listing_known_ones() -> None:
    with pytest.raises(UsageError) as info:
        open_transport("telnet://127.0.0.1:23")
    text = str(info.value)
    assert "'telnet://'" in text
    for scheme in ("serial://", "socket://", "rfc2217://", "loop://"):
        assert scheme in text


def test_empty_target_is_usage_error() -> None:
    with pytest.raises(UsageError):
        open_transport("  ")


def test_serial_scheme_opens_the_path(pty_pair: Any) -> None:
    with open_transport(f"serial://{pty_pair.path}") as t:
        assert isinstance(t, SerialTransport)
        assert t.name == pty_pair.path
        pty_pair.write(b"hi")
        assert t.read(10, 5.0) == b"hi"


def test_serial_scheme_without_path_is_usage_error() -> None:
    with pytest.raises(UsageError):
        open_transport("serial://")


def test_loop_url_echoes() -> None:
    with open_transport("loop://") as t:
        t.write(b"hello loop")
        got = b""
        while len(got) < 10:
            chunk = t.read(100, 5.0)
            assert chunk
            got += chunk
        assert got == b"hello loop"
        assert t.read(100, 0.05) == b""


def test_socket_url_against_a_tcp_server(tcp_server: Any) -> None:
    with open_transport(tcp_server.url) as t:
        conn = tcp_server.wait_connection()
        conn.sendall(b"login: ")
        got = b""
        while len(got) < 7:
            chunk = t.read(100, 5.0)
            assert chunk
            got += chunk
        assert got == b"login: "
        t.write(b"root\r")
        received = b""
        while len(received) < 5:
            received += conn.recv(100)
        assert received == b"root\r"
        conn.close()
        with pytest.raises(ConsoleClosed, match="hung up"):
            while True:
                t.read(100, 5.0)


def test_socket_url_refused_is_connect_error(tcp_server: Any) -> None:
    import socket

    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()  # nothing listens on this port any more
    with pytest.raises(ConnectError, match="Connection refused"):
        open_transport(f"socket://127.0.0.1:{port}")


def test_line_settings_reach_the_tty(pty_pair: Any) -> None:
    import termios

    with open_transport(pty_pair.path, line=LineSettings.parse("9600,7e2")) as t:
        assert isinstance(t, SerialTransport)
        attrs = termios.tcgetattr(t._port.fileno())
        cflag, ispeed = attrs[2], attrs[4]
        assert ispeed == termios.B9600
        # (Linux ptys force CS8 and no parity, so only speed and stop bits show on a pty.)
        assert cflag & termios.CSTOPB


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("38400,8n1", LineSettings(38400, 8, "n", 1)),
        ("115200", LineSettings(115200, 8, "n", 1)),
        (" 9600,7E2 ", LineSettings(9600, 7, "e", 2)),
        ("57600,8o1.5", LineSettings(57600, 8, "o", 1.5)),
    ],
)
def test_line_settings_parse(text: str, expected: LineSettings) -> None:
    assert LineSettings.parse(text) == expected


def test_line_settings_default_and_str() -> None:
    assert LineSettings() == LineSettings.parse("38400,8n1")
    assert str(LineSettings()) == "38400,8n1"
    assert str(LineSettings.parse("9600,7e1.5")) == "9600,7e1.5"


@pytest.mark.parametrize(
    "text", ["", "fast", "38400,", "38400,8n", "38400,9n1", "38400,8x1", "38400,8n3", "0", "-1"]
)
def test_line_settings_rejects_bad_text(text: str) -> None:
    with pytest.raises(UsageError, match=r"line settings|baud"):
        LineSettings.parse(text)


def test_line_settings_rejects_bad_fields() -> None:
    with pytest.raises(UsageError):
        LineSettings(bits=9)
    with pytest.raises(UsageError):
        LineSettings(parity="x")
    with pytest.raises(UsageError):
        LineSettings(stop=3)


class _Dummy(Transport):
    name = "dummy"

    def __init__(self, target: str) -> None:
        self.target = target

    def read(self, max_bytes: int, timeout: float) -> bytes:
        return b""

    def write(self, data: bytes) -> None:
        pass

    def close(self) -> None:
        pass


def make_dummy(target: str, line: LineSettings | None) -> Transport:
    return _Dummy(target)


def test_register_scheme_callable_and_lazy_reference() -> None:
    register_scheme("solcaptest", lambda target, line: _Dummy(target))
    t = open_transport("SolcapTest://anything")
    assert isinstance(t, _Dummy) and t.target == "SolcapTest://anything"
    assert "solcaptest" in known_schemes()
    register_scheme("solcaplazy://", f"{__name__}:make_dummy")
    lazy = open_transport("solcaplazy://x")
    assert type(lazy).__name__ == "_Dummy"


def test_register_scheme_rejects_bad_names() -> None:
    with pytest.raises(UsageError):
        register_scheme("1bad", make_dummy)
    with pytest.raises(UsageError):
        register_scheme("good", "no_colon_here")


def test_split_scheme() -> None:
    assert split_scheme("/dev/ttyS0") == ("", "/dev/ttyS0")
    assert split_scheme("IPMI://bmc:623") == ("ipmi", "bmc:623")
    assert split_scheme("rfc2217://h:1") == ("rfc2217", "h:1")
