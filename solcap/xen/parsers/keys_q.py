"""Key ``q``: domains and their vCPUs (keyhandler.c dump_domains, Xen 4.17).

Per domain, Xen prints: general information (refcnt/dying/pause_count; nr_pages, xenheap,
optional shared/paged pages, dirty_cpus, max_pages; handle, vm_assist; watchdogs), paging
assistance (HVM), rangesets, memory pages, NODE affinity, then per scheduling unit its hard/soft
affinity and per vCPU its state, pause counts, paging mode and periodic timer. After all
domains: one ``Notifying guest d:v (virq 1, port P)`` line per vCPU, then ``Shared frames``,
which is the dump's only recognisable end.
"""

from __future__ import annotations

import re
from typing import Any

from solcap.xen.parsers.common import Result, finish, kv, note_shape, rx, start, to_int
from solcap.xen.parsers.text import cpulist

_R = rx
HEADER = _R(r"'.' pressed -> dumping domain info \(now = (-?\d+)\)")
GENERAL = _R(r"General information for domain (\d+):")
REFCNT = _R(r"    refcnt=(-?\d+) dying=(\d+) pause_count=(-?\d+)")
PAGES = _R(r"    nr_pages=\d+ .*max_pages=\d+")
HANDLE = _R(r"    handle=([0-9a-f-]{36}) vm_assist=([0-9a-f]+)")
WATCHDOG = _R(r"    watchdog (\d+) expires in (-?\d+) seconds")
PAGING = _R(r"    paging assistance: ?(.*)")
RANGESETS = _R(r"Rangesets belonging to domain (\d+):")
RANGESET = _R(r"    (\S.*?) *\{(.*)\}")
MEMPAGES = _R(r"Memory pages belonging to domain (\d+):")
PAGE = _R(r"    (DomPage|XenPage|ExtraPage) ([0-9a-fx]+): caf=([0-9a-f]+), taf=([0-9a-f]+)")
POD = _R(r"    PoD entries=(-?\d+) cachesize=(-?\d+)")
NODE_AFF = _R(r"NODE affinity for domain (\d+): \[(.*)\]")
VCPU_HDR = _R(r"VCPU information and callbacks for domain (\d+):")
UNIT = _R(r"  UNIT(\d+) affinities: hard=\{(.*)\} soft=\{(.*)\}")
VCPU = _R(
    r"    VCPU(\d+): CPU(\d+) \[has=([TF])\] poll=(-?\d+) "
    r"upcall_pend=([0-9a-f]+) upcall_mask=([0-9a-f]+)(?: *dirty_cpu=(\d+))?"
)
VPAUSE = _R(r"    pause_count=(-?\d+) pause_flags=([0-9a-f]+)")
NO_TIMER = "No periodic timer"
TIMER = _R(r"(-?\d+) Hz periodic timer \(period (-?\d+) ms\)")
NOTIFY = _R(r"Notifying guest (\d+):(\d+) \(virq (\d+), port (-?\d+)\)")
SHARED = _R(r"Shared frames (\d+) -- Saved frames (\d+)")
# Up to 4.12 affinity was per vCPU: "dirty_cpus={…}" ends the VCPU line, then the affinities
# ("cpu_affinity=" up to 4.4).
OLD_VCPU = _R(
    r"    VCPU(\d+): CPU(\d+) \[has=([TF])\] poll=(-?\d+) "
    r"upcall_pend=([0-9a-f]+) upcall_mask=([0-9a-f]+) *dirty_cpus=\{(.*)\}"
)
OLD_AFF = _R(r"    cpu_hard_affinity=\{(.*)\} cpu_soft_affinity=\{(.*)\}")
OLDEST_AFF = _R(r"    cpu_affinity=\{(.*)\}")
# arm (p2m_dump_info, vgic_vcpu_dump / gic_dump_info): no paging, no shared-frames line.
P2M = _R(r"p2m mappings for domain (\d+) \(vmid (\d+)\):")
P2M_SIZE = _R(r"  (1G|2M|4K) mappings: +(\d+)(?: \(shattered (\d+)\))?")
GICH = _R(r"GICH_LRs \(vcpu (\d+)\) mask=([0-9a-f]+)")
VCPU_LR = _R(r"   VCPU_LR\[(\d+)\]=([0-9a-f]+)")
INFLIGHT = _R(r"(Inflight|Pending) irq=(\d+)(?: lr=(\d+))?")


def _new_domain(domid: int) -> dict[str, Any]:
    return {
        "domid": domid,
        "refcnt": None,
        "dying": None,
        "pause_count": None,
        "nr_pages": None,
        "xenheap_pages": None,
        "shared_pages": None,
        "paged_pages": None,
        "dirty_cpus": None,
        "max_pages": None,
        "handle": None,
        "vm_assist": None,
        "watchdogs": [],
        "paging_assistance": None,
        "rangesets": {},
        "page_list_too_long": False,
        "pages": [],
        "pod": None,
        "node_affinity": None,
        "units": [],
        "vcpus": [],
        "p2m": None,
    }


def _pages_line(dom: dict[str, Any], line: str) -> bool:
    fields = kv(line)
    for name in ("nr_pages", "xenheap_pages", "shared_pages", "paged_pages", "max_pages"):
        if name in fields:
            dom[name] = to_int(fields[name])
    dirty = fields.get("dirty_cpus", "")
    dom["dirty_cpus"] = cpulist(dirty.strip("{}")) if dirty.startswith("{") else None
    return dom["nr_pages"] is not None


def _vcpu_line(m: re.Match[str], unit: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "vcpu": int(m.group(1)),
        "processor": int(m.group(2)),
        "running": m.group(3) == "T",
        "poll": int(m.group(4)),
        "upcall_pend": int(m.group(5), 16),
        "upcall_mask": int(m.group(6), 16),
        "dirty_cpu": to_int(m.group(7)),
        "unit": unit["unit"] if unit else None,
        "cpu_hard_affinity": unit["hard"] if unit else None,
        "cpu_soft_affinity": unit["soft"] if unit else None,
        "pause_count": None,
        "pause_flags": None,
        "paging_assistance": None,
        "periodic_timer": None,
        "debug_virq_port": None,
        "gic": None,
    }


def parse_q(data: bytes) -> Result:
    """Result fields: ``now`` (ns, None without the header line), ``domains`` (list, in dump
    order; each with the fields of :func:`_new_domain`, ``units`` as ``{unit, hard, soft}`` and
    ``vcpus`` as in :func:`_vcpu_line`), ``notifications`` (``{domid, vcpu, virq, port}``, also
    copied into each vCPU's ``debug_virq_port``), ``shared_frames``/``saved_frames``.
    ``truncated`` is also set when the closing ``Shared frames`` line never came (x86).

    Variants: up to 4.12 each vCPU carries its own affinities (``vcpu-affinities``; the vCPU
    gets ``dirty_cpus`` and ``unit`` None); arm adds ``p2m`` per domain (``{vmid, mappings:
    {1G|2M|4K: {count, shattered}}}``) and ``gic`` per vCPU (``{lr_mask, lrs, inflight:
    [{irq, lr}], pending}``) and has no shared-frames line."""
    result, lines = start("q", data)
    unparsed: list[str] = result["unparsed"]
    domains: list[dict[str, Any]] = []
    notifications: list[dict[str, int]] = []
    now: int | None = None
    shared: tuple[int, int] | None = None
    dom: dict[str, Any] | None = None
    unit: dict[str, Any] | None = None
    vcpu: dict[str, Any] | None = None
    section = ""
    for line in lines.xen:
        m: re.Match[str] | None
        if m := HEADER.fullmatch(line):
            now = int(m.group(1))
        elif m := GENERAL.fullmatch(line):
            dom = _new_domain(int(m.group(1)))
            domains.append(dom)
            unit = vcpu = None
            section = "general"
        elif dom is None:
            if m := NOTIFY.fullmatch(line):
                notifications.append(_notify(m))
            elif m := SHARED.fullmatch(line):
                shared = (int(m.group(1)), int(m.group(2)))
            else:
                unparsed.append(line)
        elif (m := REFCNT.fullmatch(line)) and section == "general":
            dom["refcnt"], dom["dying"], dom["pause_count"] = map(int, m.groups())
        elif PAGES.fullmatch(line) and section == "general":
            if not _pages_line(dom, line):
                unparsed.append(line)
        elif (m := HANDLE.fullmatch(line)) and section == "general":
            dom["handle"], dom["vm_assist"] = m.group(1), m.group(2)
        elif (m := WATCHDOG.fullmatch(line)) and section == "general":
            dom["watchdogs"].append({"id": int(m.group(1)), "expires_s": int(m.group(2))})
        elif m := PAGING.fullmatch(line):
            note_shape(result, arch="x86_64")
            if vcpu is not None:
                vcpu["paging_assistance"] = m.group(1).strip()
            else:
                dom["paging_assistance"] = m.group(1).split()
        elif RANGESETS.fullmatch(line):
            section = "rangesets"
        elif section == "rangesets" and (m := RANGESET.fullmatch(line)):
            ranges = [r.strip() for r in m.group(2).split(",") if r.strip()]
            dom["rangesets"][m.group(1).strip()] = ranges
        elif section == "rangesets" and line == "    None":
            pass
        elif MEMPAGES.fullmatch(line):
            section = "pages"
        elif section == "pages" and line == "    DomPage list too long to display":
            dom["page_list_too_long"] = True
        elif section == "pages" and (m := PAGE.fullmatch(line)):
            kind, mfn, caf, taf = m.groups()
            dom["pages"].append({"kind": kind, "mfn": mfn, "caf": caf, "taf": taf})
        elif section == "pages" and (m := POD.fullmatch(line)):
            dom["pod"] = {"entries": int(m.group(1)), "cachesize": int(m.group(2))}
        elif m := NODE_AFF.fullmatch(line):
            dom["node_affinity"] = cpulist(m.group(2))
            section = "node"
        elif VCPU_HDR.fullmatch(line):
            section = "vcpus"
        elif section == "vcpus" and (m := UNIT.fullmatch(line)):
            unit = {
                "unit": int(m.group(1)),
                "hard": cpulist(m.group(2)),
                "soft": cpulist(m.group(3)),
            }
            dom["units"].append(unit)
            vcpu = None
        elif section == "vcpus" and (m := VCPU.fullmatch(line)):
            vcpu = _vcpu_line(m, unit)
            dom["vcpus"].append(vcpu)
            note_shape(result, "unit-affinities" if unit else None, xen=">=4.13" if unit else None)
        elif section == "vcpus" and (m := OLD_VCPU.fullmatch(line)):
            vcpu = _vcpu_line(m, None)
            vcpu["dirty_cpus"] = cpulist(m.group(7))
            dom["vcpus"].append(vcpu)
            note_shape(result, "vcpu-affinities", xen="<=4.12")
        elif vcpu is not None and (m := OLD_AFF.fullmatch(line)):
            vcpu["cpu_hard_affinity"] = cpulist(m.group(1))
            vcpu["cpu_soft_affinity"] = cpulist(m.group(2))
        elif vcpu is not None and (m := OLDEST_AFF.fullmatch(line)):
            vcpu["cpu_hard_affinity"] = cpulist(m.group(1))
            note_shape(result, "cpu-affinity", xen="<=4.4")
        elif m := P2M.fullmatch(line):
            dom["p2m"] = {"vmid": int(m.group(2)), "mappings": {}}
            note_shape(result, "arm-p2m", arch="arm")
        elif dom["p2m"] is not None and (m := P2M_SIZE.fullmatch(line)):
            dom["p2m"]["mappings"][m.group(1)] = {
                "count": int(m.group(2)),
                "shattered": to_int(m.group(3)),
            }
        elif vcpu is not None and (m := GICH.fullmatch(line)):
            vcpu["gic"] = {"lr_mask": int(m.group(2), 16), "lrs": [], "inflight": [], "pending": []}
            note_shape(result, "arm-gic", arch="arm")
        elif vcpu is not None and vcpu["gic"] and (m := VCPU_LR.fullmatch(line)):
            vcpu["gic"]["lrs"].append(int(m.group(2), 16))
        elif vcpu is not None and vcpu["gic"] and (m := INFLIGHT.fullmatch(line)):
            entry = {"irq": int(m.group(2)), "lr": to_int(m.group(3))}
            vcpu["gic"][m.group(1).lower()].append(entry)
        elif vcpu is not None and (m := VPAUSE.fullmatch(line)):
            vcpu["pause_count"] = int(m.group(1))
            vcpu["pause_flags"] = int(m.group(2), 16)
        elif vcpu is not None and line == NO_TIMER:
            vcpu["periodic_timer"] = None
        elif vcpu is not None and (m := TIMER.fullmatch(line)):
            vcpu["periodic_timer"] = {"hz": int(m.group(1)), "period_ms": int(m.group(2))}
        elif m := NOTIFY.fullmatch(line):
            notifications.append(_notify(m))
            dom = unit = vcpu = None
            section = "notify"
        elif m := SHARED.fullmatch(line):
            shared = (int(m.group(1)), int(m.group(2)))
            dom = unit = vcpu = None
        else:
            unparsed.append(line)
    by_id = {(d["domid"], v["vcpu"]): v for d in domains for v in d["vcpus"]}
    for n in notifications:
        target = by_id.get((n["domid"], n["vcpu"]))
        if target is not None:
            target["debug_virq_port"] = n["port"]
    result["now"] = now
    result["domains"] = domains
    result["notifications"] = notifications
    result["shared_frames"] = shared[0] if shared else None
    result["saved_frames"] = shared[1] if shared else None
    if shared is not None:
        note_shape(result, "shared-frames", arch="x86_64")
    elif result["shape"]["arch"] != "arm":
        # x86 ends with the shared-frames line; arm prints none, so there is no end to miss.
        result["truncated"] = True
    return finish(result, lines)


def _notify(m: re.Match[str]) -> dict[str, int]:
    domid, vcpu, virq, port = (int(g) for g in m.groups())
    return {"domid": domid, "vcpu": vcpu, "virq": virq, "port": port}
