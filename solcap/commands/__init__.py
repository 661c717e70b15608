"""CLI command groups that live outside ``solcap.cli``.

Each module here exposes ``register(sub)`` taking the ``solcap`` sub-parser collection, adds
its sub-commands with ``set_defaults(func=...)`` where ``func(args, out) -> int``, and raises
solcap errors for the CLI to map to exit codes. ``solcap.cli.COMMAND_MODULES`` lists them.
"""
