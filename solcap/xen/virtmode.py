"""Classify a Xen guest's virtualisation mode (HVM, PVHVM, PV, PVH) from its kernel log.

Pure text analysis of the lines Linux prints while booting on Xen:

* ``Booting paravirtualized kernel on <pv_info.name>`` (``arch/x86/kernel/paravirt.c``
  default_banner) or, from a PV kernel's own ``xen_banner`` (``arch/x86/xen/enlighten_pv.c``;
  current kernels), ``Booting kernel on Xen``: the name is ``Xen`` for PV,
  ``Xen HVM`` for an HVM guest with PV enlightenments, ``Xen PVH`` for PVH
  (``arch/x86/xen/enlighten_hvm.c`` init_hvm_pv_info).
* ``Hypervisor detected: Xen HVM`` / ``Xen PV`` (``arch/x86/kernel/cpu/hypervisor.c``).
* PV drivers in an HVM guest: ``Xen HVM callback vector for event delivery is enabled``,
  ``Xen: using vcpuop timer interface`` (``arch/x86/xen/time.c``), ``xen: PV spinlocks``.

An HVM guest whose kernel uses none of Xen's PV interfaces is plain HVM; ``DMI: Xen HVM
domU`` alone still identifies a Xen HVM guest.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass


class VirtMode(enum.StrEnum):
    HVM = "HVM"
    PVHVM = "PVHVM"
    PV = "PV"
    PVH = "PVH"
    UNKNOWN = "unknown"


_BANNER = re.compile(
    r"Booting (?:paravirtualized )?kernel on (Xen(?: HVM| PVH)?|bare hardware|KVM)\s*$"
)
_DETECTED = re.compile(r"Hypervisor detected: (Xen(?: HVM| PV)?)\s*$")
_PV_DRIVERS = (
    re.compile(r"Xen HVM callback vector for event delivery is enabled"),
    re.compile(r"Xen: using vcpuop timer interface"),
    re.compile(r"xen: PV spinlocks enabled"),
    re.compile(r"clocksource: Switched to clocksource xen"),
)
_PV_ONLY = re.compile(r"Setting APIC routing to Xen PV|Xen: \[mem ")
_DMI_HVM = re.compile(r"DMI: Xen HVM domU")


@dataclass(frozen=True)
class Classification:
    """The mode and the kernel log lines that decided it."""

    mode: VirtMode
    evidence: tuple[str, ...]
    reason: str


def classify(dmesg: str | bytes) -> Classification:
    """Classify from ``dmesg`` text (timestamps and syslog prefixes are fine)."""
    text = dmesg.decode("utf-8", "replace") if isinstance(dmesg, bytes) else dmesg
    banner: str | None = None
    detected: str | None = None
    evidence: list[str] = []
    pv_drivers: list[str] = []
    pv_only = False
    dmi_hvm = False
    for line in text.splitlines():
        line = line.rstrip()
        if m := _BANNER.search(line):
            banner = m.group(1)
            evidence.append(line.strip())
        elif m := _DETECTED.search(line):
            detected = m.group(1)
            evidence.append(line.strip())
        elif any(p.search(line) for p in _PV_DRIVERS):
            pv_drivers.append(line.strip())
        elif _PV_ONLY.search(line):
            pv_only = True
            evidence.append(line.strip())
        elif _DMI_HVM.search(line):
            dmi_hvm = True
            evidence.append(line.strip())
    if banner == "Xen PVH":
        return Classification(VirtMode.PVH, tuple(evidence), "paravirt banner names Xen PVH")
    if banner == "Xen" or detected == "Xen PV" or (detected == "Xen" and pv_only):
        return Classification(VirtMode.PV, tuple(evidence), "kernel runs as a Xen PV guest")
    hvm = detected == "Xen HVM" or banner == "Xen HVM" or dmi_hvm
    if hvm and (banner == "Xen HVM" or pv_drivers):
        return Classification(
            VirtMode.PVHVM,
            tuple(evidence + pv_drivers),
            "HVM guest using Xen PV interfaces (event channel callback / PV timer)",
        )
    if hvm:
        return Classification(
            VirtMode.HVM, tuple(evidence), "Xen HVM guest without PV interfaces in its log"
        )
    if pv_drivers:
        return Classification(
            VirtMode.UNKNOWN,
            tuple(pv_drivers),
            "Xen PV interfaces seen but no boot banner: the log may start after boot",
        )
    return Classification(VirtMode.UNKNOWN, (), "no Xen lines in the kernel log")
