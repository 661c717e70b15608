"""The vcpu_pin step's schema: xl's CPU-list grammar checked at load and at plan time."""

from __future__ import annotations

from pathlib import Path

import pytest

from solcap.config.docload import load_text
from solcap.errors import ConfigError
from solcap.inventory import Host
from solcap.orchestration.runbook import (
    VcpuPinStep,
    describe_step,
    load_runbook,
    load_runbook_doc,
    plan_host,
)
from solcap.xen.vcpu import check_cpus, dom0_pinned_at_boot, expand_cpus, format_cpus, parse_bitmap


def rb(body: str) -> str:
    return f"name: t\nsteps:\n  - vcpu_pin: {body}\n"


def load(text: str) -> VcpuPinStep:
    step = load_runbook_doc(load_text(text, "rb.yaml")).steps[0]
    assert isinstance(step, VcpuPinStep)
    return step


def test_a_valid_step_and_its_plan_line() -> None:
    step = load(rb('{domain: guest001, vcpu: 1, cpus: "2-3,^3,5"}'))
    assert (step.domain, step.vcpu, step.cpus, step.timeout) == ("guest001", 1, "2-3,^3,5", 60)
    assert describe_step(step).startswith("vcpu_pin guest001 vCPU 1 → CPUs 2-3,^3,5 ")
    every = load(rb("{domain: 0, vcpu: all, cpus: node:0}"))
    assert (every.domain, every.vcpu) == ("0", None)


@pytest.mark.parametrize(
    ("body", "column", "field", "fragment"),
    [
        ('{domain: g, vcpu: 0, cpus: "3-1"}', 42, "cpus", "item '3-1': the range ends before"),
        ('{domain: g, vcpu: 0, cpus: "1,,2"}', 42, "cpus", "an empty item between commas"),
        ('{domain: g, vcpu: 0, cpus: "^all"}', 42, "cpus", "'^' and 'all'"),
        ('{domain: g, vcpu: 0, cpus: "^2"}', 42, "cpus", "only removes CPUs"),
        ('{domain: g, vcpu: 0, cpus: "0-3 5"}', 42, "cpus", "no spaces in a CPU list"),
        ('{domain: g, vcpu: 0, cpus: "cpu2"}', 42, "cpus", "expected N, N-M or all"),
        ('{domain: g, vcpu: 0, cpus: ""}', 42, "cpus", "must not be empty"),
        ('{domain: g, vcpu: -1, cpus: "1"}', 33, "vcpu", "a vCPU number or 'all', got -1"),
        ('{domain: g, vcpu: some, cpus: "1"}', 33, "vcpu", "got 'some'"),
        ('{domain: "a b", vcpu: 0, cpus: "1"}', 24, "domain", "a domain name or id"),
    ],
)
def test_bad_fields_name_file_line_and_field(
    body: str, column: int, field: str, fragment: str
) -> None:
    with pytest.raises(ConfigError) as info:
        load(rb(body))
    text = info.value.one_line()
    assert text.startswith(f"rb.yaml:3:{column}: steps[0].vcpu_pin.{field}: "), text
    assert fragment in text and "\n" not in text


def test_a_cpu_list_from_the_inventory_is_checked_per_host(tmp_path: Path) -> None:
    runbook = load_runbook("vcpu-pin")
    host = Host(name="h1", origin="inv.yaml:3", ssh=None, vars={"domain": "g", "cpus": "5-2"})
    with pytest.raises(ConfigError) as info:
        plan_host(runbook, host)
    assert "steps[0].vcpu_pin.cpus: host h1: item '5-2': the range ends before" in str(info.value)


def test_cli_exit_2_and_one_line_before_any_contact(tmp_path: Path) -> None:
    import subprocess
    import sys

    inventory = tmp_path / "inv.yaml"
    # ssh:// to a port nobody listens on: a contact attempt would fail differently.
    inventory.write_text("hosts:\n  h1:\n    ssh: ssh://root@127.0.0.1:9\n")
    result = subprocess.run(
        [sys.executable, "-m", "solcap.cli", "run", "vcpu-pin", "--inventory", str(inventory),
         "--var", "domain=guest001", "--var", "cpus=2-x", "--root", str(tmp_path / "rec")],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr
    assert "vcpu-pin.yaml:" in lines[0] and "steps[0].vcpu_pin.cpus" in lines[0]
    assert "item '2-x'" in lines[0]
    assert not (tmp_path / "rec").exists()


def test_cpu_sets_as_xl_means_and_prints_them() -> None:
    nodes = {0: frozenset({0, 1}), 1: frozenset({2, 3})}
    assert expand_cpus("all,^1", 4, nodes) == {0, 2, 3}
    assert expand_cpus("node:1,0", 4, nodes) == {0, 2, 3}
    assert expand_cpus("nodes:0-1,^node:0", 4, nodes) == {2, 3}
    with pytest.raises(ValueError, match="no CPU 4 "):
        expand_cpus("3-4", 4, nodes)
    with pytest.raises(ValueError, match="no NUMA node 2"):
        expand_cpus("node:2", 4, nodes)
    for cpus, shown in [({0, 1, 2, 3}, "all"), (set(), "none"), ({1, 2, 3}, "1-3"),
                        ({0, 2, 3, 5}, "0,2-3,5")]:  # fmt: skip
        assert format_cpus(frozenset(cpus), 4 if shown != "0,2-3,5" else 8) == shown
        assert parse_bitmap(shown, 4 if shown != "0,2-3,5" else 8) == frozenset(cpus)
    assert check_cpus("0-3,6") is None


@pytest.mark.parametrize(
    ("cmdline", "pinned"),
    [
        ("dom0_vcpus_pin", True),
        ("dom0_vcpus_pin=0", False),
        ("dom0_vcpus_pin no-dom0_vcpus_pin", False),
        ("no-dom0_vcpus_pin=no", True),
        ("dom0_vcpus_pin dom0_vcpus_pin=maybe", True),  # Xen ignores a bad boolean
        ("dom0-vcpus-pin", False),  # names compare exactly
        ("dom0_max_vcpus=2", False),
    ],
)
def test_dom0_vcpus_pin_read_as_xen_parses_it(cmdline: str, pinned: bool) -> None:
    assert dom0_pinned_at_boot(cmdline) is pinned


def test_a_bad_profile_variable_for_a_host_fails_at_plan_time(tmp_path: Path) -> None:
    """The grub step's profile gets the host's runbook variables: a bad N is found before
    any traffic, naming the runbook's field and the profile's."""
    text = (
        "name: t\nvars: {dom0_vcpus: 2}\nsteps:\n"
        "  - grub: {mode: oneshot, profile: xen-dom0-vcpu-pin}\n"
    )
    runbook = load_runbook_doc(load_text(text, "rb.yaml"))
    ok = Host(name="h1", origin="inv.yaml:3", serial="/dev/ttyS0", vars={"dom0_vcpus": 4})
    assert plan_host(runbook, ok, check_secrets=False)
    bad = Host(name="h2", origin="inv.yaml:5", serial="/dev/ttyS0", vars={"dom0_vcpus": 0})
    with pytest.raises(ConfigError) as info:
        plan_host(runbook, bad, check_secrets=False)
    line = info.value.one_line()
    assert line.startswith("rb.yaml:4:36: steps[0].grub.profile: host h2: profile ")
    assert "xen-dom0-vcpu-pin.toml:" in line and "'dom0_max_vcpus=0': a vCPU count starts" in line
