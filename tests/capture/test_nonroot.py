"""What the docs promise an ordinary user, checked as one: a real non-root account, driven by
Debian's ``sudo`` (docs/recordings.md: directories 0700, files 0600; docs/ipmi.md: a password
file must be the user's own 0600 file).

Root reads every file whatever its mode, so none of this can be shown as root. The test
creates a throw-away system user (it needs root for that, as CI runs) and removes it after.
"""

from __future__ import annotations

import os
import shlex
import shutil
import stat
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import peers

pytestmark = pytest.mark.timeout(120)
ROOT = Path(__file__).resolve().parents[2]
PYTHONPATH = f"{ROOT}:{sysconfig.get_paths()['purelib']}:{sysconfig.get_paths()['platlib']}"


class User:
    def __init__(self, name: str, sudo: str) -> None:
        self.name = name
        self.sudo = sudo
        self.uid = int(subprocess.check_output(["id", "-u", name]).decode())
        self.home = Path(tempfile.mkdtemp(prefix="solcap-nonroot-"))
        os.chown(self.home, self.uid, -1)  # 0700, theirs: nobody else may look in
        self.python = self._python()

    def _python(self) -> str:
        """An interpreter of this Python version the user may run (a venv's may live under
        /root), with this environment's packages on PYTHONPATH."""
        version = f"python{sys.version_info.major}.{sys.version_info.minor}"
        for exe in (os.path.realpath(sys.executable), f"/usr/bin/{version}"):
            probe = [self.sudo, "-n", "-u", self.name, "test", "-x", exe]
            if subprocess.run(probe, capture_output=True, timeout=30).returncode == 0:
                return exe
        peers.missing(f"a {version} the test user can run", f"apt-get install {version}")

    def start(self, shell: str) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [
                self.sudo,
                "-n",
                "-u",
                self.name,
                "env",
                f"PYTHONPATH={PYTHONPATH}",
                "sh",
                "-c",
                shell,
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        return proc

    def solcap(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        shell = (
            f"umask 000; cd {shlex.quote(str(self.home))}; "
            f"exec {shlex.join([self.python, '-m', 'solcap.cli', *args])}"
        )
        proc = self.start(shell)
        out, err = proc.communicate(timeout=timeout)
        return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


@pytest.fixture(scope="module")
def user() -> Iterator[User]:
    sudo = peers.need("sudo")
    if os.geteuid() != 0:
        peers.missing("root (to create a throw-away user)", "run the suite as root, as CI does")
    name = f"solcapt{os.getpid() % 100000}"
    useradd = peers.find("useradd") or "/usr/sbin/useradd"
    subprocess.run(
        [useradd, "--system", "--no-create-home", "--user-group", "--shell", "/bin/sh", name],
        check=True,
        capture_output=True,
    )
    made = User(name, sudo)
    try:
        yield made
    finally:
        shutil.rmtree(made.home, ignore_errors=True)
        userdel = peers.find("userdel") or "/usr/sbin/userdel"
        subprocess.run([userdel, name], check=False, capture_output=True)


def test_a_capture_by_a_user_is_private_to_that_user_whatever_its_umask(user: User) -> None:
    master, slave = os.openpty()
    try:
        os.chown(os.ttyname(slave), user.uid, -1)  # the user's own serial line
        rec_root = user.home / "rec"
        argv = [user.python, "-m", "solcap.cli", "capture", os.ttyname(slave), "--host", "h"]
        argv += ["--root", str(rec_root), "--until", "THE-END"]
        shell = f"umask 000; cd {shlex.quote(str(user.home))}; exec {shlex.join(argv)}"
        proc = user.start(shell)
        deadline = time.monotonic() + 30
        while not list(rec_root.glob("h/*/console.raw")) and time.monotonic() < deadline:
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.05)  # polls for the file to appear (nothing to block on)
        sent = bytes(range(256)) + b"\r\nTHE-END\r\n"
        os.write(master, sent)
        _out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
    finally:
        os.close(master)
        os.close(slave)
    (rec,) = rec_root.glob("h/*")
    assert (rec / "console.raw").read_bytes() == sent
    paths = [rec_root, *rec_root.rglob("*")]
    assert len(paths) > 4
    for path in paths:
        st = path.lstat()
        assert st.st_uid == user.uid, path
        want = 0o700 if stat.S_ISDIR(st.st_mode) else 0o600
        assert stat.S_IMODE(st.st_mode) == want, (path, oct(st.st_mode))
    # Another ordinary user cannot read it (nobody: uid 65534 on Debian).
    spy = subprocess.run(
        [user.sudo, "-n", "-u", "nobody", "cat", str(rec / "console.raw")],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert spy.returncode != 0 and "Permission denied" in spy.stderr
    # and its owner reads it back intact
    shown = user.solcap("show", str(rec))
    assert shown.returncode == 0, shown.stderr
    assert "complete: console.raw matches meta.json" in shown.stdout


def test_a_password_file_the_user_cannot_read_is_one_line_exit_2(user: User) -> None:
    secret = Path(tempfile.mkdtemp(prefix="solcap-rootpw-")) / "pw"
    try:
        secret.parent.chmod(0o755)
        secret.write_text("root-only\n")
        secret.chmod(0o600)  # root's own 0600 file: fine for root, unreadable for the user
        done = user.solcap(
            "power", "ipmi://admin@127.0.0.1:1", "status", "--password-file", str(secret)
        )
    finally:
        shutil.rmtree(secret.parent)
    assert done.returncode == 2
    assert done.stderr == (
        f"solcap: error: {secret}: cannot read password file: Permission denied\n"
    )


def test_a_users_password_file_others_can_read_is_refused_naming_the_chmod(user: User) -> None:
    pw = user.home / "pw"
    pw.write_text("mine\n")
    os.chown(pw, user.uid, -1)
    pw.chmod(0o640)
    done = user.solcap("power", "ipmi://admin@127.0.0.1:1", "status", "--password-file", str(pw))
    assert done.returncode == 2
    assert done.stderr == (
        f"solcap: error: {pw}: password file is accessible by group or others (mode 0640); "
        f"run: chmod 600 {pw}\n"
    )
