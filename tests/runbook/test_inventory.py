"""Inventories: solcap YAML/TOML, Ansible YAML/INI, precise errors, selection and shards."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from solcap.config.docload import LocatedConfigError
from solcap.errors import ConfigError, UsageError
from solcap.inventory import (
    Host,
    SecretRef,
    load_inventory,
    parse_shard,
    select_hosts,
    shard_of,
)

DATA = Path(__file__).parent / "data"


def _write(tmp_path: Path, text: str, name: str = "inv.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# --------------------------------------------------------------------------- solcap format


def test_solcap_yaml_layers_defaults_groups_host() -> None:
    inv = load_inventory(DATA / "inventory.yaml")
    assert inv.names() == ["node01", "node02", "node03", "lab-serial"]
    n1 = inv.host("node01")
    assert n1.bmc is not None and n1.bmc.url == "ipmi://root@10.0.0.11"
    assert n1.password == SecretRef("env", "BMC_PASSWORD")
    assert n1.cipher == 17
    assert n1.ssh is not None and n1.ssh.url == "ssh://root@10.0.1.11:2222"
    assert n1.ssh.key_file == "~/.ssh/id_ed25519"
    assert n1.profile == "xen-serial-debug"
    assert n1.labels == {"amd", "rack1", "canary"}
    assert n1.groups == ("rack1",)
    assert n1.vars == {"guest": "db1", "trace_seconds": 5}
    assert n1.origin.endswith("inventory.yaml:19")
    n2 = inv.host("node02")
    assert n2.bmc is not None and (n2.bmc.user, n2.bmc.port) == ("admin", 6230)
    assert n2.vars["guest"] == "web1"
    n3 = inv.host("node03")
    assert n3.cipher == 3 and n3.groups == ("rack2",)
    assert n3.kg == SecretRef("file", "/etc/solcap/kg")
    serial = inv.host("lab-serial")
    assert serial.console_url == "serial:///dev/ttyS0"
    assert serial.line is not None and serial.line.baud == 115200


def test_solcap_toml_matches_yaml_shape() -> None:
    inv = load_inventory(DATA / "inventory.toml")
    n1 = inv.host("node01")
    assert n1.bmc is not None and n1.bmc.url == "ipmi://admin@10.0.0.11"
    assert n1.labels == {"amd"} and n1.vars == {"guest": "db1"}
    assert inv.host("node02").cipher == 3


def test_secret_ref_resolves_env_and_0600_file(tmp_path: Path) -> None:
    assert SecretRef("env", "PW").resolve({"PW": "s3cret"}) == "s3cret"
    with pytest.raises(UsageError, match="PW is not set"):
        SecretRef("env", "PW").resolve({})
    secret = tmp_path / "pw"
    secret.write_text("filepw\n")
    secret.chmod(0o600)
    assert SecretRef("file", str(secret)).resolve() == "filepw"
    secret.chmod(0o644)
    with pytest.raises(UsageError, match="chmod 600"):
        SecretRef("file", str(secret)).resolve()


BAD_YAML = [
    # (document, line, column, field, message fragment)
    (
        "hosts:\n  n1:\n    bmc: ipmi://admin@h\n    password: hunter2\n",
        4,
        15,
        "n1.password",
        "inline passwords are refused",
    ),
    (
        "hosts:\n  n1:\n    bmc: ipmi://admin:hunter2@h\n",
        3,
        10,
        "n1.bmc",
        "password in the ipmi:// address is refused",
    ),
    (
        "hosts:\n  n1:\n    bmc: ipmi://admin@h\n    cipher: 0\n",
        4,
        13,
        "n1.cipher",
        "no authentication",
    ),
    ("hosts:\n  n1:\n    bmc: ipmi://admin@h\n    cipher: 2\n", 4, 13, "n1.cipher", "17 or 3"),
    ("hosts:\n  n1:\n    bmc: ipmi://admin@h\n    cipher: '17'\n", 4, 13, "n1.cipher", "integer"),
    (
        "hosts:\n  n1:\n    bmc: ipmi://admin@h\n    colour: red\n",
        4,
        5,
        "n1.colour",
        "unknown field",
    ),
    ("hosts:\n  n1:\n    bmc: http://admin@h\n", 3, 10, "n1.bmc", "expected ipmi://"),
    ("hosts:\n  n1:\n    bmc: ipmi://h\n", 3, 10, "n1.bmc", "no BMC user"),
    ("hosts:\n  n1:\n    bmc: ipmi://a@h:99999\n", 3, 10, "n1.bmc", "out of range"),
    (
        "hosts:\n  n1:\n    labels: [ok]\n",
        2,
        3,
        "n1",
        "at least one of bmc, serial, ssh, console or via",
    ),
    ("hosts:\n  n1:\n    serial: ttyS0\n", 3, 13, "n1.serial", "absolute device path"),
    ("hosts:\n  n1:\n    serial: /dev/ttyS0\n    line: 38400,9x1\n", 4, 11, "n1.line", "line"),
    ("hosts:\n  n1:\n    ssh: ssh://root:pw@h\n", 3, 10, "n1.ssh", "refused"),
    ("hosts:\n  n1:\n    ssh: ssh://h\n    groups: [nope]\n", 4, 13, "n1.groups", "no group"),
    (
        "hosts:\n  n1:\n    ssh: ssh://h\n    profile: no-such-profile\n",
        4,
        14,
        "n1.profile",
        "no profile named",
    ),
    (
        "groups:\n  g:\n    password: plain\nhosts:\n  n1:\n    ssh: ssh://h\n",
        3,
        15,
        "groups.g.password",
        "inline passwords are refused",
    ),
    ("hosts:\n  bad name:\n    ssh: ssh://h\n", 2, 3, "hosts.bad name", "host name"),
    ("hosts:\n  n1:\n    ssh: ssh://h\n    vars: {x: [1]}\n", 4, 15, "n1.vars.x", "string, number"),
    ("hosts:\n  n1:\n    ssh: ssh://h\n  n1:\n    ssh: ssh://h\n", 4, 3, "hosts.n1", "duplicate"),
    ("hosts: [n1]\n", 1, 8, "hosts", "non-empty mapping"),
    ("hosts:\n  n1: {ssh: ssh://h}\nextra: 1\n", 3, 1, "extra", "unknown field"),
    ("hosts:\n  n1: {ssh: [\n", 3, 1, None, "YAML syntax"),
]


@pytest.mark.parametrize(("text", "line", "column", "field", "fragment"), BAD_YAML)
def test_malformed_solcap_inventory_points_at_the_field(
    tmp_path: Path, text: str, line: int, column: int, field: str | None, fragment: str
) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_inventory(path)
    err = info.value
    message = err.one_line()
    assert "\n" not in str(err)
    assert (err.line, getattr(err, "column", None)) == (line, column), message
    assert err.field == field, message
    assert fragment in message
    prefix = f"{path}:{line}:{column}: " + (f"{field}: " if field else "")
    assert message.startswith(prefix), message


def test_toml_errors_carry_line_and_column(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        '[hosts.n1]\nbmc = "ipmi://a@h"\ncipher = 0\n',
        "inv.toml",
    )
    with pytest.raises(LocatedConfigError) as info:
        load_inventory(path)
    assert str(info.value).startswith(f"{path}:3:10: n1.cipher: cipher suite 0")
    path = _write(tmp_path, '[hosts.n1]\npassword = "pw"\nbmc = "ipmi://a@h"\n', "inv.toml")
    with pytest.raises(LocatedConfigError, match=r":2:12: n1.password: inline passwords"):
        load_inventory(path)


def test_inline_password_message_says_why(tmp_path: Path) -> None:
    path = _write(tmp_path, "hosts:\n  n1:\n    bmc: ipmi://a@h\n    password: x\n")
    with pytest.raises(ConfigError) as info:
        load_inventory(path)
    text = str(info.value)
    for reason in ("leaks", "argv", "env:NAME", "file:PATH"):
        assert reason in text


# --------------------------------------------------------------------------- Ansible


def test_ansible_yaml_groups_children_and_var_precedence() -> None:
    inv = load_inventory(DATA / "ansible.yaml")
    assert inv.names() == ["jump", "node01", "node02", "node03"]
    jump = inv.host("jump")
    assert jump.ssh is None and jump.bmc is None
    n1 = inv.host("node01")
    assert n1.bmc is None  # no solcap_bmc for rack1
    assert n1.ssh is not None and n1.ssh.url == "ssh://root@node01:22"
    assert n1.groups == ("rack1", "xen")
    assert n1.vars == {"guest": "rack1-guest"}  # child group beats parent
    assert n1.profile == "xen-serial-debug"
    n3 = inv.host("node03")
    assert n3.bmc is not None and n3.bmc.url == "ipmi://ops@10.0.0.13"
    assert n3.password == SecretRef("env", "BMC_PASSWORD")
    assert n3.ssh is not None and (n3.ssh.host, n3.ssh.port) == ("10.0.1.13", 2222)
    assert n3.labels == {"canary"}
    assert n3.vars == {"guest": "web1"}
    assert all("password" not in key for host in inv.hosts for key in host.vars)


def test_ansible_ini_sections_ranges_and_vars() -> None:
    inv = load_inventory(DATA / "ansible.ini")
    assert inv.names() == ["jump", "node01", "node02", "node03", "node04"]
    n2 = inv.host("node02")
    assert n2.bmc is not None and n2.bmc.url == "ipmi://admin@10.0.0.12:6230"
    assert n2.cipher == 3
    assert n2.vars == {"guest": "db 2"}  # host line beats [xen:vars]
    assert n2.profile == "xen-serial-debug" and n2.groups == ("rack1", "xen")
    n4 = inv.host("node04")
    assert n4.ssh is not None and n4.ssh.port == 2222
    assert n4.bmc is not None and n4.bmc.host == "bmc-rack2"
    assert n4.profile is None and n4.vars == {"guest": "web1"}


def test_ansible_ini_inline_password_refused_with_position(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "[g]\nn1 solcap_bmc=h solcap_bmc_user=a solcap_password=hunter2\n",
        "hosts.ini",
    )
    with pytest.raises(LocatedConfigError) as info:
        load_inventory(path)
    assert str(info.value).startswith(f"{path}:2:35: n1.solcap_password: inline passwords")


def test_ansible_ini_cipher_zero_in_group_vars(tmp_path: Path) -> None:
    path = _write(tmp_path, "[g]\nn1 solcap_bmc=a@h\n[g:vars]\nsolcap_cipher=0\n", "hosts.ini")
    with pytest.raises(ConfigError, match=r"hosts.ini:4:1: g.solcap_cipher: cipher suite 0"):
        load_inventory(path)


def test_ansible_yaml_bad_value_position(tmp_path: Path) -> None:
    path = _write(tmp_path, "all:\n  hosts:\n    n1:\n      solcap_bmc: 'ipmi://u:p@h'\n")
    with pytest.raises(ConfigError, match=r":4:19: n1.solcap_bmc: a password in the ipmi"):
        load_inventory(path)


# --------------------------------------------------------------------------- selection


def _hosts(names: list[str]) -> list[Host]:
    return [
        Host(name=n, origin="test", labels=frozenset({"even"} if i % 2 == 0 else set()))
        for i, n in enumerate(names)
    ]


def test_select_by_glob_label_and_literal_typo() -> None:
    hosts = _hosts(["node01", "node02", "node03", "db01"])
    assert [h.name for h in select_hosts(hosts, names=["node*"])] == ["node01", "node02", "node03"]
    assert [h.name for h in select_hosts(hosts, labels=["even"])] == ["node01", "node03"]
    assert [h.name for h in select_hosts(hosts, names=["db01", "node02"])] == ["node02", "db01"]
    with pytest.raises(UsageError, match="no host named 'nod01'"):
        select_hosts(hosts, names=["nod01"])


def test_parse_shard() -> None:
    assert (parse_shard("0/4").index, parse_shard(" 3 / 4 ").count) == (0, 4)
    for bad in ("4/4", "1/0", "-1/3", "a/b", "1"):
        with pytest.raises(UsageError):
            parse_shard(bad)


def test_shard_assignment_is_pinned() -> None:
    """Pinned values: any change to the hash would move hosts between machines."""
    expected = int.from_bytes(hashlib.sha256(b"node01").digest()[:8], "big") % 7
    assert shard_of("node01", 7) == expected
    assert [shard_of(f"node{i:02d}", 4) for i in range(8)] == [
        shard_of(f"node{i:02d}", 4) for i in range(8)
    ]


@settings(max_examples=60, deadline=None)
@given(
    names=st.lists(
        st.from_regex(r"[a-z][a-z0-9-]{0,12}", fullmatch=True), unique=True, max_size=60
    ),
    count=st.integers(min_value=1, max_value=9),
)
def test_shards_are_disjoint_and_complete(names: list[str], count: int) -> None:
    hosts = _hosts(names)
    shards = [select_hosts(hosts, shard=parse_shard(f"{i}/{count}")) for i in range(count)]
    seen = [h.name for shard in shards for h in shard]
    assert sorted(seen) == sorted(names)
    assert len(seen) == len(set(seen))


def test_shard_balance_is_reasonable() -> None:
    names = [f"node{i:03d}" for i in range(400)]
    sizes = [sum(1 for n in names if shard_of(n, 4) == i) for i in range(4)]
    assert min(sizes) > 60, sizes


# --------------------------------------------------------------------------- robustness


@settings(max_examples=150, deadline=None)
@given(
    st.text(
        alphabet=st.sampled_from(list("hosts:bmc ipmi://a@\n-[]{}'\"#&*!|>0123 \t")), max_size=120
    )
)
def test_arbitrary_text_never_raises_anything_but_config_error(text: str) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        for name in ("inv.yaml", "inv.toml", "hosts.ini"):
            path = Path(tmp) / name
            path.write_text(text, encoding="utf-8")
            try:
                load_inventory(path, check_profiles=False)
            except ConfigError as exc:
                assert "\n" not in exc.one_line()
                assert re.match(re.escape(str(path)), str(exc))
