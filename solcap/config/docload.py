"""Load YAML or TOML into plain data plus the line:column of every key and value.

Runbooks and inventories are written by hand and must be validated completely before any BMC
traffic, with errors that point at the exact place. Neither ``yaml.safe_load`` nor ``tomllib``
reports positions for *semantic* errors, so this module keeps a side table of positions keyed
by the path to each value (``("hosts", "node01", "cipher")``).

YAML: parsed with PyYAML's ``compose()`` only — it builds nodes and never constructs Python
objects, so no tag can run code. Plain scalars are then resolved by the YAML 1.2 core schema
(``true``/``false``/``null``/numbers; ``yes``, ``on``, ``0755`` and dates stay strings, which is
what an operator means when writing a host name or a label). Custom tags, merge keys, complex
keys and duplicate keys are refused; aliases are expanded with a size budget (no billion laughs).

TOML: ``tomllib`` parses; positions come from a scan of the text (headers and ``key =`` lines),
which is exact for the hand-written shapes solcap documents and falls back to the enclosing
table otherwise.
"""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from solcap.util.lazy import lazy_module

if TYPE_CHECKING:
    import yaml
else:
    yaml = lazy_module("yaml")  # only a YAML inventory or runbook loads it

from solcap.config.limits import MAX_DEPTH, check_depth, read_text
from solcap.errors import ConfigError

Key = tuple[str | int, ...]

_MAX_NODES = 200_000  # after alias expansion; far beyond any real runbook or inventory
_STD = "tag:yaml.org,2002:"
_SCALAR_TAGS = {f"{_STD}{t}" for t in ("str", "int", "float", "bool", "null", "timestamp")}
_NULL = re.compile(r"^(?:~|null|Null|NULL|)$")
_BOOL = {"true": True, "True": True, "TRUE": True, "false": False, "False": False}
_BOOL["FALSE"] = False
_INT10 = re.compile(r"^[-+]?[0-9]+$")
_INT8 = re.compile(r"^0o[0-7]+$")
_INT16 = re.compile(r"^0x[0-9a-fA-F]+$")
_FLOAT = re.compile(r"^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?$")
_INF = re.compile(r"^[-+]?\.(?:inf|Inf|INF)$")
_NAN = re.compile(r"^\.(?:nan|NaN|NAN)$")


@dataclass(frozen=True)
class Pos:
    """1-based line and column."""

    line: int
    column: int


class LocatedConfigError(ConfigError):
    """A ConfigError that also knows the column: ``path:line:column: field: message``."""

    def __init__(
        self,
        path: str,
        message: str,
        *,
        line: int | None = None,
        column: int | None = None,
        field: str | None = None,
    ) -> None:
        super().__init__(path, message, line=line, field=field)
        self.column = column
        self.message = message
        if line is not None and column is not None:
            what = f"{field}: {message}" if field else message
            self.args = (f"{path}:{line}:{column}: {what}",)


@dataclass
class Doc:
    """A loaded file: plain data (dicts, lists, str/int/float/bool/None) and positions."""

    path: str
    data: Any
    values: dict[Key, Pos] = field(default_factory=dict)
    keys: dict[Key, Pos] = field(default_factory=dict)

    def pos(self, key: Key, *, of_key: bool = False) -> Pos | None:
        """Position of the value at ``key`` (or of the key itself), else the nearest parent's."""
        probe = tuple(key)
        while True:
            table = self.keys if of_key else self.values
            if probe in table:
                return table[probe]
            if of_key and probe in self.values:
                return self.values[probe]
            if not probe:
                return None
            probe = probe[:-1]

    def error(
        self, key: Key, message: str, *, field: str | None = None, of_key: bool = False
    ) -> LocatedConfigError:
        """An error at ``key``; ``field`` defaults to the dotted key path."""
        where = self.pos(key, of_key=of_key)
        return LocatedConfigError(
            self.path,
            message,
            line=where.line if where else None,
            column=where.column if where else None,
            field=field if field is not None else dotted(key),
        )


def dotted(key: Key) -> str:
    """``("steps", 3, "expect", "timeout")`` → ``steps[3].expect.timeout``."""
    out = ""
    for part in key:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out


# --------------------------------------------------------------------------- YAML


def _resolve_plain(text: str) -> Any:
    """YAML 1.2 core schema for an untagged plain scalar."""
    if _NULL.match(text):
        return None
    if text in _BOOL:
        return _BOOL[text]
    if _INT10.match(text):
        return int(text)
    if _INT8.match(text):
        return int(text[2:], 8)
    if _INT16.match(text):
        return int(text[2:], 16)
    if _FLOAT.match(text):
        return float(text)
    if _INF.match(text):
        return -math.inf if text.startswith("-") else math.inf
    if _NAN.match(text):
        return math.nan
    return text


class _YamlBuilder:
    def __init__(self, path: str) -> None:
        self.doc = Doc(path, None)
        self.count = 0

    def fail(self, node: yaml.Node, key: Key, message: str) -> LocatedConfigError:
        mark = node.start_mark
        return LocatedConfigError(
            self.doc.path,
            message,
            line=mark.line + 1,
            column=mark.column + 1,
            field=dotted(key) or None,
        )

    def build(self, node: yaml.Node, key: Key) -> Any:
        self.count += 1
        if self.count > _MAX_NODES:
            raise self.fail(node, key, f"document too large after alias expansion (>{_MAX_NODES})")
        mark = node.start_mark
        self.doc.values[key] = Pos(mark.line + 1, mark.column + 1)
        if isinstance(node, yaml.ScalarNode):
            if node.tag == "!vault":  # Ansible Vault: kept encrypted, as ansible-inventory does
                return {"__ansible_vault": str(node.value)}
            if node.tag == "!unsafe":  # Ansible: a string never templated
                return str(node.value)
            if node.tag not in _SCALAR_TAGS:
                raise self.fail(node, key, f"YAML tag {node.tag!r} is not allowed")
            if node.tag == f"{_STD}str" or node.style is not None:
                return str(node.value)
            return _resolve_plain(str(node.value))
        if isinstance(node, yaml.SequenceNode):
            if node.tag != f"{_STD}seq":
                raise self.fail(node, key, f"YAML tag {node.tag!r} is not allowed")
            return [self.build(item, (*key, i)) for i, item in enumerate(node.value)]
        if isinstance(node, yaml.MappingNode):
            if node.tag != f"{_STD}map":
                raise self.fail(node, key, f"YAML tag {node.tag!r} is not allowed")
            out: dict[str, Any] = {}
            for knode, vnode in node.value:
                if knode.tag == f"{_STD}merge":
                    raise self.fail(knode, key, "YAML merge keys ('<<') are not supported")
                if not isinstance(knode, yaml.ScalarNode) or knode.tag not in _SCALAR_TAGS:
                    raise self.fail(knode, key, "mapping keys must be plain text")
                name = str(knode.value)
                child = (*key, name)
                if name in out:
                    raise self.fail(knode, child, "duplicate key (the first value would be lost)")
                kmark = knode.start_mark
                self.doc.keys[child] = Pos(kmark.line + 1, kmark.column + 1)
                out[name] = self.build(vnode, child)
            return out
        raise self.fail(node, key, f"unsupported YAML node {type(node).__name__}")


def load_yaml_text(text: str, path: str) -> Doc:
    """Compose (never construct) one YAML document and build located plain data."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "syntax error"
        if mark is None:
            raise ConfigError(path, f"YAML syntax: {problem}") from exc
        raise LocatedConfigError(
            path, f"YAML syntax: {problem}", line=mark.line + 1, column=mark.column + 1
        ) from exc
    except yaml.YAMLError as exc:
        raise ConfigError(path, f"YAML: {' '.join(str(exc).split())}") from exc
    except RecursionError as exc:
        raise ConfigError(path, f"nested more than {MAX_DEPTH} levels deep") from exc
    builder = _YamlBuilder(path)
    if node is None:
        builder.doc.data = None
        return builder.doc
    try:
        builder.doc.data = builder.build(node, ())
    except RecursionError as exc:
        raise ConfigError(path, f"nested more than {MAX_DEPTH} levels deep") from exc
    check_depth(builder.doc.data, path)
    return builder.doc


# --------------------------------------------------------------------------- TOML

_BARE = r"[A-Za-z0-9_-]+"
_QUOTED = r'"(?:[^"\\]|\\.)*"|\'[^\']*\''
_PART = rf"(?:{_BARE}|{_QUOTED})"
_DOTTED = rf"{_PART}(?:\s*\.\s*{_PART})*"
_HEADER = re.compile(rf"^\s*(\[\[?)\s*({_DOTTED})\s*\]\]?\s*(?:#.*)?$")
_KEYLINE = re.compile(rf"^(\s*)({_DOTTED})\s*=\s*")
_SPLIT = re.compile(rf"{_PART}")


def _parts(dotted_key: str) -> list[str]:
    out = []
    for m in _SPLIT.finditer(dotted_key):
        text = m.group(0)
        if text[0] in "\"'":
            text = text[1:-1]
        out.append(text)
    return out


def _toml_positions(source: str, doc: Doc) -> None:
    """Fill ``doc.values``/``doc.keys`` from headers and ``key =`` lines (see module doc)."""
    arrays: dict[Key, int] = {}
    current: Key = ()
    in_multiline: str | None = None

    def with_indices(parts: list[str]) -> Key:
        key: Key = ()
        for part in parts:
            key = (*key, part)
            if key in arrays:
                key = (*key, arrays[key])
        return key

    for number, line in enumerate(source.splitlines(), start=1):
        if in_multiline is not None:
            if line.count(in_multiline) % 2 == 1:
                in_multiline = None
            continue
        header = _HEADER.match(line)
        if header:
            parts = _parts(header.group(2))
            column = header.start(2) + 1
            if header.group(1) == "[[":
                base = with_indices(parts[:-1])
                akey = (*base, parts[-1])
                arrays[akey] = arrays.get(akey, -1) + 1
                current = (*akey, arrays[akey])
                doc.values.setdefault(akey, Pos(number, column))
            else:
                current = with_indices(parts)
            doc.values[current] = Pos(number, column)
            doc.keys[current] = Pos(number, column)
            continue
        keyline = _KEYLINE.match(line)
        if keyline:
            key = (*current, *_parts(keyline.group(2)))
            doc.keys[key] = Pos(number, keyline.start(2) + 1)
            doc.values[key] = Pos(number, keyline.end() + 1)
            rest = line[keyline.end() :]
            for quote in ('"""', "'''"):
                if rest.count(quote) % 2 == 1:
                    in_multiline = quote


def load_toml_text(text: str, path: str) -> Doc:
    """Parse TOML and attach positions found by scanning the text."""
    data = parse_toml(text, path)
    doc = Doc(path, data)
    _toml_positions(text, doc)
    return doc


def parse_toml(text: str, path: str) -> dict[str, Any]:
    """``tomllib.loads`` with its errors (syntax, nesting beyond :data:`MAX_DEPTH`) as one
    located ConfigError; tomllib recurses once per nesting level, so a file nested thousands
    deep ends in RecursionError, which is that same error."""
    try:
        data = tomllib.loads(text)
    except RecursionError as exc:
        raise ConfigError(path, f"nested more than {MAX_DEPTH} levels deep") from exc
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        found = re.search(r"\(at line (\d+), column (\d+)\)", message)
        if found:
            raise LocatedConfigError(
                path,
                f"TOML syntax: {message[: found.start()].strip()}",
                line=int(found.group(1)),
                column=int(found.group(2)),
            ) from exc
        raise ConfigError(path, f"TOML syntax: {message}") from exc
    check_depth(data, path)
    return data


# --------------------------------------------------------------------------- files


def load_text(text: str, path: str, *, fmt: str | None = None) -> Doc:
    """Load ``text`` as YAML or TOML (by ``fmt`` or the file suffix; YAML by default)."""
    kind = fmt or ("toml" if path.endswith(".toml") else "yaml")
    if kind == "toml":
        return load_toml_text(text, path)
    return load_yaml_text(text, path)


def load_file(path: str | Path, *, fmt: str | None = None, kind: str = "runbook") -> Doc:
    """Read a UTF-8 file (at most ``FILE_CAPS[kind]`` bytes) and load it; unreadable, oversized
    or non-UTF-8 files are ConfigErrors too."""
    return load_text(read_text(path, kind), str(path), fmt=fmt)


def kind_of(value: object) -> str:
    """How a value's type reads in an error message."""
    if value is None:
        return "null"
    names: Mapping[type, str] = {
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        str: "a string",
        list: "a list",
        dict: "a mapping",
    }
    return names.get(type(value), type(value).__name__)
