"""`docker save` archives: the legacy layout (``<id>/layer.tar``), Docker 25+ (OCI blobs + manifest.json),
and the variants other tools write (kaniko, jib, buildah, ggcr), whole archive optionally gzipped."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any

from bilge.compression import sniff
from bilge.errors import AmbiguousImageError, BilgeError, ImageFormatError, NotAnImageError
from bilge.image import (
    DOCKER_LAYER,
    DOCKER_LAYER_GZIP,
    OCI_LAYER_ZSTD,
    Image,
    Layer,
    Platform,
    align_history,
)
from bilge.reference import Reference
from bilge.source import platforms, schema
from bilge.source.base import SourceOptions
from bilge.source.common import check_digest, load_json
from bilge.source.store import Store, TarStore
from bilge.source.stored import StoreSource, read_store

_HEX = re.compile(r"(?:sha256[:_/-])?([0-9a-f]{64})")


def normalize_tag(tag: str) -> str:
    """Docker's short forms: ``app`` → ``docker.io/library/app:latest``."""
    tag = tag.strip()
    name, digest = tag, ""
    if "@" in tag:
        name, _, digest = tag.partition("@")
    last = name.rsplit("/", 1)[-1]
    if ":" not in last and not digest:
        name += ":latest"
    first, _, rest = name.partition("/")
    if not rest or ("." not in first and ":" not in first and first != "localhost"):
        name = "docker.io/" + (name if rest else name)
        first, _, rest = name.partition("/")
    if first in ("index.docker.io", "registry-1.docker.io"):
        name = "docker.io/" + rest
    if name.startswith("docker.io/") and name.count("/") == 1:
        name = "docker.io/library/" + name[len("docker.io/") :]
    return name + (("@" + digest) if digest else "")


def _lower_keys(obj: Mapping[str, Any]) -> dict[str, Any]:
    return {str(k).lower(): v for k, v in obj.items()}


def _sniff(store: Store, name: str) -> str:
    with store.open(name) as fh:
        head = fh.read(4)
    return {"gzip": DOCKER_LAYER_GZIP, "zstd": OCI_LAYER_ZSTD}.get(sniff(head), DOCKER_LAYER)


def open_source(ref: Reference, want: Platform | None, verify: bool, options: SourceOptions | None = None) -> StoreSource:
    """``docker-archive:PATH[:TAG|:@N]`` (``options`` are for remote sources; unused here)."""
    store = TarStore(ref.path)
    try:
        return read_store(store, ref, want, verify, "docker-archive")
    except BaseException:
        store.close()
        raise


def read_docker_save(store: Store, ref: Reference, want: Platform | None, verify: bool) -> StoreSource:
    """Read the image a ``manifest.json`` (``docker save``'s index) describes."""
    manifest = load_json(store.read("manifest.json"), f"{ref.path}: manifest.json")
    if manifest is None or manifest == []:
        raise NotAnImageError(f"{ref.path}: manifest.json lists no images")
    if not isinstance(manifest, list) or not all(isinstance(m, dict) for m in manifest):
        raise ImageFormatError(f"{ref.path}: manifest.json is not a list of image entries")
    schema.docker_save(manifest, f"{ref.path}: manifest.json")
    entries = [_lower_keys(m) for m in manifest]
    entry, index = _select(entries, ref)
    config_name = entry.get("config")
    if not isinstance(config_name, str):
        raise ImageFormatError(f"{ref.path}: manifest.json entry {index} has no Config")
    config_bytes = store.read(config_name)
    m = _HEX.fullmatch(config_name.rsplit("/", 1)[-1].removesuffix(".json")) or (
        _HEX.fullmatch(config_name.replace("blobs/sha256/", "")))
    if m:
        image_id = f"sha256:{m.group(1)}"
        if verify:
            check_digest(config_bytes, image_id, f"{ref.path}: config {config_name}")
    else:
        image_id = "sha256:" + hashlib.sha256(config_bytes).hexdigest()
    config = load_json(config_bytes, f"{ref.path}: config {config_name}")
    schema.config(config, f"{ref.path}: config {config_name}")
    layer_names = entry.get("layers") or []
    if not isinstance(layer_names, list) or not all(isinstance(n, str) for n in layer_names):
        raise ImageFormatError(f"{ref.path}: manifest.json Layers is not a list of paths")
    diff_ids = list(((config.get("rootfs") or {}).get("diff_ids")) or [])
    if len(diff_ids) != len(layer_names):
        raise ImageFormatError(f"{ref.path}: config lists {len(diff_ids)} diff_ids but manifest.json "
                               f"{len(layer_names)} layers")
    _history, per_layer = align_history(config.get("history"), len(layer_names))
    layers = []
    paths = {}
    for i, (name, diff_id) in enumerate(zip(layer_names, diff_ids, strict=True)):
        if not store.exists(name):
            raise ImageFormatError(f"{ref.path}: layer {i} ({name}) is missing from the archive")
        media_type = _sniff(store, name)
        # The stored member's own digest: Docker 25+ names blobs by it; an uncompressed layer's is its
        # diff_id; kaniko/jib name compressed members by it. (manifest.json's LayerSources describes the
        # registry's blob, not the stored one, so it is not used.)
        digest = ""
        named = re.fullmatch(r"(?:\./)?blobs/sha256/([0-9a-f]{64})", name)
        hm = _HEX.search(name)
        if named:
            digest = f"sha256:{named.group(1)}"
        elif media_type == DOCKER_LAYER:
            digest = diff_id
        elif hm and not name.endswith("layer.tar"):
            digest = f"sha256:{hm.group(1)}"
        layers.append(Layer(index=i, digest=digest, diff_id=diff_id, media_type=media_type,
                            size=store.size(name), history=per_layer[i]))
        paths[i] = name
    platform = Platform.from_json(config)
    if want and platform and not platforms.matches(platform, want):
        raise BilgeError(f"{ref}: image is {platform}, not {want}")
    tags = tuple(t for t in (entry.get("repotags") or []) if isinstance(t, str))
    image = Image(reference=str(ref), transport="docker-archive", digest=None, image_id=image_id,
                  platform=platform, config=config, manifest=None, layers=tuple(layers),
                  history=_history, repo_tags=tags)
    return StoreSource(image, store, paths, verify)


def _select(entries: list[dict[str, Any]], ref: Reference) -> tuple[dict[str, Any], int]:
    def describe() -> str:
        rows = []
        for i, e in enumerate(entries):
            tags = ", ".join(e.get("repotags") or []) or "untagged"
            rows.append(f"@{i} ({tags})")
        return "; ".join(rows)

    if ref.index is not None:
        if not 0 <= ref.index < len(entries):
            raise BilgeError(f"{ref}: no image @{ref.index}; the archive holds {describe()}")
        return entries[ref.index], ref.index
    if ref.tag:
        want = normalize_tag(ref.tag)
        for i, e in enumerate(entries):
            for t in e.get("repotags") or []:
                if isinstance(t, str) and normalize_tag(t) == want:
                    return e, i
        raise BilgeError(f"{ref}: no image tagged {ref.tag!r}; the archive holds {describe()}")
    if len(entries) > 1:
        raise AmbiguousImageError(f"{ref}: the archive holds {len(entries)} images, choose one with "
                                  f"PATH:TAG or PATH:@N: {describe()}")
    return entries[0], 0
