"""Boot chains of real GRUB entries from each family, edited for a profile (golden files).

Every ``tests/grub/data/chains/*`` input is a configuration posted publicly by a Xen user or
shipped in a project's documentation (``tests/grub/data/chains/README.md`` cites each one).
For each, the test checks which line the chain model takes as Xen's and which as Dom0's and
compares the whole edited file byte for byte with its ``.golden`` file, so a change in what
solcap writes shows up as a diff a person can read. ``SOLCAP_REGEN_GOLDEN=1`` rewrites them.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from solcap.boot.profiles import load_profile
from solcap.errors import ConfigError
from solcap.grub.cfg import edit_grub_cfg, entry_chain, entry_cmdlines, xen_entry_chains
from solcap.grub.chain import ChainError, find_chain, split_command
from solcap.grub.remote import verify_grub_cfg, xen_entries

DATA = Path(__file__).parent / "data" / "chains"
PROFILE = load_profile("xen-serial-debug")
XEN = PROFILE.xen.options
DOM0 = PROFILE.dom0.options


def golden(name: str, text: str) -> None:
    path = DATA / f"{name}.golden"
    if os.environ.get("SOLCAP_REGEN_GOLDEN"):
        path.write_text(text)
    assert text == path.read_text(), f"{path.name} differs (SOLCAP_REGEN_GOLDEN=1 rewrites)"


def edit(name: str, pattern: str) -> str:
    text = (DATA / name).read_text()
    return edit_grub_cfg(text, pattern, XEN, (), DOM0, (), path=name)


# (input file, entry pattern, family, Xen image, Dom0 kernel image)
CASES = [
    ("xcpng-8.1-grub.cfg", "^XCP-ng$", "multiboot2", "/boot/xen.gz", "/boot/vmlinuz-4.19-xen"),
    (
        "arch-xen-4.2-multiboot-grub.cfg",
        "Arch Xen",
        "multiboot",
        "/boot/xen.gz",
        "/boot/vmlinuz-linux",
    ),
    (
        "qubes-aem-tboot-xen-4.8.4-grub.cfg",
        "AEM Qubes",
        "tboot",
        "/xen-4.8.4.gz",
        "/vmlinuz-4.14.74-1.pvops.qubes.x86_64",
    ),
    ("tboot-readme-grub.cfg", "Trusted Execution", "tboot", "/xen.gz", "/vmlinuz-2.6.18-xen"),
    (
        "debian12-arm64-xen-4.17-grub.cfg",
        "Xen 4.17 and Linux",
        "arm64",
        "/boot/xen-4.17",
        "/boot/vmlinuz-5.10.0-23-arm64",
    ),
]


@pytest.mark.parametrize(("name", "pattern", "family", "xen", "kernel"), CASES)
def test_real_entry_chain_and_golden_edit(
    name: str, pattern: str, family: str, xen: str, kernel: str
) -> None:
    text = (DATA / name).read_text()
    chain = entry_chain(text, pattern, name)
    assert chain.family == family
    assert chain.hypervisor.image == xen
    assert chain.kernel is not None and chain.kernel.image == kernel
    new = edit(name, pattern)
    golden(name, new)
    # Xen's options on Xen's line, Dom0's on the kernel's line, and nowhere else.
    xen_args, dom0_args = entry_cmdlines(new, pattern, name)
    assert all(option in xen_args.split() for option in XEN)
    assert dom0_args is not None and all(option in dom0_args.split() for option in DOM0)
    assert not any(option in dom0_args.split() for option in XEN if option != "console=com1")
    changed = [(a, b) for a, b in zip(text.splitlines(), new.splitlines(), strict=True) if a != b]
    assert len(changed) == 2  # exactly the hypervisor line and the Dom0 kernel line
    # Applying the profile again changes nothing (idempotent).
    assert edit_grub_cfg(new, pattern, XEN, (), DOM0, (), path=name) == new


def test_tboot_line_is_never_edited() -> None:
    """The bug this model fixes: Xen's options used to land on tboot's own line."""
    name = "qubes-aem-tboot-xen-4.8.4-grub.cfg"
    new = edit(name, "AEM Qubes")
    tboot = next(line for line in new.splitlines() if "tboot.gz" in line)
    assert tboot == "    multiboot /tboot.gz placeholder logging=memory,serial,vga vga_delay=10"
    xen_line = next(line for line in new.splitlines() if "/xen-4.8.4.gz" in line)
    assert "console=com1" in xen_line and "com1=38400,8n1" in xen_line
    sinit = next(line for line in new.splitlines() if "SINIT" in line)
    assert sinit == "    module    /4th_gen_i5_i7_SINIT_75.BIN"
    chain = entry_chain(new, "AEM Qubes", name)
    assert [line.image for line in chain.first_stage] == ["/tboot.gz"]
    assert [line.image for line in chain.extra] == ["/4th_gen_i5_i7_SINIT_75.BIN"]
    assert chain.describe() == (
        "tboot: multiboot /tboot.gz → module /xen-4.8.4.gz → "
        "module /vmlinuz-4.14.74-1.pvops.qubes.x86_64 → "
        "module /initramfs-4.14.74-1.pvops.qubes.x86_64.img"
    )


def test_arm64_fragment_from_a_mail() -> None:
    """A Raspberry Pi 4 xen_boot section (lines only, as posted): devicetree is not a module."""
    lines = [
        line
        for i, raw in enumerate((DATA / "rpi4-xen-4.14-fragment.txt").read_text().splitlines())
        if (line := split_command(i, raw.split())) is not None
    ]
    chain = find_chain(lines)
    assert chain.family == "arm64"
    assert chain.hypervisor.image == "/boot/xen-4.14-arm64.efi"
    assert (
        chain.kernel is not None
        and chain.kernel.args[0] == "root=UUID=01234567-dead-beef-d13d-456789abcdef"
    )
    assert [(line.options, line.image) for line in chain.initrd] == [
        (("--nounzip",), "/boot/initrd.img-5.8.10-2rp4-6.1.7")
    ]


def test_trenchboot_slaunch_of_a_non_xen_kernel_is_refused() -> None:
    """TrenchBoot's own example launches Zephyr, not Xen: refused, with the reason."""
    name = "trenchboot-zephyr-slaunch-grub.cfg"
    text = (DATA / name).read_text()
    with pytest.raises(ConfigError, match=r"zephyr\.elf, which looks like neither Xen nor tboot"):
        edit_grub_cfg(text, r"Zephyr \(DLME\)", XEN, path=name)


def test_trenchboot_slaunch_xen_chain() -> None:
    """The line shape QubesOS/qubes-antievilmaid's 19_linux_xen_trenchboot emits (values are
    the test's own): ``slaunch`` first, ``slaunch_module`` (SINIT) last, never edited."""
    text = (
        "menuentry 'AEM Qubes, with Xen hypervisor' {\n"
        "\techo\t'Enabling slaunch ...'\n"
        "\tslaunch\n"
        "\techo\t'Loading Xen 4.17.4 ...'\n"
        "\tmultiboot2\t/xen-4.17.4.gz placeholder console=none ${xen_rm_opts}\n"
        "\techo\t'Loading Linux 6.6.21 ...'\n"
        "\tmodule2\t/vmlinuz-6.6.21 placeholder root=/dev/mapper/qubes_dom0-root ro\n"
        "\techo\t'Loading initial ramdisk ...'\n"
        "\tmodule2\t/initramfs-6.6.21.img\n"
        "\techo\t'Loading SINIT module SINIT.BIN ...'\n"
        "\tslaunch_module\t/SINIT.BIN\n"
        "}\n"
    )
    chain = entry_chain(text, "AEM")
    assert chain.family == "slaunch"
    assert [line.command for line in chain.first_stage] == ["slaunch", "slaunch_module"]
    new = edit_grub_cfg(text, "AEM", XEN, (), DOM0)
    assert "\tslaunch\n" in new and "\tslaunch_module\t/SINIT.BIN\n" in new
    assert (
        "\tmultiboot2\t/xen-4.17.4.gz placeholder console=com1 loglvl=all guest_loglvl=all "
        "com1=38400,8n1 ${xen_rm_opts}\n" in new
    )


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("linux /vmlinuz root=/dev/sda1\ninitrd /initrd.img", "boots Linux directly"),
        ("chainloader /EFI/xen/xen.efi", "edit that file instead"),
        ("multiboot2 $xen_path placeholder\nmodule2 /vmlinuz", "a GRUB variable"),
        ("multiboot /tboot.gz\nmodule /vmlinuz root=/dev/sda1", "not Xen: a tboot chain"),
        (
            "if [ x = y ]; then\nmultiboot2 /xen-a.gz\nelse\nmultiboot2 /xen-b.gz\nfi",
            "2 loader lines",
        ),
        ("multiboot2 /xen.gz\nmodule /vmlinuz", "mixes multiboot2 with module"),
    ],
)
def test_unsafe_chains_are_refused_with_the_reason(body: str, reason: str) -> None:
    text = "menuentry 'x' {\n" + body + "\n}\n"
    with pytest.raises(ConfigError, match=reason):
        edit_grub_cfg(text, "x", XEN, path="grub.cfg")
    lines = [
        line
        for i, raw in enumerate(body.splitlines())
        if (line := split_command(i, raw.split())) is not None
    ]
    with pytest.raises(ChainError):
        find_chain(lines)


#: Debian 12 hosts whose grub.cfg offers more than Xen (README.md cites each block): memtest86+
#: 6.10-4's `linux` entries and os-prober's Windows `chainloader +1`; memtest86+ 5.x's
#: "experimental multiboot" entries (`multiboot /boot/memtest86+_multiboot.bin`).
MIXED = ["debian12-xen-memtest86+-os-prober-grub.cfg", "debian-xen-memtest86+-5-multiboot-grub.cfg"]
XEN_ADVANCED = (
    "Advanced options for Debian GNU/Linux (with Xen hypervisor)>Xen hypervisor, version "
)
DEBIAN_XEN_ENTRIES = [
    "Debian GNU/Linux, with Xen hypervisor",
    f"{XEN_ADVANCED}4.17-amd64>Debian GNU/Linux, with Xen 4.17-amd64 and Linux 6.1.0-18-amd64",
    f"{XEN_ADVANCED}4.17-amd64>Debian GNU/Linux, with Xen 4.17-amd64 and Linux 6.1.0-18-amd64 "
    "(recovery mode)",
    f"{XEN_ADVANCED}4.17-amd64>Debian GNU/Linux, with Xen 4.17-amd64 and Linux 6.1.0-17-amd64",
    f"{XEN_ADVANCED}4.17-amd64>Debian GNU/Linux, with Xen 4.17-amd64 and Linux 6.1.0-17-amd64 "
    "(recovery mode)",
]


@pytest.mark.parametrize("name", MIXED)
def test_xen_entries_are_chosen_among_memtest_and_os_prober_entries(name: str) -> None:
    """Without --entry, the entries to edit are the Xen ones; memtest86+ (linux, linux16 or
    multiboot of a memtest image) and Windows (chainloader +1) are skipped, not refused. The
    golden file is every non-recovery Xen entry edited: the other entries stay byte for byte."""
    text = (DATA / name).read_text()
    found = xen_entry_chains(text, name)
    assert [entry.path for entry, _ in found] == DEBIAN_XEN_ENTRIES
    assert {chain.family for _, chain in found} == {"multiboot2"}
    new = text
    edited = 0
    for entry, _ in found:
        if "recovery" in entry.title:
            continue
        assert entry.entry_id is not None
        new = edit_grub_cfg(new, re.escape(entry.entry_id), XEN, (), DOM0, (), path=name)
        edited += 1
    golden(name, new)
    changed = [(a, b) for a, b in zip(text.splitlines(), new.splitlines(), strict=True) if a != b]
    assert len(changed) == 2 * edited == 6
    assert all(("multiboot2\t" in a or "module2\t" in a) for a, _ in changed)
    titles = [title for title, _, _ in xen_entries(new, None, name)]
    assert titles == [t for t in DEBIAN_XEN_ENTRIES if "recovery" not in t]
    assert verify_grub_cfg(new, PROFILE, entry_pattern=None, path=name) == titles


@pytest.mark.parametrize(
    ("name", "pattern", "reason"),
    [
        (MIXED[0], r"^Memory test \(memtest86\+x64\.bin\)$", "boots Linux directly"),
        (MIXED[0], r"^Windows 10", r"chainloads something other than Xen \(chainloader \+1\)"),
        (
            MIXED[1],
            r"^Memory test \(memtest86\+, experimental multiboot\)$",
            r"multiboot loads /boot/memtest86\+_multiboot\.bin, which looks like neither Xen",
        ),
    ],
)
def test_a_non_xen_entry_named_by_entry_is_refused_with_the_reason(
    name: str, pattern: str, reason: str
) -> None:
    text = (DATA / name).read_text()
    with pytest.raises(ConfigError, match=reason):
        edit_grub_cfg(text, pattern, XEN, (), DOM0, (), path=name)
    with pytest.raises(ConfigError, match=reason):
        xen_entries(text, pattern, name)


def test_a_xen_entry_that_cannot_be_edited_is_refused_even_without_entry() -> None:
    """Skipping is for entries that do not boot Xen: a 40_custom Xen entry whose image is a
    GRUB variable may be the one that boots, so the choice is refused, naming it."""
    text = (
        (DATA / MIXED[0])
        .read_text()
        .replace(
            "### END /etc/grub.d/40_custom ###",
            "menuentry 'Xen (custom)' {\n\tmultiboot2\t$xen_image placeholder\n"
            "\tmodule2\t/boot/vmlinuz-6.1.0-18-amd64 root=/dev/sda2\n}\n"
            "### END /etc/grub.d/40_custom ###",
        )
    )
    with pytest.raises(ConfigError, match=r"entry 'Xen \(custom\)': multiboot2 loads \$xen_image"):
        xen_entry_chains(text, MIXED[0])
    with pytest.raises(ConfigError, match=r"a GRUB variable"):
        verify_grub_cfg(text, PROFILE, entry_pattern=None, path=MIXED[0])
