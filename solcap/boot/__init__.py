"""What a host should boot with: boot profiles, Xen and Linux command lines, and the
serial speeds that must agree (BMC, GRUB, Xen). ``solcap.grub`` puts them in place.
"""
