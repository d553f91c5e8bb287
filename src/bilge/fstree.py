"""The final filesystem as a size tree, dead weight included where it sits: what `bilge report` draws.

Pure: :class:`~bilge.fs.MergedFS` → :class:`TreeNode`. Two kinds of bytes, with the definitions of
:mod:`bilge.analyze` (the tree's totals equal its ``visible_bytes`` and ``reclaimable_bytes``):

- visible: every regular file of the final filesystem, each hardlinked body once (at the first path
  that shows it, in sorted order), attributed to the layer that wrote the body;
- dead: every regular-file version no one can see (deleted, overwritten, under an opaque directory),
  at the path it was written to, attributed to the layer that wrote it.

A path that only holds dead bytes (a deleted directory) is in the tree too: that is where the dead
weight sits. The tree is cut to about ``max_nodes`` nodes: the largest directories are expanded
first; in an expanded directory the entries smaller than ``min_fraction`` of the whole are merged
into one ``rest`` node; a directory left unexpanded is a leaf with ``collapsed`` set. Every node keeps
the exact totals of what it stands for.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

from bilge.fs import MergedFS


@dataclass(frozen=True)
class TreeNode:
    name: str  # last path component; "/" for the root; "" for a rest node
    path: str  # "/usr/lib"; for a rest node its directory
    kind: str  # dir | file | rest (entries of one directory merged because each is small)
    bytes: int  # visible bytes under it
    dead_bytes: int  # dead bytes under it
    files: int  # visible regular files (hardlinks included) under it
    dead_files: int  # dead regular-file versions under it
    by_layer: tuple[tuple[int, int], ...]  # (layer, visible bytes) that layer wrote, largest first
    dead_by_layer: tuple[tuple[int, int], ...]  # (layer, dead bytes) that layer wrote, largest first
    children: tuple[TreeNode, ...] = ()
    entries: int = 0  # rest: how many entries were merged; collapsed dir: how many children it has
    collapsed: bool = False  # a directory whose children are not listed

    @property
    def total(self) -> int:
        return self.bytes + self.dead_bytes


class _Raw:
    __slots__ = ("kids", "vis", "dead", "files", "dead_files", "is_file", "small", "small_names")

    def __init__(self) -> None:
        self.kids: dict[str, _Raw] = {}
        self.vis: dict[int, int] = {}
        self.dead: dict[int, int] = {}
        self.files = 0
        self.dead_files = 0
        self.is_file = False
        self.small: _Raw | None = None  # this directory's files each below the size cut, merged
        self.small_names: set[str] = set()

    @property
    def total(self) -> int:
        return sum(self.vis.values()) + sum(self.dead.values())

    def merge(self, other: _Raw) -> None:
        for layer, b in other.vis.items():
            self.vis[layer] = self.vis.get(layer, 0) + b
        for layer, b in other.dead.items():
            self.dead[layer] = self.dead.get(layer, 0) + b
        self.files += other.files
        self.dead_files += other.dead_files


def _items(fs: MergedFS) -> list[tuple[str, int, int, bool]]:
    """(path, layer, bytes, dead) of every visible regular file and every dead file version."""
    items: list[tuple[str, int, int, bool]] = []
    bodies = fs.visible_bodies()
    seen: set[int] = set()
    for path, v in fs.visible():
        if v.body is None:
            continue
        first = id(v.body) not in seen
        seen.add(id(v.body))
        items.append((path, v.body.layer, v.body.size if first else 0, False))
    for _path, v in fs.all_versions():
        if v.kind != "file" or id(v) in bodies or v.size == 0:
            continue
        items.append((v.path, v.layer, v.size, True))
    return items


def raw_tree(fs: MergedFS, min_fraction: float = 0.0) -> tuple[_Raw, float]:
    """The whole tree, every total exact, and the size cut: the files smaller than ``min_fraction``
    of all the bytes are merged per directory."""
    items = _items(fs)
    min_bytes = sum(item[2] for item in items) * min_fraction
    root = _Raw()
    dirs: dict[str, _Raw] = {"": root}

    def dir_node(d: str) -> _Raw:
        node = dirs.get(d)
        if node is None:
            parent, _, name = d.rpartition("/")
            pnode = dir_node(parent)
            node = pnode.kids.get(name)
            if node is None:
                node = pnode.kids[name] = _Raw()
            dirs[d] = node
        return node

    for path, layer, size, dead in items:  # (~50,000 items: counted inline, not by a method)
        d, _, name = path.strip("/").rpartition("/")
        parent = dirs.get(d) or dir_node(d)
        if size > 0 and size >= min_bytes:
            node = parent.kids.get(name)
            if node is None:
                node = parent.kids[name] = _Raw()
            node.is_file = True
        else:
            node = parent.small
            if node is None:
                node = parent.small = _Raw()
            parent.small_names.add(name)
        if dead:
            acc = node.dead
            node.dead_files += 1
        else:
            acc = node.vis
            node.files += 1
        acc[layer] = acc.get(layer, 0) + size
    # totals bottom-up: a directory's own counts are those of a file once at its path (if any),
    # then its merged small files and its children, deepest directories first
    for d in sorted(dirs, key=lambda p: -p.count("/") if p else 1):
        node = dirs[d]
        if node.small is not None:
            node.merge(node.small)
        for kid in node.kids.values():
            node.merge(kid)
    return root, min_bytes


def _ranked(acc: dict[int, int]) -> tuple[tuple[int, int], ...]:
    return tuple(sorted(((k, b) for k, b in acc.items() if b), key=lambda kv: (-kv[1], kv[0])))


def build_tree(fs: MergedFS, *, max_nodes: int = 2500, min_fraction: float = 1 / 4000) -> TreeNode:
    """The size tree of ``fs``, cut to about ``max_nodes`` nodes (see the module docstring)."""
    root, min_bytes = raw_tree(fs, min_fraction)
    expanded: set[int] = set()
    count = 1
    heap: list[tuple[int, int, _Raw]] = [(-root.total, 0, root)]
    tick = 1
    while heap and count < max_nodes:
        _, _, node = heapq.heappop(heap)
        expanded.add(id(node))
        big = [k for k in node.kids.values() if k.total >= min_bytes and k.total > 0]
        count += len(big) + (1 if len(big) < len(node.kids) or node.small is not None else 0)
        for k in big:
            if k.kids:
                heapq.heappush(heap, (-k.total, tick, k))
                tick += 1

    def convert(name: str, path: str, node: _Raw) -> TreeNode:
        kind = "file" if node.is_file and not node.kids and not node.small_names else "dir"
        children: list[TreeNode] = []
        if id(node) in expanded:
            rest: list[_Raw] = [node.small] if node.small is not None else []
            for kname in sorted(node.kids):
                k = node.kids[kname]
                if k.total >= min_bytes and k.total > 0:
                    children.append(convert(kname, f"{path.rstrip('/')}/{kname}", k))
                else:
                    rest.append(k)
            if rest:
                vis: dict[int, int] = {}
                dead: dict[int, int] = {}
                for k in rest:
                    for layer, b in k.vis.items():
                        vis[layer] = vis.get(layer, 0) + b
                    for layer, b in k.dead.items():
                        dead[layer] = dead.get(layer, 0) + b
                children.append(TreeNode(
                    name="", path=path, kind="rest", bytes=sum(vis.values()), dead_bytes=sum(dead.values()),
                    files=sum(k.files for k in rest), dead_files=sum(k.dead_files for k in rest),
                    by_layer=_ranked(vis), dead_by_layer=_ranked(dead),
                    entries=len(rest) - (node.small is not None) + len(node.small_names)))
            children.sort(key=lambda c: (-c.total, c.kind == "rest", c.name))
        return TreeNode(
            name=name, path=path, kind=kind, bytes=sum(node.vis.values()), dead_bytes=sum(node.dead.values()),
            files=node.files, dead_files=node.dead_files, by_layer=_ranked(node.vis),
            dead_by_layer=_ranked(node.dead), children=tuple(children),
            entries=0 if id(node) in expanded else len(node.kids) + len(node.small_names),
            collapsed=bool(node.kids or node.small_names) and id(node) not in expanded)

    return convert("/", "/", root)
