"""Process plumbing that knows nothing of consoles: lazy imports, signal wake-ups."""
