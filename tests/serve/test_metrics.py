"""``solcap serve --metrics``: a Prometheus endpoint, scraped over HTTP and read with
prometheus_client's own text parser; bad ``--metrics`` is one line, exit 2, nothing made."""

from __future__ import annotations

import io
import socket
import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from solcap.cli import main
from solcap.serve.client import Attachment
from tests.serve.conftest import wait_for, write_inventory

pytestmark = pytest.mark.timeout(120)


def _scrape(url: str) -> tuple[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]]:
    with urllib.request.urlopen(url, timeout=10) as reply:
        kind = reply.headers["Content-Type"]
        text = reply.read().decode()
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return kind, samples


@pytest.mark.parametrize("workers", [1, 2])
def test_metrics_endpoint_reports_states_bytes_clients_and_output_age(tmp_path, ptys, serve):
    pty = ptys()
    inv = tmp_path / "inv.yaml"
    write_inventory(inv, {"h1": pty.path, "gone": "/dev/pts/nonexistent-9999"})
    server = serve(
        inv, "--metrics", "127.0.0.1:0", "--backoff-base", "0.05", "--backoff-max", "0.2"
    )
    assert server.proc is not None and server.proc.stdout is not None
    line = server.proc.stdout.readline().decode().strip()
    assert line.startswith("metrics http://127.0.0.1:"), line
    url = line.split(" ", 1)[1]
    wait_for(lambda: server.status()["h1"]["state"] == "up", 30, "h1 up")
    wait_for(lambda: server.status()["gone"]["state"] == "down", 30, "gone down")
    # attempts count the tries since the state last changed: the one that found "gone" down
    # started the count afresh, so wait for a retry.
    wait_for(lambda: server.status()["gone"]["attempts"] >= 1, 30, "a retry of gone")
    data = bytes(range(256)) * 40
    pty.write_all(data)
    server.wait_bytes("h1", len(data))
    assert server.socket is not None
    with Attachment(server.socket, "h1", who="watcher"):
        wait_for(lambda: len(server.status()["h1"]["clients"]) == 1, 10, "the client")
        kind, got = _scrape(url)
    assert kind.startswith("text/plain; version=0.0.4")

    def value(name: str, **labels: str) -> float:
        return got[(name, tuple(sorted(labels.items())))]

    assert value("solcap_serve_up") == 1
    assert value("solcap_serve_consoles", state="up") == 1
    assert value("solcap_serve_consoles", state="down") == 1
    assert value("solcap_serve_consoles", state="busy") == 0
    assert value("solcap_serve_console_state", host="h1", state="up") == 1
    assert value("solcap_serve_console_state", host="gone", state="down") == 1
    assert value("solcap_serve_console_state", host="gone", state="up") == 0
    assert value("solcap_serve_console_bytes_total", host="h1") == len(data)
    assert value("solcap_serve_console_bytes_total", host="gone") == 0
    assert value("solcap_serve_console_clients", host="h1") == 1
    assert value("solcap_serve_console_clients", host="gone") == 0
    assert value("solcap_serve_console_reconnects_total", host="h1") == 0
    assert value("solcap_serve_console_attempts", host="gone") >= 1
    age = value("solcap_serve_console_last_output_age_seconds", host="h1")
    assert 0 <= age < 60
    assert ("solcap_serve_console_last_output_age_seconds", (("host", "gone"),)) not in got
    # The client left: the next scrape says so.
    wait_for(lambda: _scrape(url)[1][("solcap_serve_console_clients", (("host", "h1"),))] == 0, 10)
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(url.replace("/metrics", "/"), timeout=10)
    assert refused.value.code == 404


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ("0.0.0.0:9321", "only a loopback address"),
        ("10.1.2.3:9321", "only a loopback address"),
        ("localhost", "expected ADDRESS:PORT"),
        ("example.invalid:9321", "must be a loopback IP"),
        ("busy", "cannot listen"),
    ],
)
def test_bad_metrics_addresses_are_one_line_and_nothing_is_made(
    tmp_path, ptys, capsys, given, message
):
    inv = tmp_path / "inv.yaml"
    write_inventory(inv, {"h1": ptys().path})
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen(1)
    try:
        if given == "busy":
            given = f"127.0.0.1:{holder.getsockname()[1]}"
        root, ctl = tmp_path / "rec", tmp_path / "ctl"
        argv = ["serve", "--inventory", str(inv), "--root", str(root), "--control-dir", str(ctl)]
        assert main([*argv, "--metrics", given], out=io.StringIO()) == 2
    finally:
        holder.close()
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err and "--metrics" in err, err
    assert not root.exists() and not ctl.exists()
