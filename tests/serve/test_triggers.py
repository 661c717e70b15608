"""Triggers (inventory ``on:``) and the Xen-aware status of ``solcap serve``.

A virtual Xen host on a real pty panics while nobody is attached: the panic is in the log,
``status`` counts it and shows Xen's command line, the trigger's segment holds the panic
byte for byte and the notify command gets the event JSON on stdin. A runbook run by a
trigger talks through the console the server holds (the test plays the host on the pty, the
only way into it). Bad ``on:`` entries are one line, exit 2, nothing created.
"""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pytest

from solcap.cli import main
from solcap.serve.client import Attachment
from solcap.sim.host import DEFAULT_XEN_ARGS, SimConfig, VirtualHost
from tests.serve.conftest import events, meta, pieces, raw_of, wait_for

pytestmark = pytest.mark.timeout(120)

NOTIFY = """import json, sys
event = json.loads(sys.stdin.read())
with open(sys.argv[1], "a") as out:
    out.write(json.dumps({"argv": sys.argv[2:], "event": event}) + "\\n")
"""


def _notify_script(tmp_path: Path) -> Path:
    script = tmp_path / "notify.py"
    script.write_text(NOTIFY)
    return script


def _inventory(path: Path, device: str, on: str) -> None:
    path.write_text(
        "groups:\n"
        "  xen:\n"
        f"    on: {on}\n"
        "hosts:\n"
        "  h1:\n"
        f"    serial: {device}\n"
        "    line: 115200,8n1\n"
        "    groups: [xen]\n"
    )


def _notified(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_a_panic_while_nobody_is_attached_is_logged_counted_marked_and_notified(tmp_path, serve):
    script, out = _notify_script(tmp_path), tmp_path / "notified.jsonl"
    notify = json.dumps([sys.executable, str(script), str(out), "page", "xen team"])
    config = SimConfig(
        fast=True, grub_timeout=1, faults=frozenset({"panic"}), auto_power_on=False,
        xen_args=DEFAULT_XEN_ARGS + " noreboot",
    )  # fmt: skip
    with VirtualHost(config) as vh:
        inv = tmp_path / "inv.yaml"
        _inventory(
            inv, vh.pty_path, f'[{{pattern: "Panic on CPU", name: panic, notify: {notify}}}]'
        )
        server = serve(inv)
        wait_for(lambda: server.status()["h1"]["state"] == "up", 30, "h1 up")
        vh.power_on()
        assert vh.wait_state("panicked", 60)
        assert vh.wait_idle(30)
        sent = vh.sent_bytes()
        server.wait_bytes("h1", len(sent))
        (note,) = wait_for(lambda: _notified(out), 30, "the notify command")
        status = server.status()["h1"]
        assert status["panics"] == 1
        assert vh.xen is not None and status["xen_cmdline"] == vh.xen.xen_cmdline
        assert status["clients"] == []  # nobody was attached
    server.stop()
    raw = raw_of(server.root, "h1")
    assert raw == sent  # the whole boot and the panic, byte for byte
    assert note["argv"] == ["page", "xen team"]  # an argv: no shell split "xen team"
    event = note["event"]
    assert (event["trigger"], event["match"], event["host"]) == ("panic", "Panic on CPU", "h1")
    at = event["stream_offset"]
    assert raw[at:].startswith(b"Panic on CPU 0:")
    (piece,) = pieces(server.root, "h1")
    (segment,) = meta(piece)["segments"]
    cut = (piece / segment["file"]).read_bytes()
    assert segment["name"] == "trigger-panic-1" and segment["start"] == at
    assert cut == raw[at : event["segment_end"]] and b"Could not construct domain 0" in cut
    kinds = [e["event"] for e in events(piece)]
    assert kinds.count("trigger") == 1 and "notify" in kinds
    (notified,) = [e for e in events(piece) if e["event"] == "notify"]
    assert notified["returncode"] == 0


def test_a_trigger_runbook_runs_through_the_held_console(tmp_path, ptys, serve):
    pty = ptys()
    runbook = tmp_path / "hang.yaml"
    runbook.write_text(
        "name: hang\n"
        "steps:\n"
        "  - sendline: diag-now\n"
        '  - expect: {patterns: ["diag-done"], timeout: 20}\n'
    )
    inv = tmp_path / "inv.yaml"
    _inventory(inv, pty.path, f'[{{pattern: "watchdog: BUG: soft lockup", runbook: "{runbook}"}}]')
    server = serve(inv)
    wait_for(lambda: server.status()["h1"]["state"] == "up", 30, "h1 up")
    pty.write_all(b"boot ok\r\nwatchdog: BUG: soft lockup - CPU#3 stuck for 22s!\r\n")
    typed = pty.read_until(b"diag-now", 20)  # the runbook's input, through the server
    assert b"diag-now" in typed
    answer = b"diag: 3 stuck CPUs\r\ndiag-done\r\n"
    pty.write_all(answer)

    def segment_piece() -> Path | None:
        for piece in pieces(server.root, "h1"):
            if any(e["event"] == "segment" for e in events(piece)):
                return piece
        return None

    piece = wait_for(segment_piece, 30, "the trigger's segment")
    status = server.status()["h1"]
    assert status["state"] == "up" and status["clients"] == []  # the runbook's tap is gone
    server.stop()
    raw = raw_of(server.root, "h1")
    runs = sorted((server.root / "h1").glob("*_trigger-on1"))
    assert len(runs) == 1
    run_meta = json.loads((runs[0] / "meta.json").read_text())
    assert run_meta["outcome"] == "ok", run_meta
    run_raw = (runs[0] / "console.raw").read_bytes()
    assert run_raw.endswith(answer) and run_raw in raw  # the same bytes in both
    kinds = [(e["event"], e.get("who")) for e in events(piece)]
    assert ("write", "trigger on1") in kinds  # its input went to the held console, logged
    (seg,) = [e for e in events(piece) if e["event"] == "segment"]
    cut = (piece / seg["file"]).read_bytes()
    assert cut.startswith(b"watchdog: BUG: soft lockup") and cut.endswith(answer)


def test_xen_status_fields_follow_the_console(tmp_path, serve):
    with VirtualHost(SimConfig(fast=True, grub_timeout=1, auto_power_on=False)) as vh:
        inv = tmp_path / "inv.yaml"
        inv.write_text(f"hosts:\n  h1:\n    serial: {vh.pty_path}\n    line: 115200,8n1\n")
        server = serve(inv)
        wait_for(lambda: server.status()["h1"]["state"] == "up", 30, "h1 up")
        vh.power_on()
        assert vh.wait_state("running", 60)
        assert vh.xen is not None
        wait_for(lambda: server.status()["h1"]["xen_cmdline"] == vh.xen.xen_cmdline, 30, "cmdline")
        # Xen hands input to Dom0 at the end of its boot and says so.
        wait_for(lambda: server.status()["h1"]["input_focus"] == "dom0", 30, "focus dom0")
        assert server.status()["h1"]["panics"] == 0
        assert server.socket is not None
        with Attachment(server.socket, "h1", who="tester") as att:
            att.send(b"\x01\x01\x01")
            wait_for(lambda: server.status()["h1"]["input_focus"] == "xen", 30, "focus xen")
            att.send(b"\x01\x01\x01")
            wait_for(lambda: server.status()["h1"]["input_focus"] == "dom0", 30, "focus dom0")
        assert vh.input_target == "dom0"


BAD = [
    ("{pattern: x}", "h1.on: expected a list of triggers"),
    ("[{name: p}]", "groups.xen.on[0]: a trigger needs a pattern"),
    ("[{pattern: x, shell: true}]", "groups.xen.on[0].shell: unknown field"),
    ("[{pattern: x, notify: [/nonexistent/page]}]", "notify: /nonexistent/page: not an exec"),
    ("[{pattern: x, notify: no-such-program-solcap}]", "not found on PATH"),
    ("[{pattern: '(', regex: true}]", "groups.xen.on[0].pattern: not a regular expression"),
    ("[{pattern: 'a*', regex: true}]", "matches the empty string"),
    ("[{pattern: x}, {pattern: y, name: on1}]", "two triggers are named 'on1'"),
    ("[{pattern: x, runbook: no-such-runbook}]", "groups.xen.on[0].runbook: host h1: no runbook"),
]


@pytest.mark.parametrize(("on", "message"), BAD)
def test_bad_triggers_are_one_line_naming_file_line_and_field_and_exit_2(
    tmp_path, ptys, capsys, on, message
):
    inv = tmp_path / "inv.yaml"
    _inventory(inv, ptys().path, on)
    if on.startswith("{"):  # a mapping given to a host instead of a list
        inv.write_text(f"hosts:\n  h1:\n    serial: /dev/null\n    on: {on}\n")
    root, ctl = tmp_path / "rec", tmp_path / "ctl"
    argv = ["serve", "--inventory", str(inv), "--root", str(root), "--control-dir", str(ctl)]
    assert main(argv, out=io.StringIO()) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert f"{inv}:" in err and message in err, err
    line = 4 if on.startswith("{") else 3  # the line of the on: value
    assert err.startswith(f"solcap: {inv}:{line}:") or f" {inv}:{line}:" in err, err
    assert not root.exists() and not ctl.exists()


def test_ansible_inventories_carry_solcap_on_and_solcap_access(tmp_path):
    from solcap.errors import ConfigError
    from solcap.inventory import load_inventory

    inv = tmp_path / "hosts.yml"
    inv.write_text(
        "all:\n"
        "  vars:\n"
        "    solcap_on: [{pattern: 'Panic on CPU', name: panic, cooldown: 5}]\n"
        "  hosts:\n"
        "    node1:\n"
        "      solcap_serial: /dev/ttyS0\n"
        "      solcap_access: {write: [root], read: ['@root']}\n"
    )
    (host,) = load_inventory(inv, reader="static").hosts
    (trigger,) = host.triggers
    assert (trigger.name, trigger.text, trigger.cooldown) == ("panic", "Panic on CPU", 5.0)
    assert host.access is not None and host.access.right(0, frozenset()) == "write"
    assert host.access.right(4242, frozenset({0})) == "read"
    assert host.access.right(4242, frozenset({4242})) == "none"
    inv.write_text(inv.read_text().replace("cooldown: 5", "cooldown: -1"))
    with pytest.raises(ConfigError, match=r"hosts\.yml:3:.*cooldown: must be between"):
        load_inventory(inv, reader="static")
