"""solcap: reach a server's serial console, drive Xen and GRUB on it, and capture every byte."""

from __future__ import annotations

__version__ = "0.1.0"
