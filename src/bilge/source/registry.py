"""``docker://[HOST[:PORT]/]REPO[:TAG|@DIGEST]``: an image read from a registry (OCI distribution API).

The manifest is negotiated (OCI and Docker v2 schema 2, manifests and indexes; schema 1 is refused in
one line); an index is resolved to one platform with the same matcher as local indexes
(:mod:`bilge.source.platforms`); a digest-pinned reference is checked against the bytes served, and a
manifest fetched by tag against the registry's ``Docker-Content-Digest``. The config is fetched and
verified; layers are streamed on demand (:class:`bilge.remote.blobs.BlobStream`): straight into the
layer reader, which verifies digest and diff_id while it reads. Nothing goes to disk unless the blob
cache is on (:class:`bilge.remote.blobs.BlobCache`, verified on write and on read).
"""

from __future__ import annotations

from typing import Any, BinaryIO

from bilge.errors import BilgeError, ImageFormatError, NotAnImageError, UnsupportedMediaTypeError
from bilge.image import (
    DOCKER_CONFIG,
    OCI_CONFIG,
    Descriptor,
    Image,
    Layer,
    Platform,
    align_history,
)
from bilge.reference import DockerName, Reference
from bilge.remote.blobs import BlobCache, BlobStream, ReadAhead
from bilge.remote.client import DOCKER_V1, DOCKER_V1_SIGNED, RegistryClient
from bilge.remote.credentials import RegistryAuth
from bilge.source import platforms, schema
from bilge.source.base import ImageSource, SourceOptions
from bilge.source.common import descriptor, is_attestation, load_json

MAX_DEPTH = 4
MAX_CONFIG = 64 << 20


class RegistrySource(ImageSource):
    """An image in a registry; blobs are forward-only streams (or verified cache files)."""

    def __init__(self, image: Image, client: RegistryClient, verify: bool, cache: BlobCache | None,
                 options: SourceOptions, sizes: dict[str, int]) -> None:
        self.image = image
        self.verify = verify
        self.client = client
        self._cache = cache
        self._options = options
        self._sizes = sizes

    @property
    def name(self) -> DockerName:
        return self.client.name

    @property
    def blob_origin(self) -> tuple[str, str]:
        """Where the blobs live: a push to the same registry mounts them instead of copying."""
        return (self.client.name.registry, self.client.name.repository)

    def open_layer_blob(self, layer: Layer) -> BinaryIO:
        label = f"layer {layer.index + 1}/{len(self.image.layers)} {layer.digest[7:19]}"
        return self._open(layer.digest, layer.size, label)

    def open_blob(self, digest: str) -> BinaryIO:
        return self._open(digest, self._sizes.get(digest), f"blob {digest[:19]}")

    def _open(self, digest: str, size: int | None, label: str) -> BinaryIO:
        if self._cache is not None:
            cached = self._cache.open(digest, size)
            if cached is not None:
                return cached
        stream = BlobStream(self.client, digest, size, label=label, cache=self._cache,
                            progress=self._options.progress)
        return ReadAhead(stream)  # type: ignore[return-value]

    def close(self) -> None:
        self.client.close()


def registry_auth(options: SourceOptions) -> RegistryAuth | None:
    """Explicit credentials (``--creds``/``--creds-file``) or None: search the credential files."""
    if options.credentials is None:
        return None
    c = options.credentials
    return RegistryAuth(c.username, c.password, origin=c.origin)


def open_source(ref: Reference, want: Platform | None, verify: bool, options: SourceOptions) -> RegistrySource:
    name = ref.name
    if name is None:
        raise BilgeError(f"{ref}: not a registry reference")
    client = RegistryClient(name, auth=registry_auth(options), tls_verify=options.tls_verify,
                            retries=options.retries)
    try:
        cache = BlobCache(options.cache_dir) if options.cache_dir else None
        image, sizes = read_image(client, ref, want, verify, cache)
        return RegistrySource(image, client, verify, cache, options, sizes)
    except BaseException:
        client.close()
        raise


def _check_schema(doc: Any, media_type: str, where: str) -> None:
    if media_type in (DOCKER_V1, DOCKER_V1_SIGNED) or (isinstance(doc, dict) and doc.get("schemaVersion") == 1):
        raise UnsupportedMediaTypeError(f"{where}: a Docker schema 1 manifest, which bilge does not read "
                                        "(deprecated since 2017; re-push the image with a current client)")
    if not isinstance(doc, dict):
        raise ImageFormatError(f"{where}: the manifest is not a JSON object")


def read_image(client: RegistryClient, ref: Reference, want: Platform | None, verify: bool,
               cache: BlobCache | None) -> tuple[Image, dict[str, int]]:
    name = client.name
    where = str(ref)
    body, media_type, digest = client.get_manifest(name.reference)
    desc: Descriptor | None = None
    index_annotations: dict[str, str] = {}
    for _depth in range(MAX_DEPTH + 1):
        doc = load_json(body, f"{where}: manifest")
        _check_schema(doc, media_type, where)
        if "manifests" in doc and "layers" not in doc:
            schema.index(doc, f"{where}: index")
        else:
            schema.manifest(doc, f"{where}: manifest")
        if isinstance(doc.get("manifests"), list) and "layers" not in doc:
            index_annotations = {**index_annotations, **dict(doc.get("annotations") or {})}
            children = [descriptor(d, where) for d in doc["manifests"]]
            images = [d for d in children if not is_attestation(d)]
            if not images:
                raise NotAnImageError(f"{where}: the index lists no image manifests")
            desc = platforms.choose(images, lambda d: d.platform, want, where)
            body, media_type, digest = client.get_manifest(desc.digest)
            continue
        break
    else:
        raise ImageFormatError(f"{where}: indexes nested deeper than {MAX_DEPTH} levels")
    if not isinstance(doc.get("config"), dict) or not isinstance(doc.get("layers"), list):
        raise ImageFormatError(f"{where}: manifest {digest[:19]} has no config or layers")
    cdesc = descriptor(doc["config"], where)
    if cdesc.media_type not in (OCI_CONFIG, DOCKER_CONFIG) or doc.get("artifactType"):
        raise NotAnImageError(f"{where}: an OCI artifact ({doc.get('artifactType') or cdesc.media_type}), "
                              "not a container image")
    config_bytes = None
    if cache is not None:
        fh = cache.open(cdesc.digest, cdesc.size)
        if fh is not None:
            with fh:
                config_bytes = fh.read()
    if config_bytes is None:
        config_bytes = client.get_blob_bytes(cdesc.digest, MAX_CONFIG, "config")
    config = load_json(config_bytes, f"{where}: config {cdesc.digest[:19]}")
    schema.config(config, f"{where}: config {cdesc.digest[:19]}")
    platform = Platform.from_json(config) or (desc.platform if desc else None)
    if want is not None and desc is None and platform is not None and not platforms.matches(platform, want):
        raise BilgeError(f"{where}: image is {platform}, not {want}")
    descs = [descriptor(d, where) for d in doc["layers"]]
    diff_ids = list(((config.get("rootfs") or {}).get("diff_ids")) or [])
    if len(diff_ids) != len(descs):
        raise ImageFormatError(f"{where}: config lists {len(diff_ids)} diff_ids but the manifest {len(descs)} layers")
    history, per_layer = align_history(config.get("history"), len(descs))
    layers = tuple(Layer(index=i, digest=d.digest, diff_id=diff_id, media_type=d.media_type, size=d.size,
                         history=per_layer[i], annotations=d.annotations)
                   for i, (d, diff_id) in enumerate(zip(descs, diff_ids, strict=True)))
    sizes = {d.digest: d.size for d in descs}
    sizes[cdesc.digest] = cdesc.size
    tags = (str(name),) if name.tag and not name.digest else ()
    image = Image(reference=str(ref), transport="docker", digest=digest, image_id=cdesc.digest, platform=platform,
                  config=config, manifest=doc, layers=layers, history=history, repo_tags=tags,
                  annotations=dict(doc.get("annotations") or {}), index_annotations=index_annotations)
    return image, sizes
