"""The SSH options of ``solcap dom0``, ``grub`` and ``run`` are one group, spelled one way.

Each old spelling must parse to exactly what the documented one does (same namespace, same
SSH target), ``--help`` must show only the documented spelling, and mixing the two for one
option must be refused instead of letting the last one win.
"""

from __future__ import annotations

import argparse
import io
import re

import pytest

from solcap import inventory
from solcap.cli import build_parser, main
from solcap.commands import sshopts
from solcap.errors import UsageError
from solcap.transports import ssh

pytestmark = pytest.mark.timeout(30)

DOM0 = ["dom0", "ssh://root@192.0.2.7:2222", "xl-info"]
GRUB = ["grub", "show", "ssh://root@192.0.2.7:2222", "--profile", "xen-serial-debug"]
RUN = ["run", "failed-boot", "--host", "/dev/null", "--ssh", "ssh://admin@192.0.2.7:2200"]

#: (command line, old spelling, documented spelling, value)
SAME = [
    (DOM0, "--identity", "--ssh-key", "~/.ssh/id_dom0"),
    (DOM0, "--password-env", "--ssh-password-env", "DOM0_PW"),
    (DOM0, "--password-file", "--ssh-password-file", "/run/secrets/dom0"),
    (GRUB, "--identity", "--ssh-key", "~/.ssh/id_grub"),
    (RUN, "--identity", "--ssh-key", "~/.ssh/id_run"),
]


def parse(argv: list[str]) -> argparse.Namespace:
    return build_parser().parse_args(argv)


@pytest.mark.parametrize(("argv", "old", "new", "value"), SAME)
def test_old_and_documented_spelling_parse_to_the_same_namespace(
    argv: list[str], old: str, new: str, value: str
) -> None:
    by_old = parse([*argv, old, value])
    by_new = parse([*argv, new, value])
    assert vars(by_old) == vars(by_new)
    assert getattr(by_new, new.removeprefix("--").replace("-", "_")) == value


@pytest.mark.parametrize(("argv", "old", "new", "value"), [s for s in SAME if s[0] is not RUN])
def test_old_and_documented_spelling_make_the_same_ssh_target(
    argv: list[str], old: str, new: str, value: str
) -> None:
    url = argv[1] if argv[0] == "dom0" else argv[2]
    common = ["--known-hosts", "/etc/solcap/known_hosts", "--sudo"]
    target_old = sshopts.ssh_target(parse([*argv, *common, old, value]), url)
    target_new = sshopts.ssh_target(parse([*argv, *common, new, value]), url)
    assert target_old == target_new
    assert target_new.host == "192.0.2.7" and target_new.port == 2222
    assert target_new.known_hosts == "/etc/solcap/known_hosts" and target_new.sudo
    assert not target_new.accept_new_host_key  # host keys verified unless asked otherwise
    if new == "--ssh-key":
        assert target_new.key_file == value and target_new.password is None
    elif new == "--ssh-password-env":
        assert target_new.password == f"env:{value}" and target_new.key_file is None
    else:
        assert target_new.password == f"file:{value}"


def test_run_builds_the_inventory_target_from_either_spelling() -> None:
    for flag in ("--identity", "--ssh-key"):
        args = parse([*RUN, flag, "~/.ssh/id_run", "--known-hosts", "/tmp/kh"])
        target = sshopts.inventory_target(args, args.ssh, "--ssh")
        assert target == inventory.SshTarget(
            host="192.0.2.7",
            user="admin",
            port=2200,
            key_file="~/.ssh/id_run",
            known_hosts="/tmp/kh",
        )


def _help(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as stop:
        main([*argv, "--help"])
    assert stop.value.code == 0
    return capsys.readouterr().out


def _shows(text: str, flag: str) -> bool:
    """``flag`` as a whole option (``--password-env`` is not inside ``--ssh-password-env``)."""
    return re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", text) is not None


@pytest.mark.parametrize(
    ("argv", "documented"),
    [
        (["dom0"], ["--ssh-key", "--ssh-password-env", "--ssh-password-file", "--known-hosts"]),
        (["grub", "show"], ["--ssh-key", "--ssh-password-env", "--ssh-password-file"]),
        (["grub", "apply"], ["--ssh-key", "--ssh-password-env", "--ssh-password-file"]),
        (["run"], ["--ssh-key", "--known-hosts"]),
    ],
)
def test_help_shows_only_the_documented_spelling(
    argv: list[str], documented: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    text = _help(argv, capsys)
    for flag in documented:
        assert _shows(text, flag), flag
    for old in sshopts.ALIASES.values():
        if argv in (["run"], ["grub", "apply"]) and old == "--password-file":
            continue  # not the old SSH spelling there: the BMC's password file (ipmiopts)
        assert not _shows(text, old), old


def test_run_has_no_ssh_password_options(capsys: pytest.CaptureFixture[str]) -> None:
    """The inventory's Dom0 target takes a key only; a password option would be ignored.

    The one password option run has is the BMC's, for ``--host ipmi://…``."""
    text = _help(["run"], capsys)
    options = {w.strip("[]") for w in text.split() if w.strip("[]").startswith("--")}
    assert sorted(o for o in options if "password" in o) == ["--password-file"]
    assert "--password-file PATH  BMC password" in text
    with pytest.raises(SystemExit) as stop:
        parse([*RUN, "--ssh-password-env", "PW"])
    assert stop.value.code == 2


@pytest.mark.parametrize(
    ("argv", "first", "second"),
    [
        (DOM0, "--ssh-key", "--identity"),
        (DOM0, "--password-env", "--ssh-password-env"),
        (GRUB, "--identity", "--ssh-key"),
        (RUN, "--ssh-key", "--ssh-key"),
        (GRUB, "--known-hosts", "--known-hosts"),
    ],
)
def test_one_option_given_twice_is_refused(
    argv: list[str], first: str, second: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as stop:
        parse([*argv, first, "a", second, "b"])
    assert stop.value.code == 2
    assert f"{second} given twice" in capsys.readouterr().err


def test_ipmi_spelling_is_not_an_ssh_password_on_grub(capsys: pytest.CaptureFixture[str]) -> None:
    """``--password-file`` is the IPMI password elsewhere; grub must not take it for SSH's."""
    with pytest.raises(SystemExit) as stop:
        parse([*GRUB, "--password-file", "/run/secrets/bmc"])
    assert stop.value.code == 2
    assert "unrecognized arguments: --password-file" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [DOM0, GRUB])
def test_env_and_file_together_are_refused(argv: list[str]) -> None:
    args = parse([*argv, "--ssh-password-env", "PW", "--ssh-password-file", "/run/pw"])
    with pytest.raises(UsageError, match="--ssh-password-env or --ssh-password-file, not both"):
        sshopts.ssh_target(args, "ssh://root@192.0.2.7")
    args = parse([*argv, "--sudo-password-env", "PW", "--sudo-password-file", "/run/pw"])
    with pytest.raises(UsageError, match="--sudo-password-env or --sudo-password-file, not both"):
        sshopts.ssh_target(args, "ssh://root@192.0.2.7")


def test_sudo_password_implies_sudo_and_password_never_in_the_target() -> None:
    args = parse([*DOM0, "--ssh-password-env", "SOLCAP_PW", "--sudo-password-file", "/run/s"])
    target = sshopts.ssh_target(args, "ssh://root@192.0.2.7")
    assert target == ssh.SshTarget(
        host="192.0.2.7",
        user="root",
        password="env:SOLCAP_PW",
        sudo=True,
        sudo_password="file:/run/s",
    )


@pytest.mark.parametrize("flag", ["--identity", "--ssh-key", "--known-hosts"])
def test_run_refuses_host_only_ssh_options_with_an_inventory(
    flag: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["run", "failed-boot", "--inventory", "/nonexistent/inventory.yaml", flag, "F"]
    assert main(argv, out=io.StringIO()) == 2
    shown = "--known-hosts" if flag == "--known-hosts" else "--ssh-key"
    assert f"{shown} applies to --host" in capsys.readouterr().err


def test_an_unknown_old_spelling_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="--keyfile"):
        sshopts.add_ssh_options(argparse.ArgumentParser(), old_spellings=("--keyfile",))
