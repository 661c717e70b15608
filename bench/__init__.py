"""solcap's benchmark harness: ``scripts/bench`` runs :mod:`bench.run` (see bench/README.md)."""
