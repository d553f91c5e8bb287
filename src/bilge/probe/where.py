"""Where ``slim --probe`` writes the image's filesystem (and the slim one beside it).

1. ``--probe``'s own ``tmpdir`` (tests) or ``$TMPDIR`` when set: the user's choice;
2. otherwise ``/dev/shm`` when it is a tmpfs with room for three times the image's layer bytes and
   the machine has that much memory available: writing 14,000 files and removing them again costs
   seconds on a tmpfs and tens of seconds on a busy disk (benchmarks/README.md); three times because
   compressed layers grow when unpacked, and the tree must not eat the memory the probes need;
3. otherwise the system's temporary directory (:func:`bilge.cleanup.tempdir`).

As root the sandbox runs as ``nobody``, and bwrap must reach the root filesystem by its path: every
directory above it must be searchable by other users. When the chosen one is not (a private TMPDIR,
pytest's 0700 directories), the first of ``/dev/shm``, ``/var/tmp``, ``/tmp`` that is (and has the
room) is used instead and :class:`Place` says so. bilge's own directory in it is mode 0711 (traverse,
not list) with an unpredictable name; nothing the user made is opened up.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from bilge import cleanup
from bilge.errors import BilgeError

SHM = "/dev/shm"
REACHABLE = (SHM, "/var/tmp", "/tmp")
TMPFS_MAGIC = 0x01021994


@dataclass(frozen=True)
class Place:
    parent: Path
    why: str  # "asked" | "tmpfs" | "default" | "reachable"
    note: str = ""  # said to the user when the place is not the one asked for


def reachable(path: Path) -> bool:
    """Whether a user other than the owner can traverse every directory down to ``path``."""
    try:
        return all(os.stat(d).st_mode & stat.S_IXOTH for d in (path, *path.parents))
    except OSError:
        return False


def _mem_available() -> int:
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _free(path: str) -> int:
    try:
        st = os.statvfs(path)
    except OSError:
        return 0
    return st.f_bavail * st.f_frsize


def is_tmpfs(path: str) -> bool:
    try:
        with open("/proc/mounts", encoding="utf-8", errors="replace") as fh:
            return any(fields[1] == path and fields[2] == "tmpfs"
                       for fields in (line.split() for line in fh) if len(fields) > 2)
    except OSError:
        return False


def shm_fits(need: int) -> bool:
    return (os.path.isdir(SHM) and os.access(SHM, os.W_OK | os.X_OK) and is_tmpfs(SHM)
            and _free(SHM) >= need and _mem_available() >= need)


def choose(asked: str | os.PathLike[str] | None, layer_bytes: int, *, as_root: bool | None = None) -> Place:
    """Where the probe's temporary directories go, for an image of ``layer_bytes`` stored bytes."""
    need = 3 * layer_bytes + (64 << 20)
    as_root = os.geteuid() == 0 if as_root is None else as_root
    env = os.environ.get("TMPDIR")
    if asked is None and env and os.path.isdir(env):
        asked = env
    if asked is not None:
        place = Place(Path(asked).resolve(), "asked")
    elif shm_fits(need):
        place = Place(Path(SHM), "tmpfs")
    else:
        place = Place(Path(cleanup.tempdir()).resolve(), "default")
    if not as_root or reachable(place.parent):
        return place
    for alt in REACHABLE:
        p = Path(alt)
        if p.is_dir() and reachable(p) and os.access(p, os.W_OK | os.X_OK) and (alt != SHM or shm_fits(need)):
            return Place(p, "reachable", f"{place.parent} is not searchable by other users and the sandbox runs "
                                         f"as nobody: the image's filesystem went to {p} instead")
    raise BilgeError(f"{place.parent} is not searchable by other users, so the unprivileged sandbox cannot reach a "
                     f"root filesystem under it, and neither are {', '.join(REACHABLE)}: set TMPDIR to a directory "
                     "it can reach")
