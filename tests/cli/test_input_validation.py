"""Bad command-line input: one line, exit 2, before any recording directory or any traffic.

Each case here was seen crashing, hanging or being accepted: a traceback for an unclosed IPv6
URL or ``--for 1e18``, a harvest hanging on ``--quiet nan``, port 0 silently becoming 623,
``--keys Z`` sent to Xen, and a rejected command leaving an empty recording directory.
"""

from __future__ import annotations

import math
import socket
from pathlib import Path

import pytest

from solcap.cli import main
from solcap.config import limits
from solcap.errors import ConfigError, UsageError
from solcap.transports.ipmi import IpmiTarget
from solcap.transports.serialport import LineSettings

CASES = [
    (["capture", "ipmi://admin@[::1", "--for", "1"], "Invalid IPv6 URL"),
    (["capture", "loop://", "--for", "1e18"], "--for: '1e18' is longer than the limit"),
    (["capture", "loop://", "--for", "nan"], "--for: 'nan' is not a finite number"),
    (["capture", "loop://", "--for", "inf"], "--for: 'inf' is not a finite number"),
    (["capture", "loop://", "--for", "-1"], "--for: '-1' must be greater than zero"),
    (["capture", "loop://", "--idle", "nan"], "--idle: 'nan'"),
    (["capture", "loop://", "--line", "12345,8n1"], "12345: not a standard serial rate"),
    (["capture", "ipmi://admin@127.0.0.1:0"], "bad port 0"),
    (["capture", "ipmi://admin@127.0.0.1:70000"], "ipmi://admin@127.0.0.1:70000"),
    (["capture", "socket://127.0.0.1:0", "--for", "1"], "bad port 0"),
    (["capture", "socket://127.0.0.1", "--for", "1"], "no port given"),
    (["harvest", "loop://", "--quiet", "nan"], "--quiet: 'nan' is not a finite number"),
    (["harvest", "loop://", "--keys", ""], "no debug keys given"),
    (["harvest", "loop://", "--keys", ","], "no debug keys given"),
    (["harvest", "loop://", "--keys", "Z"], "'Z' is not a Xen debug key"),
    (["harvest", "loop://", "--keys", "h,\x01"], "'\\x01' is not a Xen debug key"),
    (["harvest", "loop://", "--keys", "\x1b"], "'\\x1b' is not a Xen debug key"),
    (["harvest", "loop://", "--parallel", "0"], "--parallel: '0' is out of range"),
    (["harvest", "loop://", "--host-timeout", "nan"], "--host-timeout: 'nan'"),
    (["replay", "nowhere", "--speed", "-1"], "--speed: '-1' is out of range"),
    (["replay", "nowhere", "--speed", "nan"], "--speed: 'nan' is not a finite number"),
    (["replay", "nowhere", "--max-delay", "-0.5"], "--max-delay: '-0.5' must be zero or more"),
    (["power", "ipmi://a@127.0.0.1", "status", "--wait", "inf"], "--wait: 'inf'"),
    (["dom0", "ssh://a@127.0.0.1", "--timeout", "nan"], "--timeout: 'nan'"),
    (["dom0", "ssh://a@127.0.0.1:0", "xl-info"], "bad port 0"),
    (["dom0", "ssh://a@[::1", "xl-info"], "Invalid IPv6 URL"),
    (["demo", "--domus", "-1"], "--domus: '-1' is out of range"),
    (["lab", "up", "--hosts", "1e9"], "--hosts: '1e9' is not a whole number"),
    (["capture"], "the following arguments are required: target"),
]


@pytest.mark.parametrize(("argv", "needle"), CASES, ids=[" ".join(c[0]) for c in CASES])
def test_bad_argument_is_one_line_exit_2_and_creates_nothing(
    argv: list[str],
    needle: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("IPMI_PASSWORD", raising=False)
    root = tmp_path / "rec"
    with_root = [*argv, "--root", str(root)] if argv[0] in ("capture", "harvest") else argv
    try:
        status = main(with_root)
    except SystemExit as stop:  # argparse's own refusals
        status = int(stop.code or 0)
    err = capsys.readouterr().err
    assert status == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("solcap: error: ")
    assert needle in lines[0], err
    assert "Traceback" not in err
    assert not root.exists()
    assert list(tmp_path.iterdir()) == []


def test_root_under_a_regular_file_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "plain").write_text("x")
    with pytest.raises(SystemExit) as stop:  # refused while the command line is parsed
        main(["capture", "loop://", "--for", "0.1", "--root", str(tmp_path / "plain/rec")])
    err = capsys.readouterr().err
    assert stop.value.code == 2
    assert err.count("\n") == 1 and "plain is not a directory" in err


def test_unopenable_console_leaves_no_recording_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A capture that never opened its console has nothing to keep: no empty directory."""
    root = tmp_path / "rec"
    status = main(["capture", "/dev/does-not-exist-solcap", "--for", "1", "--root", str(root)])
    err = capsys.readouterr().err
    assert status == 3, err
    assert err.count("\n") == 1
    assert not root.exists()


def test_missing_ipmi_password_leaves_no_recording_and_sends_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("IPMI_PASSWORD", raising=False)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as bmc:
        bmc.bind(("127.0.0.1", 0))
        bmc.settimeout(0.3)
        port = bmc.getsockname()[1]
        root = tmp_path / "rec"
        status = main(["capture", f"ipmi://admin@127.0.0.1:{port}", "--root", str(root)])
        with pytest.raises(TimeoutError):
            bmc.recv(1024)
    assert status == 2
    assert "no IPMI password" in capsys.readouterr().err
    assert not root.exists()


# --------------------------------------------------------------------------- the validators


@pytest.mark.parametrize("text", ["nan", "inf", "-inf", "1e999", "-1", "0", "abc", "", "1e18"])
def test_seconds_refuses(text: str) -> None:
    with pytest.raises(UsageError):
        limits.seconds(text, "--x")


def test_seconds_accepts_and_bounds() -> None:
    assert limits.seconds("0.5", "--x") == 0.5
    assert limits.seconds("0", "--x", zero=True) == 0.0
    assert limits.seconds(limits.MAX_SECONDS, "--x") == limits.MAX_SECONDS
    with pytest.raises(UsageError):
        limits.seconds(True, "--x")
    with pytest.raises(UsageError):
        limits.seconds(math.nan, "--x")


def test_count_refuses_non_integers_and_out_of_range() -> None:
    assert limits.count("3", "--n") == 3
    for bad in ("1.5", "nan", "0", "10001", "", "1e3"):
        with pytest.raises(UsageError):
            limits.count(bad, "--n")


def test_ipmi_port_zero_is_refused_not_defaulted() -> None:
    assert IpmiTarget.parse("ipmi://admin@127.0.0.1").port == 623
    assert IpmiTarget.parse("ipmi://admin@127.0.0.1:9623").port == 9623
    with pytest.raises(UsageError, match="bad port 0"):
        IpmiTarget.parse("ipmi://admin@127.0.0.1:0")
    with pytest.raises(UsageError, match="Invalid IPv6"):
        IpmiTarget.parse("ipmi://admin@[::1")


def test_line_settings_take_standard_rates_only() -> None:
    assert LineSettings.parse("115200,8n1").baud == 115200
    assert LineSettings.parse("4000000").baud == 4000000
    for bad in ("12345,8n1", "38401", "0"):
        with pytest.raises(UsageError):
            LineSettings.parse(bad)


def test_key_problem_knows_xen_keys() -> None:
    for key in "hqumeiratH0*":
        assert limits.key_problem(key) is None
    for key in ("Z", "\x00", "\x01", "\x7f", "é", "hq", "", " "):
        assert limits.key_problem(key) is not None


def test_read_bytes_caps_dev_zero() -> None:
    with pytest.raises(ConfigError, match="larger than the limit"):
        limits.read_bytes("/dev/zero", "runbook")


def test_check_depth_is_iterative() -> None:
    deep: list[object] = []
    node = deep
    for _ in range(100_000):
        child: list[object] = []
        node.append(child)
        node = child
    with pytest.raises(ConfigError, match="nested more than"):
        limits.check_depth(deep, "f.json")
    limits.check_depth({"a": [1, {"b": 2}]}, "f.json")
