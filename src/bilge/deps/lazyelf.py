"""ELF facts read later: during the one pass over an image keep only the bytes :func:`bilge.elf.read_elf`
will read, and parse the few files a closure asks for.

Parsing every ELF file of an image with pyelftools while the layers stream cost as much CPU as the rest
of the walk (5 252 ELF files of the 1.2 GB benchmark image: ~19 s). What ``read_elf`` reads of a file is
small and found with a few ``struct`` reads: the ELF header, the program headers, ``PT_INTERP``,
``PT_DYNAMIC`` and the dynamic string table. :func:`capture` keeps exactly those byte ranges (a
:class:`Capture`); :meth:`Capture.info` later runs the same ``read_elf`` on a :class:`SparseReader` of
them, so the facts are the ones an eager parse gives, byte for byte. A file whose read pattern this
module cannot predict (a malformed or unusual header, a dynamic part over ``CAPTURE_LIMIT``) is parsed
at once, as before.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Mapping
from typing import BinaryIO

from bilge.elf import ElfInfo, _vaddr_to_offset, read_elf
from bilge.rawio import WindowReader

CAPTURE_LIMIT = 256 << 10  # a dynamic section or string table larger than this: parse at once
_PT_LOAD, _PT_DYNAMIC, _PT_INTERP = 1, 2, 3


class SparseReader(WindowReader):
    """A seekable read-only stream of a file of ``size`` bytes of which only ``ranges`` are known.

    Reading bytes outside them raises: :func:`capture` must have kept everything ``read_elf`` reads.
    """

    def __init__(self, size: int, ranges: tuple[tuple[int, bytes], ...]) -> None:
        super().__init__(size)
        self._ranges = ranges

    def read(self, n: int | None = -1) -> bytes:
        start = self._pos
        end = self._size if n is None or n < 0 else min(self._size, start + n)
        if start >= end:
            return b""
        for off, data in self._ranges:
            if off <= start and end <= off + len(data):
                self._pos = end
                return data[start - off:end - off]
        raise RuntimeError(f"bilge internal error: ELF bytes {start}-{end} were not kept during the image pass")


class GrowingSpool(WindowReader):
    """A seekable reader of a large forward-only body that copies to a temporary file only the prefix
    read so far: finding the dynamic section of a 256 MB file copies its first megabytes, not all of it."""

    def __init__(self, body: BinaryIO, size: int) -> None:
        import tempfile

        super().__init__(size)
        self._body = body
        self._tmp = tempfile.TemporaryFile(prefix="bilge-elf-")
        self._have = 0

    def read(self, n: int | None = -1) -> bytes:
        end = self._size if n is None or n < 0 else min(self._size, self._pos + n)
        if self._pos >= end:
            return b""
        if end > self._have:
            self._body.seek(self._have)
            self._tmp.seek(self._have)
            while self._have < end:
                chunk = self._body.read(min(end - self._have, 1 << 20))
                if not chunk:
                    break
                self._tmp.write(chunk)
                self._have += len(chunk)
        self._tmp.seek(self._pos)
        data = self._tmp.read(end - self._pos)
        self._pos += len(data)
        return data

    def close(self) -> None:
        self._tmp.close()
        super().close()


class Capture:
    """The byte ranges of one ELF file that ``read_elf`` reads (see :func:`capture`)."""

    __slots__ = ("ranges", "size")

    def __init__(self, size: int, ranges: list[tuple[int, bytes]]) -> None:
        self.size = size
        self.ranges = _merge(ranges)

    def info(self) -> ElfInfo | None:
        return read_elf(SparseReader(self.size, self.ranges))  # type: ignore[arg-type]

    @property
    def kept(self) -> int:
        return sum(len(d) for _, d in self.ranges)


def _merge(ranges: list[tuple[int, bytes]]) -> tuple[tuple[int, bytes], ...]:
    out: list[tuple[int, bytes]] = []
    for off, data in sorted((r for r in ranges if r[1]), key=lambda r: (r[0], -len(r[1]))):
        if out and off <= out[-1][0] + len(out[-1][1]):
            prev_off, prev = out[-1]
            overlap = prev_off + len(prev) - off
            if len(data) > overlap:
                out[-1] = (prev_off, prev + data[overlap:])
        else:
            out.append((off, data))
    return tuple(out)


class _Unusual(Exception):
    """A read this module does not foretell (past the end of the file, a malformed header ...)."""


def _at(fh: BinaryIO, off: int, n: int, size: int) -> bytes:
    if off + n > size:  # what a stream gives past its end differs between stream kinds: parse now
        raise _Unusual
    fh.seek(off)
    data = fh.read(n)
    if len(data) != n:
        raise _Unusual
    return data


def capture(fh: BinaryIO, size: int) -> Capture | ElfInfo | None:
    """What ``read_elf(fh)`` would read of this file (``fh`` seekable, ``size`` its length), or, when that
    cannot be foretold (a malformed or unusual file), ``read_elf(fh)`` itself."""
    try:
        return _capture(fh, size)
    except _Unusual:
        return read_elf(fh)


def _capture(fh: BinaryIO, size: int) -> Capture:
    head = _at(fh, 0, min(size, 64), size)
    wide = head[4:5] == b"\x02"
    if head[:4] != b"\x7fELF" or head[4:5] not in (b"\x01", b"\x02") or head[5:6] not in (b"\x01", b"\x02") \
            or len(head) < (64 if wide else 52):
        raise _Unusual  # not ELF, or a header pyelftools refuses or cannot finish
    end = "<" if head[5] == 1 else ">"
    ehdr = struct.Struct(end + ("16sHHIQQQIHHHHHH" if wide else "16sHHIIIIIHHHHHH"))
    (_, _, _, _, _, phoff, _, _, _, phentsize, phnum, _, _, _) = ehdr.unpack_from(head)
    phdr = struct.Struct(end + ("IIQQQQQQ" if wide else "IIIIIIII"))
    if phnum >= 0xFFFF or (phoff > 0 and phentsize < phdr.size):
        raise _Unusual  # the count is in section 0 / pyelftools refuses
    loads: list[tuple[int, int, int]] = []
    dyn: tuple[int, int] | None = None
    table = _at(fh, phoff, (phnum - 1) * phentsize + phdr.size, size) if phnum else b""
    # the whole table, kept and read as one range: read_elf reads each entry of it
    ranges = [(0, head[:ehdr.size]), (phoff, table)]
    for i in range(phnum):
        if wide:
            p_type, _, p_offset, p_vaddr, _, p_filesz, _, _ = phdr.unpack_from(table, i * phentsize)
        else:
            p_type, p_offset, p_vaddr, _, p_filesz, _, _, _ = phdr.unpack_from(table, i * phentsize)
        if p_type == _PT_LOAD:
            loads.append((p_vaddr, p_filesz, p_offset))
        elif p_type == _PT_INTERP:
            ranges.append((p_offset, _at(fh, p_offset, min(p_filesz, 4096), size)))
        elif p_type == _PT_DYNAMIC and dyn is None:
            dyn = (p_offset, p_filesz)
    if dyn is None:
        return Capture(size, ranges)
    if dyn[1] > CAPTURE_LIMIT:
        raise _Unusual
    blob = _at(fh, dyn[0], dyn[1], size)
    ranges.append((dyn[0], blob))
    entry = struct.Struct(end + ("qQ" if wide else "lL"))
    strtab = strsz = None
    for tag, val in entry.iter_unpack(blob[:len(blob) - len(blob) % entry.size]):
        if tag == 0:
            break
        if tag == 5:
            strtab = val
        elif tag == 10:
            strsz = val
    if strtab is not None:
        where = _vaddr_to_offset(loads, strtab)
        where = strtab if where is None else where
        want = strsz if strsz is not None and strsz < (64 << 20) else 1 << 20
        if want > CAPTURE_LIMIT:
            raise _Unusual
        ranges.append((where, _at(fh, where, want, size)))
    return Capture(size, ranges)


class LazyElfTable(Mapping):
    """``(layer, path) -> ElfInfo``, parsing a :class:`Capture` the first time its key is asked for."""

    def __init__(self) -> None:
        self._items: dict[tuple[int, str], ElfInfo | Capture] = {}
        self.parsed = 0

    def __setitem__(self, key: tuple[int, str], value: ElfInfo | Capture) -> None:
        self._items[key] = value

    def __getitem__(self, key: tuple[int, str]) -> ElfInfo:
        value = self._items[key]
        if isinstance(value, Capture):
            info = value.info()
            assert info is not None  # the capture began with the ELF magic
            self._items[key] = value = info
            self.parsed += 1
        return value

    def __iter__(self) -> Iterator[tuple[int, str]]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: object) -> bool:
        return key in self._items
