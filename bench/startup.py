"""Start-up cost of the ``solcap`` command: modules loaded, import time, peak RSS.

``python -m bench.startup`` prints, for ``solcap --help`` and for ``solcap capture`` of a
virtual BMC's console (a few seconds of a paced stream), the number of modules loaded, which
heavy third-party packages were among them, the import time of ``solcap.cli``
(``python -X importtime``) and the command's peak RSS (its own rusage via ``os.wait4``).
Beside it, ``ipmitool sol activate`` on the same BMC for the same stream, when installed.
Figures are for comparison in one run on one machine; nothing here is a pass/fail test.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

TOP = Path(__file__).resolve().parents[1]
PASSWORD = "bench-startup-pw"
HEAVY = ("rich", "paramiko", "yaml", "pyte", "pyghmi", "cryptography", "nacl", "bcrypt", "serial")

_PROBE = """
import atexit, json, os, resource, sys
def _report():
    top = sorted({m.split('.')[0] for m in sys.modules})
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    hwm = [l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')]
    with open(os.environ['STARTUP_PROBE'], 'w') as f:
        json.dump({'modules': len(sys.modules), 'top': top, 'maxrss_kib': rss,
                   'vmhwm_kib': int(hwm[0])}, f)
atexit.register(_report)
from solcap.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _run(argv: list[str], env: dict[str, str]) -> tuple[int, Any]:
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, usage


def probe(args: list[str], env: dict[str, str]) -> dict[str, Any]:
    """Run ``solcap ARGS`` in a fresh interpreter; report its modules and peak RSS."""
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        env = dict(env, STARTUP_PROBE=out.name)
        rc, usage = _run([sys.executable, "-c", _PROBE, *args], env)
        data: dict[str, Any] = json.loads(Path(out.name).read_text() or "{}")
    data["heavy"] = [m for m in data.pop("top", []) if m in HEAVY]
    data["rc"] = rc
    data["cpu_s"] = round(usage.ru_utime + usage.ru_stime, 3)
    data["wait4_maxrss_kib"] = usage.ru_maxrss
    return data


def import_time_us(module: str) -> int:
    """Cumulative import time of ``module`` in microseconds (best of 5, fresh interpreters)."""
    best = None
    for _ in range(5):
        err = subprocess.run(
            [sys.executable, "-X", "importtime", "-c", f"import {module}"],
            capture_output=True,
            text=True,
            check=True,
        ).stderr
        for line in err.splitlines():
            parts = [p.strip() for p in line.removeprefix("import time:").split("|")]
            if len(parts) == 3 and parts[2] == module:
                value = int(parts[1])
                best = value if best is None else min(best, value)
    assert best is not None
    return best


def main() -> int:
    """Measure; the BMC runs in a process of its own so that this parent stays small (a
    child's peak RSS as wait4 reports it includes what it shared with its parent before
    exec)."""
    results: dict[str, Any] = {"import_solcap_cli_us": import_time_us("solcap.cli")}
    env = dict(os.environ, IPMI_PASSWORD=PASSWORD)
    results["help"] = probe(["--help"], env)
    master, slave = os.openpty()
    bmc = subprocess.Popen(
        [sys.executable, "-m", "solcap.sim.bmc", os.ttyname(slave)],
        stdout=subprocess.PIPE,
        env=env,
        cwd=TOP,
    )
    try:
        assert bmc.stdout is not None
        port = int(bmc.stdout.readline().decode().split("=")[1])
        with tempfile.TemporaryDirectory() as root:
            writer = _Feeder(master, 4.0)
            argv = ["capture", f"ipmi://admin@127.0.0.1:{port}", "--for", "3", "--root", root]
            results["capture"] = probe(argv, env)
            writer.join()
        ipmitool = shutil.which("ipmitool")
        if ipmitool:
            writer = _Feeder(master, 4.0)
            argv = [ipmitool, "-I", "lanplus", "-C", "17", "-H", "127.0.0.1", "-p"]
            argv += [str(port), "-U", "admin", "-E", "sol", "activate"]
            rc, usage = _run(["timeout", "-s", "INT", "3", *argv], env)
            # wait4 of `timeout` reports the larger of its own and its child's peak RSS
            results["ipmitool"] = {
                "rc": rc,
                "cpu_s": round(usage.ru_utime + usage.ru_stime, 3),
                "wait4_maxrss_kib": usage.ru_maxrss,
            }
            writer.join()
    finally:
        bmc.terminate()
        bmc.wait(timeout=10)
        os.close(master)
        os.close(slave)
    json.dump(results, sys.stdout, indent=1)
    print()
    return 0


class _Feeder:
    """Writes a line of console output every 50 ms into the BMC's pty for ``seconds``."""

    def __init__(self, fd: int, seconds: float) -> None:
        import threading

        self.fd = fd
        self.stop = time.monotonic() + seconds
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while time.monotonic() < self.stop:
            os.write(self.fd, b"x" * 512 + b"\r\n")
            time.sleep(0.05)

    def join(self) -> None:
        self.thread.join()


if __name__ == "__main__":
    raise SystemExit(main())
