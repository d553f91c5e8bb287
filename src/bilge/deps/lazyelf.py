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

import io
import struct
import sys
from collections.abc import Callable, Iterator, Mapping
from typing import BinaryIO

from bilge import body as bilge_body
from bilge.elf import ElfInfo, _vaddr_to_offset, read_elf
from bilge.rawio import WindowReader

CAPTURE_LIMIT = 256 << 10  # a dynamic section or string table larger than this: parse at once
_PT_LOAD, _PT_DYNAMIC, _PT_INTERP = 1, 2, 3
_PF_X = 1
_NATIVE = "<" if sys.byteorder == "little" else ">"
# (byte order, 64-bit) -> the ELF header and a program header
_STRUCTS = {(end, wide): (struct.Struct(end + ("16sHHIQQQIHHHHHH" if wide else "16sHHIIIIIHHHHHH")),
                          struct.Struct(end + ("IIQQQQQQ" if wide else "IIIIIIII")))
            for end in "<>" for wide in (False, True)}


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
        raise RuntimeError(f"ELF bytes {start}-{end} were not kept during the one pass over the image")


class GrowingSpool(WindowReader):
    """A seekable reader of a large forward-only body that copies to a temporary file only the prefix
    read so far: finding the dynamic section of a 256 MB file copies its first megabytes, not all of it."""

    def __init__(self, body: BinaryIO, size: int) -> None:
        import tempfile

        from bilge import cleanup

        super().__init__(size)
        self._body = body
        self._tmp = tempfile.TemporaryFile(dir=cleanup.tempdir(), prefix="bilge-elf-")
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

    def matches(self, data: bytes) -> bool:
        """Whether the whole body ``data`` has this capture's bytes at every range it kept: then
        :func:`capture_bytes` of it is this capture. (What ``_capture`` reads next is decided by the bytes
        it has read, and it keeps every byte it decides on.)"""
        return len(data) == self.size and all(data.startswith(kept, off) for off, kept in self.ranges)


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
        return _capture(lambda off, n: _at(fh, off, n, size), size)
    except _Unusual:
        return read_elf(fh)


def capture_bytes(data: bytes) -> Capture | ElfInfo | None:
    """:func:`capture` of a whole file in memory, sliced without a reader."""
    size = len(data)

    def at(off: int, n: int) -> bytes:
        if off + n > size:
            raise _Unusual
        return data[off:off + n]

    try:
        return _capture(at, size)
    except _Unusual:
        return read_elf(io.BytesIO(data))


PREFIX_LIMIT = 64 << 20  # a first segment larger than this is not kept in memory (see capture_entry)
FORWARD_HEAD = 64 << 10  # of a large body, the head read through the entry's cache (the secrets scan reads as much)


class _Forward:
    """``at(off, n)`` over a layer entry read forward once (``Entry.skim``): the file's first segment
    ``[0, keep)`` is kept as it passes, what lies between it and the bytes asked for later is not."""

    def __init__(self, entry, head: bytes) -> None:  # entry: bilge.layers.Entry
        self.entry, self.size = entry, entry.size
        self.prefix = head
        self.keep: int | None = None  # set by _capture once the program headers are read
        self.pos = len(head)  # the next byte of the body not yet read
        self.read: list[tuple[int, bytes]] = []  # what was read past the prefix
        self.skimmed = False

    def __call__(self, off: int, n: int) -> bytes:
        end = off + n
        if end > self.size:
            raise _Unusual
        if end <= len(self.prefix):
            return self.prefix[off:end]
        if self.keep is None:
            raise _Unusual  # nothing read beyond the cached head yet: the caller can still read it all
        if not self.skimmed:  # the first read past the head: the rest of the first segment, kept
            self.skimmed = True
            want = max(end if off < self.keep else 0, self.keep)
            if want > len(self.prefix):  # (a segment shorter than the head is in it already)
                self.prefix += self.entry.skim(self.pos, want - self.pos)
                self.pos = len(self.prefix)
            if end <= len(self.prefix):
                return self.prefix[off:end]
        if off < self.pos:
            raise _Unusual  # passed and not kept: an unusual layout
        data = self.entry.skim(off, n)
        self.pos = off + len(data)
        self.read.append((off, data))
        return data

    def ranges(self) -> list[tuple[int, bytes]]:
        return [(0, self.prefix), *self.read]


def entry_head(entry) -> bytes:  # entry: bilge.layers.Entry
    """What :func:`capture_entry` is given: the whole body when it is at most ``WHOLE_BODY`` bytes (the
    body cache reads such bodies whole anyway), else its first ``FORWARD_HEAD`` bytes; without a copy."""
    size = entry.size
    return entry.head(size if size <= bilge_body.WHOLE_BODY else FORWARD_HEAD)


def capture_entry(entry, head: bytes) -> Capture | ElfInfo | None:  # entry: bilge.layers.Entry, an ELF file
    """:func:`capture` of a layer entry, as cheaply as its size allows; ``head`` is :func:`entry_head`.

    A body of at most ``WHOLE_BODY`` bytes is whole in the entry's cache already. Of a larger one, when
    its first ``PT_LOAD`` segment is read-only and starts the file (the separate-code layout GNU ld, gold
    and lld write by default), only that segment is kept: it holds the dynamic string table, and the
    code and data between it and the dynamic section are passed over without being copied. The entry
    must not be read beyond its cached head after this: the ELF collector is the last visitor to read
    bodies. A file of another layout is read through the entry's cache, as :func:`capture` of a
    seekable reader. A file whose string table lies where the bytes were passed over (no such file is
    known), or whose body an earlier visitor streamed past the cache (a full read of a body over
    64 MiB), is parsed at once from what was read, and its ``ElfInfo.error`` says what could not be.
    """
    size = entry.size
    if len(head) == size:
        return capture_bytes(head)
    at = _Forward(entry, head)
    try:
        try:
            return _capture(at, size, at)
        except _Unusual:
            if not at.skimmed:
                if size <= bilge_body.FULL_CACHE_LIMIT:  # the body cache keeps it whole: seek in it
                    return capture(entry.fileobj, size)
                # of a larger body the cache keeps only the head: the prefix read is copied to seek in
                with GrowingSpool(entry.fileobj, size) as spool:
                    return capture(spool, size)  # type: ignore[arg-type]
    except bilge_body.StreamedPast:  # an earlier visitor streamed a body over 64 MiB past its cached head
        pass
    # what was read, parsed now: read_elf names in ElfInfo.error the bytes it misses
    return read_elf(SparseReader(size, _merge(at.ranges())))  # type: ignore[arg-type]


def _capture(at: Callable[[int, int], bytes], size: int, forward: _Forward | None = None) -> Capture:
    head = at(0, min(size, 64))
    wide = head[4:5] == b"\x02"
    if head[:4] != b"\x7fELF" or head[4:5] not in (b"\x01", b"\x02") or head[5:6] not in (b"\x01", b"\x02") \
            or len(head) < (64 if wide else 52):
        raise _Unusual  # not ELF, or a header pyelftools refuses or cannot finish
    end = "<" if head[5] == 1 else ">"
    ehdr, phdr = _STRUCTS[(end, wide)]
    (_, _, _, _, _, phoff, _, _, _, phentsize, phnum, _, _, _) = ehdr.unpack_from(head)
    if phnum >= 0xFFFF or (phoff > 0 and phentsize < phdr.size):
        raise _Unusual  # the count is in section 0 / pyelftools refuses
    loads: list[tuple[int, int, int]] = []
    dyn: tuple[int, int] | None = None
    table = at(phoff, (phnum - 1) * phentsize + phdr.size) if phnum else b""
    # the whole table, kept and read as one range: read_elf reads each entry of it
    ranges = [(0, head[:ehdr.size]), (phoff, table)]
    first_flags = None
    for i in range(phnum):
        if wide:
            p_type, p_flags, p_offset, p_vaddr, _, p_filesz, _, _ = phdr.unpack_from(table, i * phentsize)
        else:
            p_type, p_offset, p_vaddr, _, p_filesz, _, p_flags, _ = phdr.unpack_from(table, i * phentsize)
        if p_type == _PT_LOAD:
            if not loads:
                first_flags = p_flags
            loads.append((p_vaddr, p_filesz, p_offset))
        elif p_type == _PT_INTERP:
            ranges.append((p_offset, at(p_offset, min(p_filesz, 4096))))
        elif p_type == _PT_DYNAMIC and dyn is None:
            dyn = (p_offset, p_filesz)
    if dyn is None:
        return Capture(size, ranges)
    if dyn[1] > CAPTURE_LIMIT:
        raise _Unusual
    if forward is not None and loads and loads[0][2] == 0 and not first_flags & _PF_X \
            and 0 < loads[0][1] <= min(dyn[0], PREFIX_LIMIT):
        forward.keep = loads[0][1]  # a read-only first segment: the string table lies in it
    blob = at(dyn[0], dyn[1])
    ranges.append((dyn[0], blob))
    strtab, strsz = _string_table(blob, end, wide)
    if strtab is not None:
        where = _vaddr_to_offset(loads, strtab)
        where = strtab if where is None else where
        want = strsz if strsz is not None and strsz < (64 << 20) else 1 << 20
        if want > CAPTURE_LIMIT:
            raise _Unusual
        ranges.append((where, at(where, want)))
    return Capture(size, ranges)


def _string_table(blob: bytes, end: str, wide: bool) -> tuple[int | None, int | None]:
    """(DT_STRTAB, DT_STRSZ) of a dynamic section: the last of each before DT_NULL, as a scan finds them."""
    size = 16 if wide else 8
    blob = blob[:len(blob) - len(blob) % size]
    if end == _NATIVE:  # the common case, without a Python loop over the entries
        view = memoryview(blob)
        tags = view.cast("q" if wide else "i")[0::2].tolist()
        if 0 in tags:
            del tags[tags.index(0):]
        vals = view.cast("Q" if wide else "I")[1::2]
        found = []
        for tag in (5, 10):
            found.append(vals[len(tags) - 1 - tags[::-1].index(tag)] if tag in tags else None)
        return found[0], found[1]
    strtab = strsz = None
    for tag, val in struct.iter_unpack(end + ("qQ" if wide else "lL"), blob):
        if tag == 0:
            break
        if tag == 5:
            strtab = val
        elif tag == 10:
            strsz = val
    return strtab, strsz


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
