"""Triggers: what ``solcap serve`` does when a console prints something (``on:`` in an
inventory).

A host, a group or ``defaults`` may say::

    on:
      - pattern: "Panic on CPU"          # literal text (regex: true for a regular expression)
        name: panic                      # names the event and the segment (default on1, on2 …)
        runbook: harvest-debug-keys      # optional: run through the held console
        notify: [/usr/local/bin/page, --team, xen]   # optional: argv, the event JSON on stdin
        cooldown: 60                     # seconds before this trigger fires again (default 60)

This module is the schema: it checks an ``on:`` value completely (one
``file:line:column: field: message`` error) and returns immutable :class:`TriggerSpec`
objects, before anything is opened. ``notify`` is an argv list (a string is split as a shell
would split it, but no shell ever runs it), and its program must exist. The runbook is
checked by the server, which knows the host it will run for. Running them is
:mod:`solcap.serve.triggers`.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
from dataclasses import dataclass
from typing import Any

from solcap.config.docload import Doc, Key, LocatedConfigError, kind_of

FIELDS = frozenset({"pattern", "regex", "name", "runbook", "notify", "cooldown"})
DEFAULT_COOLDOWN = 60.0
MAX_COOLDOWN = 7 * 86400.0
MAX_TRIGGERS = 64
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass(frozen=True)
class Where:
    """A position in an inventory file, to raise an error that points at it later."""

    path: str
    line: int | None
    column: int | None
    field: str

    def error(self, message: str) -> LocatedConfigError:
        return LocatedConfigError(
            self.path, message, line=self.line, column=self.column, field=self.field
        )


@dataclass(frozen=True)
class TriggerSpec:
    """One validated ``on:`` entry."""

    name: str
    #: The regular expression (bytes) matched against the console stream.
    pattern: bytes
    #: What the inventory said, for events and status.
    text: str
    runbook: str | None
    notify: tuple[str, ...]
    cooldown: float
    #: Where the entry (and its runbook field) is, for errors found later.
    where: Where
    runbook_where: Where | None

    def compiled(self) -> re.Pattern[bytes]:
        return re.compile(self.pattern)


def _where(doc: Doc, key: Key, label: str, *, of_key: bool = False) -> Where:
    pos = doc.pos(key, of_key=of_key)
    return Where(doc.path, pos.line if pos else None, pos.column if pos else None, label)


def parse_triggers(value: Any, doc: Doc, key: Key, label: str) -> tuple[TriggerSpec, ...]:
    """An ``on:`` value (a list of mappings) → TriggerSpecs; ``label`` is its field name
    (``node1.on``, ``groups.xen.on``)."""
    if not isinstance(value, list):
        raise _where(doc, key, label).error(
            f"expected a list of triggers such as [{{pattern: 'Panic on CPU'}}], got "
            f"{kind_of(value)}"
        )
    if len(value) > MAX_TRIGGERS:
        raise _where(doc, key, label).error(f"more than {MAX_TRIGGERS} triggers")
    out: list[TriggerSpec] = []
    names: set[str] = set()
    for index, item in enumerate(value):
        spec = _one(item, doc, (*key, index), f"{label}[{index}]", index)
        if spec.name in names:
            raise _where(doc, (*key, index, "name"), f"{label}[{index}].name").error(
                f"two triggers are named {spec.name!r}"
            )
        names.add(spec.name)
        out.append(spec)
    return tuple(out)


def _one(item: Any, doc: Doc, key: Key, label: str, index: int) -> TriggerSpec:
    here = _where(doc, key, label)
    if not isinstance(item, dict):
        raise here.error(f"expected a mapping with pattern:, got {kind_of(item)}")
    for name in item:
        if name not in FIELDS:
            raise _where(doc, (*key, name), f"{label}.{name}", of_key=True).error(
                f"unknown field (allowed: {', '.join(sorted(FIELDS))})"
            )

    def at(name: str) -> Where:
        return _where(doc, (*key, name), f"{label}.{name}")

    if "pattern" not in item:
        raise here.error("a trigger needs a pattern")
    text = item["pattern"]
    if not isinstance(text, str) or not text:
        raise at("pattern").error(f"expected a non-empty string, got {kind_of(text)}")
    regex = item.get("regex", False)
    if not isinstance(regex, bool):
        raise at("regex").error(f"expected true or false, got {kind_of(regex)}")
    source = text.encode("utf-8") if regex else re.escape(text.encode("utf-8"))
    if regex:
        try:
            compiled = re.compile(source)
        except re.error as exc:
            raise at("pattern").error(f"not a regular expression: {exc}") from None
        if compiled.match(b""):
            raise at("pattern").error("matches the empty string (it would fire on every byte)")
    name = item.get("name", f"on{index + 1}")
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise at("name").error(f"{name!r}: a trigger name is letters, digits, '.', '_', '-'")
    runbook = item.get("runbook")
    if runbook is not None and (not isinstance(runbook, str) or not runbook.strip()):
        raise at("runbook").error(f"expected a runbook name or path, got {kind_of(runbook)}")
    notify = _notify(item.get("notify"), at("notify")) if "notify" in item else ()
    cooldown = item.get("cooldown", DEFAULT_COOLDOWN)
    if isinstance(cooldown, bool) or not isinstance(cooldown, (int, float)):
        raise at("cooldown").error(f"expected seconds, got {kind_of(cooldown)}")
    if not 0 <= cooldown <= MAX_COOLDOWN:
        raise at("cooldown").error(f"must be between 0 and {MAX_COOLDOWN:g} seconds")
    return TriggerSpec(
        name=name,
        pattern=source,
        text=text,
        runbook=runbook,
        notify=notify,
        cooldown=float(cooldown),
        where=here,
        runbook_where=at("runbook") if runbook is not None else None,
    )


def _notify(value: Any, where: Where) -> tuple[str, ...]:
    """An argv (list, or a string split like a shell would, with no shell); the program
    must exist now, not at 3 a.m."""
    if isinstance(value, str):
        try:
            argv = shlex.split(value)
        except ValueError as exc:
            raise where.error(f"cannot split the command: {exc}") from None
    elif isinstance(value, list) and all(isinstance(v, str) for v in value):
        argv = list(value)
    else:
        raise where.error(f"expected a command (a list of strings), got {kind_of(value)}")
    if not argv or not argv[0]:
        raise where.error("the command is empty")
    program = argv[0]
    if os.sep in program:
        if not (os.path.isfile(program) and os.access(program, os.X_OK)):
            raise where.error(f"{program}: not an executable file")
    elif shutil.which(program) is None:
        raise where.error(f"{program}: not found on PATH")
    return tuple(argv)
