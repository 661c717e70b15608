"""Key ``u``: NUMA nodes, CPU→node map and per-domain memory per node (x86 numa.c dump_numa).

No end marker, but the shape is checkable: every domain block has one ``Node`` line per online
node (as many as the ``NODEn start->`` lines), and a vNUMA block announces its vnode count.
"""

from __future__ import annotations

import re
from typing import Any

from solcap.xen.parsers.common import Result, finish, rx, start

_R = rx
HEADER = _R(r"'.' pressed -> dumping numa info \(now = (-?\d+)\)")
NODE = _R(r"NODE(\d+) start->(\d+) size->(\d+) free->(\d+)")
PHYS = _R(r"phys_to_nid\((\S+)\) -> (-?\d+) should be (\d+)")
CPUS = _R(r"CPU(\d+)(?:\.\.\.(\d+))? -> NODE(-?\d+)")
LOCATION = "Memory location of each domain:"
DOMAIN = _R(r"Domain (\d+) \(total: (\d+)\):")
DOMNODE = _R(r"    Node (\d+): (\d+)")
VNUMA = _R(r"     (\d+) vnodes, (\d+) vcpus, guest physical layout:")
VNODE = _R(r" +(\d+): pnode +(\?\?\?|\d+), vcpus ?(.*)")
VRANGE = _R(r" +([0-9a-f]{16}) - ([0-9a-f]{16})")


def _vcpus(text: str) -> list[int] | None:
    """numa.c prints vCPU runs space-separated: ``0-1 4 6-7``."""
    out: list[int] = []
    for tok in text.split():
        lo, sep, hi = tok.partition("-")
        if not lo.isdigit() or (sep and not hi.isdigit()) or len(lo) > 9 or len(hi) > 9:
            return None
        out.extend(range(int(lo), (int(hi) if sep else int(lo)) + 1))
    return out


def parse_u(data: bytes) -> Result:
    """Result fields: ``now``; ``nodes``: ``[{node, start_pfn, size_pages, free_pages}]``;
    ``phys_to_nid_errors``; ``cpu_ranges``: ``[{first, last, node}]``; ``cpu_to_node``:
    ``{"<cpu>": node}``; ``domains``: ``[{domid, total_pages, pages_per_node: {"<node>": n},
    vnuma}]`` where ``vnuma`` is None or ``{nr_vnodes, nr_vcpus, vnodes: [{vnode, pnode (None
    for ???), vcpus, ranges: [[start, end]]}]}`` (addresses as ints)."""
    result, lines = start("u", data)
    unparsed: list[str] = result["unparsed"]
    now: int | None = None
    nodes: list[dict[str, int]] = []
    phys: list[dict[str, Any]] = []
    ranges: list[dict[str, int]] = []
    domains: list[dict[str, Any]] = []
    dom: dict[str, Any] | None = None
    vnode: dict[str, Any] | None = None
    located = False
    for line in lines.xen:
        m: re.Match[str] | None
        if m := HEADER.fullmatch(line):
            now = int(m.group(1))
        elif m := NODE.fullmatch(line):
            node, start_pfn, size, free = (int(g) for g in m.groups())
            nodes.append(
                {"node": node, "start_pfn": start_pfn, "size_pages": size, "free_pages": free}
            )
        elif m := PHYS.fullmatch(line):
            phys.append({"paddr": m.group(1), "nid": int(m.group(2)), "expected": int(m.group(3))})
        elif m := CPUS.fullmatch(line):
            first = int(m.group(1))
            last = int(m.group(2)) if m.group(2) else first
            ranges.append({"first": first, "last": last, "node": int(m.group(3))})
        elif line == LOCATION:
            located = True
        elif m := DOMAIN.fullmatch(line):
            dom = {
                "domid": int(m.group(1)),
                "total_pages": int(m.group(2)),
                "pages_per_node": {},
                "vnuma": None,
            }
            domains.append(dom)
            vnode = None
        elif dom is not None and (m := DOMNODE.fullmatch(line)):
            dom["pages_per_node"][m.group(1)] = int(m.group(2))
        elif dom is not None and (m := VNUMA.fullmatch(line)):
            dom["vnuma"] = {"nr_vnodes": int(m.group(1)), "nr_vcpus": int(m.group(2)), "vnodes": []}
            vnode = None
        elif dom is not None and dom["vnuma"] is not None and (m := VNODE.fullmatch(line)):
            pnode = None if m.group(2) == "???" else int(m.group(2))
            vnode = {
                "vnode": int(m.group(1)),
                "pnode": pnode,
                "vcpus": _vcpus(m.group(3)),
                "ranges": [],
            }
            dom["vnuma"]["vnodes"].append(vnode)
        elif vnode is not None and (m := VRANGE.fullmatch(line)):
            vnode["ranges"].append([int(m.group(1), 16), int(m.group(2), 16)])
        else:
            unparsed.append(line)
    cpu_to_node = {
        str(c): r["node"] for r in ranges for c in range(r["first"], min(r["last"], 1 << 16) + 1)
    }
    result.update(
        now=now,
        nodes=nodes,
        phys_to_nid_errors=phys,
        cpu_ranges=ranges,
        cpu_to_node=cpu_to_node,
        domains=domains,
    )
    if now is not None and not located:
        result["truncated"] = True
    if domains and nodes and len(domains[-1]["pages_per_node"]) < len(nodes):
        result["truncated"] = True
    last_vnuma = domains[-1]["vnuma"] if domains else None
    if last_vnuma is not None and len(last_vnuma["vnodes"]) < last_vnuma["nr_vnodes"]:
        result["truncated"] = True
    return finish(result, lines)
