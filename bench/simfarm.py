"""A lean BMC farm: N OpenIPMI ``ipmi_sim`` processes (C), and N streams beside each client.

``python -m bench.simfarm --n 100,300 [--size 16384] [--baud 115200]
[--clients solcap,ipmitool,ipmiconsole] [--out FILE.json]``

Why: the virtual BMC farm (``bench.bmcfarm``, pyghmi's server in Python) burns more CPU than
the client it serves at N = 300 (docs/benchmarks.md), so the many-host rows measured the farm
as much as the client. ``ipmi_sim`` is OpenIPMI's BMC simulator in C; one process per BMC
(its SOL state is per process), each on its own loopback address at port 623 (ipmiconsole
speaks to 623 only), each the TCP client of its own serial socket here. One thread of this
process writes every stream into the serial sockets at the line rate (``PacedWriter``).

What a row reports, per client and N, in one run: sessions open, complete, byte-exact, the
time ratio (last byte seen ÷ line-rate duration, from the first byte written), the client's
CPU seconds (solcap: the client process, streaming phase and whole life; peers: the sum of
their processes' rusage, whole lives), and the farm's CPU seconds over the same streaming
phase (every ``ipmi_sim``'s utime+stime from /proc, plus the writer thread's own rusage).
ipmi_sim takes cipher suite 3 only, so every client runs suite 3 here.

ipmi_sim's quirks are the row's, not hidden: it discards serial output while no SOL session
is active (so streams start once every client is active), and it gives up on a session's
buffer after 5 unanswered retransmissions (a client too slow to ACK loses data: shown as
not byte-exact).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import termios
import threading
import time
from pathlib import Path
from typing import Any

from bench import peers
from bench.run import JsonProc
from bench.workloads import PacedStream, PacedWriter, line_rate, make_stream

PY = sys.executable
PASSWORD = "bench-simfarm-pw"
EMU = "mc_setbmc 0x20\nmc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02 persist_sdr\n"
EMU += "mc_enable 0x20\n"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def address(i: int) -> str:
    return f"127.3.{i // 250}.{i % 250 + 1}"


class SimFarm:
    """N ipmi_sim processes and the serial side of each (a connected TCP socket)."""

    def __init__(self, n: int, work: Path, baud: int) -> None:
        self.n = n
        self.procs: list[subprocess.Popen[bytes]] = []
        self.serials: list[socket.socket] = []
        binary = shutil.which("ipmi_sim")
        if binary is None:
            raise SystemExit("ipmi_sim not installed (Debian package openipmi)")
        listeners = []
        for i in range(n):
            lst = socket.socket()
            lst.bind(("127.0.0.1", 0))
            lst.listen(1)
            lst.settimeout(60)
            listeners.append(lst)
            d = work / f"sim{i}"
            (d / "state").mkdir(parents=True)
            (d / "bmc.emu").write_text(EMU)
            (d / "lan.conf").write_text(
                f'name "farm{i}"\nset_working_mc 0x20\n  startlan 1\n'
                f"    addr {address(i)} 623\n    priv_limit admin\n"
                "    allowed_auths_admin none md2 md5 straight\n"
                f"    guid a123456789abcdefa1234567{i:08x}\n  endlan\n"
                f'  sol "tcp:127.0.0.1:{lst.getsockname()[1]}" {baud}\n'
                f'user 2 true "admin" "{PASSWORD}" admin 10 none md2 md5 straight\n'
            )
            self.procs.append(
                subprocess.Popen(
                    [binary, "-n", "-c", "lan.conf", "-f", "bmc.emu", "-s", "state"],
                    cwd=d,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        for lst in listeners:
            conn, _ = lst.accept()
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 16)
            self.serials.append(conn)
            lst.close()
        self._drain = threading.Thread(target=self._discard_input, daemon=True)
        self._drain.start()

    def _discard_input(self) -> None:
        """What clients type reaches the serial side; nobody reads it here."""
        import selectors

        sel = selectors.DefaultSelector()
        for s in self.serials:
            sel.register(s, selectors.EVENT_READ)
        while True:
            for key, _ in sel.select(1.0):
                try:
                    if not key.fileobj.recv(65536):  # type: ignore[union-attr]
                        sel.unregister(key.fileobj)
                except OSError:
                    sel.unregister(key.fileobj)

    def cpu(self) -> float:
        """CPU seconds of every ipmi_sim so far (utime + stime from /proc)."""
        total = 0
        for proc in self.procs:
            with contextlib.suppress(OSError):
                fields = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
                total += int(fields[11]) + int(fields[12])
        return total / CLK_TCK

    def rss_kib(self) -> int:
        return sum(peers.vm_kib(p.pid) for p in self.procs)

    def stream(self, size: int, baud: int, start: float) -> tuple[PacedWriter, dict[str, float]]:
        """Write stream i into BMC i's serial side from ``start``; returns when all is sent."""
        writer = PacedWriter(
            [PacedStream(s.fileno(), make_stream(size, i)) for i, s in enumerate(self.serials)],
            line_rate(baud),
        )
        usage: dict[str, float] = {}

        def run() -> None:
            r0 = resource.getrusage(resource.RUSAGE_THREAD)
            writer.run(start)
            r1 = resource.getrusage(resource.RUSAGE_THREAD)
            usage["cpu_s"] = r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        usage_thread = thread
        usage_thread.join()
        return writer, usage

    def close(self) -> None:
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        for s in self.serials:
            s.close()


def _ratios(
    lasts: list[float | None], firsts: list[float], sizes_ok: list[bool], ideal: float
) -> list[float]:
    return [
        (last - first) / ideal
        for last, first, ok in zip(lasts, firsts, sizes_ok, strict=True)
        if ok and last is not None
    ]


def run_solcap(n: int, size: int, baud: int, work: Path) -> dict[str, Any]:
    farm = SimFarm(n, work / f"farm-solcap-{n}", baud)
    ideal = size / line_rate(baud)
    pwfile = work / "pw"
    result: dict[str, Any] = {"client": "solcap", "n": n}
    root = tempfile.mkdtemp(dir=work, prefix="rec-")
    client = JsonProc([PY, "-m", "bench.solclient"], dict(os.environ), work / f"solclient-{n}.log")
    try:
        urls = [f"ipmi://admin@{address(i)}:623?cipher=3" for i in range(n)]
        timeout = ideal * 30 + 60
        client.send(
            {
                "urls": urls,
                "password_file": str(pwfile),
                "root": root,
                "size": size,
                "timeout": timeout,
                "idle": 2,
                "max_errors": 20,
                "engine": True,
            }
        )
        ready = client.recv(120 + n * 0.5)
        result.update(opened=ready["opened"], open_errors=ready["errors"])
        cpu0 = farm.cpu()
        start = time.monotonic() + 0.5
        client.send("go")
        writer, usage = farm.stream(size, baud, start)
        res = client.recv(timeout + 60)
        farm_cpu = farm.cpu() - cpu0 + usage["cpu_s"]
        by_url = {s["url"]: s for s in res["sessions"]}
        lasts, oks, exact, inexact = [], [], 0, []
        for i, url in enumerate(urls):
            sess = by_url.get(url)
            want = hashlib.sha256(make_stream(size, i)).hexdigest()
            ok = sess is not None and sess["bytes"] >= size
            lasts.append(sess["last"] if sess else None)
            oks.append(ok)
            if sess is not None and sess["sha256"] == want:
                exact += 1
            elif ok and sess is not None:
                inexact.append(sess["bytes"])  # complete but not exact: how many bytes came
        ratios = _ratios(lasts, [s.first for s in writer.streams], oks, ideal)
        ru = client.reap(60 + n * 0.5)
        result.update(
            complete=sum(oks),
            exact=exact,
            complete_inexact_bytes=sorted(inexact)[:10],
            ratio_p50=statistics.median(ratios) if ratios else None,
            ratio_max=max(ratios) if ratios else None,
            client_cpu_s=res["cpu_s"],
            client_total_cpu_s=ru.ru_utime + ru.ru_stime,
            client_hwm_mib=res["hwm_kib"] / 1024,
            farm_cpu_s=farm_cpu,
            writer_cpu_s=usage["cpu_s"],
            farm_rss_mib=farm.rss_kib() / 1024,
        )
    except (TimeoutError, EOFError) as exc:
        result["error"] = str(exc)
        client.reap(5)
    finally:
        farm.close()
        shutil.rmtree(root, ignore_errors=True)
    return result


def peer_spec(name: str, i: int, work: Path) -> peers.PeerSpec:
    env = dict(os.environ, IPMI_PASSWORD=PASSWORD)
    if name == "ipmitool":
        argv = [peers.which("ipmitool") or "ipmitool", "-I", "lanplus", "-H", address(i)]
        argv += ["-U", "admin", "-E", "-C", "3", "sol", "activate"]
        return peers.PeerSpec(
            name, argv, env, b"[SOL Session operational.  Use ~? for help]\n", b"\r~."
        )
    conf = work / "freeipmi.conf"
    if not conf.exists():
        fd = os.open(conf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(f"username admin\npassword {PASSWORD}\n")
    argv = [peers.which("ipmiconsole") or "ipmiconsole", "-h", address(i)]
    argv += ["--config-file", str(conf), "-I", "3"]
    argv += ["-W", "opensesspriv,solchannelsupport,solpayloadsize"]
    return peers.PeerSpec(name, argv, env, b"", b"\r&.")


def _established(run: peers.PeerRun) -> bool:
    """Both peers put their terminal in raw mode once SOL is up (their banners are stdio
    buffered on a pipe, so they come too late to tell): the pty's ICANON flag says it."""
    try:
        return not termios.tcgetattr(run.master)[3] & termios.ICANON
    except termios.error:
        return False


def run_peer(name: str, n: int, size: int, baud: int, work: Path) -> dict[str, Any]:
    farm = SimFarm(n, work / f"farm-{name}-{n}", baud)
    ideal = size / line_rate(baud)
    result: dict[str, Any] = {"client": name, "n": n}
    runs: list[peers.PeerRun] = []
    try:
        runs = [peers.start_peer(peer_spec(name, i, work), work) for i in range(n)]
        deadline = time.monotonic() + 60 + n * 0.2
        while time.monotonic() < deadline and not all(_established(r) for r in runs):
            peers.pump_until(runs, lambda r: False, 0.2)
        result["opened"] = sum(_established(r) for r in runs)
        cpu0 = farm.cpu()
        start = time.monotonic() + 0.5
        done = threading.Event()

        def pump() -> None:
            peers.pump_until(runs, lambda r: len(r.payload) >= size, ideal * 30 + 60)
            done.set()

        thread = threading.Thread(target=pump, daemon=True)
        thread.start()
        writer, usage = farm.stream(size, baud, start)
        thread.join()
        farm_cpu = farm.cpu() - cpu0 + usage["cpu_s"]
        hwm = 0
        for run in runs:
            peers.finish(run, grace=1.0)
            hwm = max(hwm, run.maxrss_kib)
        oks = [len(r.payload) >= size for r in runs]
        exact = sum(
            1
            for i, r in enumerate(runs)
            if hashlib.sha256(r.payload).digest() == hashlib.sha256(make_stream(size, i)).digest()
        )
        ratios = _ratios(
            [r.last or None for r in runs], [s.first for s in writer.streams], oks, ideal
        )
        result.update(
            complete=sum(oks),
            exact=exact,
            ratio_p50=statistics.median(ratios) if ratios else None,
            ratio_max=max(ratios) if ratios else None,
            client_total_cpu_s=sum(r.cpu_s for r in runs),
            client_hwm_mib=hwm / 1024,
            farm_cpu_s=farm_cpu,
            writer_cpu_s=usage["cpu_s"],
            farm_rss_mib=farm.rss_kib() / 1024,
        )
    finally:
        for run in runs:
            if run.status is None:
                with contextlib.suppress(Exception):
                    peers.finish(run, grace=0.2)
        farm.close()
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", default="100", help="comma-separated N (default 100)")
    ap.add_argument("--size", type=int, default=16384)
    ap.add_argument("--baud", type=int, default=115200)
    ap.add_argument("--clients", default="solcap,ipmitool,ipmiconsole")
    ap.add_argument("--out", help="append each row as a JSON line here")
    ap.add_argument(
        "--peers-max", type=int, default=300, help="run ipmitool/ipmiconsole only up to this N"
    )
    args = ap.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="solcap-simfarm-"))
    fd = os.open(work / "pw", os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, PASSWORD.encode() + b"\n")
    os.close(fd)
    try:
        for n in [int(x) for x in args.n.split(",")]:
            for client in args.clients.split(","):
                if client != "solcap" and n > args.peers_max:
                    continue
                load = os.getloadavg()[0]
                t0 = time.monotonic()
                if client == "solcap":
                    row = run_solcap(n, args.size, args.baud, work)
                else:
                    row = run_peer(client, n, args.size, args.baud, work)
                row.update(size=args.size, baud=args.baud, load1_start=load)
                row.update(load1_end=os.getloadavg()[0], wall_s=time.monotonic() - t0)
                line = json.dumps(row)
                print(line, flush=True)
                if args.out:
                    with open(args.out, "a") as handle:
                        handle.write(line + "\n")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
