"""The merged filesystem, with provenance.

Layers are applied in order as the OCI image spec says: ``.wh.NAME`` deletes NAME (a file or a whole
subtree) from the layers below, ``.wh..wh..opq`` hides everything the layers below put in its directory,
a later entry replaces an earlier one (file ↔ directory ↔ symlink; a non-directory replacing a
directory takes the subtree with it), and hardlinks share one body. Nothing is ever deleted from the
record: every version of every path keeps the layer that wrote it and the layer that hid it.

``walk_image`` makes one pass over an image and lets any number of visitors see every entry (with its
body) before it is applied, so size, secret and ELF analyses share a single read of the layers.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from bilge.image import Layer
from bilge.layers import Entry, LayerStats, iter_layer
from bilge.symlinks import MAX_SYMLINKS, walk

if TYPE_CHECKING:
    from bilge.source.base import ImageSource



class Version:
    """One version of one path: what a layer wrote there, and who hid it."""

    __slots__ = ("path", "layer", "kind", "size", "mode", "uid", "gid", "mtime", "linkname",
                 "hidden_by", "hidden_how", "hidden_root", "body", "implicit")

    def __init__(self, path: str, layer: int, kind: str, size: int = 0, mode: int = 0o755, uid: int = 0,
                 gid: int = 0, mtime: float = 0, linkname: str = "", implicit: bool = False) -> None:
        self.path = path
        self.layer = layer
        self.kind = kind  # file | dir | symlink | hardlink | char | block | fifo | other
        self.size = size  # body bytes of a regular file; 0 for everything else (hardlinks too)
        self.mode = mode
        self.uid = uid
        self.gid = gid
        self.mtime = mtime
        self.linkname = linkname
        self.hidden_by: int | None = None
        self.hidden_how: str | None = None  # deleted | overwritten | opaque | parent replaced
        self.hidden_root: str | None = None  # the path whose deletion/replacement hid this one
        self.body: Version | None = self if kind == "file" else None
        self.implicit = implicit  # a parent directory no tar entry named

    def __repr__(self) -> str:
        hid = f", hidden_by={self.hidden_by} ({self.hidden_how})" if self.hidden_by is not None else ""
        return f"Version({self.path!r}, layer={self.layer}, {self.kind}, {self.size}{hid})"

    @property
    def visible(self) -> bool:
        return self.hidden_by is None


@dataclass(frozen=True)
class FsFinding:
    kind: str  # unsafe-path | absolute-path | link-escape | symlink-cycle | hardlink-missing | path-through-symlink
    path: str
    layer: int | None
    message: str


@dataclass
class Whiteout:
    layer: int
    path: str
    kind: str  # "file" (.wh.NAME) or "opaque" (.wh..wh..opq, path = the directory)
    prev_kind: str | None
    hidden_files: int = 0
    hidden_bytes: int = 0


@dataclass
class LayerSummary:
    """Per-layer counts collected while the layer is applied."""

    index: int
    entries: int = 0
    regular_files: int = 0
    file_bytes: int = 0  # regular-file entry sizes (hardlinks count 0)
    added: int = 0
    modified: int = 0
    deleted: int = 0  # whiteout entries (opaque markers included)
    removed_files: int = 0  # lower-layer regular files hidden by this layer
    removed_bytes: int = 0
    compression: str = ""
    compressed_bytes: int = 0
    uncompressed_bytes: int = 0
    verified: bool = False
    dive_nodes: dict[str, int] = field(default_factory=dict, repr=False)


class MergedFS:
    def __init__(self) -> None:
        self._versions: dict[str, list[Version]] = {"": [Version("", -1, "dir", implicit=True)]}
        self._children: dict[str, dict[str, None]] = {"": {}}
        self.findings: list[FsFinding] = []
        self.whiteouts: list[Whiteout] = []
        self.layers: list[LayerSummary] = []
        self._current: LayerSummary | None = None

    # ---- queries -----------------------------------------------------------------------------

    def lookup(self, path: str) -> Version | None:
        """The visible version at ``path`` (no symlink following)."""
        versions = self._versions.get(path.strip("/"))
        if versions and versions[-1].hidden_by is None:
            return versions[-1]
        return None

    def versions(self, path: str) -> list[Version]:
        return list(self._versions.get(path.strip("/"), ()))

    def version_at(self, path: str, layer: int) -> Version | None:
        """The (last) version that ``layer`` wrote at ``path``."""
        for v in reversed(self._versions.get(path.strip("/"), ())):
            if v.layer == layer:
                return v
        return None

    def listdir(self, path: str) -> list[str]:
        path = path.strip("/")
        node = self.lookup(path)
        if node is None or node.kind != "dir":
            return []
        prefix = path + "/" if path else ""
        return sorted(n for n in self._children.get(path, ()) if self.lookup(prefix + n) is not None)

    def visible(self) -> Iterator[tuple[str, Version]]:
        """Every visible path (the root excluded), sorted."""
        for path, versions in sorted(self._versions.items()):  # (keys are unique: no list is compared)
            if path and versions:
                v = versions[-1]  # (what lookup(path) gives, without its call for each path)
                if v.hidden_by is None:
                    yield path, v

    def all_versions(self) -> Iterator[tuple[str, Version]]:
        """Every version of every path, hidden ones included (root excluded)."""
        for path, versions in self._versions.items():
            if path:
                for v in versions:
                    yield path, v

    def visible_bodies(self) -> dict[int, Version]:
        """The regular-file versions whose bytes are visible (each hardlinked body once), by id."""
        bodies: dict[int, Version] = {}
        for versions in self._versions.values():
            v = versions[-1]
            if v.hidden_by is None and v.body is not None:
                bodies[id(v.body)] = v.body
        return bodies

    def walk(self, path: str, *, follow_last: bool = True) -> tuple[str | None, str | None]:
        """Resolve ``path`` component by component, as the kernel would inside a chroot, but refusing to leave.

        Returns ``(real path, None)``, or ``(None, problem)`` with problem ``missing`` (a component does not
        exist), ``notdir`` (a component is not a directory), ``escape`` (``..`` above the root) or ``cycle``
        (more than MAX_SYMLINKS links).
        """
        w = walk(path, self.lookup, follow_last=follow_last)
        return (w.path, None) if w.problem is None else (None, w.problem)

    def resolve(self, path: str, *, follow_last: bool = True) -> str | None:
        """Follow symlinks inside the root; None when missing, cyclic, or leaving the root."""
        return self.walk(path, follow_last=follow_last)[0]

    def check_links(self) -> list[FsFinding]:
        """Find visible symlinks that escape the root or loop; record and return those findings."""
        found = []
        for path, v in self.visible():
            if v.kind != "symlink":
                continue
            problem = self.walk(path)[1]
            if problem == "escape":
                found.append(FsFinding("link-escape", path, v.layer,
                                       f"/{path} -> {v.linkname}: points outside the image root"))
            elif problem == "cycle":
                found.append(FsFinding("symlink-cycle", path, v.layer,
                                       f"/{path} -> {v.linkname}: symlink cycle or more than {MAX_SYMLINKS} links"))
        self.findings.extend(found)
        return found

    # ---- applying layers ---------------------------------------------------------------------

    def begin_layer(self, index: int) -> None:
        self._current = LayerSummary(index=index)
        self.layers.append(self._current)

    def end_layer(self, stats: LayerStats | None = None, compressed: int = 0) -> None:
        cur = self._current
        assert cur is not None
        if stats is not None:
            cur.compression, cur.uncompressed_bytes, cur.verified = (
                stats.compression, stats.uncompressed_bytes, stats.verified)
        cur.compressed_bytes = compressed
        self._current = None

    def apply(self, layer: int, entry: Entry) -> None:
        cur = self._current
        if cur is None or cur.index != layer:
            raise RuntimeError("apply() outside begin_layer()/end_layer()")
        cur.entries += 1
        if entry.type == "file":
            cur.regular_files += 1
            cur.file_bytes += entry.size
        if entry.unsafe:
            self.findings.append(FsFinding("unsafe-path", entry.raw_name, layer,
                                           f"layer {layer}: entry {entry.raw_name!r} skipped: {entry.unsafe}"))
            return
        if entry.raw_name.startswith("/"):
            self.findings.append(FsFinding("absolute-path", entry.raw_name, layer,
                                           f"layer {layer}: absolute entry name {entry.raw_name!r} "
                                           "applied relative to the root"))
        if entry.whiteout is not None:
            self._apply_whiteout(layer, entry.whiteout)
            return
        if not entry.path:  # the root directory itself
            root = self._versions[""][-1]
            root.mode, root.uid, root.gid = entry.mode, entry.uid, entry.gid
            return
        self._add(layer, entry)

    def _apply_whiteout(self, layer: int, whiteout: tuple[str, str]) -> None:
        cur = self._current
        assert cur is not None
        kind, target = whiteout
        cur.deleted += 1
        if kind == "opaque":
            record = Whiteout(layer, target, "opaque", "dir")
            dirv = self.lookup(target)
            if dirv is not None and dirv.kind == "dir":
                prefix = target + "/" if target else ""
                for name in list(self._children.get(target, ())):
                    self._hide_tree(prefix + name, layer, "opaque", target, record, strict_lower=True)
            self.whiteouts.append(record)
            cur.dive_nodes[target + "/.wh..opq" if target else ".wh..opq"] = 0
            return
        prev = self.lookup(target)
        record = Whiteout(layer, target, "file", prev.kind if prev else None)
        if prev is not None and prev.layer < layer:
            self._hide_tree(target, layer, "deleted", target, record, strict_lower=True)
        self.whiteouts.append(record)
        cur.dive_nodes[target] = record.hidden_bytes if record.prev_kind == "dir" else 0

    def _hide_tree(self, path: str, layer: int, how: str, root: str, record: Whiteout | None,
                   strict_lower: bool) -> None:
        cur = self._current
        stack = [path]
        while stack:
            p = stack.pop()
            v = self.lookup(p)
            if v is None or (strict_lower and v.layer >= layer):
                continue
            if v.kind == "dir":
                prefix = p + "/"
                stack.extend(prefix + n for n in self._children.get(p, ()))
            v.hidden_by, v.hidden_how, v.hidden_root = layer, how, root
            if v.kind == "file":
                if record is not None:
                    record.hidden_files += 1
                    record.hidden_bytes += v.size
                if cur is not None:
                    cur.removed_files += 1
                    cur.removed_bytes += v.size

    def _ensure_dir(self, path: str, layer: int) -> str:
        """Make every component of ``path`` a visible directory; return the real path (symlinks followed)."""
        if not path:
            return ""
        v = self.lookup(path)
        if v is not None and v.kind == "dir":
            return path  # a visible directory's ancestors are all visible directories
        real: list[str] = []
        for comp in path.split("/"):
            candidate = "/".join(real + [comp])
            v = self.lookup(candidate)
            if v is not None and v.kind == "symlink":
                target = self.resolve(candidate)
                tv = self.lookup(target) if target is not None else None
                if target is not None and tv is not None and tv.kind == "dir":
                    self.findings.append(FsFinding(
                        "path-through-symlink", candidate, layer,
                        f"layer {layer}: entries under /{candidate} land in /{target} (a symlink)"))
                    real = target.split("/") if target else []
                    continue
                self.findings.append(FsFinding(
                    "path-through-symlink", candidate, layer,
                    f"layer {layer}: /{candidate} is a symlink that does not lead to a directory in the image; "
                    "replaced by a directory"))
            if v is None or v.kind != "dir":
                if v is not None:
                    self._replace(v, layer)
                nv = Version(candidate, layer, "dir", implicit=True)
                self._append(candidate, nv)
            real.append(comp)
        return "/".join(real)

    def _replace(self, prev: Version, layer: int) -> None:
        if prev.kind == "dir":
            prefix = prev.path + "/"
            for name in list(self._children.get(prev.path, ())):
                self._hide_tree(prefix + name, layer, "parent replaced", prev.path, None, strict_lower=False)
        prev.hidden_by, prev.hidden_how, prev.hidden_root = layer, "overwritten", prev.path

    def _append(self, path: str, v: Version) -> None:
        self._versions.setdefault(path, []).append(v)
        parent, _, name = path.rpartition("/")
        self._children.setdefault(parent, {})[name] = None

    def _add(self, layer: int, entry: Entry) -> None:
        cur = self._current
        assert cur is not None
        versions = self._versions
        parent, _, name = entry.path.rpartition("/")
        pv = versions.get(parent)
        if pv is not None and pv[-1].kind == "dir" and pv[-1].hidden_by is None:
            real_parent = parent  # the common case: the parent is a visible directory
        else:
            real_parent = self._ensure_dir(parent, layer)
        path = f"{real_parent}/{name}" if real_parent else name
        kind = entry.type if entry.type in _KINDS else "other"
        size = entry.size if kind == "file" else 0
        cur.dive_nodes[path] = size
        here = versions.get(path)
        prev = here[-1] if here and here[-1].hidden_by is None else None
        if prev is not None:
            if prev.kind == "dir" and kind == "dir":
                if (prev.mode, prev.uid, prev.gid) != (entry.mode, entry.uid, entry.gid) and not prev.implicit:
                    cur.modified += 1
                prev.hidden_by, prev.hidden_how, prev.hidden_root = layer, "overwritten", path
            else:
                if prev.layer < layer or prev.kind != "dir":
                    cur.modified += 1
                self._replace(prev, layer)
        else:
            cur.added += 1
        v = Version(path, layer, kind, size, entry.mode, entry.uid, entry.gid, entry.mtime, entry.linkname)
        if kind == "hardlink":
            target = self.lookup(entry.linkname)
            if target is not None and target.body is not None:
                v.body = target.body
            else:
                self.findings.append(FsFinding("hardlink-missing", path, layer,
                                               f"layer {layer}: hardlink /{path} -> /{entry.linkname}: "
                                               "target is not a regular file in the image"))
        self._append(path, v)  # a hook for subclasses (bilge.diffread records the version appended)


_KINDS = frozenset(("file", "dir", "symlink", "hardlink", "char", "block", "fifo"))


Visitor = Callable[[Layer, Entry], None]


GEN0_DURING_WALK = 20_000


@contextmanager
def fewer_collections(gen0: int = GEN0_DURING_WALK) -> Iterator[None]:
    """Python's cyclic collector run every ``gen0`` allocations (of container objects) instead of every
    700 until the block ends. A walk allocates hundreds of thousands of objects that live to the end
    (versions, the merged tree's dicts, the visitors' findings) and no cycles worth finding; with the
    default threshold, the full collections on the way scanned them again and again (~0.13 s of CPU
    in `bilge secrets` of the 1.2 GB benchmark image, against ~0.04 s). A collector switched off
    (threshold 0) stays off; the thresholds are restored afterwards. The command line runs every
    command so (what a command builds after its walk lives to its end too)."""
    old = gc.get_threshold()
    if 0 < old[0] < gen0:
        gc.set_threshold(gen0, *old[1:])
    try:
        yield
    finally:
        gc.set_threshold(*old)


def walk_image(src: ImageSource, visitors: Iterable[Visitor] = (), *, verify: bool | None = None,
               progress: Callable[[Layer, int], None] | None = None) -> MergedFS:
    """Read every layer once, in order; call each visitor on every entry, then apply it."""
    fs = MergedFS()
    visitors = list(visitors)
    with fewer_collections():
        for layer in src.image.layers:
            fs.begin_layer(layer.index)
            stats = LayerStats()
            for entry in iter_layer(src, layer, verify=verify, stats=stats):
                for visit in visitors:
                    visit(layer, entry)
                fs.apply(layer.index, entry)
            fs.end_layer(stats, layer.size)
            if progress is not None:
                progress(layer, layer.size)
    fs.check_links()
    return fs
