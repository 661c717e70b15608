"""Persistent GRUB edits on a running Dom0 over SSH: plan (read + diff), then apply.

Two steps on purpose. :func:`plan_persistent` only reads: the GRUB defaults files (or a
generated ``grub.cfg``), the pure editors of :mod:`solcap.grub.cfg` compute the new text, and
the plan carries the unified diff, override warnings and the regenerate command it detected.
:func:`apply_persistent` is a dry run unless told otherwise; a real run backs every file up
as ``<file>.solcap-<UTC stamp>.bak``, writes atomically, regenerates ``grub.cfg`` and reads
it back to check that the Xen entries carry the profile's options — a config that looks
right but does not boot with the console is the failure this tool exists to prevent.

Where the target is ambiguous the answer is a refusal naming what to choose, never a guess:
several candidate files for a variable nobody sets, two ``grub.cfg`` files for one tool,
no regenerate command and no entry pattern, a system ``update-grub`` while files live under
a root prefix (it would write the real ``/boot``).

Paths come from :class:`RemoteLayout`; its ``root`` prefixes every path so tests and
offline trees work under a temporary directory.
"""

from __future__ import annotations

import posixpath
import shlex
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, TextIO

from solcap.boot.bootline import Kind, split_words
from solcap.boot.profiles import Profile
from solcap.errors import ConfigError, TargetError, UsageError
from solcap.grub.cfg import (
    DOM0_DEFAULT,
    XEN_DEFAULT,
    Setting,
    edit_default_grub,
    edit_grub_cfg,
    effective_settings,
    entry_chain,
    entry_cmdlines,
    menu_entry_cmdlines,
    override_warnings,
    select_entry,
    sourcing_order,
    target_file,
    unified_diff,
    xen_entry_chains,
)
from solcap.grub.xencfg import edit_xen_cfg, xen_cfg_cmdlines
from solcap.transports.ssh import SshConnection

Method = Literal["auto", "default-grub", "grub-cfg", "xen-cmdline", "xen-cfg"]
Planned = Literal["default-grub", "grub-cfg", "xen-cmdline", "xen-cfg"]
#: XCP-ng / XenServer's supported tool for persistent Xen and Dom0 command-line changes.
XEN_CMDLINE = "/opt/xensource/libexec/xen-cmdline"
#: Where XCP-ng / XenServer keep grub.cfg (BIOS, then UEFI), for verification.
XCPNG_GRUB_CFGS = ("/boot/grub/grub.cfg", "/boot/efi/EFI/xenserver/grub.cfg")
#: Regenerate tools in order of preference, with the grub.cfg each writes by default.
TOOLS: tuple[tuple[str, str], ...] = (
    ("update-grub", "/boot/grub/grub.cfg"),
    ("grub2-mkconfig", "/boot/grub2/grub.cfg"),
    ("grub-mkconfig", "/boot/grub/grub.cfg"),
)
#: What 20_linux_xen names the per-entry files xen.cfg ships for; preferred for new variables.
XEN_CFG = "xen.cfg"


@dataclass(frozen=True)
class RemoteLayout:
    """Where GRUB's files are on one host, and how to regenerate ``grub.cfg``."""

    root: str = "/"
    default_grub: str = "/etc/default/grub"
    grub_d: str = "/etc/default/grub.d"
    #: The generated grub.cfg; None = the one the detected tool writes (must exist).
    grub_cfg: str | None = None
    #: A full regenerate command (run under sudo when the target uses sudo); None = detect.
    regenerate: str | None = None
    #: Directories put first on the remote PATH (stub tools in tests, site wrappers).
    path_prefix: tuple[str, ...] = ()
    #: Where to look for update-grub/grub2-mkconfig/grub-mkconfig; None = the whole remote
    #: PATH (path_prefix, the login PATH, the sbin directories). An offline tree names
    #: exactly its own tool directories, so the machine's own GRUB tools cannot be picked up.
    tool_dirs: tuple[str, ...] | None = None
    #: Title regex (or id, or ``submenu>title`` path) of the Xen entry to edit/verify.
    entry_pattern: str | None = None
    method: Method = "auto"
    #: XCP-ng's xen-cmdline; when it exists, ``auto`` uses it (the host's supported way).
    xen_cmdline: str = XEN_CMDLINE
    #: Xen's EFI ``xen.cfg`` (method ``xen-cfg``, direct EFI boot) and its section.
    xen_cfg: str | None = None
    xen_cfg_section: str | None = None

    def path(self, logical: str) -> str:
        """The real remote path of an absolute logical path such as ``/etc/default/grub``."""
        if self.root in ("", "/"):
            return logical
        return posixpath.join(self.root, logical.lstrip("/"))


@dataclass(frozen=True)
class FileEdit:
    """One file's current and new text."""

    path: str  # logical path (as on the host, without the root prefix)
    real_path: str  # with the root prefix
    old: str
    new: str

    @property
    def changed(self) -> bool:
        return self.old != self.new

    @property
    def diff(self) -> str:
        return unified_diff(self.old, self.new, self.path)


@dataclass(frozen=True)
class Plan:
    """What :func:`apply_persistent` would do; nothing has been changed yet."""

    host: str
    profile: Profile
    layout: RemoteLayout
    method: Planned
    edits: tuple[FileEdit, ...]
    #: Command line that regenerates grub.cfg (None for a direct grub.cfg edit).
    regenerate: str | None
    #: Logical path of the grub.cfg that is verified after the change (None: unknown).
    grub_cfg: str | None
    warnings: tuple[str, ...] = ()
    #: Effective values of the command-line variables before the edit (default-grub only).
    settings: dict[str, Setting] = field(default_factory=dict)
    #: ``xen-cmdline`` invocations (method xen-cmdline), each a full shell command.
    commands: tuple[str, ...] = ()

    @property
    def changed(self) -> bool:
        return bool(self.commands) or any(edit.changed for edit in self.edits)

    @property
    def diff(self) -> str:
        return "".join(edit.diff for edit in self.edits)


@dataclass(frozen=True)
class ApplyResult:
    """What a real (or dry) run did."""

    written: tuple[str, ...] = ()
    backups: tuple[tuple[str, str], ...] = ()  # (file, backup), logical paths
    regenerated: bool = False
    verified: tuple[str, ...] = ()  # entry titles checked
    dry_run: bool = True


# --------------------------------------------------------------------------- detection


@dataclass(frozen=True)
class _Regen:
    command: str | None
    grub_cfg: str | None


def _detect_regenerate(ssh: SshConnection, layout: RemoteLayout) -> _Regen:
    """Which tool regenerates grub.cfg here, and which grub.cfg it writes; or (None, cfg)."""
    host = ssh.target.display
    if layout.regenerate is not None:
        return _Regen(layout.regenerate, layout.grub_cfg or _existing_cfg(ssh, layout, None))
    names = " ".join(name for name, _ in TOOLS)
    search = ""
    if layout.tool_dirs is not None:
        # An empty PATH entry would mean the working directory: say "nowhere" explicitly.
        dirs = ":".join(d for d in layout.tool_dirs if d) or "/nonexistent"
        search = f"PATH={shlex.quote(dirs)}; "
    probe = ssh.run(
        f'{search}for t in {names}; do p=$(command -v $t) && echo "$t $p"; done; true',
        path_prefix=layout.path_prefix,
    )
    found = dict(line.split(" ", 1) for line in probe.stdout.splitlines() if " " in line)
    for name, default_cfg in TOOLS:
        if name not in found:
            continue
        where = found[name]
        if layout.root not in ("", "/") and not any(
            where.startswith(prefix.rstrip("/") + "/") for prefix in layout.path_prefix
        ):
            raise UsageError(
                f"{host}: found {where}, but the files live under root prefix {layout.root}; "
                "that tool would regenerate the real /boot. Give the regenerate command "
                "explicitly or put a wrapper in the PATH prefix"
            )
        cfg = layout.grub_cfg or default_cfg
        if not ssh.exists(layout.path(cfg)):
            raise UsageError(
                f"{host}: {name} found but {layout.path(cfg)} does not exist; "
                "give the grub.cfg path explicitly"
            )
        if name == "update-grub":
            return _Regen(name, cfg)
        return _Regen(f"{name} -o {shlex.quote(layout.path(cfg))}", cfg)
    return _Regen(None, layout.grub_cfg or _existing_cfg(ssh, layout, None))


def _existing_cfg(ssh: SshConnection, layout: RemoteLayout, default: str | None) -> str | None:
    """The single grub.cfg that exists among the usual places, else ``default``."""
    present = sorted({cfg for _, cfg in TOOLS if ssh.exists(layout.path(cfg))})
    if len(present) > 1:
        raise UsageError(
            f"{ssh.target.display}: several grub.cfg files exist ({', '.join(present)}); "
            "give the one the firmware reads explicitly"
        )
    return present[0] if present else default


# --------------------------------------------------------------------------- planning


def _read(ssh: SshConnection, layout: RemoteLayout, logical: str) -> str | None:
    return ssh.read_file(layout.path(logical), sudo=ssh.target.sudo)


def _default_files(ssh: SshConnection, layout: RemoteLayout) -> list[tuple[str, str]]:
    """``/etc/default/grub`` and ``grub.d/*.cfg`` (logical path, text), in sourcing order."""
    main = _read(ssh, layout, layout.default_grub)
    if main is None:
        raise UsageError(f"{ssh.target.display}: {layout.path(layout.default_grub)} not found")
    texts = {layout.default_grub: main}
    names = ssh.list_dir(layout.path(layout.grub_d)) or []
    for name in names:
        if not name.endswith(".cfg"):
            continue
        logical = posixpath.join(layout.grub_d, name)
        text = _read(ssh, layout, logical)
        if text is not None:
            texts[logical] = text
    return [(path, texts[path]) for path in sourcing_order(list(texts), layout.default_grub)]


def _file_for(files: Sequence[tuple[str, str]], name: str, layout: RemoteLayout, host: str) -> str:
    """Which file gets ``name``: the one that sets it last, else one unambiguous candidate."""
    if name in effective_settings(files):
        return target_file(files, name)
    extra = [path for path, _ in files if path != layout.default_grub]
    if not extra:
        return layout.default_grub
    xen = [path for path in extra if posixpath.basename(path) == XEN_CFG]
    if xen:
        return xen[0]
    if len(extra) == 1:
        return extra[0]
    raise UsageError(
        f"{host}: no file sets {name} and several are candidates ({', '.join(extra)}); "
        f'create it in the one you want, e.g. {name}="${name}"'
    )


def _plan_default_grub(
    ssh: SshConnection, profile: Profile, layout: RemoteLayout, regen: _Regen
) -> Plan:
    host = ssh.target.display
    files = _default_files(ssh, layout)
    texts = dict(files)
    new = dict(texts)
    for name, options in ((XEN_DEFAULT, profile.xen), (DOM0_DEFAULT, profile.dom0)):
        if not options.options and not options.remove:
            continue
        path = _file_for(files, name, layout, host)
        kind = "xen" if name == XEN_DEFAULT else "linux"
        new[path] = edit_default_grub(
            new[path],
            xen_add=options.options if kind == "xen" else (),
            xen_remove=options.remove if kind == "xen" else (),
            dom0_add=options.options if kind == "linux" else (),
            dom0_remove=options.remove if kind == "linux" else (),
            variables=(name,),
            path=path,
        )
    after = [(path, new[path]) for path, _ in files]
    _check_effective(after, profile, host)
    _refuse_unverifiable(ssh, layout, regen.grub_cfg)
    edits = tuple(
        FileEdit(path, layout.path(path), texts[path], new[path])
        for path, _ in files
        if new[path] != texts[path]
    )
    warnings = list(override_warnings(after))
    if regen.command is None:
        raise UsageError(
            f"{host}: no update-grub, grub2-mkconfig or grub-mkconfig found; give the "
            "regenerate command, or edit grub.cfg directly with an entry pattern"
        )
    return Plan(
        host=host,
        profile=profile,
        layout=layout,
        method="default-grub",
        edits=edits,
        regenerate=regen.command,
        grub_cfg=regen.grub_cfg,
        warnings=tuple(warnings),
        settings=effective_settings(files),
    )


def _refuse_unverifiable(ssh: SshConnection, layout: RemoteLayout, cfg: str | None) -> None:
    """Refuse now what verification would refuse after writing and regenerating.

    Why: the entries that decide verification mostly survive ``update-grub`` (a 40_custom
    entry, the entry ``--entry`` names), so a refusal found only after the regenerate would
    leave the host changed for nothing. On the current grub.cfg: the entry ``--entry`` names
    must be a Xen entry one can edit (when it is there at all: a new kernel's entry appears
    only after regenerating); without ``--entry``, no Xen entry may be one that cannot be
    edited safely. Non-Xen entries (memtest86+, os-prober's) are skipped as verification skips
    them. The refusal names grub.cfg:line and the reason (ConfigError, exit 2).
    """
    if cfg is None:
        return
    text = _read(ssh, layout, cfg)
    if text is None:
        return
    if layout.entry_pattern is None:
        xen_entry_chains(text, cfg)
        return
    try:
        select_entry(text, layout.entry_pattern, cfg)
    except ConfigError:
        return  # not there yet (or ambiguous now): verification after regenerating decides
    entry_chain(text, layout.entry_pattern, cfg)


def _carries(line: str | None, options: Sequence[str]) -> list[str]:
    """The options missing from a command line (exact tokens)."""
    words = set(split_words(line or ""))
    return [option for option in options if option not in words]


def _check_effective(files: Sequence[tuple[str, str]], profile: Profile, host: str) -> None:
    """After the edit, the sourced values must carry the options (else a later file wins)."""
    settings = effective_settings(files)
    for name, options in ((XEN_DEFAULT, profile.xen), (DOM0_DEFAULT, profile.dom0)):
        setting = settings.get(name)
        if not options.options or setting is None or setting.dynamic:
            continue
        missing = _carries(setting.value, options.options)
        if missing:
            raise UsageError(
                f"{host}: after the edit {name} would still lack {' '.join(missing)} "
                f"(last set in {setting.path}:{setting.line}); refusing"
            )


def _plan_grub_cfg(
    ssh: SshConnection, profile: Profile, layout: RemoteLayout, regen: _Regen
) -> Plan:
    host = ssh.target.display
    if layout.entry_pattern is None:
        raise UsageError(
            f"{host}: editing grub.cfg directly needs an entry pattern (which menuentry to "
            "change); none given"
        )
    cfg = regen.grub_cfg
    if cfg is None:
        raise UsageError(f"{host}: no grub.cfg found; give its path")
    text = _read(ssh, layout, cfg)
    if text is None:
        raise UsageError(f"{host}: {layout.path(cfg)} not found")
    new = edit_grub_cfg(
        text,
        layout.entry_pattern,
        xen_add=profile.xen.options,
        xen_remove=profile.xen.remove,
        dom0_add=profile.dom0.options,
        dom0_remove=profile.dom0.remove,
        path=cfg,
    )
    warnings = ["grub.cfg is generated: the next update-grub/grub-mkconfig run undoes this edit"]
    if regen.command is not None:
        warnings.append(f"{regen.command} exists here; editing the defaults files would last")
    edits = (FileEdit(cfg, layout.path(cfg), text, new),) if new != text else ()
    return Plan(
        host=host,
        profile=profile,
        layout=layout,
        method="grub-cfg",
        edits=edits,
        regenerate=None,
        grub_cfg=cfg,
        warnings=tuple(warnings),
    )


def plan_persistent(ssh: SshConnection, profile: Profile, *, layout: RemoteLayout) -> Plan:
    """Read the host's GRUB files and compute the edit; changes nothing on the host.

    ``layout.method``: ``default-grub`` edits ``/etc/default/grub(.d)`` and regenerates;
    ``grub-cfg`` edits the generated file directly (needs ``entry_pattern``); ``xen-cmdline``
    runs XCP-ng/XenServer's ``/opt/xensource/libexec/xen-cmdline``; ``xen-cfg`` edits Xen's
    EFI ``xen.cfg`` (``layout.xen_cfg``). ``auto`` picks ``xen-cmdline`` when the host has
    it, else ``default-grub`` when a regenerate tool exists, else ``grub-cfg`` when an entry
    pattern was given, else refuses.
    """
    method = layout.method
    if method == "xen-cfg":
        return _plan_xen_cfg(ssh, profile, layout)
    if method == "xen-cmdline" or (
        method == "auto" and ssh.exists(layout.path(layout.xen_cmdline))
    ):
        return _plan_xen_cmdline(ssh, profile, layout)
    regen = _detect_regenerate(ssh, layout)
    if method == "auto":
        if regen.command is not None:
            method = "default-grub"
        elif layout.entry_pattern is not None:
            method = "grub-cfg"
        else:
            raise UsageError(
                f"{ssh.target.display}: no update-grub, grub2-mkconfig or grub-mkconfig here "
                "and no entry pattern to edit grub.cfg directly; refusing to guess"
            )
    if method == "default-grub":
        return _plan_default_grub(ssh, profile, layout, regen)
    return _plan_grub_cfg(ssh, profile, layout, regen)


# --------------------------------------------------------------------------- XCP-ng, xen.cfg


def _xcpng_cfg(ssh: SshConnection, layout: RemoteLayout) -> str | None:
    if layout.grub_cfg is not None:
        return layout.grub_cfg
    present = [cfg for cfg in XCPNG_GRUB_CFGS if ssh.exists(layout.path(cfg))]
    return present[0] if present else None


def _default_entry(text: str, layout: RemoteLayout, path: str) -> tuple[str, str, str | None]:
    """(title, Xen args, Dom0 args) of the entry xen-cmdline's result is checked on: the
    pattern given, else GRUB's first Xen entry (non-Xen entries such as memtest86+'s are
    skipped, see :func:`solcap.grub.cfg.xen_entry_chains`)."""
    if layout.entry_pattern is not None:
        xen, dom0 = entry_cmdlines(text, layout.entry_pattern, path)
        return layout.entry_pattern, xen, dom0
    for entry, _chain in xen_entry_chains(text, path):
        return (entry.path, *menu_entry_cmdlines(text, entry, path))
    raise UsageError(f"{path} has no Xen menuentry to verify")


def _plan_xen_cmdline(ssh: SshConnection, profile: Profile, layout: RemoteLayout) -> Plan:
    """xen-cmdline --set-xen/--delete-xen/--set-dom0/--delete-dom0 for what is missing.

    xen-cmdline sets and deletes by option *name*, so a profile removal of one exact token
    (``console=tty0`` while other ``console=`` stay) cannot be expressed and is refused.
    What the entry already carries (read from grub.cfg) is not set again.
    """
    host = ssh.target.display
    tool = layout.path(layout.xen_cmdline)
    if not ssh.exists(tool):
        raise UsageError(f"{host}: {tool} not found (method xen-cmdline is for XCP-ng/XenServer)")
    cfg = _xcpng_cfg(ssh, layout)
    xen_now: str | None = None
    dom0_now: str | None = None
    if cfg is not None:
        text = _read(ssh, layout, cfg)
        if text is not None:
            _, xen_now, dom0_now = _default_entry(text, layout, cfg)
    commands: list[str] = []
    for flag, options, current in (
        ("xen", profile.xen, xen_now),
        ("dom0", profile.dom0, dom0_now),
    ):
        present = split_words(current) if current is not None else []
        for removal in options.remove:
            if "=" in removal:
                raise UsageError(
                    f"{host}: profile {profile.name} removes the single token {removal!r}; "
                    "xen-cmdline deletes options by name only, so that cannot be done safely"
                )
            names = {word.split("=", 1)[0] for word in present}
            if current is None or removal in names:
                commands.append(f"{shlex.quote(tool)} --delete-{flag} {shlex.quote(removal)}")
        for option in options.options:
            if option not in present:
                commands.append(f"{shlex.quote(tool)} --set-{flag} {shlex.quote(option)}")
    warnings: tuple[str, ...] = ()
    if cfg is None:
        warnings = ("no grub.cfg found to verify xen-cmdline's result; give its path",)
    return Plan(
        host=host,
        profile=profile,
        layout=layout,
        method="xen-cmdline",
        edits=(),
        regenerate=None,
        grub_cfg=cfg,
        warnings=warnings,
        commands=tuple(commands),
    )


def _plan_xen_cfg(ssh: SshConnection, profile: Profile, layout: RemoteLayout) -> Plan:
    host = ssh.target.display
    if layout.xen_cfg is None:
        raise UsageError(f"{host}: method xen-cfg needs the path of Xen's EFI xen.cfg")
    text = _read(ssh, layout, layout.xen_cfg)
    if text is None:
        raise UsageError(f"{host}: {layout.path(layout.xen_cfg)} not found")
    new = edit_xen_cfg(
        text,
        profile.xen.options,
        profile.xen.remove,
        profile.dom0.options,
        profile.dom0.remove,
        path=layout.xen_cfg,
        section=layout.xen_cfg_section,
    )
    edits = (FileEdit(layout.xen_cfg, layout.path(layout.xen_cfg), text, new),)
    return Plan(
        host=host,
        profile=profile,
        layout=layout,
        method="xen-cfg",
        edits=tuple(e for e in edits if e.changed),
        regenerate=None,
        grub_cfg=None,
    )


# --------------------------------------------------------------------------- baud sanity


def remote_grub_speed(ssh: SshConnection, layout: RemoteLayout) -> tuple[int | None, str]:
    """GRUB's ``serial --speed`` on this host and where it was read, for the baud check.

    Why both files: grub.cfg is what GRUB ran at the last boot (and runs at the next one unless
    regenerated); ``GRUB_SERIAL_COMMAND`` in ``/etc/default/grub(.d)`` is what the next
    ``update-grub`` writes there. So the first ``serial`` command of the grub.cfg GRUB reads
    (``layout.grub_cfg``, else the first of the usual places that exists) wins; without one,
    the defaults' ``GRUB_TERMINAL*``/``GRUB_SERIAL_COMMAND`` decide. ``(None, where)`` when
    neither puts GRUB on the serial line or a file cannot be read: the check is advice, so
    a read failure never stops the edit or harvest it precedes.
    """
    from solcap.boot.baud import GRUB_TERMINALS, grub_defaults_serial_speed, grub_serial_speed

    candidates = (
        (layout.grub_cfg,)
        if layout.grub_cfg is not None
        else tuple(dict.fromkeys([cfg for _, cfg in TOOLS] + list(XCPNG_GRUB_CFGS)))
    )
    for cfg in candidates:
        try:
            text = _read(ssh, layout, cfg)
        except (TargetError, OSError):
            continue
        if text is None:
            continue
        speed, line = grub_serial_speed(text)
        if speed is not None:
            return speed, f"{cfg}:{line}"
        break  # the grub.cfg GRUB reads has no serial command: see what the defaults say
    try:
        files = _default_files(ssh, layout)
    except (TargetError, UsageError, OSError):
        return None, "grub.cfg"
    settings = effective_settings(files)
    values = {name: setting.value for name, setting in settings.items()}
    speed = grub_defaults_serial_speed(values)
    if speed is None:
        return None, "grub.cfg"
    where = settings.get("GRUB_SERIAL_COMMAND") or next(
        settings[name] for name in GRUB_TERMINALS if name in settings
    )
    return speed, f"{where.path}:{where.line} ({where.name})"


# --------------------------------------------------------------------------- verify


def xen_entries(text: str, pattern: str | None, path: str) -> list[tuple[str, str, str | None]]:
    """(title, xen args, dom0 args) of the entries to verify.

    With a pattern: that one entry (refused with the reason when it is not a Xen entry). Without:
    every non-recovery entry that boots Xen (the entries ``GRUB_CMDLINE_XEN_DEFAULT`` reaches);
    memtest86+, os-prober's Windows and other non-Xen entries are skipped.
    """
    if pattern is not None:
        xen, dom0 = entry_cmdlines(text, pattern, path)
        return [(pattern, xen, dom0)]
    return [
        (entry.path, *menu_entry_cmdlines(text, entry, path))
        for entry, _chain in xen_entry_chains(text, path)
        if "recovery" not in entry.title.lower()
    ]


def verify_grub_cfg(
    text: str, profile: Profile, *, entry_pattern: str | None, path: str
) -> list[str]:
    """Titles of the verified entries; raises ConfigError listing what an entry lacks."""
    return _check_entries(xen_entries(text, entry_pattern, path), profile, path)


def _check_entries(
    entries: Sequence[tuple[str, str, str | None]], profile: Profile, path: str
) -> list[str]:
    if not entries:
        raise ConfigError(path, "no Xen (multiboot) menuentry found", field="menuentry")
    for title, xen, dom0 in entries:
        problems: list[str] = []
        checks: tuple[tuple[str, str | None, Sequence[str], Kind], ...] = (
            ("Xen", xen, profile.xen.options, "xen"),
            ("Dom0", dom0, profile.dom0.options, "linux"),
        )
        for what, line, options, _kind in checks:
            missing = _carries(line, options)
            if missing:
                problems.append(f"{what} line lacks {' '.join(missing)}")
        if problems:
            raise ConfigError(path, f"entry {title!r}: {'; '.join(problems)}", field="menuentry")
    return [title for title, _, _ in entries]


# --------------------------------------------------------------------------- apply


def _stamp() -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())


def rollback_hint(result_backups: Sequence[tuple[str, str]], regenerate: str | None) -> str:
    """The shell commands that undo an apply (shown when something fails)."""
    steps = [f"cp -p {shlex.quote(b)} {shlex.quote(f)}" for f, b in result_backups]
    if regenerate:
        steps.append(regenerate)
    return " && ".join(steps)


def apply_persistent(
    ssh: SshConnection, plan: Plan, *, dry_run: bool = True, out: TextIO | None = None
) -> ApplyResult:
    """Print the plan; with ``dry_run=False`` back up, write, regenerate and verify.

    Refuses if a file changed since the plan was made. On a failure after writing, the
    TargetError names the backups and the commands that restore them.
    """
    stream = out if out is not None else sys.stdout
    for warning in plan.warnings:
        print(f"warning: {warning}", file=stream)
    if plan.changed:
        stream.write(plan.diff)
    else:
        print(
            f"{plan.host}: GRUB configuration already carries profile {plan.profile.name}",
            file=stream,
        )
    for command in plan.commands:
        print(f"run: {command}", file=stream)
    if dry_run:
        if plan.changed:
            print("dry run: nothing changed (use --write to apply)", file=stream)
        return ApplyResult(dry_run=True)
    layout = plan.layout
    sudo = ssh.target.sudo
    if plan.method == "xen-cmdline":
        return _apply_xen_cmdline(ssh, plan, stream)
    for edit in plan.edits:
        now = ssh.read_file(edit.real_path, sudo=sudo)
        if now != edit.old:
            raise TargetError(plan.host, f"{edit.path} changed since it was read; run again")
    stamp = _stamp()
    backups: list[tuple[str, str]] = []
    written: list[str] = []
    for edit in plan.edits:
        if not edit.changed:
            continue
        backup = f"{edit.path}.solcap-{stamp}.bak"
        ssh.copy_file(edit.real_path, layout.path(backup), sudo=sudo)
        backups.append((edit.path, backup))
        print(f"backup: {backup}", file=stream)
        ssh.write_file_atomic(edit.real_path, edit.new, sudo=sudo)
        written.append(edit.path)
        print(f"wrote: {edit.path}", file=stream)
    real_backups = [(layout.path(f), layout.path(b)) for f, b in backups]
    regenerated = False
    if plan.regenerate is not None and (written or not _verifies(ssh, plan)):
        command = f"SOLCAP_ROOT={shlex.quote(layout.root)}; export SOLCAP_ROOT; {plan.regenerate}"
        result = ssh.run(command, sudo=sudo, path_prefix=layout.path_prefix, timeout=600)
        if not result.ok:
            raise TargetError(
                plan.host,
                f"`{plan.regenerate}` exited {result.exit_status}: {_tail(result.stderr)}; "
                f"roll back with: {rollback_hint(real_backups, plan.regenerate)}",
            )
        regenerated = True
        print(f"regenerated: {plan.regenerate}", file=stream)
    verified = _verify(ssh, plan, real_backups)
    print(f"verified: {', '.join(verified)}", file=stream)
    return ApplyResult(
        written=tuple(written),
        backups=tuple(backups),
        regenerated=regenerated,
        verified=tuple(verified),
        dry_run=False,
    )


def _apply_xen_cmdline(ssh: SshConnection, plan: Plan, stream: TextIO) -> ApplyResult:
    """Run the planned xen-cmdline calls in order, stop at the first failure, then verify."""
    for done, command in enumerate(plan.commands):
        result = ssh.run(command, sudo=ssh.target.sudo, timeout=120)
        if not result.ok:
            ran = "; ".join(plan.commands[:done]) or "none"
            raise TargetError(
                plan.host,
                f"`{command}` exited {result.exit_status}: {_tail(result.stderr)} "
                f"(already run: {ran})",
            )
        print(f"ran: {command}", file=stream)
    verified: list[str] = []
    if plan.grub_cfg is not None:
        verified = _verify(ssh, plan, [])
        print(f"verified: {', '.join(verified)}", file=stream)
    return ApplyResult(written=tuple(plan.commands), verified=tuple(verified), dry_run=False)


def _verifies(ssh: SshConnection, plan: Plan) -> bool:
    try:
        _verify(ssh, plan, [])
    except TargetError:
        return False
    return True


def _verify(ssh: SshConnection, plan: Plan, backups: Sequence[tuple[str, str]]) -> list[str]:
    hint = ""
    if backups:
        hint = f"; roll back with: {rollback_hint(backups, plan.regenerate)}"
    if plan.method == "xen-cfg" and plan.layout.xen_cfg is not None:
        return _verify_xen_cfg(ssh, plan, hint)
    if plan.grub_cfg is None:
        raise TargetError(plan.host, f"no grub.cfg known to verify{hint}")
    real = plan.layout.path(plan.grub_cfg)
    text = ssh.read_file(real, sudo=ssh.target.sudo)
    if text is None:
        raise TargetError(plan.host, f"{real} is missing after regenerating{hint}")
    try:
        if plan.method == "xen-cmdline":
            entry = _default_entry(text, plan.layout, real)
            return _check_entries([entry], plan.profile, real)
        return verify_grub_cfg(
            text, plan.profile, entry_pattern=plan.layout.entry_pattern, path=real
        )
    except (ConfigError, UsageError) as exc:
        raise TargetError(plan.host, f"verification failed: {exc}{hint}") from exc


def _verify_xen_cfg(ssh: SshConnection, plan: Plan, hint: str) -> list[str]:
    assert plan.layout.xen_cfg is not None
    real = plan.layout.path(plan.layout.xen_cfg)
    text = ssh.read_file(real, sudo=ssh.target.sudo)
    if text is None:
        raise TargetError(plan.host, f"{real} is missing after writing{hint}")
    xen, dom0 = xen_cfg_cmdlines(text, real, plan.layout.xen_cfg_section)
    problems = [
        f"{what} line lacks {' '.join(missing)}"
        for what, line, options in (
            ("Xen (options=)", xen, plan.profile.xen.options),
            ("Dom0 (kernel=)", dom0, plan.profile.dom0.options),
        )
        if (missing := _carries(line, options))
    ]
    if problems:
        raise TargetError(plan.host, f"verification failed: {'; '.join(problems)}{hint}")
    return [plan.layout.xen_cfg]


def _tail(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return " | ".join(lines[-3:]) if lines else "(no message)"


__all__ = [
    "ApplyResult",
    "FileEdit",
    "Plan",
    "RemoteLayout",
    "apply_persistent",
    "plan_persistent",
    "remote_grub_speed",
    "rollback_hint",
    "verify_grub_cfg",
    "xen_entries",
]
