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

The package: :mod:`.model` (steps, rules, plans), :mod:`.reader` (every field checked and
built), :mod:`.load` (:func:`load_runbook`, the shipped runbooks), :mod:`.planning` (per host) and
:mod:`.render` (the ``--dry-run`` text). Everything public is imported here, so
``from solcap.orchestration.runbook import load_runbook`` keeps working. Execution (driving a
Console, power, GRUB and SSH from a :class:`Plan`) is :mod:`solcap.orchestration.runner`.
"""

from __future__ import annotations

from solcap.errors import ConfigError
from solcap.orchestration.runbook.load import (
    BUILTIN_DIR,
    list_runbooks,
    load_runbook,
    load_runbook_doc,
)
from solcap.orchestration.runbook.model import (
    ACTIONS,
    ANALYZERS,
    BUILTIN_VARS,
    DEFERRED,
    DebugKeysStep,
    ExpectStep,
    Fetch,
    GrubStep,
    HostPlan,
    MarkStep,
    OnTimeout,
    OutcomeRule,
    Plan,
    PowerStep,
    Runbook,
    Secret,
    SendSecretStep,
    SendStep,
    SettleStep,
    SshStep,
    Step,
    VcpuPinStep,
    XenInputStep,
)
from solcap.orchestration.runbook.planning import plan, plan_host
from solcap.orchestration.runbook.render import describe_step, render_plan

__all__ = [
    "ACTIONS", "ANALYZERS", "BUILTIN_DIR", "BUILTIN_VARS", "DEFERRED", "ConfigError",
    "DebugKeysStep", "ExpectStep", "Fetch", "GrubStep", "HostPlan", "MarkStep", "OnTimeout",
    "OutcomeRule", "Plan", "PowerStep", "Runbook", "Secret", "SendSecretStep", "SendStep",
    "SettleStep", "SshStep", "Step", "VcpuPinStep", "XenInputStep", "describe_step",
    "list_runbooks", "load_runbook", "load_runbook_doc", "plan", "plan_host", "render_plan",
]  # fmt: skip
