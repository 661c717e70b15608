"""The recorder writes only inside the directory it created, whatever happens to the path.

solcap often runs as root under a recordings root other people can see. It holds a
descriptor of its recording directory and opens every file relative to it (``O_NOFOLLOW``),
so replacing the directory by a symlink mid-recording redirects nothing; and it refuses a
root or host directory that other users can write to (they could do that swap), unless the
directory is sticky and owned by us (or root).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from solcap.capture.recording import Recording
from solcap.errors import UsageError

pytestmark = pytest.mark.timeout(60)

OTHER_UID = 54321  # a user that is not us (the tests run as root or as a normal user)


def _all_files(top: Path) -> list[str]:
    return sorted(str(p.relative_to(top)) for p in top.rglob("*"))


def test_directory_swapped_for_a_symlink_mid_recording(tmp_path: Path) -> None:
    root = tmp_path / "root"
    outside = tmp_path / "outside"
    outside.mkdir()
    moved = tmp_path / "moved"
    rec = Recording("h", root=root)
    first = b"(XEN) before the swap\r\n"
    rec.feed(first)
    # Another user swaps the recording directory for a symlink to a place of their choosing.
    os.rename(rec.path, moved)
    rec.path.symlink_to(outside, target_is_directory=True)
    second = b"(XEN) 'q' pressed -> dumping domain info\r\n"
    start = rec.offset
    rec.feed(second)
    rec.event("mark", note="after")
    rec.add_segment("q", start, rec.offset, complete=True)
    rec.add_json("keys/q.json", {"domains": 1})
    fd = rec.open_file("dom0/xl-info.txt")
    os.write(fd, b"xen_version : 4.17\n")
    os.close(fd)
    summary = rec.close()
    # Before: the derived files (reopened per batch), keys/, dom0/ and meta.json went through
    # the symlink into `outside`.
    assert _all_files(outside) == []
    raw = (moved / "console.raw").read_bytes()
    assert raw == first + second
    assert summary.sha256 == hashlib.sha256(first + second).hexdigest()
    assert (moved / "keys" / "q.txt").read_bytes() == second
    assert json.loads((moved / "keys" / "q.json").read_text()) == {"domains": 1}
    assert (moved / "dom0" / "xl-info.txt").read_bytes() == b"xen_version : 4.17\n"
    meta = json.loads((moved / "meta.json").read_text())
    assert meta["finished"] is True
    assert meta["files"]["console.raw"] == hashlib.sha256(first + second).hexdigest()
    assert meta["files"]["dom0/xl-info.txt"] == hashlib.sha256(b"xen_version : 4.17\n").hexdigest()
    assert "after" in (moved / "console.log").read_text()


def test_symlinked_keys_directory_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    rec = Recording("h", root=tmp_path / "root")
    rec.feed(b"data")
    (rec.path / "keys").symlink_to(outside, target_is_directory=True)
    with pytest.raises(UsageError, match="symbolic link"):
        rec.add_segment("q", 0, 4, complete=True)
    with pytest.raises(UsageError, match="symbolic link"):
        rec.add_json("keys/q.json", {})
    rec.close()
    assert _all_files(outside) == []


@pytest.mark.parametrize("relative", ["../x.txt", "/tmp/x.txt", "keys/../../x.txt", ".hidden", ""])
def test_open_file_stays_inside(tmp_path: Path, relative: str) -> None:
    rec = Recording("h", root=tmp_path / "root")
    with pytest.raises(UsageError):
        rec.open_file(relative)
    rec.close()
    assert not (tmp_path / "root" / "x.txt").exists()


@pytest.mark.parametrize("mode", [0o777, 0o775, 0o757, 0o770])
def test_root_writable_by_others_is_refused(tmp_path: Path, mode: int) -> None:
    root = tmp_path / "shared"
    root.mkdir()
    root.chmod(mode)
    with pytest.raises(UsageError, match="writable by other users"):
        Recording("h", root=root)
    assert list(root.iterdir()) == []


def test_host_directory_writable_by_others_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir(mode=0o700)
    (root / "h").mkdir()
    (root / "h").chmod(0o777)
    with pytest.raises(UsageError, match="writable by other users"):
        Recording("h", root=root)
    assert list((root / "h").iterdir()) == []


def test_sticky_root_owned_by_us_is_accepted(tmp_path: Path) -> None:
    root = tmp_path / "shared"
    root.mkdir()
    root.chmod(0o1777)
    rec = Recording("h", root=root)
    rec.feed(b"ok")
    assert rec.close().bytes == 2


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give a directory to another user")
def test_directories_owned_by_another_user_are_refused(tmp_path: Path) -> None:
    sticky = tmp_path / "sticky-theirs"
    sticky.mkdir()
    sticky.chmod(0o1777)
    os.chown(sticky, OTHER_UID, OTHER_UID)
    with pytest.raises(UsageError, match="writable by other users"):
        Recording("h", root=sticky)
    root = tmp_path / "root"
    root.mkdir(mode=0o755)
    (root / "h").mkdir(mode=0o700)
    os.chown(root / "h", OTHER_UID, OTHER_UID)  # its owner can swap what is inside
    with pytest.raises(UsageError, match="writable by other users"):
        Recording("h", root=root)
    assert list((root / "h").iterdir()) == []


def test_symlinked_host_directory_is_still_refused(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "root").mkdir()
    (tmp_path / "root" / "h").symlink_to(elsewhere)
    with pytest.raises(UsageError, match="symbolic link"):
        Recording("h", root=tmp_path / "root")
    assert list(elsewhere.iterdir()) == []
