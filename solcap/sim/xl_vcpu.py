"""``xl vcpu-list`` and ``xl vcpu-pin`` on the simulated host, with Xen's affinity rules.

Modelled on xen-project/xen: ``tools/xl/xl_vcpu.c`` (``main_vcpupin``, ``vcpulist``,
``print_vcpuinfo``: the column widths and messages), ``tools/xl/xl_parse.c``
(``parse_cpurange``), ``tools/xl/xl_utils.c`` (``print_bitmap``, ``find_domain``),
``tools/libs/light/libxl_sched.c`` (the libxl log lines) and ``xen/common/sched/core.c``
(``vcpu_set_hard_affinity``: an affinity with no online CPU is -EINVAL; before Xen 4.13 a Dom0
booted with ``dom0_vcpus_pin`` was -EINVAL too, see commit 905d7340f6). Quirks kept on
purpose, because a client must cope with them: ``xl vcpu-pin DOM all …`` reports a refused
vCPU on stderr and still exits 0; ``xl vcpu-list BADNAME`` prints its header before failing;
CPUs beyond the host's are dropped silently (libxl's bitmap holds whole bytes, Xen ignores
CPUs that are not online).

Pure and deterministic like :mod:`solcap.sim.xen`; imports nothing outside ``solcap.sim``.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

#: (exit status, stdout, stderr) of one command, ``\n`` line ends.
Output = tuple[int, str, str]

_LIBXL_SCHED_ERR = "libxl: error: libxl_sched.c:62:libxl__set_vcpuaffinity"
_LIBXL_SCHED_WARN = "libxl: warning: libxl_sched.c:124:libxl_set_vcpuaffinity_all"
_EINVAL = "Invalid argument"
_ESRCH = "No such process"


@dataclass
class VcpuState:
    """One vCPU as Xen's scheduler holds it."""

    cpu: int
    hard: frozenset[int]
    soft: frozenset[int]
    time: float
    running: bool


def print_bitmap(cpus: frozenset[int], nr_cpus: int) -> str:
    """xl's ``print_bitmap`` over ``nr_cpus`` bits: ``all``, ``none`` or ``0-1,3``."""
    bits = [c in cpus for c in range(nr_cpus)]
    if not any(bits):
        return "none"
    if all(bits):
        return "all"
    parts: list[str] = []
    c = 0
    while c < nr_cpus:
        if not bits[c]:
            c += 1
            continue
        start = c
        while c + 1 < nr_cpus and bits[c + 1]:
            c += 1
        parts.append(str(start) if c == start else f"{start}-{c}")
        c += 1
    return ",".join(parts)


def _strtoul(text: str) -> tuple[int | None, str]:
    """C's strtoul in base 10 on the digits it starts with: (value or None, the rest)."""
    m = re.match(r"\d+", text)
    if m is None:
        return None, text
    return int(m.group(0)), text[m.end() :]


class XlVcpus:
    """The vCPUs of every domain on one boot, and the two xl commands that use them.

    ``domains`` is ``(domid, name, vcpus, initial cpu per vCPU)``; ``node_of(cpu)`` the
    topology; ``dom0_pinned`` whether Xen booted with ``dom0_vcpus_pin``;
    ``xen_version`` ``(major, minor)``.
    """

    def __init__(
        self,
        nr_cpus: int,
        domains: Sequence[tuple[int, str, int, Sequence[int]]],
        node_of: Callable[[int], int],
        *,
        dom0_pinned: bool,
        xen_version: tuple[int, int],
        seed: int,
    ) -> None:
        self.nr_cpus = nr_cpus
        self.node_of = node_of
        self.dom0_pinned = dom0_pinned
        self.xen_version = xen_version
        self.names = {domid: name for domid, name, _, _ in domains}
        every = frozenset(range(nr_cpus))
        rng = random.Random(seed)
        self.vcpus: dict[int, list[VcpuState]] = {}
        for domid, _, count, cpus in domains:
            states = []
            for v in range(count):
                cpu = cpus[v] % nr_cpus
                # dom0_vcpus_pin: each Dom0 vCPU is pinned 1:1 to the pCPU it starts on
                # (sched_init_vcpu: sched_set_affinity(unit, cpumask_of(processor), all)).
                hard = frozenset({cpu}) if domid == 0 and dom0_pinned else every
                states.append(
                    VcpuState(cpu, hard, every, rng.randrange(1, 90000) / 10, rng.random() < 0.1)
                )
            self.vcpus[domid] = states

    # ---- helpers ------------------------------------------------------------------------

    def _find_domain(self, text: str) -> int | None:
        """libxl_domain_qualifier_to_domid: all digits is a domid (unchecked), else a name."""
        if text.isdigit():
            return int(text)
        for domid, name in self.names.items():
            if name == text:
                return domid
        return None

    def _cpurange(self, text: str) -> tuple[frozenset[int] | None, str]:
        """parse_cpurange → (set, "") or (None, the message xl prints)."""
        cpus: set[int] = set()
        # libxl_cpu_bitmap_alloc(ctx, &map, 0): max_cpus bits rounded up to whole bytes;
        # libxl_bitmap_set ignores anything beyond.
        size = -(-self.nr_cpus // 8) * 8
        for item in [t for t in text.split(",") if t]:  # strtok_r skips empty tokens
            negate = item.startswith("^")
            rest = item[1:] if negate else item
            nodes = False
            for prefix in ("node:", "nodes:"):
                if rest.startswith(prefix):
                    nodes, rest = True, rest[len(prefix) :]
                    break
            if rest == "all":
                if negate:
                    return None, 'Can\'t combine "^" and "all".\n'
                cpus |= set(range(size))
                continue
            low, tail = _strtoul(rest)
            high = low
            if low is not None and tail.startswith("-"):
                high, tail = _strtoul(tail[1:])
            if low is None or high is None or high < low or tail:
                return None, f"Invalid pcpu range: {rest}.\n"
            for number in range(low, high + 1):
                chosen = (
                    {c for c in range(self.nr_cpus) if self.node_of(c) == number}
                    if nodes
                    else ({number} if number < size else set())
                )
                if nodes and not chosen:
                    return None, "libxl_node_to_cpumap failed.\n"
                cpus = cpus - chosen if negate else cpus | chosen
        return frozenset(cpus), ""

    def _set(
        self, domid: int, vcpu: int, hard: frozenset[int] | None, soft: frozenset[int] | None
    ) -> str | None:
        """Xen's side of one vCPU's affinity change: None, or the errno text."""
        states = self.vcpus.get(domid)
        if states is None:
            return _ESRCH
        if vcpu >= len(states):
            return _EINVAL
        if soft is not None:
            states[vcpu].soft = soft & frozenset(range(self.nr_cpus))  # kept as asked
        if hard is None:
            return None
        if domid == 0 and self.dom0_pinned and self.xen_version < (4, 13):
            return _EINVAL  # d->is_pinned (removed in 4.13)
        online = hard & frozenset(range(self.nr_cpus))
        if not online:
            return _EINVAL
        state = states[vcpu]
        state.hard = hard
        if state.cpu not in online:
            state.cpu = min(online)  # the scheduler moves it onto an allowed pCPU
        return None

    # ---- commands -----------------------------------------------------------------------

    def vcpu_list(self, args: Sequence[str]) -> Output:
        out = "{:<32s} {:>5s} {:>5s} {:>5s} {:>5s} {:>9s} {}\n".format(
            "Name", "ID", "VCPU", "CPU", "State", "Time(s)", "Affinity (Hard / Soft)"
        )
        wanted: list[int] = []
        for arg in args:
            domid = self._find_domain(arg)
            if domid is None:
                return 1, out, f"{arg} is an invalid domain identifier (rc=-6)\n"
            wanted.append(domid)
        for domid in wanted or sorted(self.vcpus):
            name = self.names.get(domid)
            if name is None:  # libxl_list_vcpu fails; xl prints nothing for it
                continue
            for v, s in enumerate(self.vcpus[domid]):
                running, blocked = ("r", "-") if s.running else ("-", "b")
                # "%-32s %5u %5u" then "%5u %3c%c- " (no space between VCPU and CPU: xl's own).
                out += (
                    f"{name:<32s} {domid:5d} {v:5d}{s.cpu:5d} {running:>3s}{blocked}- "
                    f"{s.time:9.1f}  "
                    f"{print_bitmap(s.hard, self.nr_cpus)} / "
                    f"{print_bitmap(s.soft, self.nr_cpus)}\n"
                )
        return 0, out, ""

    def vcpu_pin(self, args: Sequence[str]) -> Output:
        words = list(args)
        force = False
        while words and words[0] in ("-f", "--force"):
            force = True
            words.pop(0)
        if len(words) < 3:
            return (
                1,
                "",
                (
                    "'xl vcpu-pin' requires at least 3 arguments.\n\n"
                    "Usage: xl [-vf] vcpu-pin [option] <Domain> <VCPU|all> <Hard affinity|-|all> "
                    "<Soft affinity|-|all>\n\nSet which CPUs a VCPU can use.\n\n"
                ),
            )
        domid = self._find_domain(words[0])
        if domid is None:
            return 1, "", f"{words[0]} is an invalid domain identifier (rc=-6)\n"
        number, _ = _strtoul(words[1])
        if number is None:
            if words[1] != "all":
                return 1, "", f"Error: Invalid argument {words[1]} as VCPU.\n"
            if force:
                return 1, "", "Error: --force and 'all' as VCPU not allowed.\n"
        hard: frozenset[int] | None = None
        if words[2] != "-":
            hard, message = self._cpurange(words[2])
            if hard is None:
                return 1, "", message
        soft: frozenset[int] | None = None
        if len(words) > 3 and words[3] != "-":
            soft, message = self._cpurange(words[3])
            if soft is None:
                return 1, "", message
        if number is not None:
            error = self._set(domid, number, hard, soft)
            if error is not None:
                return (
                    1,
                    "",
                    (
                        f"{_LIBXL_SCHED_ERR}: Domain {domid}:Setting vcpu affinity: {error}\n"
                        f"Could not set affinity for vcpu `{number}'.\n"
                    ),
                )
            return 0, "", ""
        states = self.vcpus.get(domid)
        if states is None:
            return 1, "", "libxl_list_vcpu failed.\n"
        err = ""
        failed = False
        for v in range(len(states)):
            error = self._set(domid, v, hard, soft)
            if error is not None:
                failed = True
                err += f"{_LIBXL_SCHED_ERR}: Domain {domid}:Setting vcpu affinity: {error}\n"
                err += f"{_LIBXL_SCHED_WARN}: Domain {domid}:Failed to set affinity for {v}\n"
        if failed:
            err += "Could not set affinity.\n"
        return 0, "", err  # xl's main_vcpupin: rc = EXIT_SUCCESS even so

    def affinities(self) -> dict[str, list[str]]:
        """``{"DOMID.VCPU": [hard, soft]}`` as xl prints them (the lab host's own report)."""
        return {
            f"{domid}.{v}": [
                print_bitmap(s.hard, self.nr_cpus),
                print_bitmap(s.soft, self.nr_cpus),
            ]
            for domid, states in sorted(self.vcpus.items())
            for v, s in enumerate(states)
        }
