"""``solcap serve``: one long-lived owner per console, recording all the time, shared by clients.

A BMC allows one SOL session, and a crash at 3 a.m. happens when nobody is attached, so the
field runs one process that holds every console and that everything else goes through
(conserver, ConMan, confluent). This package is solcap's:

``server``     the loop: an inventory → one :class:`~solcap.serve.holder.ConsoleHolder` per
               host, SIGHUP re-reads the inventory, SIGTERM closes everything cleanly.
``holder``     one console: open, record, reconnect with jittered capped backoff, fan out to
               clients, take one writer's input.
``rotation``   the continuous log: consecutive recordings in the normal format, rotated by
               size and age with nothing lost or duplicated at the seam, retention, gaps.
``screen``     a terminal model (pyte) of each console, so a late client sees the screen.
``protocol``   the frames spoken on the control socket (docs/serve.md).
``triggers``   a host's ``on:`` triggers: event, runbook through the held console, segment,
               notify (the schema is :mod:`solcap.config.triggers`).
``control``    the control socket: owner-only, peer credentials and per-host ``access:``
               (:mod:`solcap.config.access`), one thread per client.
``metrics``    ``--metrics``: the status in Prometheus' text format, on loopback.
``paths``      where control sockets live and how a client finds the server holding a host.
``shards``     the shard map: which ``--shard i/N`` server owns a host, from the inventory.
``client``     status, attach, and a :class:`~solcap.transports.base.Transport` through the
               server, so harvest/run/capture never open a second SOL session.

Imports flow: protocol/paths/screen/rotation → holder → triggers/control/metrics → server;
client needs only protocol, paths and shards.
"""
