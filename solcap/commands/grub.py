"""``solcap grub show|apply``: put a profile's Xen/Dom0 options on a host's boot line.

Persistent (default): over SSH, edit ``/etc/default/grub(.d)`` and regenerate ``grub.cfg``
(or edit a generated ``grub.cfg`` directly when the host has no regenerate tool and an
``--entry`` pattern says which menuentry). ``--dry-run`` is the default; ``--write`` changes
the host. One-shot (``--oneshot``): edit the entry in GRUB's menu over the console for one
boot; HOST is then a console target (device path or URL, as for ``solcap capture``).
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from typing import Any, TextIO

from solcap.boot.profiles import Profile, load_profile
from solcap.commands import ipmiopts, sshopts
from solcap.commands.argtypes import directory
from solcap.config.credentials import PasswordSource
from solcap.errors import ExitStatus, UsageError
from solcap.grub.cfg import CMDLINE_VARIABLES
from solcap.grub.remote import (
    RemoteLayout,
    apply_persistent,
    plan_persistent,
    remote_grub_speed,
    xen_entries,
)
from solcap.transports.ssh import SshConnection, SshTarget, connect


def ssh_target(args: argparse.Namespace) -> SshTarget:
    """The SSH target from HOST, the shared SSH options and ``--path-prefix``."""
    return sshopts.ssh_target(args, args.host, path_prefix=tuple(args.path_prefix or ()))


def layout(args: argparse.Namespace) -> RemoteLayout:
    """Where the host's GRUB files are, from ``--root-prefix`` and friends."""
    return RemoteLayout(
        root=args.root_prefix or "/",
        grub_cfg=args.grub_cfg,
        regenerate=args.regenerate,
        path_prefix=tuple(args.path_prefix or ()),
        tool_dirs=tuple(args.tool_dir) if args.tool_dir else None,
        entry_pattern=args.entry,
        method=args.method,
        xen_cfg=args.xen_cfg,
        xen_cfg_section=args.xen_cfg_section,
    )


def _profile(args: argparse.Namespace) -> Profile:
    return load_profile(args.profile)


def cmd_show(args: argparse.Namespace, out: TextIO) -> int:
    """Current effective settings, the grub.cfg Xen lines, and what the profile would change."""
    _check_entry(args)
    profile = _profile(args)
    where = layout(args)
    with connect(ssh_target(args)) as ssh:
        plan = plan_persistent(ssh, profile, layout=where)
        print(f"host:       {plan.host}", file=out)
        print(f"method:     {plan.method}", file=out)
        print(f"regenerate: {plan.regenerate or '(none: grub.cfg edited directly)'}", file=out)
        print(f"grub.cfg:   {plan.grub_cfg or '(unknown)'}", file=out)
        if plan.method == "default-grub":
            print("current settings:", file=out)
            for name in CMDLINE_VARIABLES:
                setting = plan.settings.get(name)
                if setting is None:
                    print(f"  {name}: (not set)", file=out)
                    continue
                notes = " dynamic" if setting.dynamic else ""
                notes += " conditional" if setting.conditional else ""
                print(
                    f"  {name}={setting.value!r}  ({setting.path}:{setting.line}{notes})", file=out
                )
        _show_entries(ssh, plan.grub_cfg, where, out)
        for warning in plan.warnings:
            print(f"warning: {warning}", file=out)
        if plan.changed:
            print(f"profile {profile.name} would change:", file=out)
            out.write(plan.diff)
        else:
            print(f"profile {profile.name}: nothing to change", file=out)
    return ExitStatus.OK


def _show_entries(ssh: SshConnection, cfg: str | None, where: RemoteLayout, out: TextIO) -> None:
    if cfg is None:
        return
    text = ssh.read_file(where.path(cfg), sudo=ssh.target.sudo)
    if text is None:
        return
    print(f"Xen entries in {cfg}:", file=out)
    for title, xen, dom0 in xen_entries(text, where.entry_pattern, cfg):
        print(f"  {title}", file=out)
        print(f"    xen:  {xen}", file=out)
        print(f"    dom0: {dom0 if dom0 is not None else '(no module2 line)'}", file=out)


def cmd_apply(args: argparse.Namespace, out: TextIO) -> int:
    """Dry run by default; ``--write`` backs up, writes, regenerates and verifies."""
    _check_entry(args)
    profile = _profile(args)
    _check_ipmi_options(args)
    if args.oneshot:
        return _oneshot(args, profile, out)
    with connect(ssh_target(args)) as ssh:
        where = layout(args)
        plan = plan_persistent(ssh, profile, layout=where)
        _baud_warnings(ssh, profile, where, out)
        apply_persistent(ssh, plan, dry_run=not args.write, out=out)
    return ExitStatus.OK


def _baud_warnings(ssh: SshConnection, profile: Profile, where: RemoteLayout, out: TextIO) -> None:
    """GRUB's serial --speed on the host against the profile's com1= (the line about to boot).

    Why here: this command has an SSH connection but no BMC, so two of the three rates of
    :mod:`solcap.boot.baud`; a mismatch means one of GRUB or Xen will reach the console garbled.
    """
    from solcap.boot.baud import Rates, disagreements, xen_com_speed

    grub, grub_from = remote_grub_speed(ssh, where)
    rates = Rates(
        grub=grub,
        xen=xen_com_speed(" ".join(profile.xen.options)),
        grub_from=grub_from,
        xen_from=f"profile {profile.name}, about to boot",
    )
    for warning in disagreements(rates, ssh.target.display):
        print(f"warning: {warning}", file=out)


# --- one-shot ---------------------------------------------------------------------------
# ``--oneshot`` is solcap.grub.menu's job (GRUB's editor over the console). This command only
# opens the console and hands over.


def _power_bmc(args: argparse.Namespace) -> str | None:
    """``--power-cycle``'s BMC: ``--bmc``, or HOST itself when it is ``ipmi://``; None without
    ``--power-cycle``. Its address is checked here, before any console or recording."""
    if not args.power_cycle:
        if args.bmc:
            raise UsageError("--bmc is for --power-cycle: give --power-cycle too, or leave it out")
        return None
    bmc: str | None = args.bmc or (args.host if args.host.lower().startswith("ipmi://") else None)
    if bmc is None:
        raise UsageError("--power-cycle needs --bmc ipmi://user@bmc when HOST is not ipmi://")
    from solcap.transports.ipmi.target import IpmiTarget

    if not bmc.lower().startswith("ipmi://"):
        raise UsageError(f"--bmc {bmc}: power control needs an ipmi://user@bmc address")
    try:
        IpmiTarget.parse(bmc)
    except UsageError as exc:
        raise UsageError(f"--bmc: {exc.one_line()}" if args.bmc else exc.one_line()) from None
    return bmc


def _credentials(
    args: argparse.Namespace, logins: list[str]
) -> tuple[PasswordSource, PasswordSource] | None:
    """The password and Kg for every BMC login of this run, read once, now.

    One read for the power cycle and the SOL console alike: a prompt is asked once, a
    password file (or the variable) read once, and a missing password is exit 2 before
    GRUB's menu was waited for. ``logins`` are the ``ipmi://`` addresses to be logged in to
    (the first names the prompt); none: no credentials are read.
    """
    if not logins:
        return None
    from solcap.config.credentials import known_secret
    from solcap.transports.ipmi.target import IpmiTarget

    target = IpmiTarget.parse(logins[0])
    secret = ipmiopts.password(args).get(f"IPMI password for {target.user}@{target.name}")
    return known_secret(secret), known_secret(ipmiopts.kg(args).get_optional())


def _power_cycler(
    bmc: str | None, credentials: tuple[PasswordSource, PasswordSource] | None
) -> Callable[[], None] | None:
    """``--power-cycle``'s callable: chassis power cycle through ``bmc`` with the credentials
    read once for the whole run."""
    if bmc is None or credentials is None:
        return None
    from solcap.transports.bmc import power

    password, kg = credentials

    def cycle() -> None:
        power(bmc, "cycle", password_source=password, kg=kg)

    return cycle


def _check_entry(args: argparse.Namespace) -> None:
    """``--entry`` is a regular expression over menuentry titles: a bad one is exit 2 first."""
    if args.entry is None:
        return
    try:
        re.compile(args.entry)
    except re.error as exc:
        raise UsageError(
            f"--entry: {args.entry!r} is not a valid regular expression: {exc}"
        ) from None


def _check_ipmi_options(args: argparse.Namespace) -> None:
    """The IPMI credentials serve an ``ipmi://`` HOST or ``--bmc`` of ``--oneshot`` only."""
    if not args.oneshot:
        ipmiopts.refuse_unless_ipmi(args, None)
        return
    ipmiopts.refuse_unless_ipmi(args, args.bmc if args.bmc else args.host)


def _oneshot(args: argparse.Namespace, profile: Profile, out: TextIO) -> int:
    from solcap.grub.menu import apply_oneshot  # the console stack, only when it is needed

    entry = args.entry or "Xen"
    if not args.write:
        print(
            f"dry run: at the next boot of {args.host}, would edit the GRUB entry matching "
            f"{entry!r} for profile {profile.name}: xen +{' +'.join(profile.xen.options)}"
            + (f", dom0 +{' +'.join(profile.dom0.options)}" if profile.dom0.options else "")
            + " (use --write to do it)",
            file=out,
        )
        return ExitStatus.OK
    from solcap.capture.recording import Recording, check_root
    from solcap.connect import ConsoleSpec, open_console
    from solcap.transports.registry import check_target
    from solcap.transports.serialport import LineSettings

    check_target(args.host)
    try:
        line = LineSettings.parse(args.line)
    except UsageError as exc:
        raise UsageError(f"--line: {exc.one_line()}") from None
    sol = args.host.lower().startswith("ipmi://")  # else the credentials serve --bmc only
    bmc = _power_bmc(args)
    credentials = _credentials(args, [url for url in (args.host if sol else None, bmc) if url])
    spec = ConsoleSpec.from_url(
        args.host,
        line=line,
        password=credentials[0] if sol and credentials else None,
        kg=credentials[1] if sol and credentials else None,
    )
    power_cycle = _power_cycler(bmc, credentials)
    check_root(args.recordings)

    def make_recording() -> Recording:
        return Recording(spec.host, label="grub-oneshot", root=args.recordings)

    console = open_console(spec, recording=make_recording)
    recording = console.recording
    assert recording is not None
    try:
        with console:
            result = apply_oneshot(console, profile, entry=entry, power_cycle=power_cycle)
    finally:
        summary = recording.close()
        print(f"recording: {summary.path}", file=out)
    print(f"entry:   {result.entry_title}", file=out)
    print(f"xen:     {result.xen_after}", file=out)
    if result.booted_cmdline is not None:
        print(f"booted:  {result.booted_cmdline}", file=out)
    return ExitStatus.OK if result.verified or result.booted_cmdline is None else ExitStatus.TARGET


# --- parser -------------------------------------------------------------------------------


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("host", metavar="HOST", help="ssh://user@host[:port]")
    parser.add_argument("--profile", required=True, help="profile name or .toml path")
    sshopts.add_ssh_options(parser, sudo="read, write and regenerate via sudo")
    files = parser.add_argument_group("GRUB files on the host")
    files.add_argument("--root-prefix", metavar="DIR", help="prefix every path (tests, chroots)")
    files.add_argument("--grub-cfg", metavar="PATH", help="the generated grub.cfg")
    files.add_argument("--regenerate", metavar="CMD", help="command that regenerates grub.cfg")
    files.add_argument(
        "--path-prefix", action="append", metavar="DIR", help="put DIR first on the remote PATH"
    )
    files.add_argument(
        "--tool-dir",
        action="append",
        metavar="DIR",
        help="look for update-grub/grub-mkconfig only in DIR (repeatable; default: remote PATH)",
    )
    files.add_argument("--entry", metavar="REGEX", help="Xen menuentry title/id to edit/verify")
    files.add_argument(
        "--method",
        choices=("auto", "default-grub", "grub-cfg", "xen-cmdline", "xen-cfg"),
        default="auto",
        help="edit /etc/default/grub(.d) and regenerate, grub.cfg directly, run XCP-ng's "
        "xen-cmdline, or edit Xen's EFI xen.cfg (default: auto; xen-cmdline when present)",
    )
    files.add_argument("--xen-cfg", metavar="PATH", help="Xen's EFI xen.cfg (--method xen-cfg)")
    files.add_argument("--xen-cfg-section", metavar="NAME", help="xen.cfg section to edit")


def register(sub: Any) -> None:
    """Add ``solcap grub`` to the CLI's sub-parsers."""
    parser = sub.add_parser("grub", help="show or apply a profile's boot options in GRUB")
    actions = parser.add_subparsers(dest="grub_command", required=True, metavar="ACTION")
    show = actions.add_parser("show", help="current settings and what the profile would change")
    _add_common(show)
    show.set_defaults(func=cmd_show)
    apply = actions.add_parser("apply", help="apply a profile (dry run unless --write)")
    _add_common(apply)
    mode = apply.add_mutually_exclusive_group()
    mode.add_argument("--dry-run", action="store_true", help="show the diff only (default)")
    mode.add_argument("--write", action="store_true", help="change the host")
    apply.add_argument(
        "--oneshot",
        action="store_true",
        help="edit GRUB's menu over the console for one boot (HOST is a console target)",
    )
    apply.add_argument("--line", default="38400,8n1", help="--oneshot: console line settings")
    apply.add_argument(
        "--power-cycle",
        action="store_true",
        help="--oneshot: power-cycle through the BMC first, then catch GRUB's menu",
    )
    apply.add_argument("--bmc", metavar="URL", help="--oneshot: ipmi:// BMC for --power-cycle")
    apply.add_argument("--recordings", type=directory(), help="--oneshot: recordings root")
    ipmiopts.add_ipmi_options(
        apply,
        title="IPMI credentials (--oneshot on ipmi://, --power-cycle; never on the command line)",
    )
    apply.set_defaults(func=cmd_apply)
