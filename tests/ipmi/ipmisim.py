"""OpenIPMI's ipmi_sim as a test peer: start it, kill it, start it again on the same ports.

ipmi_sim is the TCP *client* of its serial side (``sol "tcp:127.0.0.1:P" 115200``): the test
listens on P and plays the host. The listener outlives ipmi_sim, so a restarted ipmi_sim
connects to the same "host" again while the host side keeps running — a BMC reboot as the
far end sees it. One place for the configuration, used by tests/ipmi/test_ipmi_sim.py and
tests/resilience/test_ipmi_sim_restart.py.
"""

from __future__ import annotations

import socket
import subprocess
import threading
import time
from pathlib import Path

from solcap.transports.base import Transport
from solcap.transports.ipmi import IpmiTarget
from tests.ipmi.conftest import PASSWORD, USER, free_udp_port, need

EMU = """mc_setbmc 0x20
mc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02 persist_sdr
mc_enable 0x20
"""


class IpmiSim:
    """A running ipmi_sim (cipher suite 3 only) and the TCP connection that plays its serial
    port. :meth:`restart` kills it without a word (SIGKILL) and starts a new one."""

    def __init__(self, workdir: Path) -> None:
        self.binary = need("ipmi_sim")
        self.workdir = workdir
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(2)
        self.listener.settimeout(20)
        self.port = free_udp_port()
        self.serial_port: int = self.listener.getsockname()[1]
        self.proc: subprocess.Popen[bytes] | None = None
        self.serial: socket.socket | None = None
        #: Bumped each time a new serial connection replaces the old one (see :meth:`restart`).
        self.generation = 0
        (workdir / "bmc.emu").write_text(EMU)
        (workdir / "lan.conf").write_text(
            f"""name "solcap-test"
set_working_mc 0x20
  startlan 1
    addr 127.0.0.1 {self.port}
    priv_limit admin
    allowed_auths_admin none md2 md5 straight
    guid a123456789abcdefa123456789abcdef
  endlan
  sol "tcp:127.0.0.1:{self.serial_port}" 115200
user 2 true "{USER}" "{PASSWORD}" admin 10 none md2 md5 straight
"""
        )
        (workdir / "state").mkdir(exist_ok=True)

    @property
    def url(self) -> str:
        return f"ipmi://{USER}@127.0.0.1:{self.port}"

    def target(self, user: str = USER) -> IpmiTarget:
        return IpmiTarget("127.0.0.1", user, self.port, 3)

    def start(self) -> IpmiSim:
        """Start ipmi_sim and wait for it to connect its serial side."""
        self.proc = subprocess.Popen(
            [self.binary, "-n", "-c", "lan.conf", "-f", "bmc.emu", "-s", "state"],
            cwd=self.workdir,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        serial, _ = self.listener.accept()
        self.serial = serial
        self.generation += 1
        return self

    def kill(self) -> None:
        """SIGKILL: the BMC goes away without a word; the host side (the listener) stays."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(10)
            self.proc = None
        if self.serial is not None:
            self.serial.close()
            self.serial = None

    def restart(self) -> None:
        self.kill()
        self.start()

    def send(self, data: bytes) -> bool:
        """Print ``data`` on the host's serial line; False when no ipmi_sim is listening."""
        serial = self.serial
        if serial is None:
            return False
        try:
            serial.sendall(data)
        except OSError:
            return False
        return True

    def serial_read_until(self, want: bytes, timeout: float) -> bytes:
        got = b""
        assert self.serial is not None
        self.serial.settimeout(0.2)
        deadline = time.monotonic() + timeout
        while want not in got and time.monotonic() < deadline:
            try:
                chunk = self.serial.recv(65536)
            except TimeoutError:
                continue
            if not chunk:
                break
            got += chunk
        return got

    def close(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
            self.proc = None
        if self.serial is not None:
            self.serial.close()
            self.serial = None
        self.listener.close()


def read_exactly(tr: Transport, n: int, timeout: float) -> bytes:
    got = bytearray()
    deadline = time.monotonic() + timeout
    while len(got) < n and time.monotonic() < deadline:
        got += tr.read(65536, 0.5)
    return bytes(got)


class XenResponder:
    """The host on ipmi_sim's serial side: Xen as solcap's simulator prints it (switch
    banners for Ctrl-A×3, each debug key's dump from :class:`solcap.sim.xen.XenHost`).

    It follows :attr:`IpmiSim.serial` across a restart: the host keeps running while its BMC
    reboots; what it prints with no BMC listening is lost, as on a real line. A key in
    ``hold`` is answered only when :meth:`release` is called (so a test can restart the BMC
    while a harvest waits for that dump); :attr:`held` is set once such a key arrived.
    """

    def __init__(self, sim: IpmiSim, *, hold: str = "") -> None:
        from solcap.sim.xen import HostSpec, XenHost

        self.sim = sim
        self.xen = XenHost(HostSpec(line_baud=115200), "com1=115200,8n1 console=com1", "")
        self.hold = set(hold)
        self.held = threading.Event()
        self._pending: list[str] = []
        self._on_xen = False
        self._ctrl_a = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.received = bytearray()
        #: What was printed for each debug key (the expected content of ``keys/<k>.txt``).
        self.answers: dict[str, bytes] = {}
        self._thread = threading.Thread(target=self._run, name="xen-responder", daemon=True)

    def start(self) -> XenResponder:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def release(self) -> None:
        """Answer the held keys now (on whichever BMC is listening by then)."""
        with self._lock:
            pending, self._pending = self._pending, []
            self.hold.clear()
        for key in pending:
            self._answer(key)

    def _run(self) -> None:
        while not self._stop.is_set():
            serial = self.sim.serial
            if serial is None:
                time.sleep(0.05)
                continue
            try:
                serial.settimeout(0.2)
                data = serial.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                time.sleep(0.05)
                continue
            if not data:
                while self.sim.serial is serial and not self._stop.is_set():
                    time.sleep(0.05)  # ipmi_sim went away; wait for the next one
                continue
            self.received += data
            for byte in data:
                self._byte(byte)

    def _byte(self, byte: int) -> None:
        if byte == 0x01:
            self._ctrl_a += 1
            if self._ctrl_a == 3:
                self._ctrl_a = 0
                self._on_xen = not self._on_xen
                self.sim.send(self.xen.switch_banner(self._on_xen))
            return
        self._ctrl_a = 0
        if not self._on_xen:
            return
        key = chr(byte)
        with self._lock:
            if key in self.hold:
                self._pending.append(key)
                self.held.set()
                return
        self._answer(key)

    def _answer(self, key: str) -> None:
        out = self.xen.debug_key(key) or b""
        self.answers[key] = out
        self.sim.send(out)
