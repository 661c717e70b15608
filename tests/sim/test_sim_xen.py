"""Tests for the simulated Xen 4.17 content model against the real samples."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest

from solcap.sim.xen import DANGEROUS_KEYS, DEBUG_KEYS, PROMPT, HostSpec, XenHost, split_args

SAMPLES = Path(__file__).resolve().parents[1] / "data" / "samples"
GOOD = "com1=38400,8n1 console=com1 loglvl=all guest_loglvl=all dom0_mem=512M,max:512M"
DOM0 = "console=hvc0 earlyprintk=xen loglevel=7"


def wire(chunks: list[tuple[str, bytes]]) -> bytes:
    return b"".join(d for _, d in chunks)


def sample(key: str) -> bytes:
    path = SAMPLES / f"xen4.17-key-{key}.txt"
    if not path.exists():
        pytest.skip(f"sample {path} missing")
    return path.read_bytes()


def test_split_args_keeps_quotes() -> None:
    assert split_args(' a  b="c d" e ') == ["a", 'b="c d"', "e"]


def test_boot_has_command_line_and_ends_at_prompt() -> None:
    h = XenHost(HostSpec(), GOOD, DOM0)
    chunks = h.boot()
    data = wire(chunks)
    assert b"(XEN) Command line: " + GOOD.encode() + b"\r\n" in data
    assert data.count(b"(XEN) ") > 100
    assert chunks[-1] == ("dom0", PROMPT)
    assert {t for t, _ in chunks} == {"xen", "dom0"}
    banner = b"(XEN) *** Serial input to DOM0 (type 'CTRL-a' three times to switch input)\r\n"
    assert banner in data
    assert b"enabled\r\r\n" in data  # Dom0 lines through hvc0 + Xen's serial driver
    # a Xen line lands in the middle of a Dom0 line, as in the sample
    assert re.search(rb"\[ *\d+\.\d+\] [^\n]*\(XEN\) PCI add device", data)
    # every Xen line is in the ring with a bare \n
    assert b"(XEN) Command line: " + GOOD.encode() + b"\n" in h.conring()


@pytest.mark.parametrize(
    "xen",
    [
        "com1=38400,8n1 console=vga",
        "com1=115200,8n1 console=com1",
        "console=com1",
    ],
)
def test_no_xen_lines_without_a_matching_serial_console(xen: str) -> None:
    h = XenHost(HostSpec(), xen, DOM0)
    data = wire(h.boot())
    assert b"(XEN)" not in data
    assert not h.serial_console
    assert b"Command line" in h.conring()  # the ring still records everything


def test_wrong_baud_shows_mojibake_only() -> None:
    data = wire(XenHost(HostSpec(), "com1=115200,8n1 console=com1", DOM0).boot())
    assert 0 < len(data) < 200
    assert not data.isascii()


def test_no_dom0_kernel_lines_without_hvc0() -> None:
    data = wire(XenHost(HostSpec(), GOOD, "root=/dev/sda1 ro").boot())
    assert b"(XEN) Command line" in data
    assert not re.search(rb"\[ *\d+\.\d{6}\] ", data)
    assert PROMPT not in data


def test_earlyprintk_adds_early_lines() -> None:
    plain = wire(XenHost(HostSpec(), GOOD, "console=hvc0").boot())
    early = wire(XenHost(HostSpec(), GOOD, "console=hvc0 earlyprintk=xen").boot())
    assert b"Poking KASLR using RDTSC...\r\n" in early
    assert b"Poking KASLR" not in plain
    assert b"printk: bootconsole [xenboot0] enabled\r\n" in early  # boot console: \r\n
    assert b"printk: bootconsole [xenboot0] enabled\r\r\n" in plain  # replayed on hvc0


def test_h_matches_sample() -> None:
    h = XenHost(HostSpec(), GOOD, DOM0)
    assert h.debug_key("h") == sample("h")
    assert sorted(DEBUG_KEYS) == sorted(re.findall(r"key '(.)'", sample("h").decode()))


STARTS = {
    "m": b"(XEN) Physical memory information:\r\n",
    "i": b"(XEN) IRQ information:\r\n",
    "r": b"(XEN) sched_smt_power_savings: ",
    "a": b"(XEN) Dumping timer queues:\r\n",
    "t": b"(XEN) Synced stime skew: ",
    "g": b"(XEN) gnttab_usage_print_all [ key 'g' pressed\r\n",
}


@pytest.mark.parametrize("key", sorted(DEBUG_KEYS, key=ord))
def test_each_dump_starts_like_the_real_one(key: str) -> None:
    h = XenHost(HostSpec(), GOOD, DOM0)
    out = h.debug_key(key)
    assert out
    path = SAMPLES / f"xen4.17-key-{'star' if key == '*' else key}.txt"
    if path.exists():
        first = path.read_bytes().split(b"\r\n")[0]
        first = re.split(rb"\d", first)[0]  # counters such as (now = N) vary
        assert out.startswith(first)
    elif key in STARTS:
        assert out.startswith(STARTS[key])
    assert out.endswith(b"\r\n")


def test_unregistered_keys_print_nothing() -> None:
    h = XenHost(HostSpec(), GOOD, DOM0)
    for key in "CVoDSTPLOjk":
        assert h.debug_key(key) is None


def test_dangerous_keys() -> None:
    assert {"R", "C", "N"} <= DANGEROUS_KEYS
    h = XenHost(HostSpec(), GOOD, DOM0)
    assert h.debug_key("R") == (
        b"(XEN) 'R' pressed -> rebooting machine\r\n"
        b"(XEN) Resetting with ACPI MEMORY or I/O RESET_REG.\r\n"
    )


def _shapes(data: bytes) -> set[str]:
    """Reduce lines to shapes: digits and hex runs collapsed, so formats compare."""
    out = set()
    for line in data.decode().split("\r\n"):
        line = re.sub(r"\b[0-9a-f]{6,16}\b", "H", line)
        out.add(re.sub(r" +", " ", re.sub(r"\d+", "N", line)))
    return out


@pytest.mark.parametrize("key", ["q", "u", "m", "e", "r", "a", "t", "g", "i", "H", "d"])
def test_line_shapes_match_sample(key: str) -> None:
    real = _shapes(sample(key))
    ours = _shapes(XenHost(HostSpec(pcpus=2, domus=0), GOOD, DOM0).debug_key(key) or b"")
    missing = real - ours
    assert not missing, missing


def test_big_host_dumps_scale() -> None:
    spec = HostSpec(pcpus=64, numa_nodes=4, domus=300, vcpus_per_domu=4)
    h = XenHost(spec, GOOD, DOM0)
    q = h.debug_key("q") or b""
    u = h.debug_key("u") or b""
    assert len(q) >= 200 * 1024
    assert len(u) >= 40 * 1024
    assert q.count(b"(XEN) General information for domain ") == 301
    assert b"(XEN) Domain 300 (total: " in u


def test_deterministic_per_seed() -> None:
    def run(seed: int) -> str:
        h = XenHost(HostSpec(seed=seed, domus=5), GOOD, DOM0)
        data = wire(h.boot())
        for key in "qutr":
            data += h.debug_key(key) or b""
        data += h.dom0_command("xl list")[1]
        return hashlib.sha256(data).hexdigest()

    assert run(1) == run(1)
    assert run(1) != run(2)


def test_conring_truncates_after_big_dump() -> None:
    h = XenHost(HostSpec(domus=50), GOOD, DOM0)
    h.boot()
    q = h.debug_key("q") or b""
    assert len(q) > h.conring_size
    assert len(h.conring()) == h.conring_size == 32768  # 4 CPUs << (9 + 4)
    xen, out = h.dom0_command("xl dmesg")
    assert xen == b""
    assert b"'q' pressed" not in out
    assert b"Command line:" not in out
    assert out.endswith(b"Shared frames 0 -- Saved frames 0\r\r\n")


def test_conring_size_option_and_default() -> None:
    assert XenHost(HostSpec(), GOOD + " conring_size=1M", DOM0).conring_size == 1 << 20
    assert XenHost(HostSpec(pcpus=64), GOOD, DOM0).conring_size == 64 << 13
    assert XenHost(HostSpec(pcpus=64), "com1=38400 console=com1", DOM0).conring_size == 128 << 10


def test_xl_debug_keys_routes_dump_to_serial() -> None:
    h = XenHost(HostSpec(), GOOD, DOM0)
    h.boot()
    xen, out = h.dom0_command("xl debug-keys q")
    assert out == b""
    assert xen.startswith(b"(XEN) 'q' pressed -> dumping domain info (now = ")
    assert b"'q' pressed" in h.conring()


def test_dom0_commands() -> None:
    spec = HostSpec(pcpus=8, numa_nodes=2, domus=3)
    h = XenHost(spec, GOOD, DOM0)
    info = h.dom0_command("xl info")[1].decode()
    assert "nr_cpus                : 8\r\r\n" in info
    assert "nr_nodes               : 2\r" in info
    assert f"xen_commandline        : {GOOD}\r" in info
    assert "numa_info" in h.dom0_command("xl info -n")[1].decode()
    assert h.dom0_command("xl list")[1].count(b"\r\r\n") == 1 + 4
    assert h.dom0_command("xl vcpu-list")[1].count(b"\r\r\n") == 1 + 2 + 3 * 2
    assert h.dom0_command("hostname")[1] == b"xenhost\r\r\n"
    assert h.dom0_command("uname -a")[1].startswith(b"Linux xenhost 6.1.0")
    assert h.dom0_command("foo bar") == (b"", b"-bash: foo: command not found\r\r\n")
    assert b'name = "guest003"' in h.dom0_command("xenstore-ls")[1]
    assert h.dom0_command("xenpm get-cpu-topology")[1].count(b"\r\r\n") == 9


def test_switch_banners_match_sample() -> None:
    raw = (SAMPLES / "sol-session-grub2.06-xen4.17.raw").read_bytes()
    h = XenHost(HostSpec(), GOOD, DOM0)
    assert h.switch_banner(True) in raw
    assert h.switch_banner(False) in raw


def test_boot_panic() -> None:
    data = wire(XenHost(HostSpec(), GOOD, DOM0).boot_panic())
    assert b"(XEN) Panic on CPU 0:\r\n" in data
    assert data.endswith(b"(XEN) Reboot in five seconds...\r\n")
