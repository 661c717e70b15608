"""Console servers beside each other: solcap serve, conserver and ConMan on the same virtual BMCs.

Each server holds N virtual BMCs (:mod:`bench.bmcfarm`, 50 per farm process, BMC i on its own
loopback address 127.0.100.1 + i at port 623, because ipmiconsole and ConMan's ``ipmi:HOST``
reach port 623 only), configured the way each is deployed for IPMI SOL:

* **solcap serve**: an inventory of ``bmc: ipmi://admin@ADDR:623`` hosts, password ``file:``;
* **conserver** (Debian's build has no FreeIPMI): ``type exec`` consoles running
  ``ipmiconsole -h ADDR --config-file F -I 17``, as xCAT's generated conserver.cf does, so each
  console is one ipmiconsole process under a conserver child;
* **ConMan** (Debian's build has FreeIPMI): ``dev="ipmi:ADDR"`` with ``ipmiopts``, one daemon.

Figures, per server and N, all from ``/proc`` of the server's whole process tree (conserver's
children and their ipmiconsole processes included): seconds until every BMC has an active SOL
payload; CPU % of a core per console over an idle window; RSS and PSS per console (PSS shares
the pages processes have in common, so N ipmiconsole processes are not charged N libc's);
streaming: every BMC sends S bytes at 115200 at once, and each console's log is searched for
its stream (exact, or how many 256-byte blocks of it are missing); restart: one farm is killed
and started again on the same addresses, a marker is written into each of its BMCs, and the
seconds from the restart until the marker is in that console's log.

``python -m bench.servers --smoke`` runs all three at N = 2 in well under a minute (the test
``tests/consoleservers/test_bench_servers.py`` runs it); ``python -m bench.run --only servers``
runs the figures for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.workloads import line_rate, make_stream

PY = sys.executable
TOP = Path(__file__).resolve().parent.parent
#: BMC i listens on BASE + i, port 623 (ipmiconsole and ConMan cannot give a port).
BASE = ipaddress.IPv4Address("127.0.100.1")
FARM_SIZE = 50
SERVERS = ("solcap", "conserver", "conman")
BLOCK = 256
MARK = "\r\nbench-restart-mark-{i}\r\n"


# --- the process tree --------------------------------------------------------------------------


def _children() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            stat = Path(f"/proc/{entry}/stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            kids.setdefault(ppid, []).append(int(entry))
    return kids


def tree(pid: int) -> list[int]:
    """``pid`` and every descendant alive now."""
    kids, out, todo = _children(), [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += kids.get(p, [])
    return out


def tree_usage(pid: int) -> dict[str, float]:
    """CPU seconds (user+sys, reaped children included), RSS and PSS (KiB), process count."""
    tick = os.sysconf("SC_CLK_TCK")
    cpu = rss = pss = 0.0
    pids = tree(pid)
    for p in pids:
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            cpu += sum(int(fields[i]) for i in (11, 12, 13, 14)) / tick
            for line in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines():
                if line.startswith("Rss:"):
                    rss += int(line.split()[1])
                elif line.startswith("Pss:"):
                    pss += int(line.split()[1])
    return {"cpu_s": cpu, "rss_kib": rss, "pss_kib": pss, "procs": float(len(pids))}


# --- BMC farms ---------------------------------------------------------------------------------


class Farm:
    """One ``bench.bmcfarm --spread`` process: ``count`` BMCs from address ``first``."""

    def __init__(self, first: int, count: int, env: dict[str, str], log: Path) -> None:
        self.first, self.count, self.env, self.log = first, count, env, log
        self.proc: subprocess.Popen[str] | None = None

    def start(self, timeout: float = 120) -> Farm:
        address = str(BASE + self.first)
        argv = [PY, "-m", "bench.bmcfarm", "--count", str(self.count), "--address", address]
        self.proc = subprocess.Popen(
            [*argv, "--port", "623", "--spread"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=open(self.log, "ab"),  # noqa: SIM115 - the child keeps it
            text=True,
            env=self.env,
            cwd=TOP,
        )
        self.recv(timeout)  # {"ports": ...}: every BMC listens
        return self

    def recv(self, timeout: float) -> dict[str, Any]:
        assert self.proc is not None and self.proc.stdout is not None
        import select

        poller = select.poll()
        poller.register(self.proc.stdout, select.POLLIN)
        if not poller.poll(timeout * 1000):
            raise TimeoutError(f"BMC farm {self.first} silent for {timeout:g} s")
        line = self.proc.stdout.readline()
        if not line:
            raise EOFError(f"BMC farm {self.first} exited (see {self.log})")
        value: dict[str, Any] = json.loads(line)
        return value

    def ask(self, cmd: dict[str, Any], timeout: float = 30) -> dict[str, Any]:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        return self.recv(timeout)

    def send(self, cmd: dict[str, Any]) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(60)

    def quit(self) -> None:
        """Ask the farm to go; kill it if it does not within 10 s. Never raises: every farm
        must be gone before the next run binds the same addresses."""
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(OSError, ValueError):
            self.send({"cmd": "quit"})
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(60)


def addresses(n: int) -> list[str]:
    return [str(BASE + i) for i in range(n)]


def active(farms: list[Farm]) -> int:
    return sum(int(f.ask({"cmd": "active"})["active"]) for f in farms)


def farm_cpu(farms: list[Farm]) -> float:
    """CPU seconds the BMC farms have used so far (they share the machine with the server)."""
    return sum(float(f.ask({"cmd": "usage"})["cpu"]) for f in farms)


def wait_until(cond: Callable[[], bool], timeout: float, step: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(step)
    return cond()


# --- the three servers -------------------------------------------------------------------------


@dataclass
class Held:
    """A running console server and where each console's log is."""

    name: str
    proc: subprocess.Popen[bytes]
    log_of: Callable[[int], bytes]
    directory: Path
    version: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def stop(self) -> None:
        """SIGTERM the daemon, then SIGKILL whatever of its tree is left.

        conserver gives each ``type exec`` command a session of its own (setsid, for its
        terminal), so killing conserver's process group leaves the ipmiconsole processes;
        at N = 1000 those orphans spun and drove the load past 400. The tree is therefore
        listed before the stop and every process in it that is still there is killed by pid.
        """
        pids = [p for p in tree(self.proc.pid) if p != self.proc.pid]
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        for pid in pids:  # ours since :func:`_subreaper`: reap them, leave no zombies
            with contextlib.suppress(ChildProcessError, OSError):
                os.waitpid(pid, 0)


def _subreaper() -> None:
    """Make orphaned descendants (conserver's setsid'd ipmiconsole processes) our children,
    so :meth:`Held.stop` can reap them instead of leaving zombies to init."""
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _private(path: Path, text: str) -> Path:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    return path


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:
        return b""


def start_solcap(n: int, work: Path, password_file: Path, env: dict[str, str]) -> Held:
    lines = ["hosts:"]
    for i, address in enumerate(addresses(n)):
        lines += [f"  h{i}:", f"    bmc: ipmi://admin@{address}:623",
                  f"    password: file:{password_file}"]  # fmt: skip
    inventory = work / "inventory.yaml"
    inventory.write_text("\n".join(lines) + "\n")
    root, control = work / "rec", work / "ctl"
    argv = [PY, "-m", "solcap.cli", "serve", "--inventory", str(inventory), "--root", str(root)]
    proc = subprocess.Popen(
        [*argv, "--control-dir", str(control)],
        stdout=subprocess.DEVNULL,
        stderr=open(work / "serve.err", "ab"),  # noqa: SIM115 - the child keeps it
        env=env,
        cwd=TOP,
        start_new_session=True,
    )

    def log_of(i: int) -> bytes:
        pieces = sorted((root / f"h{i}").glob("*_serve/console.raw"))
        return b"".join(_read(p) for p in pieces)

    return Held("solcap", proc, log_of, work)


def start_conserver(n: int, work: Path, password: str, env: dict[str, str]) -> Held:
    binary = shutil.which("conserver", path="/usr/sbin:/usr/bin")
    ipmiconsole = shutil.which("ipmiconsole", path="/usr/sbin:/usr/bin")
    if binary is None or ipmiconsole is None:
        raise RuntimeError(
            "conserver or ipmiconsole not installed (conserver-server, freeipmi-tools)"
        )
    conf = _private(work / "freeipmi.conf", f"username admin\npassword {password}\n")
    logs = work / "logs"
    logs.mkdir()
    consoles = "".join(
        f"console h{i} {{ type exec; exec {ipmiconsole} -h {address} --config-file {conf} "
        f"-I 17; }}\n"
        for i, address in enumerate(addresses(n))
    )
    config = work / "conserver.cf"
    config.write_text(
        "config * { }\n"
        "default full { rw *; }\n"
        f'default * {{ logfile {logs}/&.log; timestamp ""; include full; master 127.0.0.1; }}\n'
        f"{consoles}"
        "access * { trusted 127.0.0.1; allowed 127.0.0.1; }\n"
    )
    passwd = _private(work / "conserver.passwd", "* any\n")
    port, base = _free_port(), _free_port()
    proc = subprocess.Popen(
        [binary, "-C", str(config), "-P", str(passwd), "-M", "127.0.0.1", "-p", str(port),
         "-b", str(base), "-L", str(work / "conserver.log")],
        stdout=open(work / "conserver.out", "ab"),  # noqa: SIM115 - the child keeps it
        stderr=subprocess.STDOUT,
        env=env,
        cwd=work,
        start_new_session=True,
    )  # fmt: skip
    return Held("conserver", proc, lambda i: _read(logs / f"h{i}.log"), work)


def start_conman(n: int, work: Path, password: str, env: dict[str, str]) -> Held:
    binary = shutil.which("conmand", path="/usr/sbin:/usr/bin")
    if binary is None:
        raise RuntimeError("conmand not installed (conman)")
    logs = work / "logs"
    logs.mkdir()
    consoles = "".join(
        f'console name="h{i}" dev="ipmi:{address}"\n' for i, address in enumerate(addresses(n))
    )
    config = _private(
        work / "conman.conf",
        f"server keepalive=ON\nserver loopback=ON\nserver port={_free_port()}\n"
        f'server pidfile="{work}/conmand.pid"\nserver logdir="{logs}"\n'
        f'server logfile="{work}/conmand.log"\n'
        f'global log="%N.log"\nglobal logopts="nolock,nosanitize,notimestamp"\n'
        f'global ipmiopts="U:admin,P:{password},C:17"\n{consoles}',
    )  # the password lives in this 0600 file only, never in argv
    proc = subprocess.Popen(
        [binary, "-c", str(config), "-F"],
        stdout=open(work / "conmand.out", "ab"),  # noqa: SIM115 - the child keeps it
        stderr=subprocess.STDOUT,
        env=env,
        cwd=work,
        start_new_session=True,
    )
    return Held("conman", proc, lambda i: _read(logs / f"h{i}.log"), work)


def start_server(name: str, n: int, work: Path, password: str, pwfile: Path,
                 env: dict[str, str]) -> Held:  # fmt: skip
    _subreaper()
    if name == "solcap":
        return start_solcap(n, work, pwfile, env)
    if name == "conserver":
        return start_conserver(n, work, password, env)
    if name == "conman":
        return start_conman(n, work, password, env)
    raise ValueError(name)


# --- checks ------------------------------------------------------------------------------------


def stream_verdict(log: bytes, stream: bytes) -> dict[str, int]:
    """Is ``stream`` in ``log`` contiguously? If not, how many of its 256-byte blocks are
    missing (a lower bound on the bytes lost, to block granularity)."""
    if stream in log:
        return {"exact": 1, "missing_blocks": 0, "missing_bytes": 0}
    blocks = [stream[i : i + BLOCK] for i in range(0, len(stream), BLOCK)]
    missing = [b for b in blocks if b not in log]
    return {"exact": 0, "missing_blocks": len(missing), "missing_bytes": sum(map(len, missing))}


@contextlib.contextmanager
def farms_for(n: int, env: dict[str, str], work: Path) -> Iterator[list[Farm]]:
    farms = [
        Farm(first, min(FARM_SIZE, n - first), env, work / "farm.log")
        for first in range(0, n, FARM_SIZE)
    ]
    try:
        for farm in farms:
            farm.start()
        yield farms
    finally:
        for farm in farms:
            farm.quit()


def measure(
    name: str,
    n: int,
    *,
    stream_size: int = 0,
    restart: bool = False,
    idle_s: float = 15.0,
    restart_cap: float = 150.0,
    password: str,
    pwfile: Path,
    env: dict[str, str],
    work: Path,
    say: Callable[[str], None] = lambda _: None,
) -> dict[str, Any]:
    """One server holding N BMCs: up time, idle CPU/RSS/PSS; then a stream or a restart."""
    work = Path(tempfile.mkdtemp(dir=work, prefix=f"{name}-{n}-"))
    row: dict[str, Any] = {"server": name, "n": n, "mode": "stream" if stream_size else "idle",
                           "load1": os.getloadavg()[0]}  # fmt: skip
    with farms_for(n, env, work) as farms:
        t0 = time.monotonic()
        held = start_server(name, n, work, password, pwfile, env)
        try:
            up_cap = 60 + n * 0.15
            all_up = wait_until(lambda: held.proc.poll() is None and active(farms) >= n, up_cap)
            row["active"] = active(farms)
            row["up_s"] = time.monotonic() - t0 if all_up else None
            if held.proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {held.proc.returncode} (see {work})")
            say(f"servers: {name} N={n}: {row['active']}/{n} SOL payloads active")
            time.sleep(3)  # let the opening settle before the idle window
            u0, f0, w0 = tree_usage(held.proc.pid), farm_cpu(farms), time.monotonic()
            time.sleep(idle_s)
            u1, f1, w1 = tree_usage(held.proc.pid), farm_cpu(farms), time.monotonic()
            per = max(row["active"], 1)
            row.update(
                idle_s=w1 - w0,
                idle_cpu_pct=100 * (u1["cpu_s"] - u0["cpu_s"]) / (w1 - w0),
                farm_idle_cpu_pct=100 * (f1 - f0) / (w1 - w0),
                idle_cpu_pct_per_console=100 * (u1["cpu_s"] - u0["cpu_s"]) / (w1 - w0) / per,
                # one clock tick over the window: a 0 above means "less than this"
                idle_cpu_resolution_pct=100 / os.sysconf("SC_CLK_TCK") / (w1 - w0) / per,
                rss_kib=u1["rss_kib"],
                pss_kib=u1["pss_kib"],
                rss_per_console_kib=u1["rss_kib"] / per,
                pss_per_console_kib=u1["pss_kib"] / per,
                procs=int(u1["procs"]),
            )
            if stream_size:
                row.update(_stream(held, farms, n, stream_size))
            if restart:
                row.update(_restart(held, farms, restart_cap, say))
        finally:
            held.stop()
    row["load1_end"] = os.getloadavg()[0]
    shutil.rmtree(work, ignore_errors=True)
    return row


def _stream(held: Held, farms: list[Farm], n: int, size: int) -> dict[str, Any]:
    """Every BMC sends ``size`` bytes at 115200 at once; each log is searched for its stream."""
    rate = line_rate(115200)
    ideal = size / rate
    before = [len(held.log_of(i)) for i in range(n)]
    u0, f0, w0 = tree_usage(held.proc.pid), farm_cpu(farms), time.monotonic()
    start = time.monotonic() + 0.5
    for farm in farms:
        farm.send({"cmd": "stream", "size": size, "rate": rate, "seed0": farm.first,
                   "start": start})  # fmt: skip
    for farm in farms:
        farm.recv(ideal * 20 + 60)
    streams = [make_stream(size, i) for i in range(n)]
    done = wait_until(
        lambda: all(len(held.log_of(i)) - before[i] >= size for i in range(n)), ideal * 4 + 20, 0.5
    )
    u1, f1, w1 = tree_usage(held.proc.pid), farm_cpu(farms), time.monotonic()
    verdicts = [stream_verdict(held.log_of(i)[before[i] :], streams[i]) for i in range(n)]
    return {
        "stream_size": size,
        "stream_complete": done,
        "stream_wall_s": w1 - start,
        "exact": sum(v["exact"] for v in verdicts),
        "missing_bytes": sum(v["missing_bytes"] for v in verdicts),
        # the share of a core one console's stream costs at line rate (as in the many-hosts
        # part): CPU seconds for all the streams ÷ N ÷ the stream's line-rate duration, so a
        # server that takes longer is not made to look cheaper by a longer window
        "stream_cpu_s": u1["cpu_s"] - u0["cpu_s"],
        "stream_cpu_pct_per_console": 100 * (u1["cpu_s"] - u0["cpu_s"]) / ideal / n,
        "farm_stream_cpu_pct": 100 * (f1 - f0) / max(w1 - w0, ideal),
        "stream_rss_per_console_kib": u1["rss_kib"] / n,
        "stream_pss_per_console_kib": u1["pss_kib"] / n,
    }


def _restart(
    held: Held, farms: list[Farm], cap: float, say: Callable[[str], None]
) -> dict[str, Any]:
    """Kill the first farm, start it again after 2 s; seconds until each log has the marker."""
    farm = farms[0]
    farm.kill()
    time.sleep(2)  # the BMCs are gone: what a power cycle of the BMCs looks like to a server
    farm.start()
    restarted = time.monotonic()
    farm.ask({"cmd": "mark", "text": MARK})
    pending = {farm.first + i for i in range(farm.count)}
    back: dict[int, float] = {}
    deadline = restarted + cap
    while pending and time.monotonic() < deadline:
        for i in list(pending):
            if MARK.format(i=i - farm.first).encode() in held.log_of(i):
                back[i] = time.monotonic() - restarted
                pending.discard(i)
        time.sleep(0.25)
    times = sorted(back.values())
    say(f"servers: {held.name}: {len(back)}/{farm.count} logging again after the restart")
    return {
        "restarted": farm.count,
        "back": len(back),
        "restart_cap_s": cap,
        "back_p50_s": times[len(times) // 2] if times else None,
        "back_max_s": times[-1] if times else None,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.servers")
    parser.add_argument("--smoke", action="store_true", help="N = 2 per server, short windows")
    parser.add_argument("--servers", default=",".join(SERVERS))
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args(argv)
    import secrets

    work = Path(tempfile.mkdtemp(prefix="solcap-bench-servers-"))
    os.chmod(work, 0o700)
    password = secrets.token_urlsafe(12)
    pwfile = _private(work / "password", password + "\n")
    env = dict(os.environ, IPMI_PASSWORD=password, PYTHONPATH=str(TOP))
    rows = []
    try:
        for name in args.servers.split(","):
            common: dict[str, Any] = dict(password=password, pwfile=pwfile, env=env, work=work)
            common["say"] = lambda text: print(text, file=sys.stderr, flush=True)
            if args.smoke:
                # The peers' restart takes about a minute (ipmiconsole's session timeout), so
                # the smoke run restarts solcap's BMCs only; the full run restarts all three.
                common.update(idle_s=2.0, restart_cap=60.0)
                restart = name == "solcap"
                rows.append(measure(name, 2, stream_size=8192, restart=restart, **common))
            else:
                rows.append(measure(name, 100, restart=True, **common))
            print(json.dumps(rows[-1]), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
