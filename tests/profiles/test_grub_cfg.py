"""GRUB configuration editors on real-world files (see data/README.md)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from solcap.boot.profiles import BUILTIN_DIR, load_profile
from solcap.errors import ConfigError, UsageError
from solcap.grub.cfg import (
    edit_default_grub,
    edit_grub_cfg,
    effective_settings,
    entry_cmdlines,
    find_entries,
    override_warnings,
    scan_assignments,
    select_entry,
    sourcing_order,
    target_file,
    unified_diff,
)

DATA = Path(__file__).parent / "data"
DEFAULT_GRUB = (DATA / "debian12-default-grub").read_text()
XEN_CFG = (DATA / "debian12-grub.d-xen.cfg").read_text()
DEBIAN_CFG = (DATA / "debian12-grub.cfg").read_text()
RHEL_CFG = (DATA / "rhel-grub.cfg").read_text()

XEN = ["loglvl=all", "guest_loglvl=all", "com1=38400,8n1", "console=com1"]
DOM0 = ["console=hvc0", "earlyprintk=xen"]


def test_fixtures_are_the_debian_package_files() -> None:
    digest = hashlib.sha256(XEN_CFG.encode()).hexdigest()
    assert digest == "ec1fe0a5f2e0eff6e81529d86ea54812f66977008293d9a1f2004d2989114171"
    digest = hashlib.sha256(DEFAULT_GRUB.encode()).hexdigest()
    assert digest == "dc078cc84dea849b4444f059ba5975100015b452d818d455b69b71b4e9f69dd8"


# ----------------------------------------------------------------------- shell scanning


def test_scan_real_xen_cfg() -> None:
    found = {(a.name, a.line, a.nested) for a in scan_assignments(XEN_CFG)}
    # Commented templates are not assignments; the two inside `if` blocks are nested.
    assert found == {("XEN_OVERRIDE_GRUB_DEFAULT", 88, True), ("GRUB_DEFAULT", 91, True)}


def test_scan_real_default_grub() -> None:
    values = {a.name: (a.raw, a.quote) for a in scan_assignments(DEFAULT_GRUB)}
    assert values["GRUB_CMDLINE_LINUX_DEFAULT"] == ('"quiet"', '"')
    assert values["GRUB_CMDLINE_LINUX"] == ('""', '"')
    assert values["GRUB_DISTRIBUTOR"][1] is None  # backticks: not editable
    assert values["GRUB_DEFAULT"] == ("0", "")


# ----------------------------------------------------------------------- edit_default_grub


def test_edit_real_xen_cfg_appends_with_references() -> None:
    new = edit_default_grub(XEN_CFG, XEN, [], DOM0, [], path="xen.cfg")
    assert new.startswith(XEN_CFG)
    added = new[len(XEN_CFG) :]
    assert added == (
        "\n# Added by solcap: Xen hypervisor options (normal entries).\n"
        'GRUB_CMDLINE_XEN_DEFAULT="$GRUB_CMDLINE_XEN_DEFAULT loglvl=all guest_loglvl=all '
        'com1=38400,8n1 console=com1"\n'
        "\n# Added by solcap: Dom0 kernel options under Xen (replace "
        "GRUB_CMDLINE_LINUX_DEFAULT).\n"
        'GRUB_CMDLINE_LINUX_XEN_REPLACE_DEFAULT="$GRUB_CMDLINE_LINUX_DEFAULT console=hvc0 '
        'earlyprintk=xen"\n'
    )
    assert edit_default_grub(new, XEN, [], DOM0, []) == new


def test_edit_keeps_quoting_comments_and_unrelated_lines() -> None:
    text = (
        "# my settings\n"
        "GRUB_TIMEOUT=5\n"
        "GRUB_CMDLINE_XEN_DEFAULT='dom0_mem=4G,max:4G console=vga'  # keep me\n"
        "GRUB_CMDLINE_LINUX_XEN_REPLACE_DEFAULT=quiet\n"
    )
    new = edit_default_grub(text, XEN, [], DOM0, ["quiet"])
    assert new == (
        "# my settings\n"
        "GRUB_TIMEOUT=5\n"
        "GRUB_CMDLINE_XEN_DEFAULT='dom0_mem=4G,max:4G console=com1 loglvl=all "
        "guest_loglvl=all com1=38400,8n1'  # keep me\n"
        'GRUB_CMDLINE_LINUX_XEN_REPLACE_DEFAULT="console=hvc0 earlyprintk=xen"\n'
    )
    assert edit_default_grub(new, XEN, [], DOM0, ["quiet"]) == new


def test_self_reference_is_kept_and_literal_part_edited() -> None:
    text = (
        'GRUB_CMDLINE_XEN_DEFAULT="dom0_mem=2G loglvl=info"\n'
        'GRUB_CMDLINE_XEN_DEFAULT="$GRUB_CMDLINE_XEN_DEFAULT dom0_max_vcpus=2"\n'
    )
    new = edit_default_grub(
        text, ["loglvl=all"], ["dom0_mem"], variables=["GRUB_CMDLINE_XEN_DEFAULT"]
    )
    assert new == (
        'GRUB_CMDLINE_XEN_DEFAULT="loglvl=info"\n'
        'GRUB_CMDLINE_XEN_DEFAULT="$GRUB_CMDLINE_XEN_DEFAULT dom0_max_vcpus=2 loglvl=all"\n'
    )
    final = effective_settings([("f", new)])["GRUB_CMDLINE_XEN_DEFAULT"]
    assert final.value == "loglvl=info dom0_max_vcpus=2 loglvl=all"  # Xen: last wins
    assert final.history == (("f", 1), ("f", 2))


def test_removals_reach_the_companion_variable() -> None:
    text = 'GRUB_CMDLINE_XEN="console=vga noreboot"\nGRUB_CMDLINE_XEN_DEFAULT=""\n'
    new = edit_default_grub(text, ["console=com1"], ["noreboot"])
    assert new == 'GRUB_CMDLINE_XEN="console=vga"\nGRUB_CMDLINE_XEN_DEFAULT="console=com1"\n'


def test_both_xen_variables_can_be_selected() -> None:
    new = edit_default_grub(
        "", ["loglvl=all"], variables=["GRUB_CMDLINE_XEN", "GRUB_CMDLINE_XEN_DEFAULT"]
    )
    assert 'GRUB_CMDLINE_XEN="$GRUB_CMDLINE_XEN loglvl=all"' in new
    assert 'GRUB_CMDLINE_XEN_DEFAULT="$GRUB_CMDLINE_XEN_DEFAULT loglvl=all"' in new


def test_no_change_returns_identical_text() -> None:
    assert edit_default_grub(DEFAULT_GRUB) == DEFAULT_GRUB
    text = 'GRUB_CMDLINE_XEN_DEFAULT="loglvl=all"\n'
    assert edit_default_grub(text, ["loglvl=all"], variables=["GRUB_CMDLINE_XEN_DEFAULT"]) == text


def test_complex_value_is_refused_with_file_line_field() -> None:
    text = '\n\nGRUB_CMDLINE_XEN_DEFAULT="$(cat /etc/xenopts)"\n'
    with pytest.raises(ConfigError) as caught:
        edit_default_grub(text, ["loglvl=all"], path="/etc/default/grub.d/x.cfg")
    assert str(caught.value).startswith(
        "/etc/default/grub.d/x.cfg:3: GRUB_CMDLINE_XEN_DEFAULT: value too complex"
    )


def test_assignment_only_inside_if_is_refused() -> None:
    text = 'if [ -e /x ]; then\n  GRUB_CMDLINE_XEN_DEFAULT="a"\nfi\n'
    with pytest.raises(ConfigError, match=r":2: GRUB_CMDLINE_XEN_DEFAULT: only assigned inside"):
        edit_default_grub(text, ["loglvl=all"])


def test_unknown_variable_is_usage_error() -> None:
    with pytest.raises(UsageError, match="GRUB_TIMEOUT"):
        edit_default_grub("", ["x"], variables=["GRUB_TIMEOUT"])


@settings(max_examples=150, deadline=None)
@given(
    style=st.sampled_from(['"', "'", ""]),
    existing=st.lists(
        st.sampled_from(["loglvl=info", "console=vga", "noreboot", "$GRUB_CMDLINE_XEN_DEFAULT"]),
        max_size=4,
    ),
    add=st.lists(st.sampled_from([*XEN, "sync_console", "loglvl=warning"]), max_size=4),
    remove=st.lists(st.sampled_from(["noreboot", "console=vga", "loglvl"]), max_size=2),
)
def test_default_grub_edit_is_idempotent(
    style: str, existing: list[str], add: list[str], remove: list[str]
) -> None:
    value = " ".join(existing)
    if style == "" and (" " in value or not value):
        style = '"'
    text = f"# c\nGRUB_CMDLINE_XEN_DEFAULT={style}{value}{style}\nGRUB_TIMEOUT=5\n"
    once = edit_default_grub(text, add, remove)
    assert edit_default_grub(once, add, remove) == once
    assert once.startswith("# c\nGRUB_CMDLINE_XEN_DEFAULT=") and "GRUB_TIMEOUT=5\n" in once


# ----------------------------------------------------------------------- effective settings


def test_later_file_overrides_earlier() -> None:
    main = DEFAULT_GRUB + 'GRUB_CMDLINE_XEN_DEFAULT="dom0_mem=2G"\n'
    xen_cfg = XEN_CFG + 'GRUB_CMDLINE_XEN_DEFAULT="loglvl=all"\n'
    files = [("/etc/default/grub", main), ("/etc/default/grub.d/xen.cfg", xen_cfg)]
    setting = effective_settings(files)["GRUB_CMDLINE_XEN_DEFAULT"]
    assert (setting.value, setting.path) == ("loglvl=all", "/etc/default/grub.d/xen.cfg")
    assert override_warnings(files) == [
        "/etc/default/grub.d/xen.cfg:95 overrides /etc/default/grub:40: "
        "GRUB_CMDLINE_XEN_DEFAULT set there is ignored"
    ]
    assert target_file(files, "GRUB_CMDLINE_XEN_DEFAULT") == "/etc/default/grub.d/xen.cfg"
    # xen.cfg's GRUB_DEFAULT is computed at run time and set inside an `if`.
    grub_default = effective_settings(files)["GRUB_DEFAULT"]
    assert grub_default.dynamic and grub_default.conditional


def test_self_reference_is_not_an_override() -> None:
    files = [
        ("a", 'GRUB_CMDLINE_XEN_DEFAULT="x"\n'),
        ("b", 'GRUB_CMDLINE_XEN_DEFAULT="$GRUB_CMDLINE_XEN_DEFAULT y"\n'),
    ]
    assert override_warnings(files) == []
    assert effective_settings(files)["GRUB_CMDLINE_XEN_DEFAULT"].value == "x y"


def test_sourcing_order() -> None:
    paths = ["/etc/default/grub.d/xen.cfg", "/etc/default/grub.d/50-cloud.cfg", "/etc/default/grub"]
    assert sourcing_order(paths) == [
        "/etc/default/grub",
        "/etc/default/grub.d/50-cloud.cfg",
        "/etc/default/grub.d/xen.cfg",
    ]


# ----------------------------------------------------------------------- grub.cfg


def test_find_entries_debian() -> None:
    entries = find_entries(DEBIAN_CFG)
    assert len(entries) == 10
    xen = [e for e in entries if "Xen 4.17-amd64 and Linux 6.1.0-17-amd64 (recovery" in e.title]
    assert xen[0].submenus == (
        "Advanced options for Debian GNU/Linux (with Xen hypervisor)",
        "Xen hypervisor, version 4.17-amd64",
    )
    assert xen[0].entry_id == (
        "xen-gnulinux-6.1.0-17-amd64-recovery-5b6f7a0e-1c2d-4e3f-8a9b-0c1d2e3f4a5b"
    )


def test_edit_simple_debian_xen_entry() -> None:
    profile = load_profile("xen-serial-debug", [BUILTIN_DIR])
    new = edit_grub_cfg(
        DEBIAN_CFG, r"with Xen hypervisor$", profile.xen.options, (), profile.dom0.options, ()
    )
    diff = unified_diff(DEBIAN_CFG, new, "/boot/grub/grub.cfg")
    assert diff.count("\n-\t") == 2 and diff.count("\n+\t") == 2  # exactly two lines change
    xen, dom0 = entry_cmdlines(new, r"with Xen hypervisor$")
    assert xen == (
        "placeholder dom0_mem=2G,max:2G dom0_max_vcpus=1-2 loglvl=all guest_loglvl=all "
        "com1=38400,8n1 console=com1 ${xen_rm_opts}"
    )
    assert dom0 == (
        "placeholder root=UUID=5b6f7a0e-1c2d-4e3f-8a9b-0c1d2e3f4a5b ro quiet console=hvc0 "
        "earlyprintk=xen"
    )
    assert "\tmultiboot2\t/boot/xen-4.17-amd64.gz placeholder dom0_mem" in new
    again = edit_grub_cfg(
        new, r"with Xen hypervisor$", profile.xen.options, (), profile.dom0.options, ()
    )
    assert again == new


def test_edit_entry_inside_nested_submenus() -> None:
    pattern = r"Xen 4\.17-amd64 and Linux 6\.1\.0-17-amd64 \(recovery mode\)"
    new = edit_grub_cfg(DEBIAN_CFG, pattern, XEN, [], DOM0, [])
    xen, dom0 = entry_cmdlines(new, pattern)
    assert (
        xen == "placeholder loglvl=all guest_loglvl=all com1=38400,8n1 console=com1 ${xen_rm_opts}"
    )
    assert dom0 is not None and dom0.endswith("ro single console=hvc0 earlyprintk=xen")
    # Every other entry is byte-identical.
    changed = [
        i
        for i, (a, b) in enumerate(zip(DEBIAN_CFG.splitlines(), new.splitlines(), strict=True))
        if a != b
    ]
    assert [i + 1 for i in changed] == [274, 276]


def test_entry_by_id_and_by_path() -> None:
    by_id = select_entry(DEBIAN_CFG, r"xen-gnulinux-simple-.*")
    assert by_id.title == "Debian GNU/Linux, with Xen hypervisor"
    by_path = select_entry(DEBIAN_CFG, r"Xen hypervisor, version.*>.*6\.1\.0-18-amd64$")
    assert by_path.line == 196


def test_ambiguous_pattern_is_refused() -> None:
    with pytest.raises(ConfigError) as caught:
        edit_grub_cfg(
            DEBIAN_CFG, r"Xen 4\.17-amd64 and Linux 6\.1\.0-18", XEN, path="/boot/grub/grub.cfg"
        )
    message = caught.value.one_line()
    assert message.startswith("/boot/grub/grub.cfg: menuentry: 2 menuentries match")
    assert "line 196" in message and "line 217" in message


def test_no_match_is_refused() -> None:
    with pytest.raises(ConfigError, match="no menuentry matches 'Windows'"):
        edit_grub_cfg(DEBIAN_CFG, "Windows", XEN)


def test_non_xen_entry_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"grub.cfg:82: menuentry: .*boots Linux directly"):
        edit_grub_cfg(DEBIAN_CFG, r"^Debian GNU/Linux$", XEN)


def test_bad_regex_is_usage_error() -> None:
    with pytest.raises(UsageError, match="bad entry pattern"):
        select_entry(DEBIAN_CFG, "(")


def test_rhel_multiboot_module_entry() -> None:
    profile = load_profile("xen-serial-115200", [BUILTIN_DIR])
    pattern = r"^CentOS Linux, with Xen hypervisor$"
    new = edit_grub_cfg(
        RHEL_CFG, pattern, profile.xen.options, (), profile.dom0.options, ("rhgb", "quiet")
    )
    xen, dom0 = entry_cmdlines(new, pattern)
    # console=com1,tty is replaced (Xen: one value per key); everything else stays in place.
    assert xen == (
        "placeholder dom0_mem=1024M,max:1024M cpuinfo com1=115200,8n1 console=com1 loglvl=all "
        "guest_loglvl=all ${xen_rm_opts}"
    )
    assert dom0 == (
        "placeholder root=/dev/mapper/centos-root ro crashkernel=auto rd.lvm.lv=centos/root "
        "rd.lvm.lv=centos/swap console=hvc0 earlyprintk=xen"
    )
    assert "\tmultiboot\t/xen-4.17.3-1.el7.gz placeholder" in new


def test_line_continuations_are_understood() -> None:
    text = (
        "menuentry 'Xen (hand-written)' {\n"
        "\tmultiboot2 /xen.gz console=vga \\\n"
        "\t\tloglvl=info\n"
        "\tmodule2 /vmlinuz root=/dev/sda1 \\\n"
        "\t\tro\n"
        "}\n"
    )
    assert entry_cmdlines(text, "Xen") == ("console=vga \t\tloglvl=info", "root=/dev/sda1 \t\tro")
    new = edit_grub_cfg(text, "Xen", ["console=com1"], [], ["console=hvc0"], [])
    assert new == (
        "menuentry 'Xen (hand-written)' {\n"
        "\tmultiboot2 /xen.gz console=com1 loglvl=info\n"
        "\tmodule2 /vmlinuz root=/dev/sda1 ro console=hvc0\n"
        "}\n"
    )
    # Untouched continuation lines stay as they were.
    assert edit_grub_cfg(text, "Xen", [], [], [], []) == text


def test_unified_diff_is_empty_without_change() -> None:
    assert unified_diff(DEBIAN_CFG, DEBIAN_CFG, "grub.cfg") == ""
    assert unified_diff("a\n", "b\n", "f").startswith("--- f (current)\n+++ f (solcap)\n")
