"""Planning: a runbook resolved for each host, and checked against what the host has.

Inventory vars override the runbook's defaults (``--var`` overrides both); a host without
the BMC, console or SSH target a step needs is refused here, with the step's position —
still without contacting anything.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from solcap.errors import UsageError
from solcap.inventory import Host, Scalar
from solcap.orchestration.runbook.load import build_runbook
from solcap.orchestration.runbook.model import (
    Deferred,
    GrubStep,
    HostPlan,
    MarkStep,
    Plan,
    PowerStep,
    Runbook,
    SshStep,
    Step,
    VcpuPinStep,
)
from solcap.orchestration.runbook.reader import Reader


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
    values: dict[str, Scalar | Deferred] = {}
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
    reader = Reader(
        doc, values, host=host.name, profile_dirs=profile_dirs, env=env,
        resolve_secrets=check_secrets, check_profiles=check_profiles,
    )  # fmt: skip
    resolved = build_runbook(reader, doc, runbook.vars)
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
    final = {k: v for k, v in values.items() if not isinstance(v, Deferred)}
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
