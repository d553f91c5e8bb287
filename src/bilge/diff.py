"""What really changed between two images: their merged filesystems compared by content, their
configs and their histories. Pure; the reading is :mod:`bilge.diffread` (``read_pair``, re-exported).

Each side is read once (``bilge.layers.iter_layer`` + ``bilge.fs.MergedFS``), shared bottom layers
once for both; a regular file body is hashed (SHA-256) while it streams by only when the other side
has a regular file of the same size at that path, and only the digest is kept, so memory holds one
small record per visible path, never file contents.

A visible path is compared by kind (a hardlink counts as the regular file it shares a body with),
size and digest of regular files, symlink targets, device numbers, permission bits and ownership;
mtimes only when asked (``mtime=True``): rebuilt and re-compressed images differ in mtimes everywhere.
"""
from __future__ import annotations

import difflib
import fnmatch
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bilge.diffread import (
    BODY,
    DIGEST,
    GID,
    KIND,
    LINK,
    MODE,
    MTIME,
    SIZE,
    UID,
    Node,
    Side,
    read_pair,
    shared_prefix,
)
from bilge.image import Image

__all__ = ["BODY", "DIGEST", "GID", "KIND", "LINK", "MODE", "MTIME", "SIZE", "UID", "Node", "Side", "read_pair"]


# ---- comparison ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Change:
    path: str  # "/usr/bin/env"
    change: str  # added | removed | modified | type
    what: tuple[str, ...]  # for modified: content, mode, owner, target, device, mtime; for type: type
    a: Node | None
    b: Node | None

    @property
    def a_size(self) -> int:
        return self.a[SIZE] if self.a else 0

    @property
    def b_size(self) -> int:
        return self.b[SIZE] if self.b else 0

    @property
    def delta(self) -> int:
        return self.b_size - self.a_size

    def sizes(self, seen_a: set[str], seen_b: set[str]) -> tuple[int, int]:
        """(a_size, b_size), each 0 when its body was already counted (hardlinks: one body, many paths)."""
        sa = sb = 0
        if self.a and self.a[SIZE] and self.a[BODY] not in seen_a:
            seen_a.add(self.a[BODY])
            sa = self.a[SIZE]
        if self.b and self.b[SIZE] and self.b[BODY] not in seen_b:
            seen_b.add(self.b[BODY])
            sb = self.b[SIZE]
        return sa, sb

    @property
    def changed_bytes(self) -> int:
        """Bytes that differ: a removed file's size, an added file's, the larger of a modified file's."""
        return _changed(self, self.a_size, self.b_size)


def _changed(c: Change, a_size: int, b_size: int) -> int:
    if c.change == "modified" and "content" not in c.what:
        return 0
    return max(a_size, b_size) if c.change in ("modified", "type") else a_size + b_size


class Ignore:
    """``--ignore`` patterns: with a ``/`` anchored at the root (``/var/cache/*``, ``var/log``), without
    one matched against every name (``*.pyc``, ``__pycache__``); a match takes the subtree with it."""

    def __init__(self, patterns: Sequence[str] = ()) -> None:
        self.anchored = [p.strip("/") for p in patterns if "/" in p.strip("/") or p.startswith("/")]
        self.names = [p for p in patterns if not ("/" in p.strip("/") or p.startswith("/"))]

    def __bool__(self) -> bool:
        return bool(self.anchored or self.names)

    def __call__(self, path: str) -> bool:
        parts = path.split("/")
        if any(fnmatch.fnmatchcase(name, pat) for name in parts for pat in self.names):
            return True
        return any(fnmatch.fnmatchcase("/".join(parts[:i]), pat)
                   for pat in self.anchored for i in range(1, len(parts) + 1))


def compare_nodes(a: Node, b: Node, *, mtime: bool = False) -> tuple[str, tuple[str, ...]] | None:
    """None when equal, else (change, what)."""
    if a[KIND] != b[KIND]:
        return "type", ("type",)
    what = []
    if a[KIND] == "file" and (a[SIZE] != b[SIZE] or a[DIGEST] != b[DIGEST]):
        what.append("content")
    if a[KIND] == "symlink" and a[LINK] != b[LINK]:
        what.append("target")
    if a[KIND] in ("char", "block") and a[LINK] != b[LINK]:
        what.append("device")
    if a[MODE] != b[MODE] and a[KIND] != "symlink":  # a symlink's mode means nothing on Linux
        what.append("mode")
    if (a[UID], a[GID]) != (b[UID], b[GID]):
        what.append("owner")
    if mtime and int(a[MTIME]) != int(b[MTIME]) and a[KIND] != "dir":
        what.append("mtime")
    return ("modified", tuple(what)) if what else None


def compare(a: Mapping[str, Node], b: Mapping[str, Node], *, ignore: Ignore | None = None,
            mtime: bool = False) -> list[Change]:
    """Every difference between two sets of visible paths, sorted by path."""
    out = []
    for path in sorted(a.keys() | b.keys()):
        if ignore and ignore(path):
            continue
        na, nb = a.get(path), b.get(path)
        if na is None:
            out.append(Change("/" + path, "added", (), None, nb))
        elif nb is None:
            out.append(Change("/" + path, "removed", (), na, None))
        else:
            diff = compare_nodes(na, nb, mtime=mtime)
            if diff is not None:
                out.append(Change("/" + path, diff[0], diff[1], na, nb))
    return out


@dataclass(frozen=True)
class Group:
    directory: str
    added: int
    removed: int
    modified: int  # modified and type changes
    a_bytes: int
    b_bytes: int
    changed_bytes: int

    @property
    def delta(self) -> int:
        return self.b_bytes - self.a_bytes


def directory_of(path: str, depth: int) -> str:
    parts = path.strip("/").split("/")[:-1]
    return "/" + "/".join(parts[:depth])


def group_changes(changes: Iterable[Change], depth: int) -> list[Group]:
    """Changes grouped by their directory cut at ``depth``; biggest (bytes that differ, then |delta|) first."""
    acc: dict[str, list[int]] = {}
    seen: dict[str, tuple[set[str], set[str]]] = {}
    for c in changes:
        key = directory_of(c.path, depth)
        g = acc.setdefault(key, [0, 0, 0, 0, 0, 0])
        g[0 if c.change == "added" else 1 if c.change == "removed" else 2] += 1
        sa, sb = c.sizes(*seen.setdefault(key, (set(), set())))
        g[3] += sa
        g[4] += sb
        g[5] += _changed(c, sa, sb)
    groups = [Group(d, *v) for d, v in acc.items()]
    groups.sort(key=lambda g: (-g.changed_bytes, -abs(g.delta), -(g.added + g.removed + g.modified), g.directory))
    return groups


# ---- config and history ----------------------------------------------------------------------

CONFIG_KEYS = ("User", "WorkingDir", "Entrypoint", "Cmd", "Env", "ExposedPorts", "Volumes", "Labels",
               "StopSignal", "Healthcheck", "Shell", "OnBuild")


@dataclass(frozen=True)
class ConfigChange:
    key: str  # "Cmd", "Env.PATH", "Labels.version", "ExposedPorts.8080/tcp", "platform"
    a: str | None  # rendered value (JSON for lists/objects), None when absent; masked unless asked
    b: str | None


def _render(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def _as_map(value: Any, split_env: bool = False) -> dict[str, Any]:
    if split_env:
        out: dict[str, Any] = {}
        for item in value or []:
            k, _, v = str(item).partition("=")
            out[k] = v
        return out
    return dict(value) if isinstance(value, Mapping) else {}


def _show(key: str, m: dict[str, Any], k: str, mask: Callable[[str], str]) -> str | None:
    if k not in m:
        return None
    if key in ("Env", "Labels"):  # masked as an assignment, so that name rules see the name
        return mask(f"{k}={_render(m[k])}").partition("=")[2]
    return ""  # ExposedPorts, Volumes: presence is the value


def config_changes(a: Image, b: Image, *, mask: Callable[[str], str] = lambda s: s) -> list[ConfigChange]:
    ca, cb = a.container_config, b.container_config
    out = []
    pa, pb = str(a.platform or ""), str(b.platform or "")
    if pa != pb:
        out.append(ConfigChange("platform", pa or None, pb or None))
    for key in CONFIG_KEYS:
        va, vb = ca.get(key), cb.get(key)
        if key in ("Env", "Labels", "ExposedPorts", "Volumes"):
            ma, mb = _as_map(va, key == "Env"), _as_map(vb, key == "Env")
            for k in sorted(ma.keys() | mb.keys()):
                if ma.get(k) != mb.get(k) or (k in ma) != (k in mb):
                    out.append(ConfigChange(f"{key}.{k}", _show(key, ma, k, mask), _show(key, mb, k, mask)))
            continue
        if (va or None) != (vb or None):
            out.append(ConfigChange(key, mask(_render(va)) if va else None, mask(_render(vb)) if vb else None))
    return out


@dataclass(frozen=True)
class HistoryItem:
    index: int
    text: str  # readable instruction (build args left out), masked unless asked
    layer: int | None
    diff_id: str | None
    layer_bytes: int | None  # the layer's stored (compressed) size


@dataclass(frozen=True)
class HistoryRow:
    op: str  # "=" same instruction (and same layer when both have one), "~" changed, "-" only in A, "+" only in B
    a: HistoryItem | None
    b: HistoryItem | None
    same_layer: bool  # both rows produced the same layer (same diff_id)


def _items(image: Image, mask: Callable[[str], str]) -> list[HistoryItem]:
    from bilge.history import instruction

    items = []
    for h in image.history:
        layer = image.layers[h.layer] if h.layer is not None and h.layer < len(image.layers) else None
        items.append(HistoryItem(h.index, mask(instruction(h.created_by)[1] or h.created_by), h.layer,
                                 layer.diff_id if layer else None, layer.size if layer else None))
    if not image.history:  # no history at all: one row per layer
        items = [HistoryItem(i, "", i, lay.diff_id, lay.size) for i, lay in enumerate(image.layers)]
    return items


def _key(item: HistoryItem) -> str:
    return " ".join(item.text.split())


def history_rows(a: Image, b: Image, *, mask: Callable[[str], str] = lambda s: s) -> list[HistoryRow]:
    """The two histories aligned (difflib on the readable instructions): unchanged, changed, only-in rows."""
    ia, ib = _items(a, mask), _items(b, mask)
    rows: list[HistoryRow] = []
    matcher = difflib.SequenceMatcher(None, [_key(i) for i in ia], [_key(i) for i in ib], autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            for x, y in zip(ia[i1:i2], ib[j1:j2], strict=True):
                same = bool(x.diff_id and x.diff_id == y.diff_id)
                differs = (x.layer is None) != (y.layer is None) or (x.layer is not None and not same)
                rows.append(HistoryRow("~" if differs else "=", x, y, same))
            continue
        la, lb = ia[i1:i2], ib[j1:j2]
        n = min(len(la), len(lb)) if tag == "replace" else 0
        for x, y in zip(la[:n], lb[:n], strict=True):
            rows.append(HistoryRow("~", x, y, bool(x.diff_id and x.diff_id == y.diff_id)))
        rows.extend(HistoryRow("-", x, None, False) for x in la[n:])
        rows.extend(HistoryRow("+", None, y, False) for y in lb[n:])
    return rows


# ---- the whole comparison --------------------------------------------------------------------


@dataclass(frozen=True)
class SideSummary:
    reference: str
    digest: str
    platform: str | None
    layers: int
    compressed_bytes: int
    layer_bytes: int
    visible_bytes: int
    reclaimable_bytes: int
    files: int
    paths: int


@dataclass(frozen=True)
class DiffResult:
    a: SideSummary
    b: SideSummary
    changes: tuple[Change, ...]
    groups: tuple[Group, ...]
    config: tuple[ConfigChange, ...]
    history: tuple[HistoryRow, ...]
    shared_layers: int  # bottom layers both images share (same diff_id, same position)
    ignored: tuple[str, ...] = ()
    mtime: bool = False
    depth: int = 2

    def counts(self) -> dict[str, int]:
        out = {"added": 0, "removed": 0, "modified": 0, "type": 0}
        for c in self.changes:
            out[c.change] += 1
        return out

    def bytes_by_change(self) -> dict[str, int]:
        """Bytes added, removed, and of modified files before/after; each hardlinked body once."""
        out = {"added": 0, "removed": 0, "modified_a": 0, "modified_b": 0}
        seen_a: set[str] = set()
        seen_b: set[str] = set()
        for c in self.changes:
            sa, sb = c.sizes(seen_a, seen_b)
            if c.change == "added":
                out["added"] += sb
            elif c.change == "removed":
                out["removed"] += sa
            elif "content" in c.what or c.change == "type":
                out["modified_a"] += sa
                out["modified_b"] += sb
        return out

    @property
    def differs(self) -> bool:
        """Filesystem or config differences (history alone does not count: a squash rewrites it)."""
        return bool(self.changes or self.config)


def summarize(side: Side) -> SideSummary:
    im = side.image
    return SideSummary(im.reference, im.digest or im.image_id, str(im.platform) if im.platform else None,
                       len(im.layers), side.compressed_bytes, side.layer_bytes, side.visible_bytes,
                       side.reclaimable_bytes, side.files, len(side.nodes))


def diff_sides(a: Side, b: Side, *, ignore: Sequence[str] = (), mtime: bool = False, depth: int = 2,
               mask: Callable[[str], str] = lambda s: s) -> DiffResult:
    changes = compare(a.nodes, b.nodes, ignore=Ignore(ignore), mtime=mtime)
    shared = shared_prefix(a.image, b.image)
    return DiffResult(summarize(a), summarize(b), tuple(changes), tuple(group_changes(changes, depth)),
                      tuple(config_changes(a.image, b.image, mask=mask)),
                      tuple(history_rows(a.image, b.image, mask=mask)), shared, tuple(ignore), mtime, depth)


def percent(a: int, b: int) -> float | None:
    return None if a == 0 else 100.0 * (b - a) / a
