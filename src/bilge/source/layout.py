"""OCI image layouts: a directory (``oci:DIR[:TAG]``) or a tar of one (``oci-archive:PATH[:TAG]``).

Walks nested indexes and Docker manifest lists, classifies blobs by their content when the
descriptor's media type disagrees, skips attestation manifests and artifacts, tolerates missing blobs
for platforms that were not pulled, and detects index loops.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from bilge.errors import AmbiguousImageError, BilgeError, ImageFormatError, NotAnImageError
from bilge.image import (
    DOCKER_CONFIG,
    OCI_CONFIG,
    Descriptor,
    Image,
    Layer,
    Platform,
    align_history,
)
from bilge.reference import Reference
from bilge.source import platforms, schema
from bilge.source.base import SourceOptions
from bilge.source.common import blob_path, check_digest, descriptor, is_attestation, load_json
from bilge.source.store import DirStore, Store, TarStore
from bilge.source.stored import StoreSource, read_store

REF_NAME = "org.opencontainers.image.ref.name"
CONTAINERD_NAME = "io.containerd.image.name"
IMAGE_CONFIG_TYPES = {OCI_CONFIG, DOCKER_CONFIG}
MAX_DEPTH = 8


@dataclass
class _Candidate:
    descriptor: Descriptor
    manifest: dict[str, Any]
    platform: Platform | None
    index_annotations: dict[str, str]


def open_source(ref: Reference, want: Platform | None, verify: bool, options: SourceOptions | None = None) -> StoreSource:
    """``oci:DIR[:TAG]`` and ``oci-archive:PATH[:TAG]`` (``options`` are for remote sources; unused here)."""
    if ref.transport == "oci":
        if not os.path.isdir(ref.path):
            raise BilgeError(f"{ref}: {ref.path} is not a directory (use oci-archive: for a tar)")
        store: Store = DirStore(ref.path)
    else:
        if os.path.isdir(ref.path):
            raise BilgeError(f"{ref}: {ref.path} is a directory (use oci:{ref.path})")
        store = TarStore(ref.path)
    try:
        return read_store(store, ref, want, verify, ref.transport)
    except BaseException:
        store.close()
        raise


def read_layout(store: Store, ref: Reference, want: Platform | None, verify: bool, transport: str) -> StoreSource:
    """Read the image an OCI ``index.json`` describes (nested indexes, tags, platforms)."""
    where = f"{ref.path}"
    if not store.exists("index.json"):
        raise NotAnImageError(f"{where}: no index.json — not an OCI image layout")
    index = load_json(store.read("index.json"), f"{where}: index.json")
    if not isinstance(index, dict):
        raise NotAnImageError(f"{where}: index.json is not a JSON object")
    schema.index(index, f"{where}: index.json")
    top = [descriptor(d, f"{where}: index.json") for d in (index.get("manifests") or [])]
    if not top:
        raise NotAnImageError(f"{where}: index.json lists no manifests")
    top = _filter_tag(top, ref, where)
    candidates: list[_Candidate] = []
    artifacts: list[str] = []
    seen: set[str] = set()
    for desc in top:
        _walk(store, desc, verify, where, candidates, artifacts, seen, stack=(), depth=0,
              index_annotations=dict(index.get("annotations") or {}))
    chosen = _choose(candidates, artifacts, want, ref, where)
    return _build(store, chosen, ref, verify, transport, where)


def _filter_tag(top: list[Descriptor], ref: Reference, where: str) -> list[Descriptor]:
    def names(d: Descriptor) -> list[str]:
        out = []
        if d.annotations.get(REF_NAME):
            out.append(d.annotations[REF_NAME])
        if d.annotations.get(CONTAINERD_NAME):
            out.append(d.annotations[CONTAINERD_NAME])
        return out

    if ref.tag:
        tag = ref.tag
        hits = [d for d in top if d.digest == tag or any(
            n == tag or n.endswith(":" + tag) or n.endswith("/" + tag) for n in names(d))]
        if not hits:
            available = sorted({n for d in top for n in names(d)})
            raise BilgeError(f"{ref}: no image tagged {tag!r}; tags present: {', '.join(available) or 'none'}")
        return _dedupe(hits)
    unique = _dedupe(top)
    if len(unique) > 1:
        tags = sorted({n for d in unique for n in names(d)})
        listing = ", ".join(tags) if tags else ", ".join(d.digest[:19] for d in unique)
        raise AmbiguousImageError(f"{ref}: the layout holds {len(unique)} entries; choose one with "
                                  f"{'oci' if ref.transport == 'oci' else ref.transport}:PATH:TAG: {listing}")
    return unique


def _dedupe(descs: list[Descriptor]) -> list[Descriptor]:
    out: dict[str, Descriptor] = {}
    for d in descs:
        if d.digest not in out or (d.platform and not out[d.digest].platform):
            out[d.digest] = d
    return list(out.values())


def _read_blob_json(store: Store, desc: Descriptor, verify: bool, where: str) -> Any:
    path = blob_path(desc.digest)
    data = store.read(path)
    if verify:
        check_digest(data, desc.digest, f"{where}: blob {desc.digest[:19]}")
    return load_json(data, f"{where}: blob {desc.digest[:19]}")


def _walk(store: Store, desc: Descriptor, verify: bool, where: str, out: list[_Candidate], artifacts: list[str],
          seen: set[str], stack: tuple[str, ...], depth: int, index_annotations: dict[str, str]) -> None:
    if desc.digest in stack:
        raise ImageFormatError(f"{where}: index loop: {desc.digest[:19]} contains itself")
    if depth > MAX_DEPTH:
        raise ImageFormatError(f"{where}: indexes nested deeper than {MAX_DEPTH} levels")
    if is_attestation(desc):
        return
    if not store.exists(blob_path(desc.digest)):
        if depth == 0:
            raise ImageFormatError(f"{where}: missing blob {desc.digest} (manifest or index)")
        return  # another platform's manifest that was not pulled
    doc = _read_blob_json(store, desc, verify, where)
    if not isinstance(doc, dict):
        raise ImageFormatError(f"{where}: blob {desc.digest[:19]} is not a JSON object")
    if "manifests" in doc and "layers" not in doc:
        schema.index(doc, f"{where}: index {desc.digest[:19]}")
    else:
        schema.manifest(doc, f"{where}: manifest {desc.digest[:19]}")
    if isinstance(doc.get("manifests"), list) or doc.get("manifests") is None and "layers" not in doc:
        if "manifests" not in doc:
            if "fsLayers" in doc:
                raise ImageFormatError(f"{where}: Docker schema 1 manifests are not supported")
            raise ImageFormatError(f"{where}: blob {desc.digest[:19]} is neither an index nor a manifest")
        annotations = {**index_annotations, **dict(doc.get("annotations") or {})}
        for child in doc.get("manifests") or []:
            _walk(store, descriptor(child, where), verify, where, out, artifacts, seen,
                  stack + (desc.digest,), depth + 1, annotations)
        return
    config = doc.get("config")
    if not isinstance(config, dict) or not isinstance(doc.get("layers"), list):
        raise ImageFormatError(f"{where}: manifest {desc.digest[:19]} has no config or layers")
    config_type = str(config.get("mediaType") or "")
    if config_type not in IMAGE_CONFIG_TYPES or doc.get("artifactType"):
        artifacts.append(f"{desc.digest[:19]} ({doc.get('artifactType') or config_type})")
        return
    if desc.digest in seen:
        return
    seen.add(desc.digest)
    out.append(_Candidate(desc, doc, desc.platform, index_annotations))


def _choose(cands: list[_Candidate], artifacts: list[str], want: Platform | None, ref: Reference,
            where: str) -> _Candidate:
    if not cands:
        if artifacts:
            raise NotAnImageError(f"{ref}: holds OCI artifacts, not container images: {', '.join(artifacts)}")
        raise ImageFormatError(f"{ref}: no image manifest found (blobs missing?)")
    return platforms.choose(cands, lambda c: c.platform, want, str(ref))


def _build(store: Store, cand: _Candidate, ref: Reference, verify: bool, transport: str, where: str) -> StoreSource:
    manifest = cand.manifest
    cdesc = descriptor(manifest["config"], where)
    if not store.exists(blob_path(cdesc.digest)):
        raise ImageFormatError(f"{where}: missing config blob {cdesc.digest}")
    if cdesc.digest == cand.descriptor.digest:
        raise ImageFormatError(f"{where}: manifest {cdesc.digest[:19]} names itself as its config")
    config = _read_blob_json(store, cdesc, verify, where)
    schema.config(config, f"{where}: config {cdesc.digest[:19]}")
    descs = [descriptor(d, where) for d in manifest["layers"]]
    diff_ids = list(((config.get("rootfs") or {}).get("diff_ids")) or [])
    if len(diff_ids) != len(descs):
        raise ImageFormatError(f"{where}: config lists {len(diff_ids)} diff_ids but the manifest "
                               f"{len(descs)} layers")
    history, per_layer = align_history(config.get("history"), len(descs))
    layers, paths = [], {}
    for i, (d, diff_id) in enumerate(zip(descs, diff_ids, strict=True)):
        if d.digest in (cand.descriptor.digest, cdesc.digest):
            raise ImageFormatError(f"{where}: layer {i} points at the manifest or config blob")
        path = blob_path(d.digest)
        if not store.exists(path):
            raise ImageFormatError(f"{where}: layer {i} blob {d.digest} is missing")
        layers.append(Layer(index=i, digest=d.digest, diff_id=diff_id, media_type=d.media_type,
                            size=store.size(path), history=per_layer[i], annotations=d.annotations))
        paths[i] = path
    tags = tuple(n for n in (cand.descriptor.annotations.get(REF_NAME),
                             cand.descriptor.annotations.get(CONTAINERD_NAME)) if n)
    image = Image(reference=str(ref), transport=transport, digest=cand.descriptor.digest, image_id=cdesc.digest,
                  platform=Platform.from_json(config) or cand.platform, config=config, manifest=manifest,
                  layers=tuple(layers), history=history, repo_tags=tags,
                  annotations=dict(manifest.get("annotations") or {}),
                  index_annotations=cand.index_annotations)
    return StoreSource(image, store, paths, verify)
