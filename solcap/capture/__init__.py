"""Recordings: every byte a console printed, written as it arrives (``recording``),
its human log (``humanlog``), and recordings read back (``recordings``).
"""
