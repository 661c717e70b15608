"""The virtual Xen host: firmware, GRUB, Xen and Dom0 behind a real pseudo-terminal.

Why it exists: solcap's console, GRUB and Xen code must be tested against something that
behaves like a real serial line — paced at the baud rate, with GRUB's polled UART losing
typed-ahead bytes, Xen's single-slot debug-key queue losing keys, Ctrl-A×3 switching input and
boot logs that misbehave on demand — without a lab machine.

Shape: three threads around one pty pair.

* the *line* thread (:class:`_Line`) writes queued output to the pty master at ``baud/10``
  bytes per second in ~10 ms chunks on a monotonic schedule, records every byte it wrote
  (:meth:`VirtualHost.sent_bytes`) and fires markers queued between output pieces, so the
  machine learns when a piece has actually left the line;
* the *input* thread reads what clients type (the pty master) and stamps it with its arrival
  time;
* the *machine* thread owns all state (power, GRUB, Xen, Dom0) and reacts to events: input,
  markers, the line going idle, timers and power commands from other threads.

The content itself (GRUB's screens, Xen's and Dom0's text) comes from the pure models in
:mod:`solcap.sim.grub` and :mod:`solcap.sim.xen`; this module only wires them to time and
to the line.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import fcntl
import hashlib
import heapq
import os
import queue
import random
import select
import threading
import time
import tty
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from solcap.sim.grub import BootRequest, GrubEntry, GrubMenu
from solcap.sim.xen import DEBUG_KEYS, KERNEL, PROMPT, HostSpec, XenHost

#: Line rate used when ``SimConfig.fast`` is set: fast enough for a quick test suite, yet still
#: paced, so ordering and "idle" behave as on a real line.
FAST_RATE = 2_000_000
#: How much output one paced write carries, in seconds of line time.
CHUNK_SECONDS = 0.01
#: GRUB's serial receive FIFO (a 16550's), in bytes.
GRUB_FIFO_SIZE = 16
#: Seconds GRUB spends on one key besides sending its answer (poll loop, redraw logic): on a
#: fast line this, not the line rate, is what a burst of typed bytes outruns.
GRUB_KEY_SECONDS = 0.002
#: Xen's default conswitch character (Ctrl-A) and how many in a row switch input.
CONSWITCH = 0x01
CONSWITCH_COUNT = 3
#: Seconds between Xen's panic and its reboot (unless ``noreboot``), as Xen prints it.
PANIC_REBOOT_DELAY = 5.0
#: Size of the "longline" fault's line.
LONGLINE_SIZE = 64 * 1024
#: Valid ``SimConfig.faults`` members.
FAULTS = frozenset({"panic", "hang", "garbage", "longline"})
#: Valid values of :attr:`VirtualHost.state`.
STATES = frozenset({"off", "firmware", "grub", "booting", "running", "panicked", "hung"})

KERNEL_VERSION = KERNEL  # the Dom0 kernel xen.py boots; GRUB loads the same file
#: Newline as Dom0's hvc0 puts it on the serial line (observed: ``\r\r\n``).
DOM0_NEWLINE = b"\r\r\n"

FIRMWARE_TEXT = (
    b"\x1b[2J\x1b[H"
    b"SeaBIOS (version 1.16.2-debian-1.16.2-1)\r\n"
    b"\r\n"
    b"\r\n"
    b"iPXE (http://ipxe.org) 00:03.0 CA00 PCI2.10 PnP PMM+3FF8C8D0+3FECC8D0 CA00\r\n"
    b"Press Ctrl-B to configure iPXE (PCI 00:03.0)...\r\n"
    b"\r\n"
    b"\r\n"
    b"Booting from Hard Disk...\r\n"
)


DEFAULT_XEN_ARGS = "com1=38400,8n1 console=com1 loglvl=all guest_loglvl=all"


@dataclass
class SimConfig:
    """Everything that shapes one virtual host (read when it powers on or boots)."""

    spec: HostSpec = field(default_factory=HostSpec)
    #: Line rate for pacing: ``baud / 10`` bytes per second (8N1).
    baud: int = 38400
    #: Pace at :data:`FAST_RATE` instead of the baud rate (tests).
    fast: bool = False
    grub_timeout: int = 5
    #: Arguments of the default Xen entry's ``multiboot2`` line.
    xen_args: str = DEFAULT_XEN_ARGS
    #: Arguments of the default Xen entry's Dom0 ``module2`` line.
    dom0_args: str = "root=/dev/mapper/vg-root ro console=hvc0 earlyprintk=xen"
    timeout_style: str = "menu"
    #: GRUB superuser ``(user, password)``: editing an entry then asks for them.
    grub_password: tuple[str, str] | None = None
    #: Any of :data:`FAULTS`.
    faults: frozenset[str] = frozenset()
    auto_power_on: bool = True

    def __post_init__(self) -> None:
        unknown = set(self.faults) - FAULTS
        if unknown:
            raise ValueError(f"unknown fault(s): {', '.join(sorted(unknown))}")
        if self.baud <= 0:
            raise ValueError("baud must be positive")
        if self.xen_args == DEFAULT_XEN_ARGS and self.baud != 38400:
            # Xen's com1= must match the line rate, or its output is garbage (xen.py models
            # that); an untouched default follows the chosen baud, explicit args stay as given.
            self.xen_args = self.xen_args.replace("com1=38400", f"com1={self.baud}")

    @property
    def rate(self) -> float:
        """Bytes per second the line carries."""
        return float(FAST_RATE) if self.fast else self.baud / 10.0


@dataclass(frozen=True)
class DumpRecord:
    """One handled debug key: what the host put on the line for it, and where.

    ``start``/``end`` are offsets into :meth:`VirtualHost.sent_bytes`, so
    ``host.sent_bytes()[rec.start:rec.end] == rec.data``.
    """

    key: str
    data: bytes
    sha256: str
    start: int
    end: int


def default_entries(config: SimConfig) -> tuple[GrubEntry, ...]:
    """The GRUB menu a Debian 12 Xen host shows: Xen first, plain Linux second."""
    kernel = f"/boot/vmlinuz-{KERNEL_VERSION}"
    initrd = f"/boot/initrd.img-{KERNEL_VERSION}"
    xen = GrubEntry(
        title="Debian GNU/Linux, with Xen hypervisor",
        lines=(
            "echo 'Loading Xen 4.17 ...'",
            f"multiboot2 /boot/xen.gz {config.xen_args}".rstrip(),
            f"echo 'Loading Linux {KERNEL_VERSION} ...'",
            f"module2 {kernel} {config.dom0_args}".rstrip(),
            "echo 'Loading initial ramdisk ...'",
            f"module2 {initrd}",
        ),
    )
    linux = GrubEntry(
        title="Debian GNU/Linux",
        lines=(
            f"echo 'Loading Linux {KERNEL_VERSION} ...'",
            f"linux {kernel} root=/dev/mapper/vg-root ro console=ttyS0,38400",
            "echo 'Loading initial ramdisk ...'",
            f"initrd {initrd}",
        ),
    )
    return (xen, linux)


def _args_after_path(line: str) -> str:
    """``"multiboot2 /boot/xen.gz a b"`` -> ``"a b"`` (the command line a loader passes on)."""
    parts = line.split(None, 2)
    return parts[2].strip() if len(parts) > 2 else ""


@dataclass(frozen=True)
class BootPlan:
    """What a GRUB entry asked to boot, read from its (possibly edited) lines."""

    kind: str  # "xen", "linux" or "none"
    xen_cmdline: str = ""
    dom0_cmdline: str = ""
    linux_cmdline: str = ""


_SIM_LOADERS = {"multiboot2": "module2", "multiboot": "module", "xen_hypervisor": "xen_module"}


def _module_args(line: str) -> tuple[str, str]:
    """``"module2 --nounzip /x a b"`` -> ``("/x", "a b")``."""
    rest = line.split()[1:]
    while rest and rest[0].startswith("--"):  # e.g. --nounzip
        rest = rest[1:]
    return (rest[0] if rest else ""), " ".join(rest[1:])


def plan_boot(request: BootRequest) -> BootPlan:
    """Find the loader lines in a booted entry, the way GRUB and the loaders hand them on.

    ``multiboot2``/``module2``, ``multiboot``/``module`` and arm64's ``xen_hypervisor``/
    ``xen_module``: the loader's arguments are Xen's, the first module's Dom0's. When the
    loader is tboot (``multiboot /tboot.gz``), tboot launches its first module as the kernel:
    Xen is that module and Dom0 the next one. ``linux`` boots Linux alone.
    """
    loader: str | None = None
    image = ""
    args = ""
    modules: list[tuple[str, str]] = []
    linux: str | None = None
    for raw in request.lines:
        line = raw.strip()
        word = line.split(None, 1)[0] if line else ""
        if word in _SIM_LOADERS and loader is None:
            loader = word
            image, args = _module_args(line)
        elif loader is not None and word == _SIM_LOADERS[loader]:
            modules.append(_module_args(line))
        elif word == "linux" and linux is None:
            linux = _args_after_path(line)
    if loader is not None:
        if image.rsplit("/", 1)[-1].startswith("tboot"):
            if not modules:
                return BootPlan("none")
            xen = modules[0][1]
            dom0 = modules[1][1] if len(modules) > 1 else ""
            return BootPlan("xen", xen_cmdline=xen, dom0_cmdline=dom0)
        dom0 = modules[0][1] if modules else ""
        return BootPlan("xen", xen_cmdline=args, dom0_cmdline=dom0)
    if linux is not None:
        return BootPlan("linux", linux_cmdline=linux)
    return BootPlan("none")


# --------------------------------------------------------------------------------------------
# The paced line


Marker = Callable[[int], None]


class _Line:
    """Writes queued bytes to a pty master at a fixed rate and records exactly what it wrote.

    Markers queued between pieces are called (in this thread, with the number of bytes written
    so far) once everything queued before them has been written; they must be quick.
    """

    def __init__(self, fd: int, rate: float, on_idle: Callable[[], None]) -> None:
        self._fd = fd
        self._rate = rate
        self._chunk = max(1, int(rate * CHUNK_SECONDS))
        self._on_idle = on_idle
        self._items: deque[bytes | Marker] = deque()
        self._cond = threading.Condition()
        self._sent = bytearray()
        self._busy = False  # a chunk is being written
        self._abort = 0  # bumped by flush(): abandon the chunk in flight
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="sim-line", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def write(self, data: bytes) -> None:
        if not data:
            return
        with self._cond:
            self._items.append(bytes(data))
            self._cond.notify_all()

    def mark(self, marker: Marker) -> None:
        with self._cond:
            self._items.append(marker)
            self._cond.notify_all()

    def flush(self) -> None:
        """Drop everything not yet written (power went away) — markers too."""
        with self._cond:
            self._items.clear()
            self._abort += 1
            self._cond.notify_all()

    def idle(self) -> bool:
        with self._cond:
            return not self._items and not self._busy

    def wait_idle(self, timeout: float) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: not self._items and not self._busy, timeout)

    def sent(self) -> bytes:
        with self._cond:
            return bytes(self._sent)

    def sent_count(self) -> int:
        with self._cond:
            return len(self._sent)

    def _take(self) -> tuple[bytes, int] | None:
        """Wait for output; run leading markers; return the next chunk (or None to stop)."""
        with self._cond:
            while True:
                if self._stop:
                    return None
                while self._items and not isinstance(self._items[0], bytes):
                    marker = self._items.popleft()
                    assert not isinstance(marker, bytes)
                    marker(len(self._sent))
                if self._items:
                    head = self._items[0]
                    assert isinstance(head, bytes)
                    chunk = head[: self._chunk]
                    if len(head) > len(chunk):
                        self._items[0] = head[len(chunk) :]
                    else:
                        self._items.popleft()
                    self._busy = True
                    return chunk, self._abort
                if self._busy:
                    self._busy = False
                    self._cond.notify_all()
                    self._on_idle()
                self._cond.wait()

    def _run(self) -> None:
        next_at = time.monotonic()
        while True:
            taken = self._take()
            if taken is None:
                return
            chunk, abort = taken
            now = time.monotonic()
            if next_at < now - CHUNK_SECONDS:
                next_at = now  # idle or blocked: no credit for time the line wasn't used
            with self._cond:
                self._cond.wait_for(
                    lambda abort=abort: self._stop or self._abort != abort,  # type: ignore[misc]
                    max(0.0, next_at - now),
                )
            if not self._write_all(chunk, abort) and self._stop_requested():
                return
            next_at += len(chunk) / self._rate

    def _stop_requested(self) -> bool:
        with self._cond:
            return self._stop

    def _write_all(self, chunk: bytes, abort: int) -> bool:
        """Write ``chunk`` fully (blocking on a full pty); False if stopped or flushed."""
        view = memoryview(chunk)
        while view:
            with self._cond:
                if self._stop or self._abort != abort:
                    return False
            try:
                n = os.write(self._fd, view)
            except BlockingIOError:
                with contextlib.suppress(OSError, ValueError):
                    select.select([], [self._fd], [], 0.1)
                continue
            except OSError as exc:
                if exc.errno in (errno.EIO, errno.EBADF):
                    return False
                raise
            with self._cond:
                self._sent += view[:n]
            view = view[n:]
        return True


# --------------------------------------------------------------------------------------------
# The host


@dataclass
class _Event:
    kind: str
    gen: int = 0
    data: Any = None
    offset: int = 0
    at: float = 0.0


class VirtualHost:
    """A virtual Xen host whose serial console is a pseudo-terminal.

    ``sent_bytes()`` holds every byte written to the line since :meth:`start` (across power
    cycles), so a client that keeps the slave open from the start captures exactly that.
    """

    def __init__(self, config: SimConfig | None = None) -> None:
        self.config = config if config is not None else SimConfig()
        self._master = -1
        self._slave = -1
        self._pty_path = ""
        self._inbox: queue.Queue[_Event] = queue.Queue()
        self._cond = threading.Condition()  # guards state, counters, dumps; wakes waiters
        self._state = "off"
        self._input_target = "dom0"
        self._gen = 0  # bumped on every power change: late events of an old boot are ignored
        self._started = False
        self._stopped = False
        self._line: _Line | None = None
        self._threads: list[threading.Thread] = []
        self._stop_event = threading.Event()
        self.dumps: list[DumpRecord] = []
        #: Bytes typed while GRUB's 16-byte receive FIFO was full.
        self.dropped_input = 0
        #: Debug keys typed while Xen's single pending-key slot was taken.
        self.lost_keys = 0
        # machine-thread state (touched only by the machine thread)
        self._timers: list[tuple[float, int, int, str]] = []
        self._timer_seq = 0
        self._menu: GrubMenu | None = None
        self._grub_clock = 0.0
        #: Line time at which GRUB has sent all its output so far and reads the next byte.
        self._grub_busy_until = 0.0
        self._fifo: deque[tuple[int, float]] = deque()
        self._xen: XenHost | None = None
        self._linux_console = False
        self._ctrl_a = 0
        self._conswitch = CONSWITCH
        self._pending_key: str | None = None
        self._dump_running = False
        self._dump_start = 0
        self._line_buf = bytearray()

    # ---- lifecycle -----------------------------------------------------------------------

    def start(self) -> VirtualHost:
        """Open the pty, start the threads, power on if configured; returns self.

        Calling it again on a running host does nothing (so ``with VirtualHost(c) as h:
        h.start()`` is fine); a stopped host cannot be restarted.
        """
        if self._stopped:
            raise RuntimeError("VirtualHost was stopped; make a new one")
        if self._started:
            return self
        self._started = True
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)
        self._pty_path = os.ttyname(self._slave)
        flags = fcntl.fcntl(self._master, fcntl.F_GETFL)
        fcntl.fcntl(self._master, fcntl.F_SETFL, flags | os.O_NONBLOCK)
        self._line = _Line(self._master, self.config.rate, self._line_idle)
        self._line.start()
        for target, name in ((self._input_loop, "sim-input"), (self._machine_loop, "sim-host")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        if self.config.auto_power_on:
            self.power_on()
        return self

    def stop(self) -> None:
        """Stop threads and close the pty; safe to call twice."""
        if not self._started or self._stopped:
            return
        self._stopped = True
        self._stop_event.set()
        self._inbox.put(_Event("stop"))
        for thread in self._threads:
            thread.join(timeout=5)
        if self._line is not None:
            self._line.stop()
        for fd in (self._master, self._slave):
            with contextlib.suppress(OSError):
                os.close(fd)
        with self._cond:
            self._cond.notify_all()

    def __enter__(self) -> VirtualHost:
        return self.start() if not self._started else self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def pty_path(self) -> str:
        """The slave device clients open (``/dev/pts/N``)."""
        return self._pty_path

    # ---- observation ---------------------------------------------------------------------

    @property
    def state(self) -> str:
        """One of :data:`STATES`."""
        with self._cond:
            return self._state

    @property
    def input_target(self) -> str:
        """Where serial input goes while running: ``"dom0"`` or ``"xen"``."""
        with self._cond:
            return self._input_target

    @property
    def power_state(self) -> bool:
        with self._cond:
            return self._state != "off"

    @property
    def xen(self) -> XenHost | None:
        """The Xen model of the current boot (None before Xen is loaded or without Xen)."""
        return self._xen

    def sent_bytes(self) -> bytes:
        """Every byte written to the line since :meth:`start`, across power cycles.

        A chunk is recorded just after its write, so a client may briefly hold a few bytes
        more than this shows: call :meth:`wait_idle` first when comparing.
        """
        return self._line.sent() if self._line is not None else b""

    def sent_count(self) -> int:
        """``len(sent_bytes())`` without copying."""
        return self._line.sent_count() if self._line is not None else 0

    def wait_state(self, state: str, timeout: float) -> bool:
        """Wait until :attr:`state` equals ``state``; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: self._state == state, timeout)

    def wait_dumps(self, n: int, timeout: float) -> bool:
        """Wait until at least ``n`` debug-key dumps have been fully transmitted."""
        with self._cond:
            return self._cond.wait_for(lambda: len(self.dumps) >= n, timeout)

    def wait_idle(self, timeout: float) -> bool:
        """Wait until nothing is queued or being written by the host.

        Bytes already written may still sit in the pty's kernel buffer until a client reads
        them; and while nobody reads, a full buffer keeps the host from ever going idle.
        """
        return self._line.wait_idle(timeout) if self._line is not None else True

    # ---- control from other threads ------------------------------------------------------

    def power_on(self) -> None:
        """Power on (no-op when already on): firmware lines, then GRUB."""
        self._command("on")

    def power_off(self) -> None:
        """Cut power: whatever is not yet on the line is lost; silence follows."""
        self._command("off")

    def power_cycle(self) -> None:
        """Off, then on: the boot restarts from the firmware lines."""
        self._command("cycle")

    def reset(self) -> None:
        """Hard reset: the boot restarts from the firmware lines."""
        self._command("reset")

    def inject(self, data: bytes) -> None:
        """Put ``data`` on the line as if the machine printed it (tests, demos)."""
        if self._line is not None:
            self._line.write(data)

    def dom0_exec(self, line: str, timeout: float = 10.0) -> bytes | None:
        """Run a Dom0 command as over SSH; return its output (stdout, then stderr).

        See :meth:`dom0_run`, which keeps the two streams and the exit status apart.
        """
        result = self.dom0_run(line, timeout)
        return None if result is None else result[1] + result[2]

    def dom0_run(self, line: str, timeout: float = 10.0) -> tuple[int, bytes, bytes] | None:
        """Run a Dom0 command as over SSH: (exit status, stdout, stderr), ``\\n`` line ends.

        For the Dom0 SSH server (:mod:`solcap.sim.dom0ssh`). It runs on the machine thread
        exactly like a line typed at the console shell, so Xen's output (``xl debug-keys``
        dumps) goes onto the serial line and into :attr:`dumps`; the command's own output
        (no echo or prompt) comes back here instead of going to the line — whether or not
        Dom0's console reaches the serial line. None when Dom0 is not running.
        """
        reply: queue.Queue[tuple[int, bytes, bytes] | None] = queue.Queue(maxsize=1)
        self._inbox.put(_Event("dom0-exec", data=(line, reply)))
        try:
            return reply.get(timeout=timeout)
        except queue.Empty:
            return None

    def _command(self, what: str) -> None:
        if not self._started or self._stopped:
            raise RuntimeError("VirtualHost is not running")
        done = threading.Event()
        self._inbox.put(_Event("power", data=(what, done)))
        if threading.current_thread() not in self._threads:
            done.wait(timeout=10)

    # ---- threads -------------------------------------------------------------------------

    def _line_idle(self) -> None:
        self._inbox.put(_Event("idle"))

    def _input_loop(self) -> None:
        while not self._stop_event.is_set():
            try:
                ready, _, _ = select.select([self._master], [], [], 0.1)
                if not ready:
                    continue
                data = os.read(self._master, 4096)
            except BlockingIOError:
                continue
            except (OSError, ValueError):
                return
            if data:
                self._inbox.put(_Event("input", data=data, at=time.monotonic()))

    def _machine_loop(self) -> None:
        while True:
            timeout = self._next_wakeup()
            try:
                event: _Event | None = self._inbox.get(timeout=timeout)
            except queue.Empty:
                event = None
            if event is not None:
                if event.kind == "stop":
                    return
                self._handle(event)
            self._run_timers()
            self._grub_tick()
            self._maybe_start_key()

    def _next_wakeup(self) -> float | None:
        deadlines = [self._timers[0][0]] if self._timers else []
        if self._menu is not None and self._state == "grub":
            deadline = self._menu.next_deadline()
            if deadline is not None:
                deadlines.append(deadline)
            if self._fifo:
                deadlines.append(self._grub_busy_until)
        if not deadlines:
            return None
        return max(0.0, min(deadlines) - time.monotonic())

    # ---- machine: events -----------------------------------------------------------------

    def _handle(self, event: _Event) -> None:
        if event.kind == "power":
            what, done = event.data
            try:
                self._power(what)
            finally:
                done.set()
        elif event.kind == "idle":
            if self._state == "grub":
                self._grub_drain(time.monotonic())
        elif event.kind == "input":
            self._input(event.data, event.at)
        elif event.kind == "dom0-exec":
            self._dom0_exec(*event.data)
        elif event.gen != self._gen:
            return  # a marker from a boot that power took away
        elif event.kind == "firmware-done":
            self._start_grub()
        elif event.kind == "state":
            self._set_state(event.data)
            xen = self._xen
            if event.data == "panicked" and xen and "noreboot" not in xen.xen_cmdline.split():
                self._add_timer(PANIC_REBOOT_DELAY, "reboot")  # "Reboot in five seconds..."
        elif event.kind == "running":
            with self._cond:
                self._input_target = event.data
            self._set_state("running")
        elif event.kind == "dump-start":
            self._dump_start = event.offset
        elif event.kind == "dump-end":
            self._dump_end(event.data, event.offset)
        elif event.kind == "reboot":
            self._power("reset")

    def _post_marker(self, kind: str, data: Any = None) -> None:
        gen = self._gen
        assert self._line is not None

        def marker(offset: int) -> None:
            self._inbox.put(_Event(kind, gen=gen, data=data, offset=offset))

        self._line.mark(marker)

    def _emit(self, data: bytes) -> None:
        if self._line is not None and data:
            self._line.write(data)

    def _set_state(self, state: str) -> None:
        with self._cond:
            self._state = state
            self._cond.notify_all()

    # ---- machine: power ------------------------------------------------------------------

    def _power(self, what: str) -> None:
        if what == "on" and self._state != "off":
            return
        self._reset_machine()
        if what == "off":
            self._set_state("off")
            return
        self._set_state("firmware")
        self._emit(FIRMWARE_TEXT)
        self._post_marker("firmware-done")

    def _reset_machine(self) -> None:
        assert self._line is not None
        self._gen += 1
        self._line.flush()
        self._timers.clear()
        self._menu = None
        self._fifo.clear()
        self._xen = None
        self._linux_console = False
        self._ctrl_a = 0
        self._conswitch = CONSWITCH
        self._pending_key = None
        self._dump_running = False
        self._line_buf.clear()
        with self._cond:
            self._input_target = "dom0"
            self._cond.notify_all()

    def _add_timer(self, delay: float, kind: str) -> None:
        self._timer_seq += 1
        heapq.heappush(self._timers, (time.monotonic() + delay, self._timer_seq, self._gen, kind))

    def _run_timers(self) -> None:
        now = time.monotonic()
        while self._timers and self._timers[0][0] <= now:
            _, _, gen, kind = heapq.heappop(self._timers)
            if gen == self._gen:
                self._handle(_Event(kind, gen=gen))

    # ---- machine: GRUB -------------------------------------------------------------------

    def _start_grub(self) -> None:
        config = self.config
        self._menu = GrubMenu(
            default_entries(config),
            timeout=config.grub_timeout,
            timeout_style=config.timeout_style,
            password=config.grub_password,
        )
        self._fifo.clear()
        self._grub_clock = time.monotonic()
        self._grub_busy_until = self._grub_clock
        self._set_state("grub")
        self._grub_emit(self._menu.start(self._grub_clock), self._grub_clock)
        self._after_grub()

    def _grub_time(self, at: float) -> float:
        """GRUB's clock never runs backwards, even for bytes that waited in the FIFO."""
        self._grub_clock = max(self._grub_clock, at)
        return self._grub_clock

    def _grub_tick(self) -> None:
        if self._state != "grub" or self._menu is None:
            return
        deadline = self._menu.next_deadline()
        now = time.monotonic()
        if deadline is not None and deadline <= now:
            when = self._grub_time(now)
            self._grub_emit(self._menu.tick(when), when)
            self._after_grub()
        self._grub_drain(now)

    def _grub_emit(self, data: bytes, when: float) -> None:
        """Queue GRUB's output and note when, in line time, it has all left the line."""
        if data:
            start = max(self._grub_busy_until, when)
            self._grub_busy_until = start + len(data) / self.config.rate
            self._emit(data)

    def _grub_input(self, data: bytes, at: float) -> None:
        """Bytes that arrived at ``at`` enter the FIFO, or are lost when it is full *then*.

        Whether the FIFO is full is decided in line time (what GRUB had read by ``at``, given
        how long its answers take on the line), not by how far this process's threads got:
        on a loaded machine they run late, and paced typing must not turn into lost keys
        that a real GRUB, unaffected by the typist's load, would have read.
        """
        for byte in data:
            self._grub_drain(at)
            if len(self._fifo) < GRUB_FIFO_SIZE:
                self._fifo.append((byte, at))
            else:
                with self._cond:
                    self.dropped_input += 1
        self._grub_drain(time.monotonic())

    def _grub_drain(self, now: float) -> None:
        """Hand GRUB the FIFO bytes it has read by ``now``: one whenever its answer is out."""
        while self._fifo and self._menu is not None and self._state == "grub":
            if self._grub_busy_until > now:
                return
            byte, at = self._fifo.popleft()
            when = self._grub_time(max(at, self._grub_busy_until))
            self._grub_busy_until = when + GRUB_KEY_SECONDS
            self._grub_emit(self._menu.feed(bytes([byte]), when), self._grub_busy_until)
            self._after_grub()

    def _after_grub(self) -> None:
        if self._menu is None or self._state != "grub":
            return
        request = self._menu.booted
        if request is not None:
            self._fifo.clear()
            self._boot(plan_boot(request))

    # ---- machine: booting ----------------------------------------------------------------

    def _boot(self, plan: BootPlan) -> None:
        self._menu = None
        self._set_state("booting")  # GRUB has printed the entry's echo lines itself
        if plan.kind == "xen":
            self._boot_xen(plan)
        elif plan.kind == "linux":
            self._boot_linux(plan)
        else:
            self._emit(
                b"error: you need to load the kernel first.\n\r\n\rPress any key to continue..."
            )
            self._post_marker("reboot")

    def _boot_xen(self, plan: BootPlan) -> None:
        faults = self.config.faults
        # The line rate is SimConfig.baud; Xen's com1= must match it for readable output.
        spec = dataclasses.replace(self.config.spec, line_baud=self.config.baud)
        xen = XenHost(spec, plan.xen_cmdline, plan.dom0_cmdline)
        self._xen = xen
        self._conswitch = ord(xen.switch_char) & 0x1F
        chunks = xen.boot_panic() if "panic" in faults else xen.boot()
        if "hang" in faults:
            chunks = chunks[: max(1, len(chunks) // 2)]
        rng = random.Random(self.config.spec.seed)
        garbage_at = set()
        if "garbage" in faults and chunks:
            garbage_at = {rng.randrange(len(chunks)) for _ in range(3)} | {len(chunks) // 3}
        longline_at = -1
        if "longline" in faults:
            dom0 = [i for i, (source, _) in enumerate(chunks) if source == "dom0"]
            longline_at = dom0[len(dom0) // 2] if dom0 else len(chunks) // 2
        for index, (_, data) in enumerate(chunks):
            if index in garbage_at:
                self._emit(_garbage(rng))
            if index == longline_at:
                self._emit(_long_line(rng))
            self._emit(data)
        if "panic" in faults:
            self._post_marker("state", "panicked")
        elif "hang" in faults:
            self._post_marker("state", "hung")
        else:
            # conswitch=<c>x keeps input on Xen after boot; otherwise Xen hands it to Dom0.
            self._post_marker("running", "dom0" if xen.auto_switch else "xen")

    def _boot_linux(self, plan: BootPlan) -> None:
        self._linux_console = "console=ttyS0" in plan.linux_cmdline
        if self._linux_console:
            nl = b"\r\n"
            self._emit(
                b"[    0.000000] Linux version " + KERNEL_VERSION.encode() + b" "
                b"(debian-kernel@lists.debian.org) (gcc-12 (Debian 12.2.0-14) 12.2.0) "
                b"#1 SMP PREEMPT_DYNAMIC Debian 6.1.119-1 (2024-11-22)"
                + nl
                + b"[    0.000000] Command line: BOOT_IMAGE=/boot/vmlinuz-"
                + KERNEL_VERSION.encode()
                + b" "
                + plan.linux_cmdline.encode()
                + nl
                + b"[    0.000000] x86/fpu: x87 FPU will use FXSAVE"
                + nl
                + b"[    1.234567] Run /init as init process"
                + nl
                + nl
                + PROMPT
            )
        self._post_marker("state", "running")

    # ---- machine: running ----------------------------------------------------------------

    def _input(self, data: bytes, at: float) -> None:
        state = self._state
        if state == "grub":
            self._grub_input(data, at)
        elif state == "running":
            if self._xen is None:
                for byte in data:
                    self._shell_byte(byte)
            else:
                for byte in data:
                    self._xen_serial_rx(byte)
        # firmware, booting, panicked, hung, off: nobody reads the UART

    def _xen_serial_rx(self, byte: int) -> None:
        """Xen's serial_rx(): Ctrl-A×3 switches input; an interrupted run is passed on."""
        if byte == self._conswitch:
            self._ctrl_a += 1
            if self._ctrl_a == CONSWITCH_COUNT:
                self._ctrl_a = 0
                self._switch_input()
            return
        while self._ctrl_a:
            self._ctrl_a -= 1
            self._deliver(self._conswitch)
        self._deliver(byte)

    def _switch_input(self) -> None:
        assert self._xen is not None
        to_xen = self._input_target == "dom0"
        with self._cond:
            self._input_target = "xen" if to_xen else "dom0"
            self._cond.notify_all()
        self._emit(self._xen.switch_banner(to_xen))

    def _deliver(self, byte: int) -> None:
        if self._input_target == "xen":
            key = chr(byte)
            if self._pending_key is None:
                self._pending_key = key
            else:
                with self._cond:
                    self.lost_keys += 1
        else:
            self._shell_byte(byte)

    def _maybe_start_key(self) -> None:
        """Run the pending debug key unless a dump is still going out on the line."""
        if self._pending_key is None or self._dump_running or self._xen is None:
            return
        if self._state != "running":
            return
        key, self._pending_key = self._pending_key, None
        output = self._xen.debug_key(key)
        if output is None and key == "R":
            output = b"(XEN) 'R' pressed -> rebooting machine\r\n"
        if output is None:
            return
        self._dump_running = True
        self._emit_dump(key, output, serial=True)

    def _emit_dump(self, key: str, output: bytes, *, serial: bool) -> None:
        """Queue one dump between markers, so its record gets the offsets it really had."""
        self._post_marker("dump-start", key)
        self._emit(output)
        self._post_marker("dump-end", (key, output, serial))

    def _dump_end(self, data: tuple[str, bytes, bool], offset: int) -> None:
        key, output, serial = data
        record = DumpRecord(
            key=key,
            data=output,
            sha256=hashlib.sha256(output).hexdigest(),
            start=self._dump_start,
            end=offset,
        )
        with self._cond:
            self.dumps.append(record)
            self._cond.notify_all()
        if serial:
            self._dump_running = False
        if key == "R":
            self._power("reset")

    def _shell_byte(self, byte: int) -> None:
        """Dom0's tty line discipline: echo, backspace, Enter runs the line."""
        # Dom0's hvc0 reaches the line only through Xen's serial console.
        console = self._linux_console if self._xen is None else self._xen.dom0_visible
        if not console:
            return  # the shell is not on the serial line
        if byte in (0x0D, 0x0A):
            line = self._line_buf.decode("utf-8", "replace")
            self._line_buf.clear()
            self._emit(DOM0_NEWLINE if self._xen is not None else b"\r\n")
            if self._xen is not None:
                self._dom0_command(self._xen, line)
            else:
                self._emit(_plain_linux_command(line))
                self._emit(PROMPT)
        elif byte in (0x7F, 0x08):
            if self._line_buf:
                self._line_buf.pop()
                self._emit(b"\b \b")
        elif 0x20 <= byte < 0x7F:
            self._line_buf.append(byte)
            self._emit(bytes([byte]))

    def _dom0_command(
        self,
        xen: XenHost,
        line: str,
        to: Callable[[bytes], None] | None = None,
        err: Callable[[bytes], None] | None = None,
    ) -> int:
        """Run a Dom0 shell line; ``xl debug-keys K…`` dumps are recorded like typed keys.

        ``to``/``err`` receive stdout/stderr instead of the serial line (SSH); then no prompt
        is printed. Returns the command's exit status.
        """
        out = self._emit if to is None else to
        errors = err if err is not None else out
        words = line.split()
        status = 0
        if words[:2] == ["xl", "debug-keys"] and len(words) == 3:
            for key in words[2]:  # the handlers run one after the other, as in Xen
                xen_out, stdout = xen.dom0_command(f"xl debug-keys {key}")
                if key in DEBUG_KEYS:
                    self._emit_dump(key, xen_out, serial=False)
                else:
                    self._emit(xen_out)
                out(stdout)
        else:
            xen_out, stdout, stderr, status = xen.dom0_run(line)
            self._emit(xen_out)
            out(stdout)
            errors(stderr)
        if to is None:
            self._emit(xen.prompt)
        return status

    def _dom0_exec(self, line: str, reply: queue.Queue[tuple[int, bytes, bytes] | None]) -> None:
        """:meth:`dom0_run` on the machine thread."""
        xen = self._xen
        if xen is None or self._state != "running":
            reply.put(None)
            return
        stdout = bytearray()
        stderr = bytearray()
        status = self._dom0_command(xen, line, stdout.extend, stderr.extend)
        reply.put(
            (
                status,
                bytes(stdout).replace(DOM0_NEWLINE, b"\n"),
                bytes(stderr).replace(DOM0_NEWLINE, b"\n"),
            )
        )


def _plain_linux_command(line: str) -> bytes:
    """The few commands the no-hypervisor entry's shell knows."""
    words = line.split()
    if not words:
        return b""
    if words[0] == "uname":
        return KERNEL_VERSION.encode() + b"\r\n"
    if words[0] == "echo":
        return " ".join(words[1:]).encode() + b"\r\n"
    return f"-bash: {words[0]}: command not found\r\n".encode()


def _garbage(rng: random.Random) -> bytes:
    """A burst of bytes no decoder likes: invalid UTF-8, C0 controls, a stray escape."""
    fixed = b"\xff\xfe\xc3\x28\x00\x07\x1b[\x80\x9b\xe2\x82\x00\x1b\xf0\x28\x8c\xbc"
    noise = bytes(rng.randrange(256) for _ in range(rng.randrange(32, 96)))
    return fixed + noise + b"\r\n"


def _long_line(rng: random.Random) -> bytes:
    """``LONGLINE_SIZE`` printable bytes without a newline (a runaway printk)."""
    alphabet = b"0123456789abcdef"
    body = bytes(alphabet[rng.randrange(16)] for _ in range(256))
    return (body * (LONGLINE_SIZE // len(body)))[:LONGLINE_SIZE]
