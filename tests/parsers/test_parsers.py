"""Debug-key parsers on real Xen 4.17 captures, samples written from Xen's format strings,
the simulator's output at scale, and hostile input.

Real captures (``data/real-key-*.txt``) are the ground truth: their expected values below were
read off the files by hand, not produced by the parsers.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from solcap.sim.xen import HostSpec, XenHost
from solcap.xen.parsers import PARSER_VERSION, PARSERS, parse_dump
from solcap.xen.parsers.text import bitmap, cpulist, split_lines

DATA = Path(__file__).parent / "data"


def real(key: str) -> bytes:
    return (DATA / f"real-key-{key}.txt").read_bytes()


def written(name: str) -> bytes:
    return (DATA / name).read_bytes()


def check_common(result: dict[str, Any] | None, key: str) -> dict[str, Any]:
    assert result is not None
    assert result["key"] == key
    assert result["parser_version"] == PARSER_VERSION
    assert isinstance(result["unparsed"], list)
    counts = result["lines"]
    assert counts["total"] == sum(counts[k] for k in _CATEGORIES)
    assert counts["unparsed"] == len(result["unparsed"]) or key == "*"
    json.dumps(result)  # JSON-ready, no custom encoder needed
    return result


_CATEGORIES = ("parsed", "unparsed", "foreign", "blank", "spliced")


def physical_lines(data: bytes) -> int:
    """Counted independently of the parsers: pieces between line feeds, a last piece only
    if it holds anything."""
    pieces = data.split(b"\n")
    return len(pieces) - (1 if pieces[-1] == b"" else 0)


# --------------------------------------------------------------------------- text layer
def test_split_lines_separates_dom0_stamps_and_escapes() -> None:
    raw = (
        b"(XEN) [2026-11-25 10:00:00.123] first\r\n"
        b"[   49.75] dom0 line\r\r\n"
        b"solcap-dom0:/# \x1b[6n(XEN) [    1.234567] second\r\n"
        b"(XEN) [00000012abcdef01] \tthird\x07\r\n"
        b"(XEN)\r\n"
        b"(XEN) cut"
    )
    lines = split_lines(raw)
    assert lines.xen == ["first", "second", "\tthird", "", "cut"]
    assert lines.foreign == ["[   49.75] dom0 line", "solcap-dom0:/#"]
    assert lines.timestamps == 3
    assert lines.partial_last


def test_split_lines_partial_dom0_prompt_is_not_truncation() -> None:
    lines = split_lines(b"(XEN) done\r\nroot@xenhost:~# ")
    assert lines.xen == ["done"]
    assert not lines.partial_last


def test_cpulist_and_bitmap() -> None:
    assert cpulist("0-3,6,8-9") == [0, 1, 2, 3, 6, 8, 9]
    assert cpulist("") == []
    assert cpulist("x") is None
    assert cpulist("3-1") is None
    assert bitmap("3") == [0, 1]
    assert bitmap("00000001,80000000") == [31, 32]
    assert bitmap("zz") is None


def test_registry() -> None:
    assert parse_dump("R", b"(XEN) 'R' pressed -> rebooting machine\r\n") is None
    assert set(PARSERS) == set("hqurmietd0aHg*")


# --------------------------------------------------------------------------- h
def test_h_real() -> None:
    r = check_common(parse_dump("h", real("h")), "h")
    handlers = r["handlers"]
    assert isinstance(handlers, dict)
    assert len(handlers) == 31
    assert handlers["q"] == "dump domain (and guest debug) info"
    assert handlers["%"] == "trap to xendbg"
    assert handlers["w"] == "synchronously dump console ring buffer (dmesg)"
    assert r["header"] is True
    assert r["unparsed"] == [] and r["foreign"] == [] and r["truncated"] is False


def test_h_nonprintable_keys_do_not_collide() -> None:
    raw = (
        b"(XEN) 'h' pressed -> showing installed handlers\r\n"
        b"(XEN)  key ' ' (ascii '01') => one\r\n"
        b"(XEN)  key ' ' (ascii '1b') => esc\r\n"
    )
    r = check_common(parse_dump("h", raw), "h")
    assert r["handlers"] == {"\x01": "one", "\x1b": "esc"}


# --------------------------------------------------------------------------- simulator
SPEC = HostSpec(domus=50, numa_nodes=2, pcpus=8, vcpus_per_domu=3, dom0_vcpus=4)


def sim_dump(key: str, spec: HostSpec = SPEC) -> bytes:
    host = XenHost(spec, "com1=38400,8n1 console=com1 dom0_max_vcpus=4", "console=hvc0")
    out = host.debug_key(key)
    assert out
    return out


# --------------------------------------------------------------------------- q
def test_q_real() -> None:
    r = check_common(parse_dump("q", real("q")), "q")
    assert r["now"] == 26315346168
    assert r["unparsed"] == [] and r["truncated"] is False
    (dom,) = r["domains"]
    assert dom["domid"] == 0
    assert (dom["refcnt"], dom["dying"], dom["pause_count"]) == (3, 0, 0)
    assert (dom["nr_pages"], dom["xenheap_pages"], dom["max_pages"]) == (131072, 2, 131072)
    assert dom["shared_pages"] is None and dom["dirty_cpus"] == []
    assert dom["handle"] == "00000000-0000-0000-0000-000000000000"
    assert dom["vm_assist"] == "0000002d"
    assert dom["rangesets"]["Interrupts"] == ["1-23"]
    assert dom["rangesets"]["I/O Memory"] == ["0-fedff", "fef00-fcfffff"]
    assert len(dom["rangesets"]["I/O Ports"]) == 8 and dom["rangesets"]["log-dirty"] == []
    assert dom["page_list_too_long"] is True
    assert [p["mfn"] for p in dom["pages"]] == ["000000000003fd6f", "000000000003fd62"]
    assert dom["node_affinity"] == [0]
    assert dom["units"] == [{"unit": 0, "hard": [0, 1], "soft": [0, 1]}]
    assert dom["vcpus"] == [
        {
            "vcpu": 0,
            "processor": 0,
            "running": False,
            "poll": 0,
            "upcall_pend": 0,
            "upcall_mask": 0,
            "dirty_cpu": None,
            "unit": 0,
            "cpu_hard_affinity": [0, 1],
            "cpu_soft_affinity": [0, 1],
            "pause_count": 0,
            "pause_flags": 1,
            "paging_assistance": None,
            "periodic_timer": None,
            "debug_virq_port": 0,
            "gic": None,
        }
    ]
    assert r["shape"]["xen"] == ">=4.13" and r["shape"]["arch"] == "x86_64"
    assert r["notifications"] == [{"domid": 0, "vcpu": 0, "virq": 1, "port": 0}]
    assert (r["shared_frames"], r["saved_frames"]) == (0, 0)


def test_q_written_three_domains() -> None:
    r = check_common(parse_dump("q", written("written-key-q-3domains.txt")), "q")
    assert r["unparsed"] == [] and r["truncated"] is False
    doms = r["domains"]
    assert [d["domid"] for d in doms] == [0, 1, 2]
    assert [len(d["vcpus"]) for d in doms] == [4, 2, 3]
    d0, d1, d2 = doms
    assert d0["dirty_cpus"] == [0, 3] and d0["node_affinity"] == [0, 1]
    assert [v["running"] for v in d0["vcpus"]] == [True, False, False, False]
    assert [v["dirty_cpu"] for v in d0["vcpus"]] == [0, 3, None, None]
    assert d0["vcpus"][1]["upcall_pend"] == 1
    assert d1["paging_assistance"] == ["hap", "refcounts", "translate", "external"]
    assert d1["pod"] == {"entries": 0, "cachesize": 0}
    assert d1["pages"] == [
        {
            "kind": "ExtraPage",
            "mfn": "0000000000848d21",
            "caf": "c000000000000002",
            "taf": "e400000000000002",
        }
    ]
    assert d1["vcpus"][1]["paging_assistance"] == "hap, 4 levels"
    assert d1["vcpus"][1]["pause_flags"] == 4
    assert d1["vcpus"][0]["cpu_hard_affinity"] == [4, 5, 6, 7]
    assert d2["watchdogs"] == [{"id": 0, "expires_s": 28}]
    assert (d2["pause_count"], d2["max_pages"]) == (1, 262400)
    assert d2["vcpus"][2]["poll"] == 1 and d2["vcpus"][2]["upcall_mask"] == 1
    assert d2["vcpus"][0]["periodic_timer"] == {"hz": 100, "period_ms": 10}
    assert [v["debug_virq_port"] for v in d2["vcpus"]] == [11, 14, 17]
    assert len(r["notifications"]) == 9


def test_q_simulator_counts_match_spec() -> None:
    r = check_common(parse_dump("q", sim_dump("q")), "q")
    assert r["unparsed"] == [] and r["truncated"] is False
    doms = r["domains"]
    assert len(doms) == 1 + SPEC.domus
    assert [d["domid"] for d in doms] == list(range(SPEC.domus + 1))
    assert len(doms[0]["vcpus"]) == 4
    assert all(len(d["vcpus"]) == SPEC.vcpus_per_domu for d in doms[1:])
    assert len(r["notifications"]) == 4 + SPEC.domus * SPEC.vcpus_per_domu
    assert all(v["debug_virq_port"] is not None for d in doms for v in d["vcpus"])


def test_q_truncated_dump_gives_partial_result() -> None:
    raw = written("written-key-q-3domains.txt")
    cut = raw[: raw.index(b"General information for domain 2") + 20]
    r = check_common(parse_dump("q", cut), "q")
    assert r["truncated"] is True
    assert [d["domid"] for d in r["domains"]] == [0, 1]
    # Cut at a line end: no partial line, but the closing line is missing.
    whole = raw[: raw.index(b"(XEN) Notifying guest 1:0")]
    r = check_common(parse_dump("q", whole), "q")
    assert r["truncated"] is True and r["unparsed"] == []
    assert len(r["notifications"]) == 4


def test_q_with_dom0_lines_timestamps_and_noise() -> None:
    out = bytearray()
    dom0 = 0
    for i, line in enumerate(written("written-key-q-3domains.txt").splitlines(keepends=True)):
        stamped = line.replace(b"(XEN) ", b"(XEN) [2026-11-25 10:00:%02d.123] " % (i % 60), 1)
        out += stamped
        if i % 7 == 3:
            out += b"[  %d.000001] dom0 kernel says hello\r\r\n" % i
            dom0 += 1
        if i % 11 == 5:
            out += b"\x1b[6n\x00"
    r = check_common(parse_dump("q", bytes(out)), "q")
    plain = parse_dump("q", written("written-key-q-3domains.txt"))
    assert plain is not None
    assert r["domains"] == plain["domains"]
    assert r["unparsed"] == [] and r["timestamps"] is True
    assert len(r["foreign"]) == dom0 > 10
    assert r["foreign"][0] == "[  3.000001] dom0 kernel says hello"


# --------------------------------------------------------------------------- u
def test_u_real() -> None:
    r = check_common(parse_dump("u", real("u")), "u")
    assert r["unparsed"] == [] and r["truncated"] is False
    assert r["now"] == 28892352502
    assert r["nodes"] == [{"node": 0, "start_pfn": 0, "size_pages": 262112, "free_pages": 127580}]
    assert r["cpu_ranges"] == [{"first": 0, "last": 1, "node": 0}]
    assert r["cpu_to_node"] == {"0": 0, "1": 0}
    assert r["domains"] == [
        {"domid": 0, "total_pages": 131072, "pages_per_node": {"0": 131072}, "vnuma": None}
    ]


def test_u_written_two_nodes_with_vnuma() -> None:
    r = check_common(parse_dump("u", written("written-key-u-2nodes.txt")), "u")
    assert r["unparsed"] == [] and r["truncated"] is False
    assert [n["free_pages"] for n in r["nodes"]] == [2811022, 3406117]
    assert r["cpu_to_node"] == {str(c): c // 4 for c in range(8)}
    d0, d1, d2 = r["domains"]
    assert d0["pages_per_node"] == {"0": 786432, "1": 262144} and d0["vnuma"] is None
    assert d1["vnuma"]["nr_vnodes"] == 2
    assert d1["vnuma"]["vnodes"][1] == {
        "vnode": 1,
        "pnode": 1,
        "vcpus": [1],
        "ranges": [[0x40000000, 0x80000000], [0x100000000, 0x100100000]],
    }
    assert d2["vnuma"]["vnodes"][0]["pnode"] is None
    assert d2["vnuma"]["vnodes"][0]["vcpus"] == [0, 1, 2]


def test_u_simulator_counts_match_spec() -> None:
    r = check_common(parse_dump("u", sim_dump("u")), "u")
    assert r["unparsed"] == [] and r["truncated"] is False
    assert len(r["nodes"]) == SPEC.numa_nodes
    assert len(r["cpu_to_node"]) == SPEC.pcpus
    assert len(r["domains"]) == 1 + SPEC.domus
    for d in r["domains"]:
        assert len(d["pages_per_node"]) == SPEC.numa_nodes
        assert sum(d["pages_per_node"].values()) == d["total_pages"]


def test_u_truncated_in_a_domain_block() -> None:
    raw = written("written-key-u-2nodes.txt")
    cut = raw[: raw.index(b"(XEN)     Node 1: 262144")]
    r = check_common(parse_dump("u", cut), "u")
    assert r["truncated"] is True and r["unparsed"] == []
    assert r["domains"][-1] == {
        "domid": 0,
        "total_pages": 1048576,
        "pages_per_node": {"0": 786432},
        "vnuma": None,
    }
    cut = raw[: raw.index(b"(XEN)          1: pnode   1")]
    r = check_common(parse_dump("u", cut), "u")
    assert r["truncated"] is True


# --------------------------------------------------------------------------- r
IDLE0 = {"domain": "[IDLE]", "vcpu": 0, "idle": True}


def test_r_real() -> None:
    r = check_common(parse_dump("r", real("r")), "r")
    assert r["unparsed"] == [] and r["truncated"] is False
    assert r["smt_power_savings"] is False and r["now"] == 36641542480
    assert r["online_cpus"] == [0, 1] and r["free_cpus"] is None
    (pool,) = r["cpupools"]
    assert pool["id"] == 0 and pool["cpus"] == [0, 1]
    assert pool["granularity"] == {"mode": "cpu", "cpus_per_resource": 1}
    assert pool["scheduler"] == {"name": "SMP Credit Scheduler rev2", "opt_name": "credit2"}
    assert pool["settings"] == {"active_queues": 1, "default-weight": 256}
    (rq,) = pool["runqueues"]
    assert rq["ncpus"] == 2 and rq["cpus"] == [0, 1] and rq["max_weight"] == 256
    assert (rq["aveload"], rq["aveload_pct"]) == (2841, 1)
    # "%*pb" hex bitmaps: "2" is CPU 1 (CPU 0 was busy running the key handler).
    assert rq["idlers"] == [1] and rq["tickled"] == [] and rq["fully_idle_cores"] == [1]
    assert [c["core"] for c in rq["cpu_details"]] == [[0, 1], [0, 1]]
    assert rq["queue"] == []
    assert pool["domains"] == [
        {
            "domid": 0,
            "weight": 256,
            "cap": 0,
            "nr_units": 1,
            "units": [
                {
                    "domid": 0,
                    "unit": 0,
                    "flags": 0,
                    "cpu": 0,
                    "credit": 1815822,
                    "weight": 256,
                    "cap": None,
                    "load": 2847,
                    "load_pct": 1,
                }
            ],
        }
    ]
    assert [c["cpu"] for c in pool["cpus_info"]] == [0, 1]
    assert pool["cpus_info"][0]["current"] == IDLE0 and pool["cpus_info"][0]["prev"] is None


def test_r_written_two_pools_free_cpu() -> None:
    r = check_common(parse_dump("r", written("written-key-r-2pools.txt")), "r")
    assert r["unparsed"] == [] and r["truncated"] is False
    assert r["free_cpus"] == [8] and [c["cpu"] for c in r["free_cpus_info"]] == [8]
    p0, p1 = r["cpupools"]
    assert [rq["cpus"] for rq in p0["runqueues"]] == [[0, 1, 2], [3, 4, 5]]
    assert p0["runqueues"][1]["idlers"] == [4, 5]
    assert p0["runqueues"][0]["aveload_pct"] == 160
    assert p0["runqueues"][0]["cpu_details"][1]["run"]["budget"] == 1850000
    assert [u["domid"] for u in p0["runqueues"][0]["queue"]] == [0]
    assert [(d["domid"], d["cap"], len(d["units"])) for d in p0["domains"]] == [
        (0, 0, 4),
        (1, 50, 2),
    ]
    assert p0["domains"][1]["units"][0]["credit"] == -201784
    assert p0["cpus_info"][1]["current"] == {"domain": 1, "vcpu": 0, "idle": False}
    assert p1["scheduler"]["opt_name"] == "credit"
    assert p1["settings"]["credit balance"] == -12 and p1["settings"]["tslice"] == "30ms"
    assert p1["settings"]["idlers"] == [7]
    assert [u["pri"] for u in p1["active_units"]] == [-1, 0]
    c6, c7 = p1["cpus_info"]
    assert (c6["nr_run"], c6["run"]["unit"], len(c6["runq"])) == (2, 0, 1)
    assert (c7["nr_run"], c7["run"], c7["runq"]) == (1, None, [])


def test_r_simulator_counts_match_spec() -> None:
    r = check_common(parse_dump("r", sim_dump("r")), "r")
    assert r["unparsed"] == [] and r["truncated"] is False
    (pool,) = r["cpupools"]
    assert len(pool["cpus_info"]) == SPEC.pcpus
    assert len(pool["runqueues"]) == SPEC.numa_nodes
    assert len(pool["domains"]) == 1 + SPEC.domus
    assert [d["nr_units"] for d in pool["domains"]] == [len(d["units"]) for d in pool["domains"]]
    assert [d["nr_units"] for d in pool["domains"][1:]] == [SPEC.vcpus_per_domu] * SPEC.domus


def test_r_truncated_before_all_cpus_listed() -> None:
    raw = written("written-key-r-2pools.txt")
    cut = raw[: raw.index(b"(XEN) CPU[07] current=")]
    r = check_common(parse_dump("r", cut), "r")
    assert r["truncated"] is True and r["unparsed"] == []
    cut = raw[: raw.index(b"(XEN) CPU[07] nr_run")]
    assert check_common(parse_dump("r", cut), "r")["truncated"] is True
    cut = raw[: raw.index(b"(XEN) CPUs info:\r\n(XEN) CPU[00]")]
    assert check_common(parse_dump("r", cut), "r")["truncated"] is True


# --------------------------------------------------------------------------- m t e i
def test_m_real_and_truncated() -> None:
    r = check_common(parse_dump("m", real("m")), "m")
    assert r["unparsed"] == [] and r["truncated"] is False
    assert (r["xen_heap_kb"], r["dma_heap_kb"], r["dom_heap_kb"]) == (0, None, 510320)
    assert r["zones"] == [
        {"zone": 15, "free_kb": 64512},
        {"zone": 16, "free_kb": 131072},
        {"zone": 17, "free_kb": 215968},
        {"zone": 18, "free_kb": 98768},
    ]
    assert sum(z["free_kb"] for z in r["zones"]) == r["dom_heap_kb"]
    cut = real("m")[: real("m").index(b"(XEN)     Dom heap")]
    assert check_common(parse_dump("m", cut), "m")["truncated"] is True


def test_t_real() -> None:
    r = check_common(parse_dump("t", real("t")), "t")
    assert r["unparsed"] == [] and r["truncated"] is False
    assert r["stime_skew_ns"] == {"max": 3958777, "avg": 3958777, "samples": 1, "current": 3958777}
    assert r["cycles_skew"] == {"max": 37730, "avg": 37730, "samples": 1, "current": 37730}


def test_e_real_and_simulator() -> None:
    r = check_common(parse_dump("e", real("e")), "e")
    assert r["unparsed"] == [] and r["truncated"] is False
    (d0,) = r["domains"]
    assert d0["polling_vcpus"] == [] and len(d0["channels"]) == 13
    assert d0["by_state"] == {"virq": 4, "ipi": 4, "unbound": 1, "pirq": 4}
    assert d0["channels"][5] == {
        "port": 6,
        "pending": 0,
        "masked": 0,
        "port_state": "-",
        "state": 2,
        "state_name": "unbound",
        "notify_vcpu": 0,
        "xen_consumer": 0,
        "remote_domid": 0,
    }
    assert d0["channels"][7]["pirq"] == 9 and d0["channels"][7]["irq"] == 9
    s = check_common(parse_dump("e", sim_dump("e")), "e")
    assert s["unparsed"] == [] and len(s["domains"]) == 1 + SPEC.domus
    inter = s["domains"][1]["channels"][-1]
    assert inter["state_name"] == "interdomain" and inter["remote_domid"] == 0
    assert isinstance(inter["remote_port"], int)


def test_i_real() -> None:
    r = check_common(parse_dump("i", real("i")), "i")
    assert r["unparsed"] == [] and r["truncated"] is False
    assert [i["irq"] for i in r["irqs"]] == [0, 1, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]
    irq4 = r["irqs"][3]
    assert irq4["handler"] == "drivers/char/ns16550.c#ns16550_interrupt()"
    assert irq4["affinity"] == [0, 1] and irq4["vector"] == 0xF1
    assert r["irqs"][1]["guests"] == [
        {"domid": 0, "pirq": 1, "pending": False, "masked": False, "pirq_masked": False}
    ]
    assert r["irqs"][2]["mapped_unbound"] is True
    assert len(r["direct_vectors"]) == 8
    assert r["direct_vectors"][0] == {"vector": 0x22, "handler": "irq_move_cleanup_interrupt()"}
    assert len(r["ioapic"]) == 15
    assert r["ioapic"][0]["vector"] == 240
    assert r["ioapic"][0]["pins"][0]["pin"] == 2
    assert r["ioapic"][0]["pins"][0]["fields"]["dest_id"] == "01"
    assert r["ioapic"][4]["pins"][0]["fields"]["trig"] == "L"


def test_i_guest_list_and_truncation() -> None:
    raw = (
        b"(XEN) IRQ information:\r\n"
        b"(XEN)    IRQ:  28 vec:b1 PCI-MSI/-X      status=030 aff:{2}/{2} "
        b"in-flight=1 d0:1249(PM-),d3:  55(-M-)\r\n"
    )
    r = check_common(parse_dump("i", raw), "i")
    assert r["unparsed"] == [] and r["truncated"] is True
    (irq,) = r["irqs"]
    assert irq["type"] == "PCI-MSI/-X" and irq["in_flight"] == 1
    assert [(g["domid"], g["pirq"], g["pending"], g["masked"]) for g in irq["guests"]] == [
        (0, 1249, True, True),
        (3, 55, False, True),
    ]


def test_every_parser_on_simulator_output_leaves_nothing_unparsed() -> None:
    for key in sorted(PARSERS):
        r = check_common(parse_dump(key, sim_dump(key)), key)
        assert r["unparsed"] == [], key
        assert r["truncated"] is False, key


# --------------------------------------------------------------------------- robustness
_NOISY = st.lists(
    st.one_of(
        st.binary(max_size=40),
        st.sampled_from(
            [
                b"(XEN) ",
                b"\r\n",
                b"\r\r\n",
                b"\x1b[",
                b"{",
                b"}",
                b"=",
                b"-",
                b"CPU[00] ",
                b"Domain 0 (total: ",
                b"General information for domain 1:\r\n",
                b"    VCPU0: CPU0 [has=T] poll=0 upcall_pend=00 upcall_mask=00 dirty_cpu=",
                b"Runqueue 0:\r\n",
            ]
        ),
    ),
    max_size=40,
).map(b"".join)


@pytest.mark.parametrize("key", sorted(PARSERS))
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=_NOISY)
def test_parsers_never_raise(key: str, data: bytes) -> None:
    check_common(parse_dump(key, data), key)


#: Every corpus line: the Xen 4.17.7 captures, the written dumps and the field dumps
#: (data/field, Xen 4.8 to 4.19, x86_64 and arm64).
_REAL_LINES = [
    line for f in sorted(DATA.glob("**/*.txt")) for line in f.read_bytes().splitlines(keepends=True)
]


@settings(max_examples=300, deadline=None)
@given(
    picks=st.lists(
        st.tuples(st.sampled_from(_REAL_LINES), st.integers(0, 200), st.binary(max_size=6)),
        max_size=60,
    ),
    key=st.sampled_from(sorted(PARSERS)),
)
def test_parsers_never_raise_on_mangled_real_lines(
    picks: list[tuple[bytes, int, bytes]], key: str
) -> None:
    """Real and written lines, cut at random points with garbage spliced in."""
    data = b"".join(line[:cut] + junk + line[cut:] for line, cut, junk in picks)
    check_common(parse_dump(key, data), key)


@pytest.mark.parametrize("key", sorted(PARSERS))
def test_huge_numbers_are_unparsed_not_errors(key: str) -> None:
    big = b"9" * 5000
    lines = [
        b"(XEN) NOW=" + big,
        b"(XEN) '" + key.encode() + b"' pressed -> dumping domain info (now = " + big + b")",
        b"(XEN) General information for domain " + big + b":",
        b"(XEN) Domain " + big + b" (total: 1):",
        b"(XEN) Synced cycles skew: max=" + big + b" avg=1 samples=1 current=1",
        b"(XEN) Cpus: 0-" + big,
        b"(XEN) CPU0..." + big + b" -> NODE0",
        b"(XEN) CPU[00] current=d" + big + b"v0, curr=d0v0, prev=NULL",
        b"(XEN)      1 vnodes, 3 vcpus, guest physical layout:",
        b"(XEN)          0: pnode   1, vcpus 0-" + big,
    ]
    r = check_common(parse_dump(key, b"\r\n".join(lines) + b"\r\n"), key)
    assert r["unparsed"]


_REAL_LINES_FOR_ACCOUNTING = [
    line
    for f in sorted(DATA.glob("**/*.txt"))
    for line in f.read_bytes().splitlines(keepends=True)
    if line.strip()
]


# --------------------------------------------------------------------------- d / 0
def test_d_real_two_cpus_second_is_remote() -> None:
    r = check_common(parse_dump("d", real("d")), "d")
    assert r["unparsed"] == [] and r["truncated"] is False and r["header"] is True
    assert r["shape"]["xen"] == "4.17.7" and r["shape"]["arch"] == "x86_64"
    cpu0, cpu1 = r["sections"]
    assert [(s["kind"], s["cpu"], s["remote"]) for s in r["sections"]] == [
        ("host", 0, False),
        ("host", 1, True),
    ]
    assert cpu0["context"] == "hypervisor" and cpu0["debug"] is False
    assert cpu0["taint"] == "Not tainted"
    assert cpu0["registers"]["rsp"] == "ffff83003ffd7e98"
    assert cpu0["registers"]["cr3"] == "000000003646c000"
    assert cpu0["registers"]["ss"] == "e010" and len(cpu0["registers"]) == 31
    assert cpu0["ip"] == {
        "register": "RIP",
        "cs": "e008",
        "address": "ffff82d0402f9c06",
        "symbol": "arch/x86/domain.c#default_idle+0xc6/0xf0",
        "file": "arch/x86/domain.c",
        "function": "default_idle",
        "offset": 0xC6,
        "size": 0xF0,
    }
    assert cpu0["code"]["bytes"].split()[8] == "<80>"
    assert len(cpu0["stack"]["words"]) == 4 * 11 + 1
    assert cpu0["stack"]["from"] == "ffff83003ffd7e98" and cpu0["stack"]["owner"] == "xen"
    trace = [(f["marker"], f["function"], f["offset"]) for f in cpu0["call_trace"]]
    assert trace == [
        ("R", "default_idle", 0xC6),
        ("S", "idle_loop", 0xC1),
        ("S", "idle_loop", 0),
        ("S", "context_switch", 0x1F4),
    ]
    assert cpu0["call_trace"][3]["file"] is None
    assert cpu1["call_trace"][3]["function"] == "continue_running"


def test_d_cut_before_the_call_trace_is_truncated() -> None:
    raw = real("d")
    r = check_common(parse_dump("d", raw[: raw.rindex(b"(XEN) Xen call trace:")]), "d")
    assert r["truncated"] is True and len(r["sections"]) == 2


# --------------------------------------------------------------------------- a / H / g
def test_a_real() -> None:
    r = check_common(parse_dump("a", real("a")), "a")
    assert r["unparsed"] == [] and r["header"] is True
    cpu0, cpu1 = r["cpus"]
    assert (cpu0["cpu"], cpu1["cpu"], cpu1["timers"]) == (0, 1, [])
    assert cpu0["timers"][0] == {
        "expires_us": 204915,
        "timer": "ffff83003fd60068",
        "callback": "common/sched/core.c#vcpu_singleshot_timer_fn",
        "data": "ffff83003fd60000",
    }
    assert [t["expires_us"] for t in cpu0["timers"]] == [204915, 926989, 2358434, 19454707]


def test_H_real() -> None:
    r = check_common(parse_dump("H", real("H")), "H")
    assert r["unparsed"] == [] and r["now"] == 49573139319
    assert len(r["zones"]) == 41
    assert r["nodes"] == {"0": 16128 + 32768 + 53992 + 24692}
    assert r["zones"][17] == {"node": 0, "zone": 17, "pages": 53992}


def test_g_real_and_cut() -> None:
    r = check_common(parse_dump("g", real("g")), "g")
    assert r["unparsed"] == [] and r["truncated"] is False and r["done"] is True
    assert r["tables"] == [
        {
            "domid": 0,
            "version": 1,
            "frames": 1,
            "max_frames": 64,
            "maptrack_frames": 0,
            "max_maptrack_frames": 1024,
            "entries": [],
            "none_active": True,
        }
    ]
    cut = real("g")[: real("g").index(b"(XEN) no active")]
    assert check_common(parse_dump("g", cut), "g")["truncated"] is True


def test_g_entries() -> None:
    raw = (
        b"(XEN) gnttab_usage_print_all [ key 'g' pressed\r\n"
        b"(XEN) grant-table for remote d1 (v1)\r\n"
        b"(XEN)   4 frames (64 max), 1 maptrack frames (1024 max)\r\n"
        b"(XEN) [0x008]      0 0x1f2a3b 0x00000002          0 0x0c0ffe 0x19\r\n"
        b"(XEN) gnttab_usage_print_all ] done\r\n"
    )
    r = check_common(parse_dump("g", raw), "g")
    assert r["unparsed"] == []
    assert r["tables"][0]["entries"] == [
        {
            "ref": 8,
            "active_domid": 0,
            "mfn": "1f2a3b",
            "pin": 2,
            "shared_domid": 0,
            "gmfn": "0c0ffe",
            "flags": 0x19,
        }
    ]


# --------------------------------------------------------------------------- *
def test_star_real_splits_into_each_handlers_parse() -> None:
    raw = real("star")
    r = check_common(parse_dump("*", raw), "*")
    keys = [s["key"] for s in r["sections"]]
    assert keys == list("d0HIMQacegimnqrstuvxz")
    assert r["header"] is True and r["unparsed"] == []
    assert r["lines"]["total"] == physical_lines(raw) == 419
    by_key = {s["key"]: s["result"] for s in r["sections"]}
    assert by_key["q"]["domains"][0]["vcpus"][0]["processor"] == 1
    assert by_key["0"]["sections"][0]["kind"] == "dom0-vcpu"
    assert by_key["0"]["sections"][0]["context"] == "pv guest (d0v0)"
    assert by_key["0"]["sections"][0]["ip"]["symbol"] is None
    assert by_key["0"]["sections"][0]["stack"]["owner"] == "guest"
    assert by_key["H"]["now"] == 54841933671
    assert by_key["r"]["cpupools"][0]["scheduler"]["opt_name"] == "credit2"
    # Keys without a parser are still accounted for, line by line.
    assert by_key["c"]["unparsed"][0] == "'c' pressed -> printing ACPI Cx structures"
    for key in "d0Haegimqrtu":
        assert by_key[key]["unparsed"] == [], key
    # 'z' shared the UART with Dom0: its lines are counted, Dom0's text is foreign, and the
    # IRQ line Dom0 interrupted is joined back.
    z = by_key["z"]
    assert z["lines"]["spliced"] == 2 and "dom0-spliced" in z["shape"]["console"]
    assert "IRQ104 -> 0:10" in z["unparsed"]
    assert any("Not enough CPUs" in f for f in z["foreign"])
    assert sum(s["result"]["lines"]["total"] for s in r["sections"]) + 1 + 21 == 419


# --------------------------------------------------------------------------- console shapes
def test_console_shapes_are_recognised_and_reported() -> None:
    base = real("u")
    variants = {
        "stamp:boot": base.replace(b"(XEN) ", b"(XEN) [  150.26] "),
        "stamp:date": base.replace(b"(XEN) ", b"(XEN) [2019-05-28 14:24:11] "),
        "stamp:datems": base.replace(b"(XEN) ", b"(XEN) [2019-05-28 14:24:11.123] "),
        "stamp:raw": base.replace(b"(XEN) ", b"(XEN) [0000001234abcdef] "),
        "collector-stamp": base.replace(b"(XEN) ", b"[2024-03-01 20:37:28] (XEN) "),
        "indented": base.replace(b"(XEN) ", b"    (XEN) "),
        "quoted": base.replace(b"(XEN) ", b">> (XEN) "),
        "tab-after-prefix": base.replace(b"(XEN)     Node", b"(XEN)\t    Node"),
    }
    plain = parse_dump("u", base)
    assert plain is not None
    for variant, raw in variants.items():
        r = check_common(parse_dump("u", raw), "u")
        assert variant in r["shape"]["console"], variant
        assert r["foreign"] == [], variant
        if variant != "tab-after-prefix":
            assert r["domains"] == plain["domains"] and r["unparsed"] == [], variant
        else:
            assert r["unparsed"] == ["\t    Node 0: 131072"]


def test_dom0_stamp_inside_a_xen_line_is_cut_and_the_rest_joined() -> None:
    raw = (
        b"(XEN) heap[node=0][zone=1] -> [   49.828696] clocksource: Switched\r\r\n"
        b"7 pages\r\n"
        b"[   49.9] next dom0 line\r\r\n"
    )
    r = check_common(parse_dump("H", raw), "H")
    assert r["zones"] == [{"node": 0, "zone": 1, "pages": 7}]
    assert r["foreign"] == ["[   49.828696] clocksource: Switched", "[   49.9] next dom0 line"]
    assert r["lines"] == {
        "total": 3,
        "parsed": 1,
        "unparsed": 0,
        "foreign": 1,
        "blank": 0,
        "spliced": 1,
    }


# --------------------------------------------------------------------------- accounting
_MARK = "zqj"  # no Xen format string contains it


@pytest.mark.parametrize("key", sorted(PARSERS))
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    picks=st.lists(st.sampled_from(_REAL_LINES_FOR_ACCOUNTING), max_size=40),
    junk=st.lists(st.tuples(st.integers(0, 40), st.text(max_size=12)), max_size=6),
    ending=st.sampled_from([b"\r\n", b"\n", b"\r\r\n", b""]),
)
def test_every_line_is_accounted_for(
    key: str, picks: list[bytes], junk: list[tuple[int, str]], ending: bytes
) -> None:
    """Every physical line lands in exactly one category, and an injected line no rule can
    match is reported in ``unparsed``, never dropped."""
    lines = [p.rstrip(b"\r\n") + b"\r\n" for p in picks]
    injected = []
    for pos, text in junk:
        body = f"{_MARK} {text}".replace("\n", " ").replace("\r", " ").strip()
        line = b"(XEN) " + body.encode()
        lines.insert(min(pos, len(lines)), line + b"\r\n")
        injected.append(body)
    data = b"".join(lines)
    if data:
        data = data[: -len(b"\r\n")] + ending
    r = check_common(parse_dump(key, data), key)
    assert r["lines"]["total"] == physical_lines(data)
    everything = list(r["unparsed"])
    if key == "*":
        everything += [u for s in r["sections"] for u in s["result"]["unparsed"]]
    for body in injected:
        stripped = " ".join(body.split()) if "\t" not in body else body
        assert any(stripped.split()[0] in u for u in everything), body


def test_switch_banner_both_forms() -> None:
    """The console driver confirms a switch by this banner; 4.8 printed the arrow form
    (console.c: "*** Serial input -> %s (type 'CTRL-%c' three times to switch input to %s)")."""
    from solcap.xen.console import SWITCH_BANNER

    old = b"(XEN) *** Serial input -> Xen (type 'CTRL-a' three times to switch input to DOM0)"
    new = b"(XEN) *** Serial input to DOM0 (type 'CTRL-a' three times to switch input)"
    assert [SWITCH_BANNER.search(b)["target"] for b in (old, new)] == [b"Xen", b"DOM0"]
    r = check_common(parse_dump("h", old + b"\r\n" + new + b"\r\n"), "h")
    assert [(s["form"], s["target"], s["back_to"]) for s in r["console_switches"]] == [
        ("->", "Xen", "DOM0"),
        ("to", "DOM0", None),
    ]
    assert r["unparsed"] == [] and r["lines"]["parsed"] == 2
