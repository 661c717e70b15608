"""``solcap console`` on a real pty pair as the local terminal, driven by pexpect.

The "server" is a fast virtual Xen host (its own pty) in this process. solcap runs under
``sh -c 'stty -g; solcap console …; stty -g'`` so the terminal's modes are printed, by an
independent program, before and after; they must be identical whatever ended the session.
Powered on only once solcap is attached: opening a serial port discards what was queued.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import resource
import signal
import subprocess
import sys
import termios
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pexpect
import pytest

from solcap.sim.host import SimConfig, VirtualHost
from solcap.sim.xen import PROMPT

ROOT = Path(__file__).resolve().parents[2]
STTY = re.compile(rb"([0-9a-f]+(?::[0-9a-f]+){20,})\r\n")
WRAPPER = 'stty -g; "$@"; rc=$?; stty -g; exit $rc'

pytestmark = pytest.mark.timeout(60)


class Attached:
    """One ``solcap console`` under a modes-printing shell, with everything it showed."""

    def __init__(
        self,
        target: str,
        root: Path,
        *extra: str,
        env: dict[str, str] | None = None,
        preexec: Callable[[], None] | None = None,
    ):
        full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
        args = ["-c", WRAPPER, "sh", sys.executable, "-m", "solcap.cli", "console", target]
        args += ["--root", str(root), *extra]
        self.shown = io.BytesIO()
        self.child = pexpect.spawn(
            "/bin/sh", args, cwd=ROOT, env=full_env, timeout=20, preexec_fn=preexec
        )
        self.child.logfile_read = self.shown
        self.child.expect(STTY)
        self.modes_before = self.child.match.group(1)
        self.child.expect(rb"escape character is '[^']+'; \S+\? for help\r\n|escapes off\r\n")
        self.start = len(self.shown.getvalue())

    def solcap_pid(self) -> int:
        """The python process under the shell (SIGTERM goes to it, not to sh)."""
        pid = self.child.pid
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        assert len(children) == 1, children
        return int(children[0])

    def finish(self) -> tuple[int, bytes, Path]:
        """Wait for the end: (exit status, modes after, recording directory)."""
        self.child.expect(rb"recording: (\S+)\r\n")
        recording = Path(self.child.match.group(1).decode())
        self.child.expect(STTY)
        modes_after = self.child.match.group(1)
        self.child.expect(pexpect.EOF)
        self.child.close()
        return self.child.exitstatus, modes_after, recording

    def console_bytes(self) -> bytes:
        """What solcap put on the screen from the console: local notices and messages cut."""
        shown = self.shown.getvalue()[self.start :]
        end = shown.rfind(b"\r\nsolcap: ")
        shown = shown[:end]
        return re.sub(rb"\r\n\[solcap: [^]]*\]\r\n", b"", shown)

    def close(self) -> None:
        if self.child.isalive():
            self.child.close(force=True)


@pytest.fixture
def host() -> Iterator[VirtualHost]:
    with VirtualHost(SimConfig(fast=True, grub_timeout=1, auto_power_on=False)) as vhost:
        yield vhost


@pytest.fixture
def attached(host: VirtualHost, tmp_path: Path) -> Iterator[Attached]:
    session = Attached(host.pty_path, tmp_path)
    try:
        host.power_on()
        yield session
    finally:
        session.close()


def raw_now(session: Attached) -> bool:
    lflag = termios.tcgetattr(session.child.child_fd)[3]
    return not lflag & (termios.ICANON | termios.ECHO | termios.ISIG)


def test_grub_dom0_command_ctrl_a_and_quit(host: VirtualHost, attached: Attached) -> None:
    child = attached.child
    child.expect("GNU GRUB")
    child.expect_exact(PROMPT)
    assert raw_now(attached)  # Ctrl-C, Ctrl-\ and Ctrl-Z go to the console, not to us
    child.send("xl info\r")
    child.expect("xen_version")
    child.expect_exact(PROMPT)

    child.send("\x01\x01\x01")
    child.expect_exact("*** Serial input to Xen")
    assert host.input_target == "xen"
    child.send("\x01\x01\x01")
    child.expect_exact("*** Serial input to DOM0")
    assert host.input_target == "dom0"

    child.send("\r~.")
    status, modes_after, recording = attached.finish()
    assert status == 0
    assert modes_after == attached.modes_before
    raw = (recording / "console.raw").read_bytes()
    assert b"GNU GRUB" in raw and b"xen_version" in raw and b"Serial input to Xen" in raw
    assert host.sent_bytes().startswith(raw)  # nothing invented, nothing lost in between
    shown = attached.console_bytes()
    assert hashlib.sha256(shown).hexdigest() == hashlib.sha256(raw).hexdigest()


def test_escapes_tilde_help_break(host: VirtualHost, attached: Attached) -> None:
    child = attached.child
    child.expect_exact(PROMPT)
    child.send("~~x\r")  # one ~ reaches the host: its shell echoes "~x" and runs it
    child.expect_exact("~x: command not found")
    child.expect_exact(PROMPT)
    child.send("echo a~.b\r")  # mid-line ~ is an ordinary character
    child.expect_exact("a~.b")
    child.expect_exact(PROMPT)
    child.send("~?")
    child.expect_exact("[solcap: Supported escape sequences")
    child.expect_exact("~B  - send a BREAK")
    child.send("~B")
    child.expect_exact("[solcap: BREAK sent]")  # a pty takes a break (tcsendbreak succeeds)
    child.send("echo still-here\r")  # the help and break sent nothing to the host
    child.expect_exact("echo still-here")
    child.expect_exact(PROMPT)
    child.send("\r~.")
    status, modes_after, recording = attached.finish()
    assert (status, modes_after) == (0, attached.modes_before)
    raw = (recording / "console.raw").read_bytes()
    assert b"~x\r\r\n" in raw and b"~~x" not in raw
    assert b"Supported escape" not in raw  # local help is not console output
    events = (recording / "events.jsonl").read_text()
    assert '"event": "attach"' in events and '"reason": "quit"' in events
    kinds = [json.loads(line)["event"] for line in events.splitlines()]
    assert kinds.count("break") == 1, kinds  # the one ~B, recorded once
    assert host.sent_bytes().startswith(raw)


def test_other_escape_character(host: VirtualHost, tmp_path: Path) -> None:
    session = Attached(host.pty_path, tmp_path, "-e", "^]")
    try:
        host.power_on()
        child = session.child
        child.expect_exact(PROMPT)
        child.send("~.\r")  # not an escape any more: the host gets it
        child.expect_exact("~.: command not found")
        child.expect_exact(PROMPT)
        child.send("\x1d.")
        status, modes_after, _recording = session.finish()
        assert (status, modes_after) == (0, session.modes_before)
    finally:
        session.close()


def test_sigterm_restores_the_terminal(host: VirtualHost, attached: Attached) -> None:
    attached.child.expect_exact(PROMPT)
    assert raw_now(attached)
    os.kill(attached.solcap_pid(), signal.SIGTERM)
    status, modes_after, recording = attached.finish()
    assert status == 128 + signal.SIGTERM
    assert modes_after == attached.modes_before
    assert '"reason": "SIGTERM"' in (recording / "events.jsonl").read_text()


def test_sighup_exits_129_and_restores_the_terminal(host: VirtualHost, attached: Attached) -> None:
    """docs/ipmi.md: SIGHUP (the terminal hung up) ends ``console`` with 129, modes restored."""
    attached.child.expect_exact(PROMPT)
    assert raw_now(attached)
    os.kill(attached.solcap_pid(), signal.SIGHUP)
    status, modes_after, recording = attached.finish()
    assert status == 128 + signal.SIGHUP == 129
    assert modes_after == attached.modes_before  # stty -g from the shell, after solcap
    assert '"reason": "SIGHUP"' in (recording / "events.jsonl").read_text()
    meta = json.loads((recording / "meta.json").read_text())
    assert meta["finished"] is True


def test_console_closing_exits_3_and_restores(tmp_path: Path) -> None:
    master, slave = os.openpty()
    path = os.ttyname(slave)
    os.close(slave)
    session = Attached(path, tmp_path)
    try:
        os.write(master, b"last words\r\n")
        session.child.expect_exact("last words")
        os.close(master)  # the far end hangs up
        status, modes_after, recording = session.finish()
        assert status == 3
        assert b"solcap: console closed: " in session.shown.getvalue()
        assert modes_after == session.modes_before
        assert (recording / "console.raw").read_bytes() == b"last words\r\n"
    finally:
        session.close()


def test_ctrl_a_cannot_be_the_escape(tmp_path: Path) -> None:
    session = pexpect.spawn(
        sys.executable,
        ["-m", "solcap.cli", "console", "/dev/null", "-e", "^A", "--root", str(tmp_path)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=20,
    )
    session.expect("Ctrl-A cannot be the escape character")
    session.expect(pexpect.EOF)
    session.close()
    assert session.exitstatus == 2


def test_end_of_input_without_a_terminal_exits_0(tmp_path: Path) -> None:
    master, slave = os.openpty()
    path = os.ttyname(slave)
    os.close(slave)
    try:
        res = subprocess.run(
            [sys.executable, "-m", "solcap.cli", "console", path, "--root", str(tmp_path)],
            input=b"typed\r",
            capture_output=True,
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            timeout=20,
        )
        assert res.returncode == 0, res.stderr
        assert b"solcap: eof; recording: " in res.stderr
        assert os.read(master, 100) == b"typed\r"  # sent before the end of input was seen
    finally:
        os.close(master)


#: The file-size limit (RLIMIT_FSIZE) of the session that must fail: each recording file may
#: grow to this many bytes, then writing console.raw fails inside the attached session.
FSIZE = 100_000


def _limit_file_size() -> None:
    resource.setrlimit(resource.RLIMIT_FSIZE, (FSIZE, FSIZE))


def test_an_exception_inside_the_session_restores_the_terminal(tmp_path: Path) -> None:
    """docs/ipmi.md: the terminal's modes are restored on an exception too. A real one, no
    hook: the far end prints more than the file-size limit lets console.raw hold, so the
    recording's write raises inside the attached session; solcap ends with exit 5 in one
    line, and ``stty -g`` from the shell afterwards shows the modes from before."""
    master, slave = os.openpty()
    path = os.ttyname(slave)
    os.close(slave)
    session = Attached(path, tmp_path, preexec=_limit_file_size)
    lines = b"".join(b"far end line %06d\r\n" % i for i in range(20_000))  # 400 KB

    def far_end() -> None:  # may stay blocked once solcap stops reading; then ends at close
        view = memoryview(lines)
        try:
            while view:
                view = view[os.write(master, view[:4096]) :]
        except OSError:
            pass

    writer = threading.Thread(target=far_end, daemon=True)
    try:
        os.write(master, b"first words\r\n")
        session.child.expect_exact("first words")  # attached: the console reaches the screen
        assert raw_now(session)  # so there are modes to restore
        writer.start()
        session.child.expect(rb"solcap: error: ([^\r\n]*)\r\n", timeout=60)
        error = session.child.match.group(1).decode()
        session.child.expect(STTY)
        modes_after = session.child.match.group(1)
        session.child.expect(pexpect.EOF)
        session.child.close()
        assert session.child.exitstatus == 5, error
        assert "bytes are safely recorded" in error, error
        assert modes_after == session.modes_before
    finally:
        session.close()
        os.close(master)
        writer.join(10)
    raw = next(tmp_path.rglob("console.raw")).read_bytes()
    kept = b"first words\r\n" + lines
    assert raw == kept[: len(raw)] and 0 < len(raw) <= FSIZE  # what it kept is exact
