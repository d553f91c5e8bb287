"""Places images come from. ``open_image(reference)`` returns an :class:`ImageSource`.

Every source produces the same model (:class:`bilge.image.Image`) and hands out blobs by digest or
layer; nothing downstream knows which kind of source it reads.
"""

from __future__ import annotations

import hashlib
import json
import platform as _platform
from collections.abc import Mapping
from typing import Any, BinaryIO

from bilge.errors import BilgeError, DigestMismatchError, ImageFormatError
from bilge.image import Image, Layer, Platform
from bilge.reference import Reference, parse
from bilge.source.store import Store


class ImageSource:
    """An opened image: the model plus access to its blobs. Use as a context manager."""

    def __init__(self, image: Image, store: Store, layer_paths: Mapping[int, str], verify: bool) -> None:
        self.image = image
        self.verify = verify
        self._store = store
        self._layer_paths = dict(layer_paths)

    def open_layer_blob(self, layer: Layer) -> BinaryIO:
        """The stored bytes of a layer (compressed or not), seekable where the store allows it."""
        return self._store.open(self._layer_paths[layer.index])

    def open_blob(self, digest: str) -> BinaryIO:
        return self._store.open(blob_path(digest))

    def close(self) -> None:
        self._store.close()

    def __enter__(self) -> ImageSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def host_platform() -> Platform:
    machine = _platform.machine().lower()
    arch = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64", "i686": "386",
            "i386": "386", "armv7l": "arm", "armv6l": "arm", "ppc64le": "ppc64le", "s390x": "s390x",
            "riscv64": "riscv64"}.get(machine, machine)
    variant = {"armv7l": "v7", "armv6l": "v6"}.get(machine)
    return Platform("linux", arch, variant)


def blob_path(digest: str) -> str:
    algo, _, hexpart = digest.partition(":")
    if not hexpart or "/" in digest or ".." in digest:
        raise ImageFormatError(f"invalid digest {digest!r}")
    return f"blobs/{algo}/{hexpart}"


def check_digest(data: bytes, digest: str, what: str) -> None:
    algo, _, expected = digest.partition(":")
    if algo not in ("sha256", "sha512"):
        raise ImageFormatError(f"{what}: unsupported digest algorithm in {digest!r}")
    actual = hashlib.new(algo, data).hexdigest()
    if actual != expected:
        raise DigestMismatchError(f"{what}: digest mismatch: expected {digest}, got {algo}:{actual}")


def load_json(data: bytes, what: str) -> Any:
    try:
        return json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ImageFormatError(f"{what}: not valid JSON ({exc})") from None


def open_image(reference: str | Reference, *, platform: str | Platform | None = None,
               verify: bool = True) -> ImageSource:
    """Open an image by reference (skopeo transport names; bare paths are sniffed)."""
    ref = parse(reference) if isinstance(reference, str) else reference
    want = Platform.parse(platform) if isinstance(platform, str) else platform
    if ref.transport == "docker-archive":
        from bilge.source.archive import open_docker_archive

        return open_docker_archive(ref, want, verify)
    if ref.transport in ("oci", "oci-archive"):
        from bilge.source.layout import open_oci_layout

        return open_oci_layout(ref, want, verify)
    raise BilgeError(f"{ref}: the {ref.transport} transport is not supported yet; "
                     "use `docker save` / `skopeo copy` to a docker-archive:, oci: or oci-archive: first")
