"""Persistent GRUB edits over a real SSH session, with every file under a temp root prefix.

The regenerate tools are stub scripts on the remote PATH prefix. The good stub does what
grub-mkconfig's 20_linux_xen does with the variables (sources /etc/default/grub and
grub.d/*.cfg under the root prefix, builds the multiboot2/module2 lines from them), so the
verification step checks real data flow; the bad stub ignores the variables.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from solcap.boot.profiles import Profile, load_profile
from solcap.errors import TargetError, UsageError
from solcap.grub.cfg import entry_cmdlines
from solcap.grub.remote import RemoteLayout, apply_persistent, plan_persistent
from solcap.transports.ssh import SBIN_PATH, SshConnection, SshTarget, connect

from .conftest import SUDO_PASSWORD, Sshd, SudoLogin

DATA = Path(__file__).resolve().parent.parent / "profiles" / "data"

MKCONFIG = r"""#!/bin/sh
# Test stand-in for update-grub / grub-mkconfig: source the defaults under $SOLCAP_ROOT the way
# grub-mkconfig does and write 20_linux_xen-shaped entries from the variables.
set -e
root="${SOLCAP_ROOT:-/}"
out="$root/@CFG@"
if [ "$1" = "-o" ]; then out="$2"; fi
grub_warn() { echo "Warning: $*" >&2; }
gettext() { printf '%s' "$1"; }
. "$root/etc/default/grub"
for f in "$root"/etc/default/grub.d/*.cfg; do
    if [ -e "$f" ]; then . "$f"; fi
done
plain="${GRUB_CMDLINE_LINUX} ${GRUB_CMDLINE_LINUX_DEFAULT}"
if [ -n "$GRUB_CMDLINE_LINUX_XEN_REPLACE" ]; then
    GRUB_CMDLINE_LINUX="$GRUB_CMDLINE_LINUX_XEN_REPLACE"
fi
if [ -n "$GRUB_CMDLINE_LINUX_XEN_REPLACE_DEFAULT" ]; then
    GRUB_CMDLINE_LINUX_DEFAULT="$GRUB_CMDLINE_LINUX_XEN_REPLACE_DEFAULT"
fi
@IGNORE@
xen="/boot/xen-4.17-amd64.gz"
kernel="/boot/vmlinuz-6.1.0-18-amd64"
xen_args="${GRUB_CMDLINE_XEN} ${GRUB_CMDLINE_XEN_DEFAULT}"
dom0_args="${GRUB_CMDLINE_LINUX} ${GRUB_CMDLINE_LINUX_DEFAULT}"
cat > "$out.new" <<EOF
menuentry 'Debian GNU/Linux' --class debian \$menuentry_id_option 'gnulinux-simple-x' {
	linux	$kernel root=UUID=x ro ${plain}
}
menuentry 'Debian GNU/Linux, with Xen hypervisor' \$menuentry_id_option 'xen-simple-x' {
	multiboot2	$xen placeholder $xen_args \${xen_rm_opts}
	module2	$kernel placeholder root=UUID=x ro $dom0_args
	module2	--nounzip   /boot/initrd.img-6.1.0-18-amd64
}
menuentry 'Debian GNU/Linux, with Xen hypervisor (recovery mode)' \$menuentry_id_option 'xen-r' {
	multiboot2	$xen placeholder ${GRUB_CMDLINE_XEN} \${xen_rm_opts}
	module2	$kernel placeholder root=UUID=x ro single ${GRUB_CMDLINE_LINUX}
}
@MEMTEST@
EOF
mv -f "$out.new" "$out"
"""
IGNORE_VARIABLES = (
    'GRUB_CMDLINE_XEN=""; GRUB_CMDLINE_XEN_DEFAULT="dom0_mem=2G"; '
    'GRUB_CMDLINE_LINUX=""; GRUB_CMDLINE_LINUX_DEFAULT="quiet"'
)


CHAINS = Path(__file__).resolve().parent / "data" / "chains"


def _non_xen_blocks(name: str) -> str:
    """What grub-mkconfig writes after 20_linux_xen on a real host (memtest86+, os-prober), cut
    from a cited grub.cfg in tests/grub/data/chains: entries that are not Xen."""
    text = (CHAINS / name).read_text()
    start = text.index("### BEGIN /etc/grub.d/20_memtest86+ ###")
    end = text.index("### BEGIN /etc/grub.d/30_uefi-firmware ###")
    return text[start:end]


def _stub(directory: Path, name: str, cfg: str, ignore: bool = False, extra: str = "") -> None:
    """A regenerate tool; ``extra`` is grub.cfg text it appends as is (non-Xen entries)."""
    directory.mkdir(exist_ok=True)
    text = MKCONFIG.replace("@CFG@", cfg).replace("@IGNORE@", IGNORE_VARIABLES if ignore else "")
    if extra:
        (directory / f"{name}.extra").write_text(extra)
    text = text.replace(
        "@MEMTEST@\nEOF\n",
        f'EOF\ncat "{directory / name}.extra" >> "$out.new"\n' if extra else "EOF\n",
    )
    path = directory / name
    path.write_text(text)
    path.chmod(0o755)


def _tree(root: Path) -> dict[str, str]:
    """SHA-256 of every file under ``root`` (relative path -> digest)."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def debian_root(tmp_path: Path) -> Path:
    """A Debian 12 Xen host's GRUB files (the real package files) under a temp root."""
    root = tmp_path / "root"
    (root / "etc/default/grub.d").mkdir(parents=True)
    (root / "boot/grub").mkdir(parents=True)
    shutil.copy(DATA / "debian12-default-grub", root / "etc/default/grub")
    shutil.copy(DATA / "debian12-grub.d-xen.cfg", root / "etc/default/grub.d/xen.cfg")
    shutil.copy(DATA / "debian12-grub.cfg", root / "boot/grub/grub.cfg")
    for path in (root / "etc/default/grub", root / "etc/default/grub.d/xen.cfg"):
        path.chmod(0o644)
    return root


@pytest.fixture
def ssh(sshd: Sshd) -> Iterator[SshConnection]:
    target = SshTarget.parse(
        sshd.url, key_file=str(sshd.client_key), known_hosts=str(sshd.known_hosts)
    )
    with connect(target) as connection:
        yield connection


@pytest.fixture
def profile() -> Profile:
    return load_profile("xen-serial-debug")


def _layout(root: Path, bin_dir: Path, **extra: object) -> RemoteLayout:
    """Files under ``root``, tools looked for in ``bin_dir`` only: whatever GRUB the machine
    running the tests has installed (/usr/sbin/update-grub, …) is not seen."""
    extra.setdefault("tool_dirs", (str(bin_dir),))
    return RemoteLayout(root=str(root), path_prefix=(str(bin_dir),), **extra)  # type: ignore[arg-type]


def _host_tool(tmp_path: Path) -> Path:
    """A directory standing for the host's own sbin, with an update-grub in it."""
    system = tmp_path / "system-sbin"
    _stub(system, "update-grub", "boot/grub/grub.cfg")
    return system


def test_dry_run_shows_diff_and_changes_nothing(
    ssh: SshConnection, debian_root: Path, tmp_path: Path, profile: Profile
) -> None:
    bin_dir = tmp_path / "bin"
    _stub(bin_dir, "update-grub", "boot/grub/grub.cfg")
    before = _tree(debian_root)
    plan = plan_persistent(ssh, profile, layout=_layout(debian_root, bin_dir))
    assert plan.method == "default-grub"
    assert plan.regenerate == "update-grub"
    assert plan.grub_cfg == "/boot/grub/grub.cfg"
    assert [e.path for e in plan.edits] == ["/etc/default/grub.d/xen.cfg"]
    out = io.StringIO()
    result = apply_persistent(ssh, plan, out=out)
    assert result.dry_run and not result.written
    text = out.getvalue()
    assert "--- /etc/default/grub.d/xen.cfg (current)" in text
    assert (
        '+GRUB_CMDLINE_XEN_DEFAULT="$GRUB_CMDLINE_XEN_DEFAULT loglvl=all guest_loglvl=all '
        'com1=38400,8n1 console=com1"' in text
    )
    assert "dry run: nothing changed" in text
    assert _tree(debian_root) == before


def test_write_backs_up_writes_atomically_regenerates_and_verifies(
    ssh: SshConnection, debian_root: Path, tmp_path: Path, profile: Profile
) -> None:
    bin_dir = tmp_path / "bin"
    _stub(bin_dir, "update-grub", "boot/grub/grub.cfg")
    xen_cfg = debian_root / "etc/default/grub.d/xen.cfg"
    old = xen_cfg.read_text()
    inode_before = xen_cfg.stat().st_ino
    main_before = hashlib.sha256((debian_root / "etc/default/grub").read_bytes()).hexdigest()
    plan = plan_persistent(ssh, profile, layout=_layout(debian_root, bin_dir))
    out = io.StringIO()
    result = apply_persistent(ssh, plan, dry_run=False, out=out)

    assert result.written == ("/etc/default/grub.d/xen.cfg",)
    ((original, backup),) = result.backups
    assert original == "/etc/default/grub.d/xen.cfg"
    assert backup.startswith("/etc/default/grub.d/xen.cfg.solcap-") and backup.endswith("Z.bak")
    assert (debian_root / backup.lstrip("/")).read_text() == old
    assert xen_cfg.read_text() == plan.edits[0].new
    assert stat.S_IMODE(xen_cfg.stat().st_mode) == 0o644
    assert xen_cfg.stat().st_ino != inode_before  # replaced by rename, not rewritten in place
    names = sorted(os.listdir(xen_cfg.parent))
    assert names == sorted(["xen.cfg", os.path.basename(backup)])  # no temp file left
    assert hashlib.sha256((debian_root / "etc/default/grub").read_bytes()).hexdigest() == (
        main_before
    )
    assert result.regenerated
    assert result.verified == ("Debian GNU/Linux, with Xen hypervisor",)
    cfg = (debian_root / "boot/grub/grub.cfg").read_text()
    xen, dom0 = entry_cmdlines(cfg, "with Xen hypervisor$")
    assert xen.split() == [
        "placeholder",
        "loglvl=all",
        "guest_loglvl=all",
        "com1=38400,8n1",
        "console=com1",
        "${xen_rm_opts}",
    ]
    assert dom0 is not None and dom0.split()[-3:] == ["quiet", "console=hvc0", "earlyprintk=xen"]
    assert "verified: Debian GNU/Linux, with Xen hypervisor" in out.getvalue()

    # Applying again: nothing to write, no second backup, still verified.
    again = plan_persistent(ssh, profile, layout=_layout(debian_root, bin_dir))
    assert not again.changed
    second = apply_persistent(ssh, again, dry_run=False, out=io.StringIO())
    assert second.written == () and second.backups == () and not second.regenerated
    assert len(os.listdir(xen_cfg.parent)) == 2


def test_verification_fails_when_regenerate_ignores_variables(
    ssh: SshConnection, debian_root: Path, tmp_path: Path, profile: Profile
) -> None:
    bin_dir = tmp_path / "bin"
    _stub(bin_dir, "update-grub", "boot/grub/grub.cfg", ignore=True)
    plan = plan_persistent(ssh, profile, layout=_layout(debian_root, bin_dir))
    with pytest.raises(TargetError) as info:
        apply_persistent(ssh, plan, dry_run=False, out=io.StringIO())
    message = info.value.one_line()
    assert "verification failed" in message
    assert "Xen line lacks loglvl=all guest_loglvl=all com1=38400,8n1 console=com1" in message
    assert "roll back with: cp -p " in message and ".solcap-" in message
    assert "update-grub" in message.split("roll back with:")[1]


def test_rhel_like_grub2_mkconfig(ssh: SshConnection, tmp_path: Path, profile: Profile) -> None:
    root = tmp_path / "root"
    (root / "etc/default").mkdir(parents=True)
    (root / "boot/grub2").mkdir(parents=True)
    (root / "etc/default/grub").write_text(
        'GRUB_TIMEOUT=5\nGRUB_CMDLINE_LINUX="crashkernel=auto rhgb quiet"\n'
        'GRUB_CMDLINE_XEN_DEFAULT="dom0_mem=1024M,max:1024M console=vga"\n'
    )
    shutil.copy(DATA / "rhel-grub.cfg", root / "boot/grub2/grub.cfg")
    bin_dir = tmp_path / "bin"
    _stub(bin_dir, "grub2-mkconfig", "boot/grub2/grub.cfg")
    plan = plan_persistent(ssh, profile, layout=_layout(root, bin_dir))
    assert plan.regenerate == f"grub2-mkconfig -o {root}/boot/grub2/grub.cfg"
    assert plan.grub_cfg == "/boot/grub2/grub.cfg"
    result = apply_persistent(ssh, plan, dry_run=False, out=io.StringIO())
    assert result.written == ("/etc/default/grub",)
    text = (root / "etc/default/grub").read_text()
    assert (
        'GRUB_CMDLINE_XEN_DEFAULT="dom0_mem=1024M,max:1024M console=com1 loglvl=all '
        'guest_loglvl=all com1=38400,8n1"' in text
    )
    assert "GRUB_CMDLINE_LINUX_XEN_REPLACE_DEFAULT=" in text
    xen, _ = entry_cmdlines((root / "boot/grub2/grub.cfg").read_text(), "with Xen hypervisor$")
    assert "console=vga" not in xen and "console=com1" in xen


def test_no_tool_and_no_entry_pattern_is_refused(
    ssh: SshConnection, debian_root: Path, tmp_path: Path, profile: Profile
) -> None:
    empty_bin = tmp_path / "bin"
    empty_bin.mkdir()
    with pytest.raises(UsageError, match="no update-grub, grub2-mkconfig or grub-mkconfig here"):
        plan_persistent(ssh, profile, layout=_layout(debian_root, empty_bin))


def test_system_tool_with_root_prefix_is_refused(
    ssh: SshConnection, debian_root: Path, tmp_path: Path, profile: Profile
) -> None:
    """A tool outside the PATH prefix would write the real /boot: refused."""
    elsewhere = tmp_path / "elsewhere"
    _stub(elsewhere, "update-grub", "boot/grub/grub.cfg")
    # One PATH entry that is not a plain directory: the tool is found, but not "in" the prefix,
    # exactly like a system /usr/sbin/update-grub would be.
    prefix = f"{elsewhere}/.:/nonexistent"
    layout = RemoteLayout(root=str(debian_root), path_prefix=(prefix,), tool_dirs=(prefix,))
    with pytest.raises(UsageError, match="would regenerate the real /boot"):
        plan_persistent(ssh, profile, layout=layout)


@pytest.mark.parametrize("entry", [None, "with Xen hypervisor$"])
def test_host_grub_tools_outside_the_root_prefix_are_refused(
    ssh: SshConnection, debian_root: Path, tmp_path: Path, profile: Profile, entry: str | None
) -> None:
    """With GRUB installed (its update-grub on the tool path but not in the PATH prefix), an
    edit under a root prefix is refused, with or without an entry pattern: that tool would
    regenerate the real /boot. The pair of test_direct_grub_cfg_edit_without_regenerate_tool
    and test_no_tool_and_no_entry_pattern_is_refused, which see no tool at all."""
    empty_bin = tmp_path / "bin"
    empty_bin.mkdir()
    system = _host_tool(tmp_path)
    layout = _layout(
        debian_root, empty_bin, tool_dirs=(str(empty_bin), str(system)), entry_pattern=entry
    )
    before = _tree(debian_root)
    with pytest.raises(UsageError) as info:
        plan_persistent(ssh, profile, layout=layout)
    assert f"found {system}/update-grub, but the files live under root prefix" in str(info.value)
    assert "would regenerate the real /boot" in str(info.value)
    assert _tree(debian_root) == before


def test_this_machines_own_grub_tools_are_seen_by_default(
    ssh: SshConnection, debian_root: Path, tmp_path: Path, profile: Profile
) -> None:
    """Without tool_dirs the whole remote PATH is searched, as on a real host: if this machine
    has GRUB installed, its update-grub is found and refused under the root prefix; if not,
    there is no tool and no entry pattern. Either way a refusal, and it says which."""
    empty_bin = tmp_path / "bin"
    empty_bin.mkdir()
    layout = RemoteLayout(root=str(debian_root), path_prefix=(str(empty_bin),))
    installed = None
    for name in ("update-grub", "grub2-mkconfig", "grub-mkconfig"):
        installed = installed or shutil.which(name, path=f"{os.environ['PATH']}:{SBIN_PATH}")
    with pytest.raises(UsageError) as info:
        plan_persistent(ssh, profile, layout=layout)
    if installed is not None:
        assert "would regenerate the real /boot" in str(info.value), installed
    else:
        assert "no update-grub, grub2-mkconfig or grub-mkconfig here" in str(info.value)


def test_direct_grub_cfg_edit_without_regenerate_tool(
    ssh: SshConnection, debian_root: Path, tmp_path: Path, profile: Profile
) -> None:
    empty_bin = tmp_path / "bin"
    empty_bin.mkdir()
    cfg = debian_root / "boot/grub/grub.cfg"
    old = cfg.read_text()
    layout = _layout(debian_root, empty_bin, entry_pattern="with Xen hypervisor$")
    plan = plan_persistent(ssh, profile, layout=layout)
    assert plan.method == "grub-cfg" and plan.regenerate is None
    assert any("undoes this edit" in w for w in plan.warnings)
    result = apply_persistent(ssh, plan, dry_run=False, out=io.StringIO())
    assert result.written == ("/boot/grub/grub.cfg",) and not result.regenerated
    assert (debian_root / result.backups[0][1].lstrip("/")).read_text() == old
    xen, dom0 = entry_cmdlines(cfg.read_text(), "with Xen hypervisor$")
    assert "console=com1" in xen and dom0 is not None and "console=hvc0" in dom0
    # The other Xen entries were not touched.
    xen_other, _ = entry_cmdlines(cfg.read_text(), "with Xen 4.17-amd64 and Linux 6.1.0-18-amd64$")
    assert "console=com1" not in xen_other


def test_several_candidate_files_are_refused(
    ssh: SshConnection, debian_root: Path, tmp_path: Path, profile: Profile
) -> None:
    grub_d = debian_root / "etc/default/grub.d"
    (grub_d / "xen.cfg").rename(grub_d / "10-local.cfg")
    (grub_d / "init-select.cfg").write_text("# nothing here\n")
    bin_dir = tmp_path / "bin"
    _stub(bin_dir, "update-grub", "boot/grub/grub.cfg")
    with pytest.raises(UsageError, match="several are candidates"):
        plan_persistent(ssh, profile, layout=_layout(debian_root, bin_dir))


def test_two_grub_cfg_files_are_refused(
    ssh: SshConnection, debian_root: Path, tmp_path: Path, profile: Profile
) -> None:
    (debian_root / "boot/grub2").mkdir()
    shutil.copy(DATA / "rhel-grub.cfg", debian_root / "boot/grub2/grub.cfg")
    empty_bin = tmp_path / "bin"
    empty_bin.mkdir()
    layout = _layout(debian_root, empty_bin, entry_pattern="with Xen hypervisor$")
    with pytest.raises(UsageError, match=r"several grub\.cfg"):
        plan_persistent(ssh, profile, layout=layout)


def test_later_file_override_is_warned_and_edited_where_it_counts(
    ssh: SshConnection, debian_root: Path, tmp_path: Path, profile: Profile
) -> None:
    main = debian_root / "etc/default/grub"
    main.write_text(main.read_text() + 'GRUB_CMDLINE_XEN_DEFAULT="dom0_mem=4G"\n')
    (debian_root / "etc/default/grub.d/zz-site.cfg").write_text(
        'GRUB_CMDLINE_XEN_DEFAULT="dom0_mem=8G"\n'
    )
    bin_dir = tmp_path / "bin"
    _stub(bin_dir, "update-grub", "boot/grub/grub.cfg")
    plan = plan_persistent(ssh, profile, layout=_layout(debian_root, bin_dir))
    assert any("zz-site.cfg:1 overrides /etc/default/grub" in w for w in plan.warnings)
    xen_edits = [e.path for e in plan.edits if "GRUB_CMDLINE_XEN_DEFAULT" in e.diff]
    assert xen_edits == ["/etc/default/grub.d/zz-site.cfg"]


def test_sudo_path_edits_root_owned_files_through_real_sudo(
    sudo_login: SudoLogin,
    debian_root: Path,
    profile: Profile,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The login is a non-root account; the files are root's, as on a host: it may look
    # (directories 0755, files 0644) but every copy, move and the regeneration needs sudo.
    # pytest's tmp_path is root's 0700, so the tree is copied to a directory it can enter.
    base = Path(tempfile.mkdtemp(prefix="solcap-sudo-grub-"))
    try:
        base.chmod(0o755)
        root = base / "root"
        shutil.copytree(debian_root, root)
        before = _tree(root)
        bin_dir = base / "bin"
        _stub(bin_dir, "update-grub", "boot/grub/grub.cfg")
        monkeypatch.setenv("SOLCAP_TEST_SUDO_PW", SUDO_PASSWORD)
        server = sudo_login.server
        target = SshTarget.parse(
            server.url,
            key_file=str(server.client_key),
            known_hosts=str(server.known_hosts),
            sudo=True,
            sudo_password="env:SOLCAP_TEST_SUDO_PW",
        )
        ran = len(sudo_login.commands())
        with connect(target) as ssh:
            assert not ssh.run(f"touch {root}/etc/default/grub").ok  # not without sudo
            plan = plan_persistent(ssh, profile, layout=_layout(root, bin_dir))
            result = apply_persistent(ssh, plan, dry_run=False, out=io.StringIO())
        assert result.verified and result.regenerated
        assert [e.path for e in plan.edits] == ["/etc/default/grub.d/xen.cfg"]
        assert (root / "etc/default/grub.d/xen.cfg").read_text() == plan.edits[0].new
        after = _tree(root)
        assert after["boot/grub/grub.cfg"] != before["boot/grub/grub.cfg"]  # regenerated
        assert all(p.stat().st_uid == 0 for p in root.rglob("*")), "a file changed owner"
    finally:
        shutil.rmtree(base)
    commands = sudo_login.commands()[ran:]
    for step in ("cp -p", "mv -f", "update-grub"):
        assert any(step in c for c in commands), (step, commands)
    assert "pa ss" not in sudo_login.log.read_text()


# --------------------------------------------------------------------------- CLI


def _cli(sshd: Sshd, root: Path, bin_dir: Path, *extra: str) -> list[str]:
    return [
        sshd.url,
        "--profile",
        "xen-serial-debug",
        "--ssh-key",
        str(sshd.client_key),
        "--known-hosts",
        str(sshd.known_hosts),
        "--root-prefix",
        str(root),
        "--path-prefix",
        str(bin_dir),
        "--tool-dir",
        str(bin_dir),
        *extra,
    ]


def test_cli_grub_show_and_apply(
    sshd: Sshd, debian_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from solcap.cli import main

    bin_dir = tmp_path / "bin"
    _stub(bin_dir, "update-grub", "boot/grub/grub.cfg")
    before = _tree(debian_root)
    out = io.StringIO()
    assert main(["grub", "show", *_cli(sshd, debian_root, bin_dir)], out=out) == 0
    text = out.getvalue()
    assert "regenerate: update-grub" in text
    assert "  GRUB_CMDLINE_XEN_DEFAULT: (not set)" in text
    assert "  GRUB_CMDLINE_LINUX_DEFAULT" not in text  # only the Xen-related variables
    assert "    xen:  placeholder  dom0_mem=2G,max:2G dom0_max_vcpus=1-2 ${xen_rm_opts}" in text
    assert "profile xen-serial-debug would change:" in text

    out = io.StringIO()
    assert main(["grub", "apply", *_cli(sshd, debian_root, bin_dir)], out=out) == 0
    assert "dry run: nothing changed" in out.getvalue()
    assert _tree(debian_root) == before

    out = io.StringIO()
    assert main(["grub", "apply", *_cli(sshd, debian_root, bin_dir), "--write"], out=out) == 0
    assert "verified: Debian GNU/Linux, with Xen hypervisor" in out.getvalue()
    assert _tree(debian_root) != before


def test_cli_old_key_spelling_logs_in_the_same_way(
    sshd: Sshd, debian_root: Path, tmp_path: Path
) -> None:
    """``--identity`` (the old spelling ``solcap dom0``/``run`` used) is ``--ssh-key``."""
    from solcap.cli import main

    bin_dir = tmp_path / "bin"
    _stub(bin_dir, "update-grub", "boot/grub/grub.cfg")
    shown = []
    for flag in ("--ssh-key", "--identity"):
        argv = _cli(sshd, debian_root, bin_dir)
        argv[argv.index("--ssh-key")] = flag
        out = io.StringIO()
        assert main(["grub", "show", *argv], out=out) == 0
        shown.append(out.getvalue())
    assert "profile xen-serial-debug would change:" in shown[0]
    assert shown[0] == shown[1]


def test_cli_unknown_host_key_exits_3_with_one_line(
    sshd: Sshd, debian_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from solcap.cli import main

    argv = _cli(sshd, debian_root, tmp_path)
    argv[argv.index("--known-hosts") + 1] = str(tmp_path / "empty_known_hosts")
    assert main(["grub", "show", *argv], out=io.StringIO()) == 3
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown host key" in err and "ssh-keyscan" in err


def test_cli_password_in_url_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    from solcap.cli import main

    argv = ["grub", "show", "ssh://root:pw@127.0.0.1:1", "--profile", "xen-serial-debug"]
    assert main(argv, out=io.StringIO()) == 2
    assert "password in the URL" in capsys.readouterr().err


def test_regenerate_failure_names_the_rollback(
    ssh: SshConnection, debian_root: Path, tmp_path: Path, profile: Profile
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    failing = bin_dir / "update-grub"
    failing.write_text("#!/bin/sh\necho 'grub-probe: error: cannot find a device' >&2\nexit 1\n")
    failing.chmod(0o755)
    plan = plan_persistent(ssh, profile, layout=_layout(debian_root, bin_dir))
    with pytest.raises(TargetError) as info:
        apply_persistent(ssh, plan, dry_run=False, out=io.StringIO())
    message = info.value.one_line()
    assert "`update-grub` exited 1: grub-probe: error: cannot find a device" in message
    backup = next((debian_root / "etc/default/grub.d").glob("xen.cfg.solcap-*.bak"))
    assert f"roll back with: cp -p {backup} {debian_root}/etc/default/grub.d/xen.cfg" in message


def test_cli_oneshot_dry_run_then_write_hands_over_to_the_console(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from solcap.cli import main

    argv = ["grub", "apply", "/dev/ttyS9", "--profile", "xen-serial-debug", "--oneshot"]
    argv += ["--recordings", str(tmp_path / "rec")]
    out = io.StringIO()
    assert main(argv, out=out) == 0  # dry run: nothing opened (there is no /dev/ttyS9)
    assert out.getvalue() == (
        "dry run: at the next boot of /dev/ttyS9, would edit the GRUB entry matching 'Xen' for"
        " profile xen-serial-debug: xen +loglvl=all +guest_loglvl=all +com1=38400,8n1"
        " +console=com1, dom0 +console=hvc0 +earlyprintk=xen (use --write to do it)\n"
    )
    assert not (tmp_path / "rec").exists()
    capsys.readouterr()
    # --write opens the console (and fails on the absent device, the far side's fault: 3).
    assert main([*argv, "--write"], out=io.StringIO()) == 3
    err = capsys.readouterr().err
    assert err == "solcap: error: /dev/ttyS9: cannot open serial port: No such file or directory\n"


@pytest.mark.parametrize(
    "source",
    ["debian12-xen-memtest86+-os-prober-grub.cfg", "debian-xen-memtest86+-5-multiboot-grub.cfg"],
)
def test_non_xen_entries_are_skipped_by_a_persistent_edit_without_entry(
    ssh: SshConnection, debian_root: Path, tmp_path: Path, profile: Profile, source: str
) -> None:
    """A Debian 12 host with memtest86+ (6.x: `linux /boot/memtest86+x64.bin`; 5.x: `multiboot
    /boot/memtest86+_multiboot.bin`) and os-prober's Windows (`chainloader +1`): the persistent
    edit without --entry regenerates, verifies exactly the Xen entries and leaves the rest
    byte for byte (it used to fail verification on the first entry that was not Xen)."""
    extra = _non_xen_blocks(source)
    shutil.copy(CHAINS / source, debian_root / "boot/grub/grub.cfg")
    bin_dir = tmp_path / "bin"
    _stub(bin_dir, "update-grub", "boot/grub/grub.cfg", extra=extra)
    plan = plan_persistent(ssh, profile, layout=_layout(debian_root, bin_dir))
    assert plan.method == "default-grub"
    out = io.StringIO()
    result = apply_persistent(ssh, plan, dry_run=False, out=out)
    assert result.regenerated
    assert result.verified == ("Debian GNU/Linux, with Xen hypervisor",)
    assert "verified: Debian GNU/Linux, with Xen hypervisor\n" in out.getvalue()
    cfg = (debian_root / "boot/grub/grub.cfg").read_text()
    assert cfg.endswith("}\n" + extra)  # regenerated, the non-Xen entries as the host writes them
    xen, _ = entry_cmdlines(cfg, "^Debian GNU/Linux, with Xen hypervisor$")
    assert set(profile.xen.options) <= set(xen.split())


def test_grub_serial_speed_is_read_from_the_remote_grub_cfg_then_the_defaults(
    ssh: SshConnection, debian_root: Path, tmp_path: Path
) -> None:
    """The baud check's GRUB rate over a real SSH session, under the root prefix: grub.cfg's
    first `serial` (what GRUB ran), else the sourced defaults' GRUB_SERIAL_COMMAND (what the
    next update-grub writes), else GRUB's bare `serial` (9600), else unknown."""
    from solcap.grub.remote import remote_grub_speed

    layout = _layout(debian_root, tmp_path / "bin")
    assert remote_grub_speed(ssh, layout) == (38400, "/boot/grub/grub.cfg:58")
    cfg = debian_root / "boot/grub/grub.cfg"
    cfg.write_text(cfg.read_text().replace("serial --unit=0 --speed=38400", "serial --speed 57600"))
    assert remote_grub_speed(ssh, layout) == (57600, "/boot/grub/grub.cfg:58")
    # No serial command in grub.cfg: the defaults decide (GRUB_TERMINAL must name serial).
    cfg.write_text("".join(x for x in cfg.read_text().splitlines(True) if "serial --" not in x))
    assert remote_grub_speed(ssh, layout) == (None, "grub.cfg")
    default = debian_root / "etc/default/grub"
    lines = len(default.read_text().splitlines())
    with default.open("a") as handle:
        handle.write('GRUB_TERMINAL="console serial"\n')
    assert remote_grub_speed(ssh, layout) == (
        9600,
        f"/etc/default/grub:{lines + 1} (GRUB_TERMINAL)",
    )
    with default.open("a") as handle:
        handle.write('GRUB_SERIAL_COMMAND="serial --unit=0 --speed=115200 --word=8 --stop=1"\n')
    assert remote_grub_speed(ssh, layout) == (
        115200,
        f"/etc/default/grub:{lines + 2} (GRUB_SERIAL_COMMAND)",
    )
    # A later grub.d file wins, as grub-mkconfig sources it last.
    with (debian_root / "etc/default/grub.d/xen.cfg").open("a") as handle:
        handle.write('GRUB_SERIAL_COMMAND="serial --speed=19200"\n')
    speed, where = remote_grub_speed(ssh, layout)
    assert (speed, where.split(":")[0]) == (19200, "/etc/default/grub.d/xen.cfg")
    # The grub.cfg named in the layout is the one read; missing, the defaults still answer.
    named = replace(layout, grub_cfg="/boot/efi/EFI/xenserver/grub.cfg")
    assert remote_grub_speed(ssh, named)[0] == 19200


def test_cli_grub_apply_warns_when_grub_serial_speed_differs_from_the_profiles_com1(
    sshd: Sshd, debian_root: Path, tmp_path: Path
) -> None:
    """`solcap grub apply` has SSH but no BMC: GRUB's speed (read from the host's grub.cfg)
    against the com1= the profile is about to boot."""
    from solcap.cli import main

    cfg = debian_root / "boot/grub/grub.cfg"
    cfg.write_text(cfg.read_text().replace("--speed=38400", "--speed=115200"))
    bin_dir = tmp_path / "bin"
    _stub(bin_dir, "update-grub", "boot/grub/grub.cfg")
    out = io.StringIO()
    assert main(["grub", "apply", *_cli(sshd, debian_root, bin_dir)], out=out) == 0
    warnings = [x for x in out.getvalue().splitlines() if "serial --speed" in x]
    assert warnings == [
        f"warning: {sshd.user}@{sshd.host}:{sshd.port}: GRUB's serial --speed is 115200 "
        "(/boot/grub/grub.cfg:58) but Xen's com1= is 38400 (profile xen-serial-debug, about "
        "to boot): whichever differs from the BMC's SOL rate (unknown here) reaches the "
        "capture garbled"
    ]
    cfg.write_text(cfg.read_text().replace("--speed=115200", "--speed=38400"))
    out = io.StringIO()
    assert main(["grub", "apply", *_cli(sshd, debian_root, bin_dir)], out=out) == 0
    assert "serial --speed" not in out.getvalue()


CUSTOM_XEN = (
    "menuentry 'Xen (custom)' {\n\tmultiboot2\t$xen_image placeholder\n"
    "\tmodule2\t/boot/vmlinuz-6.1.0-18-amd64 root=/dev/sda2\n}\n"
)


@pytest.mark.parametrize(
    ("entry", "reason"),
    [
        (None, r"entry 'Xen \(custom\)': multiboot2 loads \$xen_image, a GRUB variable"),
        (r"^Memory test \(memtest86\+x64\.bin\)$", "boots Linux directly"),
        (r"^Windows 10", r"chainloads something other than Xen \(chainloader \+1\)"),
    ],
)
def test_an_entry_verification_would_refuse_is_refused_before_anything_is_written(
    ssh: SshConnection,
    debian_root: Path,
    tmp_path: Path,
    profile: Profile,
    entry: str | None,
    reason: str,
) -> None:
    """A 40_custom Xen entry whose image is a variable (it survives update-grub), or --entry
    naming memtest86+ or Windows: refused at planning, naming grub.cfg, with nothing written
    or regenerated (it used to write, regenerate and only then fail verification)."""
    from solcap.errors import ConfigError

    text = (CHAINS / "debian12-xen-memtest86+-os-prober-grub.cfg").read_text()
    text = text.replace(
        "### END /etc/grub.d/40_custom ###", CUSTOM_XEN + "### END /etc/grub.d/40_custom ###"
    )
    (debian_root / "boot/grub/grub.cfg").write_text(text)
    bin_dir = tmp_path / "bin"
    _stub(bin_dir, "update-grub", "boot/grub/grub.cfg")
    before = _tree(debian_root)
    layout = _layout(debian_root, bin_dir, entry_pattern=entry)
    with pytest.raises(ConfigError, match=reason) as caught:
        plan_persistent(ssh, profile, layout=layout)
    assert caught.value.one_line().startswith("/boot/grub/grub.cfg:")
    assert _tree(debian_root) == before
