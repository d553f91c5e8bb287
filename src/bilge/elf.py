"""ELF dynamic-linking facts, read with pyelftools: what the loader needs to know about one file.

:func:`read_elf` takes a seekable binary stream and returns an :class:`ElfInfo` (or None when the
bytes are not an ELF file). Only the ELF header, the program headers, ``PT_INTERP``, ``PT_DYNAMIC``
and the dynamic string table are read, so a 100 MB library costs a few small reads. Malformed files
never raise: the header facts are kept and ``error`` says what could not be read.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import BinaryIO

from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile
from elftools.elf.structs import ELFStructs

ELF_MAGIC = b"\x7fELF"

DF_1_NODEFLIB = 0x800
EF_ARM_ABI_FLOAT_SOFT = 0x200
EF_ARM_ABI_FLOAT_HARD = 0x400

# Names looked for in the dynamic string table: imports that make libc dlopen something at run time,
# and the version definition that tells a glibc 2.34+ libc (NSS "files"/"dns" built in).
MARKERS: tuple[str, ...] = (
    "iconv_open",
    "pthread_cancel",
    "pthread_exit",
    "backtrace",
    "GLIBC_2.34",
)

# OS/ABI values the glibc loader accepts as "this system" (lddtree uses the same set).
LINUX_OSABIS = frozenset({"ELFOSABI_SYSV", "ELFOSABI_NONE", "ELFOSABI_GNU", "ELFOSABI_LINUX", 0, 3})

_MACHINE_NAMES = {
    "EM_X86_64": "x86-64",
    "EM_386": "i386",
    "EM_AARCH64": "aarch64",
    "EM_ARM": "arm",
    "EM_PPC64": "ppc64",
    "EM_PPC": "ppc",
    "EM_S390": "s390",
    "EM_RISCV": "riscv",
    "EM_MIPS": "mips",
    "EM_LOONGARCH": "loongarch",
    "EM_SPARCV9": "sparc64",
}


@dataclass(frozen=True)
class ElfInfo:
    """What the dynamic loader reads from one ELF file."""

    elf_class: int  # 32 or 64
    little_endian: bool
    machine: str | int  # pyelftools' name ("EM_X86_64") or the raw number when unknown
    osabi: str | int
    e_type: str | int  # "ET_DYN", "ET_EXEC" ...
    flags: int  # e_flags (ARM float ABI ...)
    interp: str | None = None  # PT_INTERP
    needed: tuple[str, ...] = ()  # DT_NEEDED, in order
    rpath: str | None = None  # DT_RPATH, raw (unexpanded)
    runpath: str | None = None  # DT_RUNPATH, raw
    soname: str | None = None  # DT_SONAME
    flags_1: int = 0  # DT_FLAGS_1
    dynamic: bool = False  # has PT_DYNAMIC
    markers: frozenset[str] = field(default_factory=frozenset)  # MARKERS found in .dynstr
    error: str | None = None  # set when the dynamic part could not be read

    @property
    def nodeflib(self) -> bool:
        return bool(self.flags_1 & DF_1_NODEFLIB)

    @property
    def machine_name(self) -> str:
        if isinstance(self.machine, str):
            return _MACHINE_NAMES.get(self.machine, self.machine.removeprefix("EM_").lower())
        return f"machine {self.machine}"

    def describe(self) -> str:
        """Short architecture tag, e.g. ``ELF64 x86-64 LE``."""
        return f"ELF{self.elf_class} {self.machine_name} {'LE' if self.little_endian else 'BE'}"


def compatible(a: ElfInfo, b: ElfInfo) -> bool:
    """Could the loader of ``a`` load ``b``? Class, byte order, machine, OS/ABI (and ARM float ABI)."""
    if a.elf_class != b.elf_class or a.little_endian != b.little_endian or a.machine != b.machine:
        return False
    if a.osabi != b.osabi and not (a.osabi in LINUX_OSABIS and b.osabi in LINUX_OSABIS):
        return False
    if a.machine == "EM_ARM":
        fa = a.flags & (EF_ARM_ABI_FLOAT_HARD | EF_ARM_ABI_FLOAT_SOFT)
        fb = b.flags & (EF_ARM_ABI_FLOAT_HARD | EF_ARM_ABI_FLOAT_SOFT)
        if fa and fb and fa != fb:
            return False
    return True


def incompatibility(a: ElfInfo, b: ElfInfo) -> str:
    """Why ``b`` cannot be loaded next to ``a`` (empty when compatible)."""
    if compatible(a, b):
        return ""
    if a.elf_class != b.elf_class:
        return f"ELFCLASS{b.elf_class}, need ELFCLASS{a.elf_class}"
    if a.machine != b.machine:
        return f"{b.machine_name}, need {a.machine_name}"
    if a.little_endian != b.little_endian:
        return "wrong byte order"
    if a.osabi != b.osabi:
        return f"OS/ABI {b.osabi}"
    return "ARM float ABI differs"


_STRUCTS: dict[tuple[object, ...], ELFStructs] = {}
STRUCTS_KEPT = 64  # kinds of file whose definitions are kept (a real image has two or three)


class _ELFFile(ELFFile):
    """pyelftools' ELFFile, its struct definitions made once per kind of file and then shared.

    ``ELFFile.__init__`` builds them (two hundred construct objects) for every file it opens: two
    thirds of :func:`read_elf`'s time (1.5 against 0.5 ms a file, on 520 of Debian's libraries and
    programs). The same steps in the same order as pyelftools 0.33's ``__init__``, with the same
    errors; the definitions depend only on the key, and parsing does not change them."""

    def __init__(self, stream: BinaryIO) -> None:  # noqa: D107 -- (pyelftools' own __init__ is not called)
        self.stream = stream
        self.stream.seek(0, io.SEEK_END)
        self.stream_len = self.stream.tell()
        self._identify_file()
        key: tuple[object, ...] = (self.little_endian, self.elfclass)
        self.structs = _STRUCTS.get(key) or _structs(key)
        self.header = self._parse_elf_header()
        key += (self["e_type"], self["e_machine"], self["e_ident"]["EI_OSABI"])
        self.structs = _STRUCTS.get(key) or _structs(key)
        self.stream.seek(0)
        self.e_ident_raw = self.stream.read(16)
        self.stream_loader = None


def _structs(key: tuple[object, ...]) -> ELFStructs:
    structs = ELFStructs(little_endian=key[0], elfclass=key[1])
    structs.create_basic_structs()
    if len(key) > 2:
        structs.create_advanced_structs(*key[2:])
    if len(_STRUCTS) < STRUCTS_KEPT:  # (a hostile image could name every machine there is)
        _STRUCTS[key] = structs
    return structs


# pyelftools' own class where its internals differ from those _ELFFile repeats
_OPEN = _ELFFile if all(hasattr(ELFFile, name) for name in ("_identify_file", "_parse_elf_header")) else ELFFile


def read_elf_bytes(data: bytes) -> ElfInfo | None:
    return read_elf(io.BytesIO(data))


def read_elf(stream: BinaryIO) -> ElfInfo | None:
    """Parse the dynamic-linking facts of the ELF file in ``stream`` (seekable); None if not ELF."""
    try:
        stream.seek(0)
        if stream.read(4) != ELF_MAGIC:
            return None
        stream.seek(0)
        elf = _OPEN(stream)
        header = elf.header
        base = ElfInfo(
            elf_class=elf.elfclass,
            little_endian=elf.little_endian,
            machine=header["e_machine"],
            osabi=header["e_ident"]["EI_OSABI"],
            e_type=header["e_type"],
            flags=int(header["e_flags"]),
        )
    except (ELFError, ValueError, KeyError, OSError, EOFError, AttributeError, TypeError) as exc:
        return None if not _looks_like_elf(stream) else _header_only_failure(exc)
    except Exception as exc:  # construct.StreamError and friends from truncated files
        return None if not _looks_like_elf(stream) else _header_only_failure(exc)
    try:
        return _read_dynamic(elf, stream, base)
    except Exception as exc:  # malformed dynamic section: keep the header facts
        return _replace(base, error=f"unreadable dynamic section: {exc.__class__.__name__}: {exc}"[:200])


def _looks_like_elf(stream: BinaryIO) -> bool:
    try:
        stream.seek(0)
        return stream.read(4) == ELF_MAGIC
    except OSError:
        return False


def _header_only_failure(exc: BaseException) -> ElfInfo:
    return ElfInfo(
        elf_class=0,
        little_endian=True,
        machine="?",
        osabi="?",
        e_type="?",
        flags=0,
        error=f"unreadable ELF header: {exc.__class__.__name__}: {exc}"[:200],
    )


def _replace(info: ElfInfo, **changes: object) -> ElfInfo:
    from dataclasses import replace

    return replace(info, **changes)  # type: ignore[arg-type]


def _read_dynamic(elf: ELFFile, stream: BinaryIO, base: ElfInfo) -> ElfInfo:
    interp: str | None = None
    dyn_offset = dyn_size = None
    loads: list[tuple[int, int, int]] = []  # (vaddr, filesz, offset)
    for i in range(elf.num_segments()):
        ph = elf._get_segment_header(i)
        p_type = ph["p_type"]
        if p_type == "PT_LOAD":
            loads.append((ph["p_vaddr"], ph["p_filesz"], ph["p_offset"]))
        elif p_type == "PT_INTERP":
            stream.seek(ph["p_offset"])
            raw = stream.read(min(ph["p_filesz"], 4096))
            interp = raw.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
        elif p_type == "PT_DYNAMIC" and dyn_offset is None:
            dyn_offset, dyn_size = ph["p_offset"], ph["p_filesz"]
    if dyn_offset is None:
        return _replace(base, interp=interp)

    # Dynamic entries: (d_tag, d_val) pairs of the file's word size, ending at DT_NULL.
    word = 8 if base.elf_class == 64 else 4
    fmt = ("<" if base.little_endian else ">") + ("qQ" if word == 8 else "lL")
    import struct

    entry = struct.Struct(fmt)
    stream.seek(dyn_offset)
    blob = stream.read(dyn_size or 0)
    tags: list[tuple[int, int]] = []
    for off in range(0, len(blob) - entry.size + 1, entry.size):
        tag, val = entry.unpack_from(blob, off)
        if tag == 0:
            break
        tags.append((tag, val))

    strtab = strsz = None
    for tag, val in tags:
        if tag == 5:  # DT_STRTAB
            strtab = val
        elif tag == 10:  # DT_STRSZ
            strsz = val
    strings = b""
    if strtab is not None:
        off = _vaddr_to_offset(loads, strtab)
        if off is None:  # some tools store a file offset (prelinked/odd objects): try it as is
            off = strtab
        size = strsz if strsz is not None and strsz < (64 << 20) else 1 << 20
        stream.seek(off)
        strings = stream.read(size)

    def string_at(index: int) -> str:
        if index >= len(strings):
            raise ValueError(f"string index {index} outside .dynstr ({len(strings)} bytes)")
        end = strings.find(b"\0", index)
        return strings[index : end if end >= 0 else len(strings)].decode("utf-8", "surrogateescape")

    needed: list[str] = []
    rpath = runpath = soname = None
    flags_1 = 0
    for tag, val in tags:
        if tag == 1:  # DT_NEEDED
            needed.append(string_at(val))
        elif tag == 15:  # DT_RPATH
            rpath = string_at(val)
        elif tag == 29:  # DT_RUNPATH
            runpath = string_at(val)
        elif tag == 14:  # DT_SONAME
            soname = string_at(val)
        elif tag == 0x6FFFFFFB:  # DT_FLAGS_1
            flags_1 = val
    return _replace(
        base,
        interp=interp,
        needed=tuple(needed),
        rpath=rpath,
        runpath=runpath,
        soname=soname,
        flags_1=flags_1,
        dynamic=True,
        markers=_markers(strings, MARKERS),
    )


def _vaddr_to_offset(loads: Iterable[tuple[int, int, int]], vaddr: int) -> int | None:
    for start, filesz, offset in loads:
        if start <= vaddr < start + filesz:
            return vaddr - start + offset
    return None


def _markers(strings: bytes, names: Iterable[str]) -> frozenset[str]:
    if not strings:
        return frozenset()
    found = []
    for name in names:
        needle = b"\0" + name.encode() + b"\0"
        if needle in strings:
            found.append(name)
    return frozenset(found)
