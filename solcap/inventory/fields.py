"""Field checks shared by the readers: each value parsed into the model's types, each error
one line naming ``file:line:column``, the host and the field (:class:`Where`)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from solcap.config.credentials import SecretRef
from solcap.config.docload import Doc, Key, LocatedConfigError, Pos, kind_of
from solcap.errors import ConfigError, UsageError
from solcap.inventory.model import (
    CIPHER_SUITES,
    ENV_RE,
    HOSTPORT,
    LABEL_RE,
    SECRET_HINT,
    VAR_RE,
    BmcAddress,
    Scalar,
    SshTarget,
)
from solcap.transports.serialport import LineSettings


class Where:
    """Where a value came from, to build an error that points at it."""

    def __init__(self, path: str, pos: Pos | None, field: str) -> None:
        self.path = path
        self.pos = pos
        self.field = field

    def error(self, message: str) -> LocatedConfigError:
        return LocatedConfigError(
            self.path,
            message,
            line=self.pos.line if self.pos else None,
            column=self.pos.column if self.pos else None,
            field=self.field,
        )


def want_str(value: Any, where: Where) -> str:
    if not isinstance(value, str):
        raise where.error(f"expected a string, got {kind_of(value)}")
    if not value.strip():
        raise where.error("must not be empty")
    return value


def want_int(value: Any, where: Where, *, coerce: bool = False) -> int:
    if coerce and isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int):
        raise where.error(f"expected an integer, got {kind_of(value)}")
    return value


def parse_secret(value: Any, where: Where) -> SecretRef:
    """``env:NAME`` / ``file:PATH``; anything else is an inline secret and refused."""
    if not isinstance(value, str):
        raise where.error(f"expected env:NAME or file:PATH, got {kind_of(value)}; {SECRET_HINT}")
    if value.startswith("env:"):
        name = value[4:]
        if not ENV_RE.match(name):
            raise where.error(f"env:{name}: not a valid environment variable name")
        return SecretRef("env", name)
    if value.startswith("file:"):
        path = value[5:]
        if not path.strip():
            raise where.error("file: needs a path, e.g. file:~/.config/solcap/transports/bmc.pw")
        return SecretRef("file", path)
    raise where.error(SECRET_HINT)


def _port(text: str | None, default: int, where: Where) -> int:
    if text is None:
        return default
    port = int(text)
    if not 0 < port < 65536:
        raise where.error(f"port {port} is out of range 1..65535")
    return port


def _split_url(value: str, scheme: str, where: Where) -> tuple[str | None, str, str | None]:
    """``scheme://[user@]host[:port]`` → (user, host, port text)."""
    rest = value[len(scheme) + 3 :] if value.startswith(f"{scheme}://") else value
    if "://" in rest:
        raise where.error(f"expected {scheme}://[user@]host[:port], got {value!r}")
    rest = rest.rstrip("/")
    user: str | None = None
    if "@" in rest:
        user, rest = rest.rsplit("@", 1)
        if ":" in user:
            raise where.error(f"a password in the {scheme}:// address is refused; {SECRET_HINT}")
        if not user:
            raise where.error(f"empty user name in {value!r}")
    m = HOSTPORT.match(rest)
    if m is None:
        raise where.error(f"expected {scheme}://[user@]host[:port], got {value!r}")
    return user, m.group("v6") or m.group("host"), m.group("port")


def parse_bmc(
    value: Any, where: Where, *, user: str | None = None, port: int | None = None
) -> BmcAddress:
    """``ipmi://user@host[:port]`` or a bare host name (the user then comes from bmc_user)."""
    text = want_str(value, where)
    if "://" in text and not text.startswith("ipmi://"):
        raise where.error(f"expected ipmi://[user@]host[:port], got {text!r}")
    url_user, host, port_text = _split_url(text, "ipmi", where)
    return BmcAddress(host=host, user=url_user or user, port=_port(port_text, port or 623, where))


def parse_ssh(
    value: Any, where: Where, *, user: str | None, key_file: str | None, known_hosts: str | None
) -> SshTarget:
    """``ssh://user@host[:port]`` or a bare host."""
    text = want_str(value, where)
    if "://" in text and not text.startswith("ssh://"):
        raise where.error(f"expected ssh://[user@]host[:port], got {text!r}")
    url_user, host, port_text = _split_url(text, "ssh", where)
    return SshTarget(
        host=host,
        user=url_user or user,
        port=_port(port_text, 22, where),
        key_file=key_file,
        known_hosts=known_hosts,
    )


def parse_serial(value: Any, where: Where) -> str:
    """``serial:///dev/ttyS0`` or an absolute device path."""
    text = want_str(value, where)
    if text.startswith("serial://"):
        if not text[len("serial://") :].startswith("/"):
            raise where.error(f"expected serial:///dev/DEVICE, got {text!r}")
        return text
    if not text.startswith("/"):
        raise where.error(f"expected serial:///dev/ttyS0 or an absolute device path, got {text!r}")
    return text


def parse_console(name: str, merged: Mapping[str, Any], wheres: Mapping[str, Where]) -> str | None:
    """``console: exec:…|ssh+FLAVOUR://…`` as given, or the ``exec:`` that ``via:
    conserver|conman`` (+ ``console_server``, ``console_name``) builds; checked now (quoting,
    secrets in argv, BMC SSH options), before any host is contacted."""
    from solcap.transports import bmcssh, execpty  # lazily: paramiko only when used

    for text_field in ("console", "via", "console_server", "console_name"):
        if text_field in merged:
            want_str(merged[text_field], wheres[text_field])
    if "console" in merged and "via" in merged:
        raise wheres["via"].error("give console or via, not both")
    try:
        if "console" in merged:
            target = str(merged["console"])
            if target.startswith("exec:"):
                execpty.parse_exec(target)
            elif target.startswith("ssh+"):
                bmcssh.BmcSshSpec.parse(target)
            else:
                raise UsageError(
                    f"expected exec:CMD or ssh+FLAVOUR://… (a device goes in serial:, "
                    f"a BMC's SOL in bmc:), got {target!r}"
                )
            return target
        if "via" in merged:
            target = execpty.via_command(
                str(merged["via"]),
                str(merged.get("console_name", name)),
                merged.get("console_server"),
            )
            execpty.parse_exec(target)
            return target
    except UsageError as exc:
        where = wheres["console"] if "console" in merged else wheres["via"]
        raise where.error(exc.one_line()) from exc
    for orphan in ("console_server", "console_name"):
        if orphan in merged:
            raise wheres[orphan].error(f"{orphan} applies with via: conserver|conman only")
    return None


def parse_cipher(value: Any, where: Where, *, coerce: bool = False) -> int:
    """Cipher suite 3 or 17; 0 (no authentication) and the rest are refused."""
    suite = want_int(value, where, coerce=coerce)
    if suite == 0:
        raise where.error(
            "cipher suite 0 means no authentication at all (CVE-2013-4782): anyone on the "
            "network could drive the console; use 17 (or 3 for older BMCs)"
        )
    if suite not in CIPHER_SUITES:
        raise where.error(f"cipher suite {suite} is not supported: use 17 or 3")
    return suite


def parse_line(value: Any, where: Where) -> LineSettings:
    text = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
    text = want_str(text, where)
    try:
        return LineSettings.parse(text)
    except UsageError as exc:
        raise where.error(str(exc)) from exc


def parse_labels(value: Any, where: Where) -> frozenset[str]:
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    if not isinstance(value, list):
        raise where.error(f"expected a list of labels, got {kind_of(value)}")
    for label in value:
        if not isinstance(label, str) or not LABEL_RE.match(label):
            raise where.error(f"{label!r}: a label is letters, digits and . _ : = / -")
    return frozenset(value)


def parse_vars(
    value: Any, where: Where, doc: Doc | None = None, key: Key = ()
) -> dict[str, Scalar]:
    if not isinstance(value, dict):
        raise where.error(f"expected a mapping of variables, got {kind_of(value)}")
    out: dict[str, Scalar] = {}
    for name, item in value.items():
        sub = Where(
            where.path, doc.pos((*key, name)) if doc else where.pos, f"{where.field}.{name}"
        )
        if not VAR_RE.match(name):
            raise sub.error("a variable name is letters, digits and '_', not starting with a digit")
        if item is None or isinstance(item, (list, dict)):
            raise sub.error(f"a variable must be a string, number or boolean, got {kind_of(item)}")
        out[name] = item
    return out


def check_profile(
    name: Any, where: Where, profile_dirs: Sequence[str | os.PathLike[str]] | None
) -> str:
    """The profile must exist (and be valid) before anything runs."""
    from solcap.boot.profiles import load_profile  # profiles import nothing of ours; keep it lazy

    text = want_str(name, where)
    try:
        load_profile(text, profile_dirs)
    except ConfigError as exc:
        raise where.error(f"profile {text!r} is invalid: {exc.one_line()}") from exc
    except UsageError as exc:
        raise where.error(exc.one_line()) from exc
    return text
