"""Content model of a simulated Xen 4.17 host: what reaches the serial line, and when.

Pure and deterministic: no I/O, no threads, no clocks. ``solcap.sim.host`` owns the pty, baud
pacing and input routing and asks this module *what* to print. Every byte is a function of
(``HostSpec``, Xen command line, Dom0 command line, the sequence of calls made).

Shapes follow real captures (``tests/data/samples``): Xen lines are ``(XEN) …\\r\\n`` (Xen's
serial driver turns ``\\n`` into ``\\r\\n``); Dom0 output that passes through ``hvc0`` and then
Xen's serial driver ends ``\\r\\r\\n`` (the tty's ONLCR, then Xen's), except what Linux's
``earlyprintk=xen`` boot console writes before ``hvc0`` registers, which ends ``\\r\\n``.

Routing rules modelled (why a line does or does not reach the wire):
* Xen writes to serial only if ``console=`` lists ``com1`` (default ``com1,vga``) *and* ``com1=``
  configures the UART at the line's rate (or ``auto``). Without ``com1=`` the x86 UART stays
  unconfigured; at the wrong rate the far end sees a short burst of garbage, then nothing
  useful.
* Dom0's ``hvc0`` is the Xen console, so Dom0 output needs ``console=hvc0`` on its command line
  *and* a working Xen serial console. ``earlyprintk=xen`` adds the early boot-console lines.
* The console ring (``xl dmesg``, key ``w``) holds every Xen line whatever the serial setting;
  Dom0 output only with ``console_to_ring``.

The Dom0 shell is root on ``hvc0`` (autologin); its prompt is ``root@<hostname>:~# ``
(:data:`PROMPT` for the default hostname, :attr:`XenHost.prompt` in general).
"""

from __future__ import annotations

import hashlib
import random
import re
from dataclasses import dataclass, field

from solcap.sim import xen_dumps as dumps
from solcap.sim.xl_vcpu import XlVcpus

XEN_EOL = b"\r\n"
DOM0_EOL = b"\r\r\n"
EARLY_EOL = b"\r\n"
PROMPT = b"root@xenhost:~# "
KERNEL = "6.1.0-56-amd64"

DEBUG_KEYS: dict[str, str] = {
    "%": "trap to xendbg",
    "*": "print all diagnostics",
    "+": "increase log level threshold",
    "-": "decrease log level threshold",
    "0": "dump Dom0 registers",
    "A": "toggle alternative key handling",
    "G": "toggle host/guest log level adjustment",
    "H": "dump heap info",
    "I": "dump HVM irq info",
    "M": "dump MSI state",
    "N": "trigger an NMI",
    "Q": "dump PCI devices",
    "R": "reboot machine",
    "a": "dump timer queues",
    "c": "dump ACPI Cx structures",
    "d": "dump registers",
    "e": "dump evtchn info",
    "g": "print grant table usage",
    "h": "show this message",
    "i": "dump interrupt bindings",
    "m": "memory info",
    "n": "NMI statistics",
    "q": "dump domain (and guest debug) info",
    "r": "dump run queues",
    "s": "dump softtsc stats",
    "t": "display multi-cpu clock info",
    "u": "dump NUMA info",
    "v": "dump AMD-V VMCBs",
    "w": "synchronously dump console ring buffer (dmesg)",
    "x": "print livepatch info",
    "z": "dump IOAPIC info",
}
"""Handlers installed on the modelled host (AMD, no IOMMU, release build), as 'h' lists them.
Keys Xen registers only on other hardware/builds (C kexec, V/o/D IOMMU, P/L perf/lock
profiling, S/T/O) are absent: Xen silently ignores a key with no handler."""

DANGEROUS_KEYS: frozenset[str] = frozenset("RCNS%AT+-GPLO")
"""Keys that change host state (reboot, crash, NMI, log levels, key handling) — never send
these casually, whether or not this particular host has a handler for them."""

DIAGNOSTIC_KEYS = "d0HIMQacegimnqrstuvxz"
"""What '*' fires: 'd' (IRQ context) first, then the rest in ASCII order (keyhandler.c)."""


@dataclass(frozen=True)
class HostSpec:
    """The simulated machine; every output byte derives from it and the command lines."""

    hostname: str = "xenhost"
    pcpus: int = 4
    numa_nodes: int = 1
    domus: int = 2
    vcpus_per_domu: int = 2
    dom0_vcpus: int = 2
    memory_mb: int = 16384
    seed: int = 0
    line_baud: int = 38400
    #: What ``xl info`` reports, and whether Dom0's boot pinning is locked (before 4.13).
    #: The boot text and dumps stay 4.17-shaped whatever this says. Not in the repr, which
    #: seeds every generated value: adding this field must not change any existing output.
    xen_version: str = field(default=dumps.XEN_VERSION, repr=False)


def split_args(cmdline: str) -> list[str]:
    """Split on whitespace, keeping double-quoted runs together (quotes kept, as Xen does)."""
    args: list[str] = []
    cur: list[str] = []
    quoted = False
    for ch in cmdline:
        if ch == '"':
            quoted = not quoted
            cur.append(ch)
        elif ch.isspace() and not quoted:
            if cur:
                args.append("".join(cur))
                cur = []
        else:
            cur.append(ch)
    if cur:
        args.append("".join(cur))
    return args


def parse_size(text: str) -> int:
    """Xen's parse_size_and_unit: K/M/G/T suffixes, B for bytes, bare numbers mean KiB."""
    m = re.match(r"(0x[0-9a-fA-F]+|\d+)([kKmMgGtTbB]?)", text)
    if not m:
        return 0
    value = int(m.group(1), 0)
    shift = {"": 10, "b": 0, "k": 10, "m": 20, "g": 30, "t": 40}[m.group(2).lower()]
    return value << shift


def _options(args: list[str]) -> dict[str, str]:
    """Last occurrence wins, as in Xen's cmdline_parse; bare words map to ''."""
    out: dict[str, str] = {}
    for a in args:
        key, _, val = a.partition("=")
        out[key.replace("-", "_")] = val
    return out


_LOGLVL = {"none": 0, "error": 1, "warning": 2, "info": 3, "debug": 4, "all": 4}
_LOGLVL_STR = ("Nothing", "Errors", "Errors and warnings", "Errors, warnings and info", "All")


def _loglvl(text: str | None, default: int) -> int:
    if text is None:
        return default
    return _LOGLVL.get(text.split("/")[0], 2)


class XenHost:
    """One boot of the simulated host: output for boot, debug keys and Dom0 shell commands."""

    def __init__(self, spec: HostSpec, xen_cmdline: str, dom0_cmdline: str) -> None:
        self.spec = spec
        self.xen_cmdline = xen_cmdline
        self.dom0_cmdline = dom0_cmdline
        xopt = _options(split_args(xen_cmdline))
        dargs = split_args(dom0_cmdline)
        self._xopt = xopt
        consoles = xopt.get("console", "com1,vga").split(",")
        com1 = xopt.get("com1")
        self.com1_baud: int | None = None
        baud_ok = False
        if com1 is not None:
            first = com1.split(",")[0].split("/")[0]
            if first == "auto":
                baud_ok = True
                self.com1_baud = spec.line_baud
            elif first.isdigit():
                self.com1_baud = int(first)
                baud_ok = self.com1_baud == spec.line_baud
        self.com1_listed = any(c.rstrip("HL") == "com1" for c in consoles)
        self.serial_console: bool = self.com1_listed and baud_ok
        self.dom0_hvc: bool = any(
            a == "console=hvc0" or a.startswith("console=hvc0,") for a in dargs
        )
        self.earlyprintk: bool = any(
            a in ("earlyprintk=xen", "earlyprintk=xen,keep") for a in dargs
        )
        self.dom0_visible: bool = self.serial_console and self.dom0_hvc
        self.console_to_ring = "console_to_ring" in xopt
        self.loglvl = _loglvl(xopt.get("loglvl"), 2)
        self.guest_loglvl = _loglvl(xopt.get("guest_loglvl"), 0)
        switch = xopt.get("conswitch", "a") or "a"
        self.switch_char = switch[0]
        self.auto_switch = switch[1:2] != "x"
        self.conring_size: int = self._conring_size(xopt.get("conring_size"))
        self.prompt: bytes = f"root@{spec.hostname}:~# ".encode()
        self.dom0_vcpus = self._dom0_vcpus(xopt.get("dom0_max_vcpus"))
        self.dom0_mb = self._dom0_mb(xopt.get("dom0_mem"))
        self.machine = self._build_machine()
        self.dom0_vcpus_pin = _dom0_vcpus_pin(split_args(xen_cmdline))
        major, minor = (int(x) for x in spec.xen_version.split(".")[:2])
        self.xl_vcpus = XlVcpus(
            spec.pcpus,
            [(d.domid, d.name, d.vcpus, d.vcpu_cpu) for d in self.machine.domains],
            self.machine.cpu_node,
            dom0_pinned=self.dom0_vcpus_pin,
            xen_version=(major, minor),
            seed=self.seed("vcpu-list"),
        )
        self._rng = random.Random(self.seed("run"))
        self._ring = bytearray()
        self._now = 20_000_000_000 + self._rng.randrange(5_000_000_000)
        self._t_count = 0
        self._t_acc = [0, 0, 0, 0]
        self._alt_keys = spec.pcpus > 16
        self._thresh = [self.loglvl, self.loglvl]  # lower, upper of the adjusted pair
        self._guest_adj = False

    # ----------------------------------------------------------------- derived settings
    def seed(self, what: str) -> int:
        blob = f"{self.spec!r}|{self.xen_cmdline}|{self.dom0_cmdline}|{what}".encode()
        return int.from_bytes(hashlib.sha256(blob).digest()[:8], "big")

    def _conring_size(self, opt: str | None) -> int:
        """console_init_postirq: default pcpus << (9 + loglvl); at least 16 KiB; whole
        power-of-two pages (get_order_from_bytes)."""
        want = parse_size(opt) if opt else self.spec.pcpus << (9 + self.loglvl)
        want = max(want, 16384)
        size = 4096
        while size < want:
            size <<= 1
        return size

    def _dom0_vcpus(self, opt: str | None) -> int:
        """``dom0_max_vcpus=N`` gives N (more than the pCPUs is allowed); ``MIN-MAX`` (either
        side may be empty) clamps the pCPU count (docs/misc/xen-command-line.pandoc)."""
        n = self.spec.dom0_vcpus
        if opt:
            low, dash, high = opt.partition("-")
            if not dash and low.isdigit():
                n = int(low)
            elif dash and (low.isdigit() or not low) and (high.isdigit() or not high):
                n = max(self.spec.pcpus, int(low or 1))
                if high:
                    n = min(n, int(high))
        return max(1, min(n, 512))

    def _dom0_mb(self, opt: str | None) -> int:
        if opt:
            for part in opt.split(","):
                if not part.startswith(("min:", "max:")) and part:
                    return max(64, parse_size(part) >> 20)
        return max(64, min(self.spec.memory_mb // 8, 4096))

    def _build_machine(self) -> dumps.Machine:
        rng = random.Random(self.seed("machine"))
        s = self.spec
        nodes = max(1, s.numa_nodes)
        domains = [
            dumps.Domain(
                0,
                "Domain-0",
                self.dom0_vcpus,
                self.dom0_mb * 256,
                tuple(v % s.pcpus for v in range(self.dom0_vcpus)),
                0,
                "00000000-0000-0000-0000-000000000000",
            )
        ]
        dom_mb = max(32, min(1024, (s.memory_mb - self.dom0_mb) * 7 // 8 // max(1, s.domus)))
        for i in range(1, s.domus + 1):
            h = rng.getrandbits(128).to_bytes(16, "big").hex()
            handle = f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
            cpus = tuple(rng.randrange(s.pcpus) for _ in range(s.vcpus_per_domu))
            domains.append(
                dumps.Domain(
                    i, f"guest{i:03d}", s.vcpus_per_domu, dom_mb * 256, cpus, i % nodes, handle
                )
            )
        return dumps.Machine(s.pcpus, nodes, s.memory_mb, tuple(domains))

    # ----------------------------------------------------------------- ring and wire
    def _log(self, lines: list[str]) -> bytes:
        """printk: lines go to the ring (``\\n``) and, as returned bytes, to serial."""
        ring = "".join(f"(XEN) {ln}\n" for ln in lines).encode()
        self._ring += ring
        if len(self._ring) > self.conring_size:
            del self._ring[: len(self._ring) - self.conring_size]
        return ring.replace(b"\n", XEN_EOL)

    def _dom0_ring(self, data: bytes) -> None:
        if self.console_to_ring:
            self._ring += data.replace(b"\r", b"")
            if len(self._ring) > self.conring_size:
                del self._ring[: len(self._ring) - self.conring_size]

    def conring(self) -> bytes:
        """The hypervisor log as ``xl dmesg`` reads it: at most the last conring_size bytes."""
        return bytes(self._ring)

    def _tick(self) -> int:
        self._now += 1_000_000_000 + self._rng.randrange(3_000_000_000)
        return self._now

    def switch_banner(self, to_xen: bool) -> bytes:
        """What Xen prints after Ctrl-<conswitch> x3 (also logged to the ring)."""
        who = "Xen" if to_xen else "DOM0"
        sw = self.switch_char
        line = f"*** Serial input to {who} (type 'CTRL-{sw}' three times to switch input)"
        out = self._log([line])
        return out if self.serial_console else b""

    # ----------------------------------------------------------------- boot
    def _mojibake(self) -> bytes:
        """A UART at the wrong rate: a short burst of framing garbage, then silence."""
        rng = random.Random(self.seed("mojibake"))
        return bytes(rng.choice(b"\x00\x80\xf8\xfe\xe0\x9e\x06\x18\x1e\xc0~x") for _ in range(96))

    def boot(self) -> list[tuple[str, bytes]]:
        """Serial output from Xen's first line to the Dom0 shell prompt, tagged by source."""
        xen_pre, xen_post = _xen_boot_lines(self)
        chunks: list[tuple[str, bytes]] = []
        wire = self.serial_console
        out = self._log(xen_pre)
        if wire:
            chunks.append(("xen", out))
        elif self.com1_listed and self.com1_baud is not None:
            chunks.append(("xen", self._mojibake()))
        if self.auto_switch:
            banner = self.switch_banner(False)
            if wire:
                chunks.append(("xen", banner))
        out = self._log(["Freed 656kB init memory"])
        if wire:
            chunks.append(("xen", out))
        for tag, data in _dom0_boot(self, xen_post):
            if tag == "xen":
                out = self._log([data.decode()])
                if wire:
                    chunks.append(("xen", out))
            else:
                self._dom0_ring(data)
                if wire:
                    chunks.append((tag, data))
        return [(t, d) for t, d in chunks if d]

    def boot_panic(self) -> list[tuple[str, bytes]]:
        """Fault mode: Xen fails to build Dom0 and panics (console.c panic())."""
        xen_pre, _ = _xen_boot_lines(self)
        cut = next(i for i, ln in enumerate(xen_pre) if ln.startswith("*** Building a PV Dom0"))
        lines = [
            *xen_pre[: cut + 4],
            "",
            "****************************************",
            "Panic on CPU 0:",
            "Could not construct domain 0",
            "****************************************",
            "",
            "Reboot in five seconds..."
            if "noreboot" not in self._xopt
            else "Manual reset required ('noreboot' specified)",
        ]
        out = self._log(lines)
        if self.serial_console:
            return [("xen", out)]
        if self.com1_listed and self.com1_baud is not None:
            return [("xen", self._mojibake())]
        return []

    # ----------------------------------------------------------------- debug keys
    def _key_lines(self, key: str) -> list[str] | None:
        m, rng = self.machine, self._rng
        if key not in DEBUG_KEYS:
            return None
        if key == "h":
            return dumps.dump_h(DEBUG_KEYS)
        if key == "q":
            return dumps.dump_q(m, rng, self._tick())
        if key == "u":
            return dumps.dump_u(m, rng, self._tick())
        if key == "H":
            return dumps.dump_H(m, rng, self._tick())
        if key == "r":
            return dumps.dump_r(m, rng, self._tick())
        if key == "c":
            return dumps.dump_c(m, rng, self._tick())
        if key == "m":
            return dumps.dump_m(m, rng)
        if key == "e":
            return dumps.dump_e(m, rng)
        if key == "g":
            return dumps.dump_g(m, rng)
        if key == "a":
            return dumps.dump_a(m, rng)
        if key == "n":
            return dumps.dump_n(m, rng, self.dom0_vcpus)
        if key == "t":
            self._t_count += 1
            return dumps.dump_t(self._t_count, rng, self._t_acc)
        if key == "d":
            return dumps.dump_d(m, rng)
        if key == "0":
            return dumps.dump_0(m, rng)
        if key == "i":
            return dumps.dump_i(m)
        if key == "z":
            return dumps.dump_z(m)
        if key == "Q":
            return dumps.dump_Q(m)
        if key in "IMsvx":
            return dumps.dump_simple(key, m)
        return self._state_key(key)

    def _state_key(self, key: str) -> list[str]:
        if key == "R":
            return [
                "'R' pressed -> rebooting machine",
                "Resetting with ACPI MEMORY or I/O RESET_REG.",
            ]
        if key == "N":
            return ["Triggering NMI on APIC ID 0"]
        if key == "%":
            return ["'%' pressed -> trapping into debugger"]
        if key == "A":
            self._alt_keys = not self._alt_keys
            mode = "alternative" if self._alt_keys else "normal"
            return [f"'A' pressed -> using {mode} key handling"]
        if key == "G":
            self._guest_adj = not self._guest_adj
            which = "guest" if self._guest_adj else "standard"
            return [f"'G' pressed -> {which} log level adjustments enabled"]
        if key in "+-":
            lo, hi = self._thresh
            lo = lo + 1 if key == "+" else max(0, lo - 1)
            hi = max(hi, lo)
            self._thresh = [lo, hi]
            which = "guest" if self._guest_adj else "standard"

            def name(n: int) -> str:
                return _LOGLVL_STR[n] if 0 <= n < len(_LOGLVL_STR) else "???"

            return [f"'{key}' pressed -> {which} log level: {name(lo)} (rate limited {name(hi)})"]
        raise AssertionError(key)  # pragma: no cover - DEBUG_KEYS and handlers disagree

    def _run_key(self, key: str) -> bytes | None:
        if key == "w":
            out = self._log(["'w' pressed -> dumping console ring buffer (dmesg)"])
            return out + bytes(self._ring).replace(b"\n", XEN_EOL)
        if key == "*":
            out = self._log(["'*' pressed -> firing all diagnostic keyhandlers"])
            for k in DIAGNOSTIC_KEYS:
                out += self._log([f"[{k}: {DEBUG_KEYS[k]}]"])
                out += self._run_key(k) or b""
            return out
        lines = self._key_lines(key)
        return None if lines is None else self._log(lines)

    def debug_key(self, key: str) -> bytes | None:
        """Serial output of one debug key typed while input goes to Xen.

        None when Xen 4.17 has no handler here (it then prints nothing). The dump is also
        appended to the console ring. b"" when Xen has no serial console (nothing on the
        wire, though the ring still records it)."""
        out = self._run_key(key)
        if out is None:
            return None
        return out if self.serial_console else b""

    # ----------------------------------------------------------------- Dom0 shell
    def dom0_kernel_log(self) -> str:
        """Dom0's kernel log as ``dmesg`` prints it (``\n`` line ends).

        The kernel logs whether or not its console reaches the serial line, so this is the
        full boot story of a PV Dom0 (``Hypervisor detected: Xen PV`` …), with the same
        timestamps the serial line shows when Dom0's console is visible there."""
        chunks = _dom0_boot(self, [], full=True)
        text = b"".join(d for tag, d in chunks if tag == "dom0").decode("utf-8", "replace")
        lines: list[str] = []
        for line in text.replace("\r", "").split("\n"):
            if line.startswith("[") and (not lines or lines[-1] != line):
                lines.append(line)  # a line both consoles printed is one log entry
        return "".join(f"{line}\n" for line in lines)

    def dom0_command(self, line: str) -> tuple[bytes, bytes]:
        """(Xen serial bytes, Dom0 output bytes) for one line typed at the Dom0 prompt.

        The output is stdout then stderr, as a terminal shows both; see :meth:`dom0_run`."""
        xen, out, err, _ = self.dom0_run(line)
        return xen, out + err

    def dom0_run(self, line: str) -> tuple[bytes, bytes, bytes, int]:
        """(Xen serial bytes, stdout, stderr, exit status) of one Dom0 command line.

        Stdout and stderr use DOM0_EOL (``\\r\\r\\n``): the tty's ONLCR, then Xen's serial
        driver; neither echo nor the next prompt is included. The Xen part is what reaches
        the serial line (b"" when Xen's serial console is not wired, see module docstring).
        Dom0's own output is returned whether or not Dom0's console reaches the serial line:
        the command runs and prints either way (over SSH, say); whether a *console* shell
        exists is the caller's business."""
        args = line.split()
        xen = b""
        text = ""
        err = ""
        status = 0
        if not args:
            text = ""
        elif args[:2] == ["xl", "dmesg"]:
            text = self.conring().decode("utf-8", "replace")
        elif args[:2] == ["xl", "debug-keys"] and len(args) >= 3:
            for key in args[2]:
                xen += self._run_key(key) or b""
        elif args[:2] == ["xl", "debug-keys"]:
            text = "'xl debug-keys' requires at least 1 argument.\n\n"
            text += "Usage: xl [-v] debug-keys <Keys>\n\nSend debug keys to Xen.\n\n"
        elif args[:2] == ["xl", "info"]:
            text = _xl_info(self, "-n" in args[2:])
        elif args[:2] == ["xl", "list"]:
            text = _xl_list(self)
        elif args[:2] == ["xl", "vcpu-list"]:
            status, text, err = self.xl_vcpus.vcpu_list(args[2:])
        elif args[:2] == ["xl", "vcpu-pin"]:
            status, text, err = self.xl_vcpus.vcpu_pin(args[2:])
        elif args[:2] == ["xenpm", "get-cpu-topology"]:
            text = _cpu_topology(
                self, "CPU     core    socket  node\n", "CPU{c:<7d}{c:<8d}{n:<8d}{n}\n"
            )
        elif args[0] == "xenstore-ls":
            text = _xenstore_ls(self)
            text = _xenstore_full_paths(text) if "-f" in args[1:] else text
        elif args == ["uname", "-a"]:
            text = (
                f"Linux {self.spec.hostname} {KERNEL} #1 SMP PREEMPT_DYNAMIC Debian "
                "6.1.192-2 (2026-11-16) x86_64 GNU/Linux\n"
            )
        elif args == ["uname"]:
            text = "Linux\n"
        elif args[0] == "hostname":
            text = self.spec.hostname + "\n"
        elif args[0] == "dmesg":
            text = self.dom0_kernel_log()
        elif args == ["cat", "/proc/cpuinfo"]:
            text = _cpuinfo(self)
        elif args[0] == "cat" and len(args) == 2:
            text = f"cat: {args[1]}: No such file or directory\n"
        elif args[:2] == ["command", "-v"] and len(args) == 3:
            # What this Dom0 has installed: Xen's tools, not xentrace/xenalyze.
            text = f"{DOM0_TOOLS[args[2]]}\n" if args[2] in DOM0_TOOLS else ""
        elif args[0] in ("true", ":", "clear"):
            text = ""
        elif args[0] == "echo":
            text = " ".join(args[1:]) + "\n"
        else:
            text = f"-bash: {args[0]}: command not found\n"
        out = text.encode().replace(b"\n", DOM0_EOL)
        errors = err.encode().replace(b"\n", DOM0_EOL)
        self._dom0_ring(out + errors)
        return (xen if self.serial_console else b"", out, errors, status)


#: Commands the simulated Dom0 has, as ``command -v`` reports them. xentrace and xenalyze are
#: deliberately absent (a minimal Xen install), so runbooks show how they report that.
DOM0_TOOLS = {
    "xl": "/usr/sbin/xl",
    "xenpm": "/usr/sbin/xenpm",
    "xenstore-ls": "/usr/bin/xenstore-ls",
    "uname": "/usr/bin/uname",
    "hostname": "/usr/bin/hostname",
    "dmesg": "/usr/bin/dmesg",
    "cat": "/usr/bin/cat",
    "grep": "/usr/bin/grep",
    "echo": "echo",
    "true": "true",
}


# --------------------------------------------------------------------- boot content
def _dom0_vcpus_pin(args: list[str]) -> bool:
    """Xen's boolean ``dom0_vcpus_pin`` (common/kernel.c parse_params): last one wins."""
    pinned = False
    for arg in args:
        name, eq, value = arg.partition("=")
        invert = name.startswith("no-")
        if (name[3:] if invert else name) != "dom0_vcpus_pin":
            continue
        if eq and value not in ("1", "on", "yes", "true", "enable", "0", "no", "off", "false",
                                "disable"):  # fmt: skip
            continue
        pinned = (not eq or value in ("1", "on", "yes", "true", "enable")) != invert
    return pinned


def _e820(mb: int) -> list[tuple[int, int, str]]:
    MiB = 1 << 20
    low = min(mb, 3072) * MiB
    rows = [
        (0x0, 0x9FBFF, "usable"),
        (0x9FC00, 0x9FFFF, "reserved"),
        (0xF0000, 0xFFFFF, "reserved"),
        (0x100000, low - 0x20001, "usable"),
        (low - 0x20000, low - 1, "reserved"),
        (0xFFFC0000, 0xFFFFFFFF, "reserved"),
    ]
    if mb > 3072:
        rows.append((1 << 32, (1 << 32) + (mb - 3072) * MiB - 1, "usable"))
    rows.append((0xFD00000000, 0xFFFFFFFFFF, "reserved"))
    return rows


def _xen_boot_lines(h: XenHost) -> tuple[list[str], list[str]]:
    """Xen's boot log up to handing input to Dom0, and the lines Xen prints while Dom0 boots."""
    s, m = h.spec, h.machine
    e820 = _e820(s.memory_mb)
    usable_kb = sum(b - a + 1 for a, b, k in e820 if k == "usable") // 1024
    info = h.loglvl >= 3
    debug = h.loglvl >= 4
    L = [
        f"Xen version {dumps.XEN_VERSION} (Debian 4.17.7+13-g2445b30a44-0+deb12u1) "
        "(pkg-xen-devel@lists.alioth.debian.org) (x86_64-linux-gnu-gcc (Debian 12.2.0-14+deb12u1) "
        "12.2.0) debug=n Wed Nov  4 16:52:28 UTC 2026",
        f"build-id: {dumps.BUILD_ID}",
        "Bootloader: GRUB 2.06-13+deb12u2",
        f"Command line: {h.xen_cmdline}",
        "Xen image load base address: 0x3f800000",
        "Video information:",
        " VGA is text mode 80x25, font 8x16",
        " VBE/DDC methods: V1 V2; EDID transfer time: 1 seconds",
        "Disc information:",
        " Found 0 MBR signatures",
        " Found 0 EDD information structures",
        "CPU Vendor: AMD, Family 15 (0xf), Model 107 (0x6b), Stepping 1 (raw 00060fb1)",
        "Xen-e820 RAM map:",
    ]
    L += [f" [{a:016x}, {b:016x}] ({k})" for a, b, k in e820]
    L += [
        f"System RAM: {usable_kb // 1024}MB ({usable_kb}kB)",
        "ACPI: RSDP 000F59C0, 0014 (r0 BOCHS )",
        "ACPI: RSDT 3FFE1B7E, 0034 (r1 BOCHS  BXPC            1 BXPC        1)",
        "ACPI: FACP 3FFE1A2A, 0074 (r1 BOCHS  BXPC            1 BXPC        1)",
        "ACPI: DSDT 3FFE0040, 19EA (r1 BOCHS  BXPC            1 BXPC        1)",
        "ACPI: FACS 3FFE0000, 0040",
        "ACPI: APIC 3FFE1A9E, 0080 (r1 BOCHS  BXPC            1 BXPC        1)",
        "ACPI: HPET 3FFE1B1E, 0038 (r1 BOCHS  BXPC            1 BXPC        1)",
    ]
    if m.nodes == 1:
        top = e820[-2][1] + 1 if s.memory_mb > 3072 else e820[3][1] + 1
        L += ["No NUMA configuration found", f"Faking a node at 0000000000000000-{top:016x}"]
    else:
        L.append("ACPI: SRAT 3FFE1C00, 0140 (r1 BOCHS  BXPC            1 BXPC        1)")
        per = m.node_pages() << 12
        for n in range(m.nodes):
            for c in m.node_cpus(n):
                L.append(f"SRAT: PXM {n} -> APIC {c:02x} -> Node {n}")
        for n in range(m.nodes):
            L.append(f"SRAT: Node {n} PXM {n} [{n * per:016x}, {(n + 1) * per - 1:016x}]")
        L.append("NUMA: Using 20 for the hash shift")
    L += [
        "Domain heap initialised",
        "found SMP MP-table at 000f5ba0",
        "DMI 2.8 present.",
        "Using APIC driver default",
        "ACPI: PM-Timer IO Port: 0x608 (24 bits)",
        "ACPI: Local APIC address 0xfee00000",
        "ACPI: IOAPIC (id[0x00] address[0xfec00000] gsi_base[0])",
        "IOAPIC[0]: apic_id 0, version 32, address 0xfec00000, GSI 0-23",
        "ACPI: INT_SRC_OVR (bus 0 bus_irq 0 global_irq 2 dfl dfl)",
        "ACPI: INT_SRC_OVR (bus 0 bus_irq 5 global_irq 5 high level)",
        "ACPI: INT_SRC_OVR (bus 0 bus_irq 9 global_irq 9 high level)",
        "ACPI: HPET id: 0x8086a201 base: 0xfed00000",
        "Using ACPI (MADT) for SMP configuration information",
        f"SMP: Allowing {s.pcpus} CPUs (0 hotplug CPUs)",
        "IRQ limits: 24 GSI, 392 MSI/MSI-X",
        "CPU0: AMD K8 machine check reporting enabled",
        "Speculative mitigation facilities:",
        "  Compiled-in support: INDIRECT_THUNK RETURN_THUNK HARDEN_ARRAY HARDEN_BRANCH "
        "HARDEN_GUEST_ACCESS HARDEN_LOCK",
        "  Xen settings: BTI-Thunk: RETPOLINE, SPEC_CTRL: No, Other: BRANCH_HARDEN",
        "Using scheduler: SMP Credit Scheduler rev2 (credit2)",
        "Initializing Credit2 scheduler",
    ]
    credit2 = [
        " load_precision_shift: 18",
        " load_window_shift: 30",
        " underload_balance_tolerance: 0",
        " overload_balance_tolerance: -3",
        " runqueues arrangement: socket",
        " cap enforcement granularity: 10ms",
        "load tracking window length 1073741824 ns",
    ]
    L += credit2 if info else []
    L += [
        "Platform timer is 100.000MHz HPET",
        "Detected 2445.412 MHz processor.",
        "Freed 1024kB unused BSS memory",
        "I/O virtualisation disabled",
        f"nr_sockets: {m.nodes}",
        "Enabling APIC mode.  Using 1 I/O APICs",
        "ENABLING IO-APIC IRQs",
        " -> Using new ACK method",
        "..TIMER: vector=0xF0 apic1=0 pin1=2 apic2=-1 pin2=-1",
        f"Allocated console ring of {h.conring_size >> 10} KiB.",
        "HVM: ASIDs enabled.",
        "SVM: Supported advanced features:",
        " - none",
        "HVM: SVM enabled",
        "HVM: Hardware Assisted Paging (HAP) not detected",
    ]
    if s.pcpus > 16 and info:
        L.append("Defaulting to alternative key handling; send 'A' to switch to normal mode.")
    L += [
        f"Brought up {s.pcpus} CPUs",
        "Scheduling granularity: cpu, 1 CPU per sched-resource",
        "Initializing Credit2 scheduler",
    ]
    L += credit2 if info else []
    for n in range(m.nodes):
        for i, c in enumerate(m.node_cpus(n)):
            L.append(f"Adding cpu {c} to runqueue {n}")
            if i == 0:
                L.append(" First cpu on runqueue, activating")
    dom0_pages = h.dom0_mb * 256
    L += [
        "mcheck_poll: Machine check polling timer started.",
        "NX (Execute Disable) protection active",
        "d0 has maximum 232 PIRQs",
        "*** Building a PV Dom0 ***",
        " Xen  kernel: 64-bit, lsb",
        " Dom0 kernel: 64-bit, PAE, lsb, paddr 0x1000000 -> 0x4a00000",
        "PHYSICAL MEMORY ARRANGEMENT:",
        " Dom0 alloc.:   0000000030000000->0000000038000000 "
        f"({dom0_pages - 33253} pages to be allocated)",
        " Init. ramdisk: 000000003f81b000->000000003f9ff800",
        "VIRTUAL MEMORY ARRANGEMENT:",
        " Loaded kernel: ffffffff81000000->ffffffff84a00000",
        " Phys-Mach map: 0000008000000000->0000008000100000",
        " Start info:    ffffffff84a00000->ffffffff84a004b8",
        " Page tables:   ffffffff84a01000->ffffffff84a2a000",
        " Boot stack:    ffffffff84a2a000->ffffffff84a2b000",
        " TOTAL:         ffffffff80000000->ffffffff84c00000",
        " ENTRY ADDRESS: ffffffff830791c0",
        f"Dom0 has maximum {h.dom0_vcpus} VCPUs",
        "Initial low memory virq threshold set at 0x4000 pages.",
        "Scrubbing Free RAM in background",
        f"Std. Loglevel: {_LOGLVL_STR[h.loglvl]}",
        f"Guest Loglevel: {_LOGLVL_STR[h.guest_loglvl]}",
    ]
    if h.loglvl == 2:
        L[-2] = "Std. Loglevel: Errors and warnings"
    post = (
        [f"PCI add device 0000:00:{d}" for d in ("00.0", "01.0", "01.1", "01.3", "02.0")]
        if debug
        else []
    )
    return L, post


_DOM0_EARLY_TAIL = [
    "Released 0 page(s)",
    "BIOS-provided physical RAM map:",
    "Xen: [mem 0x0000000000000000-0x000000000009efff] usable",
    "Xen: [mem 0x000000000009fc00-0x00000000000fffff] reserved",
    "Xen: [mem 0x0000000000100000-{top}] usable",
    "printk: bootconsole [xenboot0] enabled",
    "NX (Execute Disable) protection: active",
    "SMBIOS 2.8 present.",
    "DMI: QEMU Standard PC (i440FX + PIIX, 1996), BIOS 1.16.2-debian-1.16.2-1 04/01/2014",
    "Hypervisor detected: Xen PV",
    "tsc: Detected 2445.380 MHz processor",
    "ACPI: Early table checksum verification disabled",
    "Setting APIC routing to Xen PV.",
    "smpboot: Allowing {cpus} CPUs, 0 hotplug CPUs",
    "Booting kernel on Xen",
    "Xen version: 4.17.7 (preserve-AD)",
    "setup_percpu: NR_CPUS:8192 nr_cpumask_bits:{cpus} nr_cpu_ids:{cpus} nr_node_ids:1",
    "Kernel command line: {cmdline}",
    "Memory: {avail}K/{total}K available (14343K kernel code, 2338K rwdata, 9132K rodata, "
    "2824K init, 17344K bss, 135244K reserved, 0K cma-reserved)",
    "SLUB: HWalign=64, Order=0-3, MinObjects=0, CPUs={cpus}, Nodes=1",
    "*POKE",
    "rcu: Preemptible hierarchical RCU implementation.",
    "NR_IRQS: 524544, nr_irqs: 256, preallocated irqs: 16",
    "xen:events: Using FIFO-based ABI",
    "Console: colour VGA+ 80x25",
    "printk: console [tty0] enabled",
]

_DOM0_LATE = [
    "ACPI: Core revision 20220331",
    "clocksource: xen: mask: 0xffffffffffffffff max_cycles: 0x1cd42e4dffb, "
    "max_idle_ns: 881590591483 ns",
    "installing Xen timer for CPU 0",
    "Calibrating delay loop (skipped), value calculated using timer frequency.. "
    "4890.76 BogoMIPS (lpj=9781520)",
    "Spectre V2 : Mitigation: Retpolines",
    "smp: Bringing up secondary CPUs ...",
    "*CPUS",
    "smp: Brought up 1 node, {cpus_word}",
    "devtmpfs: initialized",
    "xen:grant_table: Grant tables using version 1 layout",
    "Grant table initialized",
    "ACPI: Interpreter enabled",
    "ACPI: PCI Root Bridge [PCI0] (domain 0000 [bus 00-ff])",
    "pci 0000:00:00.0: [8086:1237] type 00 class 0x060000",
    "*PCI 0",
    "pci 0000:00:01.0: [8086:7000] type 00 class 0x060100",
    "*PCI 1",
    "pci 0000:00:01.1: [8086:7010] type 00 class 0x010180",
    "*PCI 2",
    "pci 0000:00:01.3: [8086:7113] type 00 class 0x068000",
    "*PCI 3",
    "pci 0000:00:02.0: [1234:1111] type 00 class 0x030000",
    "*SPLIT pci 0000:00:02.0: Video device with shadowed ROM at [mem 0x000c0000-0x000dffff]",
    "xen:balloon: Initialising balloon driver",
    "clocksource: Switched to clocksource tsc-early",
    "NET: Registered PF_INET protocol family",
    "Trying to unpack rootfs image as initramfs...",
    "Freeing initrd memory: 1940K",
    "Serial: 8250/16550 driver, 4 ports, IRQ sharing enabled",
    "xen:xen_evtchn: Event-channel device installed",
    "xen_pciback: backend is vpci",
    "NET: Registered PF_PACKET protocol family",
    "Freeing unused kernel image (initmem) memory: 2824K",
    "Write protecting the kernel read-only data: 26624k",
    "x86/mm: Checked W+X mappings: passed, no W+X pages found.",
    "Run /init as init process",
    "systemd[1]: systemd 252.39-1~deb12u1 running in system mode",
    "systemd[1]: Hostname set to <{host}>.",
    "EXT4-fs (sda1): re-mounted. Quota mode: none.",
    "xen:xen_evtchn: Event-channel device installed",
]


def _dom0_boot(h: XenHost, xen_post: list[str], full: bool = False) -> list[tuple[str, bytes]]:
    """Dom0's serial output, with Xen's lines (tag 'xen', text without prefix) interleaved.

    ``full``: everything Dom0's kernel logs, as if its console reached the line (for
    ``dmesg``); the random draws are the same, so the timestamps match a visible boot."""
    rng = random.Random(h.seed("dom0"))
    out: list[tuple[str, bytes]] = []
    if not full and not h.dom0_visible and not (h.serial_console and h.earlyprintk):
        # xen_raw_console_write lines reach Xen's console unconditionally.
        if h.serial_console:
            out.append(
                ("dom0", b"mapping kernel into physical memory\r\nabout to get started...\r\n")
            )
        out += [("xen", ln.encode()) for ln in xen_post]
        return out
    ts = 0.0
    top = f"0x{h.dom0_mb * (1 << 20) - 1:016x}"
    fmt = {
        "cpus": str(h.dom0_vcpus),
        "cmdline": h.dom0_cmdline,
        "top": top,
        "avail": str(h.dom0_mb * 1024 * 2 // 5),
        "total": str(h.dom0_mb * 1024 - 4),
        "host": h.spec.hostname,
        "cpus_word": f"{h.dom0_vcpus} CPU" + ("s" if h.dom0_vcpus > 1 else ""),
    }

    def stamp() -> str:
        nonlocal ts
        ts += rng.randrange(200, 40000) / 1e6
        return f"[{ts:12.6f}] "

    first = [
        f"Linux version {KERNEL} (debian-kernel@lists.debian.org) "
        "(gcc-12 (Debian 12.2.0-14+deb12u1) "
        "12.2.0, GNU ld (GNU Binutils for Debian) 2.40) #1 SMP PREEMPT_DYNAMIC Debian 6.1.192-2 "
        "(2026-11-16)",
        f"Command line: {h.dom0_cmdline}",
    ]
    log: list[str] = []  # the kernel log buffer, each entry with its timestamp
    early_only: set[int] = set()
    for ln in first + _DOM0_EARLY_TAIL:
        if ln == "*POKE":
            early_only.add(len(log))
            log.append("Poking KASLR using RDTSC...")
            continue
        log.append(("[    0.000000] " if ts == 0 and ln in first else stamp()) + ln.format(**fmt))
    out.append(("dom0", b"mapping kernel into physical memory\r\nabout to get started...\r\n"))
    if h.earlyprintk:
        early = "".join(ln + "\r\n" for ln in log).encode()
        out.append(("dom0", early))
        if not h.dom0_hvc and not full:
            t = stamp()
            out.append(("dom0", f"{t}printk: bootconsole [xenboot0] disabled\r\n".encode()))
            out += [("xen", ln.encode()) for ln in xen_post]
            return out
        t = stamp()
        t2 = stamp()
        out.append(
            (
                "dom0",
                (
                    f"{t}printk: console [hvc0] enabled\r\r\n{t}printk: console [hvc0] "
                    f"enabled\r\n{t2}printk: bootconsole [xenboot0] disabled\r\r\n"
                    f"{t2}printk: bootconsole [xenboot0] disabled\r\n"
                ).encode(),
            )
        )
    else:
        replay = [ln for i, ln in enumerate(log) if i not in early_only]
        replay.append(f"{stamp()}printk: console [hvc0] enabled")
        out.append(("dom0", "".join(ln + "\r\r\n" for ln in replay).encode()))
    post = iter(xen_post)
    for ln in _DOM0_LATE:
        if ln.startswith("*PCI"):
            nxt = next(post, None)
            if nxt is not None:
                out.append(("xen", nxt.encode()))
            continue
        if ln == "*CPUS":
            for c in range(1, h.dom0_vcpus):
                out.append(("dom0", f"{stamp()}installing Xen timer for CPU {c}\r\r\n".encode()))
            continue
        if ln.startswith("*SPLIT "):
            text = (stamp() + ln[7:]).encode() + DOM0_EOL
            cut = 20 + rng.randrange(20)
            out.append(("dom0", text[:cut]))
            nxt = next(post, None)
            if nxt is not None:
                out.append(("xen", nxt.encode()))
            out.append(("dom0", text[cut:]))
            continue
        out.append(("dom0", (stamp() + ln.format(**fmt)).encode() + DOM0_EOL))
    for nxt in post:
        out.append(("xen", nxt.encode()))
    host = h.spec.hostname
    out.append(
        (
            "dom0",
            (
                f"\r\r\nDebian GNU/Linux 12 {host} hvc0\r\r\n\r\r\n"
                f"{host} login: root (automatic login)\r\r\n\r\r\n"
                f"Linux {host} {KERNEL} #1 SMP PREEMPT_DYNAMIC Debian 6.1.192-2 "
                "(2026-11-16) x86_64\r\r\n"
            ).encode(),
        )
    )
    out.append(("dom0", h.prompt))
    return out


# --------------------------------------------------------------------- Dom0 tools
def _cpuinfo(h: XenHost) -> str:
    """Dom0's /proc/cpuinfo: one block per Dom0 vCPU, at the clock Xen detected."""
    blocks = []
    for n in range(h.dom0_vcpus):
        rows = [
            ("processor", str(n)),
            ("vendor_id", "AuthenticAMD"),
            ("cpu family", "25"),
            ("model", "1"),
            ("model name", "AMD EPYC 7313 16-Core Processor"),
            ("stepping", "1"),
            ("cpu MHz", "2445.412"),
            ("cache size", "512 KB"),
            ("physical id", "0"),
            ("siblings", str(h.dom0_vcpus)),
            ("core id", str(n)),
            ("cpu cores", str(h.dom0_vcpus)),
            (
                "flags",
                "fpu de tsc msr pae mce cx8 apic sep mca cmov pat clflush mmx fxsr sse "
                "sse2 ht syscall nx mmxext fxsr_opt lm constant_tsc rep_good nopl cpuid pni "
                "hypervisor",
            ),
        ]
        blocks.append("".join(f"{k}\t: {v}\n" for k, v in rows))
    return "\n".join(blocks) + "\n"


def _xl_info(h: XenHost, numa: bool) -> str:
    s, m = h.spec, h.machine
    total = s.memory_mb - 1
    used = sum(d.pages for d in m.domains) // 256
    cores = max(1, s.pcpus // m.nodes)
    rows = [
        ("host", s.hostname),
        ("release", KERNEL),
        ("version", "#1 SMP PREEMPT_DYNAMIC Debian 6.1.192-2 (2026-11-16)"),
        ("machine", "x86_64"),
        ("nr_cpus", str(s.pcpus)),
        ("max_cpu_id", str(s.pcpus - 1)),
        ("nr_nodes", str(m.nodes)),
        ("cores_per_socket", str(cores)),
        ("threads_per_core", "1"),
        ("cpu_mhz", "2445.412"),
        ("hw_caps", "078bfbff:f6f83203:2e500800:000003f7:0000000f:219c01a9:00000000:00000100"),
        ("virt_caps", "pv hvm hvm_directio pv_directio gnttab-v1 gnttab-v2"),
        ("total_memory", str(total)),
        ("free_memory", str(max(0, total - used - 40))),
        ("sharing_freed_memory", "0"),
        ("sharing_used_memory", "0"),
        ("outstanding_claims", "0"),
        ("free_cpus", "0"),
        ("xen_major", s.xen_version.split(".")[0]),
        ("xen_minor", s.xen_version.split(".")[1]),
        ("xen_extra", s.xen_version[len(".".join(s.xen_version.split(".")[:2])) :]),
        ("xen_version", s.xen_version),
        ("xen_caps", "xen-3.0-x86_64 hvm-3.0-x86_32 hvm-3.0-x86_32p hvm-3.0-x86_64"),
        ("xen_scheduler", "credit2"),
        ("xen_pagesize", "4096"),
        ("platform_params", "virt_start=0xffff800000000000"),
        ("xen_changeset", ""),
        ("xen_commandline", h.xen_cmdline),
        ("cc_compiler", "x86_64-linux-gnu-gcc (Debian 12.2.0-14+deb12u1) 12.2.0"),
        ("cc_compile_by", "pkg-xen-devel"),
        ("cc_compile_domain", "lists.alioth.debian.org"),
        ("cc_compile_date", "Wed Nov  4 16:52:28 UTC 2026"),
        ("build_id", dumps.BUILD_ID),
        ("xend_config_format", "4"),
    ]
    text = "".join(f"{k:<23}: {v}\n" for k, v in rows)
    if numa:
        idx = next(i for i, ln in enumerate(text.splitlines()) if ln.startswith("free_cpus"))
        lines = text.splitlines()
        extra = ["cpu_topology           :", "cpu:    core    socket     node"]
        for c in range(s.pcpus):
            n = m.cpu_node(c)
            extra.append(f"{c:3d}:    {c % cores:4d}     {n:4d}     {n:4d}")
        extra += [
            "device topology        :",
            "device           node",
            "No device topology data available",
            "numa_info              :",
            "node:    memsize    memfree    distances",
        ]
        per = s.memory_mb // m.nodes
        for n in range(m.nodes):
            dist = ",".join("10" if n == j else "21" for j in range(m.nodes))
            extra.append(f"{n:4d}:    {per:7d}    {max(0, per - used // m.nodes):7d}      {dist}")
        lines[idx + 1 : idx + 1] = extra
        text = "\n".join(lines) + "\n"
    return text


def _xl_list(h: XenHost) -> str:
    rng = random.Random(h.seed("xl-list"))
    text = "Name                                        ID   Mem VCPUs\tState\tTime(s)\n"
    for d in h.machine.domains:
        state = "r-----" if d.domid == 0 else rng.choice(("-b----", "-b----", "r-----"))
        text += (
            f"{d.name:<40}{d.domid:>6}{d.pages // 256:>6}{d.vcpus:>6}     {state}"
            f"{rng.randrange(5, 90000) / 10:>11.1f}\n"
        )
    return text


def _cpu_topology(h: XenHost, header: str, row: str) -> str:
    return header + "".join(row.format(c=c, n=h.machine.cpu_node(c)) for c in range(h.spec.pcpus))


def _xenstore_ls(h: XenHost) -> str:
    lines = ['tool = ""', ' xenstored = ""', 'local = ""', ' domain = ""']
    for d in h.machine.domains:
        lines += [
            f'  {d.domid} = ""',
            f'   vm = "/vm/{d.handle}"',
            f'   name = "{d.name}"',
            f'   domid = "{d.domid}"',
            '   cpu = ""',
        ]
        for v in range(d.vcpus):
            lines += [f'    {v} = ""', '     availability = "online"']
        lines += [
            '   memory = ""',
            f'    target = "{d.pages * 4}"',
            f'    static-max = "{d.pages * 4}"',
            '   control = ""',
            '    shutdown = ""',
            '    feature-poweroff = "1"',
            '    feature-reboot = "1"',
            '   store = ""',
            f'    port = "{1 if d.domid == 0 else 2}"',
            f'    ring-ref = "{1048574 if d.domid else 0}"',
        ]
        if d.domid:
            lines += [
                '   console = ""',
                '    backend = "/local/domain/0/backend/console/{d}/0"'.replace(
                    "{d}", str(d.domid)
                ),
                '    tty = "/dev/pts/{}"'.replace("{}", str(d.domid)),
                '    type = "xenconsoled"',
            ]
    lines.append('vm = ""')
    for d in h.machine.domains[1:]:
        lines += [f' {d.handle} = ""', f'  name = "{d.name}"', f'  uuid = "{d.handle}"']
    return "\n".join(lines) + "\n"


def _xenstore_full_paths(tree: str) -> str:
    """``xenstore-ls -f``: every node as its full path (``/local/domain/0/name = "…"``)."""
    path: list[str] = []
    out = []
    for line in tree.splitlines():
        depth = len(line) - len(line.lstrip(" "))
        name, _, value = line.strip().partition(" = ")
        del path[depth:]
        path.append(name)
        out.append(f"/{'/'.join(path)} = {value}")
    return "\n".join(out) + "\n"
