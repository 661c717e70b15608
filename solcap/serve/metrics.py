"""``solcap serve --metrics ADDR:PORT``: the server's health in Prometheus' text format.

``GET /metrics`` renders the same status ``solcap status`` reads (no second bookkeeping)
in text exposition format 0.0.4::

    solcap_serve_consoles{state="up"} 998            # consoles per state (every state listed)
    solcap_serve_console_state{host="n1",state="up"} 1
    solcap_serve_console_bytes_total{host="n1"} 123456
    solcap_serve_console_reconnects_total{host="n1"} 2
    solcap_serve_console_last_output_age_seconds{host="n1"} 0.4   # hosts that sent output
    solcap_serve_console_clients{host="n1"} 1
    solcap_serve_console_attempts{host="n1"} 0
    solcap_serve_console_panics_total{host="n1"} 0

The listener is loopback only (the names of every console and their states are not for the
network; a Prometheus elsewhere scrapes it through a proxy or an SSH tunnel), one thread,
HTTP/1.0, nothing but ``GET /metrics``.
"""

from __future__ import annotations

import contextlib
import http.server
import ipaddress
import threading
import time
from collections.abc import Callable
from typing import Any, Final

from solcap.errors import UsageError

STATES: Final = ("up", "connecting", "down", "busy", "stopped")
CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"

_PER_HOST: Final = (
    ("bytes_total", "counter", "bytes received from the console", "bytes"),
    ("reconnects_total", "counter", "times the console came back after going away", "reconnects"),
    ("clients", "gauge", "attached clients", None),
    ("attempts", "gauge", "opening attempts since the state last changed", "attempts"),
    ("panics_total", "counter", "Xen 'Panic on CPU' lines seen", "panics"),
)


def parse_listen(text: str) -> tuple[str, int]:
    """``127.0.0.1:9321`` / ``[::1]:9321`` → (address, port); loopback only."""
    host, sep, port_text = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port_text.isdigit() or not 0 <= int(port_text) < 65536:
        raise UsageError(f"--metrics {text!r}: expected ADDRESS:PORT such as 127.0.0.1:9321")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise UsageError(f"--metrics {text!r}: the address must be a loopback IP") from None
    if not address.is_loopback:
        raise UsageError(
            f"--metrics {text!r}: only a loopback address (127.0.0.0/8, ::1) is served; "
            "scrape through a proxy or a tunnel"
        )
    return str(address), int(port_text)


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def render(status: dict[str, Any], now: float | None = None) -> str:
    """The exposition text for one ``status_json()`` reply."""
    now = time.time() if now is None else now
    hosts = status.get("hosts", [])
    out: list[str] = []

    def family(name: str, kind: str, text: str) -> None:
        out.append(f"# HELP solcap_serve_{name} {text}")
        out.append(f"# TYPE solcap_serve_{name} {kind}")

    family("up", "gauge", "1 while the server runs")
    out.append("solcap_serve_up 1")
    family("start_time_seconds", "gauge", "when the server started (Unix time)")
    out.append(f"solcap_serve_start_time_seconds {float(status['server']['started'])!r}")
    family("consoles", "gauge", "consoles held, per state")
    for state in STATES:
        count = sum(1 for h in hosts if h["state"] == state)
        out.append(f'solcap_serve_consoles{{state="{state}"}} {count}')
    family("console_state", "gauge", "1 for each console's current state")
    for h in hosts:
        for state in STATES:
            value = 1 if h["state"] == state else 0
            out.append(
                f'solcap_serve_console_state{{host="{_label(h["host"])}",state="{state}"}} {value}'
            )
    for suffix, kind, text, key in _PER_HOST:
        family(f"console_{suffix}", kind, text)
        for h in hosts:
            value = len(h["clients"]) if key is None else h.get(key, 0)
            out.append(f'solcap_serve_console_{suffix}{{host="{_label(h["host"])}"}} {value}')
    family("console_last_output_age_seconds", "gauge", "seconds since the console's last byte")
    for h in hosts:
        if h.get("last_output") is not None:
            age = max(0.0, now - float(h["last_output"]))
            out.append(
                f'solcap_serve_console_last_output_age_seconds{{host="{_label(h["host"])}"}} '
                f"{age:.3f}"
            )
    return "\n".join(out) + "\n"


class MetricsServer:
    """``GET /metrics`` on a loopback address, rendered from ``status()`` at each scrape."""

    def __init__(self, address: tuple[str, int], status: Callable[[], dict[str, Any]]) -> None:
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            server_version = "solcap-serve"

            def do_GET(self) -> None:
                if self.path.split("?", 1)[0] != "/metrics":
                    self.send_error(404, "only /metrics is served")
                    return
                body = render(outer._status()).encode()
                self.send_response(200)
                self.send_header("Content-Type", CONTENT_TYPE)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return  # a scrape every 15 s is not worth a log line

        self._status = status
        family = http.server.ThreadingHTTPServer
        if ":" in address[0]:

            class V6(http.server.ThreadingHTTPServer):
                import socket as _socket

                address_family = _socket.AF_INET6

            family = V6
        try:
            self._httpd = family(address, Handler)
        except OSError as exc:
            raise UsageError(
                f"--metrics {address[0]}:{address[1]}: cannot listen: {exc.strerror}"
            ) from None
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, name="solcap-serve-metrics", daemon=True
        )

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._httpd.server_address[:2]
        return str(host), int(port)

    @property
    def url(self) -> str:
        host, port = self.address
        return f"http://{'[' + host + ']' if ':' in host else host}:{port}/metrics"

    def start(self) -> MetricsServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread.is_alive():  # shutdown() waits for a loop that must be running
            with contextlib.suppress(Exception):
                self._httpd.shutdown()
        self._httpd.server_close()
