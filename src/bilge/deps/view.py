"""The view protocol (what the resolver reads of a root filesystem), :class:`DirView` over a real
directory, and :class:`ImageView`, built during the one pass over an image's layers."""

from __future__ import annotations

import os
import posixpath
import re
import stat as stat_mod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from bilge.deps.lazyelf import Capture, LazyElfTable, capture_entry, entry_head
from bilge.elf import ElfInfo, read_elf
from bilge.errors import BilgeError

if TYPE_CHECKING:
    from bilge.source.base import ImageSource

PATH_MAX = 4096  # longer paths fail with ENAMETOOLONG
SMALL_LIMIT = 1 << 20  # read_small() default: config files, script heads
LOADER_LIMIT = 8 << 20  # the dynamic loader is read whole to find its compiled-in search path
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
SHELLS = frozenset({"sh", "bash", "dash", "ash", "zsh", "ksh", "busybox"})


@dataclass(frozen=True)
class Stat:
    kind: str  # "file" | "dir" | "symlink" | "other"
    size: int = 0
    linkname: str | None = None
    mode: int = 0o644


class View(Protocol):
    """Read-only access to one root filesystem. Parent components of every path are real dirs."""

    def lstat(self, path: str) -> Stat | None: ...

    def listdir(self, path: str) -> list[str]: ...

    def read_small(self, path: str, limit: int = SMALL_LIMIT) -> bytes | None: ...

    def elf(self, path: str) -> ElfInfo | None: ...


class DirView:
    """A :class:`View` over a real directory (an unpacked rootfs, a test tree)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = os.path.abspath(os.fspath(root))
        if not os.path.isdir(self.root):
            raise BilgeError(f"not a directory: {self.root}")
        self._elf: dict[str, ElfInfo | None] = {}

    def _host(self, path: str) -> str:
        return self.root + path if path != "/" else self.root

    def lstat(self, path: str) -> Stat | None:
        try:
            st = os.lstat(self._host(path))
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError:
            return None
        mode = st.st_mode
        if stat_mod.S_ISLNK(mode):
            return Stat("symlink", 0, os.readlink(self._host(path)), stat_mod.S_IMODE(mode))
        if stat_mod.S_ISDIR(mode):
            return Stat("dir", 0, None, stat_mod.S_IMODE(mode))
        if stat_mod.S_ISREG(mode):
            return Stat("file", st.st_size, None, stat_mod.S_IMODE(mode))
        return Stat("other", 0, None, stat_mod.S_IMODE(mode))

    def listdir(self, path: str) -> list[str]:
        try:
            return sorted(os.listdir(self._host(path)))
        except OSError:
            return []

    def read_small(self, path: str, limit: int = SMALL_LIMIT) -> bytes | None:
        host = self._host(path)
        if os.path.islink(host) or not os.path.isfile(host):
            return None
        try:
            with open(host, "rb") as fh:
                return fh.read(limit)
        except OSError:
            return None

    def elf(self, path: str) -> ElfInfo | None:
        if path in self._elf:
            return self._elf[path]
        host = self._host(path)
        info = None
        if not os.path.islink(host) and os.path.isfile(host):
            try:
                with open(host, "rb") as fh:
                    info = read_elf(fh)
            except OSError:
                info = None
        self._elf[path] = info
        return info


_LOADER_NAME = re.compile(r"^(ld-linux[\w.-]*\.so\.\d+|ld64\.so\.\d+|ld\.so\.\d+|ld-\d[\d.]*\.so|ld-musl-[\w-]+\.so\.1)$")
SCRIPT_HEAD = 1024
ETC_LIMIT = 1 << 20
# The files under /etc the loader and ldconfig read, kept whole (any other file: its #! head only), and
# the most kept in all, so a layer of thousands of /etc files cannot hold the run's memory.
_LOADER_ETC = re.compile(r"^etc/(ld\.so\.conf(\.d/.+)?|ld\.so\.cache|ld\.so\.preload|nsswitch\.conf"
                         r"|ld-musl-[^/]+\.path|ld\.so\.conf\.d)$")
SMALL_BUDGET = 64 << 20
OTHER_ETC_BUDGET = 16 << 20


class ElfCollector:
    """A ``walk_image`` visitor: ELF facts of every regular file, and the small files the loader reads.

    It must come last among the visitors that read bodies: of a large ELF file it reads the bytes it
    needs forward and passes over the rest without keeping it (``bilge.deps.lazyelf.capture_entry``).

    Keyed by (layer index, path): afterwards :meth:`view` picks the version visible in the merged
    filesystem, so a library replaced or deleted by a later layer is never used.
    """

    def __init__(self) -> None:
        # the bytes read_elf needs, parsed when the closure asks for the file (see bilge.deps.lazyelf)
        self.elf = LazyElfTable()
        self.small: dict[tuple[int, str], bytes] = {}
        self.small_bytes = 0
        self.other_bytes = 0
        self.elf_files = 0
        self.elf_bytes = 0
        # the capture of a whole body by (size, first 64 bytes): a later copy of the body (a COPY --from,
        # a layer that chmods or rewrites it) is recognised by comparing the kept bytes, not read again
        self._captured: dict[tuple[int, bytes], Capture] = {}

    def _keep(self, key: tuple[int, str], data: bytes, loader: bool) -> None:
        if not loader:  # another /etc file (an include may name it): kept while OTHER_ETC_BUDGET lasts
            if self.other_bytes + len(data) <= OTHER_ETC_BUDGET:
                self.other_bytes += len(data)
                self.small[key] = data
            return
        self.small_bytes += len(data)
        if self.small_bytes > SMALL_BUDGET:
            raise BilgeError(f"the image holds more than {SMALL_BUDGET >> 20} MiB of dynamic-loader configuration "
                             f"under /etc (at {key[1]} in layer {key[0]}); not read")
        self.small[key] = data

    def __call__(self, layer, entry) -> None:  # (bilge.image.Layer, bilge.layers.Entry)
        if entry.type != "file" or entry.unsafe or entry.whiteout is not None or entry.size < 4:
            if entry.type == "file" and entry.path.startswith("etc/") and not entry.unsafe:
                self._keep((layer.index, entry.path), entry.read(-1) if entry.size else b"",
                           bool(_LOADER_ETC.match(entry.path)))
            return
        key = (layer.index, entry.path)
        size = entry.size
        data = entry_head(entry)  # the whole body when it is small, else its head
        head = data[:4]
        if head == b"\x7fELF":
            self.elf_files += 1
            self.elf_bytes += size
            if _LOADER_NAME.match(posixpath.basename(entry.path)) and size <= LOADER_LIMIT:
                self.small[key] = entry.read(-1)  # (before the capture, which may pass over the body)
            if len(data) == size:
                sig = (size, data[:64])
                info = self._captured.get(sig)
                if info is None or not info.matches(data):
                    info = capture_entry(entry, data)
                    if isinstance(info, Capture):
                        self._captured[sig] = info
            else:
                info = capture_entry(entry, data)
            if info is not None:
                self.elf[key] = info
        elif not entry.path.startswith("etc/"):  # (every _LOADER_ETC path is under etc/)
            if head[:2] == b"#!":
                self.small[key] = data[:SCRIPT_HEAD]
        elif _LOADER_ETC.match(entry.path) and entry.size <= ETC_LIMIT:
            self._keep(key, entry.read(-1), True)
        elif entry.size <= ETC_LIMIT and self.other_bytes + entry.size <= OTHER_ETC_BUDGET and head[:2] != b"#!":
            self._keep(key, entry.read(-1), False)
        elif head[:2] == b"#!":
            self.small[key] = data[:SCRIPT_HEAD]

    def view(self, fs) -> ImageView:  # fs: bilge.fs.MergedFS
        return ImageView(fs, self.elf, self.small)


class ImageView:
    """A :class:`View` of an image's merged filesystem (see :class:`ElfCollector`)."""

    def __init__(self, fs, elf: Mapping[tuple[int, str], ElfInfo], small: Mapping[tuple[int, str], bytes]) -> None:
        self.fs = fs
        self._elf = elf
        self._small = small
        self._moved: dict[tuple[int, str], tuple[int, str]] | None = None

    def _find(self, table: Mapping[tuple[int, str], object], key: tuple[int, str]):
        hit = table.get(key)
        if hit is not None:
            return hit
        if self._moved is None:
            # Entries written through a symlinked parent directory land elsewhere in the merged
            # filesystem than their tar name says: map those once, by where the parent resolves now.
            self._moved = {}
            for layer, path in list(self._elf) + list(self._small):
                if self.fs.version_at(path, layer) is None:
                    parent, _, name = path.rpartition("/")
                    real = self.fs.resolve(parent) if parent else ""
                    if real is not None:
                        self._moved[(layer, f"{real}/{name}" if real else name)] = (layer, path)
        alias = self._moved.get(key)
        return table.get(alias) if alias is not None else None

    def _body(self, path: str):
        v = self.fs.lookup(path)
        if v is None or v.kind not in ("file", "hardlink") or v.body is None:
            return None
        return v.body

    def _key(self, body) -> tuple[int, str]:
        return (body.layer, body.path)

    def lstat(self, path: str) -> Stat | None:
        v = self.fs.lookup(path)
        if v is None:
            return None
        if v.kind == "symlink":
            return Stat("symlink", 0, v.linkname, v.mode)
        if v.kind == "dir":
            return Stat("dir", 0, None, v.mode)
        if v.kind in ("file", "hardlink"):
            body = v.body
            if body is None:
                return Stat("other", 0, None, v.mode)
            return Stat("file", body.size, None, v.mode)
        return Stat("other", 0, None, v.mode)

    def listdir(self, path: str) -> list[str]:
        return self.fs.listdir(path)

    def read_small(self, path: str, limit: int = SMALL_LIMIT) -> bytes | None:
        body = self._body(path)
        if body is None:
            return None
        data = self._find(self._small, self._key(body))
        if data is None:
            if body.size == 0:
                return b""
            return None
        return data[:limit]

    def elf(self, path: str) -> ElfInfo | None:
        body = self._body(path)
        if body is None:
            return None
        return self._find(self._elf, self._key(body))


def image_view(src: ImageSource, *, progress=None) -> tuple[ImageView, ElfCollector]:
    """One pass over the layers of an opened image (``bilge.source.open_image``): the view and its counts."""
    from bilge.fs import walk_image

    collector = ElfCollector()
    fs = walk_image(src, visitors=[collector], progress=progress)
    return collector.view(fs), collector
