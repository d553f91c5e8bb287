"""The shared-library closure of programs inside an image, resolved as the image's own loader would.

Everything here works on a small read-only :class:`View` of a root filesystem: ``lstat``, ``listdir``,
``read_small`` and ``elf``. :class:`DirView` reads a real directory (tests, unpacked rootfs);
``ImageView`` (see :func:`image_view`) is built from one pass over an image's layers.

Paths handed to a view are absolute, inside the image ("/usr/lib/x86_64-linux-gnu/libc.so.6"), and
their parent directories are always already resolved (no symlink in the parent part): symlinks are
followed only here, component by component, like the kernel does, confined to the image root.

Loader rules implemented (see docs/deps.md for the sources):

glibc (``_dl_map_object``): a DT_NEEDED name containing "/" is opened as a path; otherwise an object
already loaded under that name or SONAME is reused; else ``DT_RPATH`` of the requesting object and of
each object up its loading chain (only when the requester has no ``DT_RUNPATH``; an object's RPATH is
ignored when it has a RUNPATH), ``LD_LIBRARY_PATH`` (image ENV), the requester's ``DT_RUNPATH``,
``/etc/ld.so.cache`` (not with ``DF_1_NODEFLIB`` for entries in system directories), then the system
directories compiled into the image's loader (not with ``DF_1_NODEFLIB``). ``glibc-hwcaps/<level>``
subdirectories of every searched directory are looked at first. ``$ORIGIN``, ``$LIB``, ``$PLATFORM``
are expanded; ``$PLATFORM`` to every string the loader may use on the architecture (on x86-64 glibc
picks ``haswell`` or ``xeon_phi`` over ``x86_64`` by CPU), generic first. A candidate of the wrong ELF class or machine is skipped; a non-ELF file, wrong byte order
or OS/ABI stops the search with an error, as in ``open_verify``.

musl (``load_library``): the reserved names (libc, libpthread, librt, libm, libdl, libutil, libxnet)
are the loader itself; ``LD_LIBRARY_PATH``; the RUNPATH-or-RPATH of the requester and of every object up
its loading chain (``$ORIGIN`` only); ``/etc/ld-musl-$ARCH.path`` (relative to the loader's prefix) or
``/lib:/usr/local/lib:/usr/lib``. musl opens the first file found, whatever its architecture.
"""

from __future__ import annotations

import fnmatch
import os
import posixpath
import re
import shlex
import stat as stat_mod
import struct
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from bilge.elf import LINUX_OSABIS, ElfInfo, incompatibility, read_elf
from bilge.errors import BilgeError

if TYPE_CHECKING:
    from bilge.source.base import ImageSource

PATH_MAX = 4096  # longer paths fail with ENAMETOOLONG
SMALL_LIMIT = 1 << 20  # read_small() default: config files, script heads
LOADER_LIMIT = 8 << 20  # the dynamic loader is read whole to find its compiled-in search path
MAX_SYMLINKS = 40  # Linux' limit per path lookup
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
SHELLS = frozenset({"sh", "bash", "dash", "ash", "zsh", "ksh", "busybox"})


# --------------------------------------------------------------------------------------------------
# The view protocol


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


# --------------------------------------------------------------------------------------------------
# Path resolution inside the root


@dataclass(frozen=True)
class Resolved:
    path: str  # canonical path of what the name leads to (every component resolved)
    kind: str  # "file" | "dir" | "other" | "missing" | "loop"
    links: tuple[str, ...] = ()  # canonical locations of every symlink followed, in order


def _join(parent: str, name: str) -> str:
    return "/" + name if parent == "/" else parent + "/" + name


class Tree:
    """Symlink resolution over a view, confined to the root, with caches."""

    def __init__(self, view: View) -> None:
        self.view = view
        self._stat: dict[str, Stat | None] = {}
        self._memo: dict[str, Resolved] = {}

    def lstat(self, path: str) -> Stat | None:
        try:
            return self._stat[path]
        except KeyError:
            st = self._stat[path] = self.view.lstat(path)
            return st

    def resolve(self, path: str, cwd: str = "/") -> Resolved:
        """Follow ``path`` like the kernel (``..`` after a symlink is taken from its target)."""
        if not path.startswith("/"):
            path = _join(cwd if cwd.startswith("/") else "/" + cwd, path)
        return self._resolve(path, 0)

    def _resolve(self, path: str, depth: int) -> Resolved:
        """One step per path component, in a loop (a path of 100,000 components costs no recursion);
        only a symlink recurses, at most MAX_SYMLINKS deep."""
        hit = self._memo.get(path)
        if hit is not None:
            return hit
        if depth > MAX_SYMLINKS:
            return Resolved(path, "loop")
        stripped = path.rstrip("/")
        if not stripped:
            return Resolved("/", "dir")
        if len(stripped) >= PATH_MAX:  # the kernel refuses it (ENAMETOOLONG)
            return Resolved(path, "missing")
        names = [c for c in stripped.split("/") if c]
        keys: list[str] = []
        key = ""
        for name in names:
            key += "/" + name
            keys.append(key)
        start, parent = 0, Resolved("/", "dir")
        for i in range(len(keys) - 1, -1, -1):
            memo = self._memo.get(keys[i])
            if memo is not None:
                start, parent = i + 1, memo
                break
        for i in range(start, len(names)):
            parent = self._step(parent, names[i], depth)
            if parent.kind != "loop":
                self._memo[keys[i]] = parent
        if parent.kind != "loop":
            self._memo[path] = parent
        return parent

    def _step(self, parent: Resolved, name: str, depth: int) -> Resolved:
        if parent.kind != "dir":
            return Resolved(_join(parent.path, name), "missing" if parent.kind != "loop" else "loop", parent.links)
        if name in ("", "."):
            return parent
        if name == "..":
            return Resolved(posixpath.dirname(parent.path) or "/", "dir", parent.links)
        p = _join(parent.path, name)
        st = self.lstat(p)
        if st is None:
            return Resolved(p, "missing", parent.links)
        if st.kind == "symlink":
            target = st.linkname or ""
            nxt = target if target.startswith("/") else _join(parent.path, target)
            sub = self._resolve(nxt, depth + 1) if target else Resolved(p, "missing")
            return Resolved(sub.path, sub.kind, parent.links + (p,) + sub.links)
        return Resolved(p, st.kind, parent.links)

    def walk_files(self, top: str) -> Iterator[str]:
        """Every regular file under the canonical directory ``top`` (symlinks not followed), sorted."""
        stack = [top]
        while stack:
            d = stack.pop()
            names = self.view.listdir(d)
            subdirs = []
            for name in names:
                p = _join(d, name)
                st = self.lstat(p)
                if st is None:
                    continue
                if st.kind == "dir":
                    subdirs.append(p)
                elif st.kind == "file":
                    yield p
            stack.extend(reversed(subdirs))

    def du(self, top: str) -> tuple[int, int]:
        """(bytes, regular files) under the canonical directory ``top``."""
        total = count = 0
        for p in self.walk_files(top):
            st = self.lstat(p)
            total += st.size if st else 0
            count += 1
        return total, count

    def glob(self, pattern: str) -> list[str]:
        """glob(3) over the view (sorted, "*" does not match a leading dot), paths as written."""
        parts = [p for p in pattern.split("/") if p]
        results = ["/"]
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            nxt: list[str] = []
            for base in results:
                if not any(ch in part for ch in "*?["):
                    cand = _join(base, part)
                    r = self.resolve(cand)
                    if r.kind == "dir" or (last and r.kind != "missing" and r.kind != "loop"):
                        nxt.append(cand)
                    continue
                r = self.resolve(base)
                if r.kind != "dir":
                    continue
                for name in self.view.listdir(r.path):
                    if name.startswith(".") and not part.startswith("."):
                        continue
                    if fnmatch.fnmatchcase(name, part):
                        cand = _join(base, name)
                        rr = self.resolve(cand)
                        if rr.kind == "dir" or (last and rr.kind not in ("missing", "loop")):
                            nxt.append(cand)
            results = sorted(nxt)
        return results if parts else []


# --------------------------------------------------------------------------------------------------
# Loader configuration read from the image

_MULTIARCH = {
    ("EM_X86_64", 64): "x86_64-linux-gnu",
    ("EM_X86_64", 32): "x86_64-linux-gnux32",
    ("EM_386", 32): "i386-linux-gnu",
    ("EM_AARCH64", 64): "aarch64-linux-gnu",
    ("EM_PPC64", 64): "powerpc64le-linux-gnu",
    ("EM_S390", 64): "s390x-linux-gnu",
    ("EM_RISCV", 64): "riscv64-linux-gnu",
    ("EM_MIPS", 64): "mips64el-linux-gnuabi64",
    ("EM_LOONGARCH", 64): "loongarch64-linux-gnu",
}
# What $PLATFORM may expand to, generic first. The kernel's AT_PLATFORM names the architecture, but
# glibc's x86 loader replaces it by "haswell" (AVX2, BMI1/2, LZCNT, MOVBE, POPCNT) or "xeon_phi"
# (AVX512ER) on CPUs that have those features (sysdeps/x86/cpu-features.c), so which directory a
# $PLATFORM path names depends on the CPU the container runs on: bilge searches every candidate.
_PLATFORMS = {"EM_X86_64": ("x86_64", "haswell", "xeon_phi"), "EM_386": ("i686",), "EM_AARCH64": ("aarch64",),
              "EM_PPC64": ("powerpc64le",), "EM_S390": ("s390x",), "EM_RISCV": ("riscv64",), "EM_ARM": ("v7l",),
              "EM_LOONGARCH": ("loongarch64",)}
_HWCAPS = {"EM_X86_64": ("x86-64-v4", "x86-64-v3", "x86-64-v2"), "EM_PPC64": ("power10", "power9"),
           "EM_S390": ("z16", "z15", "z14", "z13")}
_GLIBC_INTERP = {
    ("EM_X86_64", 64): "/lib64/ld-linux-x86-64.so.2",
    ("EM_X86_64", 32): "/libx32/ld-linux-x32.so.2",
    ("EM_386", 32): "/lib/ld-linux.so.2",
    ("EM_AARCH64", 64): "/lib/ld-linux-aarch64.so.1",
    ("EM_PPC64", 64): "/lib64/ld64.so.2",
    ("EM_S390", 64): "/lib/ld64.so.1",
    ("EM_RISCV", 64): "/lib/ld-linux-riscv64-lp64d.so.1",
    ("EM_LOONGARCH", 64): "/lib64/ld-linux-loongarch-lp64d.so.1",
}
_MUSL_ARCH = {("EM_X86_64", 64): "x86_64", ("EM_386", 32): "i386", ("EM_AARCH64", 64): "aarch64",
              ("EM_PPC64", 64): "powerpc64le", ("EM_S390", 64): "s390x", ("EM_RISCV", 64): "riscv64",
              ("EM_LOONGARCH", 64): "loongarch64"}
_MUSL_RESERVED = ("c.", "pthread.", "rt.", "m.", "dl.", "util.", "xnet.")


def _arch_key(info: ElfInfo) -> tuple[str | int, int]:
    return (info.machine, info.elf_class)


def _musl_arch(info: ElfInfo) -> str | None:
    if info.machine == "EM_ARM":
        return "armhf" if info.flags & 0x400 else "arm"
    return _MUSL_ARCH.get(_arch_key(info))


def is_musl_interp(interp: str | None) -> bool:
    return bool(interp) and posixpath.basename(interp or "").startswith("ld-musl-")


def parse_ld_so_conf(tree: Tree, path: str = "/etc/ld.so.conf", _seen: set[str] | None = None) -> list[str]:
    """Directories listed by ldconfig's configuration, includes (globs, sorted) expanded in place.

    Includes are followed with an explicit stack, not recursion: a chain of 10,000 includes costs
    10,000 steps; a file already read is not read again (include loops)."""
    seen = _seen if _seen is not None else set()
    dirs: list[str] = []
    # frames: (file, its remaining lines) or ("", the remaining files of one include line)
    stack: list[tuple[str, Iterator[str]]] = []

    def enter(conf: str) -> None:
        r = tree.resolve(conf)
        if r.kind != "file" or r.path in seen:
            return
        seen.add(r.path)
        data = tree.view.read_small(r.path)
        if data is not None:
            stack.append((conf, iter(data.decode("utf-8", "surrogateescape").splitlines())))

    enter(path)
    while stack:
        conf, items = stack[-1]
        item = next(items, None)
        if item is None:
            stack.pop()
            continue
        if not conf:  # the next file of an include line, read in place
            enter(item)
            continue
        line = item.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("include") and line[7:8] in (" ", "\t"):
            found: list[str] = []
            for pattern in line[8:].split():
                if not pattern.startswith("/"):
                    pattern = _join(posixpath.dirname(conf), pattern)
                found += tree.glob(pattern)
            stack.append(("", iter(found)))
        elif line[:5].lower() == "hwcap" and line[5:6] in (" ", "\t"):
            continue
        else:
            d = line.rstrip("/") or "/"
            if "=" in d:  # libc5-era "dir=TYPE"
                d = d.split("=", 1)[0].rstrip() or d
            dirs.append(d)
    return list(dict.fromkeys(dirs))


@dataclass(frozen=True)
class CacheEntry:
    key: str
    path: str
    flags: int
    hwcap: str | None  # glibc-hwcaps subdirectory (or a legacy hwcap mask as text), None for plain


def parse_ld_so_cache(data: bytes) -> list[CacheEntry] | None:
    """Entries of /etc/ld.so.cache (new "glibc-ld.so.cache1.1" format, or old "ld.so-1.7.0"); None if invalid.

    Counts and offsets come from the file: any that point past its end make the cache invalid."""
    try:
        return _parse_ld_so_cache(data)
    except (struct.error, IndexError, ValueError):
        return None


def _parse_ld_so_cache(data: bytes) -> list[CacheEntry] | None:
    new_magic = b"glibc-ld.so.cache1.1"
    base = 0
    if data.startswith(b"ld.so-1.7.0"):
        if len(data) < 16:
            return None
        (nlibs,) = struct.unpack_from("<I", data, 12)
        end_old = 16 + nlibs * 12
        if end_old > len(data):
            return None
        base = (end_old + 7) & ~7
        if data[base : base + len(new_magic)] != new_magic:
            # Old format only: offsets count from the end of the entries.
            entries = []
            for i in range(nlibs):
                flags, key, value = struct.unpack_from("<iII", data, 16 + i * 12)
                entries.append(CacheEntry(_cstr(data, end_old + key), _cstr(data, end_old + value), flags, None))
            return entries
    elif not data.startswith(new_magic):
        return None
    if len(data) < base + 48:
        return None
    endian_flag = data[base + 28] & 3
    order = ">" if endian_flag == 3 else "<"
    nlibs, _len_strings = struct.unpack_from(order + "II", data, base + 20)
    (ext_off,) = struct.unpack_from(order + "I", data, base + 32)
    hwcap_names: list[str] = []
    if ext_off and ext_off + 8 <= len(data):
        magic, count = struct.unpack_from(order + "II", data, ext_off)
        if magic == (-358342284) & 0xFFFFFFFF:
            if ext_off + 8 + count * 16 > len(data):
                return None
            for i in range(count):
                tag, _fl, off, size = struct.unpack_from(order + "IIII", data, ext_off + 8 + i * 16)
                if tag == 1 and off + size <= len(data):
                    for j in range(size // 4):
                        (sidx,) = struct.unpack_from(order + "I", data, off + 4 * j)
                        hwcap_names.append(_cstr(data, base + sidx))
    if base + 48 + nlibs * 24 > len(data):
        return None
    entries = []
    for i in range(nlibs):
        off = base + 48 + i * 24
        if off + 24 > len(data):
            return None
        flags, key, value, _osv, hwcap = struct.unpack_from(order + "iIIIQ", data, off)
        sub: str | None = None
        if hwcap:
            if (hwcap >> 32) & ~((1 << 10) - 1) == (1 << 62) >> 32:
                idx = hwcap & 0xFFFFFFFF
                sub = hwcap_names[idx] if idx < len(hwcap_names) else f"hwcaps#{idx}"
            else:
                sub = f"hwcap:{hwcap:#x}"
        entries.append(CacheEntry(_cstr(data, base + key), _cstr(data, base + value), flags, sub))
    return entries


def _cstr(data: bytes, off: int) -> str:
    end = data.find(b"\0", off)
    return data[off : end if end >= 0 else len(data)].decode("utf-8", "surrogateescape")


def parse_nsswitch(data: bytes | None) -> list[tuple[str, str]]:
    """(database, service) pairs in file order; glibc's built-in defaults when there is no file."""
    if data is None:
        return [("hosts", "dns"), ("hosts", "files")] + [
            (db, "files") for db in ("passwd", "group", "shadow", "networks", "protocols", "services")
        ]
    out: list[tuple[str, str]] = []
    for raw in data.decode("utf-8", "surrogateescape").splitlines():
        line = raw.split("#", 1)[0].strip()
        if ":" not in line:
            continue
        db, _, rest = line.partition(":")
        rest = re.sub(r"\[[^\]]*\]", " ", rest)
        for svc in rest.split():
            out.append((db.strip(), svc))
    return out


def loader_search_info(data: bytes | None) -> tuple[list[str] | None, str | None]:
    """(system directories, $LIB) compiled into a glibc loader, read from its bytes; None when unknown."""
    if not data:
        return None, None
    dirs = None
    for m in re.finditer(rb"(?:/[\x21-\x7e]*/\x00){2,}", data):
        items = [s.decode() for s in m.group().split(b"\0") if s]
        if any(s.rstrip("/").endswith("lib") or "/lib" in s for s in items):
            dirs = [s.rstrip("/") or "/" for s in items]
            break
    lib = None
    m2 = re.search(rb"\x00ORIGIN\x00PLATFORM\x00LIB\x00([\x21-\x7e]+)\x00", data)
    if m2:
        lib = m2.group(1).decode()
    elif dirs:
        lib = dirs[0].strip("/")
    return dirs, lib


# --------------------------------------------------------------------------------------------------
# Results


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


# --------------------------------------------------------------------------------------------------
# The resolver


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


_DST_RE = re.compile(r"\$(?:\{(ORIGIN|PLATFORM|LIB)\}|(ORIGIN|PLATFORM|LIB)(?=/|$))")


class Resolver:
    """Computes closures over one view. Create once per image; :meth:`closure` per set of roots."""

    def __init__(self, view: View, env: Mapping[str, str] | None = None, workdir: str = "/") -> None:
        self.view = view
        self.tree = Tree(view)
        self.env = dict(env or {})
        self.cwd = workdir if workdir.startswith("/") else "/" + workdir
        self._conf_dirs: list[str] | None = None
        self._cache: list[CacheEntry] | None | bool = False  # False: not read yet
        self._cache_by_key: dict[str, list[CacheEntry]] = {}
        self._loader_info: dict[str, tuple[list[str] | None, str | None]] = {}
        self._search_memo: dict[tuple, tuple[_Found | _Fail | None, list[str]]] = {}
        self._musl_path: dict[str, list[str]] = {}
        self._bundles: set[tuple] = set()
        self.notes: list[str] = []
        self._note_set: set[str] = set()

    # -- helpers ---------------------------------------------------------------------------------

    def note(self, text: str) -> None:
        if text not in self._note_set:
            self._note_set.add(text)
            self.notes.append(text)

    def elf_at(self, canonical: str) -> ElfInfo | None:
        return self.view.elf(canonical)

    def conf_dirs(self) -> list[str]:
        if self._conf_dirs is None:
            self._conf_dirs = parse_ld_so_conf(self.tree)
        return self._conf_dirs

    def cache(self) -> list[CacheEntry] | None:
        if self._cache is False:
            r = self.tree.resolve("/etc/ld.so.cache")
            data = self.view.read_small(r.path, 64 << 20) if r.kind == "file" else None
            entries = parse_ld_so_cache(data) if data else None
            if data and entries is None:
                self.note("/etc/ld.so.cache is not a cache file bilge can read; ignored")
            self._cache = entries
            for e in entries or []:
                self._cache_by_key.setdefault(e.key, []).append(e)
        return self._cache  # type: ignore[return-value]

    def glibc_loader(self, interp_canonical: str | None, ref: ElfInfo) -> tuple[list[str], str]:
        """System directories and $LIB of the loader (read from it when possible)."""
        key = interp_canonical or ""
        if key not in self._loader_info:
            dirs = lib = None
            if interp_canonical:
                dirs, lib = loader_search_info(self.view.read_small(interp_canonical, LOADER_LIMIT))
            self._loader_info[key] = (dirs, lib)
        dirs, lib = self._loader_info[key]
        if dirs is None:
            triplet = _MULTIARCH.get(_arch_key(ref))
            if triplet and self.tree.resolve(f"/usr/lib/{triplet}").kind == "dir":
                dirs = [f"/lib/{triplet}", f"/usr/lib/{triplet}", "/lib", "/usr/lib"]
            elif ref.elf_class == 64 and self.tree.resolve("/usr/lib64").kind == "dir":
                dirs = ["/lib64", "/usr/lib64"]
            else:
                dirs = ["/lib", "/usr/lib"]
        if lib is None:
            lib = dirs[0].strip("/")
        return dirs, lib

    def default_interp(self, ref: ElfInfo, flavor: str) -> str | None:
        if flavor == "musl":
            arch = _musl_arch(ref)
            return f"/lib/ld-musl-{arch}.so.1" if arch else None
        if ref.machine == "EM_ARM":
            return "/lib/ld-linux-armhf.so.3" if ref.flags & 0x400 else "/lib/ld-linux.so.3"
        return _GLIBC_INTERP.get(_arch_key(ref))

    def musl_sys_path(self, interp: str) -> list[str]:
        if interp not in self._musl_path:
            m = re.match(r"ld-musl-(.+)\.so\.1$", posixpath.basename(interp))
            arch = m.group(1) if m else "unknown"
            # musl: prefix = the loader's path minus its last two components ("/lib/ld-musl..." -> "").
            prefix = posixpath.dirname(posixpath.dirname(interp)) if interp.startswith("/") else ""
            prefix = "" if prefix == "/" else prefix
            conf = f"{prefix}/etc/ld-musl-{arch}.path"
            r = self.tree.resolve(conf)
            if r.kind == "file":
                text = (self.view.read_small(r.path) or b"").decode("utf-8", "surrogateescape")
                dirs = [d for d in re.split(r"[:\n]", text) if d]
            elif r.kind == "missing":
                dirs = ["/lib", "/usr/local/lib", "/usr/lib"]
            else:
                dirs = []
            self._musl_path[interp] = dirs
        return self._musl_path[interp]

    def _expand(self, text: str, origin: str, lib: str, platforms: tuple[str, ...]) -> list[str]:
        """Every expansion of ``text``: one per candidate $PLATFORM when it names $PLATFORM, else one."""
        uses_platform = any((m.group(1) or m.group(2)) == "PLATFORM" for m in _DST_RE.finditer(text))
        out: list[str] = []
        for platform in platforms if uses_platform else platforms[:1]:
            def sub(m: re.Match[str], platform: str = platform) -> str:
                name = m.group(1) or m.group(2)
                return {"ORIGIN": origin, "LIB": lib, "PLATFORM": platform}[name]

            expanded = _DST_RE.sub(sub, text)
            if expanded not in out:
                out.append(expanded)
        return out

    def _split_dirs(self, text: str, origin: str, lib: str, platforms: tuple[str, ...],
                    seps: str = ":") -> list[str]:
        out = []
        for item in re.split(f"[{re.escape(seps)}]", text):
            for expanded in self._expand(item, origin, lib, platforms):
                if expanded == "":
                    expanded = self.cwd
                elif not expanded.startswith("/"):
                    expanded = _join(self.cwd, expanded)
                expanded = expanded.rstrip("/") or "/"
                if expanded not in out:
                    out.append(expanded)
        return out

    # -- candidate checks --------------------------------------------------------------------------

    def _glibc_check(self, ref: ElfInfo, cand: str) -> tuple[str, Resolved, ElfInfo | None, str]:
        """("ok"|"absent"|"skip"|"fatal", resolved, info, reason) for one candidate path."""
        res = self.tree.resolve(cand)
        if res.kind == "missing" or res.kind == "loop":
            return "absent", res, None, ""
        if res.kind != "file":  # open() succeeds on a directory, then reading fails: an error
            return "fatal", res, None, f"{cand}: cannot read file data ({res.kind})"
        info = self.elf_at(res.path)
        # The order of glibc's open_verify(): another ELF class is skipped silently; a bad header,
        # byte order or OS/ABI is an error that ends the search; another machine is skipped.
        if info is None:
            return "fatal", res, None, f"{cand}: invalid ELF header"
        if info.elf_class == 0 or info.error:
            return "fatal", res, info, f"{cand}: {info.error}"
        if info.elf_class != ref.elf_class:
            return "skip", res, info, f"{cand}: ELFCLASS{info.elf_class}, need ELFCLASS{ref.elf_class}"
        if info.little_endian != ref.little_endian:
            return "fatal", res, info, f"{cand}: ELF file data encoding not {'little' if ref.little_endian else 'big'}-endian"
        if info.osabi != ref.osabi and not (info.osabi in LINUX_OSABIS and ref.osabi in LINUX_OSABIS):
            return "fatal", res, info, f"{cand}: ELF file OS ABI invalid ({info.osabi})"
        why = incompatibility(ref, info)
        if why:  # another machine (or ARM float ABI): skipped
            return "skip", res, info, f"{cand}: {why}"
        return "ok", res, info, ""

    def _search_dirs_glibc(self, name: str, dirs: Sequence[str], ref: ElfInfo, via: str,
                           hwcaps: Sequence[str], skipped: list[str]) -> _Found | _Fail | None:
        variants: list[tuple[str, Resolved, ElfInfo]] = []
        for d in dirs:
            for sub in hwcaps:
                cand = _join(d, f"glibc-hwcaps/{sub}/{name}")
                verdict, res, info, why = self._glibc_check(ref, cand)
                if verdict == "ok" and info is not None:
                    variants.append((cand, res, info))
                elif verdict == "skip":
                    skipped.append(why)
            cand = _join(d, name)
            verdict, res, info, why = self._glibc_check(ref, cand)
            if verdict == "ok":
                return _Found(cand, res, info, via, tuple(variants))
            if verdict == "skip":
                skipped.append(why)
            elif verdict == "fatal":
                return _Fail(why)
        if variants:  # only CPU-specific builds exist: the loader finds them on capable CPUs only
            cand, res, info = variants[0]
            return _Found(cand, res, info, via, tuple(variants[1:]),
                          note=f"only a glibc-hwcaps build exists ({cand})")
        return None

    # -- glibc search for one name -------------------------------------------------------------------

    def _glibc_find(self, name: str, req: _Obj, main: _Obj, interp: str | None) -> _Found | _Fail:
        ref = main.info
        sysdirs, lib = self.glibc_loader(interp, ref)
        platform = _PLATFORMS.get(str(ref.machine), ("unknown",))
        hwcaps = _HWCAPS.get(str(ref.machine), ())
        skipped: list[str] = []

        if "/" in name:
            why = ""
            for path in self._expand(name, req.origin, lib, platform):
                verdict, res, info, why = self._glibc_check(ref, path)
                if verdict == "ok":
                    return _Found(path, res, info, "path")
                if verdict == "fatal":
                    break
            return _Fail(why or "not found")

        # 1. DT_RPATH of the requester and up its loading chain, unless it has DT_RUNPATH.
        if req.info.runpath is None:
            chain: list[_Obj] = []
            o: _Obj | None = req
            while o is not None:
                chain.append(o)
                o = o.loader
            if main not in chain:
                chain.append(main)
            for o in chain:
                if o.info.rpath is None or o.info.runpath is not None:
                    continue
                if o._rpath is None:
                    o._rpath = self._split_dirs(o.info.rpath, o.origin, lib, platform)
                got = self._memo_search(name, tuple(o._rpath), ref, "rpath", hwcaps, skipped)
                if got is not None:
                    return got
        # 2. LD_LIBRARY_PATH from the image's environment.
        llp = self.env.get("LD_LIBRARY_PATH")
        if llp:
            dirs = self._split_dirs(llp, main.origin, lib, platform, seps=":;")
            got = self._memo_search(name, tuple(dirs), ref, "ld_library_path", hwcaps, skipped)
            if got is not None:
                return got
        # 3. DT_RUNPATH of the requester only.
        if req.info.runpath is not None:
            if req._runpath is None:
                req._runpath = self._split_dirs(req.info.runpath, req.origin, lib, platform)
            got = self._memo_search(name, tuple(req._runpath), ref, "runpath", hwcaps, skipped)
            if got is not None:
                return got
        nodeflib = req.info.nodeflib
        # 4. /etc/ld.so.cache.
        got = self._memo_cache(name, ref, nodeflib, tuple(sysdirs), skipped)
        if got is not None:
            return got
        # 5. The loader's system directories.
        if not nodeflib:
            got = self._memo_search(name, tuple(sysdirs), ref, "default", hwcaps, skipped)
            if got is not None:
                return got
        # 6. Not found by the loader: directories of /etc/ld.so.conf that the cache does not cover.
        conf = [d for d in self.conf_dirs() if d not in sysdirs]
        if conf:
            got = self._memo_search(name, tuple(conf), ref, "ld.so.conf", hwcaps, skipped)
            if isinstance(got, _Found):
                cache = self.cache()
                if cache is None:
                    why = ("the image has no /etc/ld.so.cache, and the loader reads /etc/ld.so.conf only "
                           "through it: run ldconfig in the image")
                else:
                    why = "/etc/ld.so.cache has no entry for it: run ldconfig in the image"
                return _Found(got.opened, got.res, got.info, got.via, got.variants,
                              note=f"found only through /etc/ld.so.conf; {why}")
            if got is not None:
                return got
        if skipped:
            return _Fail("only incompatible files found: " + "; ".join(dict.fromkeys(skipped)))
        return _Fail(None)

    def _memo_search(self, name: str, dirs: tuple[str, ...], ref: ElfInfo, via: str,
                     hwcaps: Sequence[str], skipped: list[str]) -> _Found | _Fail | None:
        key = ("s", name, dirs, _arch_key(ref), ref.flags, via)
        hit = self._search_memo.get(key)
        if hit is None:
            skips: list[str] = []
            hit = self._search_memo[key] = (self._search_dirs_glibc(name, dirs, ref, via, hwcaps, skips), skips)
        skipped.extend(hit[1])
        return hit[0]

    def _memo_cache(self, name: str, ref: ElfInfo, nodeflib: bool, sysdirs: tuple[str, ...],
                    skipped: list[str]) -> _Found | _Fail | None:
        key = ("c", name, _arch_key(ref), ref.flags, nodeflib, sysdirs)
        hit = self._search_memo.get(key)
        if hit is None:
            skips: list[str] = []
            hit = self._search_memo[key] = (self._cache_lookup(name, ref, nodeflib, sysdirs, skips), skips)
        skipped.extend(hit[1])
        return hit[0]

    def _cache_lookup(self, name: str, ref: ElfInfo, nodeflib: bool, sysdirs: Sequence[str],
                      skipped: list[str]) -> _Found | _Fail | None:
        if self.cache() is None:
            return None
        entries = self._cache_by_key.get(name, [])
        variants: list[tuple[str, Resolved, ElfInfo]] = []
        for e in entries:
            if nodeflib and any(e.path.startswith(d.rstrip("/") + "/") for d in sysdirs):
                continue
            verdict, res, info, why = self._glibc_check(ref, e.path)
            if e.hwcap:
                if verdict == "ok" and info is not None:
                    variants.append((e.path, res, info))
                continue
            if verdict == "ok":
                return _Found(e.path, res, info, "ld.so.cache", tuple(variants))
            if verdict == "skip":
                skipped.append(why)
                continue  # an entry for another architecture (multilib cache)
            if verdict == "absent":
                self.note(f"/etc/ld.so.cache lists {e.path} for {e.key}, but it is not in the image (stale cache)")
        if variants:
            cand, res, info = variants[0]
            return _Found(cand, res, info, "ld.so.cache", tuple(variants[1:]),
                          note=f"only a glibc-hwcaps build exists ({cand})")
        return None

    # -- musl search -----------------------------------------------------------------------------------

    def _musl_find(self, name: str, req: _Obj, main: _Obj, interp: str) -> _Found | _Fail:
        ref = main.info

        def first_file(dirs: Iterable[str], via: str) -> _Found | _Fail | None:
            for d in dirs:
                cand = _join(d, name)
                res = self.tree.resolve(cand)
                if res.kind == "file":
                    info = self.elf_at(res.path)
                    if info is None:
                        return _Fail(f"{cand} is not an ELF file (musl opens the first match)")
                    why = incompatibility(ref, info)
                    if why:
                        return _Fail(f"{cand}: {why} (musl opens the first match and does not skip it)")
                    return _Found(cand, res, info, via)
                if res.kind == "dir":
                    return _Fail(f"{cand} is a directory (musl opens the first match)")
            return None

        if "/" in name:
            res = self.tree.resolve(name, self.cwd)
            info = self.elf_at(res.path) if res.kind == "file" else None
            if info is not None and not incompatibility(ref, info):
                return _Found(name, res, info, "path")
            return _Fail(None)
        llp = self.env.get("LD_LIBRARY_PATH")
        if llp:
            got = first_file([d for d in llp.split(":") if d], "ld_library_path")
            if got is not None:
                return got
        o: _Obj | None = req
        while o is not None:
            raw = o.info.runpath if o.info.runpath is not None else o.info.rpath
            if raw:
                expanded = raw.replace("${ORIGIN}", o.origin).replace("$ORIGIN", o.origin)
                got = first_file([d for d in expanded.split(":") if d], "rpath")
                if got is not None:
                    return got
            o = o.loader
        got = first_file(self.musl_sys_path(interp), "musl-path")
        if got is not None:
            return got
        return _Fail(None)

    # -- one root ----------------------------------------------------------------------------------------

    def _flavor(self, info: ElfInfo) -> str:
        if info.interp:
            return "musl" if is_musl_interp(info.interp) else "glibc"
        needed = set(info.needed)
        if "libc.so.6" in needed:
            return "glibc"
        if "libc.so" in needed or any(n.startswith("libc.musl-") for n in needed):
            return "musl"
        for probe in ("/lib64/ld-linux-x86-64.so.2", "/lib/ld-linux-aarch64.so.1", "/lib/ld-linux.so.2"):
            if self.tree.resolve(probe).kind == "file":
                return "glibc"
        arch = _musl_arch(info)
        if arch and self.tree.resolve(f"/lib/ld-musl-{arch}.so.1").kind == "file":
            return "musl"
        return "glibc"

    def root_closure(self, canonical: str, given: str, info: ElfInfo, strict: bool,
                     sink: _Sink) -> str | None:
        """Load one root like the loader would; record every object, link and miss in ``sink``."""
        if not info.interp and not info.needed:
            return None  # static, static-pie, or a shared object that needs nothing (the loader itself)
        flavor = self._flavor(info)
        main = _Obj(canonical, given, info, None, {given},
                    origin=posixpath.dirname(canonical if info.interp else given) or "/")
        s = _Session(self, sink, main, flavor)
        s.start_interp()
        for name in s.preload_names():
            s.load(name, main, "needed")
        s.drain("needed")
        if not strict:
            self._likely(s)
        sink.trees[canonical] = {k: tuple(v) for k, v in s.edges.items() if v}
        return flavor

    def _likely(self, s: _Session) -> None:
        """Files loaded with dlopen that programs commonly need: loader, NSS, libgcc_s, gconv."""
        info, sink, canonical = s.main.info, s.sink, s.main.path
        if not info.interp:  # a shared object: whoever loads it runs the dynamic loader
            ip = self.default_interp(info, s.flavor)
            if ip:
                res = self.tree.resolve(ip)
                if res.kind == "file" and (iinfo := self.elf_at(res.path)) is not None:
                    sink.add_object(res.path, iinfo, "likely", canonical, res.links,
                                    reason="the dynamic loader (this root is a shared object)")
                else:
                    sink.likely_absent(ip, "the dynamic loader (this root is a shared object)", "not in the image")
        if s.flavor != "glibc":
            return
        libc = next((o for o in s.loaded if o.info.soname == "libc.so.6"), None)
        if libc is None:
            return
        others = [o for o in s.loaded if o is not libc]
        gcc_user = next((o.path for o in others if o.info.markers & {"pthread_cancel", "pthread_exit", "backtrace"}),
                        None)
        iconv_user = next((o.path for o in others if "iconv_open" in o.info.markers), None)
        # dlopen from libc searches the RPATH chain up to the program: part of the key
        chain_rpath = None if s.main.info.runpath is not None else s.main.info.rpath
        key = (libc.path, s.interp_canonical, chain_rpath, s.main.origin if chain_rpath else None,
               gcc_user is not None, iconv_user is not None)
        if key in self._bundles:
            return  # the same files were already added to this sink
        self._bundles.add(key)
        sub = _Session(self, sink, s.main, s.flavor, record_edges=False)
        sub.adopt(s)
        builtin = "GLIBC_2.34" in libc.info.markers
        r = self.tree.resolve("/etc/nsswitch.conf")
        data = self.view.read_small(r.path) if r.kind == "file" else None
        services: list[str] = []
        for _db, svc in parse_nsswitch(data):
            if builtin and svc in ("files", "dns"):  # built into libc since glibc 2.34
                continue
            if svc not in services:
                services.append(svc)
        for svc in services:
            sub.load(f"libnss_{svc}.so.2", libc, "likely", f"NSS module for \"{svc}\" in /etc/nsswitch.conf")
        if gcc_user:
            sub.load("libgcc_s.so.1", libc, "likely",
                     "dlopen'ed by glibc to unwind for pthread_cancel/pthread_exit/backtrace, which the program uses")
        if iconv_user:
            reason = "iconv (gconv) modules, dlopen'ed by glibc's iconv_open, which the program uses"
            dirs: list[str] = []
            gp = self.env.get("GCONV_PATH")
            if gp:
                dirs.extend(d for d in gp.split(":") if d.startswith("/"))
            dirs.append(_join(posixpath.dirname(libc.path), "gconv"))
            for d in dirs:
                res = self.tree.resolve(d)
                if res.kind != "dir":
                    continue
                sink.add_links(res.links, canonical, "likely", reason)
                for p in self.tree.walk_files(res.path):
                    ginfo = self.elf_at(p)
                    if ginfo is not None and ginfo.dynamic:
                        sub.load(p, libc, "likely", reason)
                    else:
                        st = self.tree.lstat(p)
                        sink.add_plain(p, st.size if st else 0, "likely", libc.path, reason)
        sub.drain("likely")


class _Session:
    """The state of one program being loaded: objects in load order, names they answer to, edges."""

    def __init__(self, r: Resolver, sink: _Sink, main: _Obj, flavor: str, record_edges: bool = True) -> None:
        self.r = r
        self.sink = sink
        self.main = main
        self.flavor = flavor
        self.loaded: list[_Obj] = [main]
        self.by_name: dict[str, _Obj] = {n: main for n in main.names}
        if flavor == "glibc" and main.info.soname:
            self.by_name.setdefault(main.info.soname, main)
        self.by_path: dict[str, _Obj] = {main.path: main}
        self.edges: dict[str, list[Edge]] = {}
        self.queue: deque[_Obj] = deque([main])
        self.interp: str | None = main.info.interp
        self.interp_obj: _Obj | None = None
        self.interp_canonical: str | None = None
        self.record_edges = record_edges

    def adopt(self, other: _Session) -> None:
        """Start from what ``other`` has loaded (a dlopen happens after the program is loaded)."""
        self.loaded = list(other.loaded)
        self.by_name = dict(other.by_name)
        self.by_path = dict(other.by_path)
        self.interp, self.interp_obj, self.interp_canonical = other.interp, other.interp_obj, other.interp_canonical
        self.queue = deque()

    def _edge(self, req: _Obj, edge: Edge) -> None:
        if self.record_edges:
            self.edges.setdefault(req.path, []).append(edge)

    def _name(self, obj: _Obj, name: str) -> None:
        obj.names.add(name)
        self.by_name.setdefault(name, obj)

    def start_interp(self) -> None:
        r, main, sink = self.r, self.main, self.sink
        interp = self.interp
        if interp:
            res = r.tree.resolve(interp, r.cwd)
            iinfo = r.elf_at(res.path) if res.kind == "file" else None
            if iinfo is None:
                self._edge(main, Edge(interp, None, interp, "interp"))
                sink.miss(interp, main.path, "the program interpreter (PT_INTERP) is not in the image"
                          if res.kind == "missing" else f"{interp} is not a loadable ELF file")
                return
            obj = _Obj(res.path, interp, iinfo, None, set(), origin=posixpath.dirname(interp))
            self._name(obj, interp)
            if iinfo.soname and self.flavor == "glibc":
                self._name(obj, iinfo.soname)
            self.loaded.insert(0, obj)
            self.by_path[res.path] = obj
            self.interp_obj, self.interp_canonical = obj, res.path
            self._edge(main, Edge(interp, res.path, interp, "interp"))
            sink.add_object(res.path, iinfo, "interp", main.path, res.links)
        elif self.flavor == "musl":  # a shared object: musl maps libc's names to the default loader
            self.interp = r.default_interp(main.info, "musl")
            if self.interp:
                res = r.tree.resolve(self.interp)
                if res.kind == "file" and (iinfo := r.elf_at(res.path)) is not None:
                    self.interp_obj = _Obj(res.path, self.interp, iinfo, None, {self.interp},
                                           origin=posixpath.dirname(self.interp))
                    self.by_path[res.path] = self.interp_obj

    def preload_names(self) -> list[str]:
        names: list[str] = []
        if self.flavor != "glibc":
            return names
        lp = self.r.env.get("LD_PRELOAD")
        if lp:
            names.extend(n for n in re.split(r"[ :]", lp) if n)
        res = self.r.tree.resolve("/etc/ld.so.preload")
        if res.kind == "file":
            text = (self.r.view.read_small(res.path) or b"").decode("utf-8", "surrogateescape")
            names.extend(n for n in re.split(r"[\s:]", text) if n)
        return names

    def drain(self, role: str) -> None:
        while self.queue:
            obj = self.queue.popleft()
            for name in obj.info.needed:
                self.load(name, obj, role, f"needed by {obj.path}" if role == "likely" else None)

    def load(self, name: str, req: _Obj, role: str, reason: str | None = None) -> _Obj | None:
        r, sink, flavor = self.r, self.sink, self.flavor
        likely = role == "likely"
        # Already loaded under this name (glibc: or this SONAME, which is in the names too)?
        o = self.by_name.get(name)
        if o is not None:
            self._edge(req, Edge(name, o.path, None, "loaded", likely=likely))
            return o
        if flavor == "musl" and name.startswith("lib") and name[3:].startswith(_MUSL_RESERVED):
            iobj = self.interp_obj
            if iobj is None:
                self._edge(req, Edge(name, None, None, "loader"))
                sink.miss(name, req.path, "musl maps this name to its loader, which is not in the image")
                return None
            self._edge(req, Edge(name, iobj.path, self.interp, "loader", likely=likely))
            if iobj not in self.loaded:
                self.loaded.append(iobj)
                sink.add_object(iobj.path, iobj.info, "needed" if self.main.info.interp else "interp",
                                req.path, r.tree.resolve(iobj.opened).links)
            return iobj
        if flavor == "musl":
            got = r._musl_find(name, req, self.main, self.interp or "/lib/ld-musl.so.1")
        else:
            got = r._glibc_find(name, req, self.main, self.interp_canonical)
        if isinstance(got, _Fail):
            self._edge(req, Edge(name, None, None, "missing", got.reason, likely=likely))
            if likely:
                sink.likely_absent(name, reason or "", got.reason)
            else:
                sink.miss(name, req.path, got.reason)
            return None
        res = got.res
        if got.note:
            r.note(f"{name} (needed by {req.path}): {got.note}")
        self._edge(req, Edge(name, res.path, got.opened, got.via, got.note, likely=likely))
        sink.add_object(res.path, got.info, role, req.path, res.links, reason=reason)
        for vpath, vres, vinfo in got.variants:
            sink.add_object(vres.path, vinfo, "hwcaps" if not likely else "likely", req.path, vres.links,
                            reason=f"CPU-specific build of {name} ({vpath})")
            if vres.path not in self.by_path:
                vobj = _Obj(vres.path, vpath, vinfo, req, {vpath}, origin=posixpath.dirname(vpath))
                self.by_path[vres.path] = vobj
                self.queue.append(vobj)
        obj = self.by_path.get(res.path)
        if obj is not None and obj in self.loaded:  # the same file under another name
            self._name(obj, name)
            return obj
        if obj is None:
            obj = _Obj(res.path, got.opened, got.info or self.main.info, req, set(),
                       origin=posixpath.dirname(got.opened) or "/")
            self.by_path[res.path] = obj
        self._name(obj, name)
        if flavor == "glibc" and obj.info.soname:
            self._name(obj, obj.info.soname)
        self.loaded.append(obj)
        self.queue.append(obj)
        return obj


class _Sink:
    """Collects objects across roots."""

    def __init__(self, tree: Tree) -> None:
        self.tree = tree
        self.files: dict[str, dict] = {}
        self.missing: dict[str, dict] = {}
        self.likely: dict[str, Likely] = {}
        self.trees: dict[str, dict[str, tuple[Edge, ...]]] = {}

    _RANK = {"root": 0, "interp": 1, "needed": 2, "hwcaps": 3, "likely": 4, "link": 5}

    def _entry(self, path: str, kind: str, size: int, role: str, target: str | None = None,
               info: ElfInfo | None = None) -> dict:
        e = self.files.get(path)
        if e is None:
            e = self.files[path] = {"kind": kind, "size": size, "role": role, "needed_by": set(),
                                    "target": target, "reasons": [], "elf": info.describe() if info else None}
        elif self._RANK[role] < self._RANK[e["role"]]:
            e["role"] = role
        return e

    def add_links(self, links: Iterable[str], needed_by: str | None, role: str, reason: str | None = None) -> None:
        for link in links:
            st = self.tree.lstat(link)
            e = self._entry(link, "symlink", 0, role if role in ("root", "likely") else "needed",
                            st.linkname if st else None)
            if needed_by:
                e["needed_by"].add(needed_by)
            if reason and role == "likely" and reason not in e["reasons"]:
                e["reasons"].append(reason)

    def add_object(self, path: str, info: ElfInfo | None, role: str, needed_by: str | None,
                   links: Iterable[str], reason: str | None = None) -> None:
        st = self.tree.lstat(path)
        e = self._entry(path, "file", st.size if st else 0, role, None, info)
        if needed_by and role != "root":
            e["needed_by"].add(needed_by)
        if reason and reason not in e["reasons"]:
            e["reasons"].append(reason)
        if role == "likely" and reason:
            self.likely.setdefault(path, Likely(path, reason))
        self.add_links(links, needed_by if role != "root" else None, role, reason)

    def add_plain(self, path: str, size: int, role: str, needed_by: str | None, reason: str | None) -> None:
        e = self._entry(path, "file", size, role)
        if needed_by:
            e["needed_by"].add(needed_by)
        if reason and reason not in e["reasons"]:
            e["reasons"].append(reason)
        if role == "likely" and reason:
            self.likely.setdefault(path, Likely(path, reason))

    def likely_hit(self, path: str, reason: str) -> None:
        """A likely-needed library that the program loads anyway: nothing to add."""

    def likely_absent(self, name: str, reason: str, why: str | None) -> None:
        key = "!" + name
        if key not in self.likely:
            self.likely[key] = Likely(name, f"{reason}; not found{': ' + why if why else ''}", present=False)

    def miss(self, name: str, needed_by: str, reason: str | None) -> None:
        m = self.missing.setdefault(name, {"needed_by": set(), "reasons": []})
        m["needed_by"].add(needed_by)
        if reason and reason not in m["reasons"]:
            m["reasons"].append(reason)


# --------------------------------------------------------------------------------------------------
# Roots


def _shebang(data: bytes | None) -> tuple[str, str | None] | None:
    if not data or not data.startswith(b"#!"):
        return None
    line = data[2:].split(b"\n", 1)[0].decode("utf-8", "surrogateescape").strip()
    if not line:
        return None
    interp, _, arg = line.replace("\t", " ").partition(" ")
    arg = arg.strip()
    return interp, arg or None


class _Roots:
    def __init__(self, resolver: Resolver, env: Mapping[str, str]) -> None:
        self.r = resolver
        self.env = env
        self.roots: list[Root] = []
        self.seen: set[str] = set()
        self.links: dict[str, set[str]] = {}
        self.missing: list[tuple[str, str, str]] = []  # (name, needed by, reason): the image cannot run it

    def which(self, cmd: str) -> str | None:
        for d in (self.env.get("PATH") or DEFAULT_PATH).split(":"):
            if not d:
                d = self.r.cwd
            cand = _join(d, cmd)
            res = self.r.tree.resolve(cand)
            if res.kind == "file":
                st = self.r.tree.lstat(res.path)
                if st is None or st.mode & 0o111:
                    return cand
        return None

    def add(self, path: str, origin: str, depth: int = 0) -> None:
        res = self.r.tree.resolve(path, self.r.cwd)
        if res.kind == "missing" or res.kind == "loop":
            raise BilgeError(f"{path}: not found in the image" + (" (symlink loop)" if res.kind == "loop" else ""))
        if res.kind != "file":
            raise BilgeError(f"{path}: not a regular file in the image ({res.kind})")
        if res.path in self.seen and not res.links:
            return
        info = self.r.elf_at(res.path)
        if info is not None:
            kind = "elf" if (info.needed or info.interp) else "static"
            if info.error:  # not a static binary: what it needs cannot be read
                raise BilgeError(f"{path}: {info.error}; the libraries it needs cannot be resolved")
            self._push(Root(path, res.path, kind, origin, info.interp), res)
            return
        head = self.r.view.read_small(res.path, 512)
        sb = _shebang(head)
        if sb is None:
            raise BilgeError(f"{path}: neither an ELF file nor a #! script")
        interp, arg = sb
        self._push(Root(path, res.path, "script", origin, interp + (f" {arg}" if arg else "")), res)
        if depth >= 4:
            raise BilgeError(f"{path}: #! interpreters nested too deeply")
        if posixpath.basename(interp) == "env" and arg:
            words = arg.split()
            while words and (words[0].startswith("-") or "=" in words[0]):
                words.pop(0)
            self._interpreter(interp, res.path, depth)
            if words:
                found = words[0] if "/" in words[0] else self.which(words[0])
                if found is None:
                    self.missing.append((words[0], res.path, f"#! program {words[0]!r} is not in the image's PATH"))
                else:
                    self._interpreter(found, res.path, depth)
        else:
            self._interpreter(interp, res.path, depth)

    def _interpreter(self, path: str, script: str, depth: int) -> None:
        r = self.r.tree.resolve(path, self.r.cwd)
        if r.kind != "file":
            self.missing.append((path, script, "#! interpreter not in the image"))
            return
        self.add(path, "interpreter", depth + 1)

    def _push(self, root: Root, res: Resolved) -> None:
        if res.path not in self.seen:
            self.seen.add(res.path)
            self.roots.append(root)
        self.links.setdefault(res.path, set()).update(res.links)

    def add_dir(self, path: str) -> None:
        res = self.r.tree.resolve(path, self.r.cwd)
        if res.kind != "dir":
            raise BilgeError(f"{path}: not a directory in the image")
        for p in self.r.tree.walk_files(res.path):
            info = self.r.elf_at(p)
            if info is None or p in self.seen:
                continue
            if info.elf_class == 0:
                self.r.note(f"{p}: {info.error}; skipped")
                continue
            if info.error:  # the header reads but the dynamic section does not: unresolvable, not static
                self.missing.append((p, p, f"{info.error}; the libraries it needs cannot be resolved"))
                continue
            self.seen.add(p)
            kind = "elf" if (info.needed or info.interp) else "static"
            self.roots.append(Root(p, p, kind, "path", info.interp))
            self.links.setdefault(p, set()).update(res.links)

    def add_entrypoint(self, config: Mapping[str, object]) -> None:
        entry = list(config.get("Entrypoint") or [])  # type: ignore[call-overload]
        cmd = list(config.get("Cmd") or [])  # type: ignore[call-overload]
        argv = [str(a) for a in (entry + cmd if entry else cmd)]
        if not argv:
            raise BilgeError("the image has no Entrypoint or Cmd")
        programs = [argv[0]]
        if posixpath.basename(argv[0]) in SHELLS and len(argv) >= 3 and argv[1] == "-c":
            try:
                words = shlex.split(argv[2])
            except ValueError:
                words = argv[2].split()
            while words and ("=" in words[0] and not words[0].startswith("=") or words[0] in ("exec", "env")):
                words.pop(0)
            if words and not re.match(r"^[\[\(\{!]|^(if|for|while|case|then)$", words[0]):
                programs.append(words[0])
        for prog in programs:
            found = prog if "/" in prog else self.which(prog)
            if found is None or self.r.tree.resolve(found, self.r.cwd).kind != "file":
                self.missing.append((prog, "Entrypoint/Cmd", "not in the image" + ("" if "/" in prog else
                                                                                  " (looked up in PATH)")))
                continue
            self.add(found, "entrypoint")


# --------------------------------------------------------------------------------------------------
# Entry point


LIB_TREES = ("/usr/lib", "/lib", "/usr/lib64", "/lib64", "/usr/local/lib", "/usr/lib32", "/lib32")


def closure(
    view: View,
    *,
    binaries: Sequence[str] = (),
    paths: Sequence[str] = (),
    entrypoint: bool = False,
    config: Mapping[str, object] | None = None,
    strict: bool = False,
    compare: Sequence[str] | None = None,
) -> DepsResult:
    """The files the given programs need at run time, as found in ``view``.

    ``config`` is the image's runtime config (Env, Entrypoint, Cmd, WorkingDir).
    """
    config = config or {}
    env: dict[str, str] = {}
    for item in config.get("Env") or []:  # type: ignore[union-attr]
        k, _, v = str(item).partition("=")
        env[k] = v
    workdir = str(config.get("WorkingDir") or "/")
    resolver = Resolver(view, env, workdir)
    roots = _Roots(resolver, env)
    for b in binaries:
        roots.add(b, "binary")
    for p in paths:
        roots.add_dir(p)
    if entrypoint:
        roots.add_entrypoint(config)
    if not (binaries or paths or entrypoint):
        raise BilgeError("nothing to resolve: give --binary PATH, --path DIR or --entrypoint")

    sink = _Sink(resolver.tree)
    for name, needed_by, reason in roots.missing:
        sink.miss(name, needed_by, reason)
    final_roots: list[Root] = []
    for root in roots.roots:
        sink.add_object(root.canonical, resolver.elf_at(root.canonical), "root", None,
                        sorted(roots.links.get(root.canonical, ())))
        flavor = None
        if root.kind == "elf":
            info = resolver.elf_at(root.canonical)
            assert info is not None
            flavor = resolver.root_closure(root.canonical, root.path, info, strict, sink)
        final_roots.append(Root(root.path, root.canonical, root.kind, root.origin, root.interpreter, flavor))

    files = tuple(
        DepFile(
            path=p,
            kind=e["kind"],
            size=e["size"],
            role=e["role"],
            needed_by=tuple(sorted(e["needed_by"])),
            target=e["target"],
            reason="; ".join(e["reasons"]) if e["role"] in ("likely", "hwcaps") and e["reasons"] else None,
            elf=e["elf"],
        )
        for p, e in sorted(sink.files.items())
    )
    missing = tuple(
        Missing(name, tuple(sorted(m["needed_by"])), "; ".join(m["reasons"]) or None)
        for name, m in sorted(sink.missing.items())
    )
    likely = tuple(sorted(sink.likely.values(), key=lambda x: (not x.present, x.path)))

    dirs: list[DirStat] = []
    for top in compare if compare is not None else LIB_TREES:
        res = resolver.tree.resolve(top)
        if res.kind != "dir" or (compare is None and res.path != top):
            continue
        prefix = res.path.rstrip("/") + "/"
        inside = [f for f in files if f.kind == "file" and f.path.startswith(prefix) and f.role != "likely"]
        likely_inside = [f for f in files if f.kind == "file" and f.path.startswith(prefix) and f.role == "likely"]
        if not inside and not likely_inside and compare is None:
            continue
        total, count = resolver.tree.du(res.path)
        dirs.append(DirStat(top, total, count, sum(f.size for f in inside), len(inside),
                            sum(f.size for f in likely_inside), len(likely_inside)))

    return DepsResult(
        roots=tuple(final_roots),
        files=files,
        missing=missing,
        likely=likely,
        trees=sink.trees,
        notes=tuple(resolver.notes),
        dirs=tuple(dirs),
        strict=strict,
    )


# --------------------------------------------------------------------------------------------------
# ImageView: the view of an image, built during the one pass over its layers

_LOADER_NAME = re.compile(r"^(ld-linux[\w.-]*\.so\.\d+|ld64\.so\.\d+|ld\.so\.\d+|ld-\d[\d.]*\.so|ld-musl-[\w-]+\.so\.1)$")
SCRIPT_HEAD = 1024
ETC_LIMIT = 1 << 20
# The files under /etc the loader and ldconfig read, kept whole (any other file: its #! head only), and
# the most kept in all, so a layer of thousands of /etc files cannot hold the run's memory.
_LOADER_ETC = re.compile(r"^etc/(ld\.so\.conf(\.d/.+)?|ld\.so\.cache|ld\.so\.preload|nsswitch\.conf"
                         r"|ld-musl-[^/]+\.path|ld\.so\.conf\.d)$")
SMALL_BUDGET = 64 << 20
OTHER_ETC_BUDGET = 16 << 20
SPOOL_OVER = 64 << 20  # bodies above this are copied to a temporary file so pyelftools can seek


class ElfCollector:
    """A ``walk_image`` visitor: ELF facts of every regular file, and the small files the loader reads.

    Keyed by (layer index, path): afterwards :meth:`view` picks the version visible in the merged
    filesystem, so a library replaced or deleted by a later layer is never used.
    """

    def __init__(self) -> None:
        self.elf: dict[tuple[int, str], ElfInfo] = {}
        self.small: dict[tuple[int, str], bytes] = {}
        self.small_bytes = 0
        self.other_bytes = 0
        self.elf_files = 0
        self.elf_bytes = 0

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
        head = entry.read(4)
        if head == b"\x7fELF":
            self.elf_files += 1
            self.elf_bytes += entry.size
            info = self._read_elf(entry)
            if info is not None:
                self.elf[key] = info
            if _LOADER_NAME.match(posixpath.basename(entry.path)) and entry.size <= LOADER_LIMIT:
                self.small[key] = entry.read(-1)
        elif _LOADER_ETC.match(entry.path) and entry.size <= ETC_LIMIT:
            self._keep(key, entry.read(-1), True)
        elif entry.path.startswith("etc/") and entry.size <= ETC_LIMIT and \
                self.other_bytes + entry.size <= OTHER_ETC_BUDGET and head[:2] != b"#!":
            self._keep(key, entry.read(-1), False)
        elif head[:2] == b"#!":
            self.small[key] = entry.read(SCRIPT_HEAD)

    @staticmethod
    def _read_elf(entry) -> ElfInfo | None:
        if entry.size <= SPOOL_OVER:
            return read_elf(entry.fileobj)
        import shutil
        import tempfile

        with tempfile.TemporaryFile(prefix="bilge-elf-") as tmp:
            shutil.copyfileobj(entry.fileobj, tmp, 1 << 20)
            return read_elf(tmp)  # type: ignore[arg-type]

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
