"""The image model: what every source produces and every analysis reads.

Frozen dataclasses only; no I/O here. A source (``bilge.source``) builds an :class:`Image`
and hands out its blobs; ``bilge.layers`` turns a layer blob into a stream of tar entries;
``bilge.fs`` stacks those entries into the merged filesystem.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# Media types -----------------------------------------------------------------------------------

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"

OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"

INDEX_TYPES = frozenset({OCI_INDEX, DOCKER_LIST})
MANIFEST_TYPES = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})


@dataclass(frozen=True, order=True)
class Platform:
    os: str
    architecture: str
    variant: str | None = None

    @classmethod
    def parse(cls, text: str) -> Platform:
        parts = text.strip().split("/")
        if len(parts) not in (2, 3) or not all(parts):
            from bilge.errors import BilgeError

            raise BilgeError(f"invalid platform {text!r}: expected os/arch[/variant], e.g. linux/amd64")
        return cls(parts[0], parts[1], parts[2] if len(parts) == 3 else None)

    @classmethod
    def from_json(cls, obj: Mapping[str, Any] | None) -> Platform | None:
        if not obj or not obj.get("os") or not obj.get("architecture"):
            return None
        return cls(str(obj["os"]), str(obj["architecture"]), obj.get("variant") or None)

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    annotations: Mapping[str, str] = field(default_factory=dict)
    platform: Platform | None = None


@dataclass(frozen=True)
class HistoryEntry:
    """One entry of the config's ``history``; ``layer`` is the layer index it produced, if any."""

    index: int
    created_by: str
    created: str | None
    comment: str | None
    author: str | None
    empty_layer: bool
    layer: int | None


@dataclass(frozen=True)
class Layer:
    """One layer as the manifest and the config describe it.

    ``digest`` is the stored blob's digest (compressed); ``diff_id`` the digest of the
    uncompressed tar, from the config. ``history`` is the history entry that produced it
    (aligned with ``empty_layer``), or None when the history is shorter than the layers.
    """

    index: int
    digest: str
    diff_id: str | None
    media_type: str
    size: int
    history: HistoryEntry | None
    annotations: Mapping[str, str] = field(default_factory=dict)

    @property
    def created_by(self) -> str:
        return self.history.created_by if self.history else ""


@dataclass(frozen=True)
class Image:
    """A single-platform image: manifest, config, layers, history."""

    reference: str
    transport: str
    digest: str | None  # manifest digest where there is a manifest blob, else None
    image_id: str  # config digest
    platform: Platform | None
    config: Mapping[str, Any]
    manifest: Mapping[str, Any] | None
    layers: tuple[Layer, ...]
    history: tuple[HistoryEntry, ...]
    repo_tags: tuple[str, ...] = ()
    annotations: Mapping[str, str] = field(default_factory=dict)
    index_annotations: Mapping[str, str] = field(default_factory=dict)

    @property
    def container_config(self) -> Mapping[str, Any]:
        """The runtime config (``config.config``): Env, Entrypoint, Cmd, Labels ..."""
        cfg = self.config.get("config") or self.config.get("Config") or {}
        return cfg if isinstance(cfg, Mapping) else {}

    @property
    def env(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for item in self.container_config.get("Env") or []:
            key, _, value = str(item).partition("=")
            out[key] = value
        return out

    @property
    def compressed_bytes(self) -> int:
        return sum(layer.size for layer in self.layers)


def align_history(history_json: list[Mapping[str, Any]] | None, layer_count: int) -> tuple[
    tuple[HistoryEntry, ...], list[HistoryEntry | None]
]:
    """Build history entries and give each layer the entry that produced it.

    Non-empty history entries are matched to layers in order (Docker's and the OCI spec's rule).
    When the history has fewer non-empty entries than there are layers (squashed or hand-made
    images) the first layers get no entry; the last layers are the ones history describes.
    """
    history_json = history_json or []
    non_empty = [i for i, h in enumerate(history_json) if not (h or {}).get("empty_layer")]
    offset = layer_count - len(non_empty)
    layer_of: dict[int, int] = {}
    for n, i in enumerate(non_empty):
        if 0 <= n + offset < layer_count:
            layer_of[i] = n + offset
    entries = tuple(
        HistoryEntry(
            index=i,
            created_by=str((h or {}).get("created_by") or ""),
            created=(h or {}).get("created"),
            comment=(h or {}).get("comment"),
            author=(h or {}).get("author"),
            empty_layer=bool((h or {}).get("empty_layer")),
            layer=layer_of.get(i),
        )
        for i, h in enumerate(history_json)
    )
    per_layer: list[HistoryEntry | None] = [None] * layer_count
    for entry in entries:
        if entry.layer is not None:
            per_layer[entry.layer] = entry
    return entries, per_layer
