"""The test suite reads nothing outside the repository: a fresh clone with nothing beside it
runs every test. Samples live in tests/data/samples/ (copied unchanged, with their README)."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
SAMPLES = TESTS / "data" / "samples"
#: An absolute path into the machine (not /tmp, /dev, /proc, /usr: those are the host's own),
#: or a walk from a test file above the checkout.
_OUTSIDE = re.compile(r"""["'(]/(?:work|home|srv|opt)/|\.\./shared|parents\[(\d+)\]""")


def test_no_test_reads_outside_the_checkout() -> None:
    offenders = []
    for path in sorted(TESTS.rglob("*.py")):
        depth = len(path.relative_to(TESTS).parts)  # tests/x.py = 1, tests/a/x.py = 2
        for number, line in enumerate(path.read_text().splitlines(), 1):
            for found in _OUTSIDE.finditer(line):
                if found.group(1) is not None and int(found.group(1)) <= depth:
                    continue  # parents[k] still inside the checkout
                offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert offenders == []


def test_samples_are_in_the_repository_with_their_readme() -> None:
    names = sorted(p.name for p in SAMPLES.iterdir())
    assert "README.md" in names and "sol-session-grub2.06-xen4.17.raw" in names
    keys = [n for n in names if n.startswith("xen4.17-key-")]
    assert len(keys) == 13
    raw = (SAMPLES / "sol-session-grub2.06-xen4.17.raw").read_bytes()
    # The real SOL session: GRUB's menu, Xen's switch banner and ipmitool's exit are in it.
    assert b"(XEN) *** Serial input to Xen" in raw and len(raw) == 76083
    assert hashlib.sha256(raw).hexdigest() == SAMPLE_SHA256


SAMPLE_SHA256 = "87d7563fab018dd4d267c8724ef913065dcdf54feaeafa3d97136ad3418b05ed"
