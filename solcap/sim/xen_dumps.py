"""Debug-key dump generators for the simulated Xen 4.17 host.

Each generator returns the dump as text lines *without* the ``(XEN) `` prefix, shaped after
the real dumps in ``tests/data/samples/xen4.17-key-*.txt`` and the format strings of
xen-project/xen 4.17 (``common/keyhandler.c``, ``arch/x86/numa.c``, ``common/sched/credit2.c``,
``common/event_channel.c``, ``common/grant_table.c``, ``common/page_alloc.c``). They are pure:
every number comes from the :class:`Machine` and the caller's :class:`random.Random`, so a given
spec and key sequence always yields the same bytes.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

XEN_VERSION = "4.17.7"
BUILD_ID = "151b373fd64b321593bf987fd923cd10dabadac4"
NR_ZONES = 41  # heap zones 0..40 as in the 'H' sample


@dataclass(frozen=True)
class Domain:
    """One domain as the dumps see it."""

    domid: int
    name: str
    vcpus: int
    pages: int
    vcpu_cpu: tuple[int, ...]  # the pCPU each vCPU last ran on
    node: int  # home NUMA node
    handle: str


@dataclass(frozen=True)
class Machine:
    """Topology and domains derived from a HostSpec and the command lines."""

    pcpus: int
    nodes: int
    memory_mb: int
    domains: tuple[Domain, ...]

    def cpu_node(self, cpu: int) -> int:
        """Nodes own contiguous blocks of CPUs, as on real multi-socket boxes."""
        per = max(1, -(-self.pcpus // self.nodes))
        return min(cpu // per, self.nodes - 1)

    def node_cpus(self, node: int) -> list[int]:
        return [c for c in range(self.pcpus) if self.cpu_node(c) == node]

    def node_pages(self) -> int:
        return self.memory_mb * 256 // self.nodes


def pbl(cpus: Sequence[int]) -> str:
    """Format a CPU/node set like Xen's ``%*pbl``: ``0-3,6,8-9``."""
    out: list[str] = []
    items = sorted(set(cpus))
    i = 0
    while i < len(items):
        j = i
        while j + 1 < len(items) and items[j + 1] == items[j] + 1:
            j += 1
        out.append(str(items[i]) if i == j else f"{items[i]}-{items[j]}")
        i = j + 1
    return ",".join(out)


def _hex16(rng: random.Random, base: int, span: int) -> str:
    return f"{base + rng.randrange(span) * 8:016x}"


def dump_h(keys: dict[str, str]) -> list[str]:
    lines = ["'h' pressed -> showing installed handlers"]
    for k in sorted(keys, key=ord):
        lines.append(f" key '{k}' (ascii '{ord(k):02x}') => {keys[k]}")
    return lines


def dump_q(m: Machine, rng: random.Random, now: int) -> list[str]:
    lines = [f"'q' pressed -> dumping domain info (now = {now})"]
    for d in m.domains:
        dirty = sorted({rng.randrange(m.pcpus)}) if rng.random() < 0.3 else []
        lines += [
            f"General information for domain {d.domid}:",
            f"    refcnt={3 if d.domid == 0 else 2 + rng.randrange(3)} dying=0 pause_count=0",
            f"    nr_pages={d.pages} xenheap_pages={2 if d.domid == 0 else 4} "
            f"dirty_cpus={{{pbl(dirty)}}} max_pages={d.pages + (0 if d.domid == 0 else 256)}",
            f"    handle={d.handle} vm_assist={'0000002d' if d.domid == 0 else '0000000d'}",
            f"Rangesets belonging to domain {d.domid}:",
        ]
        if d.domid == 0:
            lines += [
                "    Interrupts { 1-23 }",
                "    I/O Memory { 0-fedff, fef00-fcfffff }",
                "    I/O Ports  { 0-1f, 22-3f, 44-60, 62-9f, a2-3f7, 400-607, 60c-cfb, d00-ffff }",
            ]
        else:
            lines += ["    Interrupts { }", "    I/O Memory { }", "    I/O Ports  { }"]
        lines += ["    log-dirty  { }", f"Memory pages belonging to domain {d.domid}:"]
        lines.append("    DomPage list too long to display")
        for _ in range(2 if d.domid == 0 else 4):
            mfn = 0x3F000 + rng.randrange(0x100000)
            lines.append(f"    XenPage {mfn:016x}: caf=c000000000000002, taf=e400000000000002")
        lines.append(f"NODE affinity for domain {d.domid}: [{d.node if m.nodes > 1 else 0}]")
        lines.append(f"VCPU information and callbacks for domain {d.domid}:")
        hard = pbl(m.node_cpus(d.node) if (d.domid and m.nodes > 1) else range(m.pcpus))
        for v in range(d.vcpus):
            lines.append(f"  UNIT{v} affinities: hard={{{hard}}} soft={{{pbl(range(m.pcpus))}}}")
            running = rng.random() < 0.05
            cpu = d.vcpu_cpu[v]
            tail = f"dirty_cpu={cpu}" if running or rng.random() < 0.1 else ""
            lines.append(
                f"    VCPU{v}: CPU{cpu} [has={'T' if running else 'F'}] poll=0 "
                f"upcall_pend=00 upcall_mask=00 {tail}"
            )
            lines.append(f"    pause_count=0 pause_flags={0 if running else 1}")
            lines.append("No periodic timer")
    for d in m.domains:
        for v in range(d.vcpus):
            port = 0 if d.domid == 0 else 1 + v * 7
            lines.append(f"Notifying guest {d.domid}:{v} (virq 1, port {port})")
    lines.append("Shared frames 0 -- Saved frames 0")
    return lines


def dump_u(m: Machine, rng: random.Random, now: int) -> list[str]:
    lines = [f"'u' pressed -> dumping numa info (now = {now})"]
    per = m.node_pages()

    def spread(d: Domain) -> list[int]:
        """Dom0 is allocated across all nodes; a domU lives on its home node."""
        if d.domid == 0:
            share = [d.pages // m.nodes] * m.nodes
            share[0] += d.pages - sum(share)
            return share
        return [d.pages if n == d.node else 0 for n in range(m.nodes)]

    used = [0] * m.nodes
    for d in m.domains:
        used = [u + p for u, p in zip(used, spread(d), strict=True)]
    for n in range(m.nodes):
        free = max(0, per - 32 - used[n] - rng.randrange(4096))
        lines.append(f"NODE{n} start->{n * per} size->{per - 32 if n == 0 else per} free->{free}")
    for n in range(m.nodes):
        cpus = m.node_cpus(n)
        if len(cpus) > 1:
            lines.append(f"CPU{cpus[0]}...{cpus[-1]} -> NODE{n}")
        elif cpus:
            lines.append(f"CPU{cpus[0]} -> NODE{n}")
    lines.append("Memory location of each domain:")
    for d in m.domains:
        lines.append(f"Domain {d.domid} (total: {d.pages}):")
        for n, pages in enumerate(spread(d)):
            lines.append(f"    Node {n}: {pages}")
        if d.domid and m.nodes > 1:
            vn = min(m.nodes, d.vcpus)
            lines.append(f"     {vn} vnodes, {d.vcpus} vcpus, guest physical layout:")
            chunk = d.pages * 4096 // vn
            for i in range(vn):
                vc = [j for j in range(d.vcpus) if j * vn // d.vcpus == i]
                vcs = f"{vc[0]}-{vc[-1]}" if len(vc) > 1 else f"{vc[0]}"
                lines.append(f"       {i:3d}: pnode {(d.node + i) % m.nodes:3d}, vcpus {vcs}")
                lines.append(f"           {i * chunk:016x} - {(i + 1) * chunk:016x}")
    return lines


def dump_m(m: Machine, rng: random.Random) -> list[str]:
    total_free = sum(max(0, m.node_pages() - 1024) for _ in range(m.nodes))
    total_free -= sum(d.pages for d in m.domains)
    total_free = max(total_free, 4096) * 4
    parts = [total_free // 8, total_free // 4, total_free * 3 // 8]
    parts.append(total_free - sum(parts))
    lines = ["Physical memory information:", "    Xen heap: 0kB free"]
    for z, kb in zip(range(15, 19), parts, strict=True):
        lines.append(f"    heap[{z}]: {kb}kB free")
    lines.append(f"    Dom heap: {total_free}kB free")
    return lines


def dump_H(m: Machine, rng: random.Random, now: int) -> list[str]:
    lines = [f"'H' pressed -> dumping heap info (now = {now})"]
    top = min(NR_ZONES - 1, max(19, (m.memory_mb * 256 // m.nodes).bit_length()))
    for n in range(m.nodes):
        for z in range(NR_ZONES):
            pages = (1 << (z - 1)) - rng.randrange(1 << max(0, z - 4)) if 15 <= z <= top else 0
            lines.append(f"heap[node={n}][zone={z}] -> {pages} pages")
    return lines


def dump_e(m: Machine, rng: random.Random) -> list[str]:
    lines = ["'e' pressed -> dumping event-channel info"]
    for d in m.domains:
        lines += [
            f"Event channel information for domain {d.domid}:",
            "Polling vCPUs: {}",
            "    port [p/m/s]",
        ]
        if d.domid == 0:
            ents = [
                "s=5 n=0 x=0 v=0",
                "s=6 n=0 x=0",
                "s=6 n=0 x=0",
                "s=6 n=0 x=0",
                "s=6 n=0 x=0",
                "s=2 n=0 x=0 d=0",
                "s=5 n=0 x=0 v=9",
                "s=4 n=0 x=0 p=9 i=9",
                "s=5 n=0 x=0 v=16",
                "s=5 n=0 x=0 v=2",
                "s=4 n=0 x=0 p=12 i=12",
                "s=4 n=0 x=0 p=1 i=1",
                "s=4 n=0 x=0 p=8 i=8",
            ]
            for v in range(1, d.vcpus):
                ents += [f"s=5 n={v} x=0 v=0", f"s=6 n={v} x=0", f"s=6 n={v} x=0"]
        else:
            ents = []
            for v in range(d.vcpus):
                ents += [f"s=5 n={v} x=0 v=0", f"s=6 n={v} x=0", f"s=6 n={v} x=0"]
            ents += [
                f"s=3 n=0 x=0 d=0 p={20 + 4 * d.domid}",
                f"s=3 n=0 x=0 d=0 p={21 + 4 * d.domid}",
                f"s=3 n={rng.randrange(d.vcpus)} x=0 d=0 p={22 + 4 * d.domid}",
                f"s=3 n={rng.randrange(d.vcpus)} x=0 d=0 p={23 + 4 * d.domid}",
            ]
        for port, ent in enumerate(ents, start=1):
            pend = 1 if rng.random() < 0.02 else 0
            lines.append(f"    {port:4d} [{pend}/0/  -   ]: {ent}")
    return lines


def dump_g(m: Machine, rng: random.Random) -> list[str]:
    lines = [
        "gnttab_usage_print_all [ key 'g' pressed",
        "      -------- active --------       -------- shared --------",
        "[ref] localdom mfn      pin          localdom gmfn     flags",
    ]
    for d in m.domains:
        lines.append(f"grant-table for remote d{d.domid} (v1)")
        frames = 1 if d.domid == 0 else 2 + rng.randrange(3)
        lines.append(f"  {frames} frames (64 max), 0 maptrack frames (1024 max)")
        if d.domid == 0:
            lines.append("no active grant table entries")
            continue
        for ref in range(8, 8 + 6):
            mfn = rng.randrange(0x40000, 0x400000)
            gmfn = rng.randrange(0x1000, 0x40000)
            lines.append(
                f"[{ref:4x}]        0 0x{mfn:06x} 0x{2 if ref % 2 else 1:08x}"
                f"          0 0x{gmfn:06x} 0x19"
            )
    lines.append("gnttab_usage_print_all ] done")
    return lines


def dump_r(m: Machine, rng: random.Random, now: int) -> list[str]:
    all_cpus = pbl(range(m.pcpus))
    lines = [
        "sched_smt_power_savings: disabled",
        f"NOW={now}",
        f"Online Cpus: {all_cpus}",
        "Cpupool 0:",
        f"Cpus: {all_cpus}",
        "Scheduling granularity: cpu, 1 CPU per sched-resource",
        "Scheduler: SMP Credit Scheduler rev2 (credit2)",
        f"Active queues: {m.nodes}",
        "\tdefault-weight     = 256",
    ]
    for n in range(m.nodes):
        cpus = m.node_cpus(n)
        load = 2000 + rng.randrange(2000)
        lines += [
            f"Runqueue {n}:",
            f"\tncpus              = {len(cpus)}",
            f"\tcpus               = {pbl(cpus)}",
            "\tmax_weight         = 256",
            "\tpick_bias          = 0",
            "\tinstload           = 0",
            f"\taveload            = {load} (~{max(1, load * 100 // 262144)}%)",
            f"\tidlers: {_bitmap(cpus, m.pcpus)}",
            f"\ttickled: {_bitmap([], m.pcpus)}",
            f"\tfully idle cores: {_bitmap(cpus, m.pcpus)}",
        ]
    lines.append("Domain info:")
    counter = 0
    for d in m.domains:
        lines.append(f"\tDomain: {d.domid} w 256 c 0 v {d.vcpus}")
        for v in range(d.vcpus):
            counter += 1
            load = rng.randrange(200, 4000)
            lines.append(
                f"\t{counter:3d}: [{d.domid}.{v}] flags=0 cpu={d.vcpu_cpu[v]} "
                f"credit={rng.randrange(-500000, 10500000)} [w=256] load={load} "
                f"(~{max(1, load * 100 // 262144)}%)"
            )
    for n in range(m.nodes):
        cpus = m.node_cpus(n)
        lines.append(f"Runqueue {n}:")
        for c in cpus:
            lines.append(f"CPU[{c:02d}] runq={n}, sibling={{{c}}}, core={{{pbl(cpus)}}}")
        lines.append("RUNQ:")
    lines.append("CPUs info:")
    for c in range(m.pcpus):
        lines.append(f"CPU[{c:02d}] current=d[IDLE]v{c}, curr=d[IDLE]v{c}, prev=NULL")
    return lines


_TIMER_FNS = (
    ("ffff82d0405a5fc0", "arch/x86/time.c#time_calibration", "0000000000000000"),
    ("ffff82d0405a5f20", "arch/x86/time.c#plt_overflow", "0000000000000000"),
    ("ffff82d04058b260", "arch/x86/cpu/mcheck/amd_nonfatal.c#mce_amd_work_fn", "0" * 16),
)


def dump_a(m: Machine, rng: random.Random) -> list[str]:
    lines = ["Dumping timer queues:"]
    for c in range(m.pcpus):
        lines.append(f"CPU{c:02d}:")
        if c == 0:
            for addr, fn, arg in _TIMER_FNS:
                lines.append(
                    f"  ex={rng.randrange(100000, 20000000):12d}us timer={addr} cb={fn}({arg})"
                )
        if rng.random() < 0.6:
            vcpu = 0xFFFF83003FD60000 + c * 0x6000
            lines.append(
                f"  ex={rng.randrange(1000, 1000000):12d}us timer={vcpu + 0x68:016x} "
                f"cb=common/sched/core.c#vcpu_singleshot_timer_fn({vcpu:016x})"
            )
    return lines


def dump_c(m: Machine, rng: random.Random, now: int) -> list[str]:
    lines = [
        "'c' pressed -> printing ACPI Cx structures",
        "max state: C1",
        "max sub-state: unlimited",
    ]
    for c in range(m.pcpus):
        lines += [
            f"==cpu{c}==",
            "    C1:\ttype[C1] latency[  0] usage[       0] method[ HALT] duration[0]",
            f"    C0:\tusage[       0] duration[{now - rng.randrange(1000000)}]",
            "PC2[0] PC3[0] PC6[0] PC7[0]",
            "CC3[0] CC6[0] CC7[0]",
        ]
    return lines


def dump_n(m: Machine, rng: random.Random, dom0_vcpus: int) -> list[str]:
    lines = ["CPU\tNMI"]
    for c in range(m.pcpus):
        lines.append(f"{c:3d}\t{2 if c == 0 else 0:3d}")
    for v in range(dom0_vcpus):
        lines.append(f"d0v{v}: NMI neither pending nor masked")
    return lines


def dump_t(count: int, rng: random.Random, acc: list[int]) -> list[str]:
    """'t' keeps running statistics across presses, like read_clocks' statics."""
    st = 3950000 + rng.randrange(20000)
    cy = rng.randrange(500, 40000)
    acc[0] = max(acc[0], st)
    acc[1] += st
    acc[2] = max(acc[2], cy)
    acc[3] += cy
    return [
        f"Synced stime skew: max={acc[0]}ns avg={acc[1] // count}ns samples={count} current={st}ns",
        f"Synced cycles skew: max={acc[2]} avg={acc[3] // count} samples={count} current={cy}",
    ]


def _regs_block(rng: random.Random, cpu: int, guest: str | None) -> list[str]:
    r = [_hex16(rng, 0, 1 << 20) for _ in range(16)]
    lines: list[str] = []
    if guest is None:
        lines += [
            f"*** Dumping CPU{cpu} host state: ***",
            f"----[ Xen-{XEN_VERSION}  x86_64  debug=n  Not tainted ]----",
            f"CPU:    {cpu}",
            "RIP:    e008:[<ffff82d0402f9c06>] arch/x86/domain.c#default_idle+0xc6/0xf0",
            "RFLAGS: 0000000000000206   CONTEXT: hypervisor",
        ]
    else:
        lines += [
            f"*** Dumping Dom0 vcpu#{guest} state: ***",
            "RIP:    e033:[<ffffffff81a442b5>]",
            f"RFLAGS: 0000000000000246   EM: 0   CONTEXT: pv guest (d0v{guest})",
        ]
    rsp = f"ffff8300{0x3FFD7E98 - cpu * 0x10000:08x}" if guest is None else "ffffffff82a03db8"
    lines += [
        f"rax: {r[0]}   rbx: {r[1]}   rcx: {r[2]}",
        f"rdx: {r[3]}   rsi: {r[4]}   rdi: {cpu:016x}",
        f"rbp: {cpu:016x}   rsp: {rsp}   r8:  {r[5]}",
        f"r9:  {r[6]}   r10: {r[7]}   r11: {r[8]}",
        f"r12: {r[9]}   r13: 0000000000007fff   r14: {r[10]}",
        f"r15: {r[11]}   cr0: 000000008005003b   cr4: 0000000000000660",
        f"cr3: {rng.randrange(1 << 30) << 12:016x}   cr2: {r[12]}",
        "fsb: 0000000000000000   gsb: ffff88801f000000   gss: 0000000000000000",
        "ds: 0000   es: 0000   fs: 0000   gs: 0000   "
        + (
            "ss: e02b   cs: e033"
            if guest is not None
            else "ss: e010   cs: e008"
            if cpu == 0
            else "ss: 0000   cs: e008"
        ),
    ]
    if guest is None:
        lines += [
            "Xen code around <ffff82d0402f9c06> (arch/x86/domain.c#default_idle+0xc6/0xf0):",
            " 66 66 90 66 66 90 fb f4 <80> a3 04 01 00 00 fe 8b 83 fc 00 00 00 89 f1 66",
            f"Xen stack trace from rsp={rsp}:",
        ]
    else:
        lines.append(f"Guest stack trace from rsp={rsp}:")
    for _ in range(11 if guest is None else 18):
        lines.append("   " + " ".join(f"{rng.randrange(1 << 64):016x}" for _ in range(4)))
    lines.append(f"   {rng.randrange(1 << 36):016x}")
    if guest is None:
        lines += [
            "Xen call trace:",
            "   [<ffff82d0402f9c06>] R arch/x86/domain.c#default_idle+0xc6/0xf0",
            "   [<ffff82d0402fa741>] S arch/x86/domain.c#idle_loop+0xc1/0x130",
            "   [<ffff82d0402fa680>] S arch/x86/domain.c#idle_loop+0/0x130",
            "   [<ffff82d0402fc5a4>] S context_switch+0x1f4/0x910"
            if cpu == 0
            else "   [<ffff82d0402fcd17>] S continue_running+0x57/0x60",
            "",
        ]
    return lines


def dump_d(m: Machine, rng: random.Random) -> list[str]:
    lines = ["'d' pressed -> dumping registers", ""]
    for c in range(m.pcpus):
        lines += _regs_block(rng, c, None)
    return lines


def dump_0(m: Machine, rng: random.Random) -> list[str]:
    lines = ["'0' pressed -> dumping Dom0's registers"]
    for v in range(m.domains[0].vcpus):
        lines += _regs_block(rng, v, str(v))
    return lines


def dump_i(m: Machine) -> list[str]:
    allc = pbl(range(m.pcpus))
    gsi = [
        (0, "f0", "edge", "000", "{0}/{0}", "arch/x86/time.c#timer_interrupt()"),
        (1, "30", "edge", "010", "{0}/{0}", "in-flight=0 d0:  1(---)"),
        (3, "38", "edge", "002", "{0}/{0}", "mapped, unbound"),
        (
            4,
            "f1",
            "edge",
            "000",
            f"{{{allc}}}/{{{allc}}}",
            "drivers/char/ns16550.c#ns16550_interrupt()",
        ),
        (5, "40", "level", "002", f"{{{allc}}}/{{0}}", "mapped, unbound"),
        (6, "48", "edge", "002", f"{{{allc}}}/{{0}}", "mapped, unbound"),
        (7, "50", "edge", "002", f"{{{allc}}}/{{0}}", "mapped, unbound"),
        (8, "58", "edge", "010", "{0}/{0}", "in-flight=0 d0:  8(---)"),
        (9, "60", "level", "010", "{0}/{0}", "in-flight=0 d0:  9(---)"),
        (10, "68", "level", "002", "{0}/{0}", "mapped, unbound"),
        (11, "70", "level", "002", "{0}/{0}", "mapped, unbound"),
        (12, "78", "edge", "010", "{0}/{0}", "in-flight=0 d0: 12(---)"),
        (13, "88", "edge", "002", "{0}/{0}", "mapped, unbound"),
        (14, "90", "edge", "002", "{0}/{0}", "mapped, unbound"),
        (15, "98", "edge", "002", "{0}/{0}", "mapped, unbound"),
    ]
    lines = ["IRQ information:"]
    for irq, vec, trig, status, aff, tail in gsi:
        kind = f"IO-APIC-{trig}".ljust(15)
        lines.append(f"   IRQ: {irq:3d} vec:{vec} {kind} status={status} aff:{aff} {tail}")
    lines.append("Direct vector information:")
    for vec, fn in (
        ("0x22", "irq_move_cleanup_interrupt"),
        ("0xf9", "pmu_apic_interrupt"),
        ("0xfa", "apic_timer_interrupt"),
        ("0xfb", "call_function_interrupt"),
        ("0xfc", "event_check_interrupt"),
        ("0xfd", "invalidate_interrupt"),
        ("0xfe", "error_interrupt"),
        ("0xff", "spurious_interrupt"),
    ):
        lines.append(f"   {vec} -> {fn}()")
    lines.append("IO-APIC interrupt information:")
    for irq, vec, trig, _s, _a, tail in gsi:
        pin = 2 if irq == 0 else irq
        v = int(vec, 16)
        mask = 1 if "unbound" in tail and irq not in (3, 13, 14, 15) else 0
        lines.append(f"    IRQ {irq:2d} Vec{v:3d}:")
        lines.append(
            f"      Apic 0x00, Pin {pin:2d}: vec={vec} delivery=LoPri dest=L status=0 "
            f"polarity=0 irr=0 trig={'L' if trig == 'level' else 'E'} mask={mask} "
            f"dest_id:{'03' if irq == 4 else '01'}"
        )
    return lines


def dump_z(m: Machine) -> list[str]:
    lines = [
        "number of MP IRQ sources: 15.",
        "number of IO-APIC #0 registers: 24.",
        "testing the IO APIC.......................",
        "IO APIC #0......",
        ".... register #00: 00000000",
        ".......    : physical APIC id: 00",
        ".......    : Delivery Type: 0",
        ".......    : LTS          : 0",
        ".... register #01: 00170020",
        ".......     : max redirection entries: 0017",
        ".......     : PRQ implemented: 0",
        ".......     : IO APIC version: 0020",
        ".... register #02: 00000000",
        ".......     : arbitration: 00",
        ".... IRQ redirection table:",
        " NR Dst Msk Trg IRR Pol Stat DstM DelM Vec",
    ]
    vecs = {0: "00", 1: "30", 2: "F0", 3: "38", 4: "F1", 5: "40", 6: "48", 7: "50"}
    vecs.update({8: "58", 9: "60", 10: "68", 11: "70", 12: "78", 13: "88", 14: "90", 15: "98"})
    for pin in range(24):
        vec = vecs.get(pin, "00")
        used = pin in vecs and pin != 0
        msk = 1 if pin in (0, 5, 6, 7, 10, 11) or not used else 0
        trg = 1 if pin in (5, 9, 10, 11) else 0
        dst = "03" if pin == 4 else ("01" if used else "00")
        dm = "1" if used else "0"
        lines.append(f" {pin:02x}  {dst}  {msk}   {trg}   0   0   0    {dm}    {dm}    {vec}")
    lines.append("Using vector-based indexing")
    lines.append("IRQ to pin mappings:")
    for pin, vec in sorted(vecs.items()):
        if pin == 0:
            continue
        irq_pin = 2 if pin == 2 else pin
        lines.append(f"IRQ{int(vec, 16)} -> 0:{irq_pin}")
    lines.append(".................................... done.")
    return lines


def dump_Q(m: Machine) -> list[str]:
    lines = ["==== PCI devices ====", "==== segment 0000 ===="]
    for dev in ("0000:00:02.0", "0000:00:01.3", "0000:00:01.1", "0000:00:01.0", "0000:00:00.0"):
        lines.append(f"{dev} - d0 - node -1 ")
    return lines


def dump_simple(key: str, m: Machine) -> list[str]:
    """The short fixed dumps whose shape does not depend on the domains."""
    table: dict[str, list[str]] = {
        "I": ["'I' pressed -> dumping HVM irq info"],
        "M": ["MSI information:"],
        "s": [
            "TSC not marked as either constant or reliable, warp=0 (count=1)",
            "No domains have emulated TSC",
        ],
        "v": ["*********** VMCB Areas **************", "**************************************"],
        "x": ["'x' pressed - Dumping all livepatch patches", f"build-id: {BUILD_ID}"],
    }
    return table[key]


DumpFn = Callable[[], list[str]]


def _bitmap(cpus: list[int], nbits: int) -> str:
    """A CPU set as Xen's ``%*pb`` prints it: hex, 32-bit groups, most significant first."""
    mask = sum(1 << c for c in cpus)
    groups = []
    for start in range(0, max(nbits, 1), 32):
        width = min(32, nbits - start) if nbits > start else 32
        groups.append(f"{(mask >> start) & ((1 << width) - 1):0{(width + 3) // 4}x}")
    return ",".join(reversed(groups))
