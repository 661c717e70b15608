"""Ansible inventories as they are written in the field, read by both readers.

Every file in data/real-world/ is loaded with the built-in static reader and with Debian's
``ansible-inventory --list`` (ansible-core), and both must give the same hosts: the BMC
variable names of Kayobe, OpenShift, Ironic and hand-written site inventories, their user and
password counterparts, solcap_bmc's precedence, ``--bmc-var``; Jinja and vaulted values stay
references. A dynamic inventory script works only through ansible-inventory.
"""

from __future__ import annotations

import io
import json
import stat
from pathlib import Path

import pytest

from solcap.cli import main
from solcap.errors import ConfigError, UsageError
from solcap.inventory import Host, SecretRef, load_inventory
from tests import peers

pytestmark = pytest.mark.timeout(120)

DATA = Path(__file__).parent / "data" / "real-world"
READERS = ["static", "ansible-inventory"]


@pytest.fixture(params=READERS)
def reader(request: pytest.FixtureRequest) -> str:
    if request.param == "ansible-inventory":
        peers.need("ansible-inventory")
    return str(request.param)


def _bmcs(hosts: tuple[Host, ...]) -> dict[str, tuple[str | None, SecretRef | None]]:
    return {h.name: (h.bmc_url, h.password) for h in hosts}


def _load(name: str, reader: str, **options: object) -> tuple[Host, ...]:
    return load_inventory(DATA / name, check_profiles=False, reader=reader, **options).hosts  # type: ignore[arg-type]


def test_kayobe_ini(reader: str) -> None:
    hosts = _load("kayobe-hosts.ini", reader)
    assert _bmcs(hosts) == {
        "ctl01": ("ipmi://admin@127.0.0.121", SecretRef("env", "KAYOBE_IPMI_PASSWORD")),
        "ctl02": ("ipmi://operator@127.0.0.122", SecretRef("env", "KAYOBE_IPMI_PASSWORD")),
        "cmp01": ("ipmi://admin@127.0.0.130", SecretRef("env", "KAYOBE_IPMI_PASSWORD")),
        "cmp02": ("ipmi://admin@127.0.0.130", SecretRef("env", "KAYOBE_IPMI_PASSWORD")),
    }
    by_name = {h.name: h for h in hosts}
    assert by_name["ctl01"].ssh is not None and by_name["ctl01"].ssh.host == "127.0.0.21"
    assert by_name["cmp02"].ssh is not None and by_name["cmp02"].ssh.user == "stack"
    assert set(by_name["cmp01"].groups) == {"compute", "overcloud"}


def test_site_yaml_names_and_precedence(reader: str) -> None:
    hosts = _load("site.yaml", reader)
    assert _bmcs(hosts) == {
        "node01": ("ipmi://root@127.0.0.41", SecretRef("file", "/etc/solcap/transports/bmc.pw")),
        "node02": ("ipmi://root@127.0.0.42", None),
        "node03": ("ipmi://admin@127.0.0.43:6230", None),
        "node04": ("ipmi://solcap@127.0.0.44", None),  # solcap_bmc beats bmc_address
        "bm01": ("ipmi://ironic@127.0.0.51", SecretRef("env", "IRONIC_IPMI_PASSWORD")),
        "oob01": (None, None),
    }


def test_bmc_var_names_another_variable(reader: str) -> None:
    hosts = _load("site.yaml", reader, bmc_vars=["oob_ip"])
    assert _bmcs(hosts)["oob01"] == ("ipmi://admin@127.0.0.61", None)
    # --bmc-var comes after solcap_bmc and before the built-in names.
    hosts = _load("site.yaml", reader, bmc_vars=["bmc_ip"])
    assert _bmcs(hosts)["node04"][0] == "ipmi://solcap@127.0.0.44"


def test_references_are_never_used(reader: str) -> None:
    hosts = {h.name: h for h in _load("references.yaml", reader)}
    vaulted, templated = hosts["vaulted"], hosts["templated-password"]
    assert (vaulted.bmc_url, vaulted.password) == ("ipmi://admin@127.0.0.71", None)
    assert (templated.bmc_url, templated.password) == ("ipmi://admin@127.0.0.72", None)
    assert templated.vars == {"row": "r1"}  # the Jinja value is not a runbook variable


def test_templated_address_is_refused_naming_host_and_field(reader: str) -> None:
    with pytest.raises(ConfigError) as info:
        _load("templated-address.yaml", reader)
    message = info.value.one_line()
    assert "node09.bmc_address" in message and "Jinja" in message
    assert str(DATA / "templated-address.yaml") in message
    if reader == "static":
        assert ":4:" in message  # the static reader knows the line


@pytest.mark.parametrize(
    "name",
    [
        *sorted(p.name for p in DATA.iterdir() if p.name != "README.md"),
        "../ansible.ini",  # the static reader's own test files, too
        "../ansible.yaml",
    ],
)
def test_both_readers_agree(name: str) -> None:
    peers.need("ansible-inventory")
    results = []
    for reader in READERS:
        try:
            results.append(("ok", _load(name, reader, bmc_vars=["oob_ip"])))
        except ConfigError as exc:
            results.append(("error", exc.field))
    assert results[0] == results[1]


def test_dynamic_inventory_script(tmp_path: Path) -> None:
    peers.need("ansible-inventory")
    script = tmp_path / "dynamic.py"
    inventory = {
        "_meta": {"hostvars": {"dyn01": {"ipmi_address": "127.0.0.81", "ipmi_username": "x"}}},
        "compute": {"hosts": ["dyn01"]},
    }
    script.write_text(
        "#!/usr/bin/env python3\nimport json, sys\n"
        f"print(json.dumps({inventory!r}) if '--list' in sys.argv else '{{}}')\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    hosts = load_inventory(script, check_profiles=False).hosts
    assert [(h.name, h.bmc_url, h.groups) for h in hosts] == [
        ("dyn01", "ipmi://x@127.0.0.81", ("compute",))
    ]
    with pytest.raises(ConfigError, match="only ansible-inventory"):
        load_inventory(script, check_profiles=False, reader="static")


def test_bad_bmc_var_name_is_usage_error() -> None:
    with pytest.raises(UsageError, match="--bmc-var"):
        load_inventory(DATA / "site.yaml", bmc_vars=["bad name"], reader="static")


def _fleet_error(tmp_path: Path, *extra: str) -> str:
    summary = tmp_path / "summary.json"
    main(
        [
            "harvest",
            "--inventory",
            str(DATA / "site.yaml"),
            *extra,
            "--limit",
            "oob01",
            "--root",
            str(tmp_path / "rec"),
            "--summary",
            str(summary),
            "--progress",
            "none",
        ],
        out=io.StringIO(),
    )
    (host,) = json.loads(summary.read_text())["hosts"]
    return str(host["error"])


def test_cli_bmc_var_and_reader(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # oob01's only BMC is under oob_ip: without --bmc-var it has no console at all; with
    # it, the BMC is found (and the run stops, before any traffic, at the missing password
    # reference).
    assert "no console" in _fleet_error(tmp_path, "--inventory-reader", "static")
    found = _fleet_error(tmp_path, "--inventory-reader", "static", "--bmc-var", "oob_ip")
    assert "BMC password" in found
    capsys.readouterr()
