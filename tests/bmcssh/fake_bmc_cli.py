"""A BMC's SSH command line, run by a real sshd as the forced command of one flavour.

``fake_bmc_cli.py FLAVOUR STATE_DIR``: behaves like that vendor's CLI as its documentation
describes it (prompt, start command, leave sequence, "in use" answer; docs/bmc-ssh.md) and,
once the console is started, bridges the SSH session's terminal to the virtual Xen host's pty
named in ``STATE_DIR/pty``. One console slot per flavour (``STATE_DIR/FLAVOUR.lock``), except
OpenBMC, whose obmc-console serves any number of clients. Every step is appended to
``STATE_DIR/events.log`` (``PID FLAVOUR EVENT``) so tests can tell a clean leave from a drop.

Standalone on purpose (standard library only): it plays the far side, not solcap.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import select
import signal
import sys
import termios
import time
import tty

FLAVOUR, STATE = sys.argv[1], sys.argv[2]

# flavour -> (banner, prompt, start commands, ready text, busy text, leave sequence)
CLIS: dict[str, dict[str, object]] = {
    "idrac": {
        "banner": b"Connecting to 127.0.0.1:22 ...\r\n",
        "prompt": b"/admin1-> ",
        "start": [b"console com2"],
        "ready": b"",
        "busy": b"Serial console is already in use by another session.\r\n",
        "leave": b"\x1c",
    },
    "ilo": {
        "banner": b"User:root logged-in to ILO.(127.0.0.1)\r\niLO 5 Standard 2.72\r\n",
        "prompt": b"</>hpiLO-> ",
        "start": [b"vsp"],
        "ready": b"\r\nVirtual Serial Port Active: COM2\r\n\r\nStarting virtual serial port.\r\n"
        b"Press 'ESC (' to return to the CLI Session.\r\n",
        "busy": b"\r\nVirtual Serial Port is already in use by another session.\r\n",
        "leave": b"\x1b(",
    },
    "smc": {
        "banner": b"Insyde SMASH-CLP System Management Shell, versions\r\n",
        "prompt": b"-> ",
        "start": [b"cd /system1/sol1", b"start"],
        "ready": b"press <Enter>, <Esc>, and then <T> to terminate session\r\n",
        "busy": b"SOL session is already active.\r\n",
        "leave": b"\r\x1bT",
    },
    "console": {
        "banner": b"console gateway\r\n",
        "prompt": b"gw> ",
        "start": [b"connect node17"],
        "takeover": [b"connect -f node17"],
        "ready": b"[connected to node17]\r\n",
        "busy": b"node17: console busy (held by another user)\r\n",
        "leave": b"\x1dq",
    },
}


def log(event: str) -> None:
    with open(os.path.join(STATE, "events.log"), "a") as handle:
        handle.write(f"{os.getpid()} {FLAVOUR} {event}\n")


def say(data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(1, view) :]


def read_line() -> bytes | None:
    """One command line from the (cooked, echoing) SSH terminal; None at end of session."""
    line = b""
    while True:
        try:
            ch = os.read(0, 1)
        except OSError:
            return None
        if not ch:
            return None
        if ch in b"\r\n":
            return line.strip()
        line += ch


class Slot:
    """The BMC's single console slot: a lock file, and the holder's pid for a takeover."""

    def __init__(self) -> None:
        self.fd = os.open(os.path.join(STATE, f"{FLAVOUR}.lock"), os.O_RDWR | os.O_CREAT, 0o600)

    def take(self, force: bool) -> bool:
        deadline = time.monotonic() + 5
        while True:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if not force:
                    return False
                with contextlib.suppress(ValueError, OSError):
                    holder = int(os.pread(self.fd, 32, 0).decode().strip() or "0")
                    if holder:
                        os.kill(holder, signal.SIGTERM)
                        log(f"took over from {holder}")
                if time.monotonic() > deadline:
                    return False
                time.sleep(0.05)
                continue
            os.ftruncate(self.fd, 0)
            os.pwrite(self.fd, str(os.getpid()).encode(), 0)
            return True

    def release(self) -> None:
        os.ftruncate(self.fd, 0)
        fcntl.flock(self.fd, fcntl.LOCK_UN)


def bridge(leave: bytes) -> bool:
    """Copy bytes between the SSH terminal and the host's pty until ``leave`` is typed
    (True) or the SSH session goes away (False). The terminal is raw meanwhile.

    Typed bytes go on at once, so their timing stays as typed (GRUB tells a bare Esc from an
    escape sequence by the pause after it); only the last byte of a complete leave sequence
    is kept back, as a console server that watches the stream for its escape does.
    """
    with open(os.path.join(STATE, "pty")) as handle:
        path = handle.read().strip()
    host = os.open(path, os.O_RDWR | os.O_NOCTTY)
    tty.setraw(host, termios.TCSANOW)
    saved = termios.tcgetattr(0)
    tty.setraw(0, termios.TCSANOW)  # TCSANOW: keep what was typed already
    recent = b""  # the last len(leave) bytes typed
    try:
        while True:
            readable, _, _ = select.select([0, host], [], [])
            if host in readable:
                try:
                    data = os.read(host, 65536)
                except OSError:
                    data = b""
                if data:
                    say(data)
            if 0 in readable:
                try:
                    data = os.read(0, 65536)
                except OSError:
                    data = b""
                if not data:
                    return False
                for i in range(len(data)):
                    recent = (recent + data[i : i + 1])[-len(leave) :]
                    if recent == leave:
                        if i:
                            os.write(host, data[:i])
                        return True
                os.write(host, data)
    finally:
        termios.tcsetattr(0, termios.TCSANOW, saved)
        os.close(host)


def on_term(signum: int, frame: object) -> None:
    log("killed")
    os._exit(1)


def main() -> int:
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGHUP, on_term)
    log("login")
    if FLAVOUR == "openbmc":  # obmc-console: the session is the console, shared by all
        tty.setraw(0, termios.TCSANOW)  # as obmc-console-client does, before anything else
        left = bridge(b"\r~.")
        log("left" if left else "dropped")
        return 0
    cli = CLIS[FLAVOUR]
    slot = Slot()
    say(cli["banner"])  # type: ignore[arg-type]
    cwd = b"/"
    pending = list(cli["start"])  # type: ignore[call-overload]
    takeover = list(cli.get("takeover", []))  # type: ignore[call-overload]
    while True:
        prompt = cli["prompt"]
        if FLAVOUR == "smc" and cwd != b"/":
            prompt = cwd + b" -> "
        say(prompt)  # type: ignore[arg-type]
        line = read_line()
        if line is None:
            log("dropped at prompt")
            return 0
        if line == b"exit":
            log("logout")
            say(b"\r\n")
            return 0
        if line == b"":
            continue
        if FLAVOUR == "smc" and line.startswith(b"cd "):
            cwd = line[3:].strip()
            continue
        force = line in takeover
        if line == pending[-1] or force:
            if FLAVOUR == "smc" and cwd != b"/system1/sol1":
                say(b"COMMAND PROCESSING FAILED: start needs /system1/sol1\r\n")
                continue
            if not slot.take(force):
                log("busy")
                say(cli["busy"])  # type: ignore[arg-type]
                continue
            log("console")
            say(cli["ready"])  # type: ignore[arg-type]
            left = bridge(cli["leave"])  # type: ignore[arg-type]
            slot.release()
            if not left:
                log("dropped")
                return 0
            log("left")
            say(b"\r\n")
            continue
        say(b"COMMAND NOT RECOGNIZED: " + line + b"\r\n")


if __name__ == "__main__":
    sys.exit(main())
