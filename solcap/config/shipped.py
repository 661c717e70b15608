"""Where the profiles and runbooks shipped with solcap are, installed or in a checkout.

The files live at the top of the source tree (``profiles/``, ``runbooks/``), where operators
read and copy them. A built wheel carries them as package data under ``solcap/_shipped/``
(setup.py copies them there), found with importlib.resources so an installed solcap finds them
from any working directory. A source checkout (or the editable install ``scripts/bootstrap``
makes) has no ``_shipped/``, so the checkout's own top-level directory is used instead.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Literal

Kind = Literal["profiles", "runbooks"]

_CHECKOUT = Path(__file__).resolve().parent.parent.parent


def shipped_dir(kind: Kind) -> Path:
    """The directory of shipped ``kind``: the package data if installed, else the checkout's."""
    packaged = resources.files("solcap").joinpath("_shipped", kind)
    # pip always unpacks wheels, so package data is a real directory; a zip import is not
    # supported (solcap reads profiles by path, with line numbers in its errors).
    if isinstance(packaged, Path) and packaged.is_dir():
        return packaged
    return _CHECKOUT / kind
