"""Pure text edits of GRUB configuration: ``/etc/default/grub``, ``grub.d/*.cfg``, ``grub.cfg``.

No I/O here: the SSH layer reads files, calls these functions, shows :func:`unified_diff` and
writes back. Everything not owned by the profile is kept byte-for-byte (comments, quoting,
unrelated lines, the layout of untouched command lines).

``/etc/default/grub`` and ``grub.d/*.cfg`` are shell, sourced in that order by
``grub-mkconfig``; 20_linux_xen builds the Xen line from ``"${GRUB_CMDLINE_XEN}
${GRUB_CMDLINE_XEN_DEFAULT}"`` (recovery entries: ``GRUB_CMDLINE_XEN`` only) and replaces
Dom0's ``GRUB_CMDLINE_LINUX_DEFAULT`` / ``GRUB_CMDLINE_LINUX`` with the ``…_XEN_REPLACE…``
variables when those are non-empty. This module understands the assignments people write
(double/single/unquoted values, ``$VAR`` references) and refuses, naming file:line, the ones
it cannot edit safely (command substitution, backslashes, assignments inside ``if`` blocks).
"""

from __future__ import annotations

import difflib
import itertools
import re
import shlex
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from solcap.boot.bootline import Kind, merge
from solcap.errors import ConfigError, UsageError
from solcap.grub.chain import Chain, ChainError, NotXenEntry, find_chain, split_command

XEN_DEFAULT = "GRUB_CMDLINE_XEN_DEFAULT"
XEN_ALL = "GRUB_CMDLINE_XEN"
DOM0_DEFAULT = "GRUB_CMDLINE_LINUX_XEN_REPLACE_DEFAULT"
DOM0_ALL = "GRUB_CMDLINE_LINUX_XEN_REPLACE"
CMDLINE_VARIABLES = (XEN_DEFAULT, XEN_ALL, DOM0_DEFAULT, DOM0_ALL)
#: What ``edit_default_grub`` edits unless told otherwise: the normal (non-recovery) entries.
DEFAULT_VARIABLES = (XEN_DEFAULT, DOM0_DEFAULT)
_COMPANION = {
    XEN_DEFAULT: XEN_ALL,
    XEN_ALL: XEN_DEFAULT,
    DOM0_DEFAULT: DOM0_ALL,
    DOM0_ALL: DOM0_DEFAULT,
}
#: Initial value of a variable solcap has to create: keep what earlier files set / what the
#: plain Linux entries use (the template in Debian's xen.cfg suggests the same).
_CREATE_FROM = {
    XEN_DEFAULT: "$GRUB_CMDLINE_XEN_DEFAULT",
    XEN_ALL: "$GRUB_CMDLINE_XEN",
    DOM0_DEFAULT: "$GRUB_CMDLINE_LINUX_DEFAULT",
    DOM0_ALL: "$GRUB_CMDLINE_LINUX",
}
_DESCRIBE = {
    XEN_DEFAULT: "Xen hypervisor options (normal entries)",
    XEN_ALL: "Xen hypervisor options (all entries, recovery too)",
    DOM0_DEFAULT: "Dom0 kernel options under Xen (replace GRUB_CMDLINE_LINUX_DEFAULT)",
    DOM0_ALL: "Dom0 kernel options under Xen (replace GRUB_CMDLINE_LINUX)",
}
_OPENERS = re.compile(
    r"^(if|case|for|while|until|select)\b|^[A-Za-z_][A-Za-z0-9_]*\s*\(\)\s*\{?\s*$"
)
_CLOSERS = re.compile(r"^(fi|esac|done)\b|^\}")
_ASSIGN = re.compile(r"^(\s*)(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)=")
_REF = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))")


def variable_kind(name: str) -> Kind:
    """Xen variables hold hypervisor options; the LINUX ones hold Dom0 kernel options."""
    if name not in CMDLINE_VARIABLES:
        raise UsageError(f"not a GRUB command-line variable solcap edits: {name}")
    return "xen" if name.startswith("GRUB_CMDLINE_XEN") else "linux"


# --------------------------------------------------------------------------- shell scanning


@dataclass(frozen=True)
class Assignment:
    """One ``NAME=value`` in a sourced shell file."""

    name: str
    line: int  # 1-based line of the assignment
    start: int  # offset of the value in the text
    end: int  # offset just past the value
    raw: str  # the value as written, quotes included
    nested: bool  # inside if/case/loop/function: may or may not run

    @property
    def quote(self) -> str | None:
        """``"``, ``'`` or ``""`` (unquoted) for a simple value; None when too complex."""
        raw = self.raw
        if "`" in raw or "$(" in raw or "\\" in raw:
            return None
        if len(raw) >= 2 and raw[0] == raw[-1] == '"' and '"' not in raw[1:-1]:
            return '"'
        if len(raw) >= 2 and raw[0] == raw[-1] == "'" and "'" not in raw[1:-1]:
            return "'"
        if not any(c in raw for c in "\"'"):
            return ""
        return None

    @property
    def inner(self) -> str:
        """The value without its quotes (only meaningful when ``quote`` is not None)."""
        return self.raw[1:-1] if self.quote in ('"', "'") else self.raw

    def references(self, name: str) -> bool:
        """True if the value expands ``$name`` (so earlier settings survive this one)."""
        if self.quote == "'":
            return False
        return any((m.group(1) or m.group(2)) == name for m in _REF.finditer(self.raw))


def _word_end(text: str, pos: int) -> int:
    """End offset of the shell word starting at ``pos`` (quotes, $( ), backslashes)."""
    depth = 0
    quote: str | None = None
    i = pos
    while i < len(text):
        c = text[i]
        if quote == "'":
            if c == "'":
                quote = None
        elif c == "\\":
            i += 1
        elif quote == '"':
            if c == '"':
                quote = None
            elif c == "`":
                quote = '"`'
        elif quote == '"`' or quote == "`":
            if c == "`":
                quote = '"' if quote == '"`' else None
        elif c in "\"'`":
            quote = c
        elif c == "$" and text.startswith("$(", i):
            depth += 1
            i += 1
        elif c == ")" and depth:
            depth -= 1
        elif depth == 0 and (c.isspace() or c in ";&|"):
            return i
        i += 1
    return i


def scan_assignments(text: str) -> list[Assignment]:
    """Every ``NAME=value`` statement in a shell file, in order."""
    found: list[Assignment] = []
    depth = 0
    offset = 0
    lines = text.splitlines(keepends=True)
    number = 0
    while number < len(lines):
        line = lines[number]
        stripped = line.strip()
        start_number = number
        match = _ASSIGN.match(line)
        consumed_to = offset + len(line)
        if match and not stripped.startswith("#"):
            value_start = offset + match.end()
            value_end = _word_end(text, value_start)
            found.append(
                Assignment(
                    name=match.group(2),
                    line=start_number + 1,
                    start=value_start,
                    end=value_end,
                    raw=text[value_start:value_end],
                    nested=depth > 0,
                )
            )
            consumed_to = max(consumed_to, value_end)
        elif _CLOSERS.match(stripped):
            depth = max(0, depth - 1)
        elif _OPENERS.match(stripped) and not re.search(r"\b(fi|done|esac)\s*;?\s*$", stripped):
            depth += 1
        # Skip physical lines swallowed by a multi-line value or a continuation.
        offset += len(line)
        number += 1
        last = line
        while number < len(lines) and (offset < consumed_to or _continues(last.rstrip("\r\n"))):
            last = lines[number]
            offset += len(last)
            number += 1
    return found


# --------------------------------------------------------------------------- /etc/default/grub


def _quoted(value: str, quote: str) -> str:
    """The value written back: an unquoted one becomes double-quoted.

    ``update-grub`` sources the file as shell; unquoted, a word such as
    ``xen-pciback.hide=(0000:03:00.0)`` is a syntax error and a metacharacter would be a
    command. Double quotes keep ``$VAR`` references expanding; single quotes stay single
    (the option grammar has no ``'``).
    """
    if quote == "":
        quote = '"'
    return f"{quote}{value}{quote}"


def edit_default_grub(
    text: str,
    xen_add: Sequence[str] = (),
    xen_remove: Sequence[str] = (),
    dom0_add: Sequence[str] = (),
    dom0_remove: Sequence[str] = (),
    variables: Iterable[str] = DEFAULT_VARIABLES,
    path: str = "/etc/default/grub",
) -> str:
    """Edit the Xen/Dom0 command-line variables of one sourced file; idempotent.

    For each selected variable the *last* unconditional assignment in the file gets the
    profile's options (it decides the final value); removals apply to every assignment of
    the variable and of its companion (``GRUB_CMDLINE_XEN`` for ``…_XEN_DEFAULT`` and so on),
    because both end up on the same booted line. ``$VAR`` references are kept in place, so
    ``X="$X dom0_mem=1G"`` keeps inheriting what earlier files set. A variable the file does
    not set is appended at the end, after a comment, starting from ``$itself`` (Xen) or
    ``$GRUB_CMDLINE_LINUX_DEFAULT`` / ``$GRUB_CMDLINE_LINUX`` (Dom0). Unsafe values raise
    ConfigError naming ``path:line``.
    """
    selected = list(dict.fromkeys(variables))
    for name in selected:
        variable_kind(name)
    adds = {"xen": list(xen_add), "linux": list(dom0_add)}
    removes = {"xen": list(xen_remove), "linux": list(dom0_remove)}
    assignments = scan_assignments(text)
    edits: dict[int, tuple[Assignment, str]] = {}  # start offset -> (assignment, new raw)
    appended: list[str] = []

    def plan(assignment: Assignment, add: Sequence[str], remove: Sequence[str]) -> None:
        kind = variable_kind(assignment.name)
        if not add and not remove:
            return
        current = edits.get(assignment.start)
        quote = assignment.quote
        if quote is None:
            raise ConfigError(
                path,
                "value too complex to edit safely (command substitution, backslash or mixed "
                "quotes); edit it by hand",
                line=assignment.line,
                field=assignment.name,
            )
        inner = current[1] if current else assignment.inner
        try:
            new_inner = merge(inner, add, remove, kind=kind, before_trailing_vars=False)
        except UsageError as exc:
            raise ConfigError(path, str(exc), line=assignment.line, field=assignment.name) from exc
        edits[assignment.start] = (assignment, new_inner)

    for name in selected:
        kind = variable_kind(name)
        own = [a for a in assignments if a.name == name]
        top = [a for a in own if not a.nested]
        if own and not top:
            raise ConfigError(
                path,
                "only assigned inside an if/case/loop block; refusing to guess which runs",
                line=own[-1].line,
                field=name,
            )
        related = own + [a for a in assignments if a.name == _COMPANION[name]]
        for assignment in related:
            if assignment is not (top[-1] if top else None) and not assignment.nested:
                plan(assignment, (), removes[kind])
        if top:
            plan(top[-1], adds[kind], removes[kind])
        elif adds[kind]:
            # The reference goes first: for Xen the last occurrence of an option wins, and
            # for Dom0 the profile's console= must stay the last one.
            value = f"{_CREATE_FROM[name]} {merge('', adds[kind], removes[kind], kind=kind)}"
            appended.append(
                f"\n# Added by solcap: {_DESCRIBE[name]}.\n{name}={_quoted(value, chr(34))}\n"
            )

    out: list[str] = []
    last = 0
    for start in sorted(edits):
        assignment, new_inner = edits[start]
        if new_inner == assignment.inner:
            continue
        quote = assignment.quote or ""
        out.append(text[last:start])
        out.append(_quoted(new_inner, quote))
        last = assignment.end
    out.append(text[last:])
    result = "".join(out)
    if appended:
        if result and not result.endswith("\n"):
            result += "\n"
        result += "".join(appended)
    return result


@dataclass(frozen=True)
class Setting:
    """A variable's value after sourcing every file, and where it was set."""

    name: str
    value: str  # expanded; raw text when ``dynamic``
    path: str  # the file that set it last
    line: int
    dynamic: bool = False  # command substitution: the real value is only known at run time
    conditional: bool = False  # last set inside an if/case block
    history: tuple[tuple[str, int], ...] = field(default=())  # every (path, line), in order


def _expand(assignment: Assignment, env: dict[str, str]) -> tuple[str, bool]:
    quote = assignment.quote
    if quote == "'":
        return assignment.inner, False
    if quote is None:
        return assignment.raw, True

    def sub(match: re.Match[str]) -> str:
        return env.get(match.group(1) or match.group(2), "")

    return _REF.sub(sub, assignment.inner), False


def effective_settings(files: Sequence[tuple[str, str]]) -> dict[str, Setting]:
    """Simulate ``grub-mkconfig`` sourcing ``files`` (in the order given) for plain assignments.

    Pass ``/etc/default/grub`` first, then ``/etc/default/grub.d/*.cfg`` sorted by name
    (:func:`sourcing_order` does that). Assignments inside ``if`` blocks are applied as if
    they ran and flagged ``conditional``.
    """
    env: dict[str, str] = {}
    settings: dict[str, Setting] = {}
    for path, text in files:
        for assignment in scan_assignments(text):
            value, dynamic = _expand(assignment, env)
            env[assignment.name] = value
            previous = settings.get(assignment.name)
            history = (previous.history if previous else ()) + ((path, assignment.line),)
            settings[assignment.name] = Setting(
                name=assignment.name,
                value=value,
                path=path,
                line=assignment.line,
                dynamic=dynamic,
                conditional=assignment.nested,
                history=history,
            )
    return settings


def sourcing_order(paths: Iterable[str], main: str = "/etc/default/grub") -> list[str]:
    """``main`` first, then the ``*.cfg`` files sorted by name, as grub-mkconfig sources them."""
    others = sorted(
        (p for p in paths if p != main and p.endswith(".cfg")), key=lambda p: p.rsplit("/", 1)[-1]
    )
    return ([main] if main in paths else []) + others


def override_warnings(
    files: Sequence[tuple[str, str]], names: Iterable[str] = CMDLINE_VARIABLES
) -> list[str]:
    """One line per variable whose value from one file is thrown away by a later file."""
    warnings: list[str] = []
    for name in names:
        sets: list[tuple[str, Assignment]] = [
            (path, a) for path, text in files for a in scan_assignments(text) if a.name == name
        ]
        for (path, a), (later_path, b) in itertools.pairwise(sets):
            if later_path != path and not b.references(name):
                warnings.append(
                    f"{later_path}:{b.line} overrides {path}:{a.line}: {name} set there is ignored"
                )
    return warnings


def target_file(files: Sequence[tuple[str, str]], name: str) -> str:
    """The file to edit for ``name``: the one whose assignment decides the final value."""
    settings = effective_settings(files)
    if name in settings:
        return settings[name].path
    if not files:
        raise UsageError("no GRUB default files given")
    return files[-1][0]


# --------------------------------------------------------------------------- grub.cfg


@dataclass(frozen=True)
class MenuEntry:
    """A ``menuentry`` in grub.cfg with its place in the submenu tree."""

    title: str
    entry_id: str | None
    submenus: tuple[str, ...]
    line: int  # 1-based line of the ``menuentry`` statement
    body: tuple[int, int]  # logical-line indexes of the body (exclusive of braces)

    @property
    def path(self) -> str:
        """The ``>``-joined path GRUB_DEFAULT and ``grub-reboot`` use."""
        return ">".join((*self.submenus, self.title))


@dataclass(frozen=True)
class _Logical:
    text: str  # continuation backslash-newlines removed, no trailing newline
    first: int  # index of first physical line
    last: int  # index of last physical line (inclusive)


def _logical_lines(physical: Sequence[str]) -> list[_Logical]:
    out: list[_Logical] = []
    i = 0
    while i < len(physical):
        first = i
        parts = [physical[i].rstrip("\r\n")]
        while _continues(parts[-1]) and i + 1 < len(physical):
            parts[-1] = parts[-1][:-1]
            i += 1
            parts.append(physical[i].rstrip("\r\n"))
        out.append(_Logical("".join(parts), first, i))
        i += 1
    return out


def _continues(line: str) -> bool:
    backslashes = len(line) - len(line.rstrip("\\"))
    return backslashes % 2 == 1


def _words(text: str) -> list[str]:
    try:
        return shlex.split(text, comments=True, posix=True)
    except ValueError:
        return text.split()


def find_entries(text: str) -> list[MenuEntry]:
    """Every menuentry, in file order, with its enclosing submenu titles."""
    logical = _logical_lines(text.splitlines(keepends=True))
    stack: list[tuple[str, str, str | None, int, int]] = []  # kind, title, id, line, start
    entries: list[MenuEntry] = []
    for index, item in enumerate(logical):
        stripped = item.text.strip()
        if stripped == "}" or stripped.startswith("}"):
            if stack:
                kind, title, entry_id, line, start = stack.pop()
                if kind == "menuentry":
                    submenus = tuple(s[1] for s in stack if s[0] == "submenu")
                    entries.append(MenuEntry(title, entry_id, submenus, line, (start, index)))
            continue
        if not stripped.endswith("{"):
            continue
        words = _words(stripped[:-1])
        kind = words[0] if words else ""
        title = words[1] if len(words) > 1 and kind in ("menuentry", "submenu") else ""
        entry_id = None
        for marker in ("$menuentry_id_option", "--id"):
            if marker in words[:-1]:
                entry_id = words[words.index(marker) + 1]
        stack.append((kind, title, entry_id, item.first + 1, index + 1))
    entries.sort(key=lambda e: e.line)
    return entries


def select_entry(text: str, entry_pattern: str, path: str = "grub.cfg") -> MenuEntry:
    """The one entry whose title matches ``entry_pattern`` (regex search), or a refusal.

    The pattern also matches an entry id in full (``xen-gnulinux-simple-…``) and, when it
    contains ``>``, the submenu path (``Advanced options.*>.*6.1.0-18``).
    """
    try:
        regex = re.compile(entry_pattern)
    except re.error as exc:
        raise UsageError(f"bad entry pattern {entry_pattern!r}: {exc}") from exc
    entries = find_entries(text)
    matches = [
        e
        for e in entries
        if regex.search(e.title)
        or (e.entry_id is not None and regex.fullmatch(e.entry_id))
        or (">" in entry_pattern and regex.search(e.path))
    ]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        titles = "; ".join(repr(e.path) for e in entries) or "none"
        raise ConfigError(
            path, f"no menuentry matches {entry_pattern!r} (entries: {titles})", field="menuentry"
        )
    shown = "; ".join(f"line {e.line}: {e.path!r}" for e in matches)
    raise ConfigError(
        path,
        f"{len(matches)} menuentries match {entry_pattern!r}, refusing to guess: {shown}",
        field="menuentry",
    )


_CHAIN_LINE = re.compile(r"^(\s*)(\S+)((?:\s+--\S+)*)(\s+)(\S+)(.*)$", re.DOTALL)


def _metachar(char: str, previous: str) -> bool:
    return char in ";|&<>{}" or (char == "#" and previous.isspace())


def _script_syntax(rest: str) -> str | None:
    """The first GRUB-script metacharacter outside double quotes (``;`` ``#`` ``&`` …).

    GRUB's lexer (grub-core/script/yylex.l) ends a word at ``{ } | & ; < >`` and blanks and
    starts a comment at ``#`` opening a word; ``\\`` escapes. A line with any of these is
    more than ``command path args``, so appending to it is not a safe edit.
    """
    in_quote = False
    previous = " "
    i = 0
    while i < len(rest):
        char = rest[i]
        if char == "$" and rest.startswith("{", i + 1):
            close = rest.find("}", i)
            if close < 0:
                return "${"
            i = close + 1  # ${xen_rm_opts}: a variable reference, not a block
            previous = "}"
            continue
        if char == '"':
            in_quote = not in_quote
        elif char == "\\" or (not in_quote and _metachar(char, previous)):
            return char
        previous = char
        i += 1
    return None


def _edit_line(
    item: _Logical,
    add: Sequence[str],
    remove: Sequence[str],
    kind: Kind,
    physical: list[str],
    path: str,
) -> None:
    match = _CHAIN_LINE.match(item.text)
    assert match is not None
    indent, command, options, gap, target, rest = match.groups()
    if "'" in rest:
        raise ConfigError(
            path,
            "single-quoted arguments are not supported; edit by hand",
            line=item.first + 1,
            field=command,
        )
    syntax = _script_syntax(rest)
    if syntax is not None:
        raise ConfigError(
            path,
            f"the line carries GRUB-script syntax ({syntax!r}) beyond plain arguments; "
            "options added here could land in a comment or another command: edit by hand",
            line=item.first + 1,
            field=command,
        )
    args = rest.strip()
    try:
        new_args = merge(args, add, remove, kind=kind)
    except UsageError as exc:
        raise ConfigError(path, str(exc), line=item.first + 1, field=command) from exc
    if new_args == args:
        return
    ending = physical[item.last][len(physical[item.last].rstrip("\r\n")) :] or ""
    line = f"{indent}{command}{options}{gap}{target}" + (f" {new_args}" if new_args else "")
    physical[item.first] = line + ending
    for index in range(item.first + 1, item.last + 1):
        physical[index] = ""


def _body_chain(text: str, entry: MenuEntry, path: str) -> tuple[Chain, list[_Logical]]:
    """The entry's boot chain (see :mod:`solcap.grub.chain`) and its logical body lines."""
    body = _logical_lines(text.splitlines(keepends=True))[entry.body[0] : entry.body[1]]
    lines = [
        line
        for index, item in enumerate(body)
        if (line := split_command(index, _words(item.text))) is not None
    ]
    try:
        return find_chain(lines, entry.title), body
    except ChainError as exc:
        raise ConfigError(path, str(exc), line=entry.line, field="menuentry") from exc


def xen_entry_chains(text: str, path: str = "grub.cfg") -> list[tuple[MenuEntry, Chain]]:
    """Every entry that boots Xen, in file order, with its chain.

    Why: a persistent edit without ``--entry`` has to find the Xen entries among whatever else
    grub.cfg offers — memtest86+ (``linux``/``linux16``, or ``multiboot`` on Debian up to 11),
    Windows via os-prober's ``chainloader +1``, ``fwsetup``. Those are skipped
    (:class:`~solcap.grub.chain.NotXenEntry`); an entry that may boot Xen but cannot be edited
    safely is still a refusal naming it. Entries are taken as found, not re-selected by title,
    so two entries with the same title do not make the lookup ambiguous.
    """
    found: list[tuple[MenuEntry, Chain]] = []
    for entry in find_entries(text):
        try:
            chain, _ = _body_chain(text, entry, path)
        except ConfigError as exc:
            if isinstance(exc.__cause__, NotXenEntry):
                continue
            raise
        found.append((entry, chain))
    return found


def entry_chain(text: str, entry_pattern: str, path: str = "grub.cfg") -> Chain:
    """The boot chain of the one entry matching ``entry_pattern`` (or a refusal)."""
    return _body_chain(text, select_entry(text, entry_pattern, path), path)[0]


def edit_grub_cfg(
    text: str,
    entry_pattern: str,
    xen_add: Sequence[str] = (),
    xen_remove: Sequence[str] = (),
    dom0_add: Sequence[str] = (),
    dom0_remove: Sequence[str] = (),
    path: str = "grub.cfg",
) -> str:
    """Edit the Xen and Dom0 kernel lines of one entry, wherever its chain puts them.

    The entry is chosen with :func:`select_entry`; zero or several matches is a refusal. Which
    line is Xen's and which is Dom0's comes from :func:`solcap.grub.chain.find_chain`
    (multiboot2/module2, multiboot/module, tboot first, arm64 xen_hypervisor/xen_module,
    TrenchBoot slaunch); a chain it cannot edit safely is refused with the reason.
    ``placeholder`` and ``${xen_rm_opts}`` stay where they are; a line split with ``\\``
    continuations is rewritten as one line when (and only when) it changes.
    """
    entry = select_entry(text, entry_pattern, path)
    chain, body = _body_chain(text, entry, path)
    physical = text.splitlines(keepends=True)
    if chain.kernel is None and (dom0_add or dom0_remove):
        raise ConfigError(
            path,
            f"entry {entry.title!r} has no Dom0 kernel line after "
            f"{chain.hypervisor.command} {chain.hypervisor.image}",
            line=body[chain.hypervisor.index].first + 1,
            field=chain.hypervisor.command,
        )
    _edit_line(body[chain.hypervisor.index], xen_add, xen_remove, "xen", physical, path)
    if chain.kernel is not None:
        _edit_line(body[chain.kernel.index], dom0_add, dom0_remove, "linux", physical, path)
    return "".join(physical)


def entry_cmdlines(text: str, entry_pattern: str, path: str = "grub.cfg") -> tuple[str, str | None]:
    """The Xen and Dom0 arguments of one entry, as written (for verification after edits)."""
    return menu_entry_cmdlines(text, select_entry(text, entry_pattern, path), path)


def menu_entry_cmdlines(
    text: str, entry: MenuEntry, path: str = "grub.cfg"
) -> tuple[str, str | None]:
    """The Xen and Dom0 arguments of an entry already found (see :func:`xen_entry_chains`)."""
    chain, body = _body_chain(text, entry, path)

    def args(index: int) -> str:
        match = _CHAIN_LINE.match(body[index].text)
        return match.group(6).strip() if match else ""

    xen = args(chain.hypervisor.index)
    dom0 = args(chain.kernel.index) if chain.kernel is not None else None
    return xen, dom0


def unified_diff(old: str, new: str, path: str) -> str:
    """A ``diff -u`` of an edit, empty when nothing changed."""
    return "".join(
        difflib.unified_diff(
            old.splitlines(keepends=True),
            new.splitlines(keepends=True),
            fromfile=f"{path} (current)",
            tofile=f"{path} (solcap)",
        )
    )
