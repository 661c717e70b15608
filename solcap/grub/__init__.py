"""GRUB: ``cfg`` edits configuration text (pure, no I/O); the menu driver lives beside it."""
