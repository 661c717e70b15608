"""The SSH options of ``solcap dom0``, ``solcap grub`` and ``solcap run``, spelled one way.

Why one module: each command had grown its own copy of the same options under different
names (``--identity`` here, ``--ssh-key`` there), so a command line learned on one command
failed on the next. The documented spellings are the ``--ssh-`` ones, which cannot be
mistaken for the IPMI ``--password-file`` of ``solcap console``/``power`` and match the
inventory's ``ssh_key``:

* ``--ssh-key FILE`` (old spelling ``--identity``): private key file;
* ``--ssh-password-env NAME`` (old ``--password-env``): login password in ``$NAME``;
* ``--ssh-password-file FILE`` (old ``--password-file``): login password in a 0600 file;
* ``--known-hosts FILE``: verify host keys against this file only;
* ``--accept-new-host-key``: trust an unknown key once, log it and record it;
* ``--sudo``, ``--sudo-password-env NAME``, ``--sudo-password-file FILE``.

An old spelling is the same argument (same ``dest``), kept so no existing command line
breaks, and left out of ``--help`` so each option is documented once. ``--identity`` is
accepted by every command (it means only one thing); ``--password-env``/``--password-file``
only by ``solcap dom0``, which always had them: elsewhere ``--password-file`` is the IPMI
password, and ``solcap grub apply --oneshot ipmi://…`` must not quietly take it for SSH's.
Giving one option twice, in either spelling, is refused rather than letting the last one win
silently.

Secrets rules, as in :mod:`solcap.transports.ssh`: a password is never an argument, only the name of
the variable or the file that holds it; host keys are always verified.
"""

from __future__ import annotations

import argparse
from collections.abc import Collection, Sequence
from typing import Any
from urllib.parse import unquote

from solcap import inventory
from solcap.config.limits import split_url
from solcap.errors import UsageError
from solcap.transports import ssh

#: documented spelling → the older spelling still accepted (hidden from ``--help``).
ALIASES = {
    "--ssh-key": "--identity",
    "--ssh-password-env": "--password-env",
    "--ssh-password-file": "--password-file",
}


class _StoreOnce(argparse.Action):
    """Store the value, refusing a second one (``--ssh-key A --identity B`` is ambiguous)."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        if getattr(namespace, self.dest, None) is not None:
            canonical = self.option_strings[0]
            old = ALIASES.get(canonical)
            same = f" ({canonical} and {old} are one option)" if old else ""
            parser.error(f"{option_string} given twice{same}")
        setattr(namespace, self.dest, values)


def _add(
    group: argparse._ArgumentGroup,
    flag: str,
    metavar: str,
    help_text: str,
    old_spellings: Collection[str] = (),
) -> None:
    """One option under its documented spelling, plus its hidden old spelling if wanted."""
    dest = flag.removeprefix("--").replace("-", "_")
    group.add_argument(flag, dest=dest, metavar=metavar, action=_StoreOnce, help=help_text)
    old = ALIASES.get(flag)
    if old is not None and old in old_spellings:
        group.add_argument(
            old, dest=dest, metavar=metavar, action=_StoreOnce, help=argparse.SUPPRESS
        )


def add_ssh_options(
    parser: argparse.ArgumentParser,
    *,
    passwords: bool = True,
    accept_new_host_key: bool = True,
    sudo: str | None = None,
    old_spellings: Collection[str] = ("--identity",),
    title: str = "SSH (passwords only from the environment or a 0600 file; host keys verified)",
) -> argparse._ArgumentGroup:
    """Add the SSH options to ``parser`` in their own help group; returns the group.

    ``passwords`` / ``accept_new_host_key`` False leave those options out for a command that
    cannot use them (``solcap run --host`` hands key and known_hosts to the inventory's
    target, which has neither); ``sudo`` is the help text of ``--sudo`` (None: no sudo
    options), which also brings ``--sudo-password-env/-file``. ``old_spellings`` are the
    hidden aliases (values of :data:`ALIASES`) this command accepts.
    """
    unknown = set(old_spellings) - set(ALIASES.values())
    if unknown:
        raise ValueError(f"not an old SSH option spelling: {', '.join(sorted(unknown))}")
    group = parser.add_argument_group(title)
    _add(group, "--ssh-key", "FILE", "private key file", old_spellings)
    if passwords:
        _add(group, "--ssh-password-env", "NAME", "login password in $NAME", old_spellings)
        _add(group, "--ssh-password-file", "FILE", "login password in a 0600 file", old_spellings)
    _add(group, "--known-hosts", "FILE", "use only this known_hosts file")
    if accept_new_host_key:
        group.add_argument(
            "--accept-new-host-key",
            action="store_true",
            help="trust an unknown host key once, log it and write it to known_hosts "
            "(a changed key is always refused)",
        )
    if sudo is not None:
        group.add_argument("--sudo", action="store_true", help=sudo)
        _add(group, "--sudo-password-env", "NAME", "sudo password in $NAME")
        _add(group, "--sudo-password-file", "FILE", "sudo password in a 0600 file")
    return group


def secret_spec(env: str | None, file: str | None, flag: str) -> str | None:
    """``env:NAME`` / ``file:PATH`` (what :func:`solcap.transports.ssh.resolve_secret` takes), or
    None.

    ``flag`` is the option stem for the message: ``--ssh-password`` → ``give
    --ssh-password-env or --ssh-password-file, not both``.
    """
    if env and file:
        raise UsageError(f"give {flag}-env or {flag}-file, not both")
    if env:
        return f"env:{env}"
    if file:
        return f"file:{file}"
    return None


def ssh_target(args: argparse.Namespace, url: str, **extra: Any) -> ssh.SshTarget:
    """The :class:`solcap.transports.ssh.SshTarget` for ``url`` and the options
    :func:`add_ssh_options` added; ``extra`` sets the other fields (``path_prefix=…``).

    ``--sudo-password-*`` implies ``--sudo``; without one, sudo reuses the login password
    (or runs ``sudo -n``), as :class:`~solcap.transports.ssh.SshTarget` documents.
    """
    password = secret_spec(
        getattr(args, "ssh_password_env", None),
        getattr(args, "ssh_password_file", None),
        "--ssh-password",
    )
    sudo_password = secret_spec(
        getattr(args, "sudo_password_env", None),
        getattr(args, "sudo_password_file", None),
        "--sudo-password",
    )
    return ssh.SshTarget.parse(
        url,
        key_file=args.ssh_key,
        password=password,
        known_hosts=args.known_hosts,
        accept_new_host_key=getattr(args, "accept_new_host_key", False),
        sudo=getattr(args, "sudo", False) or sudo_password is not None,
        sudo_password=sudo_password,
        **extra,
    )


def inventory_target(args: argparse.Namespace, url: str, flag: str) -> inventory.SshTarget:
    """The inventory's Dom0 :class:`~solcap.inventory.SshTarget` for ``url`` (``--ssh`` of
    ``solcap run --host``) and ``--ssh-key`` / ``--known-hosts``.

    The user stays None when the URL names none, as an inventory entry without ``ssh_user``
    (the runner fills in ``$USER`` when it logs in).
    """
    parts, port = split_url(url, default_port=22)
    if parts.scheme != "ssh" or not parts.hostname:
        raise UsageError(f"{flag}: expected ssh://user@host[:port], got {url!r}")
    if parts.password is not None:
        raise UsageError(f"{flag}: a password in the URL would show up in argv")
    return inventory.SshTarget(
        host=parts.hostname,
        user=unquote(parts.username) if parts.username else None,
        port=port,
        key_file=args.ssh_key,
        known_hosts=args.known_hosts,
    )
