"""Run a planned runbook on one host: console, power, GRUB and SSH steps into one recording.

:func:`run_host` takes a :class:`~solcap.orchestration.runbook.HostPlan` (already validated and
resolved, see
:func:`solcap.orchestration.runbook.plan`) and walks its steps. Everything that talks to the outside
is injected, so the same engine runs against real hosts, the virtual lab and test doubles:

``console_factory(host, recording, death_strings=…)``
    opens and *starts* a :class:`~solcap.console.core.Console`, then calls ``recording()`` (which
    creates the run's :class:`~solcap.capture.recording.Recording`) and makes its sink
    ``recording.feed``, so the recording holds every byte from the first one and a host whose
    console cannot be opened leaves no recording behind. It receives the runbook's death
    strings because a Console takes them in its constructor (they must be watched from the
    first byte, not only while a step waits). :func:`open_host_console` is the default for
    real hosts (:func:`solcap.connect.open_console`: reconnecting over SOL, so a step waiting
    when the link drops keeps waiting through the reconnection, its timeout still counting).
``power(host, action)``
    ``on`` / ``off`` / ``cycle`` / ``reset`` (a BMC, a PDU, or the virtual host's methods).
``ssh_factory(host)``
    a logged-in :class:`~solcap.transports.ssh.SshConnection` to the host's Dom0 (opened on first
    use).
``grub_oneshot(console, profile, entry)``
    the one-shot GRUB edit over the console (default: :func:`solcap.grub.menu.apply_oneshot`).
``grub_layout``
    where a ``grub: {mode: persistent}`` step finds GRUB's files on Dom0 (default: the real
    ``/etc/default/grub`` and friends, regenerated with the host's own tool); the step's
    ``entry`` overrides its entry pattern.

Outcomes (one :class:`~solcap.orchestration.outcomes.HostResult` per host, never a traceback), the
vocabulary of :mod:`solcap.orchestration.outcomes`:

``ok``      every step succeeded and the runbook's ``outcome`` rule holds;
``failed``  the far side did not do what the runbook expects: the console or SSH could not be
            opened or went away for good, a wait timed out, a death string appeared (the
            error quotes the line), a Dom0 command failed or is not installed, a ``failure``
            pattern was printed or no ``success`` pattern was;
``error``   solcap could not carry the run out locally: the recording failed, a needed
            capability (power control, GRUB one-shot editing) was not provided, the inventory
            lacks a reference, or solcap itself hit a bug.

Secrets (``send_secret``) are sent as bytes and appear in events, messages and the outcome only
as ``<redacted:N bytes>``; any error text that happens to quote one (e.g. a timeout showing the
console's last bytes, where the host echoed it) is scrubbed. What the host itself prints —
an echo of a typed secret included — is console output and stays in ``console.raw``/
``console.log`` byte for byte: hiding it is the host's business (a no-echo prompt).

:func:`run_host` keeps no global state and shares nothing between calls, so a fleet runner can
call it from several threads at once (one host per call).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shlex
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, is_dataclass, replace
from io import StringIO
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

from solcap.boot.profiles import Profile, load_profile
from solcap.capture.recording import Recording
from solcap.connect import ConsoleSpec, RecordingFactory, bmc_sources, open_console
from solcap.console.core import EOF, TIMEOUT, Console
from solcap.errors import (
    ConsoleClosed,
    ExpectTimeout,
    SolcapError,
    TargetError,
    UsageError,
)
from solcap.inventory import Host
from solcap.orchestration import outcomes
from solcap.orchestration.outcomes import HostResult, Outcome, one_line
from solcap.orchestration.runbook import (
    DebugKeysStep,
    ExpectStep,
    GrubStep,
    HostPlan,
    MarkStep,
    OutcomeRule,
    PowerStep,
    SendSecretStep,
    SendStep,
    SettleStep,
    SshStep,
    Step,
    VcpuPinStep,
    XenInputStep,
    describe_step,
)
from solcap.transports.ssh import SshConnection, SshTarget, connect
from solcap.xen.console import XenConsole, refuse_dangerous
from solcap.xen.parsers import parse_dump
from solcap.xen.virtmode import classify

if TYPE_CHECKING:
    from solcap.grub.remote import RemoteLayout

__all__ = [
    "ConsoleFactory",
    "GrubOneshot",
    "bmc_power",
    "bmc_sol_rate",
    "default_grub_oneshot",
    "host_ssh_target",
    "open_host_console",
    "open_host_ssh",
    "run_host",
]

#: Default bound on ``on_timeout: {goto: …}`` jumps in one run (a loop must end somewhere).
MAX_JUMPS = 100
#: Quiet period for debug keys when the step gives none.
DEFAULT_KEY_QUIET = 1.0
_SCAN_CHUNK = 1 << 20
_SCAN_OVERLAP = 1 << 16


class ConsoleFactory(Protocol):
    """Open and start a console for ``host``, then create ``recording()`` as its sink."""

    def __call__(
        self,
        host: Host,
        recording: RecordingFactory,
        *,
        death_strings: Sequence[re.Pattern[bytes]],
    ) -> Console: ...


#: ``grub_oneshot(console, profile, entry_regex_or_None)`` edits the entry once and boots it.
GrubOneshot = Callable[[Console, Profile, str | None], object]


class _StepFailed(TargetError):
    """A step did not get what it waited for (a runbook-level failure, not a transport one)."""


# --------------------------------------------------------------------------- defaults


def open_host_console(
    host: Host,
    recording: RecordingFactory,
    *,
    death_strings: Sequence[re.Pattern[bytes]] = (),
) -> Console:
    """The console factory for real hosts (see :func:`solcap.connect.ConsoleSpec.from_host`):
    ``console``/``via``, else the serial device/URL, else the BMC's SOL, reconnecting where
    the scheme allows; the SOL bit rate is checked against the host's profile.

    A BMC console gets its password from the inventory's reference (``env:``/``file:``), never
    from a prompt, so unattended fleet runs cannot hang on one.
    """
    if host.console_url is None:
        raise UsageError(f"{host.name}: no console (serial: or bmc:) in the inventory")
    spec = ConsoleSpec.from_host(host)
    return open_console(spec, recording=recording, death_strings=death_strings)


def bmc_sol_rate(host: Host) -> int | None:
    """The ``sol_rate`` callable for real hosts: the BMC's SOL bit rate, None if unknown.

    Only a host whose console *is* the BMC's SOL is asked (a serial console's rate is the
    line's own, not the BMC's); a BMC that does not answer the query gives None.
    """
    if host.bmc is None or host.console_url != host.bmc.url or host.password is None:
        return None
    from solcap.transports.bmc import sol_config

    try:
        password, kg = bmc_sources(host)
        config = sol_config(_bmc_url(host), password_source=password, kg=kg)
    except SolcapError:
        return None
    return config.bit_rate


def _bmc_url(host: Host) -> str:
    url = host.bmc_url
    if url is None:
        raise UsageError(f"{host.name}: the inventory gives no bmc: address")
    return url


def bmc_power(host: Host, action: str) -> None:
    """The ``power`` callable for real hosts: chassis control through the host's BMC."""
    from solcap.transports.bmc import power

    password, kg = bmc_sources(host)
    power(_bmc_url(host), action, password_source=password, kg=kg)


def host_ssh_target(host: Host) -> SshTarget:
    """The :class:`solcap.transports.ssh.SshTarget` for an inventory host's ``ssh:`` entry.

    Host keys are verified against the inventory's ``known_hosts`` file (or the system and
    user files); a run never accepts a new key on its own.
    """
    if host.ssh is None:
        raise UsageError(f"{host.name}: the inventory gives no ssh: target for Dom0")
    ssh = host.ssh
    return SshTarget(
        host=ssh.host,
        user=ssh.user or os.environ.get("USER", "root"),
        port=ssh.port,
        key_file=ssh.key_file,
        known_hosts=ssh.known_hosts,
    )


def open_host_ssh(host: Host) -> SshConnection:
    """The SSH factory for real hosts: log in to the inventory's Dom0 target."""
    return connect(host_ssh_target(host))


def default_grub_oneshot(console: Console, profile: Profile, entry: str | None) -> object:
    """:func:`solcap.grub.menu.apply_oneshot` with its defaults (imported on first use: the
    GRUB menu stack is only loaded by runs that edit GRUB)."""
    from solcap.grub.menu import apply_oneshot

    if entry is None:
        return apply_oneshot(console, profile)
    return apply_oneshot(console, profile, entry=entry)


# --------------------------------------------------------------------------- the run


class _Redactor:
    """Scrubs the plan's secrets out of any text solcap writes or shows."""

    def __init__(self, steps: Sequence[Step]) -> None:
        forms: set[str] = set()
        for step in steps:
            if isinstance(step, SendSecretStep) and step.secret is not None and step.secret.value:
                value = step.secret.value
                forms.add(value.decode("utf-8", "replace"))
                forms.add(repr(value)[2:-1])  # as it shows inside a bytes repr
        self._forms = sorted((f for f in forms if f), key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for form in self._forms:
            text = text.replace(form, "<redacted>")
        return text


class _Run:
    """One host's run: state shared by the steps (console, SSH, marks, jump count)."""

    def __init__(
        self,
        hp: HostPlan,
        recording: RecordingFactory,
        *,
        console_factory: ConsoleFactory | None,
        power: Callable[[Host, str], None] | None,
        ssh_factory: Callable[[Host], SshConnection] | None,
        grub_oneshot: GrubOneshot | None,
        profile_dirs: Sequence[str | os.PathLike[str]] | None,
        max_jumps: int,
        grub_layout: RemoteLayout | None = None,
        sol_rate: Callable[[Host], int | None] | None = None,
    ) -> None:
        self.hp = hp
        self.host = hp.host
        self._make_recording = recording
        self.recording: Recording | None = None
        self.console_factory = console_factory
        self.power_fn = power
        self.ssh_factory = ssh_factory
        self.grub_oneshot = grub_oneshot
        self.grub_layout = grub_layout
        self.profile_dirs = profile_dirs
        self.max_jumps = max_jumps
        self.redact = _Redactor(hp.steps)
        self.console: Console | None = None
        self.xen: XenConsole | None = None
        self.ssh: SshConnection | None = None
        self.marks: dict[str, int] = {}
        self.saved: set[str] = set()
        self.jumps = 0
        self.sol_rate = sol_rate
        self._bmc_rate: tuple[int | None] | None = None  # cached: one SOL query per run

    # -- lifecycle

    def open_console(self) -> None:
        if self.console_factory is None:
            raise UsageError(f"{self.host.name}: this runbook needs a console; none was given")
        deaths = [re.compile(source) for source in self.hp.death_strings]
        self.console = self.console_factory(self.host, self._recording, death_strings=deaths)
        self.xen = XenConsole(self.console)

    def _recording(self) -> Recording:
        """Create the run's recording (once): after the console opened, or at the first event
        of a run without a console."""
        if self.recording is None:
            self.recording = self._make_recording()
        return self.recording

    @property
    def rec(self) -> Recording:
        return self._recording()

    def close(self) -> None:
        if self.console is not None:
            with contextlib.suppress(Exception):
                self.console.close()
        if self.ssh is not None:
            with contextlib.suppress(Exception):
                self.ssh.close()

    def con(self) -> Console:
        if self.console is None:
            raise UsageError(f"{self.host.name}: a console step ran without a console")
        return self.console

    def event(self, kind: str, **fields: Any) -> None:
        clean = {k: self.redact(v) if isinstance(v, str) else v for k, v in fields.items()}
        self.rec.event(kind, **clean)

    # -- walking the steps

    def run_steps(self) -> None:
        steps = self.hp.steps
        ids = {s.id: i for i, s in enumerate(steps) if s.id is not None}
        retries: dict[int, int] = {}
        i = 0
        while i < len(steps):
            step = steps[i]
            self.event(
                "step",
                index=step.index + 1,
                action=_action(step),
                id=step.id,
                name=step.name,
                describe=describe_step(step),
                where=step.where,
            )
            if isinstance(step, ExpectStep):
                how, target = self.expect(step, retries)
                if how == "retry":
                    continue
                if how == "goto" and target is not None:
                    self.jumps += 1
                    if self.jumps > self.max_jumps:
                        raise _StepFailed(
                            self.host.name,
                            f"step {step.index + 1} ({step.where}): more than "
                            f"{self.max_jumps} goto jumps in this run; giving up",
                        )
                    i = ids[target]
                    continue
            else:
                self.run_step(step)
            i += 1

    def run_step(self, step: Step) -> None:
        if isinstance(step, PowerStep):
            self.power(step)
        elif isinstance(step, SendStep):
            data = step.data + (b"\r" if step.newline else b"")
            self.con().send(data)
            self.event("send", data=data.decode("utf-8", "backslashreplace"))
        elif isinstance(step, SendSecretStep):
            self.send_secret(step)
        elif isinstance(step, XenInputStep):
            self.xen_input(step)
        elif isinstance(step, DebugKeysStep):
            self.debug_keys(step)
        elif isinstance(step, GrubStep):
            self.grub(step)
        elif isinstance(step, MarkStep):
            self.mark(step)
        elif isinstance(step, SettleStep):
            self.con().settle(step.quiet, step.timeout)
            self.event("settled", quiet=step.quiet)
        elif isinstance(step, SshStep):
            self.ssh_step(step)
        elif isinstance(step, VcpuPinStep):
            self.vcpu_pin(step)
        else:  # pragma: no cover - the schema knows every step type
            raise UsageError(f"{self.host.name}: no executor for {type(step).__name__}")

    # -- console steps

    def expect(
        self, step: ExpectStep, retries: dict[int, int]
    ) -> tuple[Literal["next", "goto", "retry"], str | None]:
        """What to do next: go on, jump to the step with the given id, or run this one again."""
        con = self.con()
        patterns = [re.compile(p) for p in step.patterns]
        try:
            result = con.expect(patterns, timeout=step.timeout)
        except ExpectTimeout as exc:
            how = step.on_timeout
            self.event("expect-timeout", index=step.index + 1, on_timeout=how.action)
            if how.action == "continue":
                return "next", None
            if how.action == "goto":
                return "goto", how.target
            if how.action == "retry":
                done = retries.get(step.index, 0)
                if done < how.count:
                    retries[step.index] = done + 1
                    return "retry", None
                raise _StepFailed(
                    self.host.name,
                    f"step {step.index + 1} ({step.where}): still nothing after "
                    f"{how.count} retries: {_reason(exc)}",
                ) from exc
            raise _StepFailed(
                self.host.name, f"step {step.index + 1} ({step.where}): {_reason(exc)}"
            ) from exc
        retries.pop(step.index, None)
        self.event(
            "expect-matched",
            index=step.index + 1,
            pattern=step.patterns[result.index].decode("utf-8", "backslashreplace"),
            start=result.start,
            end=result.end,
        )
        return "next", None

    def send_secret(self, step: SendSecretStep) -> None:
        if step.secret is None:
            raise UsageError(
                f"{self.host.name}: step {step.index + 1}: secret {step.source} was not "
                "resolved (plan with check_secrets=True before running)"
            )
        self.con().send(step.secret.value + (b"\r" if step.newline else b""))
        self.event(
            "send_secret", source=str(step.source), data=str(step.secret), newline=step.newline
        )

    def xen_input(self, step: XenInputStep) -> None:
        assert self.xen is not None
        target: Literal["xen", "dom0"] = "xen" if step.target == "hypervisor" else "dom0"
        now = self.xen.switch_input(target)
        self.event("switch-input", to=target, confirmed=now)

    def debug_keys(self, step: DebugKeysStep) -> None:
        refuse_dangerous(list(step.keys), allowed=step.allow_dangerous)
        self.baud_check("harvest")
        xen = self.xen
        assert xen is not None
        xen.quiet = step.quiet if step.quiet is not None else DEFAULT_KEY_QUIET
        switched = xen.input != "Xen"
        if switched:
            self.event("switch-input", to="xen", reason="debug_keys needs input on Xen")
            xen.switch_input("xen")
        incomplete: list[str] = []
        try:
            for key in step.keys:
                self.event("key", key=key)
                dump = xen.debug_key(key, allow_dangerous=step.allow_dangerous)
                name = "star" if key == "*" else key
                segment = self.rec.add_segment(
                    name, dump.start, dump.end, complete=dump.complete, reason=dump.reason
                )
                if not dump.complete:
                    incomplete.append(f"{key} ({dump.reason})")
                parsed = parse_dump(key, self.rec.read_range(segment.start, segment.end))
                if parsed is not None:
                    self.rec.add_json(segment.json_file, parsed)
        finally:
            if switched:
                self.event("switch-input", to="dom0")
                xen.switch_input("dom0")
        if incomplete:
            raise _StepFailed(
                self.host.name,
                f"step {step.index + 1}: incomplete debug-key dumps: {'; '.join(incomplete)}",
            )

    # -- baud sanity (solcap.boot.baud)

    def baud_check(self, before: str, profile: Profile | None = None) -> None:
        """Compare the BMC's SOL rate, GRUB's serial --speed and Xen's com1=; warn on a mismatch.

        Xen's rate is the booted ``(XEN) Command line:`` in this run's capture; before a
        one-shot or persistent edit it is the profile's ``com1=`` (the line about to boot) when
        it sets one. GRUB's comes from the remote grub.cfg (else ``GRUB_SERIAL_COMMAND``) over
        an SSH connection this run already has — always there before a persistent edit. A
        warning is an event and a stderr line, never a failure: the run goes on, now explained.
        """
        from solcap.boot.baud import Rates, disagreements, xen_com_speed

        if self._bmc_rate is None:
            self._bmc_rate = (self.sol_rate(self.host) if self.sol_rate is not None else None,)
        bmc = self._bmc_rate[0]
        xen: int | None = None
        xen_from = "the booted (XEN) Command line"
        if profile is not None:
            xen = xen_com_speed(" ".join(profile.xen.options))
            xen_from = f"profile {profile.name}, about to boot"
        if xen is None:
            booted = self._booted_cmdline()
            xen_from = "the booted (XEN) Command line"
            if booted is None and before == "harvest":
                booted = self._xen_cmdline_over_ssh()
                xen_from = "xen_commandline of `xl info` on Dom0"
            xen = xen_com_speed(booted) if booted is not None else None
        grub, grub_from = self._grub_speed()
        rates = Rates(bmc=bmc, grub=grub, xen=xen, grub_from=grub_from, xen_from=xen_from)
        self.event("baud-check", before=before, bmc=bmc, grub=grub, xen=xen)
        for warning in disagreements(rates, self.host.name):
            self.event("warning", message=warning)
            print(f"solcap: warning: {warning}", file=sys.stderr)

    def _booted_cmdline(self) -> str | None:
        from solcap.boot.baud import booted_xen_cmdline

        found: str | None = None
        for _offset, window, _new in _windows(self.rec):
            found = booted_xen_cmdline(window) or found
        return found

    def _xen_cmdline_over_ssh(self) -> str | None:
        """Xen's booted command line from ``xl info`` when this capture began after boot.

        Only when the host has a Dom0 SSH target and the run can log in; a failure leaves
        the rate unknown (the check is advice, it never stops the harvest).
        """
        if self.ssh_factory is None or self.host.ssh is None:
            return None
        try:
            result = self.connection().run("xl info", timeout=30)
        except (SolcapError, OSError) as exc:
            self.event("baud-check-unavailable", what="xl info", error=str(exc))
            return None
        for line in result.stdout.splitlines():
            name, sep, value = line.partition(":")
            if sep and name.strip() == "xen_commandline":
                return value.strip()
        return None

    def _grub_speed(self) -> tuple[int | None, str]:
        """GRUB's serial --speed over this run's open SSH connection (never opened for it):
        the remote grub.cfg, else GRUB_SERIAL_COMMAND (:func:`solcap.grub.remote.
        remote_grub_speed`), under the run's GRUB layout (root prefix, grub.cfg path)."""
        from solcap.grub.remote import RemoteLayout, remote_grub_speed

        if self.ssh is None:
            return None, "grub.cfg"
        layout = self.grub_layout if self.grub_layout is not None else RemoteLayout()
        return remote_grub_speed(self.ssh, layout)

    def mark(self, step: MarkStep) -> None:
        offset = self.rec.offset
        if step.kind == "event":
            self.event("mark", text=step.label)
        elif step.kind == "start":
            self.marks[step.label] = offset
            self.event("mark-start", name=step.label)
        else:
            start = self.marks.pop(step.label, None)
            if start is None:
                raise UsageError(
                    f"{self.host.name}: step {step.index + 1} ({step.where}): mark end "
                    f"{step.label!r} without a mark start"
                )
            self.rec.add_segment(step.label, start, offset, complete=True)

    def close_open_marks(self, reason: str) -> None:
        """Segments still open when the run stops are kept, marked incomplete."""
        for name, start in list(self.marks.items()):
            with contextlib.suppress(Exception):
                self.rec.add_segment(
                    name, start, self.rec.offset, complete=False, reason=self.redact(reason)
                )
        self.marks.clear()

    def power(self, step: PowerStep) -> None:
        if self.power_fn is None:
            raise UsageError(
                f"{self.host.name}: step {step.index + 1} needs power control "
                f"(power: {step.action}) and none is available"
            )
        self.event("power", action=step.action)
        self.power_fn(self.host, step.action)

    def grub(self, step: GrubStep) -> None:
        # A profile variable (``[vars]``) takes the runbook variable of the same name, if any.
        given: dict[str, int | str] = {
            k: v
            for k, v in self.hp.vars.items()
            if isinstance(v, (int, str)) and not isinstance(v, bool)
        }
        profile = load_profile(step.profile, self.profile_dirs, variables=given, strict=False)
        self.event("grub", mode=step.mode, profile=step.profile, entry=step.entry)
        if step.mode == "oneshot":
            if self.grub_oneshot is None:
                raise UsageError(f"{self.host.name}: one-shot GRUB editing is not available")
            self.baud_check("oneshot", profile)
            result = self.grub_oneshot(self.con(), profile, step.entry)
            fields = asdict(result) if is_dataclass(result) and not isinstance(result, type) else {}
            self.event("grub-oneshot", **fields)
            return
        from solcap.grub.remote import RemoteLayout, apply_persistent, plan_persistent

        base = self.grub_layout if self.grub_layout is not None else RemoteLayout()
        layout = replace(base, entry_pattern=step.entry or base.entry_pattern)
        conn = self.connection()
        self.baud_check("persistent", profile)
        grub_plan = plan_persistent(conn, profile, layout=layout)
        out = StringIO()
        try:
            applied = apply_persistent(conn, grub_plan, dry_run=False, out=out)
        finally:
            self.write_file("grub/persistent.txt", out.getvalue().encode("utf-8"))
        self.event("grub-persistent", written=list(applied.written), verified=applied.verified)

    # -- SSH steps

    def connection(self) -> SshConnection:
        if self.ssh is None:
            if self.ssh_factory is None:
                raise UsageError(f"{self.host.name}: this runbook needs SSH; none was given")
            self.ssh = self.ssh_factory(self.host)
            self.event("ssh-connect", target=self.ssh.target.display)
        return self.ssh

    def ssh_step(self, step: SshStep) -> None:
        conn = self.connection()
        missing = []
        for name in step.require:
            found = conn.run(f"command -v {shlex.quote(name)}", timeout=step.timeout)
            if not found.ok:
                missing.append(name)
        if missing:
            verb = "is" if len(missing) == 1 else "are"
            self.event("ssh-missing", commands=missing)
            raise _StepFailed(
                self.host.name,
                f"{', '.join(missing)} {verb} not installed on {self.host.name} "
                f"(`command -v` found nothing over SSH as {conn.target.display}); "
                f"step {step.index + 1} ({step.where}) needs it to run `{step.command}`",
            )
        self.event("ssh-command", command=step.command)
        result = conn.run(step.command, timeout=step.timeout)
        rel = self.unique(f"ssh/{step.save}")
        data = result.stdout.encode("utf-8")
        self.write_file(rel, data)
        if result.stderr:
            stem = rel.rsplit(".", 1)[0] if "." in rel.rsplit("/", 1)[-1] else rel
            self.write_file(self.unique(f"{stem}.stderr.txt"), result.stderr.encode("utf-8"))
        self.event(
            "ssh-output",
            command=step.command,
            file=rel,
            bytes=len(data),
            sha256=hashlib.sha256(data).hexdigest(),
            exit_status=result.exit_status,
        )
        if step.check and not result.ok:
            last = result.stderr.strip().splitlines()[-1:] or ["(no message on stderr)"]
            raise _StepFailed(
                self.host.name,
                f"`{step.command}` exited {result.exit_status} on {conn.target.display}: "
                f"{last[0]} (stdout kept in {rel})",
            )
        for fetch in step.fetch:
            self.fetch(conn, fetch.remote, self.unique(f"ssh/{fetch.save}"))
        if step.analyze == "virt_mode":
            found_mode = classify(result.stdout)
            stem = rel.rsplit(".", 1)[0]
            self.rec.add_json(
                f"{stem}.virt-mode.json",
                {
                    "mode": str(found_mode.mode),
                    "evidence": list(found_mode.evidence),
                    "reason": found_mode.reason,
                },
            )
            self.event("virt-mode", mode=str(found_mode.mode), reason=found_mode.reason)

    def vcpu_pin(self, step: VcpuPinStep) -> None:
        """solcap.xen.vcpu.pin over Dom0's SSH; every xl output is kept, even a failing one's."""
        from solcap.xen.vcpu import pin

        conn = self.connection()
        self.event("vcpu-pin", domain=step.domain, vcpu=step.vcpu, cpus=step.cpus)
        kept = 0

        def keep(outputs: Sequence[tuple[str, str, str]]) -> None:
            nonlocal kept
            for name, command, stdout in outputs[kept:]:
                rel = self.unique(f"ssh/{name}")
                data = stdout.encode("utf-8")
                self.write_file(rel, data)
                self.event("ssh-output", command=command, file=rel, bytes=len(data),
                           sha256=hashlib.sha256(data).hexdigest())  # fmt: skip
            kept = len(outputs)

        outputs: list[tuple[str, str, str]] = []
        try:
            result = pin(conn, self.host.name, step.domain, step.vcpu, step.cpus,
                         timeout=step.timeout, outputs=outputs)  # fmt: skip
        except TargetError as exc:
            keep(outputs)
            raise _StepFailed(
                self.host.name, f"step {step.index + 1} ({step.where}): {_reason(exc)}"
            ) from exc
        keep(outputs)
        self.event("vcpu-pinned", domain=result.domain, domid=result.domid,
                   vcpus=list(result.vcpus), hard=result.cpus)  # fmt: skip

    def fetch(self, conn: SshConnection, remote: str, rel: str) -> None:
        """Copy a remote file into the recording over SFTP (streamed, private)."""
        sftp = conn.sftp()
        digest = hashlib.sha256()
        size = 0
        try:
            with sftp.open(remote, "rb") as handle, self.private_file(rel) as fd:
                handle.prefetch()
                while block := handle.read(1 << 20):
                    digest.update(block)
                    size += len(block)
                    _write_all(fd, block)
        except FileNotFoundError as exc:
            raise _StepFailed(
                self.host.name, f"cannot fetch {remote} from {conn.target.display}: no such file"
            ) from exc
        except OSError as exc:
            if isinstance(exc, SolcapError):
                raise
            raise _StepFailed(
                self.host.name, f"cannot fetch {remote} from {conn.target.display}: {exc}"
            ) from exc
        self.event("fetched", remote=remote, file=rel, bytes=size, sha256=digest.hexdigest())

    # -- files inside the recording

    def unique(self, rel: str) -> str:
        """``rel``, or ``rel`` with a number before its extension if this run already wrote it."""
        candidate = rel
        number = 2
        while candidate in self.saved:
            head, dot, ext = rel.rpartition(".")
            candidate = f"{head}-{number}.{ext}" if dot and "/" not in ext else f"{rel}-{number}"
            number += 1
        self.saved.add(candidate)
        return candidate

    @contextlib.contextmanager
    def private_file(self, rel: str) -> Iterator[int]:
        # Relative to the recording's own descriptor: never outside it, never via a symlink.
        fd = self.rec.open_file(rel)
        try:
            yield fd
            os.fsync(fd)
        finally:
            os.close(fd)

    def write_file(self, rel: str, data: bytes) -> None:
        with self.private_file(rel) as fd:
            _write_all(fd, data)

    # -- the end

    def check_deaths(self) -> None:
        """A death string that arrived after the last wait still ends the run."""
        if self.console is not None:
            with contextlib.suppress(ConsoleClosed):
                self.console.expect([TIMEOUT, EOF], timeout=0)

    def evaluate(self, outcome: OutcomeRule) -> None:
        """The runbook's ``outcome`` rule over everything the console printed in this run."""
        if not outcome.success and not outcome.failure:
            return
        failure = [re.compile(p) for p in outcome.failure]
        success = [re.compile(p) for p in outcome.success]
        seen_success = False
        for offset, window, new_from in _windows(self.rec):
            for pattern in failure:
                m = pattern.search(window)
                if m is not None and m.end() > new_from:
                    line = _line_around(window, m)
                    raise _StepFailed(
                        self.host.name,
                        f"the console printed failure pattern /{_show(pattern.pattern)}/ at "
                        f"byte {offset + m.start()}: {line!r}",
                    )
            if not seen_success:
                seen_success = any(p.search(window) for p in success)
        if success and not seen_success:
            shown = " | ".join(f"/{_show(p.pattern)}/" for p in success)
            raise _StepFailed(self.host.name, f"no success pattern ({shown}) was printed")


def run_host(
    host_plan: HostPlan,
    *,
    console_factory: ConsoleFactory | None,
    power: Callable[[Host, str], None] | None,
    ssh_factory: Callable[[Host], SshConnection] | None,
    recordings_root: str | os.PathLike[str] | None = None,
    runbook_name: str = "run",
    grub_oneshot: GrubOneshot | None = default_grub_oneshot,
    clock: Callable[[], float] = time.monotonic,
    profile_dirs: Sequence[str | os.PathLike[str]] | None = None,
    max_jumps: int = MAX_JUMPS,
    meta: Mapping[str, Any] | None = None,
    grub_layout: RemoteLayout | None = None,
    sol_rate: Callable[[Host], int | None] | None = None,
) -> HostResult:
    """Run ``host_plan`` and return its :class:`~solcap.orchestration.outcomes.HostResult`; errors
    become the outcome.

    The recording ``<recordings_root>/<host>/<stamp>_<runbook_name>/`` is created once the
    console is open (first thing for a run without a console; never for a host whose console
    could not be opened: its result has no recording) and closed (``meta.json`` with outcome
    and error) on every path. KeyboardInterrupt (and any
    other BaseException that is not an Exception) closes everything and propagates.
    ``sol_rate(host)`` gives the BMC's SOL bit rate for the baud check before a harvest or a
    one-shot edit (:func:`bmc_sol_rate` for real hosts; None: not known).
    """
    host = host_plan.host
    begin = clock()

    def make_recording() -> Recording:
        return Recording(
            host.name,
            label=runbook_name,
            root=Path(recordings_root) if recordings_root is not None else None,
            meta={"runbook": runbook_name, **(meta or {})},
        )

    run = _Run(
        host_plan,
        make_recording,
        console_factory=console_factory,
        power=power,
        ssh_factory=ssh_factory,
        grub_oneshot=grub_oneshot,
        profile_dirs=profile_dirs,
        max_jumps=max_jumps,
        grub_layout=grub_layout,
        sol_rate=sol_rate,
    )
    kind: Outcome = "error"
    error: str | None = "interrupted"
    try:
        try:
            if "console" in host_plan.needs:
                run.open_console()
            run.run_steps()
            run.check_deaths()
            run.close_open_marks("the run ended before its mark end")
            run.evaluate(host_plan.outcome)
            kind, error = "ok", None
        except Exception as exc:
            kind, error = outcomes.classify(exc), run.redact(one_line(exc))
            if run.recording is not None:  # a console that never opened left nothing behind
                run.event("failed", outcome=kind, error=error)
                run.close_open_marks(f"the run stopped: {error}")
    finally:
        run.close()
        duration = clock() - begin
        summary = None
        if run.recording is not None:
            summary = run.recording.close(
                outcome=kind, error=error, duration=round(duration, 3), stop_reason=error or "done"
            )
    return HostResult(
        name=host.name,
        outcome=kind,
        error=error,
        bytes=summary.bytes if summary is not None else 0,
        duration=duration,
        recording=summary.path if summary is not None else None,
    )


# --------------------------------------------------------------------------- helpers


def _action(step: Step) -> str:
    return type(step).__name__.removesuffix("Step").lower()


def _reason(exc: BaseException) -> str:
    text = str(exc)
    if isinstance(exc, TargetError) and text.startswith(f"{exc.host}: "):
        return text[len(exc.host) + 2 :]
    return text


def _show(source: bytes) -> str:
    return source.decode("utf-8", "backslashreplace")


def _line_around(window: bytes, m: re.Match[bytes]) -> str:
    lo = window.rfind(b"\n", max(0, m.start() - 200), m.start()) + 1
    hi = window.find(b"\n", m.end(), m.end() + 200)
    hi = min(len(window), m.end() + 200) if hi < 0 else hi
    return window[lo:hi].decode("utf-8", "replace").strip()


def _windows(rec: Recording) -> Iterator[tuple[int, bytes, int]]:
    """``(offset, window, new_from)`` over console.raw in bounded chunks with an overlap;
    matches ending at or before ``new_from`` were already seen in the previous window."""
    end = rec.offset
    start = 0
    carry = b""
    while start < end or (start == 0 and end == 0):
        chunk = rec.read_range(start, min(end, start + _SCAN_CHUNK))
        window = carry + chunk
        yield start - len(carry), window, len(carry)
        if not chunk:
            return
        start += len(chunk)
        carry = window[-_SCAN_OVERLAP:]


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
