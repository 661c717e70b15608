"""Pin a domain's vCPUs with ``xl vcpu-pin`` and prove it with ``xl vcpu-list``.

Why a module of its own: a pin is only as good as its verification. ``xl vcpu-pin DOM all
CPUS`` prints "Could not set affinity." and still exits 0 when Xen refuses a vCPU
(``main_vcpupin`` in xen-project/xen ``tools/xl/xl_vcpu.c``), so the exit status alone proves
nothing; the step reads every targeted vCPU's hard affinity back and compares it with the
set the CPU list means on that host.

The CPU-list grammar is xl's ``parse_cpurange`` (``tools/xl/xl_parse.c``): comma-separated
items, each ``all``, ``N`` or ``N-M``, optionally ``node:``/``nodes:`` (whole NUMA nodes) and
optionally ``^`` (remove instead of add), applied left to right onto an empty set.
:func:`check_cpus` rejects what xl would reject, plus lists that can only select nothing
(Xen refuses an empty hard affinity), before anything is sent.

Dom0 pinned at boot (``dom0_vcpus_pin`` on Xen's command line): before Xen 4.13,
``vcpu_set_hard_affinity`` returned -EINVAL for such a domain (``d->is_pinned``; removed by
xen-project/xen commit 905d7340f6, "xen/sched: Remove d->is_pinned", first in 4.13.0). The
step refuses that case up front, naming the option and the version; from 4.13 on the boot
pinning is only the initial affinity and may be changed, so the step goes ahead.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from solcap.errors import TargetError

__all__ = [
    "PinResult",
    "VcpuRow",
    "check_cpus",
    "check_dom0_max_vcpus",
    "dom0_pinned_at_boot",
    "expand_cpus",
    "format_cpus",
    "parse_bitmap",
    "parse_vcpu_list",
    "parse_xl_info",
    "pin",
]

_ITEM = re.compile(r"^(\^)?(nodes?:)?(?:(all)|(\d+)(?:-(\d+))?)$")
#: Largest CPU or node number accepted in a list (Xen's NR_CPUS is at most 16383 on x86).
MAX_CPU = 16383
#: First Xen version whose ``dom0_vcpus_pin`` is only an initial affinity (commit 905d7340f6).
UNPINNABLE_BEFORE = (4, 13)
_FALSE = frozenset({"0", "no", "off", "false", "disable"})
_TRUE = frozenset({"1", "on", "yes", "true", "enable"})


# --------------------------------------------------------------------------- CPU lists


def check_cpus(text: str) -> str | None:
    """Why ``text`` is not a CPU list xl accepts and Xen can apply, or None if it is.

    >>> check_cpus("2-3,6") is None
    True
    >>> check_cpus("3-1")
    "item '3-1': the range ends before it starts"
    """
    if not text:
        return "an empty CPU list (use e.g. 0-3,6, all or node:0)"
    if text != text.strip() or any(c.isspace() for c in text):
        return f"{text!r}: no spaces in a CPU list (xl takes it as one argument)"
    adds = False
    for item in text.split(","):
        if not item:
            return f"{text!r}: an empty item between commas"
        m = _ITEM.match(item)
        if m is None:
            return (
                f"item {item!r}: expected N, N-M or all, optionally after node: or ^ "
                "(xl's CPU-list syntax)"
            )
        negate, _nodes, every, low, high = m.groups()
        if every and negate:
            return f"item {item!r}: xl refuses to combine '^' and 'all'"
        if low is not None:
            if int(low) > MAX_CPU or (high is not None and int(high) > MAX_CPU):
                return f"item {item!r}: above {MAX_CPU}, the most CPUs Xen supports"
            if high is not None and int(high) < int(low):
                return f"item {item!r}: the range ends before it starts"
        if not negate:
            adds = True
    if not adds:
        return f"{text!r} only removes CPUs ('^'), so it selects none; Xen refuses that"
    return None


def expand_cpus(text: str, nr_cpus: int, nodes: Mapping[int, frozenset[int]]) -> frozenset[int]:
    """The set of pCPUs ``text`` means on a host with ``nr_cpus`` CPUs and those NUMA nodes.

    Raises ValueError naming the first CPU or node the host does not have (xl would drop
    such a CPU silently, or fail on the node, neither of which is what the runbook meant).
    """
    problem = check_cpus(text)
    if problem is not None:
        raise ValueError(problem)
    chosen: set[int] = set()
    for item in text.split(","):
        m = _ITEM.match(item)
        assert m is not None  # check_cpus accepted it
        negate, node_prefix, every, low, high = m.groups()
        if every:
            cpus = set(range(nr_cpus))
        else:
            numbers = range(int(low), int(high if high is not None else low) + 1)
            cpus = set()
            for number in numbers:
                if node_prefix:
                    if number not in nodes:
                        have = ", ".join(str(n) for n in sorted(nodes)) or "none"
                        raise ValueError(f"item {item!r}: no NUMA node {number} (nodes: {have})")
                    cpus |= nodes[number]
                elif number >= nr_cpus:
                    raise ValueError(
                        f"item {item!r}: no CPU {number} (the host has CPUs 0-{nr_cpus - 1})"
                    )
                else:
                    cpus.add(number)
        chosen = chosen - cpus if negate else chosen | cpus
    return frozenset(chosen)


def format_cpus(cpus: frozenset[int], nr_cpus: int) -> str:
    """A CPU set as xl's ``print_bitmap`` shows it: ``all``, ``none`` or ``0-1,3``."""
    if not cpus:
        return "none"
    if cpus == frozenset(range(nr_cpus)):
        return "all"
    parts: list[str] = []
    items = sorted(cpus)
    start = prev = items[0]
    for cpu in [*items[1:], None]:
        if cpu is not None and cpu == prev + 1:
            prev = cpu
            continue
        parts.append(str(start) if start == prev else f"{start}-{prev}")
        if cpu is not None:
            start = prev = cpu
    return ",".join(parts)


def parse_bitmap(text: str, nr_cpus: int) -> frozenset[int]:
    """xl's ``print_bitmap`` output back into a set (ValueError if it is not one)."""
    if text == "all":
        return frozenset(range(nr_cpus))
    if text == "none":
        return frozenset()
    cpus: set[int] = set()
    for part in text.split(","):
        low, _, high = part.partition("-")
        if not low.isdigit() or (high and not high.isdigit()):
            raise ValueError(f"not an xl CPU map: {text!r}")
        cpus.update(range(int(low), int(high or low) + 1))
    return frozenset(cpus)


def check_dom0_max_vcpus(value: str) -> str | None:
    """Why ``value`` is not a ``dom0_max_vcpus=`` value, or None.

    docs/misc/xen-command-line.pandoc: ``<integer>``, or ``<min>-<max>`` where either side
    may be omitted (defaults 1 and unlimited); vCPU counts start at 1.
    """
    m = re.fullmatch(r"(\d*)-(\d*)|(\d+)", value)
    if m is None:
        return "expected N or MIN-MAX (xen-command-line.pandoc: dom0_max_vcpus)"
    numbers = [int(x) for x in m.groups() if x]
    if any(n < 1 for n in numbers):
        return "a vCPU count starts at 1"
    if m.group(1) and m.group(2) and int(m.group(1)) > int(m.group(2)):
        return "MIN is above MAX"
    return None


# --------------------------------------------------------------------------- xl output


@dataclass(frozen=True)
class VcpuRow:
    """One line of ``xl vcpu-list``."""

    name: str
    domid: int
    vcpu: int
    cpu: int | None  # None: offline ("-")
    state: str
    hard: str
    soft: str


_ROW = re.compile(
    r"^(?P<name>.+?)\s+(?P<domid>\d+)\s+(?P<vcpu>\d+)\s+(?P<cpu>\d+|-)\s+(?P<state>[-rbp]{3})"
    r"\s+(?P<time>[\d.]+)\s+(?P<hard>\S+) / (?P<soft>\S+)$"
)


def parse_vcpu_list(text: str) -> list[VcpuRow]:
    """The rows of ``xl vcpu-list`` (format of ``print_vcpuinfo`` in tools/xl/xl_vcpu.c).

    Lines that are not rows (the header, libxl's messages) are skipped.
    """
    rows: list[VcpuRow] = []
    for line in text.splitlines():
        m = _ROW.match(line.rstrip())
        if m is None:
            continue
        cpu = m.group("cpu")
        rows.append(
            VcpuRow(
                name=m.group("name"),
                domid=int(m.group("domid")),
                vcpu=int(m.group("vcpu")),
                cpu=None if cpu == "-" else int(cpu),
                state=m.group("state"),
                hard=m.group("hard"),
                soft=m.group("soft"),
            )
        )
    return rows


@dataclass(frozen=True)
class XlInfo:
    """What the pin step needs from ``xl info -n``."""

    nr_cpus: int
    version: tuple[int, int]
    version_text: str
    commandline: str
    nodes: Mapping[int, frozenset[int]] = field(default_factory=dict)


def parse_xl_info(text: str) -> XlInfo:
    """``xl info -n``: nr_cpus, xen_version, xen_commandline and the CPU → node topology."""
    fields: dict[str, str] = {}
    nodes: dict[int, set[int]] = {}
    in_topology = False
    for line in text.splitlines():
        key, colon, value = line.partition(":")
        name = key.strip()
        if in_topology:
            parts = line.split()
            if len(parts) == 4 and parts[0].endswith(":") and parts[0][:-1].isdigit():
                if all(p.isdigit() for p in parts[1:]):
                    nodes.setdefault(int(parts[3]), set()).add(int(parts[0][:-1]))
                continue
            if name == "cpu" or not colon:
                continue
            in_topology = False
        if name == "cpu_topology":
            in_topology = True
            continue
        if colon and name and name not in fields:
            fields[name] = value.strip()
    try:
        nr_cpus = int(fields["nr_cpus"])
        version_text = fields["xen_version"]
    except (KeyError, ValueError) as exc:
        raise ValueError("xl info printed no nr_cpus/xen_version") from exc
    m = re.match(r"(\d+)\.(\d+)", version_text)
    if m is None:
        raise ValueError(f"xl info: unreadable xen_version {version_text!r}")
    return XlInfo(
        nr_cpus=nr_cpus,
        version=(int(m.group(1)), int(m.group(2))),
        version_text=version_text,
        commandline=fields.get("xen_commandline", ""),
        nodes={n: frozenset(c) for n, c in nodes.items()},
    )


def dom0_pinned_at_boot(xen_cmdline: str) -> bool:
    """Whether Xen's command line leaves ``dom0_vcpus_pin`` set.

    Xen's ``parse_params`` for a boolean: the last occurrence wins; ``no-`` inverts;
    ``=0/no/off/false/disable`` clear it, ``=1/on/yes/true/enable`` or no value set it, any
    other value is ignored. Names compare exactly.
    """
    pinned = False
    for word in xen_cmdline.split():
        name, has_value, value = word.partition("=")
        invert = name.startswith("no-")
        if invert:
            name = name[3:]
        if name != "dom0_vcpus_pin":
            continue
        if has_value and value not in _TRUE | _FALSE:
            continue
        state = not (has_value and value in _FALSE)
        pinned = state != invert
    return pinned


# --------------------------------------------------------------------------- the step


class _Result(Protocol):
    @property
    def exit_status(self) -> int: ...
    @property
    def stdout(self) -> str: ...
    @property
    def stderr(self) -> str: ...


class _Conn(Protocol):
    def run(self, command: str, *, timeout: float = ...) -> _Result: ...


@dataclass(frozen=True)
class PinResult:
    """What a pin did: the outputs to keep and the affinities it verified."""

    domain: str
    domid: int
    vcpus: tuple[int, ...]
    cpus: str  # as xl prints the verified hard affinity
    outputs: tuple[tuple[str, str, str], ...]  # (file name, command, stdout)


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "(no message on stderr)"


def _is_dom0(domain: str) -> bool:
    return domain in ("0", "Domain-0")


def pin(
    conn: _Conn,
    host: str,
    domain: str,
    vcpu: int | None,
    cpus: str,
    *,
    timeout: float = 60.0,
    outputs: list[tuple[str, str, str]] | None = None,
) -> PinResult:
    """Pin ``domain``'s vCPU ``vcpu`` (None: all of them) to ``cpus`` and verify it.

    Raises TargetError (the host's fault, or a request this host cannot honour) with a
    one-line reason; nothing is pinned when the refusal comes before ``xl vcpu-pin``.
    ``outputs`` (if given) receives ``(file name, command, stdout)`` of every command run,
    as it runs, so a caller keeps the evidence of a failed pin too.
    """
    if outputs is None:
        outputs = []

    def run(name: str, command: str) -> _Result:
        result = conn.run(command, timeout=timeout)
        outputs.append((name, command, result.stdout))
        if result.exit_status != 0:
            raise TargetError(
                host,
                f"`{command}` exited {result.exit_status}: {_last_line(result.stderr)}",
            )
        return result

    info_text = run("xl-info-n.txt", "xl info -n").stdout
    try:
        info = parse_xl_info(info_text)
    except ValueError as exc:
        raise TargetError(host, str(exc)) from exc
    locked = info.version < UNPINNABLE_BEFORE and dom0_pinned_at_boot(info.commandline)
    if _is_dom0(domain) and locked:
        raise TargetError(
            host,
            f"Dom0 was pinned at boot (dom0_vcpus_pin on Xen's command line) and Xen "
            f"{info.version_text} does not allow changing that (before 4.13 Xen refuses "
            "any new hard affinity for it); boot without dom0_vcpus_pin to re-pin Dom0",
        )
    try:
        wanted = expand_cpus(cpus, info.nr_cpus, info.nodes)
    except ValueError as exc:
        raise TargetError(host, f"cpus {cpus!r}: {exc}") from exc
    which = "all" if vcpu is None else str(vcpu)
    run("xl-vcpu-pin.txt", f"xl vcpu-pin {shlex.quote(domain)} {which} {shlex.quote(cpus)}")
    listing = run("xl-vcpu-list.txt", f"xl vcpu-list {shlex.quote(domain)}").stdout
    rows = parse_vcpu_list(listing)
    if not rows:
        raise TargetError(host, f"`xl vcpu-list {domain}` listed no vCPUs")
    targets = rows if vcpu is None else [r for r in rows if r.vcpu == vcpu]
    if not targets:
        have = ", ".join(str(r.vcpu) for r in rows)
        raise TargetError(host, f"{rows[0].name} has no vCPU {vcpu} (vCPUs: {have})")
    shown = format_cpus(wanted, info.nr_cpus)
    for row in targets:
        try:
            got = parse_bitmap(row.hard, info.nr_cpus)
        except ValueError as exc:
            raise TargetError(host, str(exc)) from exc
        if got != wanted:
            raise TargetError(
                host,
                f"after `xl vcpu-pin` vCPU {row.vcpu} of {row.name} has hard affinity "
                f"{row.hard}, not {shown}: the pin did not take effect",
            )
    return PinResult(
        domain=targets[0].name,
        domid=targets[0].domid,
        vcpus=tuple(r.vcpu for r in targets),
        cpus=shown,
        outputs=tuple(outputs),
    )
