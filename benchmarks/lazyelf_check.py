#!/usr/bin/env python3
"""Check bilge.deps.lazyelf on a real image: for every ELF entry of every layer, the facts parsed from the
bytes kept during the image pass equal those of parsing the whole body (issue 15).

usage: .venv/bin/python benchmarks/lazyelf_check.py IMAGE [IMAGE...]

Two passes over each image: the first parses every ELF body whole (pyelftools on all of it), the second
runs ``capture_entry`` as the ELF collector does (after a 64 KiB head read, as the secrets scan does),
large bodies read forward. Prints the number of ELF entries, how many agree, how many were parsed at once
(unusual files), and the bytes kept. Bodies over 64 MB are skipped in the first pass (the layer reader
keeps only their first MiB for random access).
"""

from __future__ import annotations

import sys

from bilge.deps.lazyelf import Capture, capture_entry, entry_head
from bilge.elf import read_elf
from bilge.layers import iter_layer
from bilge.source import open_image


def _elf_entries(src, layer):
    for e in iter_layer(src, layer):
        if e.type == "file" and 4 <= e.size <= (64 << 20) and not e.unsafe and e.head(4) == b"\x7fELF":
            yield e


def main() -> None:
    n = same = eager = kept = total = 0
    bad = []
    for ref in sys.argv[1:]:
        with open_image(ref) as src:
            whole = {(layer.index, e.path): read_elf(e.fileobj)
                     for layer in src.image.layers for e in _elf_entries(src, layer)}
        with open_image(ref) as src:
            for layer in src.image.layers:
                for e in _elf_entries(src, layer):
                    got = capture_entry(e, entry_head(e))
                    n += 1
                    total += e.size
                    if isinstance(got, Capture):
                        kept += got.kept
                        got = got.info()
                    else:
                        eager += 1
                    if got == whole[(layer.index, e.path)]:
                        same += 1
                    else:
                        bad.append((ref, layer.index, e.path))
    print(f"ELF entries {n}, same facts {same}, parsed at once {eager}, kept {kept} of {total} bytes")
    for b in bad[:20]:
        print("DIFFERS:", *b)
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
