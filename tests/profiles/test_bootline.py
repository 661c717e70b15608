"""The boot-line model: parsing keeps everything, merging is idempotent and owns only its keys."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from solcap.boot.bootline import Cmdline, Kind, Token, merge, split_words
from solcap.errors import UsageError

# The line Xen 4.17 reported in the real SOL sample (tests/data/samples/).
SAMPLE_XEN = (
    "com1=38400,8n1 console=com1 loglvl=all guest_loglvl=all "
    "dom0_mem=512M,max:512M dom0_max_vcpus=1"
)
DEBIAN_XEN_ARGS = "placeholder dom0_mem=2G,max:2G ${xen_rm_opts}"
DEBIAN_LINUX_ARGS = "placeholder root=UUID=5b6f7a0e-1c2d-4e3f-8a9b-0c1d2e3f4a5b ro quiet"

PROFILE_XEN = ["loglvl=all", "guest_loglvl=all", "com1=38400,8n1", "console=com1"]
PROFILE_DOM0 = ["console=hvc0", "earlyprintk=xen"]


def test_parse_keeps_every_kind_of_token() -> None:
    line = 'placeholder root=/dev/sda1 ro quiet console=tty0 console=ttyS0,115200 x="a b" -- single'
    parsed = Cmdline.parse(line, "linux")
    assert [t.text for t in parsed.tokens] == [
        "placeholder",
        "root=/dev/sda1",
        "ro",
        "quiet",
        "console=tty0",
        "console=ttyS0,115200",
        'x="a b"',
        "--",
        "single",
    ]
    assert parsed.get("console") == ["tty0", "ttyS0,115200"]
    assert parsed.effective("console") == "ttyS0,115200"
    assert parsed.get("x") == ['"a b"']
    assert [t.text for t in parsed.tail] == ["--", "single"]
    assert str(parsed) == line


def test_quote_in_middle_of_word_and_leading_quote() -> None:
    assert split_words('"key=a b" other') == ['"key=a b"', "other"]
    assert Cmdline.parse('"key=a b"', "linux").tokens[0].raw_key == "key"


def test_unbalanced_quote_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="unbalanced"):
        Cmdline.parse('a="b c', "linux")


def test_xen_merge_replaces_owned_keys_in_place_and_keeps_the_rest() -> None:
    line = "placeholder console=vga loglvl=info dom0_mem=2G,max:2G ${xen_rm_opts}"
    out = merge(line, PROFILE_XEN, kind="xen")
    assert out == (
        "placeholder console=com1 loglvl=all dom0_mem=2G,max:2G guest_loglvl=all "
        "com1=38400,8n1 ${xen_rm_opts}"
    )


def test_xen_merge_onto_the_real_sample_line_changes_nothing() -> None:
    assert merge(SAMPLE_XEN, PROFILE_XEN, kind="xen") == SAMPLE_XEN


def test_unchanged_line_keeps_its_spacing() -> None:
    line = "placeholder  ${xen_rm_opts}"  # as grub-mkconfig writes it with no Xen args
    assert merge(line, [], [], kind="xen") == line


def test_xen_no_prefix_is_the_same_key() -> None:
    assert merge("no-sync_console x", ["sync_console"], kind="xen") == "sync_console x"
    # For Linux the dash is part of the name.
    assert merge("no-foo", ["foo"], kind="linux") == "no-foo foo"


def test_xen_one_value_per_key_last_given_wins() -> None:
    assert merge("", ["loglvl=info", "loglvl=all"], kind="xen") == "loglvl=all"


def test_linux_console_profile_console_ends_last() -> None:
    line = "placeholder root=/dev/sda1 ro console=hvc0 console=tty0 quiet"
    out = merge(line, PROFILE_DOM0, kind="linux")
    assert out == "placeholder root=/dev/sda1 ro console=tty0 console=hvc0 quiet earlyprintk=xen"
    assert Cmdline.parse(out, "linux").effective("console") == "hvc0"


def test_linux_console_appended_before_separator() -> None:
    out = merge("ro quiet -- single", PROFILE_DOM0, kind="linux")
    assert out == "ro quiet console=hvc0 earlyprintk=xen -- single"


def test_tokens_after_separator_are_never_edited() -> None:
    out = merge("quiet -- quiet console=ttyS0", [], ["quiet", "console"], kind="linux")
    assert out == "-- quiet console=ttyS0"


def test_remove_by_key_and_by_exact_token() -> None:
    line = "console=tty0 console=ttyS0,115200 quiet splash"
    assert merge(line, remove=["console=tty0"], kind="linux") == (
        "console=ttyS0,115200 quiet splash"
    )
    assert merge(line, remove=["console", "splash"], kind="linux") == "quiet"


def test_verbatim_tokens_survive_key_removal() -> None:
    line = "placeholder ${xen_rm_opts}"
    assert merge(line, remove=["placeholder"], kind="xen") == "${xen_rm_opts}"  # exact text
    assert merge(line, remove=["xen_rm_opts"], kind="xen") == line


def test_added_option_must_be_one_word() -> None:
    with pytest.raises(UsageError, match="one word"):
        merge("", ["a b"], kind="xen")
    with pytest.raises(UsageError, match="'--'"):
        merge("", ["--"], kind="linux")
    with pytest.raises(UsageError, match="bootloader token"):
        merge("", ["${xen_rm_opts}"], kind="xen")


def test_removal_of_an_added_key_is_ignored() -> None:
    assert merge("quiet", ["quiet"], ["quiet"], kind="linux") == "quiet"


def test_debian_lines() -> None:
    assert merge(DEBIAN_XEN_ARGS, PROFILE_XEN, kind="xen") == (
        "placeholder dom0_mem=2G,max:2G loglvl=all guest_loglvl=all com1=38400,8n1 "
        "console=com1 ${xen_rm_opts}"
    )
    assert merge(DEBIAN_LINUX_ARGS, PROFILE_DOM0, ["quiet"], kind="linux") == (
        "placeholder root=UUID=5b6f7a0e-1c2d-4e3f-8a9b-0c1d2e3f4a5b ro console=hvc0 earlyprintk=xen"
    )


# ----------------------------------------------------------------- property-based tests

KEYS = ["console", "loglvl", "quiet", "ro", "root", "com1", "sync_console", "no-sync_console"]
VALUES = ["", "all", "hvc0", "tty0", "ttyS0,115200", "38400,8n1", "2G,max:2G", '"a b"']


@st.composite
def word(draw: st.DrawFn) -> str:
    choice = draw(st.integers(0, 9))
    if choice == 0:
        return draw(st.sampled_from(["placeholder", "${xen_rm_opts}", "$vt_handoff"]))
    if choice == 1:
        return "--"
    key = draw(st.sampled_from(KEYS))
    if draw(st.booleans()):
        return key
    return f"{key}={draw(st.sampled_from(VALUES))}"


# Lines may carry quoted words (an operator's own); what a profile adds or removes follows
# the option grammar (no quotes), see test_option_grammar.py.
option_word = word().filter(lambda w: w != "--" and '"' not in w)
add_word = option_word.filter(lambda w: w != "placeholder" and not w.startswith("$"))
lines = st.lists(word(), max_size=12).map(" ".join)
kinds = st.sampled_from(["xen", "linux"])


@settings(max_examples=400, deadline=None)
@given(
    line=lines,
    add=st.lists(add_word, max_size=5),
    remove=st.lists(option_word, max_size=3),
    kind=kinds,
    before=st.booleans(),
)
def test_merge_is_idempotent(
    line: str, add: list[str], remove: list[str], kind: Kind, before: bool
) -> None:
    once = merge(line, add, remove, kind=kind, before_trailing_vars=before)
    assert merge(once, add, remove, kind=kind, before_trailing_vars=before) == once


@settings(max_examples=300, deadline=None)
@given(
    line=lines,
    add=st.lists(add_word, max_size=5),
    remove=st.lists(option_word, max_size=3),
    kind=kinds,
)
def test_merge_outcome(line: str, add: list[str], remove: list[str], kind: Kind) -> None:
    out = Cmdline.parse(merge(line, add, remove, kind=kind), kind)
    before = Cmdline.parse(line, kind)
    # Nothing at or after "--" changes.
    assert out.tail == before.tail
    added = [Cmdline.parse(a, kind).tokens[0] for a in add]
    owned = {t.key(kind) for t in added}
    for token in added:
        if kind == "xen":
            # The last value given for the key is the only one present.
            last = [t for t in added if t.key(kind) == token.key(kind)][-1]
            assert [t for t in out.options if t.key(kind) == token.key(kind)] == [last]
        else:
            assert token in out.options
    if kind == "linux":
        profile_consoles = [t for t in added if t.key(kind) == "console"]
        if profile_consoles:
            consoles = [t for t in out.options if t.key(kind) == "console"]
            assert consoles[-1] == profile_consoles[-1]
    # Tokens the profile does not own and does not remove survive, in order.
    removed = [Cmdline.parse(r, kind).tokens[0] for r in remove]

    def untouched(t: Token) -> bool:
        if t.is_verbatim:
            return all(t.text != r.text or r.key(kind) in owned for r in removed)
        if t.key(kind) in owned:
            return False
        return not any(
            r.key(kind) not in owned
            and (
                t.text == r.text
                or ("=" not in r.text and not r.is_verbatim and t.key(kind) == r.key(kind))
            )
            for r in removed
        )

    expected = [t for t in before.options if untouched(t)]
    assert [t for t in out.options if untouched(t)] == expected


@settings(max_examples=200, deadline=None)
@given(line=lines, kind=kinds)
def test_round_trip_canonical_spacing(line: str, kind: Kind) -> None:
    assert str(Cmdline.parse(line, kind)) == line
