"""``docker-archive:PATH[:NAME:TAG]``: what ``docker load`` reads.

Written like Docker 25+'s ``docker save``: ``manifest.json`` (the legacy index docker load and
skopeo read) plus ``index.json`` / ``oci-layout``, all pointing at the same ``blobs/sha256/``
files. Layers stay compressed (docker load and containerd decompress gzip and zstd), so the archive
is the size of the image, not of its unpacked tars.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from bilge.errors import OutputError
from bilge.sink.archive import ArchiveReader, write_image_archive
from bilge.sink.common import (
    OCI_LAYOUT,
    REF_NAME,
    Assembled,
    LayerInput,
    LayerRecord,
    OutputSpec,
    WriteResult,
    canonical_json,
    index_json,
    manifest_descriptor,
    verify_image,
)
from bilge.sink.layer import Compression


def _blob_name(digest: str) -> str:
    return "blobs/" + digest.replace(":", "/", 1)


def _containerd_name(name_tag: str) -> str:
    name = name_tag.rsplit(":", 1)[0]
    first = name.split("/", 1)[0]
    if "/" not in name:
        return f"docker.io/library/{name_tag}"
    if "." in first or ":" in first or first == "localhost":
        return name_tag
    return f"docker.io/{name_tag}"


def write(
    spec: OutputSpec,
    config: Mapping[str, Any],
    layers: Sequence[LayerInput],
    compression: Compression,
    clamp: int | None,
    on_layer: Callable[[int, LayerRecord], None] | None = None,
    verify_full: bool = True,
) -> WriteResult:
    def extra(a: Assembled) -> dict[str, bytes]:
        annotations = None
        if spec.tag:
            annotations = {"io.containerd.image.name": _containerd_name(spec.tag),
                           REF_NAME: spec.tag.rsplit(":", 1)[1]}
        manifest_json = [{
            "Config": _blob_name(a.config_digest),
            "RepoTags": [spec.tag] if spec.tag else None,
            "Layers": [_blob_name(r.digest) for r in a.layers],
        }]
        return {
            "manifest.json": canonical_json(manifest_json),
            "oci-layout": OCI_LAYOUT,
            "index.json": index_json([manifest_descriptor(a, annotations)]),
        }

    def check(reader: ArchiveReader, a: Assembled) -> None:
        legacy = json.loads(reader.read("manifest.json"))
        if legacy[0]["Config"] != _blob_name(a.config_digest):
            raise OutputError("verification failed: manifest.json names another config")
        manifest = verify_image(reader.blob_opener(), a.manifest_digest, full=verify_full,
                                expect_manifest_size=a.manifest_size)
        if legacy[0]["Layers"] != [_blob_name(d["digest"]) for d in manifest["layers"]]:
            raise OutputError("verification failed: manifest.json layers differ from the manifest's")

    return write_image_archive("docker-archive", spec, config, layers, compression, clamp, on_layer, extra, check)
