"""``oci-archive:PATH[:TAG]``: an OCI image layout in a tar (what skopeo and buildah write)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from bilge.errors import OutputError
from bilge.sink.archive import ArchiveReader, write_archive
from bilge.sink.common import (
    OCI_LAYOUT,
    REF_NAME,
    BlobDir,
    LayerInput,
    LayerRecord,
    OutputSpec,
    WriteResult,
    assemble,
    index_json,
    manifest_descriptor,
    remove_tree,
    staging_dir,
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
    target = spec.path
    if target.is_dir():
        raise OutputError(f"cannot write oci-archive:{target}: it is a directory")
    stage = staging_dir(target)
    tmp = stage.with_name(stage.name + ".tar")
    try:
        a = assemble(BlobDir(stage), config, layers, compression, clamp, on_layer)
        desc = manifest_descriptor(a, {REF_NAME: spec.tag} if spec.tag else None)
        extra = {"oci-layout": OCI_LAYOUT, "index.json": index_json([desc])}
        write_archive(tmp, stage, extra, clamp or 0)
        reader = ArchiveReader(tmp)
        try:
            index = json.loads(reader.read("index.json"))
            if [m["digest"] for m in index["manifests"]] != [a.manifest_digest]:
                raise OutputError("verification failed: index.json does not name the written manifest")
            verify_image(reader.blob_opener(), a.manifest_digest, full=verify_full,
                         expect_manifest_size=a.manifest_size)
        finally:
            reader.close()
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    finally:
        remove_tree(stage)
    return WriteResult(spec, a.manifest_digest, a.config_digest, a.layers, a.config)
