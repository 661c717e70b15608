"""The IPMI credential options, one group shared by every command that logs in to a BMC.

``capture``, ``harvest``, ``console``, ``run --host``, ``power``, ``sol-info`` and
``grub apply --oneshot`` take the same two options with the same meaning, as
:mod:`solcap.commands.sshopts` does for SSH:

* ``--password-file PATH`` (0600) beats ``$IPMI_PASSWORD`` (``ipmitool -E``), which beats a
  prompt on a terminal;
* ``--kg-file PATH`` (0600) beats ``$IPMI_KGKEY`` (what ``ipmitool -K`` reads; ``$IPMI_KG``
  still works); no key means the BMC has none.

Secrets never come from argv. For a console target that is not ``ipmi://`` the options are
refused rather than ignored.
"""

from __future__ import annotations

import argparse
import os

from solcap.config.credentials import (
    KG_ENV,
    PASSWORD_ENV,
    PasswordSource,
    kg_source,
    password_source,
)
from solcap.errors import UsageError
from solcap.inventory import SecretRef


def add_ipmi_options(parser: argparse.ArgumentParser, *, title: str | None = None) -> None:
    """Add ``--password-file`` and ``--kg-file`` (in their own group) to ``parser``."""
    group = parser.add_argument_group(
        title or "IPMI credentials (ipmi:// targets; never on the command line)"
    )
    group.add_argument(
        "--password-file",
        metavar="PATH",
        help=f"BMC password from a 0600 file (beats ${PASSWORD_ENV}; else a prompt on a tty)",
    )
    group.add_argument(
        "--kg-file",
        metavar="PATH",
        help=f"BMC key Kg from a 0600 file (beats ${KG_ENV}, as ipmitool -K reads it)",
    )


def _path(text: str | None) -> str | None:
    return os.path.expanduser(text) if text else None


def password(args: argparse.Namespace, *, prompt: bool = True) -> PasswordSource:
    """Where the BMC password comes from for this command."""
    return password_source(_path(args.password_file), prompt=prompt)


def kg(args: argparse.Namespace) -> PasswordSource:
    """Where the Kg key comes from for this command (may resolve to None: no key)."""
    return kg_source(_path(args.kg_file))


def secret_refs(args: argparse.Namespace) -> tuple[SecretRef, SecretRef | None]:
    """The options as inventory-style references, for a host built from the command line.

    Without ``--kg-file`` the Kg is left unset (None), so the connect layer reads the optional
    ``$IPMI_KGKEY``/``$IPMI_KG``: most BMCs have no Kg, and an unset variable is no error."""
    password_file = _path(args.password_file)
    kg_file = _path(args.kg_file)
    pw = SecretRef("file", password_file) if password_file else SecretRef("env", PASSWORD_ENV)
    key = SecretRef("file", kg_file) if kg_file else None
    return pw, key


def refuse_unless_ipmi(args: argparse.Namespace, target: str | None) -> None:
    """A credential option for a target that is not ``ipmi://`` is a mistake: say so."""
    if target is not None and target.lower().startswith("ipmi://"):
        return
    given = [
        flag
        for flag, value in (("--password-file", args.password_file), ("--kg-file", args.kg_file))
        if value
    ]
    if given:
        verb = "apply" if len(given) > 1 else "applies"
        raise UsageError(f"{' and '.join(given)} {verb} to ipmi:// targets only")
