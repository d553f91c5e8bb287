"""Where the bytes of an image go, and which of them are dead weight. Pure: Image + MergedFS → Analysis.

Definitions (other checks rely on them):

- ``layer_bytes``: sum of the sizes of regular-file entries in all layers (hardlink entries count 0).
- ``visible_bytes``: bytes of regular files visible in the final filesystem, each hardlinked body once.
- ``reclaimable_bytes = layer_bytes - visible_bytes``: what a perfect squash would free, uncompressed.
- dive's ``efficiency``, ``wasted_bytes``, ``user_size_bytes``, ``user_wasted_percent`` are computed the
  way dive computes them, quirks included (see docs/analyze.md).
"""

from __future__ import annotations

import posixpath
import re
from collections import defaultdict
from dataclasses import dataclass, field
from posixpath import dirname

from bilge.fs import FsFinding, MergedFS, Version
from bilge.history import instruction
from bilge.image import Image
from bilge.redact import redact


@dataclass(frozen=True)
class LayerReport:
    index: int
    digest: str
    diff_id: str | None
    created_by: str
    history_index: int | None
    instruction: str  # RUN, COPY, ADD, ... or "" when unknown
    compression: str
    compressed_bytes: int
    uncompressed_bytes: int
    layer_bytes: int
    reclaimable_bytes: int  # dead weight this layer carries (bytes it wrote that nobody sees)
    visible_bytes: int  # bytes this layer wrote that the final filesystem shows (each hardlinked body once)
    hides_bytes: int  # bytes of lower layers this layer hid (deleted or overwrote)
    entries: int
    files_added: int
    files_modified: int
    files_deleted: int
    is_base: bool


@dataclass(frozen=True)
class WasteGroup:
    path: str  # "/usr/lib/gcc/" for a directory group, "/root/saved.txt" for a file
    is_dir: bool
    files: int
    bytes: int
    layer: int
    hidden_by_layer: int
    how: str  # deleted | overwritten | opaque | parent replaced
    created_by: str
    hidden_by_created_by: str
    fix: str


@dataclass(frozen=True)
class Flow:
    layer: int
    hidden_by_layer: int
    files: int
    bytes: int


@dataclass(frozen=True)
class DirSize:
    path: str
    bytes: int
    files: int


@dataclass(frozen=True)
class DiveMetrics:
    efficiency: float
    wasted_bytes: int
    size_bytes: int
    user_size_bytes: int
    user_wasted_percent: float
    inefficient: tuple[tuple[str, int, int], ...]  # (path, count, cumulative bytes), biggest first


@dataclass(frozen=True)
class Summary:
    compressed_bytes: int
    uncompressed_bytes: int
    layer_bytes: int
    visible_bytes: int
    reclaimable_bytes: int
    reclaimable_percent: float
    base_layer_bytes: int
    user_layer_bytes: int
    user_reclaimable_bytes: int
    entries: int
    files: int
    directories: int
    symlinks: int
    hardlinks: int
    other: int
    layers: int
    base_layers: int
    base_source: str  # "--base REF" or "assumed: layer 0 (dive's convention)"
    verified: bool


@dataclass(frozen=True)
class Analysis:
    image: Image
    summary: Summary
    dive: DiveMetrics
    layers: tuple[LayerReport, ...]
    wasted: tuple[WasteGroup, ...]
    flows: tuple[Flow, ...]
    directories: tuple[DirSize, ...]
    findings: tuple[FsFinding, ...]
    notes: tuple[str, ...] = field(default=())




def _fix(how: str, writer_kw: str, hider_text: str, writer_is_base: bool, same_size: bool,
         writer: int, hider: int) -> str:
    if writer == hider:
        return "the layer holds this path twice; only the last copy is used — write it once"
    if writer_is_base:
        return ("the base image ships these bytes and a later layer cannot free them: choose a smaller base "
                "image, or squash your layers onto it (`bilge squash`)")
    chmodish = re.search(r"\b(chmod|chown|chgrp|touch|setfacl)\b", hider_text)
    if how == "overwritten" and same_size and chmodish:
        return ("set mode/owner where the file is created (COPY --chmod/--chown, or in the same RUN): "
                f"a {chmodish.group(1)} in a later layer stores the whole file again")
    if writer_kw in ("COPY", "ADD"):
        if how == "overwritten":
            return ("copy the final version only once: the earlier copy still ships in its layer; "
                    "narrow the COPY or add the path to .dockerignore")
        return ("do not COPY what a later step deletes: narrow the COPY, add it to .dockerignore, "
                "or copy it into a build stage that is not shipped (multistage build)")
    if how == "overwritten":
        return ("write the final version in one step: the earlier version still ships in its layer; "
                "or produce it in a build stage and COPY --from the result")
    return ("remove it in the same RUN that created it, or build in a stage that is not "
            "shipped and COPY --from only what the final image needs (multistage build)")


def dive_metrics(fs: MergedFS) -> DiveMetrics:
    """dive's efficiency and wasted-space numbers, computed as dive computes them (quirks included).

    Per layer, only the leaves of that layer's own tree count; a whiteout of a directory counts the bytes
    it hid, a whiteout of a file counts 0; a path seen in two or more layers is "inefficient" and all its
    bytes (every copy) are "wasted"; efficiency = Σ smallest copy / Σ all copies over all paths.
    """
    eff: dict[str, list[int]] = {}
    for layer in fs.layers:
        nodes = layer.dive_nodes
        parents: set[str] = set()
        for p in nodes:  # every ancestor of every node (no generator: ~50,000 paths a layer)
            a = p
            while a:
                i = a.rfind("/")  # posixpath.dirname(a), without its call for the common case
                a = a[:i] if i > 0 and a[i - 1] != "/" else dirname(a)
                if a in parents:
                    break
                parents.add(a)
        for p, size in nodes.items():
            if p in parents:
                continue
            d = eff.get(p)
            if d is None:
                eff[p] = [1, size, size]
            else:
                d[0] += 1
                d[1] += size
                if size < d[2]:
                    d[2] = size
    minimum = sum(d[2] for d in eff.values())
    discovered = sum(d[1] for d in eff.values())
    efficiency = 1.0 if discovered == 0 else minimum / discovered
    inefficient = sorted(((p, d[0], d[1]) for p, d in eff.items() if d[0] >= 2), key=lambda t: (-t[2], t[0]))
    wasted = sum(t[2] for t in inefficient)
    size = sum(layer.file_bytes for layer in fs.layers)
    user = size - (fs.layers[0].file_bytes if fs.layers else 0)
    return DiveMetrics(
        efficiency=efficiency, wasted_bytes=wasted, size_bytes=size, user_size_bytes=user,
        user_wasted_percent=(wasted / user) if user > 0 else 0.0,
        inefficient=tuple(("/" + p, n, b) for p, n, b in inefficient),
    )


def _base_layers(image: Image, base_diff_ids: list[str] | None) -> tuple[int, str, list[str]]:
    """How many bottom layers are the base image's, how that was decided, and a note when it is partial."""
    n = len(image.layers)
    if base_diff_ids is None:
        return (1 if n else 0), "layer 0, by dive's convention (pass --base REF to be exact)", []
    base = 0
    while base < min(n, len(base_diff_ids)) and image.layers[base].diff_id == base_diff_ids[base]:
        base += 1
    notes = []
    if base < len(base_diff_ids):
        notes.append(f"the image shares only {base} of the base image's {len(base_diff_ids)} layers")
    return base, f"--base ({base} of {len(base_diff_ids)} base layers shared)", notes


def analyze(image: Image, fs: MergedFS, *, base_diff_ids: list[str] | None = None,
            depth: int = 2, top_dirs: int = 20, rollup: int = 3) -> Analysis:
    n = len(image.layers)
    base, base_source, notes = _base_layers(image, base_diff_ids)
    kw_text = [instruction(layer.created_by) for layer in image.layers]
    shown = [redact(layer.created_by) for layer in image.layers]  # masked once per layer, not per row

    bodies = fs.visible_bodies()
    visible_bytes = sum(b.size for b in bodies.values())
    visible_by_layer = [0] * n
    for b in bodies.values():
        if 0 <= b.layer < n:
            visible_by_layer[b.layer] += b.size
    reclaim_by_layer = [0] * n
    hides_by_layer = [0] * n
    groups: dict[tuple[str, int, int, str], list[Version]] = defaultdict(list)
    for _path, v in fs.all_versions():
        if v.kind != "file" or id(v) in bodies or v.size == 0:
            continue
        reclaim_by_layer[v.layer] += v.size
        hider = v.hidden_by if v.hidden_by is not None else v.layer
        if 0 <= hider < n:
            hides_by_layer[hider] += v.size
        root = v.hidden_root if v.hidden_how in ("deleted", "opaque", "parent replaced") and v.hidden_root else v.path
        groups[(root, v.layer, hider, v.hidden_how or "overwritten")].append(v)

    # roll single files that share a directory, a writer and a hider up into their directory
    rolled: dict[tuple[str, int, int, str], list[Version]] = defaultdict(list)
    by_parent: dict[tuple[str, int, int, str], list[tuple[str, list[Version]]]] = defaultdict(list)
    for (root, w, h, how), vs in groups.items():
        is_single = len(vs) == 1 and vs[0].path == root
        if is_single:
            by_parent[(posixpath.dirname(root), w, h, how)].append((root, vs))
        else:
            rolled[(root, w, h, how)].extend(vs)
    for (parent, w, h, how), items in by_parent.items():
        if len(items) >= rollup:
            rolled[(parent + "/" if parent else "/", w, h, how)].extend(v for _, vs in items for v in vs)
        else:
            for root, vs in items:
                rolled[(root, w, h, how)].extend(vs)

    wasted = []
    for (root, w, h, how), vs in rolled.items():
        total = sum(v.size for v in vs)
        is_dir = root.endswith("/") or len(vs) > 1 or vs[0].path != root
        display = "/" + root.strip("/") + ("/" if is_dir and root.strip("/") else "")
        same_size = False
        if how == "overwritten" and len(vs) == 1:
            after = fs.version_at(vs[0].path, h)
            same_size = after is not None and after.size == vs[0].size
        wasted.append(WasteGroup(
            path=display, is_dir=is_dir, files=len(vs), bytes=total, layer=w, hidden_by_layer=h, how=how,
            created_by=shown[w] if w < n else "",
            hidden_by_created_by=shown[h] if 0 <= h < n else "",
            fix=_fix(how, kw_text[w][0] if w < n else "", kw_text[h][1] if 0 <= h < n else "", w < base,
                     same_size, w, h),
        ))
    wasted.sort(key=lambda g: (-g.bytes, g.path))

    flow_acc: dict[tuple[int, int], list[int]] = defaultdict(lambda: [0, 0])
    for g in wasted:
        acc = flow_acc[(g.layer, g.hidden_by_layer)]
        acc[0] += g.files
        acc[1] += g.bytes
    flows = tuple(sorted((Flow(w, h, f, b) for (w, h), (f, b) in flow_acc.items()), key=lambda x: (-x.bytes, x.layer)))

    counts = defaultdict(int)
    dir_bytes: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    seen_bodies: set[int] = set()
    dir_key: dict[str, str] = {}  # parent directory -> its top-``depth`` directory, computed once
    for path, v in fs.visible():
        counts[v.kind] += 1
        if v.body is not None:
            parent = path.rpartition("/")[0]
            key = dir_key.get(parent)
            if key is None:
                key = dir_key[parent] = "/" + "/".join(path.split("/")[:-1][:depth])
            acc = dir_bytes[key]
            acc[1] += 1
            if id(v.body) not in seen_bodies:
                seen_bodies.add(id(v.body))
                acc[0] += v.body.size
    directories = tuple(sorted((DirSize(p, b, f) for p, (b, f) in dir_bytes.items()),
                               key=lambda d: (-d.bytes, d.path))[:top_dirs])

    layer_reports = []
    for layer, summary in zip(image.layers, fs.layers, strict=False):
        kw, _ = kw_text[layer.index]
        layer_reports.append(LayerReport(
            index=layer.index, digest=layer.digest or layer.diff_id or "", diff_id=layer.diff_id,
            created_by=shown[layer.index], history_index=layer.history.index if layer.history else None,
            instruction=kw, compression=summary.compression, compressed_bytes=layer.size,
            uncompressed_bytes=summary.uncompressed_bytes, layer_bytes=summary.file_bytes,
            reclaimable_bytes=reclaim_by_layer[layer.index], visible_bytes=visible_by_layer[layer.index],
            hides_bytes=hides_by_layer[layer.index],
            entries=summary.entries, files_added=summary.added, files_modified=summary.modified,
            files_deleted=summary.deleted, is_base=layer.index < base,
        ))
    layer_bytes = sum(s.file_bytes for s in fs.layers)
    reclaimable = layer_bytes - visible_bytes
    base_bytes = sum(r.layer_bytes for r in layer_reports if r.is_base)
    summary = Summary(
        compressed_bytes=image.compressed_bytes,
        uncompressed_bytes=sum(s.uncompressed_bytes for s in fs.layers),
        layer_bytes=layer_bytes, visible_bytes=visible_bytes, reclaimable_bytes=reclaimable,
        reclaimable_percent=(100.0 * reclaimable / layer_bytes) if layer_bytes else 0.0,
        base_layer_bytes=base_bytes, user_layer_bytes=layer_bytes - base_bytes,
        user_reclaimable_bytes=sum(r.reclaimable_bytes for r in layer_reports if not r.is_base),
        entries=sum(s.entries for s in fs.layers), files=counts["file"] + counts["hardlink"],
        directories=counts["dir"], symlinks=counts["symlink"], hardlinks=counts["hardlink"],
        other=sum(c for k, c in counts.items() if k not in ("file", "dir", "symlink", "hardlink")),
        layers=n, base_layers=base, base_source=base_source,
        verified=bool(fs.layers) and all(s.verified for s in fs.layers),
    )
    return Analysis(image=image, summary=summary, dive=dive_metrics(fs), layers=tuple(layer_reports),
                    wasted=tuple(wasted), flows=flows, directories=directories,
                    findings=tuple(fs.findings), notes=tuple(notes))
