"""Loading runbooks: by path or shipped name, validated completely with their own defaults."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from solcap.config.docload import Doc, kind_of, load_file
from solcap.config.shipped import shipped_dir
from solcap.errors import UsageError
from solcap.inventory import Scalar
from solcap.orchestration.runbook.model import (
    BUILTIN_VARS,
    DEFERRED,
    NAME_RE,
    VAR_NAME,
    Deferred,
    Runbook,
)
from solcap.orchestration.runbook.reader import Reader

#: The runbooks shipped with solcap (package data when installed; see solcap.config.shipped).
BUILTIN_DIR = shipped_dir("runbooks")

_TOP = frozenset({"name", "description", "vars", "death_strings", "steps", "outcome"})


def _declared_vars(doc: Doc) -> dict[str, Scalar | None]:
    raw = doc.data.get("vars") if isinstance(doc.data, dict) else None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise doc.error(("vars",), f"expected a mapping of name: default, got {kind_of(raw)}")
    out: dict[str, Scalar | None] = {}
    for name, value in raw.items():
        if not VAR_NAME.match(name):
            raise doc.error(
                ("vars", name), "a variable name is letters, digits and '_'", of_key=True
            )
        if name in BUILTIN_VARS:
            raise doc.error(
                ("vars", name), f"${{{name}}} is built in; pick another name", of_key=True
            )
        if isinstance(value, (list, dict)):
            raise doc.error(
                ("vars", name),
                f"a default is a string, number, boolean or null, got {kind_of(value)}",
            )
        out[name] = value
    return out


def build_runbook(reader: Reader, doc: Doc, declared: Mapping[str, Scalar | None]) -> Runbook:
    data = doc.data
    name = data.get("name", Path(doc.path).stem)
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise doc.error(("name",), "a runbook name is letters, digits, '.', '_' and '-'")
    description = data.get("description", "")
    if not isinstance(description, str):
        raise doc.error(("description",), f"expected a string, got {kind_of(description)}")
    return Runbook(
        name=name,
        description=description.strip(),
        path=doc.path,
        vars=dict(declared),
        death_strings=reader.death_strings(data.get("death_strings")),
        steps=reader.steps(data.get("steps")),
        outcome=reader.outcome(data.get("outcome")),
        doc=doc,
    )


def load_runbook_doc(
    doc: Doc,
    *,
    profile_dirs: Sequence[str | os.PathLike[str]] | None = None,
    check_profiles: bool = True,
) -> Runbook:
    """Validate a loaded document as a runbook (see :func:`load_runbook`)."""
    if not isinstance(doc.data, dict):
        raise doc.error(
            (), f"a runbook is a mapping with 'steps', got {kind_of(doc.data)}", field=""
        )
    for name in doc.data:
        if name not in _TOP:
            raise doc.error(
                (name,), f"unknown field (allowed: {', '.join(sorted(_TOP))})", of_key=True
            )
    declared = _declared_vars(doc)
    values: dict[str, Scalar | Deferred] = {"host": "HOST"}
    for name, value in declared.items():
        values[name] = DEFERRED if value is None else value
    reader = Reader(
        doc, values, host=None, profile_dirs=profile_dirs, env=None,
        resolve_secrets=False, check_profiles=check_profiles,
    )  # fmt: skip
    return build_runbook(reader, doc, declared)


def load_runbook(
    name_or_path: str | os.PathLike[str],
    *,
    profile_dirs: Sequence[str | os.PathLike[str]] | None = None,
    check_profiles: bool = True,
) -> Runbook:
    """Load and validate a runbook by path, or by name from the shipped runbooks.

    A bare name (no ``/``) that is not a file in the working directory is looked up in
    :data:`BUILTIN_DIR` as ``NAME``, ``NAME.yaml``, ``NAME.yml``, then ``NAME.toml``.
    """
    text = os.fspath(name_or_path)
    path = Path(text)
    if not path.exists() and "/" not in text and os.sep not in text:
        for suffix in ("", ".yaml", ".yml", ".toml"):
            candidate = BUILTIN_DIR / f"{text}{suffix}"
            if candidate.is_file():
                path = candidate
                break
        else:
            raise UsageError(f"no runbook named {text!r} (not a file here; searched {BUILTIN_DIR})")
    return load_runbook_doc(
        load_file(path), profile_dirs=profile_dirs, check_profiles=check_profiles
    )


def list_runbooks(directory: str | os.PathLike[str] | None = None) -> list[Path]:
    """The shipped runbooks (or those in ``directory``), sorted by name."""
    base = Path(directory) if directory is not None else BUILTIN_DIR
    return sorted(p for p in base.glob("*") if p.suffix in (".yaml", ".yml", ".toml"))
