"""The one interface every image source implements, and the options that reach remote ones.

An :class:`ImageSource` is an opened image: the model (:class:`bilge.image.Image`) and access to its
blobs. Local archives and layouts, registries and the Docker engine all implement it; nothing
downstream (layers, fs, analyses, rewrites, sinks) knows which one it reads.

Blobs are streams. A local store hands out seekable files; a registry or the engine hands out
forward-only streams (``seekable()`` is False). Every consumer reads a blob once, from the start, to
the end (``bilge.layers`` seeks only when the stream says it can).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO, Protocol, runtime_checkable

from bilge.image import Image, Layer


@runtime_checkable
class ImageSource(Protocol):
    """An opened image. Use it as a context manager (``with open_image(ref) as src: ...``)."""

    image: Image
    verify: bool  # check every blob digest and diff_id while streaming (the default for every reader)

    def open_layer_blob(self, layer: Layer) -> BinaryIO:
        """The stored bytes of a layer (compressed or not). Seekable only where the store allows it."""
        ...

    def open_blob(self, digest: str) -> BinaryIO:
        """The stored bytes of any blob of the image (config, layer, manifest) by digest."""
        ...

    def close(self) -> None:
        ...

    def __enter__(self) -> ImageSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class FetchProgress(Protocol):
    """Told about blob downloads (registry, engine); the CLI draws per-layer progress from it."""

    def begin(self, key: str, label: str, total: int | None) -> None: ...

    def advance(self, key: str, nbytes: int) -> None: ...

    def end(self, key: str) -> None: ...


@dataclass(frozen=True)
class Credentials:
    """A user name and a secret (password or token). The secret never appears in repr or messages."""

    username: str
    password: str
    origin: str = "--creds"  # where they came from, for messages: "--creds", "--creds-file PATH"

    def __repr__(self) -> str:
        return f"Credentials(username={self.username!r}, password=<hidden>, origin={self.origin!r})"

    __str__ = __repr__


@dataclass(frozen=True)
class SourceOptions:
    """How to reach images that do not live in a local file: registries (``docker://``) and the engine.

    ``credentials`` overrides the credential search (see docs/sources.md); ``tls_verify=False`` allows
    plain HTTP and unverified TLS (loopback registries get that without asking); ``cache_dir`` turns on
    the content-addressed blob cache (off when None); ``retries`` is the number of retries after a 429,
    a 5xx or a dropped connection; ``notice`` receives one-line notes for stderr (e.g. which of engine
    and registry a bare NAME:TAG came from); ``progress`` is told about downloads.
    """

    credentials: Credentials | None = None
    tls_verify: bool = True
    cache_dir: str | None = None
    retries: int = 3
    docker_host: str | None = None  # default: $DOCKER_HOST, else unix:///var/run/docker.sock
    notice: Callable[[str], None] | None = None
    progress: FetchProgress | None = None
