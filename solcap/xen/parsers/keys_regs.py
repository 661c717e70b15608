"""Keys ``d`` and ``0``: registers and stacks per CPU (``d``) or per Dom0 vCPU (``0``).

``d`` (keyhandler.c dump_registers → dump_execstate): the CPU that took the key dumps its own
state first, then every other online CPU is asked in turn (an IPI; these are the *remote*
CPUs). Each section is ``*** Dumping CPU<n> host state: ***`` (Xen's own context) or
``*** Dumping CPU<n> guest state (d<D>v<V>): ***`` (the guest that CPU was running).
``0`` (dump_hwdom_registers) prints ``*** Dumping Dom0 vcpu#<n> state: ***`` per vCPU.

Each section then holds what ``show_execution_state`` prints for the architecture:

* x86_64: ``----[ Xen-<ver>  x86_64  debug=<y|n>  <taint> ]----``, ``CPU:``, ``RIP:
  <cs>:[<addr>] <symbol>``, ``RFLAGS: … [EM: n] CONTEXT: <ctx>``, register pairs,
  ``Xen code around <addr> (<symbol>):`` with the bytes, ``Xen|Guest stack trace from
  rsp=<addr>:`` with stack words, ``Xen call trace:`` with frames ``[<addr>] [R|S]
  <file>#<function>+<off>/<size>`` (4.17; 4.8–4.16 print no R/S marker and often no file).
* arm64: the same banner with ``arm64``, ``PC:``/``LR:`` (with a symbol in Xen context),
  ``SP_EL0``/``SP_EL1``, ``CPSR: … MODE:<mode>``, ``X0:``–``X28``/``FP``, system registers
  one per line, blank lines between groups, stack traces from ``sp=`` and frames that end
  ``(PC)`` or ``(LR)``.
"""

from __future__ import annotations

import re
from typing import Any

from solcap.xen.parsers.common import Result, finish, note_shape, rx, start, vcpu_ref

_R = rx
D_HEADER = _R(r"'.' pressed -> dumping registers")
Z_HEADER = _R(r"'.' pressed -> dumping Dom0's registers")
HOST = _R(r"\*\*\* Dumping CPU(\d+) host state: \*\*\*")
GUEST = _R(r"\*\*\* Dumping CPU(\d+) guest state \((\S+)\): \*\*\*")
DOM0_VCPU = _R(r"\*\*\* Dumping Dom(\d+) vcpu#(\d+) state: \*\*\*")
BANNER = _R(r"----\[ Xen-(\S+) +(\S+) +debug=([yn]) +(.*?) *\]----")
IP = _R(r"(RIP|EIP|PC|LR): +(?:([0-9a-f]{4}):)?(?:\[<([0-9a-f]+)>\]|([0-9a-f]+))(?: (.*))?")
RFLAGS = _R(r"(RFLAGS|EFLAGS): ([0-9a-f]+) +(?:EM: (\d+) +)?CONTEXT: (.*)")
CPSR = _R(r"CPSR: +([0-9a-f]+) MODE:(.*)")
PAIRS = re.compile(r"(?:\s*[A-Za-z][\w]{0,15}: +[0-9a-f]{1,16}(?=\s|$))+\s*")
PAIR = re.compile(r"([A-Za-z][\w]{0,15}): +([0-9a-f]{1,16})")
CODE_HDR = _R(r"Xen code around <([0-9a-f]+)> \((.*)\):")
CODE = re.compile(r"(?: <?[0-9a-f]{2}>?)+")
STACK_HDR = _R(r"(Xen|Guest) stack trace from (\w+)=([0-9a-f]+):")
WORDS = re.compile(r" +(?:[0-9a-f]{8,16} ?)+")
TRACE_HDR = "Xen call trace:"
FRAME = _R(r" +\[<([0-9a-f]+)>\](?: ([A-Z]))? ?(.*?)(?: \((PC|LR)\))?")
SYMBOL = _R(r"(.+?)\+(0x[0-9a-f]+|0)/(0x[0-9a-f]+)")
# What a crash prints around show_execution_state (common/bug.c, drivers/char/console.c panic).
CRASH = _R(
    r"(Xen (?:BUG|WARN) at .*|Assertion '.*' failed at .*|FATAL (?:PAGE FAULT|TRAP).*"
    r"|CPU\d+: Unexpected Trap: .*)"
)
PANIC = _R(r"Panic on CPU (\d+):")
STARS = re.compile(r"\*{20,}")
AFTER = _R(r"(Manual reset required .*|Reboot in five seconds\.\.\.|Rebooting now.*)")
STACK_NOTES = (
    "Fault while accessing guest memory.",
    "Failed to convert stack to physical address",
    "Stack empty.",
)


def symbol(text: str) -> dict[str, Any]:
    """``arch/x86/domain.c#default_idle+0xc6/0xf0`` → file, function, offset, size."""
    text = text.strip()
    m = SYMBOL.fullmatch(text)
    name = m.group(1) if m else text
    file, _, function = name.rpartition("#")
    return {
        "symbol": text or None,
        "file": file or None,
        "function": function or None,
        "offset": int(m.group(2), 16) if m else None,
        "size": int(m.group(3), 16) if m else None,
    }


def frame(m: re.Match[str]) -> dict[str, Any]:
    """One call-trace frame: address, the R(eliable)/S(uspect) marker, symbol parts and the
    arm ``(PC)``/``(LR)`` origin."""
    out: dict[str, Any] = {"address": m.group(1), "marker": m.group(2)}
    out.update(symbol(m.group(3)))
    out["origin"] = m.group(4)
    return out


def _section(kind: str, cpu: int | None, vcpu: int | None, who: Any) -> dict[str, Any]:
    return {
        "kind": kind,
        "domain": 0 if kind == "dom0-vcpu" else None,
        "cpu": cpu,
        "vcpu": vcpu,
        "guest": who,
        "remote": False,
        "xen": None,
        "arch": None,
        "debug": None,
        "taint": None,
        "context": None,
        "registers": {},
        "ip": None,
        "lr": None,
        "mode": None,
        "code": None,
        "stack": None,
        "call_trace": None,
    }


def _new_section(line: str) -> dict[str, Any] | None:
    if m := HOST.fullmatch(line):
        return _section("host", int(m.group(1)), None, None)
    if m := GUEST.fullmatch(line):
        return _section("guest", int(m.group(1)), None, vcpu_ref(m.group(2)))
    if m := DOM0_VCPU.fullmatch(line):
        kind = "dom0-vcpu" if m.group(1) == "0" else "domain-vcpu"
        sec = _section(kind, None, int(m.group(2)), None)
        sec["domain"] = int(m.group(1))
        return sec
    return None


def _parse(key: str, data: bytes) -> Result:
    result, lines = start(key, data)
    unparsed: list[str] = result["unparsed"]
    sections: list[dict[str, Any]] = []
    sec: dict[str, Any] | None = None
    sub = ""  # "", code, stack, trace
    header = False
    crash: dict[str, Any] = {"reasons": [], "panic_cpu": None, "after": None}
    for line in lines.xen:
        m: re.Match[str] | None
        if D_HEADER.fullmatch(line) or Z_HEADER.fullmatch(line):
            header = True
        elif m := CRASH.fullmatch(line):
            crash["reasons"].append(m.group(1))
        elif m := PANIC.fullmatch(line):
            crash["panic_cpu"] = int(m.group(1))
        elif STARS.fullmatch(line) and (crash["reasons"] or crash["panic_cpu"] is not None):
            pass
        elif (m := AFTER.fullmatch(line)) and crash["panic_cpu"] is not None:
            crash["after"] = m.group(1)
        elif new := _new_section(line):
            sec = new
            sections.append(sec)
            sub = ""
        elif BANNER.fullmatch(line) and (sec is None or sec["xen"] is not None):
            # A crash, BUG or WARN prints show_execution_state without a "Dumping" line.
            sec = _section("state", None, None, None)
            sections.append(sec)
            sub = ""
            _line(result, sec, line, sub)
        elif not line.strip():
            sub = ""
        elif sec is None or (nsub := _line(result, sec, line, sub)) is None:
            unparsed.append(line)
        else:
            sub = nsub
    first = sections[0]["cpu"] if sections else None
    for s in sections:
        s["remote"] = s["kind"] in ("host", "guest") and s["cpu"] != first
    result["header"] = header
    result["sections"] = sections
    result["crash"] = crash if crash["reasons"] or crash["panic_cpu"] is not None else None
    last = sections[-1] if sections else None
    if header and last is None:
        result["truncated"] = True
    elif (
        last
        and last["kind"] in ("host", "state")
        and last["call_trace"] is None
        and (last["context"] or "hypervisor").startswith("hypervisor")
    ):
        # Xen always ends a dump of its own context with the call trace.
        result["truncated"] = True
    return finish(result, lines)


def _line(result: Result, sec: dict[str, Any], line: str, sub: str) -> str | None:
    """Apply one line to a section; the new sub-state, or None if not recognised."""
    m: re.Match[str] | None
    if m := BANNER.fullmatch(line):
        sec.update(xen=m.group(1), arch=m.group(2), debug=m.group(3) == "y", taint=m.group(4))
        note_shape(result, xen=m.group(1), arch=m.group(2))
        return ""
    if sub == "code" and CODE.fullmatch(line):
        sec["code"]["bytes"] = line.strip()
        return ""
    if sub == "stack" and WORDS.fullmatch(line):
        sec["stack"]["words"].extend(line.split())
        return "stack"
    if sub == "stack" and line.strip() in STACK_NOTES:
        sec["stack"]["note"] = line.strip()
        return "stack"
    if sub == "trace" and (m := FRAME.fullmatch(line)):
        sec["call_trace"].append(frame(m))
        if m.group(2):
            note_shape(result, "trace-markers")
        return "trace"
    if m := IP.fullmatch(line):
        target = "lr" if m.group(1) == "LR" else "ip"
        sec[target] = {
            "register": m.group(1),
            "cs": m.group(2),
            "address": m.group(3) or m.group(4),
        }
        sec[target].update(symbol(m.group(5) or ""))
        sec["registers"][m.group(1).lower()] = m.group(3) or m.group(4)
        return ""
    if m := RFLAGS.fullmatch(line):
        sec["registers"][m.group(1).lower()] = m.group(2)
        if m.group(3) is not None:
            sec["registers"]["em"] = m.group(3)
        sec["context"] = m.group(4)
        return ""
    if m := CPSR.fullmatch(line):
        sec["registers"]["cpsr"] = m.group(1)
        sec["mode"] = m.group(2)
        return ""
    if PAIRS.fullmatch(line):
        for name, value in PAIR.findall(line):
            if name == "CPU":
                sec["cpu"] = int(value) if sec["cpu"] is None and value.isdigit() else sec["cpu"]
            else:
                sec["registers"][name.lower()] = value
        return ""
    if m := CODE_HDR.fullmatch(line):
        sec["code"] = {"address": m.group(1), "symbol": m.group(2), "bytes": None}
        return "code"
    if m := STACK_HDR.fullmatch(line):
        sec["stack"] = {
            "owner": m.group(1).lower(),
            "register": m.group(2),
            "from": m.group(3),
            "words": [],
            "note": None,
        }
        return "stack"
    if line == TRACE_HDR:
        sec["call_trace"] = []
        return "trace"
    return None


def parse_d(data: bytes) -> Result:
    """``sections``: one per CPU dump, in order: ``{kind, domain, cpu, guest ({domain,
    vcpu, idle} for a guest section), remote (not the CPU that took the key), xen, arch,
    debug, taint, context, registers {name: hex}, ip/lr ({register, cs, address, symbol,
    file, function, offset, size}), mode (arm CPSR), code {address, symbol, bytes}, stack
    {owner, register, from, words, note}, call_trace [{address, marker, symbol, file,
    function, offset, size, origin}]}``. ``header``: the ``'d' pressed`` line was seen.

    ``crash``: None, or for a crash dump ``{reasons: ["Xen BUG at …", …], panic_cpu,
    after}`` (the lines Xen prints around the state dump).

    ``kind``: ``host``/``guest`` (``d``), ``dom0-vcpu``/``domain-vcpu`` (``0``, and a crashed
    domain's ``*** Dumping Dom<n> vcpu#<v> state``), ``state`` (a banner with no ``***``
    line: a crash, ``BUG`` or ``WARN`` printed by the same ``show_execution_state``)."""
    return _parse("d", data)


def parse_0(data: bytes) -> Result:
    """As :func:`parse_d`, with ``kind: dom0-vcpu`` sections carrying ``vcpu``."""
    return _parse("0", data)
