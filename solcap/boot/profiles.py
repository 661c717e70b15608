"""TOML boot profiles → validated, immutable objects.

A profile says what the Xen and Dom0 command lines must carry for a console capture to work,
what the serial line looks like, and which debug keys to harvest. Operators write these by
hand, so every mistake is reported as one line naming file:line and the field, and anything
unknown is an error rather than silently ignored (a typo such as ``[xen] option = …`` would
otherwise boot a host without the console it was meant to have).

Inheritance (``extends = "xen-serial-debug"``) resolves by name, first in the child's own
directory, then along the search path; options merge with :func:`solcap.boot.bootline.merge`
semantics, so a child option replaces the parent's option with the same key.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from solcap.boot.bootline import Cmdline, Kind, check_option, merge, split_words
from solcap.config.limits import MAX_DEPTH, check_depth, key_problem, read_text
from solcap.config.shipped import shipped_dir
from solcap.errors import ConfigError, UsageError
from solcap.xen.vcpu import check_dom0_max_vcpus

#: The profiles shipped with solcap (package data when installed; see solcap.config.shipped).
BUILTIN_DIR = shipped_dir("profiles")
ENV_VAR = "SOLCAP_PROFILES"

_TOP_FIELDS = frozenset(
    {"name", "description", "extends", "vars", "xen", "dom0", "console", "harvest"}
)
_OPTION_FIELDS = frozenset({"options", "remove"})
_CONSOLE_FIELDS = frozenset({"baud", "parity", "data_bits", "stop_bits"})
_HARVEST_FIELDS = frozenset({"keys"})
_TABLES = {"xen": _OPTION_FIELDS, "dom0": _OPTION_FIELDS, "console": _CONSOLE_FIELDS}
_TABLES["harvest"] = _HARVEST_FIELDS

BAUD_RATES = (1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200, 230400, 460800, 921600)
PARITIES = ("n", "e", "o")
#: Xen debug keys that change state (reboot, crash, NMI, …); never harvested.
DANGEROUS_KEYS = frozenset("RCNS%ATGPLO+-")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_COM_RE = re.compile(r"^(com[12])=([^,]*)(?:,([^,]*))?")
_DEFAULTS = {"parity": "n", "data_bits": 8, "stop_bits": 1}
_VAR_REF = re.compile(r"\$\{([^}]*)\}")
_VAR_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
#: A profile variable's value: what ``[vars]`` may hold.
VarValue = int | str


@dataclass(frozen=True)
class Options:
    """Options a profile adds to one command line, and options it removes from it."""

    options: tuple[str, ...] = ()
    remove: tuple[str, ...] = ()

    def apply(self, cmdline: str, kind: Kind) -> str:
        """Merge into an existing command line (idempotent, see solcap.boot.bootline.merge)."""
        return merge(cmdline, self.options, self.remove, kind=kind)


@dataclass(frozen=True)
class ConsoleLine:
    """The serial line as the BMC / terminal server must be set up to read it."""

    baud: int
    parity: str = "n"
    data_bits: int = 8
    stop_bits: int = 1

    @property
    def dps(self) -> str:
        """Xen's DPS notation, e.g. ``8n1``."""
        return f"{self.data_bits}{self.parity}{self.stop_bits}"


@dataclass(frozen=True)
class Profile:
    """A fully resolved profile (inheritance already applied)."""

    name: str
    description: str
    path: str
    xen: Options
    dom0: Options
    console: ConsoleLine | None
    harvest_keys: tuple[str, ...]
    #: Ancestors by name, nearest first.
    extends: tuple[str, ...] = field(default=())
    #: The values its ``${name}`` references were given (``[vars]`` of the chain, overridden).
    vars: Mapping[str, VarValue] = field(default_factory=dict)


# --------------------------------------------------------------------------- locating keys


def find_line(source: str, table: str, key: str | None = None) -> int | None:
    """1-based line of ``key =`` inside ``[table]`` ("" = top level), or of the header.

    tomllib reports no positions for semantic errors, so the error messages find them by
    scanning the text; good enough for hand-written profiles (no inline-table trickery).
    """
    current = ""
    key_re = None
    if key is not None:
        key_re = re.compile(
            rf"""^\s*(?:{re.escape(key)}|"{re.escape(key)}"|'{re.escape(key)}')\s*="""
        )
    for number, line in enumerate(source.splitlines(), start=1):
        header = re.match(r"^\s*\[\s*([^\[\]]+?)\s*\]\s*(?:#.*)?$", line)
        if header:
            current = header.group(1).strip().strip("\"'")
            if key is None and current == table:
                return number
            continue
        if key_re is not None and current == table and key_re.match(line):
            return number
        if (
            key_re is not None
            and table
            and current == ""
            and re.match(rf"^\s*{re.escape(table)}\s*\.\s*{re.escape(key or '')}\s*=", line)
        ):
            return number
    return None


# --------------------------------------------------------------------------- raw parsing


@dataclass(frozen=True)
class _Raw:
    """One file's own fields, validated in isolation."""

    name: str
    path: str
    source: str
    description: str | None
    extends: str | None
    xen: Options | None
    dom0: Options | None
    console: Mapping[str, Any]
    harvest_keys: tuple[str, ...] | None
    #: This file's ``[vars]`` with the values it was read with (defaults, or from below).
    vars: Mapping[str, VarValue] = field(default_factory=dict)


class _Reader:
    """Validates one file's data, with errors that point at the offending line."""

    def __init__(self, path: str, source: str) -> None:
        self.path = path
        self.source = source

    def error(self, table: str, key: str | None, message: str) -> ConfigError:
        line = find_line(self.source, table, key)
        if line is None and key is not None:
            line = find_line(self.source, table)
        name = key if not table else (table if key is None else f"{table}.{key}")
        return ConfigError(self.path, message, line=line, field=name)

    def string(self, data: Mapping[str, Any], table: str, key: str) -> str | None:
        value = data.get(key)
        if value is None:
            return None
        if not isinstance(value, str):
            raise self.error(table, key, f"expected a string, got {_kind(value)}")
        return value

    def integer(self, data: Mapping[str, Any], table: str, key: str) -> int | None:
        value = data.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(table, key, f"expected an integer, got {_kind(value)}")
        return value

    def words(self, data: Mapping[str, Any], table: str, key: str) -> tuple[str, ...]:
        value = data.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.error(table, key, "expected a list of strings")
        for option in value:
            try:
                parts = split_words(option)
            except UsageError as exc:
                raise self.error(table, key, str(exc)) from exc
            if len(parts) != 1 or parts[0] != option:
                raise self.error(table, key, f"{option!r} must be one word without spaces")
            if option == "--" or option == "placeholder" or option.startswith("$"):
                raise self.error(table, key, f"{option!r} is a bootloader token, not an option")
            reason = check_option(option)
            if reason is not None:
                raise self.error(table, key, reason)
        return tuple(value)

    def table(self, data: Mapping[str, Any], name: str) -> Mapping[str, Any]:
        value = data.get(name, {})
        if not isinstance(value, dict):
            raise self.error("", name, f"expected a table [{name}], got {_kind(value)}")
        unknown = sorted(set(value) - _TABLES[name])
        if unknown:
            allowed = ", ".join(sorted(_TABLES[name]))
            raise self.error(name, unknown[0], f"unknown field (allowed: {allowed})")
        return value

    def variables(self, data: Mapping[str, Any]) -> dict[str, VarValue]:
        """``[vars]``: name = integer or string (the default of a ``${name}`` in options)."""
        value = data.get("vars", {})
        if not isinstance(value, dict):
            raise self.error("", "vars", f"expected a table [vars], got {_kind(value)}")
        out: dict[str, VarValue] = {}
        for name, default in value.items():
            if not _VAR_NAME.match(name):
                raise self.error("vars", name, "a variable name is letters, digits and '_'")
            if isinstance(default, bool) or not isinstance(default, (int, str)):
                raise self.error(
                    "vars", name, f"expected an integer or a string, got {_kind(default)}"
                )
            out[name] = default
        return out

    def substitute(
        self, data: Mapping[str, Any], name: str, values: Mapping[str, VarValue]
    ) -> Mapping[str, Any]:
        """The ``[xen]``/``[dom0]`` table with ``${var}`` replaced in its option words."""
        table = self.table(data, name)
        out = dict(table)
        for key in ("options", "remove"):
            words = table.get(key)
            if not isinstance(words, list):
                continue
            replaced = []
            for word in words:
                if isinstance(word, str):
                    for ref in _VAR_REF.findall(word):
                        if ref not in values:
                            known = ", ".join(sorted(values)) or "none"
                            raise self.error(
                                name,
                                key,
                                f"unknown variable ${{{ref}}} (declared in [vars]: {known})",
                            )
                    word = _VAR_REF.sub(lambda m: str(values[m.group(1)]), word)
                replaced.append(word)
            out[key] = replaced
        return out

    def options(self, data: Mapping[str, Any], name: str, kind: Kind) -> Options | None:
        if name not in data:
            return None
        table = self.table(data, name)
        options = self.words(table, name, "options")
        remove = self.words(table, name, "remove")
        for option in options:
            if option.startswith("dom0_max_vcpus="):
                problem = check_dom0_max_vcpus(option.partition("=")[2])
                if problem is not None:
                    raise self.error(name, "options", f"{option!r}: {problem}")
        if kind == "xen":
            seen: dict[str, str] = {}
            for option in options:
                key = Cmdline.parse(option, "xen").tokens[0].key("xen")
                if key in seen:
                    raise self.error(
                        name, "options", f"{option!r} repeats {seen[key]!r}: Xen takes one value"
                    )
                seen[key] = option
        return Options(options, remove)

    def harvest(self, data: Mapping[str, Any]) -> tuple[str, ...] | None:
        if "harvest" not in data:
            return None
        table = self.table(data, "harvest")
        text = self.string(table, "harvest", "keys")
        if text is None:
            return None
        keys = tuple(k.strip() for k in text.split(",") if k.strip())
        for key in keys:
            if len(key) != 1:
                raise self.error("harvest", "keys", f"{key!r}: each debug key is one character")
            if (problem := key_problem(key)) is not None:
                raise self.error("harvest", "keys", problem)
            if key in DANGEROUS_KEYS:
                raise self.error(
                    "harvest", "keys", f"{key!r} changes the host's state (reboot/crash/NMI…)"
                )
        if len(set(keys)) != len(keys):
            raise self.error("harvest", "keys", "a debug key is listed twice")
        return keys

    def console(self, data: Mapping[str, Any]) -> Mapping[str, Any]:
        if "console" not in data:
            return {}
        table = self.table(data, "console")
        baud = self.integer(table, "console", "baud")
        if baud is not None and baud not in BAUD_RATES:
            rates = ", ".join(map(str, BAUD_RATES))
            raise self.error("console", "baud", f"{baud} is not a serial rate ({rates})")
        parity = self.string(table, "console", "parity")
        if parity is not None and parity not in PARITIES:
            raise self.error("console", "parity", f"expected one of n, e, o, got {parity!r}")
        data_bits = self.integer(table, "console", "data_bits")
        if data_bits is not None and data_bits not in (5, 6, 7, 8):
            raise self.error("console", "data_bits", f"expected 5 to 8, got {data_bits}")
        stop_bits = self.integer(table, "console", "stop_bits")
        if stop_bits is not None and stop_bits not in (1, 2):
            raise self.error("console", "stop_bits", f"expected 1 or 2, got {stop_bits}")
        return dict(table)


def _kind(value: object) -> str:
    return {
        bool: "a boolean",
        int: "an integer",
        float: "a float",
        str: "a string",
        list: "a list",
        dict: "a table",
    }.get(type(value), type(value).__name__)


def _toml_error(path: str, exc: tomllib.TOMLDecodeError) -> ConfigError:
    message = str(exc)
    found = re.search(r"\(at line (\d+), column (\d+)\)", message)
    if found:
        message = message[: found.start()].strip() + f" (column {found.group(2)})"
        return ConfigError(path, f"TOML syntax: {message}", line=int(found.group(1)))
    return ConfigError(path, f"TOML syntax: {message}")


def _read_raw(path: Path, given: Mapping[str, VarValue] | None = None) -> _Raw:
    shown = str(path)
    if not path.exists():
        raise ConfigError(shown, "no such profile file")
    source = read_text(path, "profile")
    try:
        data = tomllib.loads(source)
    except tomllib.TOMLDecodeError as exc:
        raise _toml_error(shown, exc) from exc
    except RecursionError as exc:
        raise ConfigError(shown, f"nested more than {MAX_DEPTH} levels deep") from exc
    check_depth(data, shown)
    reader = _Reader(shown, source)
    unknown = sorted(set(data) - _TOP_FIELDS)
    if unknown:
        allowed = ", ".join(sorted(_TOP_FIELDS))
        key = unknown[0]
        line = find_line(source, "", key) or find_line(source, key)
        raise ConfigError(shown, f"unknown field (allowed: {allowed})", line=line, field=key)
    name = reader.string(data, "", "name") or path.stem
    if not _NAME_RE.match(name):
        raise reader.error("", "name", f"{name!r}: use letters, digits, '.', '_' and '-'")
    if name != path.stem:
        raise reader.error("", "name", f"{name!r} must match the file name {path.stem!r}")
    defaults = reader.variables(data)
    values = dict(defaults)
    for var, value in (given or {}).items():
        if var in defaults:
            values[var] = _coerce(reader, var, value, defaults[var])
    data = dict(data)
    for table in ("xen", "dom0"):
        if table in data:
            data[table] = reader.substitute(data, table, values)
    return _Raw(
        vars=values,
        name=name,
        path=shown,
        source=source,
        description=reader.string(data, "", "description"),
        extends=reader.string(data, "", "extends"),
        xen=reader.options(data, "xen", "xen"),
        dom0=reader.options(data, "dom0", "linux"),
        console=reader.console(data),
        harvest_keys=reader.harvest(data),
    )


def _coerce(reader: _Reader, name: str, value: VarValue, default: VarValue) -> VarValue:
    """A value given for ``name`` in the type of its default (``"4"`` → 4 for an integer)."""
    if isinstance(default, int):
        if isinstance(value, str) and re.fullmatch(r"\d+", value):
            return int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise reader.error("vars", name, f"{name} must be an integer, got {value!r}")
        return value
    return str(value)


# --------------------------------------------------------------------------- resolution


def default_search_dirs() -> list[Path]:
    """``$SOLCAP_PROFILES`` (os.pathsep-separated) first, then the shipped profiles."""
    dirs = [Path(p) for p in os.environ.get(ENV_VAR, "").split(os.pathsep) if p]
    return [*dirs, BUILTIN_DIR]


def _is_path(name_or_path: str | os.PathLike[str]) -> bool:
    text = os.fspath(name_or_path)
    return os.sep in text or "/" in text or text.endswith(".toml")


def _find(name: str, dirs: Sequence[Path]) -> Path | None:
    for directory in dirs:
        candidate = directory / f"{name}.toml"
        try:
            if candidate.is_file():
                return candidate
        except OSError:  # a name no file can have (too long, …) is simply not found
            continue
    return None


def _inherit(parent: Options, child: Options | None, kind: Kind) -> Options:
    if child is None:
        return parent
    line = merge(" ".join(parent.options), child.options, child.remove, kind=kind)
    options = tuple(t.text for t in Cmdline.parse(line, kind).tokens)
    added = {Cmdline.parse(o, kind).tokens[0].key(kind) for o in child.options}
    remove = [r for r in parent.remove if Cmdline.parse(r, kind).tokens[0].key(kind) not in added]
    remove += [r for r in child.remove if r not in remove]
    return Options(options, tuple(remove))


def _check_serial(raw: _Raw, xen: Options, console: ConsoleLine | None) -> None:
    """A ``comN=`` option must agree with the line settings, or nothing would be readable."""
    if console is None:
        return
    for option in xen.options:
        found = _COM_RE.match(option)
        if not found:
            continue
        port, speed, dps = found.group(1), found.group(2).split("/")[0], found.group(3)
        in_file = any(_COM_RE.match(o) for o in (raw.xen.options if raw.xen else ()))
        where = ("xen", "options") if in_file else ("console", "baud")
        if speed and speed != "auto" and speed != str(console.baud):
            raise _Reader(raw.path, raw.source).error(
                *where,
                f"{option!r} sets {port} to {speed} baud but [console] baud is {console.baud}",
            )
        if dps and dps.lower() != console.dps:
            raise _Reader(raw.path, raw.source).error(
                *where, f"{option!r} sets {port} to {dps} but [console] says {console.dps}"
            )


def _resolve(
    path: Path,
    dirs: Sequence[Path],
    stack: tuple[Path, ...],
    given: Mapping[str, VarValue] | None = None,
) -> Profile:
    raw = _read_raw(path, given)
    here = path.resolve()
    parent: Profile | None = None
    if raw.extends is not None:
        reader = _Reader(raw.path, raw.source)
        parent_path = _find(raw.extends, [path.parent, *dirs])
        if parent_path is None:
            raise reader.error(
                "", "extends", f"no profile named {raw.extends!r} in {path.parent} or search path"
            )
        chain = (*stack, here)
        if parent_path.resolve() in chain:
            names = " -> ".join(p.stem for p in (*chain, parent_path))
            raise reader.error("", "extends", f"inheritance cycle: {names}")
        # Values from below (the caller, then this file's own) win over the parent's defaults.
        parent = _resolve(parent_path, dirs, chain, {**raw.vars, **(given or {})})
    base_xen = parent.xen if parent else Options()
    base_dom0 = parent.dom0 if parent else Options()
    xen = _inherit(base_xen, raw.xen, "xen")
    dom0 = _inherit(base_dom0, raw.dom0, "linux")
    console = _console(raw, parent.console if parent else None)
    _check_serial(raw, xen, console)
    harvest = raw.harvest_keys
    if harvest is None:
        harvest = parent.harvest_keys if parent else ()
    description = raw.description
    if description is None:
        description = parent.description if parent else ""
    return Profile(
        name=raw.name,
        description=description,
        path=raw.path,
        xen=xen,
        dom0=dom0,
        console=console,
        harvest_keys=harvest,
        extends=((parent.name, *parent.extends) if parent else ()),
        vars={**(parent.vars if parent else {}), **raw.vars},
    )


def _console(raw: _Raw, inherited: ConsoleLine | None) -> ConsoleLine | None:
    if not raw.console:
        return inherited
    base: dict[str, Any] = dict(_DEFAULTS)
    if inherited is not None:
        base.update(
            baud=inherited.baud,
            parity=inherited.parity,
            data_bits=inherited.data_bits,
            stop_bits=inherited.stop_bits,
        )
    base.update(raw.console)
    if "baud" not in base:
        raise _Reader(raw.path, raw.source).error("console", None, "baud is required")
    return ConsoleLine(**base)


# --------------------------------------------------------------------------- public API


def load_profile(
    name_or_path: str | os.PathLike[str],
    search_dirs: Iterable[str | os.PathLike[str]] | None = None,
    *,
    variables: Mapping[str, VarValue] | None = None,
    strict: bool = True,
) -> Profile:
    """Load a profile by name (searched in ``search_dirs``) or by file path.

    ``variables`` override the ``[vars]`` defaults of the profile and its ancestors (a value
    for an integer variable may be given as a string of digits). With ``strict``, a name no
    file of the chain declares is a UsageError; a runbook passes all its variables with
    ``strict=False``, so only those the profile declares are taken.
    """
    dirs = [Path(d) for d in search_dirs] if search_dirs is not None else default_search_dirs()
    if _is_path(name_or_path):
        found: Path | None = Path(name_or_path)
    else:
        name = os.fspath(name_or_path)
        found = _find(name, dirs)
        if found is None:
            searched = ", ".join(str(d) for d in dirs) or "(no directories)"
            raise UsageError(f"no profile named {name!r} (searched {searched})")
    assert found is not None
    profile = _resolve(found, dirs, (), dict(variables) if variables else None)
    if strict and variables:
        unknown = sorted(set(variables) - set(profile.vars))
        if unknown:
            declared = ", ".join(sorted(profile.vars)) or "none"
            raise UsageError(
                f"profile {profile.name} has no variable {unknown[0]!r} (declared: {declared})"
            )
    return profile


def list_profiles(dirs: Iterable[str | os.PathLike[str]] | None = None) -> list[Profile]:
    """Every profile in ``dirs`` (first directory wins on a name clash), sorted by name.

    Raises the first ConfigError met: a listing that hides a broken profile would mislead.
    """
    search = [Path(d) for d in dirs] if dirs is not None else default_search_dirs()
    seen: dict[str, Profile] = {}
    for directory in search:
        if not directory.is_dir():
            continue
        for path in sorted(directory.glob("*.toml")):
            if path.stem not in seen:
                seen[path.stem] = _resolve(path, search, ())
    return [seen[name] for name in sorted(seen)]


def validate_file(
    path: str | os.PathLike[str], search_dirs: Iterable[str | os.PathLike[str]] | None = None
) -> Profile:
    """Validate one file (with its ancestors); returns the resolved profile or raises."""
    return load_profile(Path(path).absolute(), search_dirs)
