"""A process hosting K virtual BMCs, each bridged to its own pty, driven over stdin/stdout.

``python -m bench.bmcfarm --count K [--address A] [--port P] [--spread]`` (password from
IPMI_PASSWORD; ``--spread``: BMC i on address A + i, every one at port P, for clients that
reach port 623 only) prints ``{"ports": [...]}`` once every BMC listens, then obeys one JSON
command per line:

* ``{"cmd": "stream", "size": S, "rate": R, "seed0": n, "start": t}``: at monotonic time ``t``
  write ``make_stream(S, seed0 + i)`` into BMC i's pty at R bytes/s; answers with per-BMC first
  and last write times and stalls;
* ``{"cmd": "mark", "text": T}``: write ``T.format(i=i)`` into BMC i's pty now (a BMC without
  a SOL session keeps it until one activates), answering at once;
* ``{"cmd": "echo"}``: echo every byte a client types (keystroke latency);
* ``{"cmd": "active"}``: how many BMCs have an active SOL payload;
* ``{"cmd": "usage"}``: this process's CPU seconds and peak RSS;
* ``{"cmd": "quit"}``.

Why not K copies of ``python -m solcap.sim.bmc``: 1000 BMCs would be 1000 interpreters. pyghmi's
server state is process-wide, so K :class:`~solcap.sim.bmc.VirtualBmc` objects each with their
own pump thread would call ``Session.wait_for_rsp`` concurrently (its session queue is not made
for that). :class:`FarmBmc` therefore starts no threads of its own; one pump thread serves every
BMC in the process exactly as ``VirtualBmc._pump`` serves one, and one epoll thread reads all the
ptys exactly as ``VirtualBmc._pty_reader`` reads one.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import resource
import select
import sys
import termios
import threading
import time
import traceback
import tty
from typing import Any

import pyghmi.ipmi.bmc as pyghmi_bmc
import pyghmi.ipmi.private.session as ipmisession

from bench import pyghmi_fix
from bench.workloads import Echoer, PacedStream, PacedWriter, drain_fds, make_stream
from solcap.sim import bmc as simbmc


class FarmBmc(simbmc.VirtualBmc):
    """A VirtualBmc whose pump and pty reader are the farm's shared threads."""

    def start(self) -> FarmBmc:
        simbmc._ensure_wake_socket()
        pyghmi_bmc.Bmc.__init__(self, self.users, port=self._want_port, address=self.address)
        simbmc._wake_io_thread()
        self.port = self.serversocket.getsockname()[1]
        self._open_pty()
        self._started = True
        return self

    def service(self, now: float) -> None:
        """One step of ``VirtualBmc._pump`` after the shared ``wait_for_rsp``."""
        sol = self.sol
        if sol is not None:
            if now - sol.ipmi_session.last_seen > simbmc.SESSION_IDLE_TIMEOUT:
                self.deactivate("client idle", notify=False)
            else:
                sol.service(now)

    def pty_readable(self) -> None:
        """One step of ``VirtualBmc._pty_reader`` (the same idle-buffer rule)."""
        fd = self._pty_fd
        if fd is None:
            return
        try:
            data = os.read(fd, 4096)
        except OSError:
            return
        with self._out_lock:
            self._out += data
            if self.sol is None and len(self._out) > simbmc.IDLE_BUFFER:
                excess = len(self._out) - simbmc.IDLE_BUFFER
                del self._out[:excess]
                self.discarded += excess


class Farm:
    """K FarmBmc objects, their pty masters, and the two shared threads."""

    def __init__(
        self, count: int, address: str, port: int, password: str, spread: bool = False
    ) -> None:
        self.masters: list[int] = []
        self.bmcs: list[FarmBmc] = []
        for i in range(count):
            master, slave = os.openpty()
            tty.setraw(master, termios.TCSANOW)
            path = os.ttyname(slave)
            if spread:
                where, at = str(ipaddress.IPv4Address(address) + i), port
            else:
                where, at = address, port if i == 0 else 0
            bmc = FarmBmc(path, address=where, port=at, password=password)
            bmc.start()
            os.close(slave)  # the BMC opened its own descriptor of the slave
            self.masters.append(master)
            self.bmcs.append(bmc)
        self._by_fd = {b._pty_fd: b for b in self.bmcs if b._pty_fd is not None}
        self._stop = threading.Event()
        self.pump_errors = 0
        threading.Thread(target=self._pump, name="farm-pump", daemon=True).start()
        threading.Thread(target=self._reader, name="farm-pty", daemon=True).start()

    def _pump(self) -> None:
        while not self._stop.is_set():
            try:
                ipmisession.Session.wait_for_rsp(0.02)
            except Exception:  # counted and shown: VirtualBmc's own pump would die here
                self.pump_errors += 1
                traceback.print_exc()
            now = time.monotonic()
            for bmc in self.bmcs:
                try:
                    bmc.service(now)
                except Exception:
                    self.pump_errors += 1
                    traceback.print_exc()

    def _reader(self) -> None:
        poller = select.epoll()
        for fd in self._by_fd:
            poller.register(fd, select.EPOLLIN)
        while not self._stop.is_set():
            for fd, _ev in poller.poll(0.1):
                self._by_fd[fd].pty_readable()

    def stream(self, size: int, rate: float, seed0: int, start: float) -> dict[str, Any]:
        drain_fds(self.masters)
        streams = [
            PacedStream(fd, make_stream(size, seed0 + i)) for i, fd in enumerate(self.masters)
        ]
        PacedWriter(streams, rate).run(start)
        return {
            "first": [s.first for s in streams],
            "last": [s.last for s in streams],
            "stalls": [s.stalls for s in streams],
            "discarded": [b.discarded for b in self.bmcs],
            "pump_errors": self.pump_errors,
        }


def farm_state(bmc: FarmBmc) -> dict[str, Any]:
    """The SOL state of one BMC, to explain a stalled stream."""
    sol = bmc.sol
    state: dict[str, Any] = {"pending": len(bmc._out), "discarded": bmc.discarded}
    if sol is not None:
        state.update(
            awaitingack=sol.awaitingack,
            myseq=sol.myseq,
            remseq=sol.remseq,
            retries=sol.retries,
            inflight=len(sol.inflight),
            since_sent=time.monotonic() - sol.sent_at,
        )
    return state


def usage() -> dict[str, float]:
    """CPU seconds (user+sys) and peak RSS (KiB) of this process so far."""
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return {"cpu": ru.ru_utime + ru.ru_stime, "maxrss_kib": float(ru.ru_maxrss)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bmcfarm")
    parser.add_argument("--count", type=int, default=1)
    parser.add_argument("--address", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--spread", action="store_true", help="BMC i on --address + i")
    args = parser.parse_args(argv)
    password = os.environ.get("IPMI_PASSWORD", "")
    if not password:
        print("set IPMI_PASSWORD", file=sys.stderr)
        return 2
    pyghmi_fix.apply()  # see bench/pyghmi_fix.py: without it a farm can deadlock
    farm = Farm(args.count, args.address, args.port, password, spread=args.spread)

    def say(value: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(value) + "\n")
        sys.stdout.flush()

    say({"ports": [b.port for b in farm.bmcs], "pid": os.getpid()})
    echo: Echoer | None = None
    for line in sys.stdin:
        cmd = json.loads(line)
        if cmd["cmd"] == "stream":
            say(farm.stream(cmd["size"], cmd["rate"], cmd["seed0"], cmd["start"]))
        elif cmd["cmd"] == "mark":
            for i, fd in enumerate(farm.masters):
                os.write(fd, cmd["text"].format(i=i).encode())
            say({"marked": len(farm.masters), "at": time.monotonic()})
        elif cmd["cmd"] == "echo":
            echo = Echoer(farm.masters).start()
            say({"echo": True})
        elif cmd["cmd"] == "active":
            say({"active": sum(1 for b in farm.bmcs if b.sol is not None)})
        elif cmd["cmd"] == "state":
            say({"state": [farm_state(b) for b in farm.bmcs]})
        elif cmd["cmd"] == "usage":
            say(usage())
        elif cmd["cmd"] == "quit":
            break
    if echo is not None:
        echo.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
