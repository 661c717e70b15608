"""Key ``r``: scheduler state per cpupool (sched/cpupool.c dump_runq, sched/core.c
schedule_dump, and the credit2/credit schedulers' dump hooks, Xen 4.17).

Layout: global lines (``sched_smt_power_savings``, ``NOW``, ``Online Cpus``, maybe ``Free
Cpus`` with their own ``CPUs info``), then per pool ``Cpupool N:``, ``Cpus:``, granularity,
``Scheduler: <name> (<opt>)``, the scheduler's settings dump, ``CPUs info:`` and one
``CPU[nn] current=…`` line per scheduling resource (credit adds its per-CPU run queue there).
The dump has no end marker; it is complete when every pool listed every CPU it owns.
"""

from __future__ import annotations

import re
from typing import Any

from solcap.xen.parsers.common import Result, finish, note_shape, rx, start, to_int, vcpu_ref
from solcap.xen.parsers.text import bitmap, cpulist

_R = rx
SMT = _R(r"sched_smt_power_savings: (enabled|disabled)")
NOW = _R(r"NOW=(-?\d+)")
ONLINE = _R(r"Online Cpus: (.*)")
FREE = _R(r"Free Cpus: (.*)")
POOL = _R(r"Cpupool (\d+):")
POOL_CPUS = _R(r"Cpus: (.*)")
GRAN = _R(r"Scheduling granularity: (\S+), (\d+) CPUs? per sched-resource")
SCHED = _R(r"Scheduler: (.*) \((\S+)\)")
CPUS_INFO = "CPUs info:"
CPU_CUR = _R(r"CPU\[(\d+)\] current=(\S+), curr=(\S+), prev=(\S+)")
CPU_OTHER = _R(r"CPU\[(\d+)\] current=(\S+)")
# credit2
ACTIVE_Q = _R(r"Active queues: (\d+)")
RUNQ_HDR = _R(r"Runqueue (\d+):")
C2_CPU = _R(r"CPU\[(\d+)\] runq=(-?\d+), sibling=\{(.*)\}, core=\{(.*)\}")
C2_DOM = _R(r"\tDomain: (-?\d+) w (\d+) c (\d+) v (\d+)")
# credit
C1_CPU = _R(r"CPU\[(\d+)\] nr_run=(-?\d+), sort=(-?\d+), sibling=\{(.*)\}, core=\{(.*)\}")
C1_IDLERS = _R(r"idlers: (.*)")
# both
SETTING = _R(r"\t([A-Za-z][\w -]*?)\s*= (.*)")
MASK = _R(r"\t(idlers|tickled|fully idle cores): (.*)")
UNIT_LINE = _R(r"\t\s*(\d+): (\[.*)")
RUN_LINE = _R(r"\trun: (\[.*)")
UNIT = _R(r"\[(-?\d+)\.(\d+)\](.*)")
WEIGHT = _R(r"\[w=(\d+)(?:,cap=(\d+))?\]")
LOAD = _R(r"load=(-?\d+) \(~(-?\d+)%\)")
BUDGET = _R(r"budget=(-?\d+)\((-?\d+)\)")
AVELOAD = _R(r"(-?\d+) \(~(-?\d+)%\)")
FIELD = _R(r"(pri|flags|cpu|credit)=(-?[0-9a-f]+)")


def _value(text: str) -> int | str:
    n = to_int(text)
    return text if n is None else n


def unit(text: str) -> dict[str, Any] | None:
    """A credit/credit2 unit line ``[d.u] pri=… flags=… cpu=… credit=… [w=…] load=…``."""
    m = UNIT.fullmatch(text.strip())
    if not m:
        return None
    rest = m.group(3)
    out: dict[str, Any] = {"domid": int(m.group(1)), "unit": int(m.group(2))}
    for f in FIELD.finditer(rest):
        out[f.group(1)] = to_int(f.group(2), 16 if f.group(1) == "flags" else 10)
    if w := WEIGHT.search(rest):
        out["weight"] = int(w.group(1))
        out["cap"] = to_int(w.group(2))
    if b := BUDGET.search(rest):
        out["budget"], out["budget_quota"] = int(b.group(1)), int(b.group(2))
    if ld := LOAD.search(rest):
        out["load"], out["load_pct"] = int(ld.group(1)), int(ld.group(2))
    return out


def _pool(pool_id: int | None, cpus: list[int] | None) -> dict[str, Any]:
    return {
        "id": pool_id,
        "cpus": cpus,
        "granularity": None,
        "scheduler": None,
        "settings": {},
        "runqueues": [],
        "domains": [],
        "active_units": [],
        "cpus_info": None,
    }


class _State:
    """Where in the dump we are; one instance per parse."""

    def __init__(self) -> None:
        self.pool: dict[str, Any] | None = None
        self.phase = ""  # "", rq_summary, domains, rq_detail, runq, active, cpus
        self.rq: dict[str, Any] | None = None
        self.dom: dict[str, Any] | None = None
        self.cpu: dict[str, Any] | None = None
        self.detail_cpu: dict[str, Any] | None = None


def _scheduler_line(st: _State, pool: dict[str, Any], line: str) -> bool:
    """Lines between ``Scheduler:`` and ``CPUs info:``; False if not recognised."""
    m: re.Match[str] | None
    if m := ACTIVE_Q.fullmatch(line):
        pool["settings"]["active_queues"] = int(m.group(1))
    elif m := RUNQ_HDR.fullmatch(line):
        rq_id = int(m.group(1))
        known = [r for r in pool["runqueues"] if r["id"] == rq_id]
        if st.phase in ("", "rq_summary") or not known:
            st.rq = {"id": rq_id, "cpu_details": [], "queue": []}
            pool["runqueues"].append(st.rq)
            st.phase = "rq_summary" if st.phase in ("", "rq_summary") else "rq_detail"
        else:
            st.rq = known[0]
            st.phase = "rq_detail"
        st.detail_cpu = None
    elif line == "Domain info:":
        st.phase = "domains"
    elif m := C2_DOM.fullmatch(line):
        st.dom = {
            "domid": int(m.group(1)),
            "weight": int(m.group(2)),
            "cap": int(m.group(3)),
            "nr_units": int(m.group(4)),
            "units": [],
        }
        pool["domains"].append(st.dom)
    elif line == "RUNQ:":
        st.phase = "runq"
    elif m := C2_CPU.fullmatch(line):
        st.detail_cpu = {
            "cpu": int(m.group(1)),
            "runq": int(m.group(2)),
            "sibling": cpulist(m.group(3)),
            "core": cpulist(m.group(4)),
            "run": None,
        }
        if st.rq is not None:
            st.rq["cpu_details"].append(st.detail_cpu)
    elif (m := RUN_LINE.fullmatch(line)) and st.detail_cpu is not None:
        st.detail_cpu["run"] = unit(m.group(1))
    elif m := UNIT_LINE.fullmatch(line):
        u = unit(m.group(2))
        if u is None:
            return False
        if st.phase == "domains" and st.dom is not None:
            st.dom["units"].append(u)
        elif st.phase == "runq" and st.rq is not None:
            st.rq["queue"].append(u)
        elif st.phase == "active":
            pool["active_units"].append(u)
        else:
            return False
    elif m := MASK.fullmatch(line):
        target = st.rq if st.phase == "rq_summary" and st.rq is not None else pool["settings"]
        key = m.group(1).replace(" ", "_")
        target[key] = bitmap(m.group(2))
    elif m := C1_IDLERS.fullmatch(line):
        pool["settings"]["idlers"] = bitmap(m.group(1))
    elif line == "info:":
        st.phase = ""
    elif line == "active units:":
        st.phase = "active"
    elif m := SETTING.fullmatch(line):
        target = st.rq if st.phase == "rq_summary" and st.rq is not None else pool["settings"]
        name, value = m.group(1).strip(), m.group(2).strip()
        if name == "cpus":
            target[name] = cpulist(value)
        elif name == "aveload" and (a := AVELOAD.fullmatch(value)):
            target["aveload"], target["aveload_pct"] = int(a.group(1)), int(a.group(2))
        else:
            target[name] = _value(value)
    else:
        return False
    return True


def _cpus_line(st: _State, pool: dict[str, Any], line: str) -> bool:
    m: re.Match[str] | None
    info: list[dict[str, Any]] = pool["cpus_info"]
    if m := CPU_CUR.fullmatch(line):
        st.cpu = {
            "cpu": int(m.group(1)),
            "current": vcpu_ref(m.group(2)),
            "curr": vcpu_ref(m.group(3)),
            "prev": vcpu_ref(m.group(4)),
            "others": [],
        }
        info.append(st.cpu)
    elif (m := CPU_OTHER.fullmatch(line)) and st.cpu is not None:
        st.cpu["others"].append({"cpu": int(m.group(1)), "current": vcpu_ref(m.group(2))})
    elif (m := C1_CPU.fullmatch(line)) and st.cpu is not None:
        st.cpu.update(
            nr_run=int(m.group(2)),
            sort=int(m.group(3)),
            sibling=cpulist(m.group(4)),
            core=cpulist(m.group(5)),
            run=None,
            runq=[],
        )
    elif (m := RUN_LINE.fullmatch(line)) and st.cpu is not None and "runq" in st.cpu:
        st.cpu["run"] = unit(m.group(1))
    elif (m := UNIT_LINE.fullmatch(line)) and st.cpu is not None and "runq" in st.cpu:
        st.cpu["runq"].append(unit(m.group(2)))
    else:
        return False
    return True


def parse_r(data: bytes) -> Result:
    """Result fields: ``smt_power_savings`` (bool), ``now``, ``online_cpus``, ``free_cpus``
    (None if no line), ``free_cpus_info`` (``cpus_info`` of the free CPUs), ``cpupools``:
    ``[{id, cpus, granularity: {mode, cpus_per_resource}, scheduler: {name, opt_name},
    settings, runqueues, domains, active_units, cpus_info}]``.

    credit2 fills ``runqueues`` (``{id, ncpus, cpus, max_weight, …, idlers, tickled,
    fully_idle_cores, cpu_details: [{cpu, runq, sibling, core, run}], queue: [unit]}``) and
    ``domains`` (``{domid, weight, cap, nr_units, units}``); credit fills ``settings``,
    ``active_units`` and per-CPU ``nr_run``/``sort``/``sibling``/``core``/``run``/``runq``.
    ``cpus_info``: ``[{cpu, current, curr, prev, others}]`` with vCPUs as
    ``{domain, vcpu, idle}`` (None for NULL). Units: ``{domid, unit, flags, cpu, credit,
    weight, cap, pri?, budget?, load?, load_pct?}``."""
    result, lines = start("r", data)
    unparsed: list[str] = result["unparsed"]
    pools: list[dict[str, Any]] = []
    free: dict[str, Any] | None = None
    st = _State()
    glob: dict[str, Any] = {
        "smt_power_savings": None,
        "now": None,
        "online_cpus": None,
        "free_cpus": None,
    }
    for original in lines.xen:
        m: re.Match[str] | None
        line = original
        if line.startswith("  "):
            # Xen indents these dumps with a tab; mail clients and terminals expand it.
            line = "\t" + line.lstrip(" ")
            note_shape(result, "tabs-as-spaces")
        pool = st.pool
        if m := SMT.fullmatch(line):
            glob["smt_power_savings"] = m.group(1) == "enabled"
        elif m := NOW.fullmatch(line):
            glob["now"] = int(m.group(1))
        elif m := ONLINE.fullmatch(line):
            glob["online_cpus"] = cpulist(m.group(1))
        elif m := FREE.fullmatch(line):
            glob["free_cpus"] = cpulist(m.group(1))
            free = st.pool = _pool(None, glob["free_cpus"])
            st.phase = ""
        elif m := POOL.fullmatch(line):
            st = _State()
            st.pool = _pool(int(m.group(1)), None)
            pools.append(st.pool)
        elif pool is None:
            unparsed.append(original)
        elif (m := POOL_CPUS.fullmatch(line)) and pool["cpus"] is None:
            pool["cpus"] = cpulist(m.group(1))
        elif m := GRAN.fullmatch(line):
            note_shape(result, "granularity", xen=">=4.13")
            pool["granularity"] = {"mode": m.group(1), "cpus_per_resource": int(m.group(2))}
        elif m := SCHED.fullmatch(line):
            pool["scheduler"] = {"name": m.group(1), "opt_name": m.group(2)}
        elif line == CPUS_INFO:
            pool["cpus_info"] = []
            st.phase = "cpus"
        elif st.phase == "cpus":
            if not _cpus_line(st, pool, line):
                unparsed.append(original)
        elif not _scheduler_line(st, pool, line):
            unparsed.append(original)
    result.update(glob)
    result["free_cpus_info"] = free["cpus_info"] if free else None
    result["cpupools"] = pools
    result["truncated"] = result["truncated"] or _incomplete(glob, pools, free)
    return finish(result, lines)


def _incomplete(
    glob: dict[str, Any], pools: list[dict[str, Any]], free: dict[str, Any] | None
) -> bool:
    """Every pool (and the free CPUs) must list all its CPUs under ``CPUs info``."""
    if glob["now"] is not None and not pools:
        return True
    for pool in [*pools, *([free] if free else [])]:
        info = pool["cpus_info"]
        if info is None:
            return True
        seen = {c["cpu"] for c in info} | {o["cpu"] for c in info for o in c["others"]}
        if pool["cpus"] is not None and not set(pool["cpus"]) <= seen:
            return True
        credit1 = pool["scheduler"] and pool["scheduler"]["opt_name"] == "credit"
        if credit1 and info and "nr_run" not in info[-1]:
            return True
    return False
