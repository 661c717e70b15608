"""``solcap profile list|show|validate``: look at boot profiles before applying one.

``validate`` is meant for CI and editors: it checks every file given, prints one line per bad
file in the ``file:line: field: message`` shape compilers use, and exits 2 if any is bad.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, TextIO

from solcap.boot.profiles import (
    Options,
    Profile,
    default_search_dirs,
    list_profiles,
    load_profile,
    validate_file,
)
from solcap.errors import ExitStatus, SolcapError


def _dirs(args: argparse.Namespace) -> list[Path] | None:
    extra: list[Path] = list(args.profiles_dir or [])
    return [*extra, *default_search_dirs()] if extra else None


def cmd_list(args: argparse.Namespace, out: TextIO) -> int:
    """One line per profile: name, then its description."""
    profiles = list_profiles(_dirs(args))
    width = max((len(p.name) for p in profiles), default=0)
    for profile in profiles:
        print(f"{profile.name:<{width}}  {profile.description}", file=out)
    return ExitStatus.OK


def _options(label: str, options: Options, out: TextIO) -> None:
    print(f"{label} options: {' '.join(options.options) or '(none)'}", file=out)
    if options.remove:
        print(f"{label} remove:  {' '.join(options.remove)}", file=out)


def show_profile(profile: Profile, out: TextIO) -> None:
    """The resolved profile (inheritance applied), as a person reads it."""
    print(f"name:        {profile.name}", file=out)
    print(f"description: {profile.description}", file=out)
    print(f"file:        {profile.path}", file=out)
    if profile.extends:
        print(f"extends:     {' -> '.join(profile.extends)}", file=out)
    _options("xen ", profile.xen, out)
    _options("dom0", profile.dom0, out)
    if profile.console is not None:
        line = profile.console
        print(f"console:     {line.baud} {line.dps}", file=out)
    keys = ",".join(profile.harvest_keys) or "(none)"
    print(f"harvest:     {keys}", file=out)


def cmd_show(args: argparse.Namespace, out: TextIO) -> int:
    """Print one profile, resolved."""
    show_profile(load_profile(args.name, _dirs(args)), out)
    return ExitStatus.OK


def cmd_validate(args: argparse.Namespace, out: TextIO, err: TextIO | None = None) -> int:
    """Validate each file; bad ones print ``file:line: field: message`` on stderr."""
    errors = err if err is not None else sys.stderr
    bad = 0
    for name in args.files:
        try:
            profile = validate_file(name, _dirs(args))
        except SolcapError as exc:
            bad += 1
            print(exc.one_line(), file=errors)
            continue
        print(f"{name}: ok ({profile.name})", file=out)
    return ExitStatus.USAGE if bad else ExitStatus.OK


def register(sub: Any) -> None:
    """Add ``solcap profile`` to the CLI's sub-parsers."""
    parser = sub.add_parser("profile", help="list, show and validate boot profiles")
    actions = parser.add_subparsers(dest="profile_command", required=True, metavar="ACTION")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--profiles-dir",
        action="append",
        type=Path,
        metavar="DIR",
        help="search DIR before $SOLCAP_PROFILES and the shipped profiles (repeatable)",
    )
    listing = actions.add_parser("list", parents=[common], help="every profile, by name")
    listing.set_defaults(func=cmd_list)
    show = actions.add_parser("show", parents=[common], help="one profile, resolved")
    show.add_argument("name", help="profile name or path to a .toml file")
    show.set_defaults(func=cmd_show)
    validate = actions.add_parser(
        "validate", parents=[common], help="check files; exit 2 if any is bad"
    )
    validate.add_argument("files", nargs="+", metavar="FILE")
    validate.set_defaults(func=cmd_validate)
