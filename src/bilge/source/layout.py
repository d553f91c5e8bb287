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
from bilge.source import ImageSource, blob_path, check_digest, host_platform, load_json
from bilge.source.store import DirStore, Store, TarStore

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


def _descriptor(obj: Any, where: str) -> Descriptor:
    if not isinstance(obj, dict) or not isinstance(obj.get("digest"), str):
        raise ImageFormatError(f"{where}: malformed descriptor {obj!r:.120}")
    return Descriptor(
        media_type=str(obj.get("mediaType") or ""),
        digest=obj["digest"],
        size=int(obj.get("size") or 0),
        annotations=dict(obj.get("annotations") or {}),
        platform=Platform.from_json(obj.get("platform")),
    )


def open_oci_layout(ref: Reference, want: Platform | None, verify: bool) -> ImageSource:
    if ref.transport == "oci":
        if not os.path.isdir(ref.path):
            raise BilgeError(f"{ref}: {ref.path} is not a directory (use oci-archive: for a tar)")
        store: Store = DirStore(ref.path)
    else:
        if os.path.isdir(ref.path):
            raise BilgeError(f"{ref}: {ref.path} is a directory (use oci:{ref.path})")
        store = TarStore(ref.path)
    try:
        return read_layout(store, ref, want, verify, transport=ref.transport)
    except BaseException:
        store.close()
        raise


def read_layout(store: Store, ref: Reference, want: Platform | None, verify: bool, transport: str) -> ImageSource:
    where = f"{ref.path}"
    if not store.exists("index.json"):
        raise NotAnImageError(f"{where}: no index.json — not an OCI image layout")
    index = load_json(store.read("index.json"), f"{where}: index.json")
    if not isinstance(index, dict):
        raise NotAnImageError(f"{where}: index.json is not a JSON object")
    top = [_descriptor(d, f"{where}: index.json") for d in (index.get("manifests") or [])]
    if not top:
        if store.exists("manifest.json"):  # Docker 25+ save with "manifests": null
            from bilge.source.archive import _open

            return _open(store, ref, want, verify)  # type: ignore[arg-type]
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


def _is_attestation(desc: Descriptor) -> bool:
    if desc.annotations.get("vnd.docker.reference.type") == "attestation-manifest":
        return True
    return bool(desc.platform and desc.platform.os == "unknown" and desc.platform.architecture == "unknown")


def _walk(store: Store, desc: Descriptor, verify: bool, where: str, out: list[_Candidate], artifacts: list[str],
          seen: set[str], stack: tuple[str, ...], depth: int, index_annotations: dict[str, str]) -> None:
    if desc.digest in stack:
        raise ImageFormatError(f"{where}: index loop: {desc.digest[:19]} contains itself")
    if depth > MAX_DEPTH:
        raise ImageFormatError(f"{where}: indexes nested deeper than {MAX_DEPTH} levels")
    if _is_attestation(desc):
        return
    if not store.exists(blob_path(desc.digest)):
        if depth == 0:
            raise ImageFormatError(f"{where}: missing blob {desc.digest} (manifest or index)")
        return  # another platform's manifest that was not pulled
    doc = _read_blob_json(store, desc, verify, where)
    if not isinstance(doc, dict):
        raise ImageFormatError(f"{where}: blob {desc.digest[:19]} is not a JSON object")
    if isinstance(doc.get("manifests"), list) or doc.get("manifests") is None and "layers" not in doc:
        if "manifests" not in doc:
            if "fsLayers" in doc:
                raise ImageFormatError(f"{where}: Docker schema 1 manifests are not supported")
            raise ImageFormatError(f"{where}: blob {desc.digest[:19]} is neither an index nor a manifest")
        annotations = {**index_annotations, **dict(doc.get("annotations") or {})}
        for child in doc.get("manifests") or []:
            _walk(store, _descriptor(child, where), verify, where, out, artifacts, seen,
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


def _platform_of(store: Store, cand: _Candidate, verify: bool, where: str) -> Platform | None:
    if cand.platform is None:
        cdesc = _descriptor(cand.manifest["config"], where)
        if store.exists(blob_path(cdesc.digest)):
            cfg = _read_blob_json(store, cdesc, verify, where)
            cand.platform = Platform.from_json(cfg if isinstance(cfg, dict) else None)
    return cand.platform


def _match(have: Platform | None, want: Platform) -> bool:
    if have is None or (have.os, have.architecture) != (want.os, want.architecture):
        return False
    if not want.variant:
        return True
    norm = {"arm64": "v8"}
    return (have.variant or norm.get(have.architecture, "")) == want.variant


def _choose(cands: list[_Candidate], artifacts: list[str], want: Platform | None, ref: Reference,
            where: str) -> _Candidate:
    if not cands:
        if artifacts:
            raise NotAnImageError(f"{ref}: holds OCI artifacts, not container images: {', '.join(artifacts)}")
        raise ImageFormatError(f"{ref}: no image manifest found (blobs missing?)")
    if want is not None:
        hits = [c for c in cands if _match(c.platform, want)]
        if len(hits) == 1:
            return hits[0]
        present = ", ".join(sorted({str(c.platform) for c in cands if c.platform})) or "unknown"
        if not hits:
            raise BilgeError(f"{ref}: no image for platform {want}; platforms present: {present}")
        raise AmbiguousImageError(f"{ref}: {len(hits)} images match {want}; be more specific: {present}")
    if len(cands) == 1:
        return cands[0]
    host = host_platform()
    hits = [c for c in cands if _match(c.platform, Platform(host.os, host.architecture, host.variant))]
    if len(hits) == 1:
        return hits[0]
    present = ", ".join(str(c.platform or "unknown") for c in cands)
    raise AmbiguousImageError(f"{ref}: several platforms and none is this host's ({host}); "
                              f"choose with --platform: {present}")


def _build(store: Store, cand: _Candidate, ref: Reference, verify: bool, transport: str, where: str) -> ImageSource:
    manifest = cand.manifest
    cdesc = _descriptor(manifest["config"], where)
    if not store.exists(blob_path(cdesc.digest)):
        raise ImageFormatError(f"{where}: missing config blob {cdesc.digest}")
    if cdesc.digest == cand.descriptor.digest:
        raise ImageFormatError(f"{where}: manifest {cdesc.digest[:19]} names itself as its config")
    config = _read_blob_json(store, cdesc, verify, where)
    if not isinstance(config, dict):
        raise ImageFormatError(f"{where}: config {cdesc.digest[:19]} is not a JSON object")
    descs = [_descriptor(d, where) for d in manifest["layers"]]
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
    return ImageSource(image, store, paths, verify)
