"""Xen and Linux command lines as ordered tokens, and an idempotent profile merge.

A boot line is edited by three parties: the distribution (``placeholder``, ``root=…``,
``${xen_rm_opts}``), the operator (whatever they added by hand) and a solcap profile. The
profile must change only what it owns and leave the rest byte-for-byte where it was, and
applying it twice must equal applying it once — otherwise every ``solcap grub apply`` would
grow the line. So the model keeps every token verbatim and in order; editing is done by key.

Token rules (both kernels split on unquoted whitespace; a double quote toggles quoting
anywhere in a word, so ``key="a b"`` and ``"key=a b"`` are single tokens):

* ``key=value`` — keyed; the key is the text before the first ``=`` with quotes removed.
* ``flag`` — a bare flag is keyed by itself. For Xen, ``no-flag`` has the same key as
  ``flag`` (Xen booleans are negated with a ``no-`` prefix), so the two replace each other.
* ``placeholder`` and tokens starting with ``$`` (``${xen_rm_opts}``, ``$vt_handoff``) are
  *verbatim*: never matched by key, never moved, only removed by exact text.
* ``--`` ends the options the kernel parses itself (Linux passes the rest to init; some Xen
  multiboot setups pass the rest to Dom0). Nothing at or after ``--`` is ever edited, and
  additions go before it.

Options solcap *adds or removes* must match a strict grammar (:func:`check_option`): a name
(letters, digits, ``_``, ``-``, ``.``) and an optional ``=value`` drawn from the characters
real Xen and Linux options use (``,:/=+@%()`` besides letters, digits and ``_.-``). The
reason is where the words end up: ``update-grub`` *sources* /etc/default/grub as shell, as
root, and 20_linux_xen pastes the variables unquoted into grub.cfg, where ``;`` ``|`` ``&``
``<`` ``>`` ``{`` ``}`` ``#`` ``$`` and quotes are GRUB-script syntax. Anything outside the
grammar (metacharacters, quotes, backslashes, globs, control bytes, NUL, non-ASCII) is
refused before a file is touched, rather than escaped.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from solcap.errors import UsageError

Kind = Literal["xen", "linux"]
KINDS: tuple[Kind, ...] = ("xen", "linux")

#: Linux keys that may legitimately repeat where the order carries meaning; the last
#: ``console=`` becomes /dev/console.
LINUX_MULTI_KEYS = frozenset({"console"})

#: Option names: Linux ``param``/``module.param`` (``-`` and ``_`` equivalent), Xen ``name``
#: and ``no-name``.
_OPTION_NAME = r"[A-Za-z0-9_][A-Za-z0-9_.-]*"
#: Value characters seen in real Xen and Linux options (``com1=115200,8n1,0x3f8,4``,
#: ``dom0_mem=1G,max:1G``, ``root=UUID=…``, ``crashkernel=1G-4G:192M``, ``memmap=64M@0x…``,
#: ``xen-pciback.hide=(0000:03:00.0)``); none is special inside shell double quotes or in
#: GRUB script.
_OPTION_VALUE = r"[A-Za-z0-9_.,:/=+@%()-]*"
_OPTION_RE = re.compile(rf"{_OPTION_NAME}(?:={_OPTION_VALUE})?")
_VERBATIM_RE = re.compile(r"placeholder|\$[A-Za-z_][A-Za-z0-9_]*|\$\{[A-Za-z_][A-Za-z0-9_]*\}")


def check_option(option: str) -> str | None:
    """Why ``option`` may not be written into a boot configuration, or None when it may.

    The grammar is an allow-list (see the module docstring): the text ends up sourced by a
    root shell and parsed by GRUB's script lexer, so escaping is not attempted.
    """
    if _OPTION_RE.fullmatch(option):
        return None
    if not option:
        return "an empty option"
    bad = next(
        (c for c in option if not re.fullmatch(r"[A-Za-z0-9_.,:/=+@%()-]", c)),
        None,
    )
    if bad is not None:
        return (
            f"{option!r}: {bad!r} is not allowed in a boot option (letters, digits and "
            "_ . - , : / = + @ % ( ) only; no shell or GRUB-script metacharacters)"
        )
    return f"{option!r}: an option is NAME or NAME=VALUE, NAME of letters, digits, _ . -"


@dataclass(frozen=True)
class Token:
    """One word of a command line, kept exactly as written."""

    text: str

    @property
    def is_separator(self) -> bool:
        """True for ``--``, after which the kernel stops parsing options."""
        return self.text == "--"

    @property
    def is_verbatim(self) -> bool:
        """True for tokens the bootloader owns (``placeholder``, ``$var``, ``${var}``)."""
        return self.text == "placeholder" or self.text.startswith("$")

    @property
    def raw_key(self) -> str:
        """The option name as written: text before the first ``=``, quotes removed."""
        name = self.text.split("=", 1)[0]
        return name.replace('"', "")

    @property
    def value(self) -> str | None:
        """The value after the first ``=`` (quotes kept), or None for a bare flag."""
        if "=" not in self.text:
            return None
        return self.text.split("=", 1)[1]

    def key(self, kind: Kind) -> str:
        """The identity used to decide which tokens a profile option replaces."""
        name = self.raw_key
        if kind == "xen" and "=" not in self.text and name.startswith("no-"):
            return name[3:]
        return name

    def __str__(self) -> str:
        return self.text


def split_words(text: str) -> list[str]:
    """Split on unquoted whitespace the way Linux's ``next_arg`` and Xen's parser do."""
    words: list[str] = []
    current: list[str] = []
    in_quote = False
    started = False
    for char in text:
        if char == '"':
            in_quote = not in_quote
            current.append(char)
            started = True
        elif char.isspace() and not in_quote:
            if started:
                words.append("".join(current))
                current = []
                started = False
        else:
            current.append(char)
            started = True
    if in_quote:
        raise UsageError(f"unbalanced double quote in command line: {text!r}")
    if started:
        words.append("".join(current))
    return words


@dataclass(frozen=True)
class Cmdline:
    """A parsed command line: ordered tokens; ``str()`` joins them with single spaces."""

    tokens: tuple[Token, ...]
    kind: Kind

    @classmethod
    def parse(cls, text: str, kind: Kind) -> Cmdline:
        """Parse ``text``; raises UsageError on an unbalanced quote."""
        _check_kind(kind)
        return cls(tuple(Token(word) for word in split_words(text)), kind)

    def __str__(self) -> str:
        return " ".join(token.text for token in self.tokens)

    @property
    def options(self) -> tuple[Token, ...]:
        """The tokens before the first ``--`` (the ones the kernel itself parses)."""
        return self.tokens[: self._separator_index()]

    @property
    def tail(self) -> tuple[Token, ...]:
        """``--`` and everything after it, or an empty tuple."""
        return self.tokens[self._separator_index() :]

    def _separator_index(self) -> int:
        for index, token in enumerate(self.tokens):
            if token.is_separator:
                return index
        return len(self.tokens)

    def get(self, key: str) -> list[str | None]:
        """Values of every keyed option named ``key`` before ``--``, in order."""
        return [
            token.value
            for token in self.options
            if not token.is_verbatim and token.key(self.kind) == key
        ]

    def effective(self, key: str) -> str | None:
        """The value the kernel acts on: the last occurrence wins (``None`` for a flag)."""
        values = self.get(key)
        if not values:
            raise KeyError(key)
        return values[-1]

    def has(self, key: str) -> bool:
        """True when an option with this key appears before ``--``."""
        return bool(self.get(key))


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise UsageError(f"command line kind must be 'xen' or 'linux', not {kind!r}")


def _single_token(option: str, what: str) -> Token:
    words = split_words(option)
    if len(words) != 1:
        raise UsageError(f"{what} option must be exactly one word, got {option!r}")
    if what == "added" and Token(words[0]).is_verbatim:
        raise UsageError(f"added option may not be a bootloader token: {option!r}")
    if not (what == "removed" and _VERBATIM_RE.fullmatch(option)) and option != "--":
        reason = check_option(option)
        if reason is not None:
            raise UsageError(f"{what} option {reason}")
    token = Token(words[0])
    if token.is_separator:
        raise UsageError(f"{what} option may not be '--'")
    if what == "added" and token.is_verbatim:
        raise UsageError(f"added option may not be a bootloader token: {option!r}")
    return token


def _matches_removal(token: Token, spec: Token, kind: Kind) -> bool:
    if token.text == spec.text:
        return True
    if "=" in spec.text or token.is_verbatim or spec.is_verbatim:
        return False
    return token.key(kind) == spec.key(kind)


def merge(
    cmdline: str,
    add: Iterable[str] = (),
    remove: Iterable[str] = (),
    kind: Kind = "xen",
    *,
    before_trailing_vars: bool = True,
) -> str:
    """Apply a profile's options to a command line; idempotent by construction.

    * ``remove`` entries are keys (``quiet``, ``console``: every occurrence goes) or exact
      tokens (``console=tty0``: only that one goes). A removal never undoes an addition: a
      removal whose key the profile adds is ignored, so that applying twice equals once.
    * ``add`` entries own their key: all existing occurrences go, and the profile's values
      take the place of the first one (or are appended before ``--`` and any trailing
      ``$var`` tokens). For Xen only one value per key survives (the last one given).
    * Linux ``console=`` is special: other consoles stay where they are, and the profile's
      consoles end up last, in profile order, so the profile's last one is /dev/console.

    ``before_trailing_vars`` puts appended options before a trailing run of ``$var``
    tokens (right for grub.cfg's ``${xen_rm_opts}``); shell values such as
    ``"$GRUB_CMDLINE_XEN_DEFAULT x"`` pass False so options land after the reference.

    Returns ``cmdline`` unchanged (same spacing) when the edit changes no token.
    """
    _check_kind(kind)
    parsed = Cmdline.parse(cmdline, kind)
    additions = _dedupe_additions([_single_token(o, "added") for o in add], kind)
    added_keys = {token.key(kind) for token in additions}
    removals = [
        spec
        for spec in (_single_token(o, "removed") for o in remove)
        if spec.key(kind) not in added_keys
    ]

    body = [
        token
        for token in parsed.options
        if not any(_matches_removal(token, spec, kind) for spec in removals)
    ]
    for key in _ordered_keys(additions, kind):
        owned = [token for token in additions if token.key(kind) == key]
        if kind == "linux" and key in LINUX_MULTI_KEYS:
            body = _place_multi(body, owned, key, kind, before_trailing_vars)
        else:
            body = _place_single(body, owned, key, kind, before_trailing_vars)

    result = tuple(body) + parsed.tail
    if result == parsed.tokens:
        return cmdline
    return str(Cmdline(result, kind))


def _dedupe_additions(additions: list[Token], kind: Kind) -> list[Token]:
    """Drop repeats, keeping the last place each was given (a Linux ``console=`` listed twice
    must stay where it was given last: that one becomes /dev/console); for Xen keep only
    the last value given for each key."""
    seen: list[Token] = []
    for token in additions:
        seen = [t for t in seen if t != token]
        if kind == "xen":
            seen = [t for t in seen if t.key(kind) != token.key(kind)]
        seen.append(token)
    return seen


def _ordered_keys(additions: Sequence[Token], kind: Kind) -> list[str]:
    keys: list[str] = []
    for token in additions:
        if token.key(kind) not in keys:
            keys.append(token.key(kind))
    return keys


def _append_index(body: Sequence[Token], before_trailing_vars: bool) -> int:
    """Where new options go: the end, or before a trailing run of ``$var`` tokens."""
    index = len(body)
    while before_trailing_vars and index > 0 and body[index - 1].text.startswith("$"):
        index -= 1
    return index


def _keyed(token: Token, key: str, kind: Kind) -> bool:
    return not token.is_verbatim and token.key(kind) == key


def _place_single(
    body: list[Token], owned: list[Token], key: str, kind: Kind, before_vars: bool
) -> list[Token]:
    first = next((i for i, token in enumerate(body) if _keyed(token, key, kind)), None)
    kept = [token for token in body if not _keyed(token, key, kind)]
    if first is None:
        at = _append_index(kept, before_vars)
    else:
        at = sum(1 for token in body[:first] if not _keyed(token, key, kind))
    return kept[:at] + owned + kept[at:]


def _place_multi(
    body: list[Token], owned: list[Token], key: str, kind: Kind, before_vars: bool
) -> list[Token]:
    kept = [token for token in body if token not in owned]
    last = max((i for i, token in enumerate(kept) if _keyed(token, key, kind)), default=None)
    if last is not None:
        at = last + 1
    else:
        # No other console: keep the profile's consoles where they already are, if present.
        first = next((i for i, token in enumerate(body) if token in owned), None)
        at = _append_index(kept, before_vars) if first is None else first
    return kept[:at] + owned + kept[at:]
