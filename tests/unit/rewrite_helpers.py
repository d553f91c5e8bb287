"""Test helpers: the visible tree of an image as plain data, and small images built in code."""

from __future__ import annotations

import hashlib
from collections import defaultdict
from pathlib import Path
from typing import Any

from bilge.rewrite import read_fs
from bilge.sink import Member, NewLayer, write_image
from bilge.source import open_image


def visible_tree(ref: str) -> dict[str, tuple[Any, ...]]:
    """path -> (kind, mode, uid, gid, link target or content sha256, hardlink group) for every visible path.

    Hardlinks and the files they share are reported as kind "file" with the group of paths sharing
    the body, the way an unpacked filesystem shows them (one inode, several names)."""
    hashes: dict[tuple[int, int], str] = {}
    counter: dict[int, int] = defaultdict(int)

    def visit(layer, entry) -> None:
        k = counter[layer.index]
        counter[layer.index] += 1
        if entry.type == "file" and not entry.unsafe and entry.whiteout is None:
            h = hashlib.sha256()
            fh = entry.fileobj
            while chunk := fh.read(1 << 20):
                h.update(chunk)
            hashes[(layer.index, k)] = h.hexdigest()

    with open_image(ref) as src:
        read = read_fs(src, visitors=[visit])
    fs = read.fs
    groups: dict[int, list[str]] = defaultdict(list)
    for path, v in fs.visible():
        if v.body is not None:
            groups[id(v.body)].append(path)
    tree: dict[str, tuple[Any, ...]] = {}
    for path, v in fs.visible():
        if v.body is not None:
            body = v.body
            content = hashes[(body.layer, read.ordinal[id(body)])]
            group = tuple(groups[id(body)]) if len(groups[id(body)]) > 1 else ()
            inode = body if v.kind == "hardlink" else v  # a link shows its inode's metadata
            tree[path] = ("file", inode.mode if not group else None, inode.uid if not group else None,
                          inode.gid if not group else None, content, group)
        elif v.kind == "hardlink":
            continue  # a dangling hardlink: nothing a runtime would see
        else:
            tree[path] = (v.kind, v.mode, v.uid, v.gid, v.linkname if v.kind == "symlink" else "", ())
    return tree


def build_image(path: Path, layers: list[list[tuple[Member, bytes | None]]], fmt: str = "oci-archive",
                config: dict | None = None) -> str:
    cfg = config or {"architecture": "amd64", "os": "linux", "config": {"Cmd": ["/bin/sh"]}}
    cfg = dict(cfg, history=[{"created_by": f"layer {i}"} for i in range(len(layers))])
    ref = f"{fmt}:{path}"
    write_image(ref, cfg, [NewLayer(members) for members in layers])
    return ref
