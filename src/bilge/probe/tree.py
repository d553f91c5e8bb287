"""The materialised tree as a source: for the library closure (:class:`TreeView`) and for the slim
layer's file bodies (:func:`tree_members`), so ``slim --probe`` reads the image's layers only once.

Every file is opened component by component with ``O_NOFOLLOW`` (:func:`open_image_file`): a symlink
in the tree is never followed on the host.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from bilge.deps.view import SMALL_LIMIT, ImageView
from bilge.elf import ElfInfo, read_elf
from bilge.errors import BilgeError
from bilge.probe.materialise import open_image_file

if TYPE_CHECKING:
    from bilge.fs import MergedFS, Version
    from bilge.rewrite.squash import ReadFS, SquashCounts, SquashPlan
    from bilge.sink.layer import Body, Member




class TreeView(ImageView):
    """An :class:`~bilge.deps.view.ImageView` whose contents come from the materialised tree, read
    when the resolver asks (a handful of programs and libraries) instead of every ELF file of the
    image being parsed during the read."""

    def __init__(self, fs: MergedFS, rootfs: Path) -> None:
        super().__init__(fs, {}, {})
        self.rootfs = rootfs
        self._elf_cache: dict[str, ElfInfo | None] = {}

    def read_small(self, path: str, limit: int = SMALL_LIMIT) -> bytes | None:
        if self._body(path) is None:
            return None
        fh = open_image_file(self.rootfs, path)
        if fh is None:
            return None
        with fh:
            return fh.read(limit)

    def elf(self, path: str) -> ElfInfo | None:
        key = path.strip("/")
        if key in self._elf_cache:
            return self._elf_cache[key]
        info = None
        if self._body(path) is not None:
            fh = open_image_file(self.rootfs, path)
            if fh is not None:
                with fh:
                    if fh.read(4) == b"\x7fELF":
                        fh.seek(0)
                        info = read_elf(fh)
        self._elf_cache[key] = info
        return info


def tree_members(read: ReadFS, plan: SquashPlan, rootfs: Path, counts: SquashCounts,
                 extras: dict[int, tuple[int, int, tuple[tuple[str, bytes], ...]]], *,
                 clamp: int | None = None) -> Iterator[tuple[Member, Body]]:
    """What :func:`bilge.rewrite.squash.squash_members` yields, in the same order, with the regular
    files' bodies read from the materialised tree instead of the layers (the metadata from the merged
    filesystem; device numbers and extended attributes as the read recorded them). A file that is not
    in the tree as the read wrote it (kind or size) stops the write."""
    from bilge.rewrite.squash import dir_and_whiteout_members
    from bilge.sink.layer import Member

    yield from dir_and_whiteout_members(read, plan, counts, clamp)
    by_key: dict[tuple[int, int], Version] = {}
    for _path, v in read.fs.all_versions():
        k = read.ordinal.get(id(v))
        if k is not None and k in plan.wants.get(v.layer, ()):
            by_key[(v.layer, k)] = v
    for index in sorted(plan.wants):
        for k, want in sorted(plan.wants[index].items()):
            v = by_key.get((index, k))
            if v is None or v.kind != want.kind or v.size != want.size:
                raise BilgeError(f"layer {index}: entry {k} (/{want.path}) is not the one the read saw")
            major, minor, xattrs = extras.get(id(v), (0, 0, ()))
            member = Member(want.path, v.kind, v.mode, v.uid, v.gid, int(v.mtime), v.size if v.kind == "file" else 0,
                            v.linkname if v.kind == "symlink" else "", major, minor, xattrs)
            if v.kind != "file":
                if v.kind == "symlink":
                    counts.symlinks += 1
                else:
                    counts.other += 1
                yield member, None
                continue
            fh = open_image_file(rootfs, want.path)
            if fh is None or os.fstat(fh.fileno()).st_size != v.size:
                if fh is not None:
                    fh.close()
                raise BilgeError(f"/{want.path}: not in the materialised filesystem as the read wrote it")
            counts.files += 1
            counts.body_bytes += v.size
            with fh:
                yield member, fh
    for v, anchor in plan.hardlinks:
        counts.hardlinks += 1
        yield Member(v.path, "hardlink", v.mode, v.uid, v.gid, int(v.mtime), linkname=anchor), None
