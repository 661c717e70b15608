"""The runbook reader: every step's fields checked and built, with ``${var}`` interpolated.

One :class:`Reader` is made per document and set of variable values — once at load time
(each declared variable at its default, those without one deferred) and once per host at
plan time (inventory vars filled in, secrets resolved). Every error is a
:class:`~solcap.config.docload.LocatedConfigError` at the field concerned, prefixed with the host
when there is one.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from solcap.config.docload import Doc, Key, LocatedConfigError, dotted, kind_of
from solcap.config.limits import key_problem
from solcap.errors import UsageError
from solcap.inventory import Scalar, SecretRef, Where, check_profile, parse_secret
from solcap.orchestration.runbook.model import (
    ACTIONS,
    ANALYZERS,
    DEFERRED,
    NAME_RE,
    VAR_NAME,
    VAR_REF,
    DebugKeysStep,
    Deferred,
    ExpectStep,
    Fetch,
    GrubStep,
    MarkStep,
    OnTimeout,
    OutcomeRule,
    PowerStep,
    Secret,
    SendSecretStep,
    SendStep,
    SettleStep,
    SshStep,
    Step,
    VcpuPinStep,
    XenInputStep,
    scalar_text,
)
from solcap.xen.console import DANGEROUS_KEYS
from solcap.xen.vcpu import check_cpus

_COMMON = frozenset({"id", "name"})
_FILE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_DOMAIN_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class Reader:
    """Builds steps from the located document with a given set of variable values."""

    def __init__(
        self,
        doc: Doc,
        values: Mapping[str, Scalar | Deferred],
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

    def sub(self, raw: str, key: Key) -> str | Deferred:
        """Interpolate ``${name}``; ``$${`` is a literal ``${``."""
        deferred = False
        out: list[str] = []
        pos = 0
        for m in VAR_REF.finditer(raw):
            if m.start() > 0 and raw[m.start() - 1] == "$":
                out.append(raw[pos : m.start() - 1] + m.group(0))
                pos = m.end()
                continue
            name = m.group(1)
            if not VAR_NAME.match(name):
                raise self.error(key, f"bad variable reference ${{{name}}}")
            if name not in self.values:
                known = ", ".join(sorted(self.values)) or "none"
                raise self.error(key, f"unknown variable ${{{name}}} (declared: {known})")
            value = self.values[name]
            if isinstance(value, Deferred):
                deferred = True
                continue
            out.append(raw[pos : m.start()] + scalar_text(value))
            pos = m.end()
        out.append(raw[pos:])
        return DEFERRED if deferred else "".join(out)

    def value(self, raw: Any, key: Key) -> Any:
        """A whole-string ``${x}`` keeps x's type; other strings are interpolated."""
        if isinstance(raw, str):
            whole = VAR_REF.fullmatch(raw)
            if whole and VAR_NAME.match(whole.group(1)) and whole.group(1) in self.values:
                return self.values[whole.group(1)]
            return self.sub(raw, key)
        return raw

    # ---- typed getters (DEFERRED passes through: checked again per host)

    def text(self, raw: Any, key: Key, *, empty_ok: bool = False) -> str | Deferred:
        if isinstance(raw, bool) or not isinstance(raw, (str, int, float)):
            raise self.error(key, f"expected a string, got {kind_of(raw)}")
        value = self.value(raw, key) if isinstance(raw, str) else raw
        if isinstance(value, Deferred):
            return value
        text = scalar_text(value)
        if not text and not empty_ok:
            raise self.error(key, "must not be empty")
        return text

    def number(self, raw: Any, key: Key, *, low: float = 0.0, high: float = 86400.0) -> float:
        value = self.value(raw, key)
        if isinstance(value, Deferred):
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
        if isinstance(value, Deferred):
            return False
        if not isinstance(value, bool):
            raise self.error(key, f"expected true or false, got {kind_of(value)}")
        return value

    def regex(self, raw: Any, key: Key) -> bytes:
        value = self.text(raw, key)
        if isinstance(value, Deferred):
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
        if isinstance(value, Deferred):
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
            if not isinstance(ident, str) or not NAME_RE.match(ident):
                raise self.error((*key, "id"), "an id is letters, digits, '.', '_' and '-'")
            common["id"] = ident
        if "name" in raw:
            name = self.text(raw["name"], (*key, "name"))
            common["name"] = None if isinstance(name, Deferred) else name
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
        data = b"" if isinstance(text, Deferred) else text.encode("utf-8")
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
        source = SecretRef("env", "_") if isinstance(text, Deferred) else parse_secret(text, where)
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
            text = "h" if isinstance(text, Deferred) else text
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
        if isinstance(profile, Deferred):
            profile = ""
        elif self.check_profiles:
            check_profile(profile, self._where(pkey), self.profile_dirs)
            if self.host is not None:
                self._check_profile_vars(profile, pkey)
        entry = None
        if "entry" in body:
            value = self.text(body["entry"], (*key, "entry"))
            entry = None if isinstance(value, Deferred) else value
        return GrubStep(mode=mode, profile=profile, entry=entry, **common)  # type: ignore[arg-type]

    def _check_profile_vars(self, profile: str, key: Key) -> None:
        """The profile with this host's values for its ``[vars]`` (the runner passes the
        runbook variables of the same names), so a bad value fails here, before any traffic."""
        from solcap.boot.profiles import load_profile

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
        text = "" if isinstance(label, Deferred) else label
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
                remote_s = "" if isinstance(remote, Deferred) else remote
                if remote_s and not remote_s.startswith("/"):
                    raise self.error((*ikey, "remote"), f"{remote_s!r}: use an absolute path")
                name = self.text(
                    spec.get("save", Path(remote_s).name or "fetched"), (*ikey, "save")
                )
                name_s = "fetched" if isinstance(name, Deferred) else name
                if not _FILE_RE.match(name_s):
                    raise self.error((*ikey, "save"), f"{name_s!r}: a file name, no '/'")
                fetches.append(Fetch(remote=remote_s, save=name_s))
        analyze = None
        if "analyze" in body:
            analyze = self.choice(body["analyze"], (*key, "analyze"), ANALYZERS)
        return SshStep(
            analyze=analyze,
            command="" if isinstance(command, Deferred) else command,
            timeout=self.number(body.get("timeout", 60), (*key, "timeout"), low=0.1),
            save="output.txt" if isinstance(save, Deferred) else save,
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
        elif not isinstance(vcpu_raw, Deferred):
            raise self.error(vkey, f"expected a vCPU number or 'all', got {vcpu_raw!r}")
        ckey: Key = (*key, "cpus")
        cpus = self.text(body["cpus"], ckey)
        if isinstance(cpus, str) and (problem := check_cpus(cpus)) is not None:
            raise self.error(ckey, problem)
        return VcpuPinStep(
            domain="" if isinstance(domain, Deferred) else domain,
            vcpu=vcpu,
            cpus="" if isinstance(cpus, Deferred) else cpus,
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
                if not isinstance(text, Deferred):
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
