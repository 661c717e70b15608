"""``solcap harvest --inventory`` wiring that needs no lab (hosts fail locally, nothing is
contacted), and the Python example in docs/fleet.md run against two lab hosts."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from solcap import cli
from solcap.errors import ExitStatus

pytestmark = pytest.mark.timeout(120)


def unreachable_inventory(path: Path, count: int) -> Path:
    """Hosts whose password file does not exist: each fails before any packet is sent."""
    lines = ["defaults:", f"  password: file:{path.parent / 'no-such-password'}", "hosts:"]
    for i in range(count):
        lines += [f"  node{i:03d}:", f"    bmc: ipmi://admin@127.0.0.1:{9 + i}"]
    path.write_text("\n".join(lines) + "\n")
    return path


def harvest(*args: str) -> tuple[int, str]:
    out = io.StringIO()
    status = cli.main(["harvest", *args], out=out)
    return status, out.getvalue()


def test_shards_of_a_cli_run_cover_every_host_exactly_once(tmp_path: Path) -> None:
    inventory = unreachable_inventory(tmp_path / "inv.yaml", 12)
    seen: list[str] = []
    for index in range(3):
        summary = tmp_path / f"s{index}.json"
        status, out = harvest(
            "--inventory",
            str(inventory),
            "--shard",
            f"{index}/3",
            "--root",
            str(tmp_path / "rec"),
            "--summary",
            str(summary),
        )
        data = json.loads(summary.read_text())
        assert status == ExitStatus.TARGET, out  # every host failed: exit 3
        assert data["shard"] == f"{index}/3"
        for entry in data["hosts"]:
            assert entry["outcome"] == "error"
            assert "cannot read password file" in entry["error"]
        seen += [entry["host"] for entry in data["hosts"]]
    assert sorted(seen) == [f"node{i:03d}" for i in range(12)]


def test_retry_failed_with_nothing_to_retry(tmp_path: Path) -> None:
    inventory = unreachable_inventory(tmp_path / "inv.yaml", 2)
    previous = tmp_path / "prev.json"
    previous.write_text(
        json.dumps(
            {"hosts": [{"host": "node000", "outcome": "ok"}, {"host": "node001", "outcome": "ok"}]}
        )
    )
    status, out = harvest("--inventory", str(inventory), "--retry-failed", str(previous))
    assert status == ExitStatus.OK
    assert "nothing to retry" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "give TARGET"),
        (["/dev/null", "--inventory", "x.yaml"], "not both"),
        (["/dev/null", "--parallel", "4"], "--parallel applies to --inventory"),
        (["/dev/null", "--shard", "0/2"], "--shard applies to --inventory"),
    ],
)
def test_usage_errors(
    args: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, _ = harvest(*args, "--root", str(tmp_path))
    assert status == ExitStatus.USAGE
    assert message in capsys.readouterr().err


def test_the_python_example_in_the_docs_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "fleet.md").read_text()
    section = doc.split("\n## Python\n", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "docs/fleet.md", "exec"), {})
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[:2] for line in lines[:2]] == [["node001", "ok"], ["node002", "ok"]]
    assert lines[2] == "2 of 2 answered"
    data = json.loads((tmp_path / "summary.json").read_text())
    assert data["totals"]["ok"] == 2 and data["keys"] == ["h"]
