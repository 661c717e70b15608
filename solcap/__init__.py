"""solcap: reach a server's serial console, drive Xen and GRUB on it, and capture every byte.

The Python API (see docs/api.md)::

    import solcap
    with solcap.open_console("ipmi://admin@bmc01") as con:
        con.xen.switch_input("xen")
        con.xen.debug_key("q")

``solcap.orchestration.fleet`` runs jobs over many hosts; ``solcap.grub`` edits boot lines.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from solcap.api import open_console as open_console
    from solcap.capture.recording import Recording as Recording
    from solcap.console.core import Console as Console

__all__ = ["Console", "Recording", "__version__", "open_console"]

#: The classes ``solcap`` hands out by name, wherever the tree keeps them: the API is
#: ``solcap.Console`` and ``solcap.Recording``, not the module they live in.
_CLASSES = {
    "Console": ("solcap.console.core", "Console"),
    "Recording": ("solcap.capture.recording", "Recording"),
}


#: The sub-modules ``solcap`` hands out as attributes, by where they live in the tree.
_SUBMODULES = {
    "fleet": "solcap.orchestration.fleet",
    "grub": "solcap.grub",
    "lab": "solcap.testing.lab",
    "profiles": "solcap.boot.profiles",
    "runbook": "solcap.orchestration.runbook",
    "inventory": "solcap.inventory",
    "parsers": "solcap.xen.parsers",
}


def __getattr__(name: str) -> Any:
    # Imported lazily so `import solcap` stays cheap and free of pyghmi/paramiko.
    if name == "open_console":
        from solcap.api import open_console

        return open_console
    if name in _SUBMODULES or name in _CLASSES:
        import importlib

        if name in _CLASSES:
            module, attribute = _CLASSES[name]
            return getattr(importlib.import_module(module), attribute)
        return importlib.import_module(_SUBMODULES[name])
    raise AttributeError(f"module 'solcap' has no attribute {name!r}")
