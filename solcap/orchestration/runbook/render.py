"""The ``--dry-run`` text: each step in one line for a person, secrets redacted."""

from __future__ import annotations

from solcap.orchestration.runbook.model import (
    DebugKeysStep,
    ExpectStep,
    GrubStep,
    MarkStep,
    Plan,
    PowerStep,
    SendSecretStep,
    SendStep,
    SettleStep,
    SshStep,
    Step,
    VcpuPinStep,
    XenInputStep,
    scalar_text,
)


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
        shown_vars = ", ".join(f"{k}={scalar_text(v)}" for k, v in sorted(hp.vars.items()))
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
