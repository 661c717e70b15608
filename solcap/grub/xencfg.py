"""Pure text edits of Xen's EFI configuration file ``xen.cfg`` (direct EFI boot, no GRUB).

When firmware starts ``xen.efi`` itself (an EFI boot entry, or ``chainloader`` from another
loader), Xen reads its own command line from ``options=`` and Dom0's from ``kernel=<file>
<options>`` in ``xen.cfg`` beside the binary. The rules, from Xen's ``docs/misc/efi.pandoc``:

* sections are headed ``[name]``; ``[global]``'s ``default=`` names the section that boots;
* without ``default=`` "section headers will be ignored and for each value looked for the
  first instance within the file will be used";
* ``[global]`` also provides values a section does not set;
* ``#`` starts a comment; the file is ASCII.

So the line that carries Xen's options is the chosen section's ``options=`` (else
``[global]``'s), Dom0's is the chosen section's ``kernel=`` (else ``[global]``'s) after its
file name. Everything else stays byte for byte. Refusals name ``path:line``: a ``default=``
naming no section, a missing ``kernel=`` when Dom0 options are asked for, non-ASCII text.
No I/O here.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from solcap.boot.bootline import Kind, merge
from solcap.errors import ConfigError, UsageError

_SECTION = re.compile(r"^\s*\[([^\]]*)\]\s*(?:#.*)?$")
_VALUE = re.compile(r"^(\s*)([A-Za-z_][A-Za-z0-9_-]*)(\s*=\s*)(.*?)(\s*)$")


@dataclass(frozen=True)
class CfgValue:
    """One ``key=value`` line: its 0-based line index, section ("" before any header)."""

    index: int
    section: str
    key: str
    value: str


@dataclass(frozen=True)
class XenCfg:
    """What boots from a ``xen.cfg``: the section chosen, and the Xen and Dom0 lines."""

    section: str | None  # None: no default=, first instances win
    options: CfgValue | None
    kernel: CfgValue | None


def _values(lines: Sequence[str]) -> list[CfgValue]:
    found: list[CfgValue] = []
    section = ""
    for index, raw in enumerate(lines):
        text = raw.rstrip("\r\n")
        if not text.strip() or text.lstrip().startswith("#"):
            continue
        header = _SECTION.match(text)
        if header:
            section = header.group(1).strip()
            continue
        match = _VALUE.match(text)
        if match:
            found.append(CfgValue(index, section, match.group(2), match.group(4)))
    return found


def read_xen_cfg(text: str, path: str = "xen.cfg", section: str | None = None) -> XenCfg:
    """Which ``options=`` and ``kernel=`` lines Xen uses (``section`` overrides ``default=``)."""
    bad = next((i for i, c in enumerate(text) if ord(c) > 127), None)
    if bad is not None:
        line = text.count("\n", 0, bad) + 1
        raise ConfigError(path, "xen.cfg must be ASCII (Xen reads it as such)", line=line)
    values = _values(text.splitlines(keepends=True))
    sections = {v.section for v in values} | set(_headers(text))
    chosen = section
    if chosen is None:
        default = next((v for v in values if v.section == "global" and v.key == "default"), None)
        if default is not None:
            chosen = default.value.strip()
            if chosen not in sections:
                raise ConfigError(
                    path,
                    f"default={chosen} but there is no [{chosen}] section",
                    line=default.index + 1,
                    field="default",
                )
    elif chosen not in sections:
        raise UsageError(f"{path}: no [{chosen}] section (sections: {', '.join(sorted(sections))})")

    def pick(key: str) -> CfgValue | None:
        if chosen is None:
            return next((v for v in values if v.key == key), None)
        own = next((v for v in values if v.section == chosen and v.key == key), None)
        if own is not None:
            return own
        return next((v for v in values if v.section == "global" and v.key == key), None)

    return XenCfg(chosen, pick("options"), pick("kernel"))


def _headers(text: str) -> list[str]:
    return [m.group(1).strip() for line in text.splitlines() if (m := _SECTION.match(line))]


def _rewrite(lines: list[str], value: CfgValue, new_value: str) -> None:
    raw = lines[value.index]
    ending = raw[len(raw.rstrip("\r\n")) :]
    match = _VALUE.match(raw.rstrip("\r\n"))
    assert match is not None
    indent, key, eq, _old, trailing = match.groups()
    lines[value.index] = f"{indent}{key}{eq}{new_value}{trailing}{ending}"


def _merge(text: str, add: Sequence[str], remove: Sequence[str], kind: Kind, where: str) -> str:
    try:
        return merge(text, add, remove, kind=kind)
    except UsageError as exc:
        raise UsageError(f"{where}: {exc}") from exc


def edit_xen_cfg(
    text: str,
    xen_add: Sequence[str] = (),
    xen_remove: Sequence[str] = (),
    dom0_add: Sequence[str] = (),
    dom0_remove: Sequence[str] = (),
    *,
    path: str = "xen.cfg",
    section: str | None = None,
) -> str:
    """Put the profile's options on the ``options=`` and ``kernel=`` lines Xen will use.

    A section (or file) without ``options=`` gets one, right after its header (or at the
    top). Idempotent; unchanged lines keep their bytes.
    """
    cfg = read_xen_cfg(text, path, section)
    lines = text.splitlines(keepends=True)
    if dom0_add or dom0_remove:
        if cfg.kernel is None:
            raise ConfigError(
                path,
                "no kernel= line for the section that boots"
                + (f" ([{cfg.section}])" if cfg.section else "")
                + ": nowhere to put Dom0's options",
                field="kernel",
            )
        file_name, _, args = cfg.kernel.value.partition(" ")
        where = f"{path}:{cfg.kernel.index + 1}"
        new_args = _merge(args.strip(), dom0_add, dom0_remove, "linux", where)
        if new_args != args.strip():
            _rewrite(lines, cfg.kernel, f"{file_name} {new_args}".rstrip())
    if xen_add or xen_remove:
        if cfg.options is not None:
            where = f"{path}:{cfg.options.index + 1}"
            new = _merge(cfg.options.value, xen_add, xen_remove, "xen", where)
            if new != cfg.options.value:
                _rewrite(lines, cfg.options, new)
        elif xen_add:
            created = f"options={merge('', xen_add, xen_remove, kind='xen')}\n"
            at = 0
            if cfg.section is not None:
                at = next(
                    i + 1
                    for i, line in enumerate(lines)
                    if (m := _SECTION.match(line.rstrip("\r\n")))
                    and m.group(1).strip() == cfg.section
                )
            lines.insert(at, created)
    return "".join(lines)


def xen_cfg_cmdlines(
    text: str, path: str = "xen.cfg", section: str | None = None
) -> tuple[str | None, str | None]:
    """Xen's and Dom0's arguments as the file gives them (for verification after an edit)."""
    cfg = read_xen_cfg(text, path, section)
    xen = cfg.options.value if cfg.options is not None else None
    dom0 = cfg.kernel.value.partition(" ")[2].strip() if cfg.kernel is not None else None
    return xen, dom0


__all__ = ["CfgValue", "XenCfg", "edit_xen_cfg", "read_xen_cfg", "xen_cfg_cmdlines"]
