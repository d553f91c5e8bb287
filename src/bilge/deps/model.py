"""The result of a closure (:class:`DepsResult` and its parts) and the resolver's internal records."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from bilge.deps.tree import Resolved
from bilge.elf import ElfInfo


@dataclass(frozen=True)
class Edge:
    name: str  # the DT_NEEDED string (or the dlopen name / interpreter path)
    target: str | None  # canonical path of the object it resolved to; None when missing
    opened: str | None  # the path the loader opens (may go through symlinks)
    via: str  # "rpath" "ld_library_path" "runpath" "ld.so.cache" "default" "ld.so.conf" "loaded" "interp" "path" "musl-path" ...
    note: str | None = None
    likely: bool = False  # a dlopen'ed "likely needed" load (NSS, gconv, libgcc_s), not a DT_NEEDED


@dataclass(frozen=True)
class Root:
    path: str  # as asked for (or found)
    canonical: str
    kind: str  # "elf" | "static" | "script"
    origin: str  # "binary" | "path" | "entrypoint" | "interpreter"
    interpreter: str | None = None  # for scripts: the #! program; for ELF: PT_INTERP
    flavor: str | None = None  # "glibc" | "musl" | None (static)


@dataclass(frozen=True)
class DepFile:
    path: str  # canonical location in the image
    kind: str  # "file" | "symlink"
    size: int
    role: str  # "root" | "needed" | "interp" | "likely" | "hwcaps" | "link"
    needed_by: tuple[str, ...] = ()
    target: str | None = None  # symlink target as stored
    reason: str | None = None  # why a "likely" file is included
    elf: str | None = None  # "ELF64 x86-64 LE" for ELF files


@dataclass(frozen=True)
class Missing:
    soname: str
    needed_by: tuple[str, ...]
    reason: str | None = None


@dataclass(frozen=True)
class Likely:
    path: str
    reason: str
    present: bool = True


@dataclass(frozen=True)
class DirStat:
    """A library tree of the image against the part of it the closure needs."""

    path: str
    bytes: int  # regular files under it
    files: int
    needed_bytes: int  # closure files under it, "likely needed" ones left out
    needed_files: int
    likely_bytes: int = 0  # "likely needed" files under it
    likely_files: int = 0


@dataclass(frozen=True)
class DepsResult:
    roots: tuple[Root, ...]
    files: tuple[DepFile, ...]
    missing: tuple[Missing, ...]
    likely: tuple[Likely, ...]
    trees: Mapping[str, Mapping[str, tuple[Edge, ...]]]  # root canonical -> object -> its edges
    notes: tuple[str, ...]
    dirs: tuple[DirStat, ...]
    strict: bool = False

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files if f.kind == "file")

    @property
    def file_count(self) -> int:
        return sum(1 for f in self.files if f.kind == "file")

    @property
    def link_count(self) -> int:
        return sum(1 for f in self.files if f.kind == "symlink")


@dataclass(eq=False)
class _Obj:
    path: str  # canonical
    opened: str  # the name it was opened under (for $ORIGIN of libraries)
    info: ElfInfo
    loader: _Obj | None
    names: set[str] = field(default_factory=set)
    origin: str = "/"
    _rpath: list[str] | None = None
    _runpath: list[str] | None = None


@dataclass(frozen=True)
class _Found:
    opened: str
    res: Resolved
    info: ElfInfo | None
    via: str
    variants: tuple[tuple[str, Resolved, ElfInfo], ...] = ()
    note: str | None = None


@dataclass(frozen=True)
class _Fail:
    reason: str | None  # None: simply not found
