"""Minimal ELF64 executables built byte by byte, with whatever dynamic section a test wants."""

from __future__ import annotations

import struct

BASE = 0x400000
INTERP = b"/lib64/ld-linux-x86-64.so.2\0"


def elf(needed: list[str] = (), rpath: str | None = None, *, needed_index: int | None = None,
        strtab_vaddr: int | None = None, phoff: int | None = None) -> bytes:
    """An x86-64 executable with PT_INTERP and PT_DYNAMIC: DT_NEEDED ``needed``, DT_RPATH ``rpath``.

    ``needed_index`` adds a DT_NEEDED pointing at that .dynstr offset; ``strtab_vaddr`` overrides
    DT_STRTAB; ``phoff`` puts the program headers at that offset (e.g. past the end of the file)."""
    strings = b"\0"
    offsets = []
    for name in [*needed, *([rpath] if rpath is not None else [])]:
        offsets.append(len(strings))
        strings += name.encode() + b"\0"
    nph = 3
    ph_at = 64
    interp_at = ph_at + 56 * nph
    str_at = interp_at + len(INTERP)
    dyn_entries = [(1, o) for o in offsets[: len(needed)]]
    if rpath is not None:
        dyn_entries.append((15, offsets[-1]))
    if needed_index is not None:
        dyn_entries.append((1, needed_index))
    dyn_entries += [(5, strtab_vaddr if strtab_vaddr is not None else BASE + str_at), (10, len(strings)), (0, 0)]
    dyn_at = (str_at + len(strings) + 7) & ~7
    dyn = b"".join(struct.pack("<qQ", t, v) for t, v in dyn_entries)
    total = dyn_at + len(dyn)
    header = b"\x7fELF" + bytes([2, 1, 1, 0]) + b"\0" * 8 + struct.pack(
        "<HHIQQQIHHHHHH", 2, 62, 1, BASE + total, phoff if phoff is not None else ph_at, 0, 0, 64, 56, nph, 64, 0, 0)
    phdrs = struct.pack("<IIQQQQQQ", 1, 5, 0, BASE, BASE, total, total, 0x1000)
    phdrs += struct.pack("<IIQQQQQQ", 3, 4, interp_at, BASE + interp_at, BASE + interp_at, len(INTERP), len(INTERP), 1)
    phdrs += struct.pack("<IIQQQQQQ", 2, 6, dyn_at, BASE + dyn_at, BASE + dyn_at, len(dyn), len(dyn), 8)
    body = header + phdrs + INTERP + strings
    body += b"\0" * (dyn_at - len(body)) + dyn
    assert len(body) == total
    return body
