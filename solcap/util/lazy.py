"""Third-party modules loaded on first use, so a command pays only for what it runs.

``solcap --help`` or a serial capture has no use for paramiko (≈ 30 MiB and 300 modules with
cryptography, nacl and bcrypt) or PyYAML; a module that needs one at call time writes::

    if TYPE_CHECKING:
        import paramiko
    else:
        paramiko = lazy_module("paramiko")

and uses ``paramiko.X`` as before: the first attribute access imports the real module (under
the import system's own per-module lock, so threads racing to it are safe) and later accesses
go straight to it. Unlike :class:`importlib.util.LazyLoader` (not thread-safe before Python
3.12) nothing is put into ``sys.modules`` until the real import runs.
``tests/cli/test_lean_startup.py`` checks that ``solcap --help`` stays free of them.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any


class LazyModule(ModuleType):
    """Stands in for the module ``name`` until an attribute is asked for."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.__dict__["_lazy_name"] = name

    def __getattr__(self, attr: str) -> Any:
        module = importlib.import_module(self.__dict__["_lazy_name"])
        value = getattr(module, attr)
        # Cache on this proxy so the next access skips __getattr__ (plain dict lookup).
        self.__dict__[attr] = value
        return value


def lazy_module(name: str) -> Any:
    """A stand-in for ``import name`` that imports it at first attribute access."""
    return LazyModule(name)
