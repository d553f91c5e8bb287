"""``oci-archive:PATH[:TAG]``: an OCI image layout in a tar (what skopeo and buildah write)."""

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
    index_json,
    manifest_descriptor,
    verify_image,
)
from bilge.sink.layer import Compression


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
        desc = manifest_descriptor(a, {REF_NAME: spec.tag} if spec.tag else None)
        return {"oci-layout": OCI_LAYOUT, "index.json": index_json([desc])}

    def check(reader: ArchiveReader, a: Assembled) -> None:
        index = json.loads(reader.read("index.json"))
        if [m["digest"] for m in index["manifests"]] != [a.manifest_digest]:
            raise OutputError("verification failed: index.json does not name the written manifest")
        verify_image(reader.blob_opener(), a.manifest_digest, full=verify_full,
                     expect_manifest_size=a.manifest_size)

    return write_image_archive("oci-archive", spec, config, layers, compression, clamp, on_layer, extra, check)
