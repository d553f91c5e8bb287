"""``-o docker://HOST/REPO:TAG``: push the written image to a registry.

New layers are written (and their digests computed) in a private staging directory first -- a blob's
digest must be known before its upload is committed -- then every blob goes up unless the registry
already has it (``HEAD``): kept base layers that live in another repository of the same registry are
mounted (``POST ...?mount=&from=``), not copied; small blobs go up in one ``PUT``, large ones in
``PATCH`` chunks. The manifest is ``PUT`` under the tag with its media type; the registry's
``Docker-Content-Digest`` must be the manifest's digest, and the manifest is read back by tag and
checked before the push counts as done. Credentials come from the credential search
(:mod:`bilge.remote.credentials`); plain HTTP only for loopback registries or with
``BILGE_TLS_VERIFY=false``. The staging directory is removed in every case.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from bilge import cleanup
from bilge.errors import OutputError
from bilge.image import OCI_MANIFEST
from bilge.remote.client import RegistryClient, Uploader
from bilge.sink.common import (
    BlobDir,
    ExistingLayer,
    LayerInput,
    LayerRecord,
    OutputSpec,
    WriteResult,
    assemble,
    remove_tree,
)
from bilge.sink.layer import Compression


class _PushBlobs(BlobDir):
    """A staging blob directory that does not copy kept layers the registry has or can mount."""

    def __init__(self, root: Path, uploader: Uploader) -> None:
        super().__init__(root)
        self.uploader = uploader
        self.remote: set[str] = set()

    def copy_layer(self, layer: ExistingLayer) -> str:
        if layer.digest:
            if self.uploader.has_blob(layer.digest):
                self.remote.add(layer.digest)
                return layer.digest
            origin = layer.origin
            name = self.uploader.client.name
            if origin and origin[0] == name.registry and origin[1] != name.repository:
                if self.uploader.mount(layer.digest, origin[1]):
                    self.remote.add(layer.digest)
                    return layer.digest
        return super().copy_layer(layer)


def write(spec: OutputSpec, config: Mapping[str, Any], layers: Sequence[LayerInput], compression: Compression,
          clamp: int | None, on_layer: Callable[[int, LayerRecord], None] | None = None,
          verify_full: bool = True) -> WriteResult:
    name = spec.name
    if name is None:
        raise OutputError(f"{spec}: not a registry reference")
    tls = os.environ.get("BILGE_TLS_VERIFY", "true").lower() not in ("false", "0", "no")
    stage = cleanup.mkdtemp(cleanup.tempdir(), "bilge-push-")
    client = RegistryClient(name, tls_verify=tls, actions=("pull", "push"))
    try:
        uploader = Uploader(client)
        for layer in layers:  # scopes for cross-repository mounts, asked for in the same token
            origin = layer.origin if isinstance(layer, ExistingLayer) else None
            if origin and origin[0] == name.registry and origin[1] != name.repository:
                client.add_scope(origin[1], ("pull",))
        blobs = _PushBlobs(stage, uploader)
        a = assemble(blobs, config, layers, compression, clamp, on_layer)
        for rec in a.layers:
            if rec.digest not in blobs.remote:
                uploader.upload(str(blobs.path(rec.digest)), rec.digest, rec.size)
        uploader.upload(str(blobs.path(a.config_digest)), a.config_digest, a.config_size)
        manifest = blobs.path(a.manifest_digest).read_bytes()
        reported = uploader.put_manifest(name.tag or "latest", manifest, OCI_MANIFEST)
        if reported and reported != a.manifest_digest:
            raise OutputError(f"{spec}: the registry stored the manifest as {reported}, not {a.manifest_digest}")
        body, _media, digest = client.get_manifest(name.tag or "latest")
        if digest != a.manifest_digest or body != manifest:
            raise OutputError(f"{spec}: reading the tag back gives {digest}, not the pushed {a.manifest_digest}")
    finally:
        client.close()
        remove_tree(stage)
    return WriteResult(dataclasses.replace(spec, digest=a.manifest_digest), a.manifest_digest, a.config_digest,
                       a.layers, a.config)
