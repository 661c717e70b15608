"""Every ``solcap`` sub-command driven with generated and mutated arguments and files.

Each example builds a command line from the sub-command's own options, with values drawn from
hostile sets (NaN, infinities, negatives, absurd sizes, control bytes, unclosed IPv6 brackets,
port 0, …) and from real files damaged by hypothesis (shipped runbooks and profiles, inventories,
password files, recordings with a broken meta.json: the damage comes from tests/damage.py, which
the malformed-file tests share), then sometimes mutates one token. ``grub apply --oneshot`` is
fuzzed in its own shape (a console target, ``--write``, ``--power-cycle``, ``--bmc``). It runs
``solcap.cli.main`` in-process and asserts what docs/errors.md promises:

* the exit status is one of the documented ones (never 1, which means a bug in solcap);
* nothing escapes as an exception (no traceback), argparse included;
* a failure is exactly one ``solcap: error:`` line on stderr (``profile validate``: one line
  per bad file);
* no file is created, changed or removed outside the recordings root (and the output file a
  command was told to write);
* a rejected command (exit 2) leaves no recording at all; any recording left is closed
  (``meta.json`` written).

Bounded and repeatable: ``derandomize=True`` (the same examples on every run, so CI never
flakes on a new one), 100 examples per sub-command, well under a minute for the module
on two cores. Never any traffic off this machine: hosts are loopback literals, names under the
reserved ``.invalid`` domain or garbage; ports are one this test holds bound and closed (so a
connection is refused at once, and no other test's server can be reached); and a guard around
``socket`` fails the example if anything connects or sends to an address outside 127.0.0.0/8
and ::1, and answers every name lookup but ``localhost`` with "unknown host" so no DNS query
leaves either. Two commands that would start simulator processes (``demo`` and ``lab up``)
are stopped at the library call after their arguments were validated: that is the part under
test, and booting a virtual host per example would not fit the time budget.
"""

from __future__ import annotations

import contextlib
import errno
import io
import ipaddress
import json
import os
import shutil
import socket
import stat
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from solcap.cli import main
from solcap.errors import ExitStatus
from solcap.orchestration import demo as demo_module
from solcap.testing import lab as lab_module
from tests.damage import ENDLESS, damaged_bytes, meta_json

pytestmark = pytest.mark.timeout(600)
TOP = Path(__file__).resolve().parents[2]
DOCUMENTED = {int(s) for s in ExitStatus} - {int(ExitStatus.FAILURE)}


# --------------------------------------------------------------------------- network guard


class Guard:
    """Refuses (and records) any connect/send outside loopback; answers lookups itself."""

    def __init__(self) -> None:
        self.violations: list[str] = []

    def check(self, address: Any, what: str) -> None:
        if isinstance(address, (str, bytes)):  # AF_UNIX
            return
        host = address[0] if isinstance(address, tuple) and address else address
        try:
            ip = ipaddress.ip_address(str(host).split("%", 1)[0])
        except ValueError:
            self.violations.append(f"{what} to a name {host!r}")
            raise OSError(errno.ENETUNREACH, "fuzz guard: not a loopback address") from None
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        if not ip.is_loopback:
            self.violations.append(f"{what} to {host}")
            raise OSError(errno.ENETUNREACH, "fuzz guard: not a loopback address")

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        cls = socket.socket
        real = {name: getattr(cls, name) for name in ("connect", "connect_ex", "sendto", "sendmsg")}
        real_getaddrinfo = socket.getaddrinfo
        real_gethostbyname = socket.gethostbyname
        guard = self

        def connect(sock: socket.socket, address: Any) -> Any:
            guard.check(address, "connect")
            return real["connect"](sock, address)

        def connect_ex(sock: socket.socket, address: Any) -> Any:
            guard.check(address, "connect")
            return real["connect_ex"](sock, address)

        def sendto(sock: socket.socket, data: Any, *args: Any) -> Any:
            guard.check(args[-1], "sendto")
            return real["sendto"](sock, data, *args)

        def sendmsg(sock: socket.socket, buffers: Any, *args: Any) -> Any:
            if len(args) >= 3 and args[2] is not None:
                guard.check(args[2], "sendmsg")
            return real["sendmsg"](sock, buffers, *args)

        def literal_or_localhost(host: Any) -> bool:
            if host in (None, "localhost", b"localhost"):
                return True
            text = host.decode() if isinstance(host, bytes) else str(host)
            try:
                ipaddress.ip_address(text.split("%", 1)[0])
            except ValueError:
                return False
            return True

        def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
            if not literal_or_localhost(host):
                raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
            return real_getaddrinfo(host, *args, **kwargs)

        def gethostbyname(host: str) -> str:
            if not literal_or_localhost(host):
                raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
            return real_gethostbyname(host)

        patches = {
            "connect": connect,
            "connect_ex": connect_ex,
            "sendto": sendto,
            "sendmsg": sendmsg,
        }
        for name, fn in patches.items():
            setattr(cls, name, fn)
        socket.getaddrinfo = getaddrinfo  # type: ignore[assignment]
        socket.gethostbyname = gethostbyname
        try:
            yield
        finally:
            for name, fn in real.items():
                setattr(cls, name, fn)
            socket.getaddrinfo = real_getaddrinfo
            socket.gethostbyname = real_gethostbyname


def test_the_guard_refuses_traffic_off_loopback() -> None:
    """The guard itself must be able to fail: a connect outside 127/8 is refused and recorded."""
    guard = Guard()
    with guard.installed(), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        with pytest.raises(OSError, match="fuzz guard"):
            sock.sendto(b"x", ("192.0.2.1", 9))
        with pytest.raises(OSError, match="fuzz guard"):
            sock.connect(("192.0.2.1", 9))
        with pytest.raises(socket.gaierror):
            socket.getaddrinfo("example.invalid", 22)
        sock.sendto(b"x", ("127.0.0.1", 9))
    assert guard.violations == ["sendto to 192.0.2.1", "connect to 192.0.2.1"]


@pytest.fixture(scope="module")
def closed_port() -> Iterator[int]:
    """A loopback TCP+UDP port held bound but never listening: connections fail at once."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
        tcp.bind(("127.0.0.1", 0))
        port = tcp.getsockname()[1]
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            with contextlib.suppress(OSError):
                udp.bind(("127.0.0.1", port))
            yield port


# --------------------------------------------------------------------------- values

NUMBERS = st.sampled_from(
    [
        "nan",
        "NaN",
        "inf",
        "-inf",
        "1e18",
        "1e999",
        "-1",
        "0",
        "-0",
        "",
        " ",
        "abc",
        "0x10",
        "1_0",
        "0.05",
        "0.1",
        "3",
        "100000000000000000000",
        "1e-320",
        "٣",
    ]
)
KEYS = st.sampled_from(
    ["", ",", "Z", "h", "h,q", "R", "\x01", "\x1b", "hh", "h,,q", "é", "*", " ", "\x00", "m"]
)
LINES = st.sampled_from(
    ["12345,8n1", "38400,9x9", "38400,8n1", "0", "-1", "115200", "nan", "", "4000001,8n1"]
)
HOSTS = st.sampled_from(
    [
        "127.0.0.1",
        "[::1]",
        "[::1",
        "::1]",
        "bmc.invalid",
        "",
        "a b",
        "%00",
        "127.0.0.1%",
        "[::ffff:127.0.0.1]",
        "localhost",
        "\x00",
        "h" * 300,
    ]
)
USERS = st.sampled_from(["admin", "", "a:b", "%ff", "u@v"])
QUERIES = st.sampled_from(["", "?cipher=3", "?cipher=0", "?cipher=x", "?reconnect=2", "?x=1"])


def port_text(closed: int) -> st.SearchStrategy[str]:
    return st.sampled_from([str(closed), "0", "65536", "-1", "x", "", "99999999999"])


@st.composite
def urls(draw: st.DrawFn, closed: int) -> str:
    scheme = draw(st.sampled_from(["ipmi", "ssh", "socket", "rfc2217", "serial", "nope", "IPMI"]))
    user = draw(USERS)
    at = f"{user}@" if user or draw(st.booleans()) else ""
    port = draw(port_text(closed))
    colon = f":{port}" if port or draw(st.booleans()) else ""
    return f"{scheme}://{at}{draw(HOSTS)}{colon}{draw(QUERIES)}"


def targets(closed: int, *, loop: bool = False) -> st.SearchStrategy[str]:
    fixed = ["/dev/does-not-exist-solcap", "", " ", "nope://x", "serial://", "/"]
    if loop:
        fixed.append("loop://")
    return st.one_of(st.sampled_from(fixed), urls(closed), st.text(max_size=12))


def mutate(text: str, data: st.DataObject) -> str:
    """Flip, drop or insert one character (hostile ones preferred)."""
    if not text:
        return data.draw(st.sampled_from(["\x00", "[", "%", "-", "\xff"]))
    i = data.draw(st.integers(0, len(text) - 1))
    op = data.draw(st.sampled_from(["drop", "insert", "replace"]))
    char = data.draw(st.sampled_from([*list("\x00\x01[]:@%/-=,\n\t é"), "\u202e"]))
    if op == "drop":
        return text[:i] + text[i + 1 :]
    if op == "insert":
        return text[:i] + char + text[i:]
    return text[:i] + char + text[i + 1 :]


# --------------------------------------------------------------------------- files

INVENTORY = """\
defaults:
  password: env:BMC_PASSWORD
hosts:
  node01:
    serial: /dev/does-not-exist-solcap
    profile: xen-serial-debug
    labels: [rack1]
  node02:
    serial: socket://127.0.0.1:{port}
    line: "38400,8n1"
"""
INI = "[all]\nnode[1:3] solcap_serial=/dev/does-not-exist-solcap\n"


def _write(path: Path, text: str, mode: int = 0o600) -> str:
    path.write_bytes(text.encode("utf-8", "surrogateescape"))
    path.chmod(mode)
    return str(path)


def _write_bytes(path: Path, data: bytes, mode: int = 0o600) -> str:
    path.write_bytes(data)
    path.chmod(mode)
    return str(path)


@st.composite
def file_arg(draw: st.DrawFn, kind: str, work: Path, closed: int) -> str:
    """A path to a file of ``kind``: damaged real content, or an odd path."""
    odd = draw(st.sampled_from(["", "file", "file", "file", ENDLESS, "/", "missing", "dir"]))
    if odd == "missing":
        return str(work / "missing.yaml")
    if odd == "dir":
        (work / "a-dir").mkdir(exist_ok=True)
        return str(work / "a-dir")
    if odd in (ENDLESS, "/"):
        return odd
    if kind == "runbook":
        source = draw(st.sampled_from(sorted((TOP / "runbooks").glob("*.yaml"))))
        return _write_bytes(work / source.name, draw(damaged_bytes(source.read_text(), "yaml")))
    if kind == "profile":
        source = draw(st.sampled_from(sorted((TOP / "profiles").glob("*.toml"))))
        return _write_bytes(work / source.name, draw(damaged_bytes(source.read_text(), "toml")))
    if kind == "inventory":
        if draw(st.booleans()):
            return _write_bytes(work / "inv.ini", draw(damaged_bytes(INI, "ini")))
        text = INVENTORY.format(port=closed)
        return _write_bytes(work / "inv.yaml", draw(damaged_bytes(text, "yaml")))
    if kind == "password":
        content = draw(st.sampled_from(["", "\n", "\udcff\udcfe\n", "x" * 10000]))
        mode = draw(st.sampled_from([0o600, 0o644, 0o000]))
        return _write(work / "pw", content, mode)
    raise AssertionError(kind)


def make_recording(work: Path, data: st.DataObject) -> str:
    rec = work / "rec-in"
    rec.mkdir()
    raw = b"(XEN) 'h' pressed -> showing installed handlers\r\n" + b"\xff\x00 tail\n"
    (rec / "console.raw").write_bytes(raw)
    (rec / "keys").mkdir()
    (rec / "keys" / "h.txt").write_bytes(raw[:50])
    timing = data.draw(st.sampled_from(["O 0.01 50\nO 0.02 8\n", "O nan 5\n", "X\n", "O 1e9 1\n"]))
    (rec / "console.timing").write_text(timing)
    choice = data.draw(st.sampled_from(["good", "damaged", "absent", "seg"]))
    if choice == "good":
        _write(rec / "meta.json", meta_json())
    elif choice == "damaged":
        _write_bytes(rec / "meta.json", data.draw(damaged_bytes(meta_json(), "json")))
    elif choice == "seg":
        text = json.dumps({"segments": [data.draw(st.sampled_from([1, {}, {"name": 3}]))]})
        _write(rec / "meta.json", text)
    return str(rec)


# --------------------------------------------------------------------------- commands


def options(data: st.DataObject, table: dict[str, st.SearchStrategy[str] | None]) -> list[str]:
    """A random subset of ``table``'s options (None: a flag), in random order."""
    flags = data.draw(st.lists(st.sampled_from(sorted(table)), max_size=5, unique=True))
    out: list[str] = []
    for flag in flags:
        strategy = table[flag]
        out.append(flag)
        if strategy is not None:
            out.append(data.draw(strategy))
    return out


def build(
    data: st.DataObject, command: str, work: Path, closed: int
) -> tuple[list[str], set[Path]]:
    """A command line for ``command`` and the output paths it may legitimately write."""
    outputs: set[Path] = set()
    f = lambda kind: file_arg(kind, work, closed)  # noqa: E731 - a short local helper
    bmc = urls(closed)
    if command == "capture":
        argv = ["capture", data.draw(targets(closed, loop=True)), "--for", "0.2"]
        argv += options(
            data,
            {
                "--for": NUMBERS,
                "--idle": NUMBERS,
                "--until": st.sampled_from(["(", "x", "\\", "[a-", "ok"]),
                "--line": LINES,
                "--host": st.text(max_size=8),
                "--label": st.text(max_size=8),
            },
        )
    elif command == "harvest":
        argv = ["harvest", data.draw(targets(closed))]
        argv += options(
            data,
            {
                "--keys": KEYS,
                "--quiet": NUMBERS,
                "--line": LINES,
                "--allow-dangerous": None,
                "--parallel": NUMBERS,
                "--host-timeout": NUMBERS,
                "--inventory": f("inventory"),
                "--limit": st.sampled_from(["node*", "[", ""]),
                "--shard": st.sampled_from(["0/2", "2/2", "1/0", "x", "-1/3"]),
                "--progress": st.sampled_from(["plain", "none", "x"]),
            },
        )
        if "--inventory" in argv and data.draw(st.booleans()):
            argv.remove(argv[1])  # TARGET or --inventory
    elif command == "demo":
        argv = ["demo", *options(data, {"--keys": KEYS, "--domus": NUMBERS, "--real-rate": None})]
    elif command == "show":
        argv = ["show", make_recording(work, data), *options(data, {"--key": KEYS})]
    elif command == "replay":
        argv = ["replay", make_recording(work, data), "--speed", "0", "--max-delay", "0.01"]
        argv += options(data, {"--speed": NUMBERS, "--max-delay": NUMBERS})
    elif command == "export":
        target = data.draw(st.sampled_from(["out.cast", "a-dir", "no/such/x.cast", ""]))
        if target == "a-dir":
            (work / "a-dir").mkdir(exist_ok=True)
        outputs.add(work / target)
        argv = ["export", make_recording(work, data), "--asciicast", str(work / target)]
    elif command == "compare":
        argv = ["compare", make_recording(work, data), "--key", data.draw(KEYS)]
        argv += options(data, {"--dmesg": st.sampled_from(["/dev/zero", "/", str(work / "no")])})
    elif command == "profile":
        action = data.draw(st.sampled_from(["list", "show", "validate"]))
        argv = ["profile", action]
        if action == "show":
            argv.append(data.draw(st.one_of(f("profile"), st.sampled_from(["xen-serial-debug"]))))
        elif action == "validate":
            argv += data.draw(st.lists(f("profile"), min_size=1, max_size=3))
        argv += options(data, {"--profiles-dir": st.sampled_from([str(work), "/dev/zero", ""])})
    elif command == "grub" and data.draw(st.booleans()):
        # the one-shot shape: a console target, GRUB's menu over it, maybe a power cycle
        argv = ["grub", "apply", data.draw(targets(closed)), "--oneshot"]
        argv += ["--profile", data.draw(st.one_of(f("profile"), st.just("xen-serial-debug")))]
        argv += ["--recordings", str(work / "recordings")]
        argv += options(
            data,
            {
                "--write": None,
                "--power-cycle": None,
                "--bmc": bmc,
                "--entry": st.sampled_from(["(", "Xen", "[", ""]),
                "--line": LINES,
                "--password-file": f("password"),
                "--kg-file": f("password"),
            },
        )
    elif command == "grub":
        action = data.draw(st.sampled_from(["show", "apply"]))
        argv = ["grub", action, data.draw(urls(closed))]
        argv += ["--profile", data.draw(st.one_of(f("profile"), st.just("xen-serial-debug")))]
        table: dict[str, st.SearchStrategy[str] | None] = {
            "--ssh-key": f("password"),
            "--known-hosts": f("password"),
            "--ssh-password-env": st.sampled_from(["X", "", "1A"]),
            "--sudo": None,
            "--entry": st.sampled_from(["(", "Xen"]),
            "--method": st.sampled_from(["auto", "grub-cfg", "x"]),
        }
        if action == "apply":
            table |= {
                "--write": None,
                "--oneshot": None,
                "--line": LINES,
                "--power-cycle": None,
                "--bmc": bmc,
            }
        argv += options(data, table)
    elif command == "dom0":
        argv = ["dom0", data.draw(urls(closed))]
        argv += data.draw(
            st.lists(st.sampled_from(["xl-info", "xl-dmesg", "nope", ""]), max_size=2)
        )
        argv += options(
            data,
            {
                "--timeout": NUMBERS,
                "--key": KEYS,
                "--serial": targets(closed),
                "--line": LINES,
                "--quiet": NUMBERS,
                "--ssh-key": f("password"),
                "--known-hosts": f("password"),
                "--password-file": f("password"),
            },
        )
    elif command == "power":
        argv = ["power", data.draw(bmc), data.draw(st.sampled_from(["status", "on", "x"]))]
        argv += options(data, {"--wait": NUMBERS, "--password-file": f("password")})
    elif command == "sol-info":
        argv = ["sol-info", data.draw(bmc)]
        argv += options(data, {"--password-file": f("password"), "--profile": f("profile")})
    elif command == "console":
        argv = ["console", data.draw(targets(closed, loop=True))]
        argv += options(
            data,
            {
                "-e": st.sampled_from(["~", "^]", "none", "", "ab", "^", "\x00"]),
                "--steal": None,
                "--password-file": f("password"),
                "--line": LINES,
                "--label": st.text(max_size=6),
            },
        )
    elif command == "status":
        argv = ["status", "--inventory", data.draw(f("inventory"))]
        argv += options(
            data,
            {
                "--control-dir": st.sampled_from([str(work / "ctl"), "", "/dev/null/x"]),
                "--json": None,
            },
        )
    elif command == "lab":
        action = data.draw(st.sampled_from(["up", "down", "status"]))
        argv = ["lab", action, "--dir", str(work / "lab")]
        if action == "up":
            argv += ["--hosts", data.draw(NUMBERS)]
            argv += options(data, {"--domains": NUMBERS, "--real-rate": None})
        outputs.add(work / "lab")
    elif command == "run":
        argv = ["run", data.draw(st.one_of(f("runbook"), st.sampled_from(["failed-boot", "x"])))]
        if data.draw(st.booleans()):
            argv += ["--host", data.draw(targets(closed))]
        else:
            argv += ["--inventory", data.draw(f("inventory"))]
        argv += options(
            data,
            {
                "--dry-run": None,
                "--var": st.sampled_from(["a=1", "=", "x", "keys=Z", "quiet=nan"]),
                "--limit": st.sampled_from(["node*", "["]),
                "--shard": st.sampled_from(["0/2", "1/0"]),
                "--line": LINES,
                "--ssh": urls(closed),
                "--parallel": NUMBERS,
                "--host-timeout": NUMBERS,
                "--summary": st.just(str(work / "summary.json")),
                "--retry-failed": st.sampled_from([str(work / "summary.json"), "/dev/zero"]),
            },
        )
        outputs.add(work / "summary.json")
    else:
        raise AssertionError(command)
    if data.draw(st.integers(0, 4)) == 0:  # mutate one token
        i = data.draw(st.integers(0, len(argv) - 1))
        argv[i] = mutate(argv[i], data)
    if data.draw(st.integers(0, 9)) == 0:  # a stray token
        argv.insert(data.draw(st.integers(1, len(argv))), data.draw(st.text(max_size=6)))
    return argv, outputs


# --------------------------------------------------------------------------- the property


def snapshot(top: Path, skip: Path) -> dict[str, tuple[int, int, int]]:
    seen: dict[str, tuple[int, int, int]] = {}
    for dirpath, dirnames, filenames in os.walk(top):
        here = Path(dirpath)
        dirnames[:] = [d for d in dirnames if here / d != skip]
        for name in [*filenames, *dirnames]:
            st_ = os.lstat(here / name)
            seen[str(here / name)] = (st_.st_size, st_.st_mtime_ns, st_.st_mode)
    return seen


def _inside(path: str, tops: set[Path]) -> bool:
    return any(Path(path) == t or Path(path).is_relative_to(t) for t in tops)


@contextlib.contextmanager
def stubs() -> Iterator[None]:
    """``demo`` and ``lab up`` stop where they would boot simulators (see module docstring)."""
    real_demo, real_up = demo_module.run_demo, lab_module.Lab.up
    demo_module.run_demo = lambda **kwargs: 0  # type: ignore[assignment]
    lab_module.Lab.up = lambda self, count, **kwargs: []  # type: ignore[assignment]
    try:
        yield
    finally:
        demo_module.run_demo = real_demo  # type: ignore[assignment]
        lab_module.Lab.up = real_up  # type: ignore[method-assign]


def run_one(argv: list[str], work: Path, outputs: set[Path]) -> None:
    root = work / "recordings"
    if argv[0] in ("capture", "harvest", "console", "demo", "run") and "--root" not in argv:
        argv = [*argv, "--root", str(root)]
    before = snapshot(work, root)
    err = io.StringIO()
    guard = Guard()
    cwd = os.getcwd()
    env = {
        k: os.environ.pop(k)
        for k in ("IPMI_PASSWORD", "IPMI_KG", "BMC_PASSWORD")
        if k in os.environ
    }
    with open(os.devnull, "r+") as null:
        saved_stdin = sys.stdin
        try:
            os.chdir(work)
            sys.stdin = null
            with (
                guard.installed(),
                stubs(),
                contextlib.redirect_stderr(err),
                contextlib.redirect_stdout(null),
            ):
                try:
                    status = main(argv, out=null)
                except SystemExit as stop:  # argparse: --help (0) or a bad command line (2)
                    status = stop.code if isinstance(stop.code, int) else 2
        finally:
            sys.stdin = saved_stdin
            os.chdir(cwd)
            os.environ.update(env)
    text = err.getvalue()
    event(f"{argv[0]}: exit {status}")
    assert not guard.violations, guard.violations
    assert status in DOCUMENTED, (status, argv, text)
    assert "Traceback" not in text, text
    errors = [line for line in text.splitlines() if line.startswith("solcap: error:")]
    if argv[:2] == ["profile", "validate"] and status == 2:
        assert 1 <= len(text.strip().splitlines()) <= len(argv), text
    elif status == 2:
        assert len(errors) == 1 and len(text.strip().splitlines()) == 1, (argv, text)
    else:
        assert len(errors) <= 1, (argv, text)
    after = snapshot(work, root)
    allowed = {root, *outputs}
    changed = {p for p in set(before) | set(after) if before.get(p) != after.get(p)}
    outside = sorted(p for p in changed if not _inside(p, allowed))
    assert not outside, (argv, outside)
    if status == 2:
        assert not root.exists() or not any(root.iterdir()), (argv, list(root.rglob("*")))
    if root.exists():
        for host in root.iterdir():
            if host.name.startswith("_"):  # _fleet summaries
                continue
            for recording in host.iterdir():
                assert (recording / "meta.json").is_file(), (argv, recording)
                assert json.loads((recording / "meta.json").read_text())["finished"], recording


COMMANDS = [
    "capture",
    "harvest",
    "demo",
    "show",
    "replay",
    "export",
    "compare",
    "profile",
    "grub",
    "dom0",
    "power",
    "sol-info",
    "console",
    "lab",
    "run",
    "status",
]
#: Long-running servers: a valid fuzzed command line would serve until killed, so their bad
#: input is tested by tests/serve and tests/web (exit 2, one line, before anything listens).
SERVERS = {"serve", "web"}

SETTINGS = settings(
    max_examples=100,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.mark.parametrize("command", COMMANDS)
@SETTINGS
@given(data=st.data())
def test_cli_fuzz(command: str, data: st.DataObject, tmp_path: Path, closed_port: int) -> None:
    work = Path(tempfile.mkdtemp(dir=tmp_path))
    try:
        argv, outputs = build(data, command, work, closed_port)
        run_one(argv, work, outputs)
    finally:
        for path in work.rglob("*"):
            with contextlib.suppress(OSError):
                if path.is_dir() and not path.is_symlink():
                    path.chmod(stat.S_IRWXU)
        shutil.rmtree(work, ignore_errors=True)


def test_every_subcommand_is_fuzzed() -> None:
    """A new sub-command must join COMMANDS (and so the fuzz suite)."""
    from solcap.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert set(sub.choices) == set(COMMANDS) | SERVERS  # type: ignore[arg-type]
