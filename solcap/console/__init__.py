"""The Console: one reader thread that always drains its transport (``core``), and
a local terminal attached to it in raw mode (``attach``).
"""
