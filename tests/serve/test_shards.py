"""N ``solcap serve --shard i/N`` servers on one machine and one inventory (real ptys as the
consoles): each holds exactly its shard, and clients find a host's owner from the inventory and
the shard map — ``status`` lists every host at its owner, ``console HOST --inventory``
attaches there. A host whose owner does not run here is named, not opened behind the owner's
back; servers that disagree on N are a one-line error."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from solcap.cli import main
from solcap.inventory import shard_of
from solcap.serve.client import find_serving
from solcap.serve.shards import shard_map
from tests.serve.conftest import Pty, ServeProcess, events, pieces, wait_for, write_inventory
from tests.serve.test_clients import Terminal

pytestmark = pytest.mark.timeout(120)

NAMES = [f"h{i}" for i in range(1, 7)]  # shards of 3: h1 h3 → 0, h2 h5 → 1, h4 h6 → 2


def _status(inv: Path, control: Path) -> tuple[int, dict[str, dict[str, Any]]]:
    out = io.StringIO()
    code = main(["status", "--inventory", str(inv), "--control-dir", str(control), "--json"], out)
    return code, {row["host"]: row for row in json.loads(out.getvalue())["hosts"]}


def _setup(tmp_path: Path, ptys: Any) -> tuple[Path, dict[str, Pty]]:
    consoles = {name: ptys() for name in NAMES}
    inv = tmp_path / "inv.yaml"
    write_inventory(inv, {name: pty.path for name, pty in consoles.items()})
    assert {shard_of(n, 3) for n in NAMES} == {0, 1, 2}
    return inv, consoles


def _up(server: ServeProcess, names: list[str]) -> None:
    wait_for(lambda: all(server.status()[n]["state"] == "up" for n in names), 30, f"{names} up")


def test_three_shard_servers_hold_each_host_once_and_clients_find_its_owner(
    tmp_path: Path, ptys: Any, serve: Any
) -> None:
    inv, consoles = _setup(tmp_path, ptys)
    servers = [serve(inv, "--shard", f"{i}/3") for i in range(3)]
    for index, server in enumerate(servers):
        mine = [n for n in NAMES if shard_of(n, 3) == index]
        assert sorted(server.status()) == mine  # exactly its shard
        _up(server, mine)
    control = servers[0].control

    code, rows = _status(inv, control)
    assert code == 0 and sorted(rows) == NAMES
    for name, row in rows.items():
        owner = shard_of(name, 3)
        assert row["state"] == "up" and row["owner"] == row["shard"] == f"{owner}/3"
        assert row["server"] == str(servers[owner].socket)
        found = find_serving(name, inventory=str(inv), directory=control)
        assert found is not None and found.socket == servers[owner].socket

    # console HOST --inventory attaches at the owner: its bytes shown, its keys typed there.
    for name in ("h1", "h2", "h4"):
        term = Terminal(name, "--inventory", str(inv), "--control-dir", str(control))
        try:
            term.expect(rb"as writer")
            consoles[name].write_all(b"<<from %s>>\r\n" % name.encode())
            term.expect(b"<<from %s>>" % name.encode())
            term.child.send(b"typed-into-%s\r" % name.encode())
            want = b"typed-into-%s\r" % name.encode()
            assert want in consoles[name].read_until(want, 10)
            assert term.quit() == 0
        finally:
            term.close()
    for server in servers:
        server.stop()
    for name in ("h1", "h2", "h4"):
        log = [e for p in pieces(servers[0].root, name) for e in events(p)]
        assert [e["event"] for e in log].count("attach") == 1


def test_a_host_whose_owner_does_not_run_here_is_named_and_not_opened(
    tmp_path: Path, ptys: Any, serve: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    inv, _ = _setup(tmp_path, ptys)
    servers = {i: serve(inv, "--shard", f"{i}/3") for i in (0, 2)}
    for index, server in servers.items():
        _up(server, [n for n in NAMES if shard_of(n, 3) == index])
    control = servers[0].control

    code, rows = _status(inv, control)
    assert code == 4  # some not up
    for name in ("h2", "h5"):
        assert rows[name]["state"] == "unserved" and rows[name]["owner"] == "1/3"
        assert rows[name]["detail"] == "its shard 1/3 has no server running here"
    assert all(rows[n]["state"] == "up" for n in ("h1", "h3", "h4", "h6"))
    capsys.readouterr()

    termrec = tmp_path / "terminal-recordings"
    argv = ["console", "h2", "--inventory", str(inv), "--control-dir", str(control)]
    assert main([*argv, "--root", str(termrec)]) == 3
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0, err
    assert "h2" in err and "owned by shard 1/3" in err and "running here: 0/3, 2/3" in err
    assert not termrec.exists()  # not opened directly: no recording, no console

    late = serve(inv, "--shard", "1/3")
    _up(late, ["h2", "h5"])
    code, rows = _status(inv, control)
    assert code == 0 and rows["h2"]["server"] == str(late.socket)


def test_servers_that_disagree_on_n_are_one_line_and_exit_2(
    tmp_path: Path, ptys: Any, serve: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    inv, _ = _setup(tmp_path, ptys)
    first = serve(inv, "--shard", "0/2")
    serve(inv, "--shard", "1/3")
    capsys.readouterr()
    code = main(["status", "--inventory", str(inv), "--control-dir", str(first.control)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.count("\n") == 0, err
    assert "disagree on the shard count" in err and "0/2" in err and "1/3" in err
    with pytest.raises(Exception, match="disagree on the shard count"):
        shard_map(str(inv), first.control)


def test_without_shards_the_map_is_the_whole_inventory_server(
    tmp_path: Path, ptys: Any, serve: Any
) -> None:
    inv, _ = _setup(tmp_path, ptys)
    server = serve(inv)
    found = shard_map(str(inv), server.control)
    assert found.count is None and [a.socket for a in found.whole] == [server.socket]
    assert found.owner("h1") is None
    holder = found.holder("h1")
    assert holder is not None and holder.socket == server.socket
    _up(server, NAMES)
    code, rows = _status(inv, server.control)
    assert code == 0 and all(row["owner"] is None for row in rows.values())
