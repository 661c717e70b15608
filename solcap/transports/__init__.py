"""Transports: thin raw-byte channels under a Console. They know nothing of Xen or GRUB.

Choose one by URL with :func:`solcap.transports.open_transport`.
"""

from __future__ import annotations

from solcap.transports.base import Transport
from solcap.transports.registry import open_transport, register_scheme

__all__ = ["Transport", "open_transport", "register_scheme"]
