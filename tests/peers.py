"""One place that decides what a missing real peer means: a failure under CI, a skip elsewhere.

The suite proves solcap against real programs (OpenIPMI's ipmi_sim, ipmitool, FreeIPMI's
ipmiconsole, OpenSSH, util-linux's scriptreplay, Debian's sudo). A skipped test proves nothing, so
a CI run that lacks one of them must go red, not green with a line in ``-ra``. On a developer's
machine a skip is kinder, but it names the Debian package that brings the peer back.

Strict when ``SOLCAP_REQUIRE_PEERS=1``, or when ``CI`` is set (to anything but an empty string)
and ``SOLCAP_REQUIRE_PEERS`` is not ``0``. ``.ci/run`` sets ``SOLCAP_REQUIRE_PEERS=1``.
"""

from __future__ import annotations

import os
import shutil
from typing import NoReturn

import pytest

# The Debian package that installs each peer (scripts/bootstrap installs the same list).
PACKAGES = {
    "ipmi_sim": "openipmi",
    "ipmitool": "ipmitool",
    "ipmiconsole": "freeipmi-tools",
    "sshd": "openssh-server",
    "ssh": "openssh-client",
    "ssh-keygen": "openssh-client",
    "scriptreplay": "bsdutils",
    "sudo": "sudo",
    "visudo": "sudo",
    "conserver": "conserver-server",
    "console": "conserver-client",
    "conmand": "conman",
    "conman": "conman",
    "ser2net": "ser2net",
    "ansible-inventory": "ansible-core",
    "ansible-playbook": "ansible-core",
    "systemd-analyze": "systemd",
    "chromium": "chromium",
    "chromedriver": "chromium-driver",
    "useradd": "passwd",  # tests/serve/test_access.py makes real second Unix users
    "userdel": "passwd",
    "chpasswd": "passwd",  # tests/grub/conftest.py gives its sudo user a password
}

# Where Debian puts administrator programs that a non-root PATH often lacks.
SBIN = "/usr/local/sbin:/usr/sbin:/sbin"


def peers_required() -> bool:
    """Whether a missing peer fails the run (CI) rather than skipping the test."""
    flag = os.environ.get("SOLCAP_REQUIRE_PEERS", "")
    if flag in ("0", "1"):
        return flag == "1"
    return bool(os.environ.get("CI"))


def missing(what: str, remedy: str) -> NoReturn:
    """Fail (CI) or skip (elsewhere) because ``what`` is absent; ``remedy`` says how to fix it."""
    message = f"{what} is missing: {remedy}"
    if peers_required():
        pytest.fail(f"{message} (a peer is required: SOLCAP_REQUIRE_PEERS/CI is set)")
    pytest.skip(message)


def find(binary: str) -> str | None:
    """Path of ``binary`` on PATH or in the sbin directories, or None."""
    return shutil.which(binary) or shutil.which(binary, path=SBIN)


def need(binary: str) -> str:
    """Path of the peer ``binary``; fails under CI, else skips naming its Debian package."""
    path = find(binary)
    if path is None:
        package = PACKAGES.get(binary, binary)
        missing(binary, f"apt-get install {package}")
    return path
