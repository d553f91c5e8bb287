"""Rewrites: Image → new layers + new config, handed to a sink (:mod:`bilge.sink`).

``squash`` merges layers ``N..end`` into one layer that holds exactly what is visible: whiteouts
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
      the others link to it.
"""

from __future__ import annotations

import copy
import posixpath
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bilge import __version__
from bilge.errors import BilgeError
from bilge.fs import MergedFS, Version
from bilge.image import Image, Layer
from bilge.layers import Entry, LayerStats, iter_layer
from bilge.sink import Compression, ExistingLayer, Member, NewLayer, OutputSpec, WriteResult, write_image
from bilge.sink.layer import Body

if TYPE_CHECKING:
    from bilge.source.base import ImageSource

XATTR_PREFIX = "SCHILY.xattr."
EMIT_KINDS = ("file", "symlink", "char", "block", "fifo")


# ---------------------------------------------------------------------------------------------
# Pass 1: the merged filesystem, with each version's entry ordinal


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
            progress: Callable[[Layer, int], None] | None = None) -> ReadFS:
    """One pass over every layer (what :func:`bilge.fs.walk_image` does), keeping entry ordinals."""
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
            if entry.whiteout is None and not entry.unsafe and entry.path:
                v = _version_of(fs, entry, layer.index)
                if v is not None:
                    ordinal[id(v)] = k
                    if v.kind == "dir" and entry.pax:
                        xa = xattrs_of(entry)
                        if xa:
                            dir_xattrs[id(v)] = xa
        fs.end_layer(stats, layer.size)
        if progress is not None:
            progress(layer, layer.size)
    fs.check_links()
    return ReadFS(fs, ordinal, dir_xattrs)


# ---------------------------------------------------------------------------------------------
# The plan of the squashed layer


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


# ---------------------------------------------------------------------------------------------
# Pass 2: the squashed layer's members


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


def squash_members(src: ImageSource, read: ReadFS, plan: SquashPlan, counts: SquashCounts, *,
                   verify: bool | None = False, clamp: int | None = None) -> Iterator[tuple[Member, Body]]:
    """Yield the squashed layer's members in the documented order, bodies streamed from the layers.

    The first read verified every digest; this second read checks that each entry it copies is still
    the one the first read saw (ordinal, type and size), and the output is verified by reading it back.
    """
    for v in plan.dirs:
        counts.dirs += 1
        yield Member(v.path, "dir", v.mode, v.uid, v.gid, int(v.mtime), xattrs=read.dir_xattrs.get(id(v), ())), None
    for path in plan.whiteouts:
        counts.whiteouts += 1
        yield Member(_whiteout_name(path), "file", 0o644, mtime=clamp or 0), None
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


# ---------------------------------------------------------------------------------------------
# Config


def _created(image: Image, clamp: int | None) -> str | None:
    if clamp is not None:
        import datetime as _dt

        return _dt.datetime.fromtimestamp(clamp, _dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    created = image.config.get("created")
    return created if isinstance(created, str) else None


def rewrite_config(image: Image, start: int, entry: Mapping[str, Any], *, clamp: int | None = None,
                   redact: Callable[[dict[str, Any]], dict[str, Any]] | None = None) -> dict[str, Any]:
    """The config of an image whose layers ``start..`` become one new layer described by ``entry``.

    Runtime settings (Env, Entrypoint, Cmd, WorkingDir, User, ExposedPorts, Volumes, Labels, ...)
    are kept as they are. History stays aligned with the layers: the base layers keep their entries;
    the squashed range's entries stay readable but become ``empty_layer``; ``entry`` (what bilge
    did) is the one entry that owns the new layer. ``rootfs`` is filled in by the sink.
    """
    cfg: dict[str, Any] = copy.deepcopy(dict(image.config))
    cfg.pop("rootfs", None)
    created = _created(image, clamp)
    history_in = [dict(h or {}) for h in (cfg.get("history") or [])]
    owners = {h.index: h.layer for h in image.history}
    # base layers the history does not describe (the first ones: see bilge.image.align_history)
    history: list[dict[str, Any]] = [
        {"created_by": "", "comment": f"bilge: layer {layer.index} had no history entry in the source image"}
        for layer in image.layers[:start] if layer.history is None
    ]
    first_range = min((h.index for h in image.history if h.layer is not None and h.layer >= start),
                      default=len(history_in))
    for i, h in enumerate(history_in):
        layer = owners.get(i)
        if layer is not None and layer < start:
            history.append(h)  # a base layer's entry, untouched
        elif layer is None and h.get("empty_layer") and i < first_range:
            history.append(h)  # ENV, LABEL ... before the squashed range
        else:
            h["empty_layer"] = True  # the squashed range: still readable, no longer owns a layer
            history.append(h)
    new_entry = dict(entry)
    if created is not None:
        new_entry.setdefault("created", created)
    history.append(new_entry)
    if redact is not None:
        history = [redact(h) for h in history]
    cfg["history"] = history
    if created is not None:
        cfg["created"] = created
    return cfg


# ---------------------------------------------------------------------------------------------
# squash


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

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": "bilge.squash/1",
            "reference": self.reference,
            "output": str(self.output.output),
            "manifest_digest": self.output.manifest_digest,
            "image_id": self.output.config_digest,
            "from_layer": self.start,
            "layers_in": self.layers_in,
            "layers_out": len(self.output.layers),
            "squashed_layers": list(self.squashed_layers),
            "bytes_saved": self.bytes_saved,
            "range_file_bytes": self.range_file_bytes,
            "written_file_bytes": self.written_file_bytes,
            "input_bytes": self.input_bytes,
            "output_bytes": self.output_bytes,
            "entries": {"dirs": self.counts.dirs, "files": self.counts.files, "symlinks": self.counts.symlinks,
                        "hardlinks": self.counts.hardlinks, "other": self.counts.other,
                        "whiteouts": self.counts.whiteouts},
            "layers": [{"digest": r.digest, "diff_id": r.diff_id, "size": r.size, "media_type": r.media_type,
                        "copied": r.copied} for r in self.output.layers],
            "dropped": list(self.dropped),
            "findings": list(self.findings),
            "secrets_redacted": list(self.secrets_redacted),
            "secrets_kept": self.secrets_kept,
        }


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


# ---------------------------------------------------------------------------------------------
# slim

ESSENTIAL_FILES = (
    "etc/passwd", "etc/group", "etc/nsswitch.conf", "etc/ld.so.cache", "etc/ld.so.conf", "etc/localtime",
    "etc/timezone", "etc/os-release", "usr/lib/os-release", "etc/ca-certificates.conf", "etc/ssl/cert.pem",
    "etc/mime.types", "etc/host.conf", "etc/gai.conf",
)
ESSENTIAL_TREES = (
    "etc/ld.so.conf.d", "etc/ssl/certs", "usr/share/ca-certificates", "etc/pki/tls/certs",
    "etc/pki/ca-trust", "usr/share/zoneinfo",
)
ESSENTIAL_DIRS = ("tmp", "var/tmp")  # the directory itself, with its mode (1777), not its contents


@dataclass
class KeepSet:
    """Paths (merged, no leading "/") to keep: exact paths, whole trees, and bare directories."""

    exact: set[str] = field(default_factory=set)
    trees: set[str] = field(default_factory=set)
    reasons: dict[str, str] = field(default_factory=dict)
    parents: set[str] = field(default_factory=set)

    def add(self, path: str, reason: str, tree: bool = False) -> None:
        path = path.strip("/")
        if not path:
            return
        (self.trees if tree else self.exact).add(path)
        self.reasons.setdefault(path, reason)
        parent = posixpath.dirname(path)
        while parent and parent not in self.parents:
            self.parents.add(parent)
            parent = posixpath.dirname(parent)

    def __call__(self, path: str, v: Version | None = None) -> bool:
        if path in self.exact or path in self.parents or path in self.trees:
            return True
        parent = posixpath.dirname(path)
        while parent:
            if parent in self.trees:
                return True
            parent = posixpath.dirname(parent)
        return False


def keep_chain(fs: MergedFS, keep: KeepSet, path: str, reason: str, *, tree: bool = False) -> str | None:
    """Keep ``path`` and every symlink met on the way to it (component by component, like the
    kernel); return the real path, or None when it does not exist in the image."""
    parts = [p for p in path.strip("/").split("/") if p and p != "."]
    cur: list[str] = []
    hops = 0
    while parts:
        comp = parts.pop(0)
        if comp == "..":
            if cur:
                cur.pop()
            continue
        candidate = "/".join(cur + [comp])
        v = fs.lookup(candidate)
        if v is None:
            return None
        if v.kind == "symlink":
            hops += 1
            if hops > 40:
                return None
            keep.add(candidate, reason)
            target = v.linkname
            if target.startswith("/"):
                cur = []
            parts = [p for p in target.split("/") if p and p != "."] + parts
            continue
        cur.append(comp)
    real = "/".join(cur)
    if real:
        keep.add(real, reason, tree=tree and (fs.lookup(real) is not None and fs.lookup(real).kind == "dir"))
    return real


@dataclass(frozen=True)
class SlimPlan:
    keep: KeepSet
    kept_files: int
    kept_bytes: int  # regular-file bytes kept (each hardlinked body once)
    visible_files: int
    visible_bytes: int
    missing: tuple[str, ...]  # libraries / interpreters the closure could not find
    notes: tuple[str, ...]
    top: tuple[tuple[str, int, int], ...]  # (directory, files, bytes) kept, biggest first


def plan_slim(read: ReadFS, image: Image, keep_paths: Sequence[str], *, entrypoint: bool,
              view: Any = None, traced: Sequence[str] = (), traced_missing: Sequence[str] = (),
              programs: Sequence[str] = ()) -> SlimPlan:
    """Decide what a slim image keeps: the given paths, the ELF closure of every program among them
    (and of the entrypoint), and the files a program expects to find (see ESSENTIAL_*).

    With ``--probe`` (:mod:`bilge.probe`): ``traced`` paths (each with the symlinks and directories on
    its way), the symlinks on the way to the ``traced_missing`` paths (a search path that failed), and
    the ELF closure of every executed or opened ``programs`` object."""
    from bilge.deps import closure

    fs = read.fs
    keep = KeepSet()
    binaries: list[str] = []
    paths: list[str] = []
    for given in keep_paths:
        real = keep_chain(fs, keep, given, "--keep", tree=True)
        if real is None:
            raise BilgeError(f"--keep {given}: no such path in the image")
        v = fs.lookup(real)
        if v is None:
            continue
        if v.kind == "dir":
            paths.append("/" + real)
        elif v.body is not None and view is not None:
            # an ELF file or a #! script is a program: its closure (or interpreter's) comes along
            if view.elf("/" + real) is not None or (view.read_small("/" + real, 2) or b"").startswith(b"#!"):
                binaries.append("/" + real)
    for path in traced:
        keep_chain(fs, keep, path, "traced")
    for path in traced_missing:
        keep_chain(fs, keep, path, "traced")
    for path in programs:
        real = fs.resolve(path)
        v = fs.lookup(real) if real else None
        # an ELF object, or a #! script: the kernel loads a script's interpreter (and an ELF program's
        # loader) without a system call strace could show, so the closure must bring them
        if v is not None and v.body is not None and view is not None and (
                view.elf("/" + real) is not None or (view.read_small("/" + real, 2) or b"").startswith(b"#!")):
            binaries.append("/" + real)
    binaries = list(dict.fromkeys(binaries))
    notes: list[str] = []
    missing: list[str] = []
    config = image.container_config
    if view is not None and (binaries or paths or entrypoint):
        result = closure(view, binaries=binaries, paths=paths, entrypoint=entrypoint, config=config)
        for f in result.files:
            keep_chain(fs, keep, f.path, f"needed ({f.role})")
        missing = [f"{m.soname} (needed by {', '.join(m.needed_by)})" + (f": {m.reason}" if m.reason else "")
                   for m in result.missing]
        notes.extend(result.notes)
    for path in ESSENTIAL_FILES:
        if fs.lookup(path) is not None:
            keep_chain(fs, keep, path, "essential")
    for path in ESSENTIAL_TREES:
        if fs.lookup(path) is not None:
            keep_chain(fs, keep, path, "essential", tree=True)
    for path in ESSENTIAL_DIRS:
        v = fs.lookup(path)
        if v is not None and v.kind == "dir":
            keep.add(path, "essential directory")
    workdir = str(config.get("WorkingDir") or "").strip("/")
    if workdir and fs.lookup(workdir) is not None:
        keep_chain(fs, keep, workdir, "WorkingDir")
    # sizes
    kept_bodies: dict[int, int] = {}
    all_bodies: dict[int, int] = {}
    by_dir: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    visible_files = kept_files = 0
    for path, v in fs.visible():
        if v.body is None:
            continue
        visible_files += 1
        all_bodies[id(v.body)] = v.body.size
        if keep(path, v):
            kept_files += 1
            if id(v.body) not in kept_bodies:
                kept_bodies[id(v.body)] = v.body.size
                acc = by_dir["/" + "/".join(path.split("/")[:-1][:3])]
                acc[0] += 1
                acc[1] += v.body.size
    top = tuple(sorted(((d, n, b) for d, (n, b) in by_dir.items()), key=lambda t: (-t[2], t[0]))[:15])
    return SlimPlan(keep, kept_files, sum(kept_bodies.values()), visible_files, sum(all_bodies.values()),
                    tuple(missing), tuple(notes), top)


@dataclass(frozen=True)
class RewriteResult:
    """What scrub and slim did (squash has its own, richer :class:`SquashResult`)."""

    command: str
    reference: str
    output: WriteResult | None
    layers_in: int
    input_bytes: int
    output_bytes: int
    counts: SquashCounts
    details: Mapping[str, Any]

    def to_json(self) -> dict[str, Any]:
        out = {
            "schema": f"bilge.{self.command}/1",
            "reference": self.reference,
            "output": str(self.output.output) if self.output else None,
            "manifest_digest": self.output.manifest_digest if self.output else None,
            "image_id": self.output.config_digest if self.output else None,
            "layers_in": self.layers_in,
            "layers_out": len(self.output.layers) if self.output else None,
            "input_bytes": self.input_bytes,
            "output_bytes": self.output_bytes,
        }
        out.update(self.details)
        return out


def slim(src: ImageSource, output: str | OutputSpec | None, keep_paths: Sequence[str], *, entrypoint: bool = False,
         compression: Compression | None = None, clamp: int | None = None, verify: bool | None = None,
         progress: Callable[[Layer, int], None] | None = None, dry_run: bool = False,
         command: str | None = None, keep_secrets: bool = False, ruleset: Any = None,
         ignores: Sequence[Any] = (), probe: Any = None) -> tuple[RewriteResult, SlimPlan]:
    """Keep the given paths, their ELF closure, the entrypoint's, and the essentials; drop the rest.

    Secrets ``bilge secrets`` finds in the history and config are redacted in the output unless
    ``keep_secrets`` (see :mod:`bilge.secrets.rewriting`).

    ``probe`` (:class:`bilge.probe.ProbeOptions`) runs the image's own programs in a sandbox, keeps
    what they touched, and verifies the result by running them again on the slimmed filesystem
    (see :mod:`bilge.probe`); ``details["probe"]`` says how that went and no image is written when
    the slim runs differ from the original ones."""
    from bilge.deps import ElfCollector

    image: Image = src.image
    if not image.layers:
        raise BilgeError(f"{image.reference}: the image has no layers")
    if not keep_paths and not entrypoint and probe is None:
        raise BilgeError("nothing to keep: give --keep PATH (repeatable), --entrypoint and/or --probe CMD")
    collector = ElfCollector()
    read = read_fs(src, verify=verify, visitors=[collector], progress=progress)
    if probe is None:
        return _slim_planned(src, read, output, keep_paths, entrypoint=entrypoint, view=collector.view(read.fs),
                             compression=compression, clamp=clamp, dry_run=dry_run, command=command,
                             keep_secrets=keep_secrets, ruleset=ruleset, ignores=ignores)
    from bilge.probe.session import Session

    config = image.container_config
    with Session(src, read, probe) as session:
        outcome = session.trace()
        has_entry = bool(config.get("Entrypoint") or config.get("Cmd"))
        splan = plan_slim(read, image, keep_paths, entrypoint=entrypoint or has_entry, view=collector.view(read.fs),
                          traced=outcome.found, traced_missing=outcome.not_found, programs=outcome.programs)
        session.verify(splan.keep)
    return _slim_planned(src, read, output, keep_paths, entrypoint=entrypoint, splan=splan,
                         compression=compression, clamp=clamp, dry_run=dry_run or not outcome.ok,
                         command=command, outcome=outcome, keep_secrets=keep_secrets, ruleset=ruleset,
                         ignores=ignores)


class _Without(KeepSet):
    """A keep set less some paths (how a test breaks a slim plan on purpose)."""

    def __init__(self, base: KeepSet, gone: set[str]) -> None:
        super().__init__(base.exact, base.trees, base.reasons, base.parents)
        self.gone = gone

    def __call__(self, path: str, v: Version | None = None) -> bool:
        return path not in self.gone and super().__call__(path, v)


def kept_by_origin(read: ReadFS, keep: KeepSet) -> dict[str, dict[str, int]]:
    """Files and bytes kept, by why: traced, closure (ELF closure), user (--keep), essential, other."""
    out: dict[str, dict[str, int]] = {}
    seen: set[int] = set()
    for path, v in read.fs.visible():
        if v.body is None or not keep(path, v) or id(v.body) in seen:
            continue
        seen.add(id(v.body))
        reason = keep.reasons.get(path)
        p = path
        while reason is None and p:
            p = posixpath.dirname(p)
            reason = keep.reasons.get(p) if p in keep.trees else None
        reason = reason or "other"
        origin = ("traced" if reason == "traced" else "closure" if reason.startswith("needed")
                  else "user" if reason == "--keep" else "essential" if reason.startswith("essential") else "other")
        acc = out.setdefault(origin, {"files": 0, "bytes": 0})
        acc["files"] += 1
        acc["bytes"] += v.body.size
    return out


def _slim_planned(src: ImageSource, read: ReadFS, output: str | OutputSpec | None, keep_paths: Sequence[str], *,
                  entrypoint: bool, view: Any = None, splan: SlimPlan | None = None,
                  compression: Compression | None, clamp: int | None, dry_run: bool, command: str | None,
                  outcome: Any = None, keep_secrets: bool = False, ruleset: Any = None,
                  ignores: Sequence[Any] = ()) -> tuple[RewriteResult, SlimPlan]:
    image: Image = src.image
    if splan is None:
        splan = plan_slim(read, image, keep_paths, entrypoint=entrypoint, view=view)
    details = {
        "kept_files": splan.kept_files, "kept_bytes": splan.kept_bytes,
        "visible_files": splan.visible_files, "visible_bytes": splan.visible_bytes,
        "dropped_bytes": splan.visible_bytes - splan.kept_bytes,
        "missing": list(splan.missing), "notes": list(splan.notes),
        "largest_kept_directories": [{"path": d, "files": n, "bytes": b} for d, n, b in splan.top],
    }
    if outcome is not None:
        details["kept_by_origin"] = kept_by_origin(read, splan.keep)
        details["probe"] = outcome.to_json()
    counts = SquashCounts()
    if dry_run or output is None:
        return RewriteResult("slim", image.reference, None, len(image.layers), image.compressed_bytes, 0,
                             counts, details), splan
    plan = plan_squash(read, 0, keep=splan.keep)
    what = "kept " + ", ".join(keep_paths) if keep_paths else "kept the entrypoint"
    if outcome is not None:
        what = ("kept what the probes touched" + (", " + ", ".join(keep_paths) if keep_paths else "")
                + " and the entrypoint")
    entry = {
        "created_by": command or "bilge slim",
        "comment": f"bilge {__version__}: {what}" + (" and the entrypoint" if entrypoint and keep_paths else "")
                   + ", their library closure and essentials; dropped the rest",
    }
    redacted: list[str] = []
    if not keep_secrets:
        from bilge.secrets.rewriting import redact_config_secrets

        image, redacted = redact_config_secrets(image, ruleset=ruleset, ignores=ignores)
    details["secrets_redacted"] = redacted
    details["secrets_kept"] = keep_secrets
    config = rewrite_config(image, 0, entry, clamp=clamp)
    result = write_image(output, config, [NewLayer(squash_members(src, read, plan, counts, clamp=clamp))],
                         compression=compression, clamp=clamp)
    return RewriteResult("slim", image.reference, result, len(image.layers), image.compressed_bytes,
                         result.layer_bytes, counts, details), splan


# ---------------------------------------------------------------------------------------------
# scrub

REDACTED = "[redacted-by-bilge]"
MIN_GLOBAL = 6  # shorter secret values are replaced only where they were found, never everywhere


def _replace_strings(obj: Any, values: Sequence[str]) -> tuple[Any, int]:
    """``obj`` (JSON data) with every occurrence of each value replaced; and how many were."""
    if isinstance(obj, str):
        n = 0
        for value in values:
            if value in obj:
                n += obj.count(value)
                obj = obj.replace(value, REDACTED)
        return obj, n
    if isinstance(obj, list):
        total = 0
        out = []
        for item in obj:
            new, k = _replace_strings(item, values)
            out.append(new)
            total += k
        return out, total
    if isinstance(obj, dict):
        total = 0
        res = {}
        for key, item in obj.items():
            new, k = _replace_strings(item, values)
            res[key] = new
            total += k
        return res, total
    return obj, 0


def scrub_config(config: Mapping[str, Any], findings: Sequence[Any], *, env_mode: str = "remove",
                 label_mode: str = "remove") -> tuple[dict[str, Any], list[str]]:
    """The config without the secrets ``findings`` (from :mod:`bilge.secrets`) located in it.

    History lines keep their instruction with the value replaced by ``[redacted-by-bilge]``; Env
    variables and Labels holding a secret are removed (``remove``) or keep their name with the value
    redacted (``redact``). Every other occurrence of a found value anywhere in the config (the legacy
    ``container_config``, Cmd, Healthcheck ...) is redacted too. Returns (config, what was done).
    """
    cfg: dict[str, Any] = copy.deepcopy(dict(config))
    actions: list[str] = []
    env_keys = {f.location.key for f in findings if f.location.kind == "env" and f.location.key}
    label_keys = {f.location.key for f in findings if f.location.kind == "label" and f.location.key}
    for section in ("config", "container_config"):
        sub = cfg.get(section)
        if not isinstance(sub, dict):
            continue
        env = sub.get("Env")
        if isinstance(env, list) and env_keys:
            new_env = []
            for item in env:
                name, _, _value = str(item).partition("=")
                if name in env_keys:
                    if env_mode == "redact":
                        new_env.append(f"{name}={REDACTED}")
                    if section == "config":
                        actions.append(f"ENV {name}: {'redacted' if env_mode == 'redact' else 'removed'}")
                    continue
                new_env.append(item)
            sub["Env"] = new_env
        labels = sub.get("Labels")
        if isinstance(labels, dict) and label_keys:
            for name in sorted(label_keys & set(labels)):
                if label_mode == "redact":
                    labels[name] = REDACTED
                else:
                    del labels[name]
                if section == "config":
                    actions.append(f"LABEL {name}: {'redacted' if label_mode == 'redact' else 'removed'}")
    # history: each entry where something was found, then every long value everywhere
    history = cfg.get("history")
    if isinstance(history, list):
        for f in findings:
            idx = f.location.history_index
            if f.location.kind == "history" and idx is not None and 0 <= idx < len(history) and f.secret:
                entry = history[idx] or {}
                new, n = _replace_strings(entry, [f.secret])
                if n:
                    history[idx] = new
                    actions.append(f"history[{idx}] ({f.location.key or f.rule}): value redacted")
    long_values = sorted({f.secret for f in findings if f.secret and len(f.secret) >= MIN_GLOBAL},
                         key=len, reverse=True)
    cfg, n = _replace_strings(cfg, long_values)
    if n:
        actions.append(f"{n} further occurrence(s) in the config redacted")
    return cfg, actions


def scrub(src: ImageSource, output: str | OutputSpec, *, env_mode: str = "remove", label_mode: str = "remove",
          remove_files: bool = False, compression: Compression | None = None, clamp: int | None = None,
          verify: bool | None = None, progress: Callable[[Layer, int], None] | None = None,
          ruleset: Any = None, severity: str = "high", ignores: Sequence[Any] = (),
          command: str | None = None) -> RewriteResult:
    """Remove what ``bilge secrets`` finds at or above ``severity`` (its default too), less what the
    user silenced (``ignores``): from the config (history redacted, Env/Labels removed or redacted),
    and from the layers by squashing from the first layer that holds a secret file, so the bytes
    really disappear. Visible files holding a secret are dropped only with ``remove_files``."""
    from dataclasses import replace

    from bilge.secrets import FileVisitor, at_or_above, load_ruleset, scan_image_config
    from bilge.secrets.ignore import apply as apply_ignores
    from bilge.secrets.model import ScanStats
    from bilge.secrets.scanner import file_findings
    from bilge.secrets.textscan import Scanner

    image: Image = src.image
    scanner = Scanner(ruleset or load_ruleset())
    stats = ScanStats()
    visitor = FileVisitor(scanner, stats)
    read = read_fs(src, verify=verify, visitors=[visitor], progress=progress)
    cfg_findings = scan_image_config(image, scanner, stats)
    file_f = file_findings(visitor.hits, read.fs.version_at)
    if ignores:
        cfg_findings = apply_ignores(cfg_findings, list(ignores))[0]
        file_f = apply_ignores(file_f, list(ignores))[0]
    cfg_findings = at_or_above(cfg_findings, severity)
    file_f = at_or_above(file_f, severity)
    visible_secret_paths = sorted({f.location.path for f in file_f if not f.deleted and f.location.path})
    layers_with = sorted({f.location.layer for f in file_f if f.location.layer is not None})
    start = layers_with[0] if layers_with else None
    # the config: findings that point into it, redacted
    cfg, actions = scrub_config(image.config, cfg_findings, env_mode=env_mode, label_mode=label_mode)
    scrubbed_image = replace(image, config=cfg)
    counts = SquashCounts()
    details: dict[str, Any] = {
        "config_findings": len(cfg_findings), "file_findings": len(file_f),
        "actions": actions, "squashed_from": start, "removed_files": [], "remaining": [],
        "findings": [{"rule": f.rule, "where": f.location.where(), "secret": f.masked,
                      "deleted": f.deleted} for f in cfg_findings + file_f],
    }
    if start is None:
        cfg["history"] = list(cfg.get("history") or []) + [{
            "created_by": command or "bilge scrub", "empty_layer": True,
            "comment": f"bilge {__version__}: " + (f"removed {len(cfg_findings)} secret(s) from the config"
                                                     if cfg_findings else "no secrets found"),
            **({"created": _created(image, clamp)} if _created(image, clamp) else {}),
        }]
        if _created(image, clamp):
            cfg["created"] = _created(image, clamp)
        cfg.pop("rootfs", None)
        layers: list[ExistingLayer | NewLayer] = [_existing(src, layer) for layer in image.layers]
        result = write_image(output, cfg, layers, compression=compression, clamp=clamp)
        return RewriteResult("scrub", image.reference, result, len(image.layers), image.compressed_bytes,
                             result.layer_bytes, counts, details)
    removed = set(visible_secret_paths) if remove_files else set()
    keep = (lambda path, v: path not in removed) if removed else None
    plan = plan_squash(read, start, keep=keep)
    if removed:
        # a removed path that a base layer also wrote would come back from the base: white it out
        plan.whiteouts = sorted(set(plan.whiteouts) | {p for p in removed if _in_base(read.fs, p, start)},
                                key=_path_key)
    details["removed_files"] = sorted("/" + p for p in removed)
    details["remaining"] = [] if remove_files else ["/" + p for p in visible_secret_paths]
    entry = {
        "created_by": command or f"bilge scrub (from layer {start})",
        "comment": f"bilge {__version__}: squashed layers {start}-{len(image.layers) - 1} so that "
                   f"{len({f.location.path for f in file_f})} file(s) holding secrets are gone from the layers"
                   + (f"; removed {len(removed)} visible file(s)" if removed else ""),
    }
    config = rewrite_config(scrubbed_image, start, entry, clamp=clamp)
    layers = [_existing(src, layer) for layer in image.layers[:start]]
    layers.append(NewLayer(squash_members(src, read, plan, counts, clamp=clamp)))
    result = write_image(output, config, layers, compression=compression, clamp=clamp)
    return RewriteResult("scrub", image.reference, result, len(image.layers), image.compressed_bytes,
                         result.layer_bytes, counts, details)


def _in_base(fs: MergedFS, path: str, start: int) -> bool:
    """Whether a base layer (< start) holds a version of ``path`` visible after layer start-1."""
    return any(0 <= v.layer < start and (v.hidden_by is None or v.hidden_by >= start) for v in fs.versions(path))
