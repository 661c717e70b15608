"""A virtual Xen host (GRUB, Xen, Dom0) on a pseudo-terminal, and a virtual BMC in front of it.

This package imports no other solcap module but :mod:`solcap.util.sigwake` (a standard-library
signal helper), so tests never confirm solcap against itself.
"""
