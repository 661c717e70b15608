"""Chassis power against the virtual BMC bridged to a virtual Xen host, in another process.

The host and its BMC run in a child process (``python tests/ipmi/test_power_vbmc.py serve``)
because pyghmi's state is process-global: the BMC there, solcap's client here (or in a CLI
child). The child answers ``state`` on stdin with the host's own view (power state, boot
count), so every assertion is about the host, not about what the BMC was told. ipmitool is
the cross-check from an independent client.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "s3cret-pw-for-tests"  # same as tests/ipmi/conftest.py (the child cannot import it)
USER = "admin"
#: The first firmware line; it appears once per power-on of the virtual host.
BOOT_MARK = b"Booting from Hard Disk..."

pytestmark = pytest.mark.timeout(90)


# ---- the child process ---------------------------------------------------------------------
class _Lagging:
    """The host as the BMC drives it; after ``lag`` command, power-off takes effect ``lag`` s
    late, like an OS shutting down, so ``--wait`` has something to wait for."""

    def __init__(self, host: Any) -> None:
        self.host = host
        self.lag = 0.0
        self.offs = 0  # power-off requests received

    @property
    def power_state(self) -> bool:
        return bool(self.host.power_state)

    def power_on(self) -> None:
        self.host.power_on()

    def power_off(self) -> None:
        self.offs += 1
        if self.lag <= 0:
            self.host.power_off()
            return
        timer = threading.Timer(self.lag, self.host.power_off)
        timer.daemon = True
        timer.start()

    def power_cycle(self) -> None:
        self.host.power_cycle()

    def reset(self) -> None:
        self.host.reset()


def serve(grub_timeout: int) -> int:
    """Run a fast VirtualHost behind a VirtualBmc; answer ``state``/``quit`` on stdin."""
    from solcap.sim.bmc import VirtualBmc
    from solcap.sim.host import SimConfig, VirtualHost

    password = os.environ["IPMI_PASSWORD"]
    # A GRUB superuser ("user:password") comes in the environment, never in argv.
    user, _, secret = os.environ.get("SIM_GRUB_SUPERUSER", "").partition(":")
    grub_password = (user, secret) if user else None
    config = SimConfig(fast=True, grub_timeout=grub_timeout, grub_password=grub_password)
    with (
        VirtualHost(config) as host,
        VirtualBmc(host.pty_path, _Lagging(host), password=password) as bmc,
    ):
        lagging = bmc.power
        assert isinstance(lagging, _Lagging)
        print(f"ready port={bmc.port} pty={host.pty_path}", flush=True)
        for line in sys.stdin:
            words = line.split()
            if not words or words[0] == "quit":
                break
            if words[0] == "state":
                boots = host.sent_bytes().count(BOOT_MARK)
                power = int(host.power_state)
                print(
                    f"state={host.state} power={power} input={host.input_target} "
                    f"boots={boots} breaks={bmc.breaks} offs={lagging.offs}",
                    flush=True,
                )
            elif words[0] == "sent" and len(words) == 2:
                Path(words[1]).write_bytes(host.sent_bytes())  # what the host put on its line
                print("ok", flush=True)
            elif words[0] == "sessions":
                print(f"sessions={bmc.logged_in_sessions()}", flush=True)  # not logged out
            elif words[0] == "lag" and len(words) == 2:
                lagging.lag = float(words[1])  # the host now takes this long to go off
                print("ok", flush=True)
            elif words[0] == "wait" and len(words) == 3:
                ok = host.wait_state(words[1], float(words[2]))
                print("ok" if ok else "timeout", flush=True)
            else:
                print(f"unknown {line.strip()}", flush=True)
    return 0


# ---- the test side -------------------------------------------------------------------------
class HostBehindBmc:
    """The child process: ``port`` of its BMC, ``pty`` of its host, ``state()`` of its host."""

    def __init__(self, grub_timeout: int = 300, grub_superuser: str | None = None) -> None:
        env = dict(os.environ, IPMI_PASSWORD=PASSWORD, PYTHONPATH=str(ROOT))
        if grub_superuser is not None:
            env["SIM_GRUB_SUPERUSER"] = grub_superuser  # "user:password"; GRUB then asks
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "serve", str(grub_timeout)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            cwd=ROOT,
            text=True,
            bufsize=1,
        )
        first = self._line(20)
        assert first.startswith("ready "), first
        fields = dict(word.split("=", 1) for word in first.split()[1:])
        self.port = int(fields["port"])
        self.pty = fields["pty"]
        self.url = f"ipmi://{USER}@127.0.0.1:{self.port}"

    def _line(self, timeout: float) -> str:
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        assert ready, "host/BMC process did not answer"
        return self.proc.stdout.readline().strip()

    def ask(self, command: str, timeout: float = 10) -> str:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return self._line(timeout)

    def state(self) -> dict[str, str]:
        return dict(word.split("=", 1) for word in self.ask("state").split())

    def wait_state(self, state: str, timeout: float) -> bool:
        return self.ask(f"wait {state} {timeout}", timeout + 5) == "ok"

    def sent_bytes(self, scratch: Path) -> bytes:
        """Every byte the host wrote to its serial line so far (its own record, not a client's)."""
        assert self.ask(f"sent {scratch}") == "ok"
        return scratch.read_bytes()

    def sessions(self) -> int:
        """Sessions logged in at the BMC and not logged out (the BMC's own count)."""
        answer = self.ask("sessions")
        assert answer.startswith("sessions="), answer
        return int(answer.split("=", 1)[1])

    def wait_for(self, key: str, value: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.state()[key] == value:
                return True
            time.sleep(0.05)
        return False

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.ask("quit", 2)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


@pytest.fixture
def host_bmc() -> Iterator[HostBehindBmc]:
    child = HostBehindBmc()
    try:
        yield child
    finally:
        child.close()


def solcap_power(url: str, action: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``solcap power`` as a user runs it: its own process, password from IPMI_PASSWORD."""
    full = {**os.environ, "IPMI_PASSWORD": PASSWORD, "PYTHONPATH": str(ROOT), **env}
    return subprocess.run(
        [sys.executable, "-m", "solcap.cli", "power", url, action, *args],
        env=full,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


def ipmitool_status(port: int, cipher: str = "17") -> str:
    from tests.ipmi.conftest import need

    cmd = [need("ipmitool"), "-I", "lanplus", "-H", "127.0.0.1", "-p", str(port)]
    cmd += ["-U", USER, "-E", "-C", cipher, "chassis", "power", "status"]
    env = dict(os.environ, IPMI_PASSWORD=PASSWORD)
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=30)
    assert res.returncode == 0, res.stderr
    return res.stdout.strip()


def test_status_off_on_cycle_reset_change_the_host(host_bmc: HostBehindBmc) -> None:
    assert host_bmc.wait_state("grub", 20)
    assert host_bmc.state()["boots"] == "1"

    res = solcap_power(host_bmc.url, "status")
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == f"{host_bmc.url}: power on"
    assert ipmitool_status(host_bmc.port) == "Chassis Power is on"

    res = solcap_power(host_bmc.url, "off")
    assert (res.returncode, res.stdout.strip()) == (0, f"{host_bmc.url}: power off"), res.stderr
    assert host_bmc.state()["state"] == "off"
    assert ipmitool_status(host_bmc.port) == "Chassis Power is off"
    assert solcap_power(host_bmc.url, "status").stdout.strip().endswith("power off")

    res = solcap_power(host_bmc.url, "on")
    assert (res.returncode, res.stdout.strip()) == (0, f"{host_bmc.url}: power on"), res.stderr
    assert host_bmc.wait_state("grub", 20)
    assert host_bmc.state()["boots"] == "2"  # the boot restarted from the firmware
    assert ipmitool_status(host_bmc.port, cipher="3") == "Chassis Power is on"

    res = solcap_power(host_bmc.url + "?cipher=3", "cycle")
    assert (res.returncode, res.stdout.strip()) == (0, f"{host_bmc.url}?cipher=3: power on")
    assert host_bmc.wait_for("boots", "3", 20)
    assert host_bmc.wait_state("grub", 20)

    res = solcap_power(host_bmc.url, "reset")
    assert res.returncode == 0, res.stderr
    assert host_bmc.wait_for("boots", "4", 20)
    assert ipmitool_status(host_bmc.port) == "Chassis Power is on"


def test_power_on_when_on_changes_nothing(host_bmc: HostBehindBmc) -> None:
    assert host_bmc.wait_state("grub", 20)
    res = solcap_power(host_bmc.url, "on")
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip().endswith("power on")
    assert host_bmc.state()["boots"] == "1"  # not rebooted


def test_wrong_password_exits_3_naming_the_bmc(host_bmc: HostBehindBmc) -> None:
    res = solcap_power(host_bmc.url, "off", IPMI_PASSWORD="wrong-password")
    assert res.returncode == 3
    assert f"127.0.0.1:{host_bmc.port}: authentication failed for user admin" in res.stderr
    assert res.stderr.count("\n") == 1  # one line, no traceback
    assert host_bmc.state()["power"] == "1"


def test_nothing_listening_exits_3_within_ten_seconds() -> None:
    from tests.ipmi.conftest import free_udp_port

    port = free_udp_port()
    start = time.monotonic()
    res = solcap_power(f"ipmi://admin@127.0.0.1:{port}", "status")
    assert res.returncode == 3
    assert "no answer from the BMC" in res.stderr
    took = time.monotonic() - start
    # the 10 s bound plus interpreter start-up, which a loaded machine (load 4+) stretches
    assert took < 10 + 8, took


def test_bad_input_exits_2_before_any_traffic() -> None:
    res = solcap_power("ipmi://admin@127.0.0.1:1?cipher=0", "status")
    assert res.returncode == 2 and "cipher suite 0 refused" in res.stderr
    res = solcap_power("ipmi://admin:pw@127.0.0.1:1", "status")
    assert res.returncode == 2 and "passwords do not belong in addresses" in res.stderr
    res = solcap_power("/dev/ttyS0", "status")
    assert res.returncode == 2 and "needs an ipmi://" in res.stderr
    res = solcap_power("ipmi://admin@127.0.0.1:1", "status", IPMI_PASSWORD="")
    assert res.returncode == 2 and "no IPMI password" in res.stderr


def test_library_call_returns_the_state(host_bmc: HostBehindBmc) -> None:
    from solcap.config.credentials import PasswordSource
    from solcap.errors import UsageError
    from solcap.transports.bmc import power

    source = PasswordSource(env={"IPMI_PASSWORD": PASSWORD}, prompt=False)
    assert host_bmc.wait_state("grub", 20)
    assert power(host_bmc.url, "off", password_source=source) == "off"
    assert host_bmc.state()["power"] == "0"
    assert power(host_bmc.url, "status", password_source=source) == "off"
    assert power(host_bmc.url, "cycle", password_source=source) == "on"
    assert host_bmc.wait_for("boots", "2", 20)
    with pytest.raises(UsageError, match="unknown power action"):
        power(host_bmc.url, "explode", password_source=source)


def test_off_waits_for_the_host_to_go_off_within_wait(host_bmc: HostBehindBmc) -> None:
    """docs/ipmi.md: ``on`` and ``off`` wait (up to ``--wait``) until the BMC reports the state."""
    assert host_bmc.wait_state("grub", 20)
    assert host_bmc.ask("lag 3") == "ok"  # the host goes off 3 s after it is told to
    start = time.monotonic()
    res = solcap_power(host_bmc.url, "off", "--wait", "20")
    took = time.monotonic() - start
    assert (res.returncode, res.stdout.strip()) == (0, f"{host_bmc.url}: power off"), res.stderr
    assert took >= 3, took  # it waited for the host, not for the BMC's acknowledgement
    assert host_bmc.state()["power"] == "0"


def test_off_with_a_short_wait_fails_in_one_line_while_the_host_is_still_on(
    host_bmc: HostBehindBmc,
) -> None:
    assert host_bmc.wait_state("grub", 20)
    assert host_bmc.ask("lag 8") == "ok"
    start = time.monotonic()
    res = solcap_power(host_bmc.url, "off", "--wait", "1")
    took = time.monotonic() - start
    # Gave up waiting after about a second: exit 3, one line naming the BMC and the failure.
    assert (res.returncode, res.stdout) == (3, ""), res.stderr
    assert res.stderr == (
        f"solcap: error: 127.0.0.1:{host_bmc.port}: power off failed: "
        "System did not accomplish power state change\n"
    )
    assert took < 8, took
    assert host_bmc.state()["power"] == "1"
    assert host_bmc.wait_for("power", "0", 15)  # the host did go off later, by itself


def test_library_shutdown_powers_the_host_off(host_bmc: HostBehindBmc) -> None:
    """docs/ipmi.md: ``power()`` also accepts "shutdown" (chassis control 05h)."""
    from solcap.config.credentials import PasswordSource
    from solcap.transports.bmc import power

    source = PasswordSource(env={"IPMI_PASSWORD": PASSWORD}, prompt=False)
    assert host_bmc.wait_state("grub", 20)
    assert host_bmc.ask("lag 2") == "ok"
    assert power(host_bmc.url, "shutdown", password_source=source, wait=20) == "off"
    assert host_bmc.state()["power"] == "0"
    assert ipmitool_status(host_bmc.port) == "Chassis Power is off"


def _no_session_left(host_bmc: HostBehindBmc, timeout: float = 5.0) -> bool:
    """Whether the BMC's count of logged-in sessions drops to 0 (a session never logged out
    stays there for good: the virtual BMC has no timeout for it)."""
    deadline = time.monotonic() + timeout
    while host_bmc.sessions() != 0:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def _power_process(url: str, action: str, *args: str) -> subprocess.Popen[str]:
    """``solcap power`` in the background, for a test that interrupts it."""
    full = {**os.environ, "IPMI_PASSWORD": PASSWORD, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "solcap.cli", "power", url, action, *args],
        env=full,
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_the_power_session_is_logged_out_on_every_path(host_bmc: HostBehindBmc) -> None:
    """docs/ipmi.md: the power session is logged out on every path (BMCs have few session
    slots): after a success, after an action that fails, and after Ctrl-C in the middle of
    ``--wait``. Counted by the BMC: sessions that logged in and sent no Close Session."""
    assert host_bmc.wait_state("grub", 20)
    assert host_bmc.sessions() == 0

    res = solcap_power(host_bmc.url, "status")  # success
    assert (res.returncode, res.stdout.strip()) == (0, f"{host_bmc.url}: power on"), res.stderr
    assert _no_session_left(host_bmc), "the session of a successful status was not logged out"

    # Interrupted: Ctrl-C while ``off --wait`` waits for a host that takes 60 s to go off.
    assert host_bmc.ask("lag 60") == "ok"
    proc = _power_process(host_bmc.url, "off", "--wait", "30")
    try:
        deadline = time.monotonic() + 20
        while host_bmc.sessions() != 1:  # logged in and waiting: the BMC counts it
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the power session never logged in"
            time.sleep(0.1)
        while host_bmc.state()["offs"] != "1":  # the BMC was told: now it waits for the state
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the power off never reached the BMC"
            time.sleep(0.1)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert proc.returncode == 130, (out, err)
    assert host_bmc.state()["power"] == "1"  # still on: the wait was really interrupted
    assert _no_session_left(host_bmc), "the interrupted power session was not logged out"

    # An action that fails after the login: the host does not go off within --wait 1.
    res = solcap_power(host_bmc.url, "off", "--wait", "1")
    assert res.returncode == 3 and "power off failed" in res.stderr, res.stderr
    assert _no_session_left(host_bmc), "the session of a failed power off was not logged out"


@pytest.mark.parametrize(
    ("signum", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["INT", "TERM"]
)
def test_a_signal_ends_power_off_wait_promptly_and_logs_out(
    host_bmc: HostBehindBmc, signum: int, status: int
) -> None:
    """Ctrl-C (SIGINT) or SIGTERM in the middle of ``off --wait 30`` ends the command within
    seconds, not at the end of the wait: the session is logged out (the BMC's count drops to
    0) and the exit status is 128 + the signal. The bound of 10 s is generous for a loaded
    machine; the wait left when the signal comes is about 28 s."""
    assert host_bmc.wait_state("grub", 20)
    assert host_bmc.ask("lag 60") == "ok"  # the host takes far longer than --wait to go off
    proc = _power_process(host_bmc.url, "off", "--wait", "30")
    try:
        deadline = time.monotonic() + 20
        while host_bmc.state()["offs"] != "1":  # the BMC was told: the wait has begun
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the power off never reached the BMC"
            time.sleep(0.1)
        time.sleep(1.5)  # into the wait, past the first poll of the state
        sent = time.monotonic()
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=40)
        took = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert (proc.returncode, out) == (status, ""), err
    assert took < 10, f"exited {took:.1f} s after the signal"
    assert host_bmc.state()["power"] == "1"  # still on: the wait was really interrupted
    assert _no_session_left(host_bmc, timeout=2), "the interrupted session was not logged out"


if __name__ == "__main__":
    if sys.argv[1:2] == ["serve"]:
        sys.exit(serve(int(sys.argv[2])))


@pytest.mark.parametrize("answer_after", [1.2, 2.0])
def test_a_slow_bmc_still_logs_in(host_bmc: HostBehindBmc, answer_after: float) -> None:
    """A BMC that answers every login request only after ``answer_after`` s (a busy BMC, or
    this machine under load): past pyghmi's first wait of 0.5-1 s, and at 2 s the login's
    eight exchanges outlast the 10 s bound. It is slow, not dead: the login goes on while the
    BMC keeps answering and the power status comes back."""
    from solcap.testing.faultproxy import FaultProxy, Faults, proxy_address

    slow = Faults(delay=1.0, delay_range=(answer_after, answer_after))
    address, port = proxy_address(host_bmc.port)
    with FaultProxy(
        (address, port), ("127.0.0.1", host_bmc.port), seed=1, to_client=slow, max_runtime=80
    ) as proxy:
        url = f"ipmi://admin@{address}:{port}"
        start = time.monotonic()
        res = solcap_power(url, "status")
        took = time.monotonic() - start
        assert proxy.stats["to_client"].delayed > 0
    assert (res.returncode, res.stdout, res.stderr) == (0, f"{url}: power on\n", ""), took


def test_a_bmc_slow_to_answer_rakp_still_logs_in(host_bmc: HostBehindBmc) -> None:
    """Only the RAKP answers (RAKP2, RAKP4) come 1.5 s late, as from a BMC whose slow CPU
    spends that long on the key exchange: pyghmi restarts the login each time such an answer
    is late and waits 0.5-1 s again, so it never got in; each late RAKP now makes the next
    attempt wait longer."""
    from solcap.testing.faultproxy import Direction, FaultProxy, proxy_address

    class SlowRakp(FaultProxy):
        late = 0

        def _decide(self, direction: str, flow: Any, data: bytes, sock: Any, dest: Any) -> None:
            # RMCP+ (auth type 06h): byte 5 is the payload type; 13h RAKP2, 15h RAKP4.
            rakp = len(data) > 5 and data[4] == 0x06 and data[5] & 0x3F in (0x13, 0x15)
            if direction == Direction.TO_CLIENT and rakp:
                self.late += 1
                self._schedule(time.monotonic() + 1.5, sock, data, dest)
                return
            super()._decide(direction, flow, data, sock, dest)

    address, port = proxy_address(host_bmc.port)
    with SlowRakp((address, port), ("127.0.0.1", host_bmc.port), seed=1, max_runtime=80) as proxy:
        url = f"ipmi://admin@{address}:{port}"
        res = solcap_power(url, "status")
        assert proxy.late >= 2
    assert (res.returncode, res.stdout, res.stderr) == (0, f"{url}: power on\n", "")
