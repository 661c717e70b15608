"""Real dumps from the field (tests/parsers/data/field/, cited in its README) and the Xen 4.17.7
captures: every one parses to its golden result, with every line accounted for.

``.venv/bin/python tests/parsers/test_field.py --update`` rewrites the golden JSON after a
deliberate parser change; review ``git diff tests/parsers/data/golden`` before committing it.

The golden JSON was produced by the parsers and reviewed; the hand-read checks below do not
come from the parsers, so a golden file regenerated from a broken parser still fails here.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from solcap.xen.parsers import parse_boot, parse_dump

DATA = Path(__file__).parent / "data"
GOLDEN = DATA / "golden"


def key_of(path: Path) -> str:
    """The debug key a corpus file holds: the last ``-`` part of its name (``star`` is ``*``)."""
    tail = path.stem.rsplit("-", 1)[-1]
    return "*" if tail == "star" else tail


def corpus() -> list[Path]:
    """Field dumps (tests/parsers/data/field) and the Xen 4.17.7 captures (real-key-*)."""
    return sorted(DATA.glob("field/*.txt")) + sorted(DATA.glob("real-key-*.txt"))


def golden_path(path: Path) -> Path:
    return GOLDEN / (path.stem + ".json")


def parse_file(path: Path) -> dict[str, Any]:
    """A ``-boot`` file is a boot log (parse_boot); anything else one key's dump."""
    key = key_of(path)
    result = parse_boot(path.read_bytes()) if key == "boot" else parse_dump(key, path.read_bytes())
    assert result is not None, path
    return result


def render(result: dict[str, Any]) -> str:
    return json.dumps(result, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


CORPUS = corpus()


def physical_lines(data: bytes) -> int:
    pieces = data.split(b"\n")
    return len(pieces) - (1 if pieces[-1] == b"" else 0)


def all_unparsed(result: dict[str, Any]) -> list[str]:
    out = list(result["unparsed"])
    for sec in result.get("sections", []) if result["key"] == "*" else []:
        out += sec["result"]["unparsed"]
    return out


def by_name(fragment: str) -> dict[str, Any]:
    (path,) = [p for p in CORPUS if fragment in p.name]
    return parse_file(path)


def test_corpus_covers_the_versions_and_architectures_claimed() -> None:
    """docs/xen-support.md lists these; each must have at least one real dump here."""
    names = {p.name for p in CORPUS}
    for version, arch in [
        ("4.8", "arm64"),
        ("4.11", "x86_64"),
        ("4.14", "x86_64"),
        ("4.18", "x86_64"),
        ("4.19", "arm64"),
        ("4.19", "x86_64"),
        ("4.12", "x86_64"),
        ("4.14", "arm64"),
        ("4.17", "x86_64"),
    ]:
        assert any(f"xen-{version}" in n and arch in n for n in names), (version, arch)
    assert any(n.startswith("real-key-") for n in names)  # 4.17.7 x86_64
    readme = (DATA / "field" / "README.md").read_text()
    for path in CORPUS:
        if path.parent.name == "field":
            assert f"`{path.name}`" in readme, f"{path.name} has no source in field/README.md"


@pytest.mark.parametrize("path", CORPUS, ids=[p.name for p in CORPUS])
def test_golden(path: Path) -> None:
    result = parse_file(path)
    golden = golden_path(path)
    assert golden.exists(), "no golden result; run tests/parsers/test_field.py --update"
    assert render(result) == golden.read_text(encoding="utf-8")


@pytest.mark.parametrize("path", CORPUS, ids=[p.name for p in CORPUS])
def test_every_line_accounted_for(path: Path) -> None:
    data = path.read_bytes()
    result = parse_file(path)
    counts = result["lines"]
    assert counts["total"] == physical_lines(data)
    assert counts["total"] == sum(
        counts[k] for k in ("parsed", "unparsed", "foreign", "blank", "spliced")
    )
    assert result["key"] == key_of(path)


# Checks read off the files by hand ------------------------------------------------------
def test_jetson_nano_4_8_arm64_star_and_h() -> None:
    star = by_name("4.8.5-arm64-jetson-nano-star")
    assert star["shape"]["xen"] == "4.8.5" and star["shape"]["arch"] == "arm64"
    assert all_unparsed(star) == [] and star["lines"]["blank"] == 194
    (sec,) = star["sections"]
    assert (sec["key"], sec["description"]) == ("d", "dump registers")
    cpus = sec["result"]["sections"]
    assert [(c["kind"], c["cpu"], c["remote"]) for c in cpus] == [
        ("guest", 0, False),
        ("host", 1, True),
        ("host", 2, True),
        ("host", 3, True),
    ]
    assert cpus[0]["guest"] == {"domain": 0, "vcpu": 0, "idle": False}
    assert cpus[0]["stack"]["note"] == "Failed to convert stack to physical address"
    assert cpus[1]["ip"]["function"] == "idle_loop" and cpus[1]["ip"]["offset"] == 0x74
    assert cpus[1]["mode"] == "64-bit EL2h (Hypervisor, handler)"
    assert cpus[1]["registers"]["x24"] == "0000000000000001"
    assert [f["origin"] for f in cpus[3]["call_trace"]] == ["PC", "LR", None, None]
    assert cpus[3]["call_trace"][2]["function"] == "start_secondary"
    assert len(cpus[2]["stack"]["words"]) == 50

    h = by_name("4.8.5-arm64-jetson-nano-h")
    assert h["console_switches"] == [{"target": "Xen", "char": "a", "form": "->", "back_to": None}]
    assert len(h["handlers"]) == 16 and h["handlers"]["0"] == "dump Dom0 registers"
    # The mail wrapped two lines; their tails are reported, not dropped.
    assert h["foreign"] == ["DOM0)", "(dmesg)"]


def test_rpi4_4_19_arm64_q_and_0() -> None:
    q = by_name("arm64-rpi4-q")
    assert q["unparsed"] == [] and q["truncated"] is False  # arm prints no shared-frames line
    assert q["shape"]["arch"] == "arm"
    assert [d["domid"] for d in q["domains"]] == [0, 1, 2]
    d0 = q["domains"][0]
    assert d0["p2m"] == {
        "vmid": 1,
        "mappings": {
            "1G": {"count": 0, "shattered": 1},
            "2M": {"count": 422, "shattered": 90},
            "4K": {"count": 45372, "shattered": None},
        },
    }
    assert [v["processor"] for v in d0["vcpus"]] == [3, 1, 1, 3]
    assert d0["vcpus"][1]["running"] is True
    assert d0["vcpus"][3]["gic"]["lr_mask"] == 7
    assert [i["irq"] for i in d0["vcpus"][0]["gic"]["inflight"]] == [2, 27, 1, 16]
    assert len(q["notifications"]) == 6

    z = by_name("arm64-rpi4-0")
    assert [s["vcpu"] for s in z["sections"]] == [0, 1, 2, 3]
    assert z["sections"][1]["registers"]["x16"] == "65206c6174614620"
    assert z["sections"][1]["registers"]["fp"] == "ffff80000800b0e0"
    assert z["sections"][0]["registers"]["esr_el2"] == "0000000007e00000"
    assert z["sections"][0]["stack"]["register"] == "sp"


def test_r640_4_14_credit2_r_with_tabs_expanded() -> None:
    r = by_name("4.14.0-x86_64-r640-r")
    assert r["unparsed"] == [] and r["truncated"] is False
    assert "tabs-as-spaces" in r["shape"]["formats"]
    assert r["console_switches"][0]["form"] == "to"
    assert r["online_cpus"] == list(range(0, 27, 2))
    (pool,) = r["cpupools"]
    rq0, rq1 = pool["runqueues"]
    assert rq1["cpus"] == [14, 16, 18, 20, 22, 24, 26] and rq1["aveload_pct"] == 19
    assert rq0["idlers"] == [0, 2, 6, 8, 12]  # 0x1145
    assert [d["domid"] for d in pool["domains"]] == [0, 29, 30]
    assert len(pool["domains"][0]["units"]) == 14
    assert pool["domains"][0]["units"][0]["credit"] == -10000000
    assert [c["cpu"] for c in rq0["cpu_details"]] == [0, 2, 4, 6, 8, 10, 12]
    assert rq0["queue"][0]["unit"] == 1 and rq0["queue"][0]["load_pct"] == 100
    assert [c["current"]["domain"] for c in pool["cpus_info"]].count(0) == 2
    assert len(r["foreign"]) == 2


def test_qubes_4_14_credit1_r_16_cpus() -> None:
    r = by_name("qubes-credit1-r")
    assert r["unparsed"] == [] and r["truncated"] is False
    (pool,) = r["cpupools"]
    assert pool["scheduler"] == {"name": "SMP Credit Scheduler", "opt_name": "credit"}
    assert pool["settings"]["tslice"] == "30ms" and pool["settings"]["runq_sort"] == 996335
    assert pool["settings"]["idlers"] == [0, 3, 4, 7, 10, 11, 12, 13]  # 0x3c99
    assert [u["domid"] for u in pool["active_units"]] == [0] * 6 + [19]
    assert pool["active_units"][4] == {
        "domid": 0,
        "unit": 6,
        "pri": -2,
        "flags": 0,
        "cpu": 15,
        "credit": -177,
        "weight": 2000,
        "cap": 0,
    }
    info = pool["cpus_info"]
    assert [c["cpu"] for c in info] == list(range(16))
    assert info[9]["current"] == {"domain": 19, "vcpu": 1, "idle": False}
    assert info[9]["run"]["domid"] == 19 and info[9]["runq"][0]["domid"] == 32767
    assert info[8]["run"] is None and info[8]["nr_run"] == 2


def test_x86_register_dumps_4_11_and_4_18() -> None:
    hvm = by_name("4.11.4-pre")
    (sec,) = hvm["sections"]
    assert (sec["kind"], sec["domain"], sec["vcpu"]) == ("domain-vcpu", 31, 0)
    assert sec["context"] == "hvm guest (d31v0)" and sec["ip"]["cs"] == "0000"
    assert hvm["unparsed"] == ["d31v0 Triple fault - invoking HVM shutdown action 1"]
    assert "indented" in hvm["shape"]["console"]

    d = by_name("4.18-unstable-x86_64")
    guest, host = d["sections"]
    assert (guest["kind"], guest["cpu"], guest["remote"]) == ("guest", 6, False)
    assert guest["stack"]["note"] == "Fault while accessing guest memory."
    assert (host["cpu"], host["remote"]) == (0, True)
    assert [f["marker"] for f in host["call_trace"]] == ["R"] + ["F"] * 6
    assert host["call_trace"][1]["file"] == "xhci-dbc.c"
    assert host["code"]["bytes"].endswith("66 3d")


def test_4_19_timer_queues_quoted_with_boot_stamps() -> None:
    a = by_name("4.19-x86_64-s3-quoted-a")
    assert a["unparsed"] == [] and a["foreign"] == []
    assert set(a["shape"]["console"]) == {"quoted", "stamp:boot"}
    assert [c["cpu"] for c in a["cpus"]][:4] == [0, 2, 4, 6]
    assert len(a["cpus"]) == 16
    assert a["cpus"][0]["timers"][0]["callback"] == "drivers/char/xhci-dbc.c#dbc_uart_poll"


def main(argv: list[str]) -> int:
    if argv != ["--update"]:
        print("usage: test_field.py --update", file=sys.stderr)
        return 2
    GOLDEN.mkdir(exist_ok=True)
    for path in corpus():
        golden_path(path).write_text(render(parse_file(path)), encoding="utf-8")
        print(golden_path(path).relative_to(DATA))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))


def test_osstest_4_19_bug_quoted_wrapped_with_collector_stamps() -> None:
    d = by_name("osstest-bug-d")
    assert set(d["shape"]["console"]) == {"collector-stamp", "mail-wrapped", "quoted"}
    assert d["lines"]["spliced"] == 45 and d["foreign"] == []
    (sec,) = d["sections"]
    assert (sec["kind"], sec["xen"], sec["cpu"]) == ("state", "4.19-unstable", 12)
    assert sec["context"] == "hypervisor (d0v8)"
    assert sec["ip"]["function"] == "alloc_heap_pages" and sec["ip"]["offset"] == 0x37F
    assert len(sec["registers"]) == 31 and sec["registers"]["rsp"] == "ffff83047bec7b98"
    assert len(sec["stack"]["words"]) == 80
    assert [f["function"] for f in sec["call_trace"]][-2:] == ["pv_hypercall", "lstar_enter"]
    assert d["crash"] == {
        "reasons": ["Xen BUG at common/page_alloc.c:1033", "Xen BUG at common/page_alloc.c:1033"],
        "panic_cpu": 12,
        "after": "Manual reset required ('noreboot' specified)",
    }
    assert d["unparsed"] == [
        "pg[0] MFN 2211c5 c=0x2c00000000000000 o=0 v=0xe40000010007ffff t=0x24"
    ]


def test_zynqmp_4_14_arm64_hypervisor_trap() -> None:
    d = by_name("4.14.0-arm64-zynqmp-trap-d")
    assert d["shape"]["xen"] == "4.14.0" and d["shape"]["arch"] == "arm64"
    (sec,) = d["sections"]
    assert (sec["kind"], sec["cpu"], sec["debug"]) == ("state", 0, True)
    assert sec["ip"]["function"] == "find_smmu_master" and sec["ip"]["file"] == "smmu.c"
    assert sec["lr"]["address"] == "000000000024a8a4" and sec["lr"]["symbol"] is None
    assert sec["registers"]["sp"] == "00000000002ff1f0"
    assert sec["mode"] == "64-bit EL2h (Hypervisor, handler)"
    assert len(sec["stack"]["words"]) == 41 * 4
    assert len(sec["call_trace"]) == 10 and sec["call_trace"][1]["origin"] == "LR"
    assert d["crash"]["reasons"] == ["CPU0: Unexpected Trap: Data Abort"]
    assert d["truncated"] is False
    assert d["unparsed"] == [
        "smmu: /amba/smmu@fd800000: d0: p2maddr 0x000000087bfa2000",
        "Data Abort Trap. Syndrome=0x5",
        "Walking Hypervisor VA 0x114ebfff8 on CPU0 via TTBR 0x0000000000f38000",
        "0TH[0x0] = 0x0000000000f3bf7f",
        "1ST[0x4] = 0x0000000000000000",
    ]


def test_boot_logs_memory_map_shapes() -> None:
    old = by_name("4.12.1-x86_64-centos7-boot")
    assert old["xen"]["version"] == "4.12.1-1.el7" and old["xen"]["debug"] is True
    assert old["shape"]["xen"] == "4.12.1-1.el7" and "memory-map-dash" in old["shape"]["formats"]
    (emap,) = old["memory_maps"]
    assert (emap["source"], emap["format"], len(emap["entries"])) == ("Xen-e820", "dash", 15)
    # "A - B" has an exclusive end; it is reported inclusive, like the later form.
    assert emap["entries"][0] == {
        "start": "0000000000000000",
        "end": "000000000009abff",
        "type": "usable",
    }
    assert emap["entries"][6]["type"] == "ACPI NVS"
    assert old["foreign"] == ["Xen 4.12.1-1.el7"] and old["changeset"] is None

    new = by_name("4.14.5-x86_64-devuan-boot")
    (emap,) = new["memory_maps"]
    assert emap["format"] == "bracket" and len(emap["entries"]) == 10
    assert emap["entries"][-1] == {
        "start": "0000000100000000",
        "end": "000000042fffffff",
        "type": "usable",
    }
    assert new["bootloader"] == "GRUB 2.06-3~deb11u5"
    assert new["command_line"].endswith("loglvl=all guest_loglvl=all")

    efi = by_name("4.17.5-x86_64-qubes-efi-boot")
    assert efi["memory_maps"][0]["source"] == "EFI" and efi["xen"]["version"] == "4.17.5"
