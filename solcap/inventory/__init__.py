"""Inventories: which hosts exist, how to reach their consoles, BMCs and Dom0s.

Two sources, one result (a tuple of validated, immutable :class:`Host` objects):

* solcap's own format, YAML or TOML (``defaults``, ``groups``, ``hosts``; docs/inventory.md);
* Ansible inventories, mapping ``ansible_host``/``ansible_user``/``ansible_port`` to the Dom0
  SSH target, ``solcap_*`` vars to solcap's fields and the BMC variable names found in real
  inventories (:data:`BMC_VARS`: Kayobe's and OpenShift's ``ipmi_address``, ``bmc_address``,
  Ironic's ``driver_info.ipmi_address`` …) to the BMC. Where ``ansible-inventory`` is
  installed it reads them (``--list``: Ansible's own precedence, dynamic inventory plugins and
  scripts; Jinja and vaulted values arrive unevaluated, as references); the built-in static
  reader (YAML or INI: groups, ``children``, host and group vars) is the fallback.

Everything is checked before any host is contacted, and every error is one line naming
``file:line:column``, the host (or group) and the field. Secrets are *references* only
(``env:NAME`` or ``file:PATH``): a password written into an inventory ends up in backups, in
version control and, once passed on, in ``/proc/PID/cmdline`` — so it is refused.

The package: :mod:`.model` (hosts and vocabulary), :mod:`.fields` (field checks),
:mod:`.native` (solcap's format), :mod:`.ansible` (Ansible inventories), :mod:`.load`
(:func:`load_inventory`), :mod:`.select` (limits, labels, shards). Everything public is
imported here, so ``from solcap.inventory import Host`` keeps working.
"""

from __future__ import annotations

from solcap.config.credentials import SecretRef
from solcap.inventory.fields import (
    Where,
    check_profile,
    parse_bmc,
    parse_cipher,
    parse_console,
    parse_labels,
    parse_line,
    parse_secret,
    parse_serial,
    parse_ssh,
    parse_vars,
)
from solcap.inventory.load import (
    MAX_INVENTORY_DIR_ENTRIES,
    ansible_inventory_binary,
    load_inventory,
)
from solcap.inventory.model import (
    BMC_VARS,
    CIPHER_SUITES,
    DEFAULT_CIPHER,
    READERS,
    BmcAddress,
    Host,
    Inventory,
    Reader,
    Scalar,
    SshTarget,
)
from solcap.inventory.select import (
    Shard,
    parse_shard,
    select_hosts,
    shard_of,
)

__all__ = [
    "BMC_VARS",
    "CIPHER_SUITES",
    "DEFAULT_CIPHER",
    "MAX_INVENTORY_DIR_ENTRIES",
    "READERS",
    "BmcAddress",
    "Host",
    "Inventory",
    "Reader",
    "Scalar",
    "SecretRef",
    "Shard",
    "SshTarget",
    "Where",
    "ansible_inventory_binary",
    "check_profile",
    "load_inventory",
    "parse_bmc",
    "parse_cipher",
    "parse_console",
    "parse_labels",
    "parse_line",
    "parse_secret",
    "parse_serial",
    "parse_shard",
    "parse_ssh",
    "parse_vars",
    "select_hosts",
    "shard_of",
]
