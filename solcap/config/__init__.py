"""Loading what people and files hand solcap (YAML/TOML with the line:column of every
value), the bounds on it, secrets, and serve's per-host access and triggers.
"""
