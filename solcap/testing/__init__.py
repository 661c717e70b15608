"""Test and benchmark helpers that ship with solcap (no test framework imports here)."""
