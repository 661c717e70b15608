"""The examples in docs/api.md run as written, against a lab host over IPMI SOL."""

from __future__ import annotations

import contextlib
import io
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from solcap.testing.lab import Lab, LabHost
from solcap.transports.registry import host_name
from tests.keyed import assert_sent_for_key, sent_by_key

pytestmark = pytest.mark.timeout(180)
DOC = Path(__file__).resolve().parents[2] / "docs" / "api.md"
PLACEHOLDER = '"ipmi://admin@bmc01.example"'


def _blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)


@pytest.fixture(scope="module")
def lab_host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Lab, LabHost]]:
    lab = Lab(tmp_path_factory.mktemp("lab"))
    try:
        yield lab, lab.up(1, domus=3)[0]
    finally:
        lab.down()


def test_every_example_runs(
    lab_host: tuple[Lab, LabHost], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lab, host = lab_host
    monkeypatch.setenv("IPMI_PASSWORD", lab.password_file.read_text().strip())
    monkeypatch.chdir(tmp_path)
    blocks = _blocks()
    assert len(blocks) == 3 and PLACEHOLDER in blocks[0]
    namespace: dict[str, object] = {}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        for block in blocks:
            exec(compile(block.replace(PLACEHOLDER, repr(host.url)), str(DOC), "exec"), namespace)
    text = out.getvalue()
    assert "True" in text.splitlines()[0] and "bytes of 'q'" in text
    # The harvest example's segments are exactly what the host sent.
    sent = sent_by_key(lab.host_state(host.name)["dumps"])
    result = namespace["result"]
    assert [s.name for s in result.segments] == ["h", "q", "u"]  # type: ignore[attr-defined]
    for segment in result.segments:  # type: ignore[attr-defined]
        assert_sent_for_key(sent, segment.name, segment.sha256, host.name)
    assert "com1=38400,8n1" in str(namespace["xen"])
    # Named as every command names it: the BMC's host and its (non-default) port.
    recorded = sorted((tmp_path / "recordings" / host_name(host.url)).iterdir())
    assert host_name(host.url).startswith("127.0.0.1_")
    assert [p.name.split("_", 1)[1] for p in recorded] == ["session", "harvest"]
