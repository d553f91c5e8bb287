"""``squash`` merges layers ``N..end`` into one layer that holds exactly what is visible: whiteouts
resolved, shadowed versions dropped, hardlinks kept. Layers ``0..N-1`` are copied byte for byte, so
registries still share them; what the squashed range deleted from them is expressed as whiteouts.

Two passes over the layer streams, memory flat (only metadata is held, never a body):

1. read every layer once into :class:`bilge.fs.MergedFS` (the merged filesystem with provenance),
   remembering for each version the ordinal of the tar entry that wrote it;
2. write the squashed layer in this order, which is deterministic for a given input:

   a. directories visible at the end and written by the range, sorted by path (parents first),
      with their metadata from the merged filesystem;
   b. whiteouts for base-layer paths the range deleted (only with ``--from-layer``/``--base``),
      sorted by path;
   c. everything else that is visible — regular files with their bodies, symlinks, devices,
      fifos — in layer order and, within a layer, in the layer's own tar order (a second read of
      each layer that holds a visible body, copied through in 1 MiB chunks);
   d. hardlinks, sorted by path, after every target. When the file a hardlink group shares is no
      longer visible at its own path, the group's first visible path becomes the regular file and
      the others link to it."""

from __future__ import annotations

import posixpath
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bilge import __version__
from bilge.errors import BilgeError
from bilge.fs import MergedFS, Version
from bilge.image import Image, Layer
from bilge.layers import Entry, LayerStats, iter_layer
from bilge.rewrite.config import rewrite_config
from bilge.sink import Compression, ExistingLayer, Member, NewLayer, OutputSpec, WriteResult, write_image
from bilge.sink.layer import Body

if TYPE_CHECKING:
    from bilge.source.base import ImageSource

XATTR_PREFIX = "SCHILY.xattr."
EMIT_KINDS = ("file", "symlink", "char", "block", "fifo")


@dataclass
class ReadFS:
    fs: MergedFS
    ordinal: dict[int, int]  # id(Version) -> index of the tar entry (in its layer) that wrote it
    dir_xattrs: dict[int, tuple[tuple[str, bytes], ...]]  # id(dir Version) -> xattrs


def xattrs_of(entry: Entry) -> tuple[tuple[str, bytes], ...]:
    return tuple(sorted(
        (key[len(XATTR_PREFIX):], value.encode("utf-8", "surrogateescape"))
        for key, value in (entry.pax or {}).items() if key.startswith(XATTR_PREFIX)
    ))


def _version_of(fs: MergedFS, entry: Entry, layer: int) -> Version | None:
    v = fs.lookup(entry.path)
    if v is not None and v.layer == layer:
        return v
    parent, _, name = entry.path.rpartition("/")
    real = fs.resolve(parent) if parent else ""
    if real is None:
        return None
    v = fs.lookup(f"{real}/{name}" if real else name)
    return v if v is not None and v.layer == layer else None


def read_fs(src: ImageSource, *, verify: bool | None = None, visitors: Sequence[Callable[[Layer, Entry], None]] = (),
            progress: Callable[[Layer, int], None] | None = None,
            applied: Callable[[MergedFS, Layer, Entry, Version | None], None] | None = None) -> ReadFS:
    """One pass over every layer (what :func:`bilge.fs.walk_image` does), keeping entry ordinals.

    ``applied`` is called after each entry is applied, with the visible version it wrote (None for a
    whiteout or an entry that landed nowhere); it may read the body (:mod:`bilge.probe.materialise`
    writes the merged filesystem to disk during this one read)."""
    fs = MergedFS()
    ordinal: dict[int, int] = {}
    dir_xattrs: dict[int, tuple[tuple[str, bytes], ...]] = {}
    for layer in src.image.layers:
        fs.begin_layer(layer.index)
        stats = LayerStats()
        for k, entry in enumerate(iter_layer(src, layer, verify=verify, stats=stats)):
            for visit in visitors:
                visit(layer, entry)
            fs.apply(layer.index, entry)
            v = None
            if entry.whiteout is None and not entry.unsafe and entry.path:
                v = _version_of(fs, entry, layer.index)
                if v is not None:
                    ordinal[id(v)] = k
                    if v.kind == "dir" and entry.pax:
                        xa = xattrs_of(entry)
                        if xa:
                            dir_xattrs[id(v)] = xa
            if applied is not None and not entry.unsafe:
                applied(fs, layer, entry, v)
        fs.end_layer(stats, layer.size)
        if progress is not None:
            progress(layer, layer.size)
    fs.check_links()
    return ReadFS(fs, ordinal, dir_xattrs)


@dataclass(frozen=True)
class Want:
    path: str  # where the entry goes (the merged path; for a promoted hardlink, the anchor)
    promote: Version | None = None  # a hardlink version whose path receives this body
    kind: str = "file"  # what the entry must be on the second read
    size: int = 0


@dataclass
class SquashPlan:
    start: int  # first squashed layer
    dirs: list[Version] = field(default_factory=list)
    whiteouts: list[str] = field(default_factory=list)
    wants: dict[int, dict[int, Want]] = field(default_factory=dict)  # layer -> ordinal -> Want
    hardlinks: list[tuple[Version, str]] = field(default_factory=list)  # (link version, anchor path)
    dropped: list[str] = field(default_factory=list)  # visible things a layer cannot hold, with why


def _path_key(path: str) -> list[str]:
    return path.split("/")


def plan_squash(read: ReadFS, start: int, keep: Callable[[str, Version], bool] | None = None) -> SquashPlan:
    """What the squashed layer holds: the visible paths written by layers ``start..`` (and, with
    ``keep``, only those it accepts; a dropped directory drops nothing under it by itself)."""
    fs = read.fs
    plan = SquashPlan(start)
    wants: dict[int, dict[int, Want]] = defaultdict(dict)
    unwritable: set[str] = set()
    holders: dict[int, list[Version]] = defaultdict(list)  # id(body) -> visible paths sharing it
    for _path, v in fs.visible():
        if keep is not None and not keep(v.path, v):
            continue
        if v.body is not None:
            holders[id(v.body)].append(v)
        if v.layer < start:
            continue
        if v.kind == "dir":
            plan.dirs.append(v)
        elif v.kind in EMIT_KINDS:
            wants[v.layer][read.ordinal[id(v)]] = Want(v.path, kind=v.kind, size=v.size)
        elif v.kind == "hardlink":
            if v.body is None:
                unwritable.add(v.path)
                plan.dropped.append(f"/{v.path}: hardlink to /{v.linkname}, which is not a file in the image")
        else:
            unwritable.add(v.path)
            plan.dropped.append(f"/{v.path}: unsupported tar entry type")
    for group in holders.values():
        links = [v for v in group if v.kind == "hardlink" and v.layer >= start]
        if not links:
            continue
        body = links[0].body
        assert body is not None
        if fs.lookup(body.path) is body and (keep is None or keep(body.path, body)):
            anchor = body.path
        else:
            kept = sorted(v.path for v in group if v.layer < start)  # base links stay in the base
            if kept:
                anchor = kept[0]
            else:
                first = min(links, key=lambda v: _path_key(v.path))
                anchor = first.path
                wants[body.layer][read.ordinal[id(body)]] = Want(anchor, promote=first, size=body.size)
                links = [v for v in links if v is not first]
        plan.hardlinks.extend((v, anchor) for v in links)
    plan.hardlinks.sort(key=lambda item: _path_key(item[0].path))
    plan.dirs.sort(key=lambda v: _path_key(v.path))
    plan.wants = dict(wants)
    if start > 0:
        plan.whiteouts = _whiteouts(fs, start, unwritable)
    return plan


def _whiteouts(fs: MergedFS, start: int, unwritable: set[str]) -> list[str]:
    """Base paths (visible after layer start-1) that are gone at the end, at their topmost point.

    A path the squashed layer cannot hold (a dangling hardlink) counts as gone."""
    out: set[str] = set()
    for path, v in fs.all_versions():
        if not 0 <= v.layer < start:
            continue
        if v.hidden_by is not None and v.hidden_by < start:
            continue  # already gone in the base
        if fs.lookup(path) is not None and path not in unwritable:
            continue  # still there (maybe replaced: the new entry replaces it)
        parent = posixpath.dirname(path)
        pv = fs.lookup(parent) if parent else None
        if parent == "" or (pv is not None and pv.kind == "dir"):
            out.add(path)
    return sorted(out, key=_path_key)


def _whiteout_name(path: str) -> str:
    parent, _, name = path.rpartition("/")
    return f"{parent}/.wh.{name}" if parent else f".wh.{name}"


@dataclass
class SquashCounts:
    dirs: int = 0
    files: int = 0
    symlinks: int = 0
    hardlinks: int = 0
    other: int = 0
    whiteouts: int = 0
    body_bytes: int = 0


def _member_from_entry(entry: Entry, want: Want) -> Member:
    # a promoted hardlink body keeps the file entry's own metadata: links share the inode's
    kind = entry.type
    return Member(want.path, kind, entry.mode, entry.uid, entry.gid, int(entry.mtime),
                  entry.size if kind == "file" else 0,
                  entry.linkname if kind == "symlink" else "",
                  entry.devmajor if kind in ("char", "block") else 0,
                  entry.devminor if kind in ("char", "block") else 0,
                  xattrs_of(entry))


def dir_and_whiteout_members(read: ReadFS, plan: SquashPlan, counts: SquashCounts,
                             clamp: int | None) -> Iterator[tuple[Member, None]]:
    """The squashed layer's first members: its directories, then its whiteouts (no bodies)."""
    for v in plan.dirs:
        counts.dirs += 1
        yield Member(v.path, "dir", v.mode, v.uid, v.gid, int(v.mtime), xattrs=read.dir_xattrs.get(id(v), ())), None
    for path in plan.whiteouts:
        counts.whiteouts += 1
        yield Member(_whiteout_name(path), "file", 0o644, mtime=clamp or 0), None


def squash_members(src: ImageSource, read: ReadFS, plan: SquashPlan, counts: SquashCounts, *,
                   verify: bool | None = False, clamp: int | None = None) -> Iterator[tuple[Member, Body]]:
    """Yield the squashed layer's members in the documented order, bodies streamed from the layers.

    The first read verified every digest; this second read checks that each entry it copies is still
    the one the first read saw (ordinal, type and size), and the output is verified by reading it back.
    """
    yield from dir_and_whiteout_members(read, plan, counts, clamp)
    layers = src.image.layers
    for index in sorted(plan.wants):
        wanted = plan.wants[index]
        remaining = len(wanted)
        for k, entry in enumerate(iter_layer(src, layers[index], verify=verify)):
            want = wanted.get(k)
            if want is None:
                continue
            if entry.type != want.kind or entry.size != want.size:
                raise BilgeError(f"layer {index} changed between the two reads (entry {k}: /{entry.path})")
            member = _member_from_entry(entry, want)
            if member.type == "file":
                counts.files += 1
                counts.body_bytes += member.size
            elif member.type == "symlink":
                counts.symlinks += 1
            else:
                counts.other += 1
            yield member, entry.fileobj if member.type == "file" else None
            remaining -= 1
        if remaining:
            raise BilgeError(f"layer {index} changed between the two reads ({remaining} entries not found again)")
    for v, anchor in plan.hardlinks:
        counts.hardlinks += 1
        yield Member(v.path, "hardlink", v.mode, v.uid, v.gid, int(v.mtime), linkname=anchor), None


@dataclass(frozen=True)
class SquashResult:
    reference: str
    output: WriteResult
    start: int
    layers_in: int
    squashed_layers: tuple[int, ...]
    range_file_bytes: int  # regular-file bytes the squashed layers carried (uncompressed)
    written_file_bytes: int  # regular-file bytes the new layer carries
    bytes_saved: int  # range_file_bytes - written_file_bytes: analyze's reclaimable bytes for the range
    input_bytes: int  # stored (compressed) bytes of the input's layers
    output_bytes: int
    counts: SquashCounts
    dropped: tuple[str, ...]
    findings: tuple[str, ...]
    secrets_redacted: tuple[str, ...] = ()  # what was redacted from the history and config
    secrets_kept: bool = False  # --keep-secrets


def resolve_start(image: Image, from_layer: int | None, base: Image | None) -> int:
    n = len(image.layers)
    if n == 0:
        raise BilgeError(f"{image.reference}: the image has no layers; nothing to squash")
    if base is not None:
        if from_layer is not None:
            raise BilgeError("--from-layer and --base are alternatives: give one")
        shared = 0
        while (shared < min(n, len(base.layers))
               and image.layers[shared].diff_id == base.layers[shared].diff_id):
            shared += 1
        if shared < len(base.layers):
            raise BilgeError(f"{image.reference} is not built on {base.reference}: only {shared} of the base's "
                             f"{len(base.layers)} layers match (by diff_id)")
        start = shared
    else:
        start = from_layer or 0
    if base is not None and start == n:
        raise BilgeError(f"nothing to squash: all {n} layers belong to the base image")
    if not 0 <= start < n:
        raise BilgeError(f"--from-layer {start}: the image has layers 0..{n - 1}")
    return start


def squash(src: ImageSource, output: str | OutputSpec, *, from_layer: int | None = None, base: Image | None = None,
           compression: Compression | None = None, clamp: int | None = None, verify: bool | None = None,
           progress: Callable[[Layer, int], None] | None = None, verify_output: bool = True,
           command: str | None = None, read: ReadFS | None = None, keep_secrets: bool = False,
           ruleset: Any = None, ignores: Sequence[Any] = ()) -> SquashResult:
    """Squash ``src.image`` (an opened :class:`bilge.source.ImageSource`) from layer N on.

    Secrets ``bilge secrets`` finds in the history and config are redacted in the output unless
    ``keep_secrets`` (see :mod:`bilge.secrets.rewriting`)."""
    image: Image = src.image
    redacted: list[str] = []
    if not keep_secrets:
        from bilge.secrets.rewriting import redact_config_secrets

        image, redacted = redact_config_secrets(image, ruleset=ruleset, ignores=ignores)
    start = resolve_start(image, from_layer, base)
    read = read or read_fs(src, verify=verify, progress=progress)
    plan = plan_squash(read, start)
    counts = SquashCounts()
    squashed = tuple(range(start, len(image.layers)))
    what = (f"squashed layers {start}-{len(image.layers) - 1} into one" if len(squashed) > 1
            else f"rewrote layer {start} without its hidden files")
    entry = {
        "created_by": command or ("bilge squash" + (f" --from-layer {start}" if start else "")),
        "comment": f"bilge {__version__}: {what}",
    }
    config = rewrite_config(image, start, entry, clamp=clamp)
    layers: list[ExistingLayer | NewLayer] = [_existing(src, layer) for layer in image.layers[:start]]
    layers.append(NewLayer(squash_members(src, read, plan, counts, clamp=clamp)))
    result = write_image(output, config, layers, compression=compression, clamp=clamp, verify_full=verify_output)
    range_bytes = sum(read.fs.layers[i].file_bytes for i in squashed)
    return SquashResult(
        reference=image.reference, output=result, start=start, layers_in=len(image.layers),
        squashed_layers=squashed, range_file_bytes=range_bytes, written_file_bytes=counts.body_bytes,
        bytes_saved=range_bytes - counts.body_bytes, input_bytes=image.compressed_bytes,
        output_bytes=result.layer_bytes, counts=counts, dropped=tuple(plan.dropped),
        findings=tuple(f.message for f in read.fs.findings if f.kind in ("unsafe-path", "hardlink-missing")),
        secrets_redacted=tuple(redacted), secrets_kept=keep_secrets,
    )


def _existing(src: ImageSource, layer: Layer) -> ExistingLayer:
    if not layer.diff_id:
        raise BilgeError(f"layer {layer.index} has no diff_id in the config; cannot keep it as a base layer")
    return ExistingLayer(layer.digest or "", layer.size, layer.diff_id, layer.media_type,
                         lambda: src.open_layer_blob(layer), origin=getattr(src, "blob_origin", None))
