"""One-shot GRUB editing against the virtual host's GRUB over a real pty.

The virtual host's GRUB answers keys with the bytes real GRUB 2.06 prints, drops typed bytes
when its 16-byte FIFO is full, and boots the simulated Xen with whatever line was edited; so
"it worked" is judged by what the simulated Xen booted and printed, not by solcap's own view.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

import solcap.sim.host as sim_host
from solcap.boot.profiles import Options, Profile, load_profile
from solcap.console.core import Console
from solcap.errors import TargetError, UsageError
from solcap.grub.menu import OneshotResult, _cmdline_difference, _Driver, apply_oneshot
from solcap.sim.grub import GrubEntry
from solcap.sim.host import KERNEL_VERSION, SimConfig, VirtualHost
from solcap.transports.base import Transport
from solcap.transports.registry import open_transport

pytestmark = pytest.mark.timeout(90)

SERIAL_DEBUG_XEN = ("loglvl=all", "guest_loglvl=all", "com1=38400,8n1", "console=com1")
HANDOVER = re.compile(rb"\(XEN\) \*\*\* Serial input to DOM0 ")


class SpyTransport(Transport):
    """Passes everything through and keeps what solcap wrote (to check keys sent)."""

    def __init__(self, inner: Transport) -> None:
        self.inner = inner
        self.name = inner.name
        self.written = bytearray()

    def read(self, max_bytes: int, timeout: float) -> bytes:
        return self.inner.read(max_bytes, timeout)

    def write(self, data: bytes) -> None:
        self.written += data
        self.inner.write(data)

    def close(self) -> None:
        self.inner.close()


@contextmanager
def simulated(**config: Any) -> Iterator[tuple[VirtualHost, Console, SpyTransport]]:
    """A powered-off virtual host (fast line unless told otherwise) and a console on it."""
    config.setdefault("fast", True)
    with VirtualHost(SimConfig(auto_power_on=False, **config)) as host:
        spy = SpyTransport(open_transport(host.pty_path))
        with Console(spy, host="sim") as con:
            yield host, con, spy


def profile(
    xen: tuple[str, ...] = (),
    xen_remove: tuple[str, ...] = (),
    dom0: tuple[str, ...] = (),
    dom0_remove: tuple[str, ...] = (),
) -> Profile:
    return Profile(
        name="test",
        description="test profile",
        path="<test>",
        xen=Options(xen, xen_remove),
        dom0=Options(dom0, dom0_remove),
        console=None,
        harvest_keys=(),
    )


def xen_entry(title: str, xen_args: str, dom0_args: str, prelude: int = 0) -> GrubEntry:
    """A Debian-style Xen entry; ``prelude`` adds that many ``insmod`` lines before it."""
    kernel = f"/boot/vmlinuz-{KERNEL_VERSION}"
    lines = [f"insmod mod{i}" for i in range(prelude)]
    lines += [
        "echo 'Loading Xen 4.17 ...'",
        f"multiboot2 /boot/xen.gz placeholder {xen_args}",
        f"echo 'Loading Linux {KERNEL_VERSION} ...'",
        f"module2 {kernel} placeholder {dom0_args}",
        "echo 'Loading initial ramdisk ...'",
        f"module2 /boot/initrd.img-{KERNEL_VERSION}",
    ]
    return GrubEntry(title=title, lines=tuple(lines))


def use_entries(monkeypatch: pytest.MonkeyPatch, entries: tuple[GrubEntry, ...]) -> None:
    """Give the virtual host's GRUB this menu (SimConfig has no field for custom entries)."""
    monkeypatch.setattr(sim_host, "default_entries", lambda config: entries)


def oneshot(con: Console, prof: Profile | None = None, **options: Any) -> OneshotResult:
    """apply_oneshot with the shipped xen-serial-debug profile and timings for a fast line."""
    options.setdefault("quiet", 0.05)
    options.setdefault("poke_interval", 0.3)
    return apply_oneshot(con, prof or load_profile("xen-serial-debug"), **options)


def no_enter_in_editor(spy: SpyTransport) -> None:
    """Enter inserts a newline in GRUB's editor: solcap must never have sent one."""
    assert b"\r" not in spy.written and b"\n" not in spy.written


# --------------------------------------------------------------------------- headline


def test_serial_debug_profile_makes_xen_console_appear() -> None:
    dom0 = "root=/dev/mapper/vg-root ro"
    with simulated(xen_args="dom0_mem=512M", dom0_args=dom0, grub_timeout=1) as (host, con, spy):
        # Without the profile, a normal boot puts nothing of Xen on the serial line.
        host.power_on()
        assert host.wait_state("running", 30)
        con.settle(0.3, timeout=30)
        assert b"(XEN)" not in host.sent_bytes()
        assert host.xen is not None and not host.xen.serial_console

        result = oneshot(con, power_cycle=host.power_cycle, menu_timeout=30)
        assert result.entry_title == "Debian GNU/Linux, with Xen hypervisor"
        assert result.xen_before == "dom0_mem=512M"
        assert result.xen_after == "dom0_mem=512M " + " ".join(SERIAL_DEBUG_XEN)
        assert result.dom0_before == dom0
        assert result.dom0_after == dom0 + " console=hvc0 earlyprintk=xen"
        assert result.verified and result.booted_cmdline == result.xen_after
        # What the simulated Xen really booted with, and its console now on the line:
        assert host.xen is not None
        assert host.xen.xen_cmdline.split() == result.xen_after.split()
        assert host.xen.dom0_cmdline.split() == (dom0 + " console=hvc0 earlyprintk=xen").split()
        con.expect([HANDOVER], timeout=30)
        assert host.xen.serial_console and host.xen.dom0_visible
        assert b"(XEN) Command line: " + result.xen_after.encode() in host.sent_bytes()
        no_enter_in_editor(spy)


def test_profile_already_applied_types_nothing() -> None:
    xen = " ".join(SERIAL_DEBUG_XEN)
    dom0 = "root=/dev/mapper/vg-root ro console=hvc0 earlyprintk=xen"
    with simulated(xen_args=xen, dom0_args=dom0) as (host, con, spy):
        result = oneshot(con, power_cycle=host.power_on)
    assert result.xen_before == result.xen_after == xen
    assert result.dom0_before == result.dom0_after == dom0
    assert result.verified
    assert not re.search(rb"[a-z0-9=]{2}", bytes(spy.written))  # keys only, no typing


# --------------------------------------------------------------------------- editing


def test_removal_and_replacement_retype_the_line() -> None:
    xen = "com1=38400,8n1 console=com1 loglvl=warning noreboot dom0_mem=512M"
    dom0 = "root=/dev/mapper/vg-root ro quiet console=hvc0"
    prof = profile(
        xen=("loglvl=all",),
        xen_remove=("noreboot",),
        dom0=("console=hvc0",),
        dom0_remove=("quiet",),
    )
    with simulated(xen_args=xen, dom0_args=dom0) as (host, con, spy):
        result = oneshot(con, prof, power_cycle=host.power_on)
        assert result.xen_after == "com1=38400,8n1 console=com1 loglvl=all dom0_mem=512M"
        assert result.booted_cmdline == result.xen_after and result.verified
        assert host.xen is not None
        assert host.xen.xen_cmdline == result.xen_after
        assert host.xen.dom0_cmdline == "root=/dev/mapper/vg-root ro console=hvc0"
        assert b"\x0b" in spy.written  # Ctrl-K: the line was killed and retyped
        no_enter_in_editor(spy)


def test_burst_typing_loses_bytes_and_the_retry_repairs_them() -> None:
    with simulated(xen_args="dom0_mem=512M", dom0_args="root=/dev/sda1 ro") as (host, con, _):
        result = oneshot(con, power_cycle=host.power_on, char_delay=0)
        assert host.dropped_input > 0  # the burst overflowed GRUB's FIFO ...
        assert result.verified  # ... and the line was still booted exactly as intended
        assert host.xen is not None
        assert host.xen.xen_cmdline == "dom0_mem=512M " + " ".join(SERIAL_DEBUG_XEN)
        assert host.xen.dom0_cmdline == "root=/dev/sda1 ro console=hvc0 earlyprintk=xen"


def test_gives_up_with_esc_when_the_line_cannot_be_typed() -> None:
    with simulated(xen_args="dom0_mem=512M", grub_timeout=2) as (host, con, _):
        with pytest.raises(TargetError, match=r"keystrokes lost.*discarded with Esc"):
            oneshot(con, power_cycle=host.power_on, char_delay=0, retries=0)
        assert host.dropped_input > 0
        # Nothing half-typed was booted: GRUB is back at its menu, countdown stopped.
        assert not host.wait_state("booting", 3)
        assert host.state == "grub" and host.xen is None


def test_entry_whose_lines_scroll_beyond_the_editor_window(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    xen = "dom0_mem=2G,max:2G dom0_max_vcpus=2 " + " ".join(f"opt{i}=value{i}" for i in range(12))
    use_entries(monkeypatch, (xen_entry("Xen long", xen, "root=/dev/sda1 ro", prelude=14),))
    with simulated() as (host, con, _):
        result = oneshot(con, power_cycle=host.power_on)
        assert result.xen_before == "placeholder " + xen
        assert host.xen is not None
        assert host.xen.xen_cmdline == result.xen_after == result.booted_cmdline
        assert host.xen.dom0_cmdline.endswith("root=/dev/sda1 ro console=hvc0 earlyprintk=xen")


def test_debian_xen_rm_opts_variable_stays_last(monkeypatch: pytest.MonkeyPatch) -> None:
    """grub-mkconfig ends the Xen line with ${xen_rm_opts}; options go before it."""
    entry = xen_entry("Debian GNU/Linux, with Xen hypervisor", "dom0_mem=512M ${xen_rm_opts}", "ro")
    use_entries(monkeypatch, (entry,))
    with simulated() as (host, con, _):
        result = oneshot(con, power_cycle=host.power_on)
        assert result.xen_after.endswith(" console=com1 ${xen_rm_opts}")
        assert result.verified and host.xen is not None
        assert host.xen.xen_cmdline == result.xen_after


# --------------------------------------------------------------------------- the menu


def test_hidden_timeout_style_is_poked_with_esc() -> None:
    with simulated(xen_args="dom0_mem=512M", timeout_style="hidden", grub_timeout=5) as (
        host,
        con,
        spy,
    ):
        result = oneshot(con, power_cycle=host.power_on)
        assert result.verified
        assert spy.written.startswith(b"\x1b")  # the menu only appeared because of Esc
        assert host.xen is not None and host.xen.serial_console


def test_second_entry_selected_by_pattern(monkeypatch: pytest.MonkeyPatch) -> None:
    use_entries(
        monkeypatch,
        (
            xen_entry("Debian GNU/Linux, with Xen hypervisor", "dom0_mem=512M", "root=/a ro"),
            xen_entry("Debian GNU/Linux, with Xen (debug)", "dom0_mem=1G second=1", "root=/b ro"),
        ),
    )
    with simulated() as (host, con, _):
        result = oneshot(con, entry=r"\(debug\)$", power_cycle=host.power_on)
        assert result.entry_title == "Debian GNU/Linux, with Xen (debug)"
        assert host.xen is not None
        assert host.xen.xen_cmdline.startswith("placeholder dom0_mem=1G second=1 ")
        assert "root=/b ro" in host.xen.dom0_cmdline


def test_entry_scrolled_beyond_the_menu_box(monkeypatch: pytest.MonkeyPatch) -> None:
    entries = tuple(
        xen_entry(f"Xen variant {i:02d}", f"dom0_mem=512M variant={i}", "root=/a ro")
        for i in range(16)
    )
    use_entries(monkeypatch, entries)
    with simulated(grub_timeout=10) as (host, con, _):
        result = oneshot(con, entry=r"variant 13$", power_cycle=host.power_on)
        assert result.entry_title == "Xen variant 13"
        assert host.xen is not None and "variant=13" in host.xen.xen_cmdline.split()


@pytest.mark.parametrize(
    ("pattern", "message"), [(r"Debian", "2 entries match"), (r"Windows", "no entry matches")]
)
def test_ambiguous_or_missing_entry_is_refused(pattern: str, message: str) -> None:
    with simulated(grub_timeout=2) as (host, con, _):
        with pytest.raises(UsageError, match=message) as info:
            oneshot(con, entry=pattern, power_cycle=host.power_on)
        assert "Debian GNU/Linux, with Xen hypervisor" in str(info.value)  # titles listed
        assert not host.wait_state("booting", 3)  # countdown stopped, nothing booted


def test_late_attach_redraws_the_menu_with_ctrl_l() -> None:
    with simulated(xen_args="dom0_mem=512M", grub_timeout=30) as (host, con, spy):
        host.power_on()
        con.expect([rb"executed automatically in \d+s"], timeout=20)
        con.settle(0.2, timeout=20)
        con.drain()  # solcap "attaches" now: it has seen none of the menu
        headers = host.sent_bytes().count(b"GNU GRUB  version")
        result = oneshot(con)
        assert result.verified
        assert spy.written.startswith(b"\x1b\x0c")  # Esc, then Ctrl-L
        assert host.sent_bytes().count(b"GNU GRUB  version") > headers


def test_late_attach_to_an_editor_left_open_discards_it_first() -> None:
    with simulated(xen_args="dom0_mem=512M", grub_timeout=30) as (host, con, spy):
        host.power_on()
        con.expect([rb"executed automatically in \d+s"], timeout=20)
        con.send(b"e")  # someone opened the editor and typed into it, then left
        con.expect([rb"Minimum Emacs-like"], timeout=20)
        con.send_paced(b"\x1b[B\x1b[B\x1b[B\x05 junk=1", 0.02)  # onto the multiboot2 line
        con.expect([rb"junk=1"], timeout=20)
        con.settle(0.3, timeout=20)
        con.drain()
        spy.written.clear()
        result = oneshot(con)
        assert result.verified and host.xen is not None
        assert "junk=1" not in host.xen.xen_cmdline  # Esc discarded the stranger's edit
        assert host.xen.xen_cmdline == "dom0_mem=512M " + " ".join(SERIAL_DEBUG_XEN)


def test_menu_already_timed_out_while_watching() -> None:
    with (
        simulated(xen_args="dom0_mem=512M", grub_timeout=0) as (host, con, _),
        pytest.raises(TargetError, match="timed out before solcap could stop it"),
    ):
        oneshot(con, power_cycle=host.power_on)


def test_attach_after_boot_is_reported() -> None:
    with simulated(grub_timeout=1) as (host, con, _):
        host.power_on()
        assert host.wait_state("running", 30)
        con.settle(0.3, timeout=30)
        con.drain()
        with pytest.raises(TargetError, match=r"no GRUB menu appeared.*booted already"):
            oneshot(con, menu_timeout=2)


# --------------------------------------------------------------------------- superusers


def test_superuser_password_is_given() -> None:
    with simulated(xen_args="dom0_mem=512M", grub_password=("root", "s3cret")) as (host, con, _):
        result = oneshot(con, power_cycle=host.power_on, username=b"root", password=b"s3cret")
        assert result.verified
        assert host.xen is not None and host.xen.serial_console


@pytest.mark.parametrize(
    ("password", "message"), [(b"wrong", "refused"), (None, "give a username and password")]
)
def test_superuser_prompt_without_the_right_password(password: bytes | None, message: str) -> None:
    with simulated(grub_password=("root", "s3cret")) as (host, con, _):
        with pytest.raises(TargetError, match=message):
            oneshot(con, power_cycle=host.power_on, username=b"root", password=password)
        assert host.xen is None


# --------------------------------------------------------------------------- verification


def test_unverifiable_boot_is_an_error() -> None:
    """A profile that does not put Xen's console on the line cannot be confirmed."""
    with simulated(xen_args="dom0_mem=512M") as (host, con, _):
        with pytest.raises(TargetError, match=r"no '\(XEN\) Command line:'"):
            oneshot(con, profile(xen=("loglvl=all",)), power_cycle=host.power_on, boot_timeout=3)
        assert host.xen is not None and host.xen.xen_cmdline == "dom0_mem=512M loglvl=all"


def test_cmdline_difference() -> None:
    assert _cmdline_difference("placeholder a=1 b", "a=1  b") == ""
    assert "missing ['b']" in _cmdline_difference("a=1 b", "a=1")
    assert _cmdline_difference("a=1 ${xen_rm_opts} b", "a=1 no-real-mode edd=off b") == ""
    assert "out of order" in _cmdline_difference("a=1 ${xen_rm_opts} b", "b a=1")


# --------------------------------------------------------------------------- real line rate


@pytest.mark.timeout(120)
def test_at_the_real_38400_baud_line_rate() -> None:
    with simulated(fast=False, baud=38400, xen_args="dom0_mem=512M") as (host, con, _):
        result: OneshotResult = oneshot(con, power_cycle=host.power_on, quiet=0.15)
        assert result.verified
        assert host.xen is not None
        assert host.xen.xen_cmdline == "dom0_mem=512M " + " ".join(SERIAL_DEBUG_XEN)


# --------------------------------------------------------------------------- real GRUB bytes

SAMPLE = (
    Path(__file__).resolve().parents[1] / "data" / "samples" / "sol-session-grub2.06-xen4.17.raw"
)


@contextmanager
def screen_of(data: bytes) -> Iterator[_Driver]:
    """A driver whose screen has been fed ``data`` through a real pty and console."""
    master, slave = os.openpty()
    path = os.ttyname(slave)
    os.close(slave)
    try:
        with Console(open_transport(path), host="sample") as con:
            os.write(master, data)
            con.wait_for_bytes(len(data), timeout=10)
            yield _Driver(con, quiet=0.05, char_delay=0.02, poke_interval=1.0)
    finally:
        os.close(master)


@pytest.mark.skipif(not SAMPLE.exists(), reason="real GRUB capture not available")
def test_reads_menu_and_wrapped_editor_lines_from_real_grub_bytes() -> None:
    raw = SAMPLE.read_bytes()
    menu_end = raw.index(b"executed automatically in")
    with screen_of(raw[: menu_end + 80]) as menu:
        assert menu.on_menu() and not menu.on_editor()
        assert menu.menu_rows() == [
            ("Xen 4.17 hypervisor + Debian Linux Dom0 (busybox initramfs)", True),
            ("Debian Linux (no hypervisor, console on ttyS0)", False),
        ]
        assert not menu.more_above() and not menu.more_below()
    # The editor right before Ctrl-X: the cursor sits at the end of the wrapped, edited line.
    edited = raw[: raw.index(b"\x1b[H\x1b[J\x1b[1;1H  Booting a command list")]
    with screen_of(edited) as editor:
        assert editor.on_editor()
        assert editor.line_at_cursor() == (
            "        multiboot2 /boot/xen.gz com1=38400,8n1 console=com1 loglvl=all "
            "guest_loglvl=all dom0_mem=512M,max:512M dom0_max_vcpus=1 solcap_edit=1"
        )


# --------------------------------------------------------------------------- boot chains


def test_tboot_chain_gets_xen_options_on_the_xen_module_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """tboot first (Qubes AEM's shape): Xen's options go on `module /xen…`, Dom0's on the next
    module, tboot's own line is untouched — judged by what the simulated Xen booted."""
    tboot = "multiboot /tboot.gz placeholder logging=memory,serial,vga vga_delay=10"
    entry = GrubEntry(
        title="AEM Qubes, with Xen hypervisor",
        lines=(
            "echo 'Loading tboot ...'",
            tboot,
            "echo 'Loading Xen 4.8.4 ...'",
            "module /xen-4.8.4.gz placeholder console=vga dom0_mem=min:1024M",
            "module /vmlinuz-4.14.74-1.pvops.qubes.x86_64 placeholder ro rhgb quiet",
            "module /initramfs-4.14.74-1.pvops.qubes.x86_64.img",
            "module /4th_gen_i5_i7_SINIT_75.BIN",
        ),
    )
    use_entries(monkeypatch, (entry,))
    with simulated(grub_timeout=30) as (host, con, spy):
        result = oneshot(con, power_cycle=host.power_cycle, menu_timeout=30, entry="AEM")
        assert result.chain is not None and result.chain.startswith("tboot: multiboot /tboot.gz")
        assert result.xen_before == "placeholder console=vga dom0_mem=min:1024M"
        assert result.xen_after == (
            "placeholder console=com1 dom0_mem=min:1024M loglvl=all guest_loglvl=all com1=38400,8n1"
        )
        assert result.dom0_after == "placeholder ro rhgb quiet console=hvc0 earlyprintk=xen"
        assert result.verified
        assert b"vga_delay" not in spy.written  # tboot's line was never retyped
        assert host.xen is not None
        assert host.xen.xen_cmdline.split() == result.xen_after.split()
        assert host.xen.dom0_cmdline.split() == result.dom0_after.split()
        no_enter_in_editor(spy)


def test_arm64_xen_hypervisor_chain(monkeypatch: pytest.MonkeyPatch) -> None:
    entry = GrubEntry(
        title="Debian GNU/Linux, with Xen 4.17 and Linux 5.10.0-23-arm64",
        lines=(
            "echo\t'Loading Xen 4.17 ...'",
            "xen_hypervisor\t/boot/xen-4.17 placeholder   ${xen_rm_opts}",
            "echo\t'Loading Linux 5.10.0-23-arm64 ...'",
            "xen_module\t/boot/vmlinuz-5.10.0-23-arm64 placeholder ro  quiet",
            "xen_module\t--nounzip   /boot/initrd.img-5.10.0-23-arm64",
        ),
    )
    use_entries(monkeypatch, (entry,))
    with simulated(grub_timeout=30) as (host, con, _spy):
        result = oneshot(con, power_cycle=host.power_cycle, menu_timeout=30, entry="arm64")
        assert result.chain is not None and result.chain.startswith("arm64: xen_hypervisor")
        assert host.xen is not None
        assert host.xen.dom0_cmdline.split() == [
            "placeholder",
            "ro",
            "quiet",
            "console=hvc0",
            "earlyprintk=xen",
        ]
        assert "console=com1" in host.xen.xen_cmdline.split()


def test_unsafe_chain_is_refused_before_typing(monkeypatch: pytest.MonkeyPatch) -> None:
    entry = GrubEntry(
        title="Xen via tboot, no Xen",
        lines=("multiboot /tboot.gz logging=serial", "module /vmlinuz root=/dev/sda1 ro"),
    )
    use_entries(monkeypatch, (entry,))
    with simulated(grub_timeout=30) as (host, con, spy):
        with pytest.raises(TargetError, match=r"not Xen: a tboot chain.*nothing typed"):
            oneshot(con, power_cycle=host.power_cycle, menu_timeout=30, entry="tboot")
        assert b"console=" not in spy.written
        assert not host.wait_state("booting", 3) and host.xen is None
