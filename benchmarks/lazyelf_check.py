#!/usr/bin/env python3
"""Check bilge.deps.lazyelf on a real image: for every ELF entry of every layer, the facts parsed from the
bytes kept during the image pass equal those of parsing the whole body (issue 15).

usage: .venv/bin/python benchmarks/lazyelf_check.py IMAGE [IMAGE...]

Prints the number of ELF entries, how many agree, how many were parsed at once (unusual files), the bytes
kept, and the prefix each capture had to read (the sum over files of the furthest byte read).
Bodies over 64 MB are skipped (the layer reader keeps only their first MiB for random access).
"""

from __future__ import annotations

import sys

from bilge.deps.lazyelf import Capture, capture
from bilge.elf import read_elf
from bilge.layers import iter_layer
from bilge.source import open_image


def main() -> None:
    n = same = eager = kept = prefix = total = 0
    bad = []
    for ref in sys.argv[1:]:
        with open_image(ref) as src:
            for layer in src.image.layers:
                for e in iter_layer(src, layer):
                    if e.type != "file" or e.size < 4 or e.unsafe or e.size > (64 << 20) or e.read(4) != b"\x7fELF":
                        continue
                    full = read_elf(e.fileobj)
                    got = capture(e.fileobj, e.size)
                    n += 1
                    total += e.size
                    if isinstance(got, Capture):
                        kept += got.kept
                        prefix += max(off + len(data) for off, data in got.ranges)
                        got = got.info()
                    else:
                        eager += 1
                    if got == full:
                        same += 1
                    else:
                        bad.append((ref, layer.index, e.path))
    print(f"ELF entries {n}, same facts {same}, parsed at once {eager}, kept {kept} bytes, "
          f"prefix read {prefix} of {total} bytes")
    for b in bad[:20]:
        print("DIFFERS:", *b)
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
