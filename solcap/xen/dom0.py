"""Dom0 over SSH: run the Xen tools, record their output, and show what Xen's ring lost.

Why: ``xl debug-keys q; xl dmesg`` is how most people read a dump, and on a host with many
domains it silently loses the start of it — ``xl dmesg`` reads Xen's console *ring*, which
keeps only the last ``conring_size`` bytes, while the serial line receives every byte (debug
keys bypass log filtering and the serial driver waits instead of dropping). solcap records
both and says exactly what the ring lost (:func:`compare_ring`).

Files inside a recording (all private, like the rest of it):

``dom0/<name>.txt``
    stdout of one Dom0 command (:data:`DOM0_COMMANDS` names; other commands get a safe name).
``dom0/xl-dmesg-after-<key>.txt``
    ``xl dmesg`` taken right after a key was triggered with ``xl debug-keys`` over SSH.
``compare/<key>.json``
    the :class:`RingComparison` of that key's serial segment with that ``xl dmesg``.

The SSH side uses :mod:`solcap.transports.ssh` (verified host keys); output is decoded there as
UTF-8 with replacement, so a byte that is not UTF-8 arrives as U+FFFD — the serial capture, not the
SSH copy, is the byte-exact record.
"""

from __future__ import annotations

import difflib
import hashlib
import os
from dataclasses import asdict, dataclass

from solcap.capture.recording import Recording, Segment, safe_name
from solcap.config.limits import key_problem
from solcap.console.core import Console
from solcap.errors import ExpectTimeout, TargetError, UsageError
from solcap.transports.ssh import SshConnection
from solcap.xen.console import dump_start_pattern, refuse_dangerous
from solcap.xen.parsers import parse_dump
from solcap.xen.parsers.text import XEN_PREFIX, clean, split_lines

#: The Dom0 commands the capture runbook collects, by the short name the CLI uses.
DOM0_COMMANDS: dict[str, str] = {
    "xl-dmesg": "xl dmesg",
    "xl-info": "xl info -n",
    "cpu-topology": "xenpm get-cpu-topology",
    "vcpu-list": "xl vcpu-list",
    "xenstore-ls": "xenstore-ls",
}


def resolve_command(name_or_cmd: str) -> tuple[str, str]:
    """``"xl-info"`` or ``"xl info -n"`` → ``("xl-info", "xl info -n")``; other commands get a
    file-safe name (``"xl list"`` → ``"xl_list"``)."""
    text = name_or_cmd.strip()
    if not text:
        raise UsageError("empty Dom0 command")
    if text in DOM0_COMMANDS:
        return text, DOM0_COMMANDS[text]
    for name, command in DOM0_COMMANDS.items():
        if command == text:
            return name, command
    return safe_name(text), text


def run_dom0(
    ssh: SshConnection,
    recording: Recording,
    name_or_cmd: str,
    *,
    file_name: str | None = None,
    timeout: float = 120.0,
) -> bytes:
    """Run one Dom0 command over SSH and keep its stdout as ``dom0/<name>.txt``.

    The output is stored even when the command fails (it may explain why); a non-zero exit
    then raises :class:`TargetError` quoting stderr.
    """
    name, command = resolve_command(name_or_cmd)
    rel = f"dom0/{safe_name(file_name or name)}.txt"
    recording.event("dom0-command", command=command, host=ssh.target.display)
    result = ssh.run(command, sudo=ssh.target.sudo, timeout=timeout)
    data = result.stdout.encode("utf-8")
    fd = recording.open_file(rel)  # inside the recording, never through a symlink
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    recording.event(
        "dom0-output",
        command=command,
        file=rel,
        bytes=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        exit_status=result.exit_status,
    )
    if not result.ok:
        last = result.stderr.strip().splitlines()[-1:] or ["(no message)"]
        raise TargetError(ssh.target.display, f"`{command}` exited {result.exit_status}: {last[0]}")
    return data


# --------------------------------------------------------------------------- ring loss


@dataclass(frozen=True)
class RingComparison:
    """What ``xl dmesg`` kept of a dump the serial line received in full.

    Line counts are Xen lines after normalising both sides (``(XEN)`` prefix, console
    timestamps, ``\\r`` and escape sequences removed). Byte counts are in the ring's own form,
    ``(XEN) <line>\\n`` per line, so ``missing_bytes`` is what a bigger ``conring_size`` would
    have had to hold.
    """

    serial_lines: int
    ring_lines: int
    missing_lines: int
    serial_bytes: int
    missing_bytes: int
    first_missing_line: str | None
    first_missing_index: int | None
    #: The ring's copy is an unbroken tail of the serial copy (lost only from the start).
    ring_is_suffix: bool
    #: The last missing line survives in the ring only as this cut-off tail ("" if none).
    partial_line: str = ""

    @property
    def complete(self) -> bool:
        """The ring holds every line of the dump."""
        return self.missing_lines == 0

    def summary(self) -> str:
        """Two or three lines for people (``solcap compare``)."""
        if self.serial_lines == 0:
            return "serial segment holds no Xen lines: nothing to compare"
        if self.complete:
            return (
                f"xl dmesg holds the whole dump: {self.serial_lines} lines, "
                f"{self.serial_bytes} bytes"
            )
        shape = (
            "the ring kept an unbroken tail of the dump; its start was overwritten"
            if self.ring_is_suffix
            else "the ring's copy is NOT a tail of the serial copy (lines differ or interleave)"
        )
        text = (
            f"xl dmesg LOST {self.missing_lines} of {self.serial_lines} lines "
            f"({self.missing_bytes} of {self.serial_bytes} bytes); {shape}\n"
            f"first missing line ({self.first_missing_index}): {self.first_missing_line}"
        )
        if self.partial_line:
            text += f"\nring starts mid-line: {self.partial_line!r}"
        return text


def _ring_size(line: str) -> int:
    return len((XEN_PREFIX + line).encode("utf-8")) + 1


def _leading_fragment(dmesg: bytes) -> str:
    """The ring's first line when the ring begins mid-line (no ``(XEN)`` at its start)."""
    first = dmesg.split(b"\n", 1)[0].decode("utf-8", "replace")
    if first.lstrip("\r").startswith("(XEN)"):
        return ""
    return clean(first).rstrip()


def compare_ring(serial_dump: bytes, dmesg: bytes) -> RingComparison:
    """Find the serial dump's lines in ``xl dmesg`` and report what the ring lost.

    The dump's copy in the ring is anchored at the *last* occurrence of the dump's last line
    (an older dump of the same key may still sit earlier in the ring) and matched line by line
    over at most as many ring lines as the dump has.
    """
    serial = split_lines(serial_dump).xen
    ring = split_lines(dmesg).xen
    n = len(serial)
    total = sum(_ring_size(line) for line in serial)
    if n == 0:
        return RingComparison(0, 0, 0, total, 0, None, None, True)
    anchor = next((j for j in range(len(ring) - 1, -1, -1) if ring[j] == serial[-1]), None)
    window = ring if anchor is None else ring[max(0, anchor - n + 1) : anchor + 1]
    matcher = difflib.SequenceMatcher(None, serial, window, autojunk=False)
    kept = [False] * n
    for block in matcher.get_matching_blocks():
        for i in range(block.a, block.a + block.size):
            kept[i] = True
    missing = [i for i, ok in enumerate(kept) if not ok]
    first = missing[0] if missing else None
    m = len(missing)
    is_suffix = missing == list(range(m)) and (m == n or window[-(n - m) :] == serial[m:])
    partial = ""
    missing_bytes = sum(_ring_size(serial[i]) for i in missing)
    if m and is_suffix:
        fragment = _leading_fragment(dmesg)
        starts_dump = anchor is not None and anchor - (n - m) + 1 == 0
        whole = XEN_PREFIX + serial[m - 1]  # the cut may fall inside the prefix
        if fragment and starts_dump and whole.endswith(fragment):
            partial = fragment
            missing_bytes -= len(fragment.encode("utf-8")) + 1
    return RingComparison(
        serial_lines=n,
        ring_lines=n - m,
        missing_lines=m,
        serial_bytes=total,
        missing_bytes=missing_bytes,
        first_missing_line=serial[first] if first is not None else None,
        first_missing_index=first,
        ring_is_suffix=is_suffix,
        partial_line=partial,
    )


# --------------------------------------------------------------------------- SSH trigger


@dataclass(frozen=True)
class SshKeyResult:
    """A key triggered with ``xl debug-keys`` over SSH: serial segment, ring copy, verdict."""

    segment: Segment
    dmesg_file: str
    comparison: RingComparison


def segment_name(key: str) -> str:
    return "star" if key == "*" else key


def trigger_key_via_ssh(
    ssh: SshConnection,
    console: Console,
    recording: Recording,
    key: str,
    quiet: float,
    *,
    name: str | None = None,
    allow_dangerous: bool = False,
    start_timeout: float = 10.0,
    dump_timeout: float = 3600.0,
) -> SshKeyResult:
    """Run ``xl debug-keys K`` over SSH while ``console`` records the serial line.

    ``recording`` must be the console's sink from its start (console offsets are
    ``console.raw`` offsets). No input switching is needed: Xen runs the handler for Dom0 and
    prints the dump on serial in full. The segment starts where the line was quiet before the
    command and ends at the first ``quiet`` period after the dump's first line; then
    ``xl dmesg`` is fetched and compared with it (``compare/<name>.json``).
    """
    if (problem := key_problem(key)) is not None:
        raise UsageError(f"debug key: {problem}")
    refuse_dangerous([key], allowed=allow_dangerous)
    label = name or segment_name(key)
    console.settle(quiet, timeout=dump_timeout)
    start = console.received
    recording.event("key", key=key, via="ssh", host=ssh.target.display)
    result = ssh.run(f"xl debug-keys {key}", sudo=ssh.target.sudo, timeout=start_timeout + 60.0)
    if not result.ok:
        last = result.stderr.strip().splitlines()[-1:] or ["(no message)"]
        raise TargetError(
            ssh.target.display, f"`xl debug-keys {key}` exited {result.exit_status}: {last[0]}"
        )
    complete, reason = True, ""
    try:
        console.expect([dump_start_pattern(key)], timeout=start_timeout)
    except ExpectTimeout:
        if console.received == start:
            complete = False
            reason = (
                f"no serial output within {start_timeout:g}s (no serial console, or no handler)"
            )
        else:
            reason = "first line not the one this key prints"
    if complete or console.received != start:
        try:
            console.settle(quiet, timeout=dump_timeout)
        except ExpectTimeout:
            complete = False
            reason = (
                f"the line never went quiet for {quiet:g}s within {dump_timeout:g}s; "
                "the dump may go on past this segment"
            )
    end = console.received
    segment = recording.add_segment(label, start, end, complete=complete, reason=reason)
    data = recording.read_range(start, end)
    parsed = parse_dump(key, data)
    if parsed is not None:
        recording.add_json(segment.json_file, parsed)
    label = segment.name  # unique in this recording: a second press keeps its own files
    dmesg_name = f"xl-dmesg-after-{label}"
    dmesg = run_dom0(ssh, recording, "xl-dmesg", file_name=dmesg_name)
    comparison = compare_ring(data, dmesg)
    recording.add_json(f"compare/{safe_name(label)}.json", asdict(comparison))
    recording.event(
        "ring-compare",
        key=key,
        missing_lines=comparison.missing_lines,
        missing_bytes=comparison.missing_bytes,
    )
    return SshKeyResult(segment, f"dom0/{safe_name(dmesg_name)}.txt", comparison)
