"""The image's merged filesystem, written to a private temporary directory for the sandbox.

Every entry is created relative to a directory file descriptor opened component by component with
``O_NOFOLLOW|O_DIRECTORY``, so a symlink in the image (absolute, ``..``-laden, pointing at the host)
is written as a symlink and never followed on the host: it only means something inside the sandbox,
where ``/`` is this directory. Paths come from :class:`bilge.fs.MergedFS`, which already refuses
hostile tar names (``..``, absolute); a path with an empty, ``.`` or ``..`` component is refused here
again. Not written: device nodes and fifos (the sandbox has its own minimal /dev), anything under the
image's /proc, /dev and /sys (the sandbox mounts fresh ones), the setuid/setgid bits (and bwrap's
``no_new_privs`` would ignore them anyway). Each file's owner read/execute bits are copied to
"other", so the unprivileged sandbox user can read what the image's owner could.

The directory is registered with :mod:`bilge.cleanup` before anything is written in it: an error or
a signal removes it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from bilge import cleanup
from bilge.errors import BilgeError

if TYPE_CHECKING:
    from bilge.fs import MergedFS, Version
    from bilge.image import Layer
    from bilge.layers import Entry
    from bilge.rewrite.squash import ReadFS
    from bilge.source.base import ImageSource

# where the sandbox mounts something of its own: created as empty directories, contents not written
MOUNT_POINTS = ("proc", "dev", "sys", "tmp", "var/tmp", "run")
SKIPPED_TREES = ("proc", "dev", "sys")
O_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


@dataclass
class Materialised:
    """A private root filesystem. ``top`` is the temporary directory (removed by :meth:`remove`)."""

    top: Path
    rootfs: Path
    files: int = 0
    bytes: int = 0
    skipped: list[str] = field(default_factory=list)  # what was not written, and why

    def remove(self) -> None:
        cleanup.remove(self.top)


def new_top(parent: str | os.PathLike[str] | None = None, prefix: str = "bilge-probe-") -> Path:
    """A private temporary directory (registered with bilge.cleanup) that an unprivileged sandbox
    user may traverse (mode 0711: not list)."""
    where = Path(parent or cleanup.tempdir()).resolve()
    if os.geteuid() == 0:  # the sandbox runs as nobody: it must reach the directory to mount it
        for d in (where, *where.parents):
            if not os.stat(d).st_mode & stat.S_IXOTH:
                raise BilgeError(f"{d} is not searchable by other users, so the unprivileged sandbox cannot "
                                 f"reach a root filesystem under {where}: set TMPDIR to a directory it can reach")
    top = cleanup.mkdtemp(where, prefix)
    os.chmod(top, 0o711)
    return top


def _mode(mode: int) -> int:
    mode &= 0o1777  # no setuid/setgid
    return mode | ((mode & 0o500) >> 6)


def _parts(path: str) -> list[str]:
    parts = path.split("/")
    if not path or any(p in ("", ".", "..") for p in parts):
        raise BilgeError(f"refusing to write the unsafe path {path!r}")
    return parts


class Writer:
    """Creates entries under ``root`` without ever following a symlink on the way."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.root_fd = os.open(root, O_DIR)
        self._dirs: dict[str, int] = {"": self.root_fd}

    def close(self) -> None:
        for fd in self._dirs.values():
            with contextlib.suppress(OSError):
                os.close(fd)
        self._dirs.clear()

    def dir_fd(self, path: str) -> int:
        """An fd of the directory ``path`` (relative), opened without following any symlink."""
        if path in self._dirs:
            return self._dirs[path]
        parent, _, name = path.rpartition("/")
        pfd = self.dir_fd(parent)
        fd = os.open(name, O_DIR, dir_fd=pfd)
        if len(self._dirs) > 256:  # keep the fd count bounded
            for key in [k for k in self._dirs if k][:128]:
                os.close(self._dirs.pop(key))
        self._dirs[path] = fd
        return fd

    def remove(self, path: str) -> None:
        """Remove whatever is at ``path`` (a directory with its contents; never following a symlink)."""
        try:
            pfd, name = self._parent(path)
            self._clear(pfd, name, path)
        except OSError:
            pass  # nothing there, or no directory on the way: nothing to remove

    def _clear(self, pfd: int, name: str, path: str) -> None:
        try:
            os.unlink(name, dir_fd=pfd)
        except FileNotFoundError:
            return
        except (IsADirectoryError, PermissionError):
            st = os.stat(name, dir_fd=pfd, follow_symlinks=False)
            if not stat.S_ISDIR(st.st_mode):
                raise
            for key in [k for k in self._dirs if k == path or k.startswith(path + "/")]:
                os.close(self._dirs.pop(key))
            shutil.rmtree(name, dir_fd=pfd)

    def _parent(self, path: str) -> tuple[int, str]:
        parts = _parts(path)
        return self.dir_fd("/".join(parts[:-1])), parts[-1]

    def mkdir(self, path: str, mode: int = 0o755) -> None:
        pfd, name = self._parent(path)
        try:
            os.mkdir(name, 0o700, dir_fd=pfd)
        except FileExistsError:
            st = os.stat(name, dir_fd=pfd, follow_symlinks=False)
            if not stat.S_ISDIR(st.st_mode):
                os.unlink(name, dir_fd=pfd)
                os.mkdir(name, 0o700, dir_fd=pfd)
        os.chmod(name, _mode(mode) | 0o700, dir_fd=pfd)

    def file(self, path: str, mode: int, body: object | None, mtime: float | None = None) -> int:
        """A regular file with ``body``'s bytes and the image's mode and mtime (Python's .pyc files
        are valid only if the source's mtime is the one they recorded: without it every module
        would be compiled again on each run of a probe, and the tree is read-only)."""
        pfd, name = self._parent(path)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            fd = os.open(name, flags, 0o600, dir_fd=pfd)
        except FileExistsError:  # a lower layer's entry (most paths are new: no unlink first)
            self._clear(pfd, name, path)
            fd = os.open(name, flags, 0o600, dir_fd=pfd)
        n = 0
        try:
            if body is not None:
                for chunk in _pieces(body):
                    os.write(fd, chunk)
                    n += len(chunk)
            os.fchmod(fd, _mode(mode))
            if mtime is not None:
                ns = int(mtime * 1_000_000_000)
                os.utime(fd, ns=(ns, ns))
        finally:
            os.close(fd)
        return n

    def symlink(self, path: str, target: str) -> None:
        pfd, name = self._parent(path)
        try:
            os.symlink(target, name, dir_fd=pfd)
        except FileExistsError:
            self._clear(pfd, name, path)
            os.symlink(target, name, dir_fd=pfd)

    def link(self, path: str, anchor: str, src: Writer | None = None) -> None:
        """A hardlink at ``path`` to ``anchor`` (in ``src``'s tree, default this one)."""
        src = src or self
        spfd, sname = src._parent(anchor)
        pfd, name = self._parent(path)
        try:
            os.link(sname, name, src_dir_fd=spfd, dst_dir_fd=pfd, follow_symlinks=False)
        except FileExistsError:
            self._clear(pfd, name, path)
            os.link(sname, name, src_dir_fd=spfd, dst_dir_fd=pfd, follow_symlinks=False)

    def ensure_mount_points(self) -> None:
        """Make /proc, /dev, /sys, /tmp, /var/tmp and /run directories where the sandbox mounts its own
        (a symlink there is replaced; one on the way, e.g. /var -> elsewhere, leaves that one out)."""
        for path in MOUNT_POINTS:
            parts = path.split("/")
            try:
                for i in range(1, len(parts)):
                    st = os.stat("/".join(parts[:i]), dir_fd=self.root_fd, follow_symlinks=False)
                    if not stat.S_ISDIR(st.st_mode):
                        raise NotADirectoryError(path)
                self.mkdir(path, 0o1777 if parts[-1] == "tmp" else 0o755)
            except OSError:
                continue


def _pieces(body: object) -> Iterator[bytes]:
    """A body's bytes in pieces: from a file object (``read``), or an iterable of bytes (what
    :meth:`bilge.layers.Entry.chunks` yields: straight from the layer stream, nothing copied aside)."""
    read = getattr(body, "read", None)
    if read is None:
        yield from body  # type: ignore[attr-defined]
        return
    while chunk := read(1 << 20):
        yield chunk


def skipped_tree(path: str) -> bool:
    return any(path == t or path.startswith(t + "/") for t in SKIPPED_TREES)


class Materialiser:
    """The ``applied`` callback of :func:`bilge.rewrite.squash.read_fs`: writes each entry while the one
    read of the layers applies it, at the real path the merged filesystem gave it (symlinked parents
    resolved), replacing what a lower layer wrote there and removing what a whiteout hides. A final
    pass (:meth:`finish`) removes whatever the tree holds that the merged filesystem does not show."""

    def __init__(self, out: Materialised) -> None:
        self.out = out
        self.writer = Writer(out.rootfs)
        # id(Version) -> (devmajor, devminor, xattrs) of the entries that had any: what a tar writer needs
        # besides the Version to write the entry again (bilge.probe.tree.tree_members)
        self.extras: dict[int, tuple[int, int, tuple[tuple[str, bytes], ...]]] = {}

    def __call__(self, fs: MergedFS, layer: Layer, entry: Entry, v: Version | None) -> None:
        if entry.whiteout is not None:
            kind, target = entry.whiteout
            if kind == "file":
                if target and not skipped_tree(target):
                    self.writer.remove(target)
            else:
                self._opaque(fs, target)
            return
        if v is None or not v.path:
            return
        if v.kind != "dir" and (entry.devmajor or entry.devminor or entry.pax):
            from bilge.rewrite.squash import xattrs_of

            xa = xattrs_of(entry)
            if xa or entry.devmajor or entry.devminor:
                self.extras[id(v)] = (entry.devmajor, entry.devminor, xa)
        linkname = v.body.path if v.kind == "hardlink" and v.body is not None else v.linkname
        if v.kind == "hardlink" and v.body is None:
            self.out.skipped.append(f"/{v.path}: hardlink to /{v.linkname}, which is not a file in the image")
            return
        # the body read once, by this writer only (nothing else reads it during slim --probe's read)
        body = entry.chunks() if v.kind == "file" else None
        try:
            _write(self.writer, self.out, v.path, v.kind, v.mode, linkname, body, v.mtime)
        except OSError as exc:
            if exc.errno not in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
                raise
            self._parents(fs, v.path)  # a lower layer left a non-directory on the way: replace it
            _write(self.writer, self.out, v.path, v.kind, v.mode, linkname,
                   entry.chunks() if v.kind == "file" else None, v.mtime)

    def _parents(self, fs: MergedFS, path: str) -> None:
        parts = _parts(path)
        for i in range(1, len(parts)):
            prefix = "/".join(parts[:i])
            try:
                self.writer.dir_fd(prefix)
            except OSError:
                self.writer.remove(prefix)
                pv = fs.lookup(prefix)
                self.writer.mkdir(prefix, pv.mode if pv is not None else 0o755)

    def _opaque(self, fs: MergedFS, target: str) -> None:
        if skipped_tree(target):
            return
        try:
            fd = self.writer.dir_fd(target)
        except OSError:
            return
        keep = set(fs.listdir(target))
        for name in os.listdir(fd):
            if name not in keep:
                self.writer.remove(f"{target}/{name}" if target else name)

    def finish(self, fs: MergedFS) -> None:
        """Remove what the tree holds at a path where the merged filesystem shows nothing (or
        something of another kind), then make the sandbox's mount points."""
        want = {"dir": stat.S_IFDIR, "file": stat.S_IFREG, "hardlink": stat.S_IFREG, "symlink": stat.S_IFLNK}
        for dirpath, dirnames, filenames, dfd in os.fwalk(self.out.rootfs, follow_symlinks=False):
            rel = os.path.relpath(dirpath, self.out.rootfs)
            rel = "" if rel == "." else rel
            for name in list(dirnames) + filenames:
                path = f"{rel}/{name}" if rel else name
                if path in SKIPPED_TREES:
                    continue
                v = fs.lookup(path)
                st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
                if v is None or want.get(v.kind) != stat.S_IFMT(st.st_mode):
                    self.writer.remove(path)
                    if name in dirnames:
                        dirnames.remove(name)
        self.writer.ensure_mount_points()


def materialise(src: ImageSource, *, parent: str | os.PathLike[str] | None = None, verify: bool | None = None,
                progress: Callable[[Layer, int], None] | None = None) -> tuple[Materialised, ReadFS, Materialiser]:
    """Read every layer of ``src`` once: the merged filesystem (:class:`ReadFS`) and, during the same
    read, its files written to a new temporary directory."""
    from bilge.rewrite.squash import read_fs

    top = new_top(parent)
    try:
        rootfs = top / "rootfs"
        os.mkdir(rootfs, 0o755)
        out = Materialised(top, rootfs)
        writer = Materialiser(out)
        try:
            read = read_fs(src, verify=verify, progress=progress, applied=writer)
            writer.finish(read.fs)
        finally:
            writer.writer.close()
        return out, read, writer
    except BaseException:
        cleanup.remove(top)
        raise


def _write(writer: Writer, out: Materialised, path: str, kind: str, mode: int, linkname: str,
           body: object | None, mtime: float | None = None) -> None:
    if skipped_tree(path):
        if path not in SKIPPED_TREES:
            out.skipped.append(f"/{path}: under /{path.split('/')[0]} (the sandbox mounts its own)")
        return
    if kind == "dir":
        writer.mkdir(path, mode)
    elif kind == "file":
        out.bytes += writer.file(path, mode, body, mtime)
        out.files += 1
    elif kind == "symlink":
        writer.symlink(path, linkname)
    elif kind == "hardlink":
        try:
            writer.link(path, linkname)
        except OSError as exc:
            out.skipped.append(f"/{path}: hardlink to /{linkname} not created ({exc.strerror})")
    else:
        out.skipped.append(f"/{path}: {kind} (not created)")


def link_tree(full: Materialised, read: ReadFS, keep: Callable[[str, Version], bool], *,
              parent: str | os.PathLike[str] | None = None) -> Materialised:
    """A second root filesystem holding only what ``keep`` accepts (slim's keep set), its files
    hardlinked from ``full`` (no bytes copied): what the slimmed image's layer will hold."""
    top = new_top(parent, "bilge-probe-slim-")
    try:
        rootfs = top / "rootfs"
        os.mkdir(rootfs, 0o755)
        out = Materialised(top, rootfs)
        src = Writer(full.rootfs)
        dst = Writer(rootfs)
        try:
            for path, v in _kept(read, keep):
                if skipped_tree(path):
                    continue
                if v.kind == "dir":
                    dst.mkdir(path, v.mode)
                elif v.kind == "symlink":
                    dst.symlink(path, v.linkname)
                elif v.kind in ("file", "hardlink") and v.body is not None:
                    dst.link(path, path, src)
                    out.files += 1
                    out.bytes += v.size if v.kind == "file" else v.body.size
            dst.ensure_mount_points()
        finally:
            src.close()
            dst.close()
        return out
    except BaseException:
        cleanup.remove(top)
        raise


def mount_points(rootfs: Path) -> list[str]:
    """The MOUNT_POINTS that are real directories (no symlink on the way) under ``rootfs``."""
    out = []
    for path in MOUNT_POINTS:
        cur = rootfs
        ok = True
        for comp in path.split("/"):
            cur = cur / comp
            try:
                ok = stat.S_ISDIR(os.lstat(cur).st_mode)
            except OSError:
                ok = False
            if not ok:
                break
        if ok:
            out.append("/" + path)
    return out


def _kept(read: ReadFS, keep: Callable[[str, Version], bool]) -> Iterator[tuple[str, Version]]:
    for path, v in read.fs.visible():  # sorted: parents before children
        if keep(path, v):
            yield path, v


def open_image_file(rootfs: Path, path: str) -> BinaryIO | None:
    """The regular file at the real (symlink-free) image path ``path`` of the tree, or None."""
    parts = [p for p in path.strip("/").split("/") if p]
    if not parts or any(p in (".", "..") for p in parts):
        return None
    fds: list[int] = []
    try:
        fd = os.open(rootfs, O_DIR)
        fds.append(fd)
        for comp in parts[:-1]:
            fd = os.open(comp, O_DIR, dir_fd=fd)
            fds.append(fd)
        ffd = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
    except OSError:
        return None
    finally:
        for fd in fds:
            os.close(fd)
    fh = os.fdopen(ffd, "rb")
    if not stat.S_ISREG(os.fstat(ffd).st_mode):
        fh.close()
        return None
    return fh


def read_image_file(rootfs: Path, real: str, limit: int = 1 << 20) -> bytes | None:
    """Read a file of the materialised tree by its real (symlink-free) image path, never following a
    symlink on the host."""
    fh = open_image_file(rootfs, real)
    if fh is None:
        return None
    with fh:
        try:
            return fh.read(limit)
        except OSError:
            return None
