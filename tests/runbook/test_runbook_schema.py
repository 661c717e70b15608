"""Runbook schema: shipped runbooks validate; malformed ones fail at the right line:column."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from solcap.config.docload import load_text
from solcap.errors import ConfigError
from solcap.orchestration.runbook import (
    DebugKeysStep,
    ExpectStep,
    GrubStep,
    PowerStep,
    SshStep,
    list_runbooks,
    load_runbook,
    load_runbook_doc,
)

SHIPPED = {p.stem: p for p in list_runbooks()}


def test_every_required_runbook_is_shipped() -> None:
    assert {
        "failed-boot", "harvest-debug-keys", "dom0-topology", "xentrace", "guest-virt-mode",
    } <= set(SHIPPED)  # fmt: skip


@pytest.mark.parametrize("path", sorted(SHIPPED.values()), ids=sorted(SHIPPED))
def test_shipped_runbook_validates(path: Path) -> None:
    runbook = load_runbook(path)
    assert runbook.name == path.stem
    assert runbook.steps


def test_failed_boot_shape() -> None:
    rb = load_runbook("failed-boot")
    kinds = [type(s) for s in rb.steps]
    assert PowerStep in kinds and GrubStep in kinds and ExpectStep in kinds
    grub = next(s for s in rb.steps if isinstance(s, GrubStep))
    assert (grub.mode, grub.profile) == ("oneshot", "xen-serial-debug")
    expect = next(s for s in rb.steps if isinstance(s, ExpectStep))
    assert expect.timeout == 900 and expect.id == "wait-login"
    assert rb.outcome.failure and rb.death_strings


def test_xentrace_keeps_three_files_and_requires_tools() -> None:
    rb = load_runbook("xentrace")
    ssh = [s for s in rb.steps if isinstance(s, SshStep)]
    saved = {f.save for s in ssh for f in s.fetch}
    assert saved == {"trace.bin", "xenalyze-summary.txt", "xenalyze-dump.txt"}
    assert any("xentrace" in s.require for s in ssh)
    assert any("xenalyze" in s.require for s in ssh)
    trace = next(s for s in ssh if "xentrace" in s.require)
    assert "xentrace -D -c all -e 0xfffff000 -T 10 /tmp/solcap-xentrace/trace.bin" in trace.command
    assert any("--cpu-hz=$hz --summary" in s.command for s in ssh)


def test_dom0_topology_commands() -> None:
    commands = " ; ".join(
        s.command for s in load_runbook("dom0-topology").steps if isinstance(s, SshStep)
    )
    for needle in (
        "xl info -n",
        "xenpm get-cpu-topology",
        "xl vcpu-list",
        "xenstore-ls",
        "xl dmesg",
        "VT-d",
        "AMD-Vi",
        "HAP",
    ):
        assert needle in commands


def _load(text: str, name: str = "rb.yaml"):  # type: ignore[no-untyped-def]
    return load_runbook_doc(load_text(text, name))


HEAD = "name: t\nsteps:\n"
BAD = [
    # (document, line, column, field, fragment)
    (HEAD + "  - reboot: now\n", 3, 5, "steps[0].reboot", "unknown step"),
    (HEAD + "  - sleep: 5\n", 3, 5, "steps[0].sleep", "not offered"),
    (
        HEAD + "  - expect: {patterns: ['ok', '(unclosed']}\n",
        3,
        31,
        "steps[0].expect.patterns[1]",
        "bad regular expression",
    ),
    (HEAD + "  - expect: {timeout: 5}\n", 3, 13, "steps[0].expect", "missing required field"),
    (
        HEAD + "  - settle: {quiet: 1}\n",
        3,
        13,
        "steps[0].settle",
        "missing required field 'timeout'",
    ),
    (
        HEAD + "  - expect: {patterns: ok, timeout: soon}\n",
        3,
        37,
        "steps[0].expect.timeout",
        "expected a number",
    ),
    (HEAD + "  - power: {action: on}\n", 3, 12, "steps[0].power", "expected a string"),
    (HEAD + "  - power: sideways\n", 3, 12, "steps[0].power", "expected one of on, off"),
    (
        HEAD + "  - sendline: 'hello ${who}'\n",
        3,
        15,
        "steps[0].sendline",
        "unknown variable ${who}",
    ),
    (HEAD + "  - debug_keys: [h, R]\n", 3, 21, "steps[0].debug_keys[1]", "allow_dangerous"),
    (HEAD + "  - debug_keys: 'h,*'\n", 3, 17, "steps[0].debug_keys", "changes the host's state"),
    (HEAD + "  - debug_keys: [hq]\n", 3, 18, "steps[0].debug_keys[0]", "one character"),
    (HEAD + "  - send_secret: hunter2\n", 3, 18, "steps[0].send_secret.secret", "inline passwords"),
    (
        HEAD + "  - grub: {mode: oneshot, profile: nope}\n",
        3,
        36,
        "steps[0].grub.profile",
        "no profile named",
    ),
    (
        HEAD + "  - grub: {mode: sometimes, profile: xen-serial-debug}\n",
        3,
        18,
        "steps[0].grub.mode",
        "expected one of oneshot, persistent",
    ),
    (
        HEAD + "  - expect: {patterns: x, on_timeout: {goto: nowhere}}\n",
        3,
        46,
        "steps[0].expect.on_timeout.goto",
        "no step with id 'nowhere'",
    ),
    (
        HEAD + "  - expect: {patterns: x, on_timeout: {retry: 0}}\n",
        3,
        47,
        "steps[0].expect.on_timeout.retry",
        "out of range",
    ),
    (HEAD + "  - power: cycle\n    ssh: ls\n", 3, 5, "steps[0]", "exactly one action"),
    (HEAD + "  - ssh: {command: ls, save: ../etc/passwd}\n", 3, 30, "steps[0].ssh.save", "no '/'"),
    (
        HEAD + "  - ssh: {command: ls, fetch: [relative/path]}\n",
        3,
        32,
        "steps[0].ssh.fetch[0].remote",
        "absolute path",
    ),
    (HEAD + "  - xen_input: guest\n", 3, 16, "steps[0].xen_input", "expected one of"),
    (HEAD + "  - mark: {start: 'a b'}\n", 3, 19, "steps[0].mark.start", "segment name"),
    (HEAD + "  - power: on\nextra: 1\n", 4, 1, "extra", "unknown field"),
    (
        "name: t\ndeath_strings: [{regex: '[x'}]\nsteps:\n  - power: on\n",
        2,
        25,
        "death_strings[0].regex",
        "bad regular expression",
    ),
    ("name: t\nsteps: []\n", 2, 8, "steps", "non-empty list"),
    ("name: t\nvars: {a: [1]}\nsteps:\n  - power: on\n", 2, 11, "vars.a", "a default is"),
    (
        "name: t\nsteps:\n  - power: on\noutcome: {success: ['(']}\n",
        4,
        21,
        "outcome.success[0]",
        "bad regular expression",
    ),
    (
        "name: t\nsteps:\n  - power: !!python/name:os.system on\n",
        3,
        12,
        "steps[0].power",
        "YAML tag",
    ),
]


@pytest.mark.parametrize(("text", "line", "column", "field", "fragment"), BAD)
def test_malformed_runbook_points_at_the_field(
    text: str, line: int, column: int, field: str, fragment: str
) -> None:
    with pytest.raises(ConfigError) as info:
        _load(text)
    err = info.value
    message = err.one_line()
    assert "\n" not in str(err)
    assert (err.line, getattr(err, "column", None), err.field) == (line, column, field), message
    assert message.startswith(f"rb.yaml:{line}:{column}: {field}: "), message
    assert fragment in message, message


def test_dangerous_key_allowed_explicitly() -> None:
    rb = _load(HEAD + "  - debug_keys: {keys: [R], allow_dangerous: true}\n")
    step = rb.steps[0]
    assert isinstance(step, DebugKeysStep) and step.keys == ("R",) and step.allow_dangerous


def test_yaml_1_2_scalars_keep_on_and_yes_as_strings() -> None:
    rb = _load(HEAD + "  - power: on\n  - sendline: yes\n")
    assert isinstance(rb.steps[0], PowerStep) and rb.steps[0].action == "on"


def test_escaped_dollar_brace_is_literal() -> None:
    rb = _load(HEAD + "  - sendline: 'echo $${HOME} ${host}'\n")
    assert rb.steps[0].data == b"echo ${HOME} HOST"  # type: ignore[attr-defined]


def test_toml_runbook_is_accepted() -> None:
    rb = _load('name = "t"\n[[steps]]\npower = "cycle"\n[[steps]]\nexpect = "login: "\n', "rb.toml")
    assert [type(s) for s in rb.steps] == [PowerStep, ExpectStep]
    with pytest.raises(ConfigError, match=r"rb.toml:3:9: steps\[0\].power: expected one of"):
        _load('name = "t"\n[[steps]]\npower = "up"\n', "rb.toml")


_ATOMS = [
    "name: t\n",
    "steps:\n",
    "  - ",
    "power: ",
    "expect: ",
    "{patterns: ",
    "timeout: ",
    "on_timeout: ",
    "{goto: a}",
    "{retry: 2}",
    "debug_keys: ",
    "[h, R]",
    "'${x}'",
    "vars: ",
    "{x: 1}",
    "ssh: ",
    "{command: ls}",
    "send_secret: ",
    "env:PW",
    "cycle",
    "[",
    "]",
    "{",
    "}",
    "'(' ",
    "\n",
    "  ",
    "- ",
    "null",
    "1e9",
    "-1",
    "id: a\n",
    "grub: ",
    "mark: ",
    "settle: ",
    "{quiet: 1, timeout: 0}",
    "death_strings: ",
    "outcome: ",
    "&a ",
    "*a ",
    "!!binary AAAA",
    "\t",
    ": ",
    "#",
    "'",
    '"',
]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(_ATOMS), max_size=30))
def test_generated_documents_raise_only_config_error(atoms: list[str]) -> None:
    text = "".join(atoms)
    for name in ("rb.yaml", "rb.toml"):
        try:
            _load(text, name)
        except ConfigError as exc:
            assert "\n" not in exc.one_line()
            assert str(exc).startswith(name)


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=200))
def test_arbitrary_text_raises_only_config_error(text: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "rb.yaml"
        path.write_text(text, encoding="utf-8")
        try:
            load_runbook(path)
        except ConfigError as exc:
            assert str(exc).startswith(str(path))
