"""``solcap run RUNBOOK``: run a runbook on one console or on inventory hosts, one by one.

Everything is loaded and planned (runbook, inventory, variables, secrets, profiles) before
any console, BMC or SSH traffic; ``--dry-run`` stops there and prints the plan, secrets shown
only as ``<redacted:N bytes>``. Each host then runs with
:func:`solcap.orchestration.runner.run_host` into its own recording, and one line per host says how
it went.

Exit status: 0 when every host is ``ok``; 3 when no host is (e.g. the single host failed);
4 when some are and some are not (partial success); 2 for bad input (nothing contacted).
"""

from __future__ import annotations

import argparse
import os
from typing import Any, TextIO

from solcap.capture.recording import safe_name
from solcap.commands import ipmiopts
from solcap.commands.argtypes import directory
from solcap.commands.fleet import add_fleet_options, refuse_fleet_options, run_fleet, select
from solcap.commands.ipmiopts import refuse_unless_ipmi, secret_refs
from solcap.commands.sshopts import add_ssh_options, inventory_target
from solcap.errors import ExitStatus, UsageError
from solcap.inventory import BmcAddress, Host, Scalar
from solcap.orchestration import fleet
from solcap.orchestration.outcomes import HostResult
from solcap.orchestration.runbook import HostPlan, PowerStep, load_runbook, plan, render_plan
from solcap.orchestration.runner import (
    bmc_power,
    bmc_sol_rate,
    open_host_console,
    open_host_ssh,
    run_host,
)
from solcap.transports.registry import host_name
from solcap.transports.serialport import LineSettings


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "run",
        help="run a runbook on a console or on inventory hosts (--dry-run prints the plan)",
        description="Run RUNBOOK (a file, or the name of a shipped runbook) on one console "
        "(--host) or on hosts of an inventory. Everything is validated before any traffic.",
    )
    parser.add_argument("runbook", metavar="RUNBOOK", help="path or shipped name (failed-boot…)")
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument(
        "--host", metavar="TARGET", help="console path or URL: /dev/ttyS0, /dev/pts/3, ipmi://…"
    )
    where.add_argument("--inventory", metavar="FILE", help="solcap or Ansible inventory")
    parser.add_argument(
        "--limit", action="append", default=[], metavar="GLOB", help="host name glob (repeat)"
    )
    parser.add_argument(
        "--label", action="append", default=[], metavar="L", help="hosts with this label (repeat)"
    )
    parser.add_argument("--shard", metavar="i/N", help="only this share of the hosts (by name)")
    parser.add_argument(
        "--var", action="append", default=[], metavar="K=V", help="override a runbook variable"
    )
    parser.add_argument("--dry-run", action="store_true", help="print the plan; contact nothing")
    parser.add_argument("--root", type=directory(), help="recordings root (default: ./recordings)")
    single = parser.add_argument_group("with --host")
    single.add_argument("--name", help="host name for the recording (default: from TARGET)")
    single.add_argument("--line", default="38400,8n1", help="serial line settings")
    single.add_argument("--ssh", metavar="URL", help="Dom0 for ssh steps: ssh://user@host[:port]")
    add_ssh_options(
        parser,
        passwords=False,
        accept_new_host_key=False,
        title="with --host --ssh (host keys verified; inventory hosts set these per host)",
    )
    ipmiopts.add_ipmi_options(
        parser, title="with --host ipmi://… (console and power; inventory hosts set these per host)"
    )
    add_fleet_options(parser, inventory=False, selection=False)
    parser.set_defaults(func=cmd_run)


def parse_var(text: str) -> tuple[str, Scalar]:
    """``k=v`` with YAML-1.2-like typing: integers, decimals and true/false keep their type."""
    name, sep, value = text.partition("=")
    if not sep or not name.strip():
        raise UsageError(f"--var {text!r}: expected NAME=VALUE")
    typed: Scalar = value
    if value in ("true", "false"):
        typed = value == "true"
    else:
        try:
            typed = int(value, 10)
        except ValueError:
            try:
                typed = float(value)
            except ValueError:
                typed = value
    return name.strip(), typed


def _single_host(args: argparse.Namespace) -> Host:
    """The host ``--host TARGET`` names. An ``ipmi://`` console is also that BMC: ``power``
    steps use it, with the same credentials (``--password-file``/``$IPMI_PASSWORD``, …)."""
    target: str = args.host
    name = safe_name(args.name) if args.name else host_name(target)
    ssh = inventory_target(args, args.ssh, "--ssh") if args.ssh else None
    if target.lower().startswith("ipmi://"):
        from solcap.transports.ipmi import IpmiTarget  # checks the address; loads pyghmi

        bmc = IpmiTarget.parse(target)
        password, kg = secret_refs(args)
        return Host(
            name=name,
            origin="--host",
            bmc=BmcAddress(host=bmc.host, user=bmc.user, port=bmc.port),
            password=password,
            kg=kg,
            cipher=bmc.cipher,
            ssh=ssh,
        )
    refuse_unless_ipmi(args, target)
    return Host(
        name=name,
        origin="--host",
        serial=target,
        line=LineSettings.parse(args.line),
        ssh=ssh,
    )


def _hosts(args: argparse.Namespace) -> list[Host]:
    if args.host is not None:
        if args.limit or args.label or args.shard:
            raise UsageError("--limit, --label and --shard select inventory hosts; use --inventory")
        return [_single_host(args)]
    for option in ("name", "ssh", "ssh_key", "known_hosts", "password_file", "kg_file"):
        if getattr(args, option):
            flag = "--" + option.replace("_", "-")
            raise UsageError(f"{flag} applies to --host; set it in the inventory instead")
    return select(args, args.label)


def _check_capabilities(plans: tuple[HostPlan, ...]) -> None:
    """Refuse before any traffic what this run could not do on some host."""
    for hp in plans:
        for step in hp.steps:
            if isinstance(step, PowerStep) and hp.host.bmc is None:
                raise UsageError(
                    f"{hp.host.name}: step {step.index + 1} ({step.where}) needs power control, "
                    "which only a BMC gives: --host ipmi://user@bmc, or an inventory host "
                    "with a bmc: address"
                )


def _line(outcome: HostResult) -> str:
    state = outcome.outcome.upper() if outcome.outcome != "ok" else "ok"
    text = f"{outcome.name}: {state} in {outcome.duration:.1f}s, {outcome.bytes} bytes"
    text += f", recording {outcome.recording}" if outcome.recording else ", nothing recorded"
    if outcome.error:
        text += f"\n  {outcome.error}"
    return text


def cmd_run(args: argparse.Namespace, out: TextIO) -> int:
    runbook = load_runbook(args.runbook)
    overrides = dict(parse_var(v) for v in args.var)
    unknown = sorted(set(overrides) - set(runbook.vars))
    if unknown:
        declared = ", ".join(sorted(runbook.vars)) or "none"
        raise UsageError(
            f"--var {', '.join(unknown)}: not a variable of runbook {runbook.name} "
            f"(declared: {declared})"
        )
    if args.host is not None:
        refuse_fleet_options(args, "run")
    hosts = _hosts(args)
    if not hosts:
        print(f"{args.retry_failed}: every host was ok; nothing to retry", file=out)
        return ExitStatus.OK
    the_plan = plan(runbook, hosts, overrides=overrides, env=os.environ)
    if args.dry_run:
        out.write(render_plan(the_plan))
        return ExitStatus.OK
    _check_capabilities(the_plan.hosts)
    if args.inventory is not None:
        # Inventory runs go through the fleet: --parallel, --host-timeout, progress, summary.
        job = fleet.runbook_job(the_plan.hosts, runbook_name=runbook.name)
        meta = {"kind": "run", "runbook": runbook.name}
        return run_fleet(args, hosts, job, out, label=runbook.name, meta=meta)
    outcomes: list[HostResult] = []
    for hp in the_plan.hosts:
        outcome = run_host(
            hp,
            console_factory=open_host_console,
            power=bmc_power if hp.host.bmc is not None else None,
            ssh_factory=open_host_ssh if hp.host.ssh is not None else None,
            recordings_root=args.root,
            runbook_name=runbook.name,
            sol_rate=bmc_sol_rate,
        )
        outcomes.append(outcome)
        print(_line(outcome), file=out, flush=True)
    good = sum(1 for o in outcomes if o.ok)
    if len(outcomes) > 1:
        print(f"{good} of {len(outcomes)} hosts ok", file=out)
    if good == len(outcomes):
        return ExitStatus.OK
    return ExitStatus.PARTIAL if good else ExitStatus.TARGET
