"""Where ``slim --probe`` writes the image's filesystem (bilge.probe.where), checked against the
machine's own facts (os.stat, /proc/mounts) rather than bilge's."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from bilge.errors import BilgeError
from bilge.probe import where


def _searchable(p: Path) -> bool:
    return all(os.stat(d).st_mode & stat.S_IXOTH for d in (p, *p.parents))


def test_the_users_choice_is_kept_when_the_sandbox_can_reach_it(tmp_path, monkeypatch):
    monkeypatch.delenv("TMPDIR", raising=False)
    open_dir = tmp_path / "open"
    open_dir.mkdir()
    assert where.choose(open_dir, 1 << 20, as_root=False).parent == open_dir.resolve()
    monkeypatch.setenv("TMPDIR", str(open_dir))
    place = where.choose(None, 1 << 20, as_root=False)
    assert place.parent == open_dir.resolve() and place.why == "asked" and not place.note


def test_as_root_an_unreachable_choice_moves_to_a_reachable_directory(tmp_path, monkeypatch):
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    os.chmod(tmp_path, 0o700)
    assert not _searchable(private)
    place = where.choose(private, 1 << 20, as_root=True)
    assert place.parent != private and _searchable(place.parent) and str(place.parent) in where.REACHABLE
    assert str(private.resolve()) in place.note
    monkeypatch.setattr(where, "REACHABLE", (str(private),))
    with pytest.raises(BilgeError, match="set TMPDIR"):
        where.choose(private, 1 << 20, as_root=True)


def test_without_a_choice_a_big_enough_tmpfs_is_preferred(monkeypatch):
    monkeypatch.delenv("TMPDIR", raising=False)
    with open("/proc/mounts") as fh:
        shm_is_tmpfs = any(f[1] == "/dev/shm" and f[2] == "tmpfs" for f in (line.split() for line in fh))
    free = os.statvfs("/dev/shm").f_bavail * os.statvfs("/dev/shm").f_frsize if os.path.isdir("/dev/shm") else 0
    small = where.choose(None, 1 << 20, as_root=False)
    if shm_is_tmpfs and free > (200 << 20) and os.access("/dev/shm", os.W_OK):
        assert small.parent == Path("/dev/shm") and small.why == "tmpfs"
    else:
        assert small.why == "default"
    # an image too big for the tmpfs (three times its bytes): the system's temporary directory
    huge = where.choose(None, free + (1 << 40), as_root=False)
    assert huge.why == "default" and huge.parent != Path("/dev/shm")
