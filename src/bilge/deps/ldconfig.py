"""Loader configuration read from the image: ld.so.conf, ld.so.cache, nsswitch.conf, the loader's
compiled-in search path, and the architecture names the loader expands."""

from __future__ import annotations

import posixpath
import re
import struct
from collections.abc import Iterator
from dataclasses import dataclass

from bilge.deps.tree import Tree, _join
from bilge.elf import ElfInfo

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
