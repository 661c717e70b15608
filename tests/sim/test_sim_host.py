"""The virtual Xen host, driven through its real pseudo-terminal."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from solcap.sim.host import VirtualHost

from .conftest import PtyClient

MakeHost = Callable[..., tuple[VirtualHost, PtyClient]]

pytestmark = pytest.mark.timeout(60)

XEN_BANNER = b"*** Serial input to Xen"
DOM0_BANNER = b"*** Serial input to DOM0"


def boot_to_dom0(make_host: MakeHost, **kwargs: object) -> tuple[VirtualHost, PtyClient]:
    host, client = make_host(**kwargs)
    assert host.wait_state("running", 30), host.state
    client.catch_up(host)
    return host, client


def test_firmware_then_grub_menu(make_host: MakeHost) -> None:
    host, client = make_host(grub_timeout=30)
    end = client.expect(b"Booting from Hard Disk...")
    client.expect(b"GNU GRUB", start=end)
    assert host.wait_state("grub", 5)
    assert host.power_state


def test_countdown_boots_default_with_configured_xen_args(make_host: MakeHost) -> None:
    args = "com1=38400,8n1 console=com1 loglvl=all guest_loglvl=all solcap_marker=7"
    host, client = boot_to_dom0(make_host, xen_args=args)
    client.expect(b"(XEN) Command line: " + args.encode())
    assert bytes(client.buf) == host.sent_bytes()
    assert host.input_target == "dom0"


def test_power_cycle_restarts_at_firmware(make_host: MakeHost) -> None:
    host, client = boot_to_dom0(make_host)
    mark = len(client.buf)
    host.power_cycle()
    assert host.wait_state("grub", 10)
    end = client.expect(b"Booting from Hard Disk...", start=mark)
    client.expect(b"GNU GRUB", start=end)


def test_power_off_is_silent(make_host: MakeHost) -> None:
    host, client = make_host(grub_timeout=30)
    assert host.wait_state("grub", 5)
    host.power_off()
    assert host.state == "off" and not host.power_state
    assert host.wait_idle(5)
    client.catch_up(host)
    mark = len(host.sent_bytes())
    assert not client.pump(0.3)
    assert len(host.sent_bytes()) == mark


@pytest.mark.timeout(30)
def test_pacing_follows_the_baud_rate(make_host: MakeHost) -> None:
    host, client = make_host(fast=False, baud=38400, auto_power_on=False)
    payload = bytes(range(32, 128)) * 40  # 3,840 bytes: one second at 38400 8N1
    host.inject(payload)
    client.expect(payload[:1], timeout=5)
    first = time.monotonic()
    client.expect(payload, timeout=5)
    elapsed = time.monotonic() - first
    assert 0.8 <= elapsed <= 1.6, elapsed
    assert host.sent_bytes() == payload
