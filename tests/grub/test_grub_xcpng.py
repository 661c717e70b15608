"""XCP-ng / XenServer persistent edits through ``xen-cmdline``, and Xen EFI ``xen.cfg``
edits, over a real sshd.

The host side is a temp root holding XCP-ng 8.1's real grub.cfg entry (tests/grub/data/chains)
and, at ``/opt/xensource/libexec/xen-cmdline`` under that root, a stand-in for XCP-ng's tool
with the interface XCP-ng documents and scripts use (``--set-xen OPT``, ``--delete-xen NAME``,
``--set-dom0 OPT``, ``--delete-dom0 NAME``): it edits the grub.cfg beside it and logs every
call, so the test sees exactly what solcap ran and what the host ended up with.
"""

from __future__ import annotations

import io
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from solcap.boot.profiles import load_profile
from solcap.errors import TargetError, UsageError
from solcap.grub.cfg import entry_cmdlines
from solcap.grub.remote import RemoteLayout, apply_persistent, plan_persistent
from solcap.transports.ssh import SshConnection, SshTarget, connect
from tests.grub.conftest import Sshd

pytestmark = pytest.mark.timeout(60)
DATA = Path(__file__).parent / "data" / "chains"

STAND_IN = """#!@PYTHON@
# Stand-in for XCP-ng's /opt/xensource/libexec/xen-cmdline (test fixture).
import os, sys
root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
cfg = os.path.join(root, "boot/grub/grub.cfg")
with open(os.path.join(root, "xen-cmdline.log"), "a") as log:
    log.write(" ".join(sys.argv[1:]) + "\\n")
if os.environ.get("STAND_IN_FAIL"):
    sys.exit("xen-cmdline: cannot write " + cfg)
action, value = sys.argv[1], sys.argv[2]
verb, target = action[2:].split("-")
lines = open(cfg).read().split("\\n")
out, seen_xen = [], False
for line in lines:
    words = line.split()
    is_xen = bool(words) and words[0] == "multiboot2"
    is_dom0 = bool(words) and words[0] == "module2" and seen_xen
    if is_xen:
        seen_xen = True
    if (target == "xen" and is_xen) or (target == "dom0" and is_dom0):
        indent = line[: len(line) - len(line.lstrip())]
        head, args = words[:2], words[2:]
        name = value.split("=", 1)[0]
        args = [a for a in args if a.split("=", 1)[0] != name]
        if verb == "set":
            args.append(value)
        line = indent + " ".join(head + args)
        if is_dom0:
            seen_xen = False
    out.append(line)
open(cfg, "w").write("\\n".join(out))
"""


@pytest.fixture
def ssh(sshd: Sshd) -> Iterator[SshConnection]:
    target = SshTarget.parse(
        sshd.url, key_file=str(sshd.client_key), known_hosts=str(sshd.known_hosts)
    )
    with connect(target) as connection:
        yield connection


@pytest.fixture
def xcpng_root(tmp_path: Path) -> Path:
    root = tmp_path / "xcpng"
    (root / "boot/grub").mkdir(parents=True)
    shutil.copy(DATA / "xcpng-8.1-grub.cfg", root / "boot/grub/grub.cfg")
    tool = root / "opt/xensource/libexec/xen-cmdline"
    tool.parent.mkdir(parents=True)
    tool.write_text(STAND_IN.replace("@PYTHON@", sys.executable))
    tool.chmod(0o755)
    return root


def test_xcpng_auto_uses_xen_cmdline_and_verifies(ssh: SshConnection, xcpng_root: Path) -> None:
    profile = load_profile("xen-serial-debug")
    layout = RemoteLayout(root=str(xcpng_root))
    plan = plan_persistent(ssh, profile, layout=layout)
    assert plan.method == "xen-cmdline"
    assert plan.grub_cfg == "/boot/grub/grub.cfg"
    tool = f"{xcpng_root}/opt/xensource/libexec/xen-cmdline"
    # console=hvc0 is already on XCP-ng's Dom0 line: not set again.
    assert plan.commands == (
        f"{tool} --set-xen loglvl=all",
        f"{tool} --set-xen guest_loglvl=all",
        f"{tool} --set-xen com1=38400,8n1",
        f"{tool} --set-xen console=com1",
        f"{tool} --set-dom0 earlyprintk=xen",
    )
    cfg = xcpng_root / "boot/grub/grub.cfg"
    before = cfg.read_bytes()
    out = io.StringIO()
    assert apply_persistent(ssh, plan, out=out).dry_run
    assert cfg.read_bytes() == before and not (xcpng_root / "xen-cmdline.log").exists()
    assert f"run: {tool} --set-xen console=com1" in out.getvalue()

    result = apply_persistent(ssh, plan, dry_run=False, out=io.StringIO())
    assert result.verified == ("XCP-ng",)
    assert (xcpng_root / "xen-cmdline.log").read_text().splitlines() == [
        "--set-xen loglvl=all",
        "--set-xen guest_loglvl=all",
        "--set-xen com1=38400,8n1",
        "--set-xen console=com1",
        "--set-dom0 earlyprintk=xen",
    ]
    xen, dom0 = entry_cmdlines(cfg.read_text(), "^XCP-ng$")
    assert xen.split()[-4:] == ["loglvl=all", "guest_loglvl=all", "com1=38400,8n1", "console=com1"]
    assert "console=vga" not in xen.split()
    assert dom0 is not None and dom0.split()[-1] == "earlyprintk=xen"
    # Again: the host already carries the profile, nothing to run.
    again = plan_persistent(ssh, profile, layout=layout)
    assert again.commands == () and not again.changed


def test_xcpng_removals_by_name_and_exact_token_refused(
    ssh: SshConnection, xcpng_root: Path, tmp_path: Path
) -> None:
    full = load_profile("xen-serial-debug-full")  # removes quiet, splash from Dom0
    plan = plan_persistent(ssh, full, layout=RemoteLayout(root=str(xcpng_root)))
    deletes = [c.split()[-2:] for c in plan.commands if "--delete-" in c]
    assert deletes == [["--delete-dom0", "quiet"], ["--delete-dom0", "splash"]]
    exact = tmp_path / "exact.toml"
    exact.write_text('name = "exact"\n[dom0]\nremove = ["console=tty0"]\n')
    with pytest.raises(UsageError, match="deletes options by name only"):
        plan_persistent(ssh, load_profile(exact), layout=RemoteLayout(root=str(xcpng_root)))


def test_xcpng_tool_failure_is_reported(ssh: SshConnection, xcpng_root: Path) -> None:
    profile = load_profile("xen-serial-debug")
    layout = RemoteLayout(root=str(xcpng_root))
    plan = plan_persistent(ssh, profile, layout=layout)
    tool = xcpng_root / "opt/xensource/libexec/xen-cmdline"
    tool.write_text(tool.read_text().replace('os.environ.get("STAND_IN_FAIL")', "True"))
    with pytest.raises(TargetError, match=r"--set-xen loglvl=all` exited 1: xen-cmdline: cannot"):
        apply_persistent(ssh, plan, dry_run=False, out=io.StringIO())


def test_xen_cfg_method_edits_verifies_and_backs_up(ssh: SshConnection, tmp_path: Path) -> None:
    root = tmp_path / "efi"
    (root / "boot/efi/EFI/xen").mkdir(parents=True)
    cfg = root / "boot/efi/EFI/xen/xen.cfg"
    shutil.copy(DATA / "xen-efi-pandoc-xen.cfg", cfg)
    layout = RemoteLayout(root=str(root), method="xen-cfg", xen_cfg="/boot/efi/EFI/xen/xen.cfg")
    profile = load_profile("xen-serial-debug")
    plan = plan_persistent(ssh, profile, layout=layout)
    assert plan.method == "xen-cfg" and plan.changed
    result = apply_persistent(ssh, plan, dry_run=False, out=io.StringIO())
    assert result.verified == ("/boot/efi/EFI/xen/xen.cfg",)
    assert cfg.read_text() == (DATA / "xen-efi-pandoc-xen.cfg.golden").read_text()
    ((_, backup),) = result.backups
    assert (root / backup.lstrip("/")).read_text() == (DATA / "xen-efi-pandoc-xen.cfg").read_text()
