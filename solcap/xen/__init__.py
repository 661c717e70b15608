"""What solcap knows of Xen and Dom0: the console switch and debug keys, harvests,
the dump parsers, Dom0 over SSH, vCPU pinning and guest modes.
"""
