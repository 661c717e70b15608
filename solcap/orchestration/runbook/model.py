"""The runbook's data: steps, rules, the validated :class:`Runbook` and its per-host plans.

Nothing here reads a file or checks a value; :mod:`.reader` builds these objects from a
located document and :mod:`.planning` resolves them for a host. The names and patterns the
reader and the loader share (variable references, runbook and step names) live here so
neither imports the other's private parts.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from solcap.config.docload import Doc
from solcap.inventory import Host, Scalar, SecretRef

ACTIONS = (
    "power", "expect", "send", "sendline", "send_secret", "xen_input", "debug_keys",
    "grub", "mark", "settle", "ssh", "vcpu_pin",
)  # fmt: skip
#: ``${name}`` in a runbook string (``$${`` is a literal ``${``).
VAR_REF = re.compile(r"\$\{([^}]*)\}")
#: A variable name.
VAR_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
#: A runbook name or a step id.
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
BUILTIN_VARS = ("host",)
#: Analyses an ``ssh`` step can apply to its output: ``virt_mode`` → solcap.xen.virtmode.classify.
ANALYZERS = ("virt_mode",)


class Deferred:
    """A variable with no default: its value comes from the inventory, per host."""

    def __repr__(self) -> str:
        return "<deferred>"


DEFERRED = Deferred()


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


def scalar_text(value: Scalar) -> str:
    """A variable's value as it reads inside a string: ``true``/``false``, ``900`` not ``900.0``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value == int(value):
        return str(int(value))
    return str(value)
