"""What really changed between two images: their merged filesystems compared by content, their
configs and their histories. Pure except for :func:`read_side`, which streams one image once.

Each side is read in one pass (``bilge.layers.iter_layer`` + ``bilge.fs.MergedFS``); every regular
file body is hashed (SHA-256) while it streams by and only the digest is kept, so memory holds one
small record per visible path, never file contents. Layers the two images share at the bottom of
their stacks (same diff_ids, same positions: a common base image) hold the same bytes on both
sides, so each such layer's files are hashed on one side only and the digest is borrowed by the
other (:func:`plan_shared`). The two reads can run side by side (:func:`read_pair`, one process per
image, fork).

A visible path is compared by kind (a hardlink counts as the regular file it shares a body with),
size and digest of regular files, symlink targets, permission bits and ownership; mtimes only when
asked (``mtime=True``): rebuilt and re-compressed images differ in mtimes everywhere.
"""

from __future__ import annotations

import difflib
import fnmatch
import hashlib
import json
import os
import traceback
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bilge.errors import BilgeError
from bilge.fs import MergedFS, Version
from bilge.image import Image
from bilge.layers import LayerStats, iter_layer

CHUNK = 1 << 20

# kind, size, mode, uid, gid, mtime, linkname, digest, body. digest: bytes (sha256), or (N, path) meaning
# "shared layer N wrote this body at path; the other side hashed it", or None (not a regular file).
# body: the path of the regular file holding the bytes (itself, or a hardlink's target), "" otherwise;
# byte totals count each body once, as `du` and analyze's visible_bytes do.
Node = tuple[str, int, int, int, int, float, str, "bytes | tuple[int, str] | None", str]
KIND, SIZE, MODE, UID, GID, MTIME, LINK, DIGEST, BODY = range(9)


@dataclass
class Side:
    """One image as the comparison needs it: a record per visible path, and the size totals."""

    image: Image
    nodes: dict[str, Node]
    layer_bytes: int  # regular-file entry bytes in all layers (analyze's layer_bytes)
    visible_bytes: int  # visible regular-file bytes, each hardlinked body once (analyze's visible_bytes)
    shared_digests: dict[tuple[int, str], bytes] = field(default_factory=dict)  # (layer, path) for the other side
    hashed_bytes: int = 0

    @property
    def compressed_bytes(self) -> int:
        return self.image.compressed_bytes

    @property
    def reclaimable_bytes(self) -> int:
        return self.layer_bytes - self.visible_bytes

    @property
    def files(self) -> int:
        return sum(1 for n in self.nodes.values() if n[KIND] == "file")


class _RecordingFS(MergedFS):
    """A MergedFS that remembers the last version it appended (the entry just applied)."""

    last: Version | None = None

    def _append(self, path: str, v: Version) -> None:
        super()._append(path, v)
        self.last = v


def hash_body(entry: Any) -> bytes:
    h = hashlib.sha256()
    fh = entry.fileobj
    if entry.size <= 64 << 20:  # held whole by the layer reader anyway: one read, one update
        h.update(fh.read())
        return h.digest()
    while chunk := fh.read(CHUNK):
        h.update(chunk)
    return h.digest()


def read_side(src: Any, *, verify: bool | None = None, skip_layers: Iterable[int] = (),
              keep_layers: Iterable[int] = ()) -> Side:
    """Read every layer of ``src`` once; keep one record per visible path.

    ``skip_layers``: shared layers whose bodies the other side hashes (their files get a placeholder
    digest, the layer index). ``keep_layers``: shared layers this side hashes for the other side too.
    """
    skip, keep = frozenset(skip_layers), frozenset(keep_layers)
    fs = _RecordingFS()
    digests: dict[int, bytes] = {}  # id(version) -> digest
    shared: dict[tuple[int, str], bytes] = {}
    hashed = 0
    for layer in src.image.layers:
        idx = layer.index
        fs.begin_layer(idx)
        stats = LayerStats()
        for entry in iter_layer(src, layer, verify=verify, stats=stats):
            digest = None
            if entry.type == "file" and entry.whiteout is None and not entry.unsafe and idx not in skip:
                digest = hash_body(entry)
                hashed += entry.size
            fs.last = None
            fs.apply(idx, entry)
            v = fs.last
            if digest is not None and v is not None and v.kind == "file":
                digests[id(v)] = digest
                if idx in keep:
                    shared[(idx, v.path)] = digest
        fs.end_layer(stats, layer.size)
    nodes: dict[str, Node] = {}
    for path, v in fs.visible():
        body = v.body if v.kind in ("file", "hardlink") else None
        if body is not None:
            d: bytes | tuple[int, str] | None = digests.get(id(body))
            if d is None and body.layer in skip:
                d = (body.layer, body.path)
            nodes[path] = ("file", body.size, v.mode, v.uid, v.gid, v.mtime, "", d if d is not None else b"",
                           body.path)
        elif v.kind == "hardlink":  # target missing: an empty file, as the engine would fail to make it
            nodes[path] = ("file", 0, v.mode, v.uid, v.gid, v.mtime, "", hashlib.sha256(b"").digest(), path)
        else:
            nodes[path] = (v.kind, 0, v.mode, v.uid, v.gid, v.mtime, v.linkname, None, "")
    layer_bytes = sum(s.file_bytes for s in fs.layers)
    visible_bytes = sum(b.size for b in fs.visible_bodies().values())
    return Side(src.image, nodes, layer_bytes, visible_bytes, shared, hashed)


def plan_shared(a: Image, b: Image) -> tuple[list[int], list[int]]:
    """Split the layers both images share at the bottom of their stacks between the two sides so that
    the two reads finish together: returns (layers A hashes, layers B hashes).

    A side's work is reading all its layers plus hashing its own layers' bodies; each shared layer
    (largest first) goes to the side with less work so far. Stored sizes stand in for the work."""
    common = []
    for la, lb in zip(a.layers, b.layers, strict=False):
        if not la.diff_id or la.diff_id != lb.diff_id:
            break
        common.append(la)
    n = len(common)
    wa = sum(lay.size for lay in a.layers) + sum(lay.size for lay in a.layers[n:])
    wb = sum(lay.size for lay in b.layers) + sum(lay.size for lay in b.layers[n:])
    a_part: list[int] = []
    b_part: list[int] = []
    for layer in sorted(common, key=lambda lay: -lay.size):
        if wa <= wb:
            a_part.append(layer.index)
            wa += layer.size
        else:
            b_part.append(layer.index)
            wb += layer.size
    return sorted(a_part), sorted(b_part)


def _resolve(side: Side, other: Side) -> None:
    """Replace placeholder digests (a shared layer the other side hashed) by the real digest."""
    for path, n in side.nodes.items():
        d = n[DIGEST]
        if isinstance(d, tuple):
            real = other.shared_digests.get(d)
            if real is None:  # cannot happen when both sides read the same layer; never call it equal
                real = b"?" + d[1].encode()
            side.nodes[path] = (*n[:DIGEST], real, n[BODY])  # type: ignore[assignment]


def read_pair(src_a: Any, src_b: Any, *, verify: bool | None = None, jobs: int = 2) -> tuple[Side, Side]:
    """Read both images (each once); with ``jobs`` >= 2 and fork available, side by side."""
    a_layers, b_layers = plan_shared(src_a.image, src_b.image)
    shared = set(a_layers) | set(b_layers)
    a_skip, b_skip = [i for i in shared if i not in a_layers], [i for i in shared if i not in b_layers]
    if jobs >= 2 and hasattr(os, "fork"):
        side_a, side_b = _parallel(
            lambda: read_side(src_a, verify=verify, skip_layers=a_skip, keep_layers=a_layers),
            lambda: read_side(src_b, verify=verify, skip_layers=b_skip, keep_layers=b_layers))
    else:
        side_a = read_side(src_a, verify=verify, skip_layers=a_skip, keep_layers=a_layers)
        side_b = read_side(src_b, verify=verify, skip_layers=b_skip, keep_layers=b_layers)
    _resolve(side_a, side_b)
    _resolve(side_b, side_a)
    return side_a, side_b


def _parallel(fa: Callable[[], Side], fb: Callable[[], Side]) -> tuple[Side, Side]:
    """Run ``fb`` in a forked child (its result pickled back through a pipe) while ``fa`` runs here."""
    import pickle

    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        code = 0
        try:
            os.close(rfd)
            try:
                result: tuple[str, Any] = ("ok", fb())
            except BilgeError as exc:
                result = ("bilge", (type(exc).__name__, str(exc), getattr(exc, "exit_code", 2)))
            except BaseException as exc:  # noqa: BLE001 - reported to the parent, which re-raises
                result = ("error", f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}")
            with os.fdopen(wfd, "wb") as out:
                pickle.dump(result, out, protocol=pickle.HIGHEST_PROTOCOL)
        except BaseException:  # noqa: BLE001
            code = 1
        finally:
            os._exit(code)
    os.close(wfd)
    try:
        side_a = fa()
    except BaseException:
        os.close(rfd)
        _reap(pid, kill=True)
        raise
    with os.fdopen(rfd, "rb") as inp:
        try:
            kind, payload = pickle.load(inp)
        except EOFError:
            kind, payload = "error", "the process reading the second image died"
    _reap(pid)
    if kind == "bilge":
        err = BilgeError(payload[1])
        err.exit_code = payload[2]  # type: ignore[attr-defined]
        raise err
    if kind == "error":
        raise RuntimeError(payload)
    return side_a, payload


def _reap(pid: int, kill: bool = False) -> None:
    import signal

    if kill:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass


# ---- comparison ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Change:
    path: str  # "/usr/bin/env"
    change: str  # added | removed | modified | type
    what: tuple[str, ...]  # for modified: content, mode, owner, target, mtime; for type: type
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
    shared = sum(1 for _ in _common_prefix(a.image, b.image))
    return DiffResult(summarize(a), summarize(b), tuple(changes), tuple(group_changes(changes, depth)),
                      tuple(config_changes(a.image, b.image, mask=mask)),
                      tuple(history_rows(a.image, b.image, mask=mask)), shared, tuple(ignore), mtime, depth)


def _common_prefix(a: Image, b: Image) -> Iterable[int]:
    for la, lb in zip(a.layers, b.layers, strict=False):
        if not la.diff_id or la.diff_id != lb.diff_id:
            return
        yield la.index


def percent(a: int, b: int) -> float | None:
    return None if a == 0 else 100.0 * (b - a) / a
