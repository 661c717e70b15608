"""The virtual Xen host, driven through its real pseudo-terminal."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable

import pytest

from solcap.sim import host as host_module
from solcap.sim.host import CHUNK_SECONDS, LONGLINE_SIZE, SimConfig, VirtualHost

from .conftest import PtyClient

MakeHost = Callable[..., tuple[VirtualHost, PtyClient]]

pytestmark = pytest.mark.timeout(60)

XEN_BANNER = b"*** Serial input to Xen"
DOM0_BANNER = b"*** Serial input to DOM0"


def boot_to_dom0(make_host: MakeHost, **kwargs: object) -> tuple[VirtualHost, PtyClient]:
    host, client = make_host(**kwargs)
    client.wait_state(host, "running")
    client.catch_up(host)
    return host, client


def test_firmware_then_grub_menu(make_host: MakeHost) -> None:
    host, client = make_host(grub_timeout=30)
    end = client.expect(b"Booting from Hard Disk...")
    client.expect(b"GNU GRUB", start=end)
    client.wait_state(host, "grub", 5)
    assert host.power_state


def test_countdown_boots_default_with_configured_xen_args(make_host: MakeHost) -> None:
    args = "com1=38400,8n1 console=com1 loglvl=all guest_loglvl=all solcap_marker=7"
    host, client = boot_to_dom0(make_host, xen_args=args)
    client.expect(b"(XEN) Command line: " + args.encode())
    assert bytes(client.buf) == host.sent_bytes()
    assert host.input_target == "dom0"


def test_power_cycle_restarts_at_firmware(make_host: MakeHost) -> None:
    host, client = boot_to_dom0(make_host)
    mark = len(client.buf)
    host.power_cycle()
    client.wait_state(host, "grub", 10)
    end = client.expect(b"Booting from Hard Disk...", start=mark)
    client.expect(b"GNU GRUB", start=end)


def test_power_off_is_silent(make_host: MakeHost) -> None:
    host, client = make_host(grub_timeout=30)
    client.wait_state(host, "grub", 5)
    host.power_off()
    assert host.state == "off" and not host.power_state
    client.catch_up(host, 5)
    client.catch_up(host)
    mark = len(host.sent_bytes())
    assert not client.pump(0.3)
    assert len(host.sent_bytes()) == mark


@pytest.mark.timeout(30)
def test_pacing_follows_the_baud_rate(make_host: MakeHost) -> None:
    # The line never runs ahead of 38400 8N1, measured from before the bytes were queued, so
    # a loaded machine can only make the client see them later, never the check fail early.
    host, client = make_host(fast=False, baud=38400, auto_power_on=False)
    rate = 38400 / 10
    payload = bytes(range(32, 128)) * 40  # 3,840 bytes: one second at 38400 8N1
    slack = 3 * int(rate * CHUNK_SECONDS)  # the chunk in flight and one chunk of credit
    start = time.monotonic()
    host.inject(payload)
    seen: list[tuple[float, int]] = []
    deadline = start + 10  # "not stuck", not a bound on the pace
    while len(client.buf) < len(payload):
        assert time.monotonic() < deadline, f"{len(client.buf)} of {len(payload)} bytes"
        if client.pump(0.05):
            seen.append((time.monotonic() - start, len(client.buf)))
    ahead = [(t, n) for t, n in seen if n > rate * t + slack]
    assert not ahead, f"ahead of the line rate at (seconds, bytes): {ahead[:5]}"
    assert len(seen) >= 10  # it came over time, not in one read
    assert bytes(client.buf) == payload
    assert host.wait_idle(5)  # the accounting of the last chunk follows its write
    assert host.sent_bytes() == payload


def switch(host: VirtualHost, client: PtyClient, banner: bytes, target: str) -> None:
    mark = len(client.buf)
    client.write(b"\x01\x01\x01")
    client.expect(banner, start=mark)
    assert host.input_target == target


def test_ctrl_a_three_times_switches_both_ways(make_host: MakeHost) -> None:
    host, client = boot_to_dom0(make_host)
    switch(host, client, XEN_BANNER, "xen")
    switch(host, client, DOM0_BANNER, "dom0")
    client.catch_up(host)
    assert bytes(client.buf) == host.sent_bytes()


def test_ctrl_a_three_times_one_byte_per_write_switches(make_host: MakeHost) -> None:
    host, client = boot_to_dom0(make_host)
    mark = len(client.buf)
    for _ in range(3):
        client.write(b"\x01")
    client.expect(XEN_BANNER, start=mark)
    assert host.input_target == "xen"


def test_interrupted_ctrl_a_does_not_switch(make_host: MakeHost) -> None:
    host, client = boot_to_dom0(make_host)
    mark = len(client.buf)
    client.write(b"\x01\x01x\x01")
    client.expect(b"x", start=mark)
    client.catch_up(host)
    assert host.input_target == "dom0"
    assert XEN_BANNER not in client.buf[mark:]


def test_dom0_line_discipline_echo_backspace_prompt(make_host: MakeHost) -> None:
    host, client = boot_to_dom0(make_host)
    prompt = bytes(client.buf[-16:]).rsplit(b"\n", 1)[-1]
    mark = len(client.buf)
    client.write(b"hostnamx\x7fe\r")
    end = client.expect(b"hostnamx\b \be", start=mark)
    client.expect(prompt, start=end)
    client.catch_up(host)
    assert bytes(client.buf) == host.sent_bytes()


def test_debug_key_dump_is_byte_exact(make_host: MakeHost) -> None:
    host, client = boot_to_dom0(make_host)
    switch(host, client, XEN_BANNER, "xen")
    client.write(b"h")
    client.wait_dumps(host, 1, 10)
    client.catch_up(host)
    record = host.dumps[-1]
    received = bytes(client.buf[record.start : record.end])
    assert record.key == "h"
    assert hashlib.sha256(received).hexdigest() == record.sha256
    assert received == record.data
    assert bytes(client.buf) == host.sent_bytes()


def test_back_to_back_keys_lose_one_paced_keys_do_not(make_host: MakeHost) -> None:
    host, client = boot_to_dom0(make_host)
    switch(host, client, XEN_BANNER, "xen")
    client.write(b"hq")
    client.wait_dumps(host, 1, 10)
    client.catch_up(host, 10)
    assert host.lost_keys == 1
    assert len(host.dumps) == 1
    for count, key in enumerate(b"qhq", start=2):
        client.write(bytes([key]))
        client.wait_dumps(host, count, 10)
        client.catch_up(host, 10)
    assert [d.key for d in host.dumps] == ["h", "q", "h", "q"]
    assert host.lost_keys == 1
    client.catch_up(host)
    for record in host.dumps:
        assert bytes(client.buf[record.start : record.end]) == record.data


def test_key_typed_during_a_dump_runs_after_it(make_host: MakeHost) -> None:
    host, client = boot_to_dom0(make_host)
    switch(host, client, XEN_BANNER, "xen")
    client.catch_up(host)
    mark = len(host.sent_bytes())
    client.write(b"*")  # ~35 KB: while we don't read, the full pty holds it mid-dump
    deadline = time.monotonic() + 10
    while len(host.sent_bytes()) == mark:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert not host.dumps and not host.wait_idle(0)
    client.write(b"q")  # the slot is free while '*' is being transmitted
    client.wait_dumps(host, 2, 10)
    assert [d.key for d in host.dumps] == ["*", "q"]
    assert host.lost_keys == 0
    client.catch_up(host)
    assert bytes(client.buf) == host.sent_bytes()


def test_grub_burst_drops_input_paced_typist_loses_none(make_host: MakeHost) -> None:
    host, client = make_host(grub_timeout=30)
    client.wait_state(host, "grub", 5)
    client.catch_up(host)
    client.type_paced(host, b"e")
    client.type_paced(host, b"abcdefghij")
    assert host.dropped_input == 0
    client.write(b"0123456789" * 4)
    client.catch_up(host, 5)
    client.drain(0.2)
    client.catch_up(host, 5)
    # the 16-byte FIFO kept at most 16 (+ a few GRUB took while the burst trickled in)
    assert 40 - 2 * 16 <= host.dropped_input <= 40 - 16


def test_reboot_key_restarts_from_firmware(make_host: MakeHost) -> None:
    host, client = boot_to_dom0(make_host)
    switch(host, client, XEN_BANNER, "xen")
    mark = len(client.buf)
    client.write(b"R")
    client.expect(b"Booting from Hard Disk...", start=mark)
    client.wait_state(host, "grub", 10)
    assert host.input_target == "dom0"


def test_without_com1_console_neither_xen_nor_dom0_reach_the_line(make_host: MakeHost) -> None:
    # Dom0's hvc0 is Xen's console, so it reaches serial only through com1 (xen.py's model).
    host, client = boot_to_dom0(make_host, xen_args="com1=38400,8n1 console=vga loglvl=all")
    boot_log = bytes(client.buf[client.buf.find(b"Loading initial ramdisk") :])
    assert b"(XEN)" not in boot_log
    assert b"Linux version" not in boot_log
    assert host.xen is not None and host.xen.dom0_hvc and not host.xen.serial_console
    mark = len(client.buf)
    client.write(b"\x01\x01\x01")  # Xen still switches input, silently
    client.write(b"hostname\r")
    client.catch_up(host)
    assert client.buf[mark:] == b""


def test_with_com1_console_dom0_lines_follow_xen_lines(make_host: MakeHost) -> None:
    _, client = boot_to_dom0(make_host)
    boot_log = bytes(client.buf)
    assert 0 <= boot_log.find(b"(XEN) Command line:") < boot_log.find(b"Linux version")
    assert boot_log.endswith(b"root@xenhost:~# ")


def test_without_hvc0_the_shell_is_not_on_the_line(make_host: MakeHost) -> None:
    host, client = boot_to_dom0(make_host, dom0_args="root=/dev/mapper/vg-root ro quiet")
    mark = len(client.buf)
    client.write(b"ls\r")
    switch(host, client, XEN_BANNER, "xen")  # Xen still reads the line
    client.catch_up(host)
    assert b"ls" not in client.buf[mark:]


def test_fault_panic(make_host: MakeHost) -> None:
    host, client = make_host(faults=frozenset({"panic"}))
    client.wait_state(host, "panicked")
    client.catch_up(host)
    assert b"Panic on CPU" in client.buf
    assert bytes(client.buf) == host.sent_bytes()


def test_fault_hang_goes_silent_before_the_prompt(make_host: MakeHost) -> None:
    host, client = make_host(faults=frozenset({"hang"}))
    client.wait_state(host, "hung")
    client.catch_up(host)
    assert b"(XEN)" in client.buf
    assert not client.pump(0.3)  # silent
    client.write(b"\x01\x01\x01h")  # nobody is listening
    assert not client.pump(0.3)
    assert host.state == "hung"
    assert bytes(client.buf) == host.sent_bytes()


def test_fault_garbage_bursts_are_not_utf8_and_boot_completes(make_host: MakeHost) -> None:
    host, client = boot_to_dom0(make_host, faults=frozenset({"garbage"}))
    with pytest.raises(UnicodeDecodeError):
        bytes(client.buf).decode("utf-8")
    clean = boot_to_dom0(make_host)[1]
    bytes(clean.buf).decode("utf-8")  # the same boot without the fault decodes
    assert bytes(client.buf) == host.sent_bytes()


def test_fault_longline_puts_64k_without_newline_in_dom0_boot(make_host: MakeHost) -> None:
    host, client = boot_to_dom0(make_host, faults=frozenset({"longline"}))
    longest = max(len(line) for line in bytes(client.buf).split(b"\n"))
    assert longest >= LONGLINE_SIZE
    assert bytes(client.buf) == host.sent_bytes()


def test_unknown_fault_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown fault"):
        SimConfig(faults=frozenset({"meltdown"}))


@pytest.mark.timeout(30)
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_module_entry_point_prints_pty_path_and_exits_0(sig: signal.Signals) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "solcap.sim", "--fast", "--grub-timeout", "30", "--domus", "1"],
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        path = proc.stdout.readline().decode().strip()
        assert path.startswith("/dev/pts/"), path
        client = PtyClient(path)
        try:
            client.expect(b"GNU GRUB", timeout=10)
        finally:
            client.close()
        proc.send_signal(sig)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_panic_reboots_after_the_delay_unless_noreboot(
    make_host: MakeHost, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(host_module, "PANIC_REBOOT_DELAY", 0.2)
    host, client = make_host(faults=frozenset({"panic"}))
    client.wait_state(host, "panicked")
    mark = len(client.buf)
    client.expect(b"Booting from Hard Disk...", start=mark)
    stuck, stuck_client = make_host(
        faults=frozenset({"panic"}), xen_args="com1=38400,8n1 console=com1 noreboot"
    )
    stuck_client.wait_state(stuck, "panicked")
    stuck_client.expect(b"Manual reset required")
    assert not stuck_client.pump(0.5)
    assert stuck.state == "panicked"


def test_xl_debug_keys_from_dom0_are_recorded_per_key(make_host: MakeHost) -> None:
    host, client = boot_to_dom0(make_host)
    client.write(b"xl debug-keys hm\r")
    client.wait_dumps(host, 2, 10)
    client.catch_up(host)
    assert [d.key for d in host.dumps] == ["h", "m"]
    for record in host.dumps:
        assert bytes(client.buf[record.start : record.end]) == record.data
        assert record.data.startswith(b"(XEN) ")
    assert client.buf.endswith(b"root@xenhost:~# ")


def test_plain_linux_entry_boots_without_xen(make_host: MakeHost) -> None:
    host, client = make_host(grub_timeout=30)
    client.wait_state(host, "grub", 5)
    client.catch_up(host)
    client.write(b"\x1b[B")  # down: the second entry
    client.catch_up(host)
    client.write(b"\r")
    client.wait_state(host, "running")
    client.catch_up(host)
    assert b"Linux version" in client.buf and b"(XEN)" not in client.buf
    assert host.xen is None
    mark = len(client.buf)
    client.write(b"\x01\x01\x01uname\r")  # no Xen: Ctrl-A is just a control byte
    client.expect(b"-amd64\r\n", start=mark)
    assert host.input_target == "dom0"


def test_start_is_idempotent_and_power_on_when_on_is_a_no_op() -> None:
    config = SimConfig(fast=True, grub_timeout=30, auto_power_on=False)
    with VirtualHost(config) as host:
        assert host.start() is host
        client = PtyClient(host.pty_path)
        try:
            host.power_on()
            client.wait_state(host, "grub", 5)
            client.catch_up(host)
            sent = len(host.sent_bytes())
            host.power_on()
            assert host.state == "grub"
            assert not client.pump(0.3)
            assert len(host.sent_bytes()) == sent
        finally:
            client.close()
    host.stop()  # idempotent


def test_grub_password_guards_the_editor(make_host: MakeHost) -> None:
    host, client = make_host(grub_timeout=30, grub_password=("root", "s3cret"))
    client.wait_state(host, "grub", 5)
    client.catch_up(host)
    mark = len(client.buf)
    client.write(b"e")
    client.expect(b"Enter username:", start=mark)


def test_default_xen_args_follow_the_baud_explicit_ones_do_not() -> None:
    assert "com1=115200,8n1" in SimConfig(baud=115200).xen_args
    explicit = "com1=38400,8n1 console=com1"
    assert SimConfig(baud=115200, xen_args=explicit).xen_args == explicit


def test_wrong_com1_rate_gives_garbage_and_no_dom0(make_host: MakeHost) -> None:
    _, client = boot_to_dom0(make_host, baud=115200, xen_args="com1=38400,8n1 console=com1")
    boot_log = bytes(client.buf[client.buf.find(b"Loading initial ramdisk") :])
    assert b"(XEN)" not in boot_log and b"Linux version" not in boot_log
    with pytest.raises(UnicodeDecodeError):
        boot_log.decode("utf-8")


def test_edited_entry_boots_with_the_edit_on_xens_command_line(make_host: MakeHost) -> None:
    host, client = make_host(grub_timeout=30)
    client.wait_state(host, "grub", 5)
    client.catch_up(host)
    client.type_paced(host, b"e")
    for _ in range(3):  # setparams, blank line, echo -> the multiboot2 line
        client.write(b"\x1b[B")
        client.catch_up(host)
    client.type_paced(host, b"\x05 solcap_edit=1")  # Ctrl-E: end of line
    assert host.dropped_input == 0
    client.write(b"\x18")  # Ctrl-X boots
    client.wait_state(host, "running")
    client.catch_up(host)
    client.expect(b"(XEN) Command line: com1=38400,8n1 console=com1 loglvl=all")
    client.expect(b"guest_loglvl=all solcap_edit=1\r\n")
