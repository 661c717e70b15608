"""Profiles: the shipped ones load, and every mistake names file:line and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from solcap.boot.profiles import (
    BUILTIN_DIR,
    ConsoleLine,
    find_line,
    list_profiles,
    load_profile,
    validate_file,
)
from solcap.errors import ConfigError, UsageError

BASE = """\
name = "base"
description = "a base"

[xen]
options = ["loglvl=all", "com1=38400,8n1", "console=com1"]

[dom0]
options = ["console=hvc0", "earlyprintk=xen"]

[console]
baud = 38400

[harvest]
keys = "h,q"
"""


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / f"{name}.toml"
    path.write_text(text, encoding="utf-8")
    return path


def error_for(path: Path, dirs: list[Path] | None = None) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        load_profile(path, dirs if dirs is not None else [path.parent])
    return caught.value


# ----------------------------------------------------------------------- shipped profiles


def test_shipped_xen_serial_debug() -> None:
    profile = load_profile("xen-serial-debug", [BUILTIN_DIR])
    assert profile.xen.options == (
        "loglvl=all",
        "guest_loglvl=all",
        "com1=38400,8n1",
        "console=com1",
    )
    assert profile.dom0.options == ("console=hvc0", "earlyprintk=xen")
    assert profile.console == ConsoleLine(38400, "n", 8, 1)
    assert profile.harvest_keys == ("h", "q", "u", "m", "e", "i", "r")
    assert profile.extends == ()


def test_shipped_full_extends_and_adds() -> None:
    profile = load_profile("xen-serial-debug-full", [BUILTIN_DIR])
    assert profile.extends == ("xen-serial-debug",)
    for option in ("conring_size=4M", "console_timestamps=boot", "sync_console", "noreboot"):
        assert option in profile.xen.options
    assert profile.xen.options[:4] == load_profile("xen-serial-debug", [BUILTIN_DIR]).xen.options
    assert profile.dom0.remove == ("quiet", "splash")
    assert profile.console == ConsoleLine(38400)


def test_shipped_115200_replaces_com1_and_baud() -> None:
    profile = load_profile("xen-serial-115200", [BUILTIN_DIR])
    assert "com1=115200,8n1" in profile.xen.options
    assert not any(o.startswith("com1=38400") for o in profile.xen.options)
    assert profile.console is not None and profile.console.baud == 115200


def test_list_and_validate_shipped() -> None:
    names = [p.name for p in list_profiles([BUILTIN_DIR])]
    assert names == [
        "xen-dom0-vcpu-pin", "xen-serial-115200", "xen-serial-debug", "xen-serial-debug-full",
    ]  # fmt: skip
    for path in sorted(BUILTIN_DIR.glob("*.toml")):
        assert validate_file(path).name == path.stem


def test_env_var_search_path_comes_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path, "xen-serial-debug", BASE.replace('"base"', '"xen-serial-debug"'))
    monkeypatch.setenv("SOLCAP_PROFILES", str(tmp_path))
    assert load_profile("xen-serial-debug").description == "a base"
    # A parent is looked up beside its child first: shipped children keep shipped parents.
    assert load_profile("xen-serial-115200").harvest_keys == ("h", "q", "u", "m", "e", "i", "r")


def test_apply_to_lines() -> None:
    profile = load_profile("xen-serial-debug-full", [BUILTIN_DIR])
    out = profile.dom0.apply("placeholder root=/dev/sda1 ro quiet", "linux")
    assert out == "placeholder root=/dev/sda1 ro console=hvc0 earlyprintk=xen ignore_loglevel"


# ----------------------------------------------------------------------- inheritance


def test_child_overrides_same_key_and_removes(tmp_path: Path) -> None:
    write(tmp_path, "base", BASE)
    child = write(
        tmp_path,
        "child",
        'extends = "base"\n[xen]\noptions = ["loglvl=warning"]\nremove = ["console"]\n'
        '[harvest]\nkeys = "m"\n',
    )
    profile = load_profile(child, [tmp_path])
    assert profile.xen.options == ("loglvl=warning", "com1=38400,8n1")
    assert profile.xen.remove == ("console",)
    assert profile.harvest_keys == ("m",)
    assert profile.description == "a base"
    assert profile.name == "child"


def test_missing_parent(tmp_path: Path) -> None:
    path = write(tmp_path, "child", '# c\nextends = "nope"\n')
    err = error_for(path)
    assert err.line == 2 and err.field == "extends"
    assert "no profile named 'nope'" in str(err)


def test_cycle_is_detected(tmp_path: Path) -> None:
    write(tmp_path, "a", 'extends = "b"\n')
    write(tmp_path, "b", '\n\nextends = "c"\n')
    path = write(tmp_path, "c", 'extends = "a"\n')
    err = error_for(path)
    assert "inheritance cycle: c -> a -> b -> c" in str(err)
    assert err.field == "extends"


def test_self_cycle(tmp_path: Path) -> None:
    err = error_for(write(tmp_path, "a", 'extends = "a"\n'))
    assert "inheritance cycle: a -> a" in str(err)


# ----------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("text", "line", "field", "fragment"),
    [
        ('name = "x"\n[xen]\noption = ["a"]\n', 3, "xen.option", "unknown field"),
        ('name = "x"\n\ncolour = 1\n', 3, "colour", "unknown field"),
        ('name = "x"\n[bogus]\na = 1\n', 2, "bogus", "unknown field"),
        ('name = "x"\n[xen]\noptions = "loglvl=all"\n', 3, "xen.options", "list of strings"),
        ('[xen]\noptions = [\n  "a b",\n]\n', 2, "xen.options", "one word"),
        ('[xen]\noptions = ["x=$y"]\n', 2, "xen.options", "not allowed"),
        ('[xen]\noptions = ["placeholder"]\n', 2, "xen.options", "bootloader token"),
        ('[xen]\noptions = ["loglvl=all", "loglvl=info"]\n', 2, "xen.options", "one value"),
        ("[console]\nbaud = 38401\n", 2, "console.baud", "not a serial rate"),
        ('[console]\nbaud = "38400"\n', 2, "console.baud", "an integer"),
        ('[console]\nbaud = 9600\nparity = "x"\n', 3, "console.parity", "n, e, o"),
        ("[console]\nbaud = 9600\ndata_bits = 9\n", 3, "console.data_bits", "5 to 8"),
        ("[console]\nbaud = 9600\nstop_bits = 0\n", 3, "console.stop_bits", "1 or 2"),
        ('[console]\nparity = "n"\n', 1, "console", "baud is required"),
        ('[harvest]\nkeys = "h,R"\n', 2, "harvest.keys", "changes the host's state"),
        ('[harvest]\nkeys = "h,qq"\n', 2, "harvest.keys", "one character"),
        ('name = "other"\n', 1, "name", "must match the file name"),
        ("description = 3\n", 1, "description", "expected a string"),
    ],
)
def test_errors_name_line_and_field(
    tmp_path: Path, text: str, line: int, field: str, fragment: str
) -> None:
    path = write(tmp_path, "x", text)
    err = error_for(path)
    assert (err.line, err.field) == (line, field)
    assert fragment in str(err)
    assert str(err).startswith(f"{path}:{line}: {field}: ")
    assert "\n" not in err.one_line()


def test_com1_baud_disagrees_with_console(tmp_path: Path) -> None:
    text = BASE.replace("baud = 38400", "baud = 115200")
    err = error_for(write(tmp_path, "base", text))
    assert (err.line, err.field) == (5, "xen.options")
    assert "sets com1 to 38400 baud but [console] baud is 115200" in str(err)


def test_com1_dps_disagrees_with_console(tmp_path: Path) -> None:
    text = BASE.replace("baud = 38400", 'baud = 38400\nparity = "e"')
    err = error_for(write(tmp_path, "base", text))
    assert "sets com1 to 8n1 but [console] says 8e1" in str(err)


def test_child_changing_only_console_is_checked_against_inherited_com1(tmp_path: Path) -> None:
    write(tmp_path, "base", BASE)
    err = error_for(write(tmp_path, "child", 'extends = "base"\n[console]\nbaud = 9600\n'))
    assert (err.line, err.field) == (3, "console.baud")


def test_com1_auto_and_base_address_are_accepted(tmp_path: Path) -> None:
    text = BASE.replace("com1=38400,8n1", "com1=38400/115200,8n1,0x3f8,4")
    assert load_profile(write(tmp_path, "base", text), [tmp_path]).console == ConsoleLine(38400)
    text = BASE.replace("com1=38400,8n1", "com1=auto")
    assert load_profile(write(tmp_path, "base", text), [tmp_path]).console == ConsoleLine(38400)


def test_toml_syntax_error_has_line(tmp_path: Path) -> None:
    err = error_for(write(tmp_path, "x", 'name = "x"\n\n[xen\noptions = []\n'))
    assert err.line == 3
    assert "TOML syntax" in str(err) and "(at line" not in str(err)


def test_unknown_name_is_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no profile named 'ghost'"):
        load_profile("ghost", [tmp_path])


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such profile file"):
        load_profile(tmp_path / "ghost.toml", [tmp_path])


def test_profiles_are_immutable() -> None:
    profile = load_profile("xen-serial-debug", [BUILTIN_DIR])
    with pytest.raises(AttributeError):
        profile.name = "x"  # type: ignore[misc]


def test_find_line_handles_tables_and_dotted_keys() -> None:
    source = "a = 1\n[xen]\n  options = []\n[dom0]\noptions = []\n"
    assert find_line(source, "xen", "options") == 3
    assert find_line(source, "dom0", "options") == 5
    assert find_line(source, "", "a") == 1
    assert find_line(source, "dom0") == 4
    assert find_line('xen.options = ["a"]\n', "xen", "options") == 1


def test_dom0_vcpu_pin_profile_and_its_variable(tmp_path: Path) -> None:
    from solcap.boot.profiles import load_profile

    shipped = load_profile("xen-dom0-vcpu-pin")
    assert shipped.xen.options == ("dom0_max_vcpus=2", "dom0_vcpus_pin")
    assert shipped.vars == {"dom0_vcpus": 2}
    given = load_profile("xen-dom0-vcpu-pin", variables={"dom0_vcpus": "4"})
    assert given.xen.options == ("dom0_max_vcpus=4", "dom0_vcpus_pin")
    child = tmp_path / "dom0-six.toml"
    child.write_text('extends = "xen-dom0-vcpu-pin"\n[vars]\ndom0_vcpus = 6\n')
    assert load_profile(child).xen.options == ("dom0_max_vcpus=6", "dom0_vcpus_pin")
    assert load_profile(child, variables={"dom0_vcpus": 3}).xen.options[0] == "dom0_max_vcpus=3"
    with pytest.raises(ConfigError, match=r"xen-dom0-vcpu-pin\.toml:\d+: xen\.options: "
                       r"'dom0_max_vcpus=0': a vCPU count starts at 1"):  # fmt: skip
        load_profile("xen-dom0-vcpu-pin", variables={"dom0_vcpus": 0})
    with pytest.raises(ConfigError, match=r"vars\.dom0_vcpus: dom0_vcpus must be an integer"):
        load_profile("xen-dom0-vcpu-pin", variables={"dom0_vcpus": "two"})
    with pytest.raises(UsageError, match=r"has no variable 'cpus' \(declared: dom0_vcpus\)"):
        load_profile("xen-dom0-vcpu-pin", variables={"cpus": 1})
    bad = tmp_path / "bad.toml"
    bad.write_text('[xen]\noptions = ["dom0_max_vcpus=${n}"]\n')
    with pytest.raises(ConfigError, match=r"bad\.toml:2: xen\.options: unknown variable \$\{n\}"):
        load_profile(bad)
