"""What every sink shares: output references, the blob directory, config + manifest assembly,
and verification by reading the written image back.

A sink writes into a staging place next to its target (same directory, so the final rename is
atomic and never crosses a filesystem), verifies what it wrote by reading it back (every blob's
sha256 and size, every layer decompressed and checked against the config's diff_ids), and only
then renames it into place. On any failure the staging files are removed; the target is never
left half-written.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from bilge import cleanup
from bilge.errors import BilgeError, OutputError
from bilge.image import (
    DOCKER_LAYER,
    DOCKER_LAYER_GZIP,
    OCI_CONFIG,
    OCI_INDEX,
    OCI_LAYER,
    OCI_LAYER_GZIP,
    OCI_MANIFEST,
)
from bilge.reference import DockerName
from bilge.sink.layer import CHUNK, Body, Compression, LayerBlob, Member, open_decompressed, write_layer

TRANSPORTS = ("oci", "oci-archive", "docker-archive", "docker-daemon")
REF_NAME = "org.opencontainers.image.ref.name"

# ---------------------------------------------------------------------------------------------
# Output references


@dataclass(frozen=True)
class OutputSpec:
    transport: str  # oci | oci-archive | docker-archive | docker (a registry) | docker-daemon
    path: Path  # the file or directory (for docker / docker-daemon: the image name)
    tag: str | None  # oci*: the ref.name annotation; docker-archive, docker-daemon: "name:tag"
    name: DockerName | None = None  # docker: the registry, repository and tag
    digest: str | None = None  # docker: the manifest digest the registry reports, once pushed

    def __str__(self) -> str:
        if self.transport == "docker" and self.name is not None:
            return f"docker://{self.name}" + (f"@{self.digest}" if self.digest else "")
        if self.transport == "docker-daemon":
            return f"docker-daemon:{self.tag}"
        return f"{self.transport}:{self.path}" + (f":{self.tag}" if self.tag else "")


_DOCKER_NAME = re.compile(
    r"^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9-]+)*(?::[0-9]+)?/)?"
    r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$"
)
_DOCKER_TAG = re.compile(r"^[\w][\w.-]{0,127}$")
_OCI_TAG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@/+-]*$")


def docker_name_tag(text: str) -> str:
    """Normalise "name[:tag]" to "name:tag" (tag defaults to latest); reject what docker would."""
    name, tag = text, "latest"
    head, sep, tail = text.rpartition(":")
    if sep and "/" not in tail:
        name, tag = head, tail
    if not _DOCKER_NAME.match(name) or not _DOCKER_TAG.match(tag):
        raise BilgeError(f"invalid image name {text!r}: expected name[:tag], e.g. myapp:1.0")
    return f"{name}:{tag}"


def parse_output(text: str) -> OutputSpec:
    """Parse ``oci:DIR[:TAG]``, ``oci-archive:PATH[:TAG]``, ``docker-archive:PATH[:NAME[:TAG]]``.

    As in skopeo, the path ends at the first colon after the transport.
    """
    if text.startswith("docker://"):
        from bilge.reference import parse_docker_name

        name = parse_docker_name(text[len("docker://"):], what="output")
        if name.digest:
            raise BilgeError(f"invalid output {text!r}: push to a tag (docker://HOST/REPO:TAG), not a digest")
        return OutputSpec("docker", Path(name.repository), name.tag, name=name)
    transport, sep, rest = text.partition(":")
    if not sep or transport not in TRANSPORTS:
        raise BilgeError(
            f"invalid output {text!r}: expected oci:DIR[:TAG], oci-archive:PATH[:TAG], "
            "docker-archive:PATH[:NAME:TAG], docker://HOST/REPO:TAG or docker-daemon:NAME:TAG"
        )
    if transport == "docker-daemon":
        if not rest:
            raise BilgeError(f"invalid output {text!r}: expected docker-daemon:NAME[:TAG]")
        return OutputSpec(transport, Path(rest), docker_name_tag(rest))
    path, sep, tag = rest.partition(":")
    if not path:
        raise BilgeError(f"invalid output {text!r}: no path after {transport}:")
    if sep and not tag:
        raise BilgeError(f"invalid output {text!r}: empty tag after the path")
    if transport == "docker-archive":
        return OutputSpec(transport, Path(path), docker_name_tag(tag) if tag else None)
    if tag and not _OCI_TAG.match(tag):
        raise BilgeError(f"invalid tag {tag!r} in {text!r}")
    return OutputSpec(transport, Path(path), tag or None)


# ---------------------------------------------------------------------------------------------
# Layers in


@dataclass(frozen=True)
class ExistingLayer:
    """A stored layer blob copied byte for byte (base layers kept so registries share them)."""

    digest: str  # "" when unknown (computed while copying)
    size: int
    diff_id: str
    media_type: str
    open: Callable[[], BinaryIO]  # the stored bytes; the sink closes what it opens
    origin: tuple[str, str] | None = None  # (registry, repository) it was read from: a push may mount it


@dataclass(frozen=True)
class NewLayer:
    """A layer to write from ``(Member, body)`` pairs, in the order given."""

    members: Iterable[tuple[Member, Body]]


LayerInput = ExistingLayer | NewLayer

_OCI_EQUIVALENT = {DOCKER_LAYER_GZIP: OCI_LAYER_GZIP, DOCKER_LAYER: OCI_LAYER}


@dataclass(frozen=True)
class LayerRecord:
    digest: str
    diff_id: str
    size: int
    media_type: str
    uncompressed_size: int | None  # None for copied layers (not decompressed to write them)
    copied: bool


@dataclass(frozen=True)
class WriteResult:
    output: OutputSpec
    manifest_digest: str
    config_digest: str  # the image id
    layers: tuple[LayerRecord, ...]
    config: Mapping[str, Any]

    @property
    def layer_bytes(self) -> int:
        return sum(layer.size for layer in self.layers)


def canonical_json(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


# ---------------------------------------------------------------------------------------------
# Blob directory


class BlobDir:
    """``<root>/blobs/sha256``: blobs written to a temp name, renamed to their digest."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.dir = root / "blobs" / "sha256"
        for part in (root / "blobs", self.dir):  # never write through a planted symlink
            if part.is_symlink():
                raise OutputError(f"cannot write into {root}: {part.relative_to(root)} is a symbolic link")
        self.dir.mkdir(parents=True, exist_ok=True)
        self.added: list[Path] = []  # blobs this writer created (removed again on failure)

    def path(self, digest: str) -> Path:
        algo, _, hexd = digest.partition(":")
        if algo != "sha256" or not re.fullmatch(r"[0-9a-f]{64}", hexd):
            raise BilgeError(f"unsupported digest {digest!r}")
        return self.dir / hexd

    def _commit(self, tmp: Path, digest: str) -> None:
        final = self.path(digest)
        if _present(final):
            cleanup.remove(tmp)
            return
        os.replace(tmp, final)
        cleanup.forget(tmp)
        self.added.append(final)

    def _tmp(self) -> tuple[BinaryIO, Path]:
        with cleanup.signals_held():
            fd, name = cleanup.mkstemp(self.dir, ".tmp-")
            try:
                os.fchmod(fd, 0o666 & ~_umask())
                return os.fdopen(fd, "wb"), name
            except BaseException:
                os.close(fd)
                cleanup.remove(name)
                raise

    def add_bytes(self, data: bytes) -> tuple[str, int]:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        fh, tmp = self._tmp()
        try:
            with fh:
                fh.write(data)
        except BaseException:
            cleanup.remove(tmp)
            raise
        self._commit(tmp, digest)
        return digest, len(data)

    def add_layer(self, members: Iterable[tuple[Member, Body]], compression: Compression,
                  clamp: int | None) -> LayerBlob:
        fh, tmp = self._tmp()
        try:
            with fh:
                blob = write_layer(members, fh, compression, clamp=clamp)
        except BaseException:
            cleanup.remove(tmp)
            raise
        self._commit(tmp, blob.digest)
        return blob

    def copy_layer(self, layer: ExistingLayer) -> str:
        """Copy a stored blob, checking (or, when ``layer.digest`` is empty, computing) its digest."""
        if layer.digest and _present(self.path(layer.digest)):
            return layer.digest
        fh, tmp = self._tmp()
        h = hashlib.sha256()
        size = 0
        try:
            with fh, layer.open() as src:
                while chunk := src.read(CHUNK):
                    h.update(chunk)
                    size += len(chunk)
                    fh.write(chunk)
            got = "sha256:" + h.hexdigest()
            if (layer.digest and got != layer.digest) or size != layer.size:
                from bilge.errors import DigestMismatchError

                raise DigestMismatchError(
                    f"layer {layer.digest or layer.diff_id}: copied bytes hash to {got} "
                    f"({size} bytes, expected {layer.size})"
                )
        except BaseException:
            cleanup.remove(tmp)
            raise
        self._commit(tmp, got)
        return got

    def discard_added(self) -> None:
        for p in self.added:
            p.unlink(missing_ok=True)
        self.added.clear()


def _present(path: Path) -> bool:
    """A regular blob file is already there (a symlink planted at a blob's name is replaced, never kept)."""
    return path.is_file() and not path.is_symlink()


# ---------------------------------------------------------------------------------------------
# Assembly


@dataclass(frozen=True)
class Assembled:
    manifest_digest: str
    manifest_size: int
    config_digest: str
    config_size: int
    layers: tuple[LayerRecord, ...]
    config: dict[str, Any]
    platform: dict[str, str] | None


def _check_history(config: Mapping[str, Any], layer_count: int) -> None:
    history = config.get("history")
    if history is None:
        return
    non_empty = sum(1 for h in history if not (h or {}).get("empty_layer"))
    if non_empty != layer_count:
        raise BilgeError(
            f"config history has {non_empty} non-empty entries for {layer_count} layers; "
            "history must be aligned with the layers"
        )


def assemble(
    blobs: BlobDir,
    config: Mapping[str, Any],
    layers: Sequence[LayerInput],
    compression: Compression,
    clamp: int | None,
    on_layer: Callable[[int, LayerRecord], None] | None = None,
) -> Assembled:
    """Write every layer, then the config (with rootfs.diff_ids filled in) and the manifest."""
    _check_history(config, len(layers))
    records: list[LayerRecord] = []
    for i, layer in enumerate(layers):
        if isinstance(layer, ExistingLayer):
            digest = blobs.copy_layer(layer)
            rec = LayerRecord(digest, layer.diff_id, layer.size,
                              _OCI_EQUIVALENT.get(layer.media_type, layer.media_type), None, True)
        else:
            blob = blobs.add_layer(layer.members, compression, clamp)
            rec = LayerRecord(blob.digest, blob.diff_id, blob.size, blob.media_type, blob.uncompressed_size, False)
        records.append(rec)
        if on_layer:
            on_layer(i, rec)
    cfg: dict[str, Any] = copy.deepcopy(dict(config))
    cfg["rootfs"] = {"type": "layers", "diff_ids": [r.diff_id for r in records]}
    config_digest, config_size = blobs.add_bytes(canonical_json(cfg))
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": config_size},
        "layers": [{"mediaType": r.media_type, "digest": r.digest, "size": r.size} for r in records],
    }
    manifest_digest, manifest_size = blobs.add_bytes(canonical_json(manifest))
    platform = None
    if cfg.get("os") and cfg.get("architecture"):
        platform = {"architecture": str(cfg["architecture"]), "os": str(cfg["os"])}
        if cfg.get("variant"):
            platform["variant"] = str(cfg["variant"])
    return Assembled(manifest_digest, manifest_size, config_digest, config_size, tuple(records), cfg, platform)


def manifest_descriptor(a: Assembled, annotations: Mapping[str, str] | None = None) -> dict[str, Any]:
    desc: dict[str, Any] = {"mediaType": OCI_MANIFEST, "digest": a.manifest_digest, "size": a.manifest_size}
    if annotations:
        desc["annotations"] = dict(sorted(annotations.items()))
    if a.platform:
        desc["platform"] = a.platform
    return desc


def index_json(manifests: list[dict[str, Any]]) -> bytes:
    return canonical_json({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests})


OCI_LAYOUT = canonical_json({"imageLayoutVersion": "1.0.0"})


# ---------------------------------------------------------------------------------------------
# Verification (reading back)


def _hash_reader(reader: BinaryIO) -> tuple[str, int]:
    h = hashlib.sha256()
    n = 0
    while chunk := reader.read(CHUNK):
        h.update(chunk)
        n += len(chunk)
    return "sha256:" + h.hexdigest(), n


def verify_image(open_blob: Callable[[str], BinaryIO], manifest_digest: str, *, full: bool = True,
                 expect_manifest_size: int | None = None) -> dict[str, Any]:
    """Read an image back through ``open_blob`` and check every digest, size and diff_id.

    Returns the parsed manifest. Raises OutputError on the first inconsistency.
    """

    def read_json(digest: str, size: int | None, what: str) -> Any:
        with open_blob(digest) as fh:
            data = fh.read()
        got = "sha256:" + hashlib.sha256(data).hexdigest()
        if got != digest or (size is not None and size != len(data)):
            raise OutputError(f"verification failed: {what} {digest} reads back as {got} ({len(data)} bytes)")
        return json.loads(data)

    manifest = read_json(manifest_digest, expect_manifest_size, "manifest")
    cfg_desc = manifest["config"]
    config = read_json(cfg_desc["digest"], cfg_desc["size"], "config")
    diff_ids = config.get("rootfs", {}).get("diff_ids", [])
    if len(diff_ids) != len(manifest["layers"]):
        raise OutputError("verification failed: config diff_ids and manifest layers differ in number")
    for desc, diff_id in zip(manifest["layers"], diff_ids, strict=True):
        with open_blob(desc["digest"]) as fh:
            if full:
                stored = _CountingHash(fh)
                stream = open_decompressed(stored)  # type: ignore[arg-type]
                got_diff, _ = _hash_reader(stream.reader)
                stored.drain()
                got, size = stored.digest(), stored.size
                if got_diff != diff_id:
                    raise OutputError(f"verification failed: layer {desc['digest']} decompresses to {got_diff}, "
                                      f"config says {diff_id}")
            else:
                got, size = _hash_reader(fh)
        if got != desc["digest"] or size != desc["size"]:
            raise OutputError(f"verification failed: layer {desc['digest']} reads back as {got} ({size} bytes)")
    return manifest


class _CountingHash:
    """A read-through wrapper hashing every byte that passes."""

    def __init__(self, fh: BinaryIO) -> None:
        self.fh = fh
        self.h = hashlib.sha256()
        self.size = 0

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        data = self.fh.read(n)
        self.h.update(data)
        self.size += len(data)
        return data

    def drain(self) -> None:
        while self.read(CHUNK):
            pass

    def digest(self) -> str:
        return "sha256:" + self.h.hexdigest()


# ---------------------------------------------------------------------------------------------
# Staging


def staging_dir(target: Path) -> Path:
    parent = target.parent if str(target.parent) else Path(".")
    if not parent.is_dir():
        raise OutputError(f"cannot write {target}: directory {parent} does not exist")
    try:
        stage = cleanup.mkdtemp(parent, f".{target.name}.bilge-")
    except OSError as exc:
        raise OutputError(f"cannot write in {parent}: {exc.strerror}") from None
    try:
        stage.chmod(0o777 & ~_umask())
    except BaseException:
        cleanup.remove(stage)
        raise
    return stage


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def remove_tree(path: Path) -> None:
    """Remove a staging tree (and forget it: see :mod:`bilge.cleanup`)."""
    cleanup.remove(path)
