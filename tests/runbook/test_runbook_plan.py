"""Planning and --dry-run: per-host variables, host capabilities, secrets never shown."""

from __future__ import annotations

from pathlib import Path

import pytest

from solcap.config.docload import load_text
from solcap.errors import ConfigError, UsageError
from solcap.inventory import BmcAddress, Host, SshTarget, load_inventory
from solcap.orchestration.runbook import (
    ExpectStep,
    GrubStep,
    Secret,
    SendSecretStep,
    SshStep,
    load_runbook,
    load_runbook_doc,
    plan,
    plan_host,
    render_plan,
)
from solcap.xen.virtmode import VirtMode, classify

DATA = Path(__file__).parent / "data"
BMC = BmcAddress("10.0.0.1", "admin")
SSH = SshTarget("10.0.1.1", "root")


def _rb(text: str):  # type: ignore[no-untyped-def]
    return load_runbook_doc(load_text(text, "rb.yaml"))


def test_failed_boot_plan_for_inventory_hosts_uses_host_profile_and_vars() -> None:
    inv = load_inventory(DATA / "inventory.yaml")
    rb = load_runbook("failed-boot")
    hosts = [inv.host("node01"), inv.host("node02")]
    the_plan = plan(rb, hosts, overrides={"boot_timeout": 120})
    n1, n2 = the_plan.hosts
    grub = next(s for s in n1.steps if isinstance(s, GrubStep))
    assert grub.profile == "xen-serial-debug"
    expect = next(s for s in n2.steps if isinstance(s, ExpectStep))
    assert expect.timeout == 120
    assert n1.needs == {"bmc", "console"}
    text = render_plan(the_plan)
    assert "host node01 [ipmi://root@10.0.0.11]" in text
    assert "grub oneshot profile=xen-serial-debug" in text
    assert "expect /login: / within 120s; on timeout: fail  (" in text
    assert "failed-boot.yaml:" in text


def test_host_vars_override_defaults_and_unknown_host_vars_are_ignored() -> None:
    rb = _rb("name: t\nvars: {who: world}\nsteps:\n  - sendline: 'hi ${who} on ${host}'\n")
    host = Host(name="n1", origin="x", bmc=BMC, vars={"who": "ops", "other": 1})
    hp = plan_host(rb, host)
    assert hp.steps[0].data == b"hi ops on n1"  # type: ignore[attr-defined]
    assert hp.vars == {"who": "ops", "host": "n1"}


def test_required_variable_without_value_names_the_host_and_line() -> None:
    rb = _rb("name: t\nvars:\n  guest: null\nsteps:\n  - sendline: 'xl console ${guest}'\n")
    assert rb.steps[0].data == b""  # type: ignore[attr-defined]
    with pytest.raises(ConfigError, match=r"^rb.yaml:3:3: vars.guest: host n1: no value"):
        plan_host(rb, Host(name="n1", origin="x", bmc=BMC))
    hp = plan_host(rb, Host(name="n1", origin="x", bmc=BMC, vars={"guest": "web1"}))
    assert hp.steps[0].data == b"xl console web1"  # type: ignore[attr-defined]


def test_typed_variable_checked_per_host() -> None:
    rb = _rb("name: t\nvars: {t: null}\nsteps:\n  - expect: {patterns: x, timeout: '${t}'}\n")
    with pytest.raises(ConfigError, match=r"rb.yaml:4:36: steps\[0\].expect.timeout: host n1: "):
        plan_host(rb, Host(name="n1", origin="x", bmc=BMC, vars={"t": "soon"}))
    hp = plan_host(rb, Host(name="n1", origin="x", bmc=BMC, vars={"t": 5}))
    assert hp.steps[0].timeout == 5  # type: ignore[attr-defined]


def test_host_without_needed_target_is_refused_before_running() -> None:
    rb = load_runbook("dom0-topology")
    with pytest.raises(
        ConfigError,
        match=r"dom0-topology.yaml:5:5: steps\[0\]: host n1 \(inv:3\) has no SSH target \(ssh:\)",
    ):
        plan(rb, [Host(name="n1", origin="inv:3", bmc=BMC)])
    rb = load_runbook("failed-boot")
    with pytest.raises(
        ConfigError, match=r"failed-boot.yaml:\d+:5: steps\[1\]: host n1 \(inv:3\) has no BMC"
    ):
        plan(rb, [Host(name="n1", origin="inv:3", ssh=SSH)])
    with pytest.raises(UsageError, match="no hosts"):
        plan(rb, [])


SECRET_RB = (
    "name: t\nsteps:\n  - expect: 'Password: '\n  - send_secret: env:ROOT_PW\n"
    "  - send_secret: {secret: 'file:${pwfile}', newline: false}\n"
    "vars: {pwfile: /nonexistent}\n"
)


def test_dry_run_redacts_secrets(tmp_path: Path) -> None:
    pwfile = tmp_path / "pw"
    pwfile.write_text("filesecret-xyz\n")
    pwfile.chmod(0o600)
    rb = _rb(SECRET_RB)
    host = Host(name="n1", origin="x", bmc=BMC, vars={"pwfile": str(pwfile)})
    the_plan = plan(rb, [host], env={"ROOT_PW": "hunter2-abc"})
    secrets = [s for s in the_plan.hosts[0].steps if isinstance(s, SendSecretStep)]
    assert [s.secret.value for s in secrets if s.secret] == [b"hunter2-abc", b"filesecret-xyz"]
    text = render_plan(the_plan)
    assert "hunter2" not in text and "filesecret" not in text
    assert "send_secret env:ROOT_PW <redacted:11 bytes> + Enter" in text
    assert f"send_secret file:{pwfile} <redacted:14 bytes>" in text
    assert "hunter2" not in repr(the_plan) and "filesecret" not in repr(the_plan)
    assert str(Secret(b"abc")) == repr(Secret(b"abc")) == "<redacted:3 bytes>"


def test_missing_secret_is_a_plan_error_unless_not_checked() -> None:
    rb = _rb(SECRET_RB)
    host = Host(name="n1", origin="x", bmc=BMC)
    with pytest.raises(ConfigError, match=r"rb.yaml:4:18: .*host n1: environment variable ROOT_PW"):
        plan(rb, [host], env={})
    text = render_plan(plan(rb, [host], env={}, check_secrets=False))
    assert "<redacted:unresolved>" in text


def test_xentrace_plan_renders_commands_and_fetches() -> None:
    rb = load_runbook("xentrace")
    hp = plan_host(rb, Host(name="n1", origin="x", ssh=SSH, vars={"seconds": 3}))
    trace = [s for s in hp.steps if isinstance(s, SshStep)][1]
    assert "-T 3 " in trace.command
    text = render_plan(plan(rb, [Host(name="n1", origin="x", ssh=SSH)]))
    assert (
        "requires xentrace" in text and "fetch /tmp/solcap-xentrace/trace.bin → trace.bin" in text
    )


@pytest.mark.parametrize(
    ("sample", "mode"),
    [
        ("dmesg-pvhvm.txt", VirtMode.PVHVM),
        ("dmesg-hvm.txt", VirtMode.HVM),
        ("dmesg-pv.txt", VirtMode.PV),
        ("dmesg-pvh.txt", VirtMode.PVH),
        ("dmesg-bare.txt", VirtMode.UNKNOWN),
    ],
)
def test_virt_mode_classifier(sample: str, mode: VirtMode) -> None:
    text = (DATA / sample).read_text()
    result = classify(text)
    assert result.mode is mode, result
    assert classify(text.encode()).mode is mode
    if mode is not VirtMode.UNKNOWN:
        assert result.evidence and all(line in text for line in result.evidence)


def test_virt_mode_pv_drivers_without_banner_is_unknown_with_reason() -> None:
    result = classify("[ 5.0] Xen: using vcpuop timer interface\n")
    assert result.mode is VirtMode.UNKNOWN and "banner" in result.reason
