"""Smaller dumps: ``m`` (page_alloc.c pagealloc_info), ``t`` (keyhandler.c read_clocks),
``e`` (event_channel.c dump_evtchn_info) and ``i`` (x86 irq.c dump_irqs + io_apic.c)."""

from __future__ import annotations

import re
from typing import Any

from solcap.xen.parsers.common import Result, finish, kv, note_shape, rx, start, to_int
from solcap.xen.parsers.text import cpulist

_R = rx

# ----------------------------------------------------------------------------- m
M_HEADER = "Physical memory information:"
M_LINE = _R(r"    (Xen heap|DMA heap|Dom heap|heap\[(\d+)\]): (\d+)kB free")


def parse_m(data: bytes) -> Result:
    """``xen_heap_kb``, ``dma_heap_kb`` (None unless printed), ``zones``: ``[{zone,
    free_kb}]``, ``dom_heap_kb`` (the last line; its absence means truncated)."""
    result, lines = start("m", data)
    out: dict[str, Any] = {"xen_heap_kb": None, "dma_heap_kb": None, "zones": []}
    out["dom_heap_kb"] = None
    for line in lines.xen:
        m = M_LINE.fullmatch(line)
        if line == M_HEADER:
            continue
        if not m:
            result["unparsed"].append(line)
        elif m.group(2) is not None:
            out["zones"].append({"zone": int(m.group(2)), "free_kb": int(m.group(3))})
        else:
            out[m.group(1).split()[0].lower() + "_heap_kb"] = int(m.group(3))
    result.update(out)
    if out["dom_heap_kb"] is None:
        result["truncated"] = True
    return finish(result, lines)


# ----------------------------------------------------------------------------- t
T_STIME = _R(r"Synced stime skew: max=(\d+)ns avg=(\d+)ns samples=(\d+) current=(\d+)ns")
T_CYCLES = _R(r"Synced cycles skew: max=(\d+) avg=(\d+) samples=(\d+) current=(\d+)")


def parse_t(data: bytes) -> Result:
    """``stime_skew_ns`` and ``cycles_skew``: ``{max, avg, samples, current}`` (Xen keeps
    max/avg across presses), None if missing (then truncated)."""
    result, lines = start("t", data)
    found: dict[str, Any] = {"stime_skew_ns": None, "cycles_skew": None}
    for line in lines.xen:
        for name, pattern in (("stime_skew_ns", T_STIME), ("cycles_skew", T_CYCLES)):
            if m := pattern.fullmatch(line):
                found[name] = dict(
                    zip(("max", "avg", "samples", "current"), map(int, m.groups()), strict=True)
                )
                break
        else:
            result["unparsed"].append(line)
    result.update(found)
    if found["cycles_skew"] is None:
        result["truncated"] = True
    return finish(result, lines)


# ----------------------------------------------------------------------------- e
E_HEADER = _R(r"'.' pressed -> dumping event-channel info")
E_DOMAIN = _R(r"Event channel information for domain (-?\d+):")
E_POLL = _R(r"Polling vCPUs: \{(.*)\}")
E_COLS = "    port [p/m/s]"
E_PORT = _R(r" *(\d+) \[(\d)/(\d)/(.*)\]: s=(\d+) n=(-?\d+) x=(\d+)(.*)")
ECS = {0: "free", 1: "reserved", 2: "unbound", 3: "interdomain", 4: "pirq", 5: "virq", 6: "ipi"}


def parse_e(data: bytes) -> Result:
    """``domains``: ``[{domid, polling_vcpus, channels: [{port, pending, masked, port_state,
    state, state_name, notify_vcpu, xen_consumer, remote_domid?, remote_port?, pirq?, irq?,
    virq?, ssid?}], by_state: {state_name: count}}]``."""
    result, lines = start("e", data)
    domains: list[dict[str, Any]] = []
    dom: dict[str, Any] | None = None
    for line in lines.xen:
        m: re.Match[str] | None
        if E_HEADER.fullmatch(line) or line == E_COLS:
            continue
        if m := E_DOMAIN.fullmatch(line):
            dom = {"domid": int(m.group(1)), "polling_vcpus": None, "channels": []}
            domains.append(dom)
        elif dom is not None and (m := E_POLL.fullmatch(line)):
            dom["polling_vcpus"] = cpulist(m.group(1))
        elif dom is not None and (m := E_PORT.fullmatch(line)):
            state = int(m.group(5))
            chan: dict[str, Any] = {
                "port": int(m.group(1)),
                "pending": int(m.group(2)),
                "masked": int(m.group(3)),
                "port_state": m.group(4).strip(),
                "state": state,
                "state_name": ECS.get(state, str(state)),
                "notify_vcpu": int(m.group(6)),
                "xen_consumer": int(m.group(7)),
            }
            names = {"d": "remote_domid", "p": "pirq" if state == 4 else "remote_port"}
            names.update(i="irq", v="virq", Z="ssid")
            for k, v in kv(m.group(8)).items():
                n = to_int(v)
                chan[names.get(k, k)] = v if n is None else n
            dom["channels"].append(chan)
        else:
            result["unparsed"].append(line)
    for d in domains:
        counts: dict[str, int] = {}
        for c in d["channels"]:
            counts[c["state_name"]] = counts.get(c["state_name"], 0) + 1
        d["by_state"] = counts
    result["domains"] = domains
    return finish(result, lines)


# ----------------------------------------------------------------------------- i
I_HEADER = "IRQ information:"
I_IRQ = _R(
    r"   IRQ: *(\d+) vec:([0-9a-f]+) (\S+) +status=([0-9a-f]+) aff:\{(.*?)\}/\{(.*?)\} ?(.*)"
)
I_GUEST = _R(r"d(\d+): *(-?\d+)\((.)(.)(.)\)")
I_INFLIGHT = _R(r"in-flight=(\d+) ?(.*)")
I_DIRECT_HDR = "Direct vector information:"
I_DIRECT = _R(r"   (0x[0-9a-f]+) -> (.*)")
I_IOAPIC_HDR = "IO-APIC interrupt information:"
I_IOAPIC_IRQ = _R(r"    IRQ *(\d+) Vec *(\d+):")
I_IOAPIC_PIN = _R(r"      Apic (0x[0-9a-f]+), Pin *(\d+): (.*)")


def _irq_tail(entry: dict[str, Any], tail: str) -> None:
    ssid = re.match(r"Z=(\S+) +", tail)
    if ssid:
        entry["ssid"] = ssid.group(1)
        tail = tail[ssid.end() :]
    entry["in_flight"] = None
    entry["guests"] = []
    entry["handler"] = None
    entry["mapped_unbound"] = tail == "mapped, unbound"
    if m := I_INFLIGHT.match(tail):
        entry["in_flight"] = int(m.group(1))
        for g in I_GUEST.finditer(m.group(2)):
            entry["guests"].append(
                {
                    "domid": int(g.group(1)),
                    "pirq": int(g.group(2)),
                    "pending": {"-": False, "P": True}.get(g.group(3)),
                    "masked": {"-": False, "M": True}.get(g.group(4)),
                    "pirq_masked": g.group(5) == "M",
                }
            )
    elif not entry["mapped_unbound"]:
        entry["handler"] = tail or None


def parse_i(data: bytes) -> Result:
    """``irqs``: ``[{irq, vector, type, status, affinity, cpu_mask, in_flight, guests:
    [{domid, pirq, pending, masked, pirq_masked}], handler, mapped_unbound, ssid?}]``;
    ``direct_vectors``: ``[{vector, handler}]``; ``ioapic``: ``[{irq, vector, pins: [{apic,
    pin, fields}]}]``. Truncated if the direct-vector section never started."""
    result, lines = start("i", data)
    irqs: list[dict[str, Any]] = []
    direct: list[dict[str, Any]] = []
    ioapic: list[dict[str, Any]] = []
    seen_direct = False
    for line in lines.xen:
        m: re.Match[str] | None
        if line in (I_HEADER, I_IOAPIC_HDR):
            continue
        if line == I_DIRECT_HDR:
            seen_direct = True
        elif m := I_IRQ.fullmatch(line):
            entry: dict[str, Any] = {
                "irq": int(m.group(1)),
                "vector": int(m.group(2), 16),
                "type": m.group(3),
                "status": int(m.group(4), 16),
                "affinity": cpulist(m.group(5)),
                "cpu_mask": cpulist(m.group(6)),
            }
            _irq_tail(entry, m.group(7).strip())
            irqs.append(entry)
        elif m := I_DIRECT.fullmatch(line):
            direct.append({"vector": int(m.group(1), 16), "handler": m.group(2)})
        elif m := I_IOAPIC_IRQ.fullmatch(line):
            ioapic.append({"irq": int(m.group(1)), "vector": int(m.group(2)), "pins": []})
        elif ioapic and (m := I_IOAPIC_PIN.fullmatch(line)):
            fields = kv(m.group(3))
            fields.update(re.findall(r"(dest_id):(\S+)", m.group(3)))
            ioapic[-1]["pins"].append(
                {"apic": int(m.group(1), 16), "pin": int(m.group(2)), "fields": fields}
            )
        else:
            result["unparsed"].append(line)
    result.update(irqs=irqs, direct_vectors=direct, ioapic=ioapic)
    if irqs or direct or ioapic:
        # dump_irqs and the IO-APIC dump are x86's (arch/x86/irq.c, io_apic.c).
        note_shape(result, arch="x86_64")
    if irqs and not seen_direct:
        result["truncated"] = True
    return finish(result, lines)
