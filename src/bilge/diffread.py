"""Reading the two images of ``bilge diff`` (the comparison itself is :mod:`bilge.diff`): one record
per visible path of each image, never file contents, and as little reading and hashing as exactness
allows.

* **Shared bottom layers are read once.** Layers both images have at the bottom of their stacks
  (same diff_id, the uncompressed digest, at the same positions: a common base image) hold the same
  entries on both sides. They are read once (from A, verified there) and the merged filesystem built
  so far is handed to both sides by ``fork``: one process per image continues with its own layers.
  A body written by a shared layer is identified by (layer, entry number) and never hashed when both
  sides still show that same entry.
* **A body is hashed only when the other side could hold the same bytes**: same path, regular file,
  same size. An added, removed or resized file differs whatever its bytes. While the other side is
  still reading, nothing is known of it and every body is hashed; the side that finishes first sends
  its final ``{path: size}`` map to the other (a file in a temporary directory and one byte through a
  pipe), which from then on hashes only those candidates. With ``jobs=1`` the side with less of its
  own to read goes first, so the other hashes only candidates from the start.
* **Second pass for what is still unknown** (a candidate whose body was not hashed: a shared-layer
  body one side rewrote with the same size, a hardlink to an unhashed body): the layers holding those
  bodies are read again and only those bodies hashed. Results are exact in every case; only the
  amount of work depends on timing.

After :func:`read_pair`, a regular file's digest is the SHA-256 of its bytes when the other side has
a regular file of the same size at the same path (or the same shared-layer entry, kept as its
``(layer, entry)`` token), and None otherwise.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import select
import struct
import tempfile
import threading
import traceback
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from bilge import cleanup
from bilge.errors import BilgeError
from bilge.fs import MergedFS, Version
from bilge.image import Image, Layer
from bilge.layers import LayerStats, iter_layer

# kind, size, mode, uid, gid, mtime, link, digest, body. link: a symlink's target, a device's
# "major,minor", "" otherwise. digest: see the module docstring (bytes, a (layer, entry) token, or None).
# body: the path of the regular file holding the bytes (itself, or a hardlink's target), "" otherwise;
# byte totals count each body once, as `du` and analyze's visible_bytes do.
Node = tuple[str, int, int, int, int, float, str, "bytes | tuple[int, int] | None", str]
KIND, SIZE, MODE, UID, GID, MTIME, LINK, DIGEST, BODY = range(9)
EMPTY = hashlib.sha256(b"").digest()
Progress = Callable[[int], None]


@dataclass
class Side:
    """One image as the comparison needs it: a record per visible path, and the size totals."""

    image: Image
    nodes: dict[str, Node]
    layer_bytes: int  # regular-file entry bytes in all layers (analyze's layer_bytes)
    visible_bytes: int  # visible regular-file bytes, each hardlinked body once (analyze's visible_bytes)
    hashed_bytes: int = 0  # body bytes this side hashed (both passes)

    @property
    def compressed_bytes(self) -> int:
        return self.image.compressed_bytes

    @property
    def reclaimable_bytes(self) -> int:
        return self.layer_bytes - self.visible_bytes

    @property
    def files(self) -> int:
        return sum(1 for n in self.nodes.values() if n[KIND] == "file")

    def file_sizes(self) -> dict[str, int]:
        return {p: n[SIZE] for p, n in self.nodes.items() if n[KIND] == "file"}


class _RecordingFS(MergedFS):
    """A MergedFS that remembers the last version it appended (the entry just applied)."""

    last: Version | None = None

    def _append(self, path: str, v: Version) -> None:
        super()._append(path, v)
        self.last = v


def hash_body(entry: Any) -> bytes:
    h = hashlib.sha256()
    for chunk in entry.chunks():
        h.update(chunk)
    return h.digest()


def shared_prefix(a: Image, b: Image) -> int:
    """How many bottom layers both images share: same diff_id at the same position."""
    n = 0
    for la, lb in zip(a.layers, b.layers, strict=False):
        if not la.diff_id or la.diff_id != lb.diff_id:
            break
        n += 1
    return n


def read_bytes(a: Image, b: Image) -> int:
    """Stored bytes :func:`read_pair` reads (the shared layers once), for a progress bar."""
    n = shared_prefix(a, b) if hasattr(os, "fork") else 0
    return a.compressed_bytes + sum(lay.size for lay in b.layers[n:])


class _Reader:
    """One image's merged filesystem as it is built: a digest or a (layer, entry) token per body."""

    def __init__(self, shared: int) -> None:
        self.shared = shared
        self.fs = _RecordingFS()
        self.digests: dict[int, bytes] = {}  # id(version) -> sha256
        self.where: dict[int, tuple[int, int]] = {}  # id(version) -> (layer, entry number)
        self.devices: dict[int, str] = {}  # id(version) -> "major,minor"
        self.hashed = 0

    def read(self, src: Any, layers: Iterable[Layer], *, verify: bool | None, want: Callable[[str, int], bool],
             progress: Progress | None = None) -> None:
        fs = self.fs
        for layer in layers:
            idx = layer.index
            fs.begin_layer(idx)
            stats = LayerStats()
            for k, entry in enumerate(iter_layer(src, layer, verify=verify, stats=stats)):
                fs.last = None
                fs.apply(idx, entry)
                v = fs.last
                if v is None:
                    continue
                if v.kind == "file":
                    self.where[id(v)] = (idx, k)
                    if v.size == 0:
                        self.digests[id(v)] = EMPTY
                    elif idx >= self.shared and want(v.path, v.size):
                        self.digests[id(v)] = hash_body(entry)
                        self.hashed += v.size
                elif v.kind in ("char", "block"):
                    self.devices[id(v)] = f"{entry.devmajor},{entry.devminor}"
            fs.end_layer(stats, layer.size)
            if progress is not None:
                progress(layer.size)

    def side(self, image: Image) -> Side:
        fs = self.fs
        nodes: dict[str, Node] = {}
        for path, v in fs.visible():
            body = v.body if v.kind in ("file", "hardlink") else None
            if body is not None:
                d: bytes | tuple[int, int] | None = self.digests.get(id(body)) or self.where.get(id(body))
                nodes[path] = ("file", body.size, v.mode, v.uid, v.gid, v.mtime, "", d, body.path)
            elif v.kind == "hardlink":  # target missing: an empty file, as the engine would fail to make it
                nodes[path] = ("file", 0, v.mode, v.uid, v.gid, v.mtime, "", EMPTY, path)
            else:
                link = v.linkname if v.kind == "symlink" else self.devices.get(id(v), "")
                nodes[path] = (v.kind, 0, v.mode, v.uid, v.gid, v.mtime, link, None, "")
        layer_bytes = sum(s.file_bytes for s in fs.layers)
        visible_bytes = sum(b.size for b in fs.visible_bodies().values())
        return Side(image, nodes, layer_bytes, visible_bytes, self.hashed)


class _Link:
    """What one side knows of the other: nothing yet, or the other's final {path: size} of regular files."""

    def __init__(self, rfd: int | None = None, wfd: int | None = None, recv: Path | None = None,
                 send: Path | None = None, other: dict[str, int] | None = None) -> None:
        self.rfd, self.wfd, self.recv_path, self.send_path, self.other = rfd, wfd, recv, send, other

    def _load(self, block: bool) -> None:
        if self.rfd is None or (not block and not select.select([self.rfd], [], [], 0)[0]):
            return
        if os.read(self.rfd, 1) == b"1" and self.recv_path is not None:  # b"": the other side died
            with open(self.recv_path, "rb") as fh:
                self.other = pickle.load(fh)
        os.close(self.rfd)
        self.rfd = None

    def wait(self) -> None:
        self._load(block=True)

    def want(self, path: str, size: int) -> bool:
        if self.other is None:
            self._load(block=False)
            if self.other is None:
                return True
        return self.other.get(path) == size

    def send(self, files: dict[str, int]) -> None:
        if self.wfd is None or self.send_path is None:
            return
        tmp = self.send_path.with_suffix(".tmp")
        with open(tmp, "wb") as fh:
            pickle.dump(files, fh, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, self.send_path)
        try:
            os.write(self.wfd, b"1")  # one byte: never blocks
        except BrokenPipeError:  # the other side is done and no longer listens
            pass
        os.close(self.wfd)
        self.wfd = None


def _own_bytes(image: Image, shared: int) -> int:
    return sum(lay.size for lay in image.layers[shared:])


def read_pair(src_a: Any, src_b: Any, *, verify: bool | None = None, jobs: int = 2,
              progress: Progress | None = None) -> tuple[Side, Side]:
    """Read both images (each layer once; shared bottom layers once for both), side by side with
    ``jobs`` >= 2; return the two sides with digests settled (see the module docstring)."""
    if not hasattr(os, "fork"):  # no fork: one after the other, the second hashing only candidates
        ra, rb = _Reader(shared_prefix(src_a.image, src_b.image)), None
        ra.read(src_a, src_a.image.layers, verify=verify, want=lambda p, s: True, progress=progress)
        side_a = ra.side(src_a.image)
        rb = _Reader(ra.shared)
        rb.read(src_b, src_b.image.layers, verify=verify, want=_Link(other=side_a.file_sizes()).want,
                progress=progress)
        side_b = rb.side(src_b.image)
    else:
        side_a, side_b = _read_forked(src_a, src_b, verify=verify, jobs=jobs, progress=progress)
    settle(side_a, side_b, src_a, src_b, shared_prefix(src_a.image, src_b.image), verify=verify)
    return side_a, side_b


def _read_forked(src_a: Any, src_b: Any, *, verify: bool | None, jobs: int,
                 progress: Progress | None) -> tuple[Side, Side]:
    n = shared_prefix(src_a.image, src_b.image)
    reader = _Reader(n)
    reader.read(src_a, src_a.image.layers[:n], verify=verify, want=lambda p, s: False, progress=progress)
    a_first = _own_bytes(src_a.image, n) <= _own_bytes(src_b.image, n)
    with tempfile.TemporaryDirectory(dir=cleanup.tempdir(), prefix="bilge-diff-") as tmp:
        ab_r, ab_w = os.pipe()  # "A's map is ready"
        ba_r, ba_w = os.pipe()  # "B's map is ready"
        link_a = _Link(ba_r, ab_w, Path(tmp, "b.map"), Path(tmp, "a.map"))
        link_b = _Link(ab_r, ba_w, Path(tmp, "a.map"), Path(tmp, "b.map"))

        def run(src: Any, link: _Link, wait: bool, report: Progress | None) -> Side:
            if wait:
                link.wait()
            reader.read(src, src.image.layers[n:], verify=verify, want=link.want, progress=report)
            side = reader.side(src.image)
            link.send(side.file_sizes())
            return side

        return _parallel(lambda: run(src_a, link_a, jobs < 2 and not a_first, progress),
                         lambda report: run(src_b, link_b, jobs < 2 and a_first, report),
                         parent_fds=(ab_r, ba_w), child_fds=(ba_r, ab_w), progress=progress)


def settle(side_a: Side, side_b: Side, src_a: Any, src_b: Any, shared: int, *, verify: bool | None = None) -> None:
    """Give both files of every same-path, same-size pair a digest (hashing, in a second pass, the
    bodies the first pass left unhashed), unless both are the same entry of a shared layer; every
    other file's digest becomes None (it differs whatever its bytes)."""
    need: dict[str, dict[int, set[int]]] = {"shared": {}, "a": {}, "b": {}}
    for path, na in side_a.nodes.items():
        nb = side_b.nodes.get(path)
        if not _candidates(na, nb):
            continue
        da, db = na[DIGEST], nb[DIGEST]  # type: ignore[index]
        if isinstance(da, tuple) and da == db and da[0] < shared:
            continue
        for key, d in (("a", da), ("b", db)):
            if isinstance(d, tuple):
                need["shared" if d[0] < shared else key].setdefault(d[0], set()).add(d[1])
    got: dict[tuple[str, int, int], bytes] = {}
    for where, src, side in (("shared", src_a, side_a), ("a", src_a, side_a), ("b", src_b, side_b)):
        digests, nbytes = hash_entries(src, need[where], verify=verify)
        got.update({(where, *k): v for k, v in digests.items()})
        side.hashed_bytes += nbytes
    for key, side, other in (("a", side_a, side_b), ("b", side_b, side_a)):
        for path, n in side.nodes.items():
            if n[KIND] != "file":
                continue
            d = n[DIGEST]
            if not _candidates(n, other.nodes.get(path)):
                d = None
            elif d is None:  # cannot happen (every body has a digest or a token); never call it equal
                d = f"unknown {key} {path}".encode()
            elif isinstance(d, tuple):
                where = "shared" if d[0] < shared else key
                if (where, *d) in got:
                    d = got[(where, *d)]
                elif where != "shared":  # cannot happen; never let two unhashed bodies compare equal
                    d = f"unhashed {key} {path}".encode()
            if d is not n[DIGEST]:
                side.nodes[path] = (*n[:DIGEST], d, n[BODY])  # type: ignore[assignment]


def _candidates(na: Node | None, nb: Node | None) -> bool:
    return (na is not None and nb is not None and na[KIND] == "file" and nb[KIND] == "file"
            and na[SIZE] == nb[SIZE])


def hash_entries(src: Any, wanted: dict[int, set[int]], *,
                 verify: bool | None = None) -> tuple[dict[tuple[int, int], bytes], int]:
    """SHA-256 of the bodies of entries (layer index -> entry numbers), reading only those layers, each
    only as far as its last wanted entry; and the body bytes hashed."""
    out: dict[tuple[int, int], bytes] = {}
    nbytes = 0
    for idx in sorted(wanted):
        left = set(wanted[idx])
        for k, entry in enumerate(iter_layer(src, src.image.layers[idx], verify=verify)):
            if k in left:
                out[(idx, k)] = hash_body(entry)
                nbytes += entry.size
                left.discard(k)
                if not left:
                    break
    return out, nbytes


def _parallel(fa: Callable[[], Side], fb: Callable[[Progress | None], Side], *, parent_fds: Sequence[int] = (),
              child_fds: Sequence[int] = (), progress: Progress | None = None) -> tuple[Side, Side]:
    """Run ``fb`` in a forked child (its result pickled back through a pipe) while ``fa`` runs here.
    The child's progress (bytes read) comes back through another pipe, relayed by a thread."""
    from bilge.forked import reap, spawn

    prd, pwd = os.pipe() if progress is not None else (-1, -1)

    def child(out: BinaryIO) -> None:
        report = (lambda nbytes: os.write(pwd, struct.pack("<Q", nbytes))) if pwd >= 0 else None
        try:
            result: tuple[str, Any] = ("ok", fb(report))
        except BilgeError as exc:
            result = ("bilge", (type(exc).__name__, str(exc), getattr(exc, "exit_code", 2)))
        except BaseException as exc:  # noqa: BLE001 - reported to the parent, which re-raises
            result = ("error", f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}")
        pickle.dump(result, out, protocol=pickle.HIGHEST_PROTOCOL)

    pid, rfd = spawn(child, close_in_child=[fd for fd in (prd, *child_fds) if fd >= 0])
    for fd in (pwd, *parent_fds):
        if fd >= 0:
            os.close(fd)
    relay = _relay(prd, progress) if progress is not None else None
    try:
        side_a = fa()
    except BaseException:
        os.close(rfd)
        reap(pid, kill=True)
        raise
    with os.fdopen(rfd, "rb") as inp:
        try:
            kind, payload = pickle.load(inp)
        except EOFError:
            kind, payload = "error", "the process reading the second image died"
    reap(pid)
    if relay is not None:
        relay.join()
    if kind == "bilge":
        err = BilgeError(payload[1])
        err.exit_code = payload[2]  # type: ignore[attr-defined]
        raise err
    if kind == "error":
        raise RuntimeError(payload)
    return side_a, payload


def _relay(fd: int, progress: Progress) -> threading.Thread:
    def run() -> None:
        with os.fdopen(fd, "rb") as fh:
            while len(rec := fh.read(8)) == 8:
                progress(struct.unpack("<Q", rec)[0])

    t = threading.Thread(target=run, name="bilge-diff-progress", daemon=True)
    t.start()
    return t

