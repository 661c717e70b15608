"""Signals wake ``solcap serve`` every time. A signal the kernel hands to one of the console
threads once left the server's main thread asleep, deaf to SIGHUP and then SIGTERM, about one
time in ten (solcap.util.sigwake says how)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from tests.serve.conftest import wait_for, write_inventory

pytestmark = pytest.mark.timeout(180)


def test_forty_sighups_in_a_row_each_reload_and_sigterm_still_stops(tmp_path, ptys, serve):
    pty = ptys()
    inv = tmp_path / "inv.yaml"
    write_inventory(inv, {"a": pty.path})
    server = serve(inv)
    wait_for(lambda: server.status()["a"]["state"] == "up", 30, "a up")
    for n in range(1, 41):
        server.signal(signal.SIGHUP)
        wait_for(lambda n=n: server.stderr().count("reload: added") == n, 30, f"reload {n}")
    server.signal(signal.SIGTERM)
    assert server.wait(30) == 128 + signal.SIGTERM


_PINGPONG = textwrap.dedent(
    """
    import signal, sys, threading, time
    from solcap.util.sigwake import SignalWake
    # Every signal lands on this thread: the main thread blocks them (threads keep the mask
    # they were started with), as happens by chance to a server with many threads.
    threading.Thread(target=time.sleep, args=(600,), daemon=True).start()
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1, signal.SIGTERM})
    with SignalWake((signal.SIGUSR1, signal.SIGTERM)) as wake:
        print("ready", flush=True)
        n = 0
        while True:
            for sig in wake.wait():
                if sig == signal.SIGTERM:
                    print("done", n, flush=True)
                    sys.exit(0)
                n += 1
                print("got", n, flush=True)
    """
)


def test_a_signal_wake_answers_every_signal_even_one_another_thread_takes() -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", _PINGPONG], stdout=subprocess.PIPE, text=True, env=dict(os.environ)
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline() == "ready\n"
        for n in range(1, 501):
            child.send_signal(signal.SIGUSR1)
            assert child.stdout.readline() == f"got {n}\n"
        child.send_signal(signal.SIGTERM)
        assert child.stdout.readline() == "done 500\n"
        assert child.wait(10) == 0
    finally:
        child.kill()
        child.wait()
