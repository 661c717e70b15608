"""compare_ring on hand-made serial/ring pairs: what xl dmesg kept, lost, and where it starts."""

from __future__ import annotations

import pytest

from solcap.errors import UsageError
from solcap.xen.dom0 import compare_ring, resolve_command

pytestmark = pytest.mark.timeout(30)

DUMP = ["'q' pressed -> dumping domain info (now = 1234)"] + [
    f"    VCPU{i}: CPU{i % 4} [has=F] poll=0 upcall_pend=00 upcall_mask=00 dirty_cpu={i % 4}"
    for i in range(200)
]


def serial_form(lines: list[str], stamp: str = "") -> bytes:
    return "".join(f"(XEN) {stamp}{line}\r\n" for line in lines).encode()


def ring_form(lines: list[str], stamp: str = "") -> bytes:
    return "".join(f"(XEN) {stamp}{line}\n" for line in lines).encode()


BOOT = ["Xen version 4.17.5", "Command line: console=com1", "Brought up 4 CPUs"]


def test_complete_when_the_ring_holds_the_whole_dump() -> None:
    result = compare_ring(serial_form(DUMP), ring_form(BOOT + DUMP))
    assert result.complete and result.missing_lines == 0 and result.missing_bytes == 0
    assert result.serial_lines == len(DUMP) and result.ring_is_suffix
    assert result.first_missing_line is None
    assert result.serial_bytes == len(ring_form(DUMP))


def test_a_wrapped_ring_loses_the_start_of_the_dump() -> None:
    full = ring_form(BOOT + DUMP)
    size = 4096
    ring = full[-size:]  # Xen's ring: the last conring_size bytes, cut anywhere
    result = compare_ring(serial_form(DUMP), ring)
    kept_whole = ring.split(b"\n", 1)[1].count(b"\n")
    assert result.ring_lines == kept_whole
    assert result.missing_lines == len(DUMP) - kept_whole > 0
    assert result.first_missing_line == DUMP[0] and result.first_missing_index == 0
    assert result.ring_is_suffix
    fragment = ring.split(b"\n", 1)[0].decode()
    assert result.partial_line == fragment and DUMP[result.missing_lines - 1].endswith(fragment)
    # every byte of the dump is either missing or in the ring (the ring is all dump here)
    assert result.serial_bytes - result.missing_bytes == size
    assert "LOST" in result.summary() and DUMP[0] in result.summary()


def test_timestamps_and_carriage_returns_are_normalised() -> None:
    serial = serial_form(DUMP, "[2024-05-01 10:00:00.123] ")
    ring = ring_form(BOOT + DUMP, "[2024-05-01 10:00:00.123] ")
    assert compare_ring(serial, ring).complete


def test_dom0_lines_on_the_serial_line_are_not_counted() -> None:
    serial = (
        serial_form(DUMP[:50]) + b"[  12.345] hvc0 said something\r\r\n" + serial_form(DUMP[50:])
    )
    assert compare_ring(serial, ring_form(BOOT + DUMP)).complete


def test_a_ring_copy_that_differs_is_not_a_suffix() -> None:
    changed = [*DUMP[:100], "something else entirely", *DUMP[101:]]
    result = compare_ring(serial_form(DUMP), ring_form(BOOT + changed))
    assert result.missing_lines == 1 and result.first_missing_index == 100
    assert not result.ring_is_suffix


def test_an_older_copy_and_later_lines_do_not_confuse_the_match() -> None:
    old = ["'q' pressed -> dumping domain info (now = 1000)", *DUMP[1:]]
    later = ["*** Serial input to DOM0 (type 'CTRL-a' three times to switch input)"]
    result = compare_ring(serial_form(DUMP), ring_form(BOOT + old + DUMP + later))
    assert result.complete and result.ring_lines == len(DUMP)
    # the new copy's head lost: only its own tail counts, never the old copy's lines
    wrapped = ring_form(DUMP[150:] + later)
    result = compare_ring(serial_form(DUMP), wrapped)
    assert result.missing_lines == 150 and result.first_missing_line == DUMP[0]
    assert result.ring_is_suffix and result.partial_line == ""


def test_command_names_resolve_both_ways() -> None:
    assert resolve_command("xl-info") == ("xl-info", "xl info -n")
    assert resolve_command("xenpm get-cpu-topology") == ("cpu-topology", "xenpm get-cpu-topology")
    assert resolve_command("xl list") == ("xl_list", "xl list")
    with pytest.raises(UsageError):
        resolve_command("  ")
