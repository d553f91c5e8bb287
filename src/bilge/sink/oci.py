"""OCI image layout directory (``oci:DIR[:TAG]``).

A new directory is built in a staging directory beside it and renamed into place once verified.
An existing layout gets the new blobs (each written to a temp name, renamed to its digest) and a
new ``index.json`` swapped in atomically after verification; a manifest that carried the same tag
loses it, as with skopeo. A directory that exists and is neither empty nor a layout is refused.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from bilge import cleanup
from bilge.errors import OutputError
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


def _existing_manifests(root: Path) -> list[dict[str, Any]] | None:
    """The manifests of an existing layout; None when ``root`` is absent or empty."""
    if not root.exists():
        return None
    if not root.is_dir():
        raise OutputError(f"cannot write oci:{root}: it exists and is not a directory")
    if not any(root.iterdir()):
        return None
    for name in ("oci-layout", "index.json", "blobs"):
        if (root / name).is_symlink():  # the reader refuses such a layout; the writer never follows one
            raise OutputError(f"cannot write oci:{root}: {name} is a symbolic link")
    if not (root / "oci-layout").is_file() or not (root / "index.json").is_file():
        raise OutputError(f"cannot write oci:{root}: the directory is not empty and not an OCI layout")
    try:
        index = json.loads((root / "index.json").read_bytes())
        return list(index.get("manifests") or [])
    except (ValueError, AttributeError):
        raise OutputError(f"cannot write oci:{root}: its index.json is not valid JSON") from None


def _write_new(directory: Path, prefix: str, data: bytes) -> Path:
    """Write ``data`` to a new file with an unpredictable name in ``directory`` (O_CREAT|O_EXCL, so a
    planted name or symlink is never followed); return its path."""
    fd, name = cleanup.mkstemp(directory, prefix, ".bilge-tmp")
    try:
        mask = os.umask(0)
        os.umask(mask)
        os.fchmod(fd, 0o666 & ~mask)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
    except BaseException:
        cleanup.remove(name)
        raise
    return name


def open_layout_blob(root: Path) -> Callable[[str], Any]:
    def opener(digest: str) -> Any:
        return (root / "blobs" / digest.replace(":", "/", 1)).open("rb")

    return opener


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
    existing = _existing_manifests(target)
    annotations = {REF_NAME: spec.tag} if spec.tag else None
    if existing is None:
        stage = staging_dir(target)
        try:
            blobs = BlobDir(stage)
            a = assemble(blobs, config, layers, compression, clamp, on_layer)
            (stage / "oci-layout").write_bytes(OCI_LAYOUT)
            (stage / "index.json").write_bytes(index_json([manifest_descriptor(a, annotations)]))
            verify_image(open_layout_blob(stage), a.manifest_digest, full=verify_full,
                         expect_manifest_size=a.manifest_size)
            cleanup.checkpoint()
            if target.exists():  # an empty directory
                target.rmdir()
            os.replace(stage, target)
            cleanup.forget(stage)
        except BaseException:
            remove_tree(stage)
            raise
    else:
        blobs = BlobDir(target)
        tmp_index: Path | None = None
        try:
            a = assemble(blobs, config, layers, compression, clamp, on_layer)
            kept = []
            for desc in existing:
                ann = dict(desc.get("annotations") or {})
                if spec.tag and ann.get(REF_NAME) == spec.tag:
                    continue  # the tag moves to the new manifest
                kept.append(desc)
            kept.append(manifest_descriptor(a, annotations))
            tmp_index = _write_new(target, ".index.json.", index_json(kept))
            verify_image(open_layout_blob(target), a.manifest_digest, full=verify_full,
                         expect_manifest_size=a.manifest_size)
            cleanup.checkpoint()
            os.replace(tmp_index, target / "index.json")
            cleanup.forget(tmp_index)
        except BaseException:
            if tmp_index is not None:
                cleanup.remove(tmp_index)
            blobs.discard_added()
            raise
    return WriteResult(spec, a.manifest_digest, a.config_digest, a.layers, a.config)
