"""One lab machine: a virtual Xen host behind its own virtual BMC, in a process of its own.

``python -m solcap.sim.labhost --name node01 --state DIR`` starts both, prints ``port=N`` once
the BMC listens, and keeps ``DIR/<name>.json`` up to date with what the host has sent (every
debug-key dump's SHA-256), so a client in another process can prove its capture byte-exact.
The BMC gets a process of its own because pyghmi's session state is process-wide.

The IPMI password comes from ``IPMI_PASSWORD`` or ``--password-file`` (never argv).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import signal
import sys
from pathlib import Path
from typing import Any

import paramiko

from solcap.sim.bmc import VirtualBmc
from solcap.sim.dom0ssh import Dom0SshServer
from solcap.sim.host import FAULTS, SimConfig, VirtualHost
from solcap.sim.xen import HostSpec
from solcap.util.sigwake import SignalWake


def _state(
    name: str, host: VirtualHost, bmc: VirtualBmc, ssh: Dom0SshServer | None
) -> dict[str, Any]:
    return {
        "ssh_port": ssh.port if ssh is not None else None,
        "known_hosts_line": ssh.known_hosts_line if ssh is not None else None,
        "name": name,
        "pid": os.getpid(),
        "address": bmc.address,
        "port": bmc.port,
        "state": host.state,
        "input_target": host.input_target,
        "power": host.power_state,
        "sent_bytes": host.sent_count(),
        "bmc_discarded": bmc.discarded,
        # Every vCPU's hard and soft affinity as Xen holds it ("DOMID.VCPU": [hard, soft]).
        "affinity": host.xen.xl_vcpus.affinities() if host.xen is not None else {},
        "dumps": [
            {"key": d.key, "sha256": d.sha256, "bytes": len(d.data)} for d in list(host.dumps)
        ],
    }


def _write_atomic(path: Path, value: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(value, handle)
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m solcap.sim.labhost")
    parser.add_argument("--name", required=True)
    parser.add_argument("--state", required=True, type=Path, help="directory for <name>.json")
    parser.add_argument("--address", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--user", default="admin")
    parser.add_argument("--password-file", type=Path)
    parser.add_argument("--domus", type=int, default=2)
    parser.add_argument("--pcpus", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--baud", type=int, default=38400)
    parser.add_argument("--xen-version", default="4.17.7", help="what xl info reports")
    parser.add_argument("--fast", action="store_true")
    parser.add_argument("--xen-args")
    parser.add_argument("--dom0-args")
    parser.add_argument("--grub-timeout", type=int, default=1)
    parser.add_argument("--fault", action="append", default=[], choices=sorted(FAULTS))
    parser.add_argument("--off", action="store_true", help="start powered off")
    parser.add_argument(
        "--bmc-bit-rate", type=int, help="SOL bit rate the BMC reports (default --baud)"
    )
    parser.add_argument(
        "--ssh-authorized-key",
        type=Path,
        help="public key (OpenSSH format) allowed to log in to Dom0 over SSH",
    )
    args = parser.parse_args(argv)
    if not re.fullmatch(r"\d+\.\d+(\.\d+)?\S*", args.xen_version):
        parser.error(f"--xen-version: expected e.g. 4.17.7, got {args.xen_version!r}")
    if not args.address.startswith("127."):
        parser.error("the lab binds loopback addresses (127.0.0.0/8) only")
    if args.password_file is not None:
        password = args.password_file.read_text().strip()
    else:
        password = os.environ.get("IPMI_PASSWORD", "")
    if not password:
        parser.error("set IPMI_PASSWORD or give --password-file")

    config = SimConfig(
        spec=HostSpec(
            hostname=args.name,
            domus=args.domus,
            pcpus=args.pcpus,
            seed=args.seed,
            line_baud=args.baud,
            xen_version=args.xen_version,
        ),
        baud=args.baud,
        fast=args.fast,
        grub_timeout=args.grub_timeout,
        faults=frozenset(args.fault),
        auto_power_on=not args.off,
    )
    if args.xen_args is not None:
        config.xen_args = args.xen_args
    if args.dom0_args is not None:
        config.dom0_args = args.dom0_args

    # A pipe, not an Event, wakes the loop on a signal (solcap.util.sigwake says why).
    wake = SignalWake((signal.SIGTERM, signal.SIGINT)).__enter__()
    state_file = args.state / f"{args.name}.json"
    with VirtualHost(config) as host:
        host.start()
        bmc = VirtualBmc(
            host.pty_path,
            host,
            address=args.address,
            port=args.port,
            user=args.user,
            password=password,
            bit_rate=args.bmc_bit_rate or args.baud,
        )
        ssh = None
        if args.ssh_authorized_key is not None:
            kind, blob = args.ssh_authorized_key.read_text().split()[:2]
            ssh = Dom0SshServer(
                host,
                address=args.address,
                authorized_keys=[paramiko.PKey.from_type_string(kind, base64.b64decode(blob))],
            ).start()
        with bmc:
            print(f"port={bmc.port}", flush=True)
            last: dict[str, Any] = {}
            try:
                while True:
                    current = _state(args.name, host, bmc, ssh)
                    if current != last:
                        _write_atomic(state_file, current)
                        last = current
                    if wake.wait(0.05):
                        break
                final = _state(args.name, host, bmc, ssh) | {"stopped": True}
                _write_atomic(state_file, final)
            finally:
                if ssh is not None:
                    ssh.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
