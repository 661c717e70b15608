"""Xen EFI ``xen.cfg`` edits on the examples from Xen's own docs/misc/efi.pandoc (golden)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from solcap.boot.profiles import load_profile
from solcap.errors import ConfigError, UsageError
from solcap.grub.xencfg import edit_xen_cfg, read_xen_cfg, xen_cfg_cmdlines

DATA = Path(__file__).parent / "data" / "chains"
PROFILE = load_profile("xen-serial-debug")


def golden(name: str, text: str) -> None:
    path = DATA / f"{name}.golden"
    if os.environ.get("SOLCAP_REGEN_GOLDEN"):
        path.write_text(text)
    assert text == path.read_text(), f"{path.name} differs (SOLCAP_REGEN_GOLDEN=1 rewrites)"


@pytest.mark.parametrize(
    ("name", "section"),
    [("xen-efi-pandoc-xen.cfg", "sle11sp2"), ("xen-efi-pandoc-dom0less-xen.cfg", "xen")],
)
def test_efi_pandoc_examples(name: str, section: str) -> None:
    text = (DATA / name).read_text()
    assert read_xen_cfg(text, name).section == section  # from [global] default=
    new = edit_xen_cfg(
        text, PROFILE.xen.options, PROFILE.xen.remove, PROFILE.dom0.options, path=name
    )
    golden(name, new)
    xen, dom0 = xen_cfg_cmdlines(new, name)
    assert xen is not None and all(o in xen.split() for o in PROFILE.xen.options)
    assert dom0 is not None and dom0.split()[-2:] == ["console=hvc0", "earlyprintk=xen"]
    changed = [a for a, b in zip(text.splitlines(), new.splitlines(), strict=True) if a != b]
    assert [c.split("=", 1)[0] for c in changed] == ["options", "kernel"]
    again = edit_xen_cfg(new, PROFILE.xen.options, (), PROFILE.dom0.options, path=name)
    assert again == new


def test_typical_example_keeps_its_baud_for_com1_replaced_by_the_profiles() -> None:
    name = "xen-efi-pandoc-xen.cfg"
    new = edit_xen_cfg((DATA / name).read_text(), PROFILE.xen.options, path=name)
    assert "options=console=com1 com1=38400,8n1 loglvl=all noreboot guest_loglvl=all\n" in new


def test_without_default_the_first_instances_are_used() -> None:
    text = "[a]\noptions=loglvl=info\nkernel=vmlinuz-a ro\n[b]\noptions=x\nkernel=vmlinuz-b\n"
    assert read_xen_cfg(text).section is None
    new = edit_xen_cfg(text, ["console=com1"], (), ["console=hvc0"])
    assert new == (
        "[a]\noptions=loglvl=info console=com1\nkernel=vmlinuz-a ro console=hvc0\n"
        "[b]\noptions=x\nkernel=vmlinuz-b\n"
    )


def test_global_values_fill_in_for_the_section() -> None:
    text = "[global]\ndefault=s\noptions=loglvl=all\n\n[s]\nkernel=vmlinuz root=/dev/sda\n"
    new = edit_xen_cfg(text, ["console=com1"], (), ["console=hvc0"])
    assert "options=loglvl=all console=com1\n" in new
    assert "kernel=vmlinuz root=/dev/sda console=hvc0\n" in new


def test_missing_options_line_is_created_in_the_booting_section() -> None:
    text = "[global]\ndefault=s\n\n[s]\nkernel=vmlinuz ro\n"
    new = edit_xen_cfg(text, ["console=com1"])
    assert new == "[global]\ndefault=s\n\n[s]\noptions=console=com1\nkernel=vmlinuz ro\n"


def test_refusals_name_the_line() -> None:
    with pytest.raises(ConfigError, match=r"xen.cfg:2: default: default=gone but there is no"):
        edit_xen_cfg("[global]\ndefault=gone\n[s]\noptions=x\n", ["console=com1"])
    with pytest.raises(ConfigError, match=r"no kernel= line .*\[s\]"):
        edit_xen_cfg("[global]\ndefault=s\n[s]\noptions=x\n", (), (), ["console=hvc0"])
    with pytest.raises(ConfigError, match=r"xen.cfg:2: .*ASCII"):
        edit_xen_cfg("[s]\noptions=caf\u00e9\n", ["console=com1"])
    with pytest.raises(UsageError, match=r"no \[other\] section"):
        edit_xen_cfg("[s]\noptions=x\n", ["console=com1"], section="other")
