"""Runbooks: declarative console/BMC/Dom0 steps, validated completely before any traffic.

A runbook is one YAML file (TOML is accepted too; docs/runbooks.md is the reference)::

    name: failed-boot
    vars: {profile: xen-serial-debug, login_timeout: 900}
    death_strings: ["Panic on CPU"]
    steps:
      - power: cycle
      - grub: {mode: oneshot, profile: "${profile}"}
      - expect: {patterns: ["login: "], timeout: "${login_timeout}"}
    outcome: {success: ["login: "]}

Loading checks the structure, every regex, every ``${var}`` (an unknown one is an error) and
the dangerous debug keys, each error as ``file:line:column: field: message``. :func:`plan`
then resolves the runbook for each host (inventory vars override the runbook's defaults),
checks that the host has what the steps need (a BMC for ``power``, SSH for ``ssh``, …) and
that every ``send_secret`` source exists — still without contacting anything. Secrets live in
:class:`Secret` objects whose ``repr``/``str`` is ``<redacted:N bytes>``, so no log or plan
rendering can show them.

Execution (driving a Console, power, GRUB and SSH from a :class:`Plan`) is not in this module
yet; see docs/runbooks.md "Status".
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from solcap.docload import Doc, Key, LocatedConfigError, dotted, kind_of, load_file
from solcap.errors import ConfigError, UsageError
from solcap.inventory import Host, Scalar, SecretRef, Where, check_profile, parse_secret
from solcap.limits import key_problem
from solcap.shipped import shipped_dir
from solcap.vcpu import check_cpus
from solcap.xen import DANGEROUS_KEYS

#: The runbooks shipped with solcap (package data when installed; see solcap.shipped).
BUILTIN_DIR = shipped_dir("runbooks")

ACTIONS = (
    "power", "expect", "send", "sendline", "send_secret", "xen_input", "debug_keys",
    "grub", "mark", "settle", "ssh", "vcpu_pin",
)  # fmt: skip
_COMMON = frozenset({"id", "name"})
_TOP = frozenset({"name", "description", "vars", "death_strings", "steps", "outcome"})
_VAR_REF = re.compile(r"\$\{([^}]*)\}")
_VAR_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_FILE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_DOMAIN_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
BUILTIN_VARS = ("host",)
#: Analyses an ``ssh`` step can apply to its output: ``virt_mode`` → solcap.virtmode.classify.
ANALYZERS = ("virt_mode",)


class _Deferred:
    """A variable with no default: its value comes from the inventory, per host."""

    def __repr__(self) -> str:
        return "<deferred>"


DEFERRED = _Deferred()


class Secret:
    """Secret bytes that never show themselves: ``str``/``repr`` are ``<redacted:N bytes>``."""

    __slots__ = ("_value",)

    def __init__(self, value: bytes) -> None:
        self._value = value

    @property
    def value(self) -> bytes:
        return self._value

    def __len__(self) -> int:
        return len(self._value)

    def __repr__(self) -> str:
        return f"<redacted:{len(self._value)} bytes>"

    __str__ = __repr__


# --------------------------------------------------------------------------- steps


@dataclass(frozen=True, kw_only=True)
class Step:
    """Common to all steps: 0-based index, optional id (a goto target), where it was written."""

    index: int
    where: str
    id: str | None = None
    name: str | None = None


@dataclass(frozen=True, kw_only=True)
class PowerStep(Step):
    action: Literal["on", "off", "cycle", "reset"]


@dataclass(frozen=True, kw_only=True)
class OnTimeout:
    action: Literal["fail", "continue", "goto", "retry"] = "fail"
    target: str | None = None
    count: int = 0


@dataclass(frozen=True, kw_only=True)
class ExpectStep(Step):
    patterns: tuple[bytes, ...]
    timeout: float
    on_timeout: OnTimeout


@dataclass(frozen=True, kw_only=True)
class SendStep(Step):
    data: bytes
    newline: bool


@dataclass(frozen=True, kw_only=True)
class SendSecretStep(Step):
    source: SecretRef
    secret: Secret | None  # None until resolved (load time, or plan(check_secrets=False))
    newline: bool


@dataclass(frozen=True, kw_only=True)
class XenInputStep(Step):
    target: Literal["hypervisor", "dom0"]


@dataclass(frozen=True, kw_only=True)
class DebugKeysStep(Step):
    keys: tuple[str, ...]
    allow_dangerous: bool
    quiet: float | None


@dataclass(frozen=True, kw_only=True)
class GrubStep(Step):
    mode: Literal["persistent", "oneshot"]
    profile: str
    entry: str | None


@dataclass(frozen=True, kw_only=True)
class MarkStep(Step):
    kind: Literal["start", "end", "event"]
    label: str


@dataclass(frozen=True, kw_only=True)
class SettleStep(Step):
    quiet: float
    timeout: float


@dataclass(frozen=True, kw_only=True)
class Fetch:
    remote: str
    save: str


@dataclass(frozen=True, kw_only=True)
class SshStep(Step):
    command: str
    timeout: float
    save: str
    check: bool
    require: tuple[str, ...]
    fetch: tuple[Fetch, ...]
    #: A pure analysis of the output recorded beside it (see ANALYZERS), e.g. "virt_mode".
    analyze: str | None = None


@dataclass(frozen=True, kw_only=True)
class VcpuPinStep(Step):
    """``xl vcpu-pin DOMAIN VCPU CPUS`` on Dom0, then ``xl vcpu-list DOMAIN`` must show it."""

    domain: str
    vcpu: int | None  # None: every vCPU ("all")
    cpus: str
    timeout: float


@dataclass(frozen=True)
class OutcomeRule:
    """Success if no step failed, no ``failure`` pattern was seen and (when given) a
    ``success`` pattern was seen in the console output of the run."""

    success: tuple[bytes, ...] = ()
    failure: tuple[bytes, ...] = ()


@dataclass(frozen=True)
class Runbook:
    """A validated runbook (steps resolved with the runbook's own defaults)."""

    name: str
    description: str
    path: str
    vars: Mapping[str, Scalar | None]
    death_strings: tuple[bytes, ...]  # regex sources
    steps: tuple[Step, ...]
    outcome: OutcomeRule
    doc: Doc = field(repr=False, compare=False)


@dataclass(frozen=True)
class HostPlan:
    """The runbook resolved for one host."""

    host: Host
    vars: Mapping[str, Scalar]
    steps: tuple[Step, ...]
    death_strings: tuple[bytes, ...]
    outcome: OutcomeRule
    needs: frozenset[str]  # subset of {"bmc", "console", "ssh"}


@dataclass(frozen=True)
class Plan:
    runbook: Runbook
    hosts: tuple[HostPlan, ...]


# --------------------------------------------------------------------------- reader


class _Reader:
    """Builds steps from the located document with a given set of variable values."""

    def __init__(
        self,
        doc: Doc,
        values: Mapping[str, Scalar | _Deferred],
        *,
        host: str | None,
        profile_dirs: Sequence[str | os.PathLike[str]] | None,
        env: Mapping[str, str] | None,
        resolve_secrets: bool,
        check_profiles: bool,
    ) -> None:
        self.doc = doc
        self.values = values
        self.host = host
        self.profile_dirs = profile_dirs
        self.env = env
        self.resolve_secrets = resolve_secrets
        self.check_profiles = check_profiles

    def error(self, key: Key, message: str, *, of_key: bool = False) -> LocatedConfigError:
        if self.host is not None:
            message = f"host {self.host}: {message}"
        return self.doc.error(key, message, of_key=of_key)

    # ---- variables

    def sub(self, raw: str, key: Key) -> str | _Deferred:
        """Interpolate ``${name}``; ``$${`` is a literal ``${``."""
        deferred = False
        out: list[str] = []
        pos = 0
        for m in _VAR_REF.finditer(raw):
            if m.start() > 0 and raw[m.start() - 1] == "$":
                out.append(raw[pos : m.start() - 1] + m.group(0))
                pos = m.end()
                continue
            name = m.group(1)
            if not _VAR_NAME.match(name):
                raise self.error(key, f"bad variable reference ${{{name}}}")
            if name not in self.values:
                known = ", ".join(sorted(self.values)) or "none"
                raise self.error(key, f"unknown variable ${{{name}}} (declared: {known})")
            value = self.values[name]
            if isinstance(value, _Deferred):
                deferred = True
                continue
            out.append(raw[pos : m.start()] + _scalar_text(value))
            pos = m.end()
        out.append(raw[pos:])
        return DEFERRED if deferred else "".join(out)

    def value(self, raw: Any, key: Key) -> Any:
        """A whole-string ``${x}`` keeps x's type; other strings are interpolated."""
        if isinstance(raw, str):
            whole = _VAR_REF.fullmatch(raw)
            if whole and _VAR_NAME.match(whole.group(1)) and whole.group(1) in self.values:
                return self.values[whole.group(1)]
            return self.sub(raw, key)
        return raw

    # ---- typed getters (DEFERRED passes through: checked again per host)

    def text(self, raw: Any, key: Key, *, empty_ok: bool = False) -> str | _Deferred:
        if isinstance(raw, bool) or not isinstance(raw, (str, int, float)):
            raise self.error(key, f"expected a string, got {kind_of(raw)}")
        value = self.value(raw, key) if isinstance(raw, str) else raw
        if isinstance(value, _Deferred):
            return value
        text = _scalar_text(value)
        if not text and not empty_ok:
            raise self.error(key, "must not be empty")
        return text

    def number(self, raw: Any, key: Key, *, low: float = 0.0, high: float = 86400.0) -> float:
        value = self.value(raw, key)
        if isinstance(value, _Deferred):
            return high  # placeholder; the per-host plan checks the real value
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                raise self.error(key, f"expected a number of seconds, got {value!r}") from None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.error(key, f"expected a number, got {kind_of(value)}")
        if not low <= float(value) <= high:
            raise self.error(key, f"{value} is out of range {low:g}..{high:g}")
        return float(value)

    def integer(self, raw: Any, key: Key, *, low: int, high: int) -> int:
        value = self.number(raw, key, low=low, high=high)
        if value != int(value):
            raise self.error(key, f"expected a whole number, got {value}")
        return int(value)

    def boolean(self, raw: Any, key: Key) -> bool:
        value = self.value(raw, key)
        if isinstance(value, _Deferred):
            return False
        if not isinstance(value, bool):
            raise self.error(key, f"expected true or false, got {kind_of(value)}")
        return value

    def regex(self, raw: Any, key: Key) -> bytes:
        value = self.text(raw, key)
        if isinstance(value, _Deferred):
            return b"(?!)"  # placeholder, replaced per host
        source = value.encode("utf-8")
        try:
            re.compile(source)
        except re.error as exc:
            raise self.error(key, f"bad regular expression {value!r}: {exc}") from exc
        return source

    def regex_list(self, raw: Any, key: Key) -> tuple[bytes, ...]:
        items = [raw] if isinstance(raw, str) else raw
        if not isinstance(items, list) or not items:
            raise self.error(key, f"expected a regex or a non-empty list, got {kind_of(raw)}")
        return tuple(self.regex(item, (*key, i)) for i, item in enumerate(items))

    def choice(self, raw: Any, key: Key, choices: Sequence[str]) -> str:
        value = self.text(raw, key)
        if isinstance(value, _Deferred):
            return choices[0]
        if value not in choices:
            raise self.error(key, f"expected one of {', '.join(choices)}, got {value!r}")
        return value

    def mapping(
        self, raw: Any, key: Key, allowed: frozenset[str], required: Sequence[str]
    ) -> dict[str, Any]:
        if not isinstance(raw, dict):
            raise self.error(key, f"expected a mapping, got {kind_of(raw)}")
        for name in raw:
            if name not in allowed:
                choices = ", ".join(sorted(allowed))
                raise self.error((*key, name), f"unknown field (allowed: {choices})", of_key=True)
        for name in required:
            if name not in raw:
                raise self.error(key, f"missing required field {name!r}")
        return raw

    # ---- steps

    def steps(self, raw: Any) -> tuple[Step, ...]:
        if not isinstance(raw, list) or not raw:
            raise self.error(("steps",), "expected a non-empty list of steps")
        steps = [self.step(item, i) for i, item in enumerate(raw)]
        ids: dict[str, int] = {}
        for step in steps:
            if step.id is not None:
                if step.id in ids:
                    raise self.error(("steps", step.index, "id"), f"id {step.id!r} is used twice")
                ids[step.id] = step.index
        for step in steps:
            if (
                isinstance(step, ExpectStep)
                and step.on_timeout.action == "goto"
                and step.on_timeout.target not in ids
            ):
                raise self.error(
                    ("steps", step.index, "expect", "on_timeout", "goto"),
                    f"no step with id {step.on_timeout.target!r}",
                )
        return tuple(steps)

    def step(self, raw: Any, index: int) -> Step:
        key: Key = ("steps", index)
        if not isinstance(raw, dict):
            raise self.error(
                key, f"a step is a mapping such as {{power: cycle}}, got {kind_of(raw)}"
            )
        actions = [name for name in raw if name not in _COMMON]
        for name in actions:
            if name == "sleep":
                raise self.error(
                    (*key, name),
                    "'sleep' is not offered: wait for output (expect) or for quiet (settle)",
                    of_key=True,
                )
            if name not in ACTIONS:
                raise self.error(
                    (*key, name), f"unknown step (known: {', '.join(ACTIONS)})", of_key=True
                )
        if len(actions) != 1:
            raise self.error(key, f"a step has exactly one action, got {len(actions)}")
        action = actions[0]
        pos = self.doc.pos(key)
        common: dict[str, Any] = {
            "index": index,
            "where": f"{self.doc.path}:{pos.line}" if pos else self.doc.path,
        }
        if "id" in raw:
            ident = raw["id"]
            if not isinstance(ident, str) or not _ID_RE.match(ident):
                raise self.error((*key, "id"), "an id is letters, digits, '.', '_' and '-'")
            common["id"] = ident
        if "name" in raw:
            name = self.text(raw["name"], (*key, "name"))
            common["name"] = None if isinstance(name, _Deferred) else name
        builder = getattr(self, f"_step_{action}")
        result: Step = builder(raw[action], (*key, action), common)
        return result

    def _step_power(self, raw: Any, key: Key, common: dict[str, Any]) -> Step:
        return PowerStep(action=self.choice(raw, key, ("on", "off", "cycle", "reset")), **common)  # type: ignore[arg-type]

    def _step_expect(self, raw: Any, key: Key, common: dict[str, Any]) -> Step:
        pkey: Key = (*key, "patterns")
        if isinstance(raw, (str, list)):
            raw, pkey = {"patterns": raw}, key
        body = self.mapping(
            raw, key, frozenset({"patterns", "timeout", "on_timeout"}), ["patterns"]
        )
        on_timeout = OnTimeout()
        if "on_timeout" in body:
            on_timeout = self._on_timeout(body["on_timeout"], (*key, "on_timeout"))
        return ExpectStep(
            patterns=self.regex_list(body["patterns"], pkey),
            timeout=self.number(body.get("timeout", 30), (*key, "timeout"), low=0.001),
            on_timeout=on_timeout,
            **common,
        )

    def _on_timeout(self, raw: Any, key: Key) -> OnTimeout:
        if isinstance(raw, str):
            action = self.choice(raw, key, ("fail", "continue"))
            return OnTimeout(action=action)  # type: ignore[arg-type]
        body = self.mapping(raw, key, frozenset({"goto", "retry"}), [])
        if len(body) != 1:
            raise self.error(key, "expected fail, continue, {goto: ID} or {retry: N}")
        if "goto" in body:
            target = self.text(body["goto"], (*key, "goto"))
            return OnTimeout(action="goto", target=str(target))
        count = self.integer(body["retry"], (*key, "retry"), low=1, high=100)
        return OnTimeout(action="retry", count=count)

    def _send(self, raw: Any, key: Key, common: dict[str, Any], newline: bool) -> Step:
        text = self.text(raw, key, empty_ok=True)
        data = b"" if isinstance(text, _Deferred) else text.encode("utf-8")
        return SendStep(data=data, newline=newline, **common)

    def _step_send(self, raw: Any, key: Key, common: dict[str, Any]) -> Step:
        return self._send(raw, key, common, False)

    def _step_sendline(self, raw: Any, key: Key, common: dict[str, Any]) -> Step:
        return self._send(raw, key, common, True)

    def _step_send_secret(self, raw: Any, key: Key, common: dict[str, Any]) -> Step:
        if isinstance(raw, str):
            raw = {"secret": raw}
        body = self.mapping(raw, key, frozenset({"secret", "newline"}), ["secret"])
        skey: Key = (*key, "secret")
        where = self._where(skey)
        text = self.text(body["secret"], skey)
        source = SecretRef("env", "_") if isinstance(text, _Deferred) else parse_secret(text, where)
        secret = None
        if self.resolve_secrets:
            try:
                secret = Secret(source.resolve(self.env).encode("utf-8"))
            except UsageError as exc:
                raise self.error(skey, exc.one_line()) from exc
        newline = self.boolean(body.get("newline", True), (*key, "newline"))
        return SendSecretStep(source=source, secret=secret, newline=newline, **common)

    def _where(self, key: Key) -> Where:
        pos = self.doc.pos(key)
        return Where(self.doc.path, pos, dotted(key))

    def _step_xen_input(self, raw: Any, key: Key, common: dict[str, Any]) -> Step:
        value = self.choice(raw, key, ("hypervisor", "xen", "dom0"))
        target = "hypervisor" if value == "xen" else value
        return XenInputStep(target=target, **common)  # type: ignore[arg-type]

    def _step_debug_keys(self, raw: Any, key: Key, common: dict[str, Any]) -> Step:
        kkey: Key = (*key, "keys")
        if isinstance(raw, (str, list)):
            raw, kkey = {"keys": raw}, key
        body = self.mapping(raw, key, frozenset({"keys", "allow_dangerous", "quiet"}), ["keys"])
        items = body["keys"]
        if isinstance(items, str):
            text = self.text(items, kkey)
            text = "h" if isinstance(text, _Deferred) else text
            items = [k.strip() for k in text.split(",") if k.strip()]
            located = False
        else:
            located = True
        if not isinstance(items, list) or not items:
            raise self.error(kkey, "expected debug keys such as [h, q] or 'h,q'")
        allow = self.boolean(body.get("allow_dangerous", False), (*key, "allow_dangerous"))
        keys: list[str] = []
        for i, item in enumerate(items):
            ikey = (*kkey, i) if located else kkey
            if not isinstance(item, str) or len(item) != 1:
                raise self.error(ikey, f"{item!r}: each debug key is one character")
            if (problem := key_problem(item)) is not None:
                raise self.error(ikey, problem)
            if item in DANGEROUS_KEYS and not allow:
                raise self.error(
                    ikey,
                    f"{item!r} changes the host's state (reboot/crash/NMI…); "
                    "set allow_dangerous: true on this step to press it",
                )
            keys.append(item)
        quiet = None
        if "quiet" in body:
            quiet = self.number(body["quiet"], (*key, "quiet"), low=0.01, high=600)
        return DebugKeysStep(keys=tuple(keys), allow_dangerous=allow, quiet=quiet, **common)

    def _step_grub(self, raw: Any, key: Key, common: dict[str, Any]) -> Step:
        body = self.mapping(raw, key, frozenset({"mode", "profile", "entry"}), ["mode", "profile"])
        mode = self.choice(body["mode"], (*key, "mode"), ("oneshot", "persistent"))
        pkey = (*key, "profile")
        profile = self.text(body["profile"], pkey)
        if isinstance(profile, _Deferred):
            profile = ""
        elif self.check_profiles:
            check_profile(profile, self._where(pkey), self.profile_dirs)
            if self.host is not None:
                self._check_profile_vars(profile, pkey)
        entry = None
        if "entry" in body:
            value = self.text(body["entry"], (*key, "entry"))
            entry = None if isinstance(value, _Deferred) else value
        return GrubStep(mode=mode, profile=profile, entry=entry, **common)  # type: ignore[arg-type]

    def _check_profile_vars(self, profile: str, key: Key) -> None:
        """The profile with this host's values for its ``[vars]`` (the runner passes the
        runbook variables of the same names), so a bad value fails here, before any traffic."""
        from solcap.profiles import load_profile

        given = {
            k: v
            for k, v in self.values.items()
            if isinstance(v, (int, str)) and not isinstance(v, bool)
        }
        try:
            load_profile(profile, self.profile_dirs, variables=given, strict=False)
        except UsageError as exc:
            raise self.error(key, f"profile {profile!r}: {exc.one_line()}") from exc

    def _step_mark(self, raw: Any, key: Key, common: dict[str, Any]) -> Step:
        if isinstance(raw, str):
            raw = {"event": raw}
        body = self.mapping(raw, key, frozenset({"start", "end", "event"}), [])
        if len(body) != 1:
            raise self.error(key, "expected one of {start: NAME}, {end: NAME}, {event: TEXT}")
        kind = next(iter(body))
        label = self.text(body[kind], (*key, kind))
        text = "" if isinstance(label, _Deferred) else label
        if kind != "event" and text and not _FILE_RE.match(text):
            raise self.error((*key, kind), f"{text!r}: a segment name is letters, digits, . _ -")
        return MarkStep(kind=kind, label=text, **common)  # type: ignore[arg-type]

    def _step_settle(self, raw: Any, key: Key, common: dict[str, Any]) -> Step:
        body = self.mapping(raw, key, frozenset({"quiet", "timeout"}), ["quiet", "timeout"])
        quiet = self.number(body["quiet"], (*key, "quiet"))
        timeout = self.number(body["timeout"], (*key, "timeout"))
        if timeout < quiet:
            raise self.error(
                (*key, "timeout"), f"timeout {timeout:g}s is shorter than quiet {quiet:g}s"
            )
        return SettleStep(quiet=quiet, timeout=timeout, **common)

    def _step_ssh(self, raw: Any, key: Key, common: dict[str, Any]) -> Step:
        if isinstance(raw, str):
            raw = {"command": raw}
        allowed = frozenset({"command", "timeout", "save", "check", "require", "fetch", "analyze"})
        body = self.mapping(raw, key, allowed, ["command"])
        command = self.text(body["command"], (*key, "command"))
        number = common["index"] + 1
        default_save = f"{common.get('id') or f'step{number:02d}'}.txt"
        save = self.text(body.get("save", default_save), (*key, "save"))
        if isinstance(save, str) and not _FILE_RE.match(save):
            raise self.error((*key, "save"), f"{save!r}: a file name in the recording, no '/'")
        require: list[str] = []
        if "require" in body:
            rkey = (*key, "require")
            items = body["require"]
            if not isinstance(items, list):
                raise self.error(rkey, "expected a list of command names")
            for i, item in enumerate(items):
                if not isinstance(item, str) or not re.fullmatch(r"[A-Za-z0-9._+-]+", item):
                    raise self.error((*rkey, i), f"{item!r} is not a command name")
                require.append(item)
        fetches: list[Fetch] = []
        if "fetch" in body:
            fkey = (*key, "fetch")
            items = body["fetch"]
            if not isinstance(items, list):
                raise self.error(fkey, "expected a list of remote paths or {remote, save}")
            for i, item in enumerate(items):
                ikey = (*fkey, i)
                if isinstance(item, str):
                    item = {"remote": item}
                spec = self.mapping(item, ikey, frozenset({"remote", "save"}), ["remote"])
                remote = self.text(spec["remote"], (*ikey, "remote"))
                remote_s = "" if isinstance(remote, _Deferred) else remote
                if remote_s and not remote_s.startswith("/"):
                    raise self.error((*ikey, "remote"), f"{remote_s!r}: use an absolute path")
                name = self.text(
                    spec.get("save", Path(remote_s).name or "fetched"), (*ikey, "save")
                )
                name_s = "fetched" if isinstance(name, _Deferred) else name
                if not _FILE_RE.match(name_s):
                    raise self.error((*ikey, "save"), f"{name_s!r}: a file name, no '/'")
                fetches.append(Fetch(remote=remote_s, save=name_s))
        analyze = None
        if "analyze" in body:
            analyze = self.choice(body["analyze"], (*key, "analyze"), ANALYZERS)
        return SshStep(
            analyze=analyze,
            command="" if isinstance(command, _Deferred) else command,
            timeout=self.number(body.get("timeout", 60), (*key, "timeout"), low=0.1),
            save="output.txt" if isinstance(save, _Deferred) else save,
            check=self.boolean(body.get("check", True), (*key, "check")),
            require=tuple(require),
            fetch=tuple(fetches),
            **common,
        )

    def _step_vcpu_pin(self, raw: Any, key: Key, common: dict[str, Any]) -> Step:
        allowed = frozenset({"domain", "vcpu", "cpus", "timeout"})
        body = self.mapping(raw, key, allowed, ["domain", "vcpu", "cpus"])
        domain = self.text(body["domain"], (*key, "domain"))
        if isinstance(domain, str) and not _DOMAIN_RE.match(domain):
            raise self.error(
                (*key, "domain"), f"{domain!r}: a domain name or id (letters, digits, . _ -)"
            )
        vkey: Key = (*key, "vcpu")
        vcpu_raw = self.value(body["vcpu"], vkey)
        vcpu: int | None = 0
        if isinstance(vcpu_raw, str) and vcpu_raw.isdigit():
            vcpu_raw = int(vcpu_raw)
        if vcpu_raw == "all":
            vcpu = None
        elif isinstance(vcpu_raw, int) and not isinstance(vcpu_raw, bool) and vcpu_raw >= 0:
            vcpu = vcpu_raw
        elif not isinstance(vcpu_raw, _Deferred):
            raise self.error(vkey, f"expected a vCPU number or 'all', got {vcpu_raw!r}")
        ckey: Key = (*key, "cpus")
        cpus = self.text(body["cpus"], ckey)
        if isinstance(cpus, str) and (problem := check_cpus(cpus)) is not None:
            raise self.error(ckey, problem)
        return VcpuPinStep(
            domain="" if isinstance(domain, _Deferred) else domain,
            vcpu=vcpu,
            cpus="" if isinstance(cpus, _Deferred) else cpus,
            timeout=self.number(body.get("timeout", 60), (*key, "timeout"), low=0.1),
            **common,
        )

    # ---- top level

    def death_strings(self, raw: Any) -> tuple[bytes, ...]:
        key: Key = ("death_strings",)
        if raw is None:
            return ()
        if not isinstance(raw, list):
            raise self.error(key, f"expected a list, got {kind_of(raw)}")
        out: list[bytes] = []
        for i, item in enumerate(raw):
            ikey = (*key, i)
            if isinstance(item, dict):
                body = self.mapping(item, ikey, frozenset({"regex"}), ["regex"])
                out.append(self.regex(body["regex"], (*ikey, "regex")))
            else:
                text = self.text(item, ikey)
                if not isinstance(text, _Deferred):
                    out.append(re.escape(text.encode("utf-8")))
        return tuple(out)

    def outcome(self, raw: Any) -> OutcomeRule:
        key: Key = ("outcome",)
        if raw is None:
            return OutcomeRule()
        body = self.mapping(raw, key, frozenset({"success", "failure"}), [])
        success = self.regex_list(body["success"], (*key, "success")) if "success" in body else ()
        failure = self.regex_list(body["failure"], (*key, "failure")) if "failure" in body else ()
        return OutcomeRule(success, failure)


def _scalar_text(value: Scalar) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value == int(value):
        return str(int(value))
    return str(value)


# --------------------------------------------------------------------------- loading


def _declared_vars(doc: Doc) -> dict[str, Scalar | None]:
    raw = doc.data.get("vars") if isinstance(doc.data, dict) else None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise doc.error(("vars",), f"expected a mapping of name: default, got {kind_of(raw)}")
    out: dict[str, Scalar | None] = {}
    for name, value in raw.items():
        if not _VAR_NAME.match(name):
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


def _build(reader: _Reader, doc: Doc, declared: Mapping[str, Scalar | None]) -> Runbook:
    data = doc.data
    name = data.get("name", Path(doc.path).stem)
    if not isinstance(name, str) or not _ID_RE.match(name):
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
    values: dict[str, Scalar | _Deferred] = {"host": "HOST"}
    for name, value in declared.items():
        values[name] = DEFERRED if value is None else value
    reader = _Reader(
        doc, values, host=None, profile_dirs=profile_dirs, env=None,
        resolve_secrets=False, check_profiles=check_profiles,
    )  # fmt: skip
    return _build(reader, doc, declared)


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


# --------------------------------------------------------------------------- planning


def _needs(steps: Sequence[Step]) -> dict[str, Step]:
    needs: dict[str, Step] = {}
    for step in steps:
        kinds: tuple[str, ...] = ()
        if isinstance(step, PowerStep):
            kinds = ("bmc",)
        elif isinstance(step, GrubStep):
            # One-shot drives GRUB's editor over the console (SOL or a serial line alike);
            # persistent edits the files on Dom0 over SSH. Neither needs the BMC itself.
            kinds = ("console",) if step.mode == "oneshot" else ("ssh",)
        elif isinstance(step, (SshStep, VcpuPinStep)):
            kinds = ("ssh",)
        elif not isinstance(step, MarkStep):
            kinds = ("console",)
        for kind in kinds:
            needs.setdefault(kind, step)
    return needs


def plan_host(
    runbook: Runbook,
    host: Host,
    *,
    overrides: Mapping[str, Scalar] | None = None,
    env: Mapping[str, str] | None = None,
    check_secrets: bool = True,
    profile_dirs: Sequence[str | os.PathLike[str]] | None = None,
    check_profiles: bool = True,
) -> HostPlan:
    """Resolve ``runbook`` for ``host``: defaults < host vars (< ``overrides``, e.g. --var).

    Only variables the runbook declares are taken from the host; a declared variable without
    a default must get a value here. Raises ConfigError at the runbook position concerned.
    """
    doc = runbook.doc
    values: dict[str, Scalar | _Deferred] = {}
    for name, default in runbook.vars.items():
        value: Scalar | None = default
        if name == "profile" and host.profile is not None:
            value = host.profile
        if name in host.vars:
            value = host.vars[name]
        if overrides and name in overrides:
            value = overrides[name]
        if value is None:
            raise doc.error(
                ("vars", name),
                f"host {host.name}: no value for variable {name!r} "
                "(set it in the host's inventory vars or with --var)",
                of_key=True,
            )
        values[name] = value
    values["host"] = host.name
    reader = _Reader(
        doc, values, host=host.name, profile_dirs=profile_dirs, env=env,
        resolve_secrets=check_secrets, check_profiles=check_profiles,
    )  # fmt: skip
    resolved = _build(reader, doc, runbook.vars)
    have = {
        "bmc": host.bmc is not None,
        "console": host.console_url is not None,
        "ssh": host.ssh is not None,
    }
    needs = _needs(resolved.steps)
    for kind, step in needs.items():
        if not have[kind]:
            what = {
                "bmc": "BMC (bmc:)",
                "console": "console (bmc: or serial:)",
                "ssh": "SSH target (ssh:)",
            }[kind]
            raise doc.error(
                ("steps", step.index),
                f"host {host.name} ({host.origin}) has no {what}, which this step needs",
            )
    final = {k: v for k, v in values.items() if not isinstance(v, _Deferred)}
    return HostPlan(
        host=host,
        vars=final,
        steps=resolved.steps,
        death_strings=resolved.death_strings,
        outcome=resolved.outcome,
        needs=frozenset(needs),
    )


def plan(
    runbook: Runbook,
    hosts: Sequence[Host],
    *,
    overrides: Mapping[str, Scalar] | None = None,
    env: Mapping[str, str] | None = None,
    check_secrets: bool = True,
    profile_dirs: Sequence[str | os.PathLike[str]] | None = None,
    check_profiles: bool = True,
) -> Plan:
    """A :class:`HostPlan` for every host; the first invalid host raises (nothing runs)."""
    if not hosts:
        raise UsageError("no hosts to run on")
    return Plan(
        runbook,
        tuple(
            plan_host(
                runbook,
                host,
                overrides=overrides,
                env=env,
                check_secrets=check_secrets,
                profile_dirs=profile_dirs,
                check_profiles=check_profiles,
            )
            for host in hosts
        ),
    )


# --------------------------------------------------------------------------- dry run


def _show_regex(source: bytes) -> str:
    return "/" + source.decode("utf-8", "backslashreplace") + "/"


def describe_step(step: Step) -> str:
    """One line for a person; secrets appear only as ``<redacted:N bytes>``."""
    if isinstance(step, PowerStep):
        return f"power {step.action}"
    if isinstance(step, ExpectStep):
        pats = " | ".join(_show_regex(p) for p in step.patterns)
        how: str = step.on_timeout.action
        if how == "goto":
            how = f"goto {step.on_timeout.target}"
        elif how == "retry":
            how = f"retry {step.on_timeout.count}×"
        return f"expect {pats} within {step.timeout:g}s; on timeout: {how}"
    if isinstance(step, SendStep):
        verb = "sendline" if step.newline else "send"
        return f"{verb} {step.data.decode('utf-8', 'backslashreplace')!r}"
    if isinstance(step, SendSecretStep):
        shown = str(step.secret) if step.secret is not None else "<redacted:unresolved>"
        return f"send_secret {step.source} {shown}" + (" + Enter" if step.newline else "")
    if isinstance(step, XenInputStep):
        return f"xen_input → {step.target}"
    if isinstance(step, DebugKeysStep):
        extra = " (dangerous keys allowed)" if step.allow_dangerous else ""
        return f"debug_keys {','.join(step.keys)}{extra}"
    if isinstance(step, GrubStep):
        entry = f" entry={step.entry!r}" if step.entry else ""
        return f"grub {step.mode} profile={step.profile}{entry}"
    if isinstance(step, MarkStep):
        return f"mark {step.kind} {step.label!r}"
    if isinstance(step, SettleStep):
        return f"settle quiet {step.quiet:g}s within {step.timeout:g}s"
    if isinstance(step, SshStep):
        parts = [f"ssh {step.command!r} → {step.save} (timeout {step.timeout:g}s"]
        parts.append(", exit status checked)" if step.check else ", exit status ignored)")
        if step.require:
            parts.append(f"; requires {', '.join(step.require)}")
        for fetch in step.fetch:
            parts.append(f"; fetch {fetch.remote} → {fetch.save}")
        if step.analyze:
            parts.append(f"; analyze {step.analyze}")
        return "".join(parts)
    if isinstance(step, VcpuPinStep):
        which = "all vCPUs" if step.vcpu is None else f"vCPU {step.vcpu}"
        return (
            f"vcpu_pin {step.domain} {which} → CPUs {step.cpus} "
            f"(xl vcpu-pin, checked with xl vcpu-list; timeout {step.timeout:g}s)"
        )
    return type(step).__name__


def render_plan(the_plan: Plan) -> str:
    """The ``--dry-run`` text: what would happen on each host, secrets redacted."""
    rb = the_plan.runbook
    lines = [f"runbook {rb.name} ({rb.path})"]
    if rb.description:
        lines.append(f"  {rb.description.splitlines()[0]}")
    for hp in the_plan.hosts:
        host = hp.host
        lines.append("")
        target = host.console_url or (host.ssh.url if host.ssh else "-")
        lines.append(f"host {host.name} [{target}] from {host.origin}")
        shown_vars = ", ".join(f"{k}={_scalar_text(v)}" for k, v in sorted(hp.vars.items()))
        lines.append(f"  vars: {shown_vars}")
        if hp.death_strings:
            lines.append("  death strings: " + ", ".join(_show_regex(d) for d in hp.death_strings))
        for step in hp.steps:
            label = f" [{step.id}]" if step.id else ""
            lines.append(f"  {step.index + 1:2d}.{label} {describe_step(step)}  ({step.where})")
        outcome = hp.outcome
        rule = "all steps succeed"
        if outcome.success:
            rule += " and one of " + " | ".join(_show_regex(p) for p in outcome.success) + " seen"
        if outcome.failure:
            rule += "; none of " + " | ".join(_show_regex(p) for p in outcome.failure)
        lines.append(f"  outcome: success if {rule}")
    return "\n".join(lines) + "\n"


def list_runbooks(directory: str | os.PathLike[str] | None = None) -> list[Path]:
    """The shipped runbooks (or those in ``directory``), sorted by name."""
    base = Path(directory) if directory is not None else BUILTIN_DIR
    return sorted(p for p in base.glob("*") if p.suffix in (".yaml", ".yml", ".toml"))


__all__ = [
    "ACTIONS", "ConfigError", "DebugKeysStep", "ExpectStep", "Fetch", "GrubStep", "HostPlan",
    "MarkStep", "OnTimeout", "OutcomeRule", "Plan", "PowerStep", "Runbook", "Secret",
    "SendSecretStep", "SendStep", "SettleStep", "SshStep", "Step", "VcpuPinStep", "XenInputStep",
    "describe_step", "list_runbooks", "load_runbook", "load_runbook_doc", "plan",
    "plan_host", "render_plan",
]  # fmt: skip
