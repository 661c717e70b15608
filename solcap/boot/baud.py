"""Baud sanity: the BMC's SOL bit rate, GRUB's ``serial --speed`` and Xen's ``com1=`` must agree.

Why: three parties program or sample the same UART. The BMC samples it at its SOL bit rate
(what the capture reads), GRUB programs it from ``serial --speed=N`` in grub.cfg, and Xen
reprograms it from ``com1=N,…`` on its command line. When one of them differs the capture
does not fail loudly: that party's output arrives as garbage (or as nothing), which looks
exactly like a hung host. So before a harvest or a one-shot edit solcap compares the three and
says *which one* disagrees and *what that does to the capture*.

The BMC is the reference when it is known: the capture is read at its rate, so the other two
are "wrong" relative to it — unless GRUB and Xen agree with each other and only the BMC
differs, in which case the BMC is named (everything on the line is garbled). Pure functions:
no I/O here; the runner gathers the three rates.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from solcap.boot.bootline import split_words

#: ``(XEN) Command line: …`` as Xen prints it at boot (also with a timestamp in the prefix).
XEN_CMDLINE = re.compile(rb"\(XEN\)(?: \[[^\]]*\])? Command line: ([^\r\n]*)")
_GRUB_SERIAL = re.compile(r"^\s*serial\b(.*)$")
_SPEED = re.compile(r"(?:--speed[= ]|-s\s*)(\d+)")
_COM = re.compile(r"^(com[12])=(\d+|auto)")


@dataclass(frozen=True)
class Rates:
    """The three rates (None = not known) and where each came from, for the record."""

    bmc: int | None = None
    grub: int | None = None
    xen: int | None = None
    bmc_from: str = "the BMC's SOL configuration"
    grub_from: str = "grub.cfg"
    xen_from: str = "the booted (XEN) Command line"

    def known(self) -> dict[str, int]:
        return {
            name: rate
            for name, rate in (("bmc", self.bmc), ("grub", self.grub), ("xen", self.xen))
            if rate is not None
        }


def grub_serial_speed(text: str) -> tuple[int | None, int | None]:
    """``(speed, line)`` of the first ``serial`` command in grub.cfg that sets a speed.

    ``serial --unit=0 --speed=115200`` (grub-mkconfig writes GRUB_SERIAL_COMMAND verbatim) and
    the short ``-s 115200`` form. GRUB's default is 9600 when ``serial`` has no speed.
    """
    for number, line in enumerate(text.splitlines(), start=1):
        found = _GRUB_SERIAL.match(line)
        if found is None:
            continue
        speed = _SPEED.search(found.group(1))
        return (int(speed.group(1)) if speed else 9600), number
    return None, None


#: The /etc/default/grub variables whose terminals decide whether GRUB uses the serial line.
GRUB_TERMINALS = ("GRUB_TERMINAL", "GRUB_TERMINAL_INPUT", "GRUB_TERMINAL_OUTPUT")


def grub_defaults_serial_speed(values: Mapping[str, str]) -> int | None:
    """The speed grub-mkconfig (00_header) will program, from the sourced defaults' values.

    None when no ``GRUB_TERMINAL*`` names ``serial`` (GRUB leaves the UART alone). With serial
    but no ``GRUB_SERIAL_COMMAND`` 00_header writes a bare ``serial``: GRUB's 9600.
    """
    terminals = " ".join(values.get(name, "") for name in GRUB_TERMINALS).split()
    if "serial" not in terminals:
        return None
    command = values.get("GRUB_SERIAL_COMMAND", "").strip()
    if not command:
        return 9600
    return grub_serial_speed(command)[0]


def xen_com_speed(cmdline: str, port: str = "com1") -> int | None:
    """The baud rate ``comN=`` programs (None when absent or ``auto``: Xen keeps the firmware's).

    The last occurrence wins, as Xen's parser applies them in order.
    """
    speed: int | None = None
    try:
        words = split_words(cmdline)
    except ValueError:
        words = cmdline.split()
    for word in words:
        found = _COM.match(word)
        if found and found.group(1) == port:
            speed = None if found.group(2) == "auto" else int(found.group(2))
    return speed


def booted_xen_cmdline(capture: bytes) -> str | None:
    """The last ``(XEN) Command line:`` in a capture (the boot that is running now)."""
    last = None
    for last in XEN_CMDLINE.finditer(capture):  # noqa: B007 - the last match is the answer
        pass
    return last.group(1).decode("utf-8", "replace").strip() if last else None


def disagreements(rates: Rates, host: str) -> list[str]:
    """One warning per party that disagrees, saying what it does to the capture; [] if fine."""
    known = rates.known()
    if len(known) < 2 or len(set(known.values())) == 1:
        return []
    bmc, grub, xen = rates.bmc, rates.grub, rates.xen
    if bmc is not None and grub is not None and xen is not None and grub == xen != bmc:
        return [
            f"{host}: the BMC runs SOL at {bmc} bit/s but GRUB ({rates.grub_from}) and Xen "
            f"({rates.xen_from}) both use {grub}: everything on the serial line reaches the "
            f"capture garbled or not at all (fix the BMC: ipmitool sol set "
            f"non-volatile-bit-rate {grub / 1000:g})"
        ]
    warnings: list[str] = []
    if bmc is not None:
        if grub is not None and grub != bmc:
            warnings.append(
                f"{host}: GRUB's serial --speed is {grub} ({rates.grub_from}) but the BMC runs "
                f"SOL at {bmc} bit/s: GRUB's menu reaches the capture garbled, so a one-shot "
                f"edit cannot read it (set serial --speed={bmc} in GRUB_SERIAL_COMMAND)"
            )
        if xen is not None and xen != bmc:
            warnings.append(
                f"{host}: Xen's com1= is {xen} ({rates.xen_from}) but the BMC runs SOL at "
                f"{bmc} bit/s: every (XEN) line and Dom0's hvc0 output reach the capture "
                f"garbled, so debug-key dumps cannot be parsed (use com1={bmc},8n1)"
            )
        return warnings
    assert grub is not None and xen is not None
    return [
        f"{host}: GRUB's serial --speed is {grub} ({rates.grub_from}) but Xen's com1= is {xen} "
        f"({rates.xen_from}): whichever differs from the BMC's SOL rate (unknown here) "
        "reaches the capture garbled"
    ]


__all__ = [
    "GRUB_TERMINALS",
    "XEN_CMDLINE",
    "Rates",
    "booted_xen_cmdline",
    "disagreements",
    "grub_defaults_serial_speed",
    "grub_serial_speed",
    "xen_com_speed",
]
