"""A command loads only the third-party packages it uses (issue: a lean process).

Each check runs ``solcap`` in a fresh interpreter and reads back ``sys.modules`` as it stood
when the command finished: importing ``solcap.cli``, ``solcap --help`` and a capture of a real
pseudo-terminal must not load paramiko (with cryptography, nacl, bcrypt), rich, PyYAML, pyte
or pyghmi. The SSH and YAML paths still load theirs on first use (checked last, so the check
itself cannot pass by never looking).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(60)

TOP = Path(__file__).resolve().parents[2]
HEAVY = ("paramiko", "rich", "yaml", "pyte", "pyghmi", "cryptography", "nacl", "bcrypt")

#: Runs ``main(argv)`` (or only the imports when argv is "-") and prints which of HEAVY it
#: left in sys.modules, on the last line of stdout, as JSON.
_PROBE = r"""
import json, sys
heavy = sys.argv[1].split(",")
argv = sys.argv[2:]
code = None
try:
    import solcap.cli
    if argv != ["-"]:
        code = solcap.cli.main(argv)
except SystemExit as exc:
    code = exc.code
loaded = sorted({m.split(".")[0] for m in sys.modules} & set(heavy))
print(json.dumps({"code": code, "loaded": loaded}))
"""


def _loaded(*argv: str, env: dict[str, str] | None = None) -> dict[str, object]:
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE, ",".join(HEAVY), *argv],
        capture_output=True,
        text=True,
        timeout=50,
        cwd=TOP,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    result: dict[str, object] = json.loads(proc.stdout.splitlines()[-1])
    return result


def test_importing_the_cli_loads_no_heavy_package() -> None:
    assert _loaded("-") == {"code": None, "loaded": []}


@pytest.mark.parametrize("argv", [["--help"], ["capture", "--help"], ["run", "--help"]])
def test_help_loads_no_heavy_package(argv: list[str]) -> None:
    assert _loaded(*argv) == {"code": 0, "loaded": []}


def test_a_serial_capture_loads_no_heavy_package(tmp_path: Path) -> None:
    """A capture of a real pty for half a second: only pyserial's side of the world."""
    master, slave = os.openpty()
    try:
        path = os.ttyname(slave)
        got = _loaded("capture", path, "--for", "0.5", "--root", str(tmp_path / "rec"))
    finally:
        os.close(master)
        os.close(slave)
    assert got == {"code": 0, "loaded": []}
    assert list((tmp_path / "rec").iterdir()), "the capture recorded nothing"


def test_the_packages_still_load_when_a_command_uses_them() -> None:
    """The lazy stand-ins really import: parsing YAML and fingerprinting a key load them.

    (The SSH path end to end, host-key policy included, is tests/grub/test_ssh.py against a
    real sshd.)
    """
    probe = (
        "import json, sys\n"
        "from solcap.config import docload\nfrom solcap.transports import ssh\n"
        "before = sorted({m.split('.')[0] for m in sys.modules} & {'yaml', 'paramiko'})\n"
        "doc = docload.load_yaml_text('hosts:\\n  web1: {port: 7}\\n', 'inv.yaml')\n"
        "key = ssh.paramiko.Ed25519Key.from_private_key_file\n"
        "after = sorted({m.split('.')[0] for m in sys.modules} & {'yaml', 'paramiko'})\n"
        "print(json.dumps([before, after, repr(doc.data)]))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=50, cwd=TOP
    )
    assert proc.returncode == 0, proc.stderr
    before, after, data = json.loads(proc.stdout)
    assert (before, after) == ([], ["paramiko", "yaml"])
    assert data == "{'hosts': {'web1': {'port': 7}}}"


#: What an ipmi:// capture must not load (it needs pyghmi and cryptography, nothing else heavy).
NOT_FOR_SOL = ("rich", "paramiko", "yaml", "pyte", "aiohttp", "nacl", "bcrypt")


def test_an_ipmi_capture_loads_only_what_sol_needs(tmp_path: Path) -> None:
    """``solcap capture ipmi://…`` of the virtual BMC (its own process, a real pty behind it)
    until the host's last line: pyghmi and cryptography load (so this really was an IPMI
    capture), none of rich, paramiko, PyYAML, pyte, aiohttp; the recording holds exactly what
    the host wrote."""
    from tests.ipmi.conftest import PASSWORD, USER

    master, slave = os.openpty()
    env = dict(os.environ, IPMI_PASSWORD=PASSWORD)
    bmc = subprocess.Popen(
        [sys.executable, "-m", "solcap.sim.bmc", os.ttyname(slave)],
        stdout=subprocess.PIPE,
        env=env,
        cwd=TOP,
    )
    try:
        assert bmc.stdout is not None
        line = bmc.stdout.readline().decode()
        assert line.startswith("port="), line
        sent = b"lean-capture: the host's boot log\r\n" * 20 + b"lean-capture-end"
        os.write(master, sent)  # kept by the BMC until a console attaches
        url = f"ipmi://{USER}@127.0.0.1:{int(line.split('=')[1])}"
        heavy = ",".join((*NOT_FOR_SOL, "pyghmi", "cryptography"))
        # Until the last bytes are seen (a login under load can take most of a fixed time).
        argv = ["capture", url, "--until", "lean-capture-end", "--for", "30"]
        argv += ["--root", str(tmp_path / "rec")]
        proc = subprocess.run(
            [sys.executable, "-c", _PROBE, heavy, *argv],
            capture_output=True,
            text=True,
            timeout=50,
            cwd=TOP,
            env=env,
        )
    finally:
        bmc.terminate()
        bmc.wait(timeout=10)
        os.close(master)
        os.close(slave)
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout.splitlines()[-1])
    assert got == {"code": 0, "loaded": ["cryptography", "pyghmi"]}
    (raw,) = (tmp_path / "rec").rglob("console.raw")
    assert raw.read_bytes() == sent
