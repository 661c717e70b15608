"""Boot options: a strict grammar, and quoting that keeps them data in shell and GRUB script.

``update-grub`` sources /etc/default/grub as shell (as root) and 20_linux_xen pastes the
variables unquoted into grub.cfg, where ``;`` ends a GRUB command. So an option that carries a
shell or GRUB-script metacharacter must be refused before anything is written, and what
solcap writes must expand, when sourced by a real shell, to exactly the intended words.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from solcap.boot.bootline import check_option, merge
from solcap.boot.profiles import load_profile
from solcap.errors import ConfigError, UsageError
from solcap.grub.cfg import edit_default_grub, edit_grub_cfg

#: Real options from Xen's and Linux's documentation and from hosts in service.
GOOD = [
    "loglvl=all/all",
    "com1=115200,8n1,0x3f8,4",
    "console=com1,vga",
    "dom0_mem=1G,max:1G",
    "dom0_max_vcpus=1-4",
    "no-real-mode",
    "iommu=no-igfx",
    "cpufreq=xen:performance",
    "root=UUID=4f1c2d3e-0000-4000-8000-1234567890ab",
    "root=/dev/mapper/vg0-root",
    "rd.lvm.lv=vg0/root",
    "console=ttyS0,115200n8",
    "crashkernel=1G-4G:192M,4G-64G:256M",
    "memmap=64M@0x1000000",
    "xen-pciback.hide=(0000:03:00.0)(0000:04:00.0)",
    "vfio-pci.ids=10de:1b80,10de:10f0",
    "conswitch=ax",
    "console=",
    "quiet",
]

#: Shell or GRUB-script metacharacters, quotes, control bytes, non-ASCII.
BAD = [
    "a;id>/tmp/x",
    "a|b",
    "a&b",
    "a>b",
    "a<b",
    "{a}",
    "a}",
    "a\x00b",
    "a'b",
    'a"b',
    "a$b",
    "a`id`",
    "a\\b",
    "a#b",
    "#a",
    "a*",
    "a?",
    "a[1]",
    "a!",
    "a~",
    "a\tb",
    "a\nb",
    "a\x1bb",
    "caf\u00e9",
    "=value",
    "",
]


@pytest.mark.parametrize("option", GOOD)
def test_real_options_are_accepted(option: str) -> None:
    assert check_option(option) is None
    assert merge("", [option], kind="xen") == option


@pytest.mark.parametrize("option", BAD)
def test_metacharacters_are_refused_by_the_grammar(option: str) -> None:
    reason = check_option(option)
    assert reason is not None and "\n" not in reason
    with pytest.raises(UsageError):
        merge("", [option], kind="linux")
    with pytest.raises(UsageError):
        merge("quiet", remove=[option], kind="linux")


@pytest.mark.parametrize("option", ["a;id>/tmp/x", "a|b", "a&b", "a>b", "{a}", "a\x00b"])
def test_profile_with_metacharacter_is_refused_naming_file_line_field(
    tmp_path: Path, option: str
) -> None:
    path = tmp_path / "evil.toml"
    escaped = option.replace("\x00", "\\u0000")
    path.write_text(f'name = "evil"\n\n[xen]\noptions = ["{escaped}"]\n', encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_profile(path, [tmp_path])
    assert str(caught.value).startswith(f"{path}:4: xen.options: ")
    assert "\n" not in caught.value.one_line()


def _source(tmp_path: Path, text: str, name: str) -> str:
    """Source ``text`` with /bin/sh as grub-mkconfig does, in ``tmp_path``; print ``$name``."""
    sh = shutil.which("sh")
    assert sh is not None
    default = tmp_path / "default-grub"
    default.write_text(text, encoding="utf-8")
    done = subprocess.run(
        [sh, "-c", f'. ./default-grub && printf %s "${name}"'],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_injection_through_an_unquoted_assignment_cannot_run(tmp_path: Path) -> None:
    # Before: X=a;id>MARKER was written unquoted, and sourcing it ran `id` into MARKER.
    text = "GRUB_CMDLINE_XEN_DEFAULT=\n"
    try:
        after: str | None = edit_default_grub(text, xen_add=["a;id>MARKER"])
    except UsageError:
        after = None
    if after is not None:
        _source(tmp_path, after, "GRUB_CMDLINE_XEN_DEFAULT")
    assert not (tmp_path / "MARKER").exists()
    assert after is None


@pytest.mark.parametrize(
    ("before", "expected"),
    [
        ("GRUB_CMDLINE_XEN_DEFAULT=\n", 'GRUB_CMDLINE_XEN_DEFAULT="{v}"\n'),
        ("GRUB_CMDLINE_XEN_DEFAULT=loglvl=all\n", 'GRUB_CMDLINE_XEN_DEFAULT="loglvl=all {v}"\n'),
        ("GRUB_CMDLINE_XEN_DEFAULT=''\n", "GRUB_CMDLINE_XEN_DEFAULT='{v}'\n"),
        ('GRUB_CMDLINE_XEN_DEFAULT=""\n', 'GRUB_CMDLINE_XEN_DEFAULT="{v}"\n'),
    ],
)
def test_written_values_are_quoted_and_source_to_the_exact_words(
    tmp_path: Path, before: str, expected: str
) -> None:
    # Parentheses are legal in a Linux option and a shell metacharacter when unquoted:
    # before, an unquoted assignment was written back unquoted and sourcing it failed.
    option = "xen-pciback.hide=(0000:03:00.0)"
    after = edit_default_grub(before, xen_add=[option])
    assert after == expected.format(v=option)
    words = _source(tmp_path, after, "GRUB_CMDLINE_XEN_DEFAULT").split()
    assert words[-1] == option


def test_created_variable_sources_to_the_profile_words(tmp_path: Path) -> None:
    after = edit_default_grub(
        "GRUB_CMDLINE_LINUX_DEFAULT=quiet\n",
        xen_add=["com1=115200,8n1", "dom0_mem=1G,max:1G"],
        dom0_add=["console=hvc0", "xen-pciback.hide=(0000:03:00.0)"],
    )
    assert _source(tmp_path, after, "GRUB_CMDLINE_XEN_DEFAULT").split() == [
        "com1=115200,8n1",
        "dom0_mem=1G,max:1G",
    ]
    assert _source(tmp_path, after, "GRUB_CMDLINE_LINUX_XEN_REPLACE_DEFAULT").split() == [
        "quiet",
        "console=hvc0",
        "xen-pciback.hide=(0000:03:00.0)",
    ]


CFG = """\
menuentry 'Debian GNU/Linux, with Xen hypervisor' --class debian {{
\tmultiboot2\t/boot/xen.gz placeholder {xen} ${{xen_rm_opts}}
\tmodule2\t/boot/vmlinuz-6.1.0-18-amd64 placeholder root=/dev/sda1 ro {dom0}
}}
"""


@pytest.mark.parametrize(
    "xen",
    [
        "dom0_mem=1G # old setting",
        "dom0_mem=1G; echo hi",
        "dom0_mem=1G && true",
        "dom0_mem=1G | cat",
        "dom0_mem=1G > /dev/null",
        "dom0_mem=1G\\ x",
    ],
)
def test_grub_cfg_line_with_script_syntax_is_refused(xen: str) -> None:
    # Before: options were appended after a '#' (ignored by GRUB) or after ';' (given to
    # another command).
    text = CFG.format(xen=xen, dom0="quiet")
    with pytest.raises(ConfigError) as caught:
        edit_grub_cfg(text, "with Xen", xen_add=["loglvl=all"])
    assert ":2: multiboot2: " in str(caught.value)


def test_grub_cfg_double_quoted_word_stays_one_word() -> None:
    text = CFG.format(xen='dom0_mem=1G "x=a b"', dom0="quiet")
    after = edit_grub_cfg(text, "with Xen", xen_add=["loglvl=all"])
    assert '\tmultiboot2\t/boot/xen.gz placeholder dom0_mem=1G "x=a b" loglvl=all' in after
    assert "${xen_rm_opts}" in after


def test_grub_cfg_refuses_metacharacter_options() -> None:
    text = CFG.format(xen="dom0_mem=1G", dom0="quiet")
    with pytest.raises(UsageError):
        edit_grub_cfg(text, "with Xen", dom0_add=["a;reboot"])
