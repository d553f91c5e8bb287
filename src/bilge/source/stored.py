"""Images stored as named files -- an OCI layout (directory or tar) or a ``docker save`` tar.

:class:`StoreSource` is the :class:`~bilge.source.base.ImageSource` over such a :class:`Store`.
:func:`read_store` decides, by content, which reader reads a store: ``docker save`` writes an OCI
layout beside its ``manifest.json`` since Docker 25 (and older tools write only one of the two), so
a docker-archive may need the layout reader and an oci-archive the docker-save reader. The two
readers (``archive.read_docker_save``, ``layout.read_layout``) never call each other; they come here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import BinaryIO

from bilge.errors import NotAnImageError
from bilge.image import Image, Layer, Platform
from bilge.reference import Reference
from bilge.source.base import ImageSource
from bilge.source.common import blob_path, load_json
from bilge.source.store import Store


class StoreSource(ImageSource):
    """An image whose blobs are files of a :class:`Store`; the source owns (and closes) the store."""

    def __init__(self, image: Image, store: Store, layer_paths: Mapping[int, str], verify: bool) -> None:
        self.image = image
        self.verify = verify
        self._store = store
        self._layer_paths = dict(layer_paths)

    def open_layer_blob(self, layer: Layer) -> BinaryIO:
        """The stored bytes of a layer (compressed or not), seekable."""
        return self._store.open(self._layer_paths[layer.index])

    def open_blob(self, digest: str) -> BinaryIO:
        return self._store.open(blob_path(digest))

    def close(self) -> None:
        self._store.close()


def read_store(store: Store, ref: Reference, want: Platform | None, verify: bool, transport: str) -> StoreSource:
    """Read the image in ``store`` with whichever reader its content needs (see the module docstring)."""
    from bilge.source.archive import read_docker_save
    from bilge.source.layout import read_layout

    if transport == "docker-archive":
        if store.exists("manifest.json"):
            return read_docker_save(store, ref, want, verify)
        if store.exists("index.json"):
            return read_layout(store, ref, want, verify, transport=transport)
        raise NotAnImageError(f"{ref.path}: no manifest.json or index.json — not a docker save archive")
    if not store.exists("index.json"):
        raise NotAnImageError(f"{ref.path}: no index.json — not an OCI image layout")
    index = load_json(store.read("index.json"), f"{ref.path}: index.json")
    if isinstance(index, dict) and not index.get("manifests") and store.exists("manifest.json"):
        return read_docker_save(store, ref, want, verify)  # Docker 25+ save with "manifests": null
    return read_layout(store, ref, want, verify, transport=transport)
