"""Small helpers every source shares: blob names, digest checks, JSON parsing, descriptors."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from bilge.errors import DigestMismatchError, ImageFormatError
from bilge.image import Descriptor, Platform
from bilge.source import schema


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


def descriptor(obj: Any, where: str) -> Descriptor:
    if not isinstance(obj, dict) or not isinstance(obj.get("digest"), str):
        raise ImageFormatError(f"{where}: malformed descriptor {obj!r:.120}")
    schema.descriptor(obj, where)
    return Descriptor(
        media_type=str(obj.get("mediaType") or ""),
        digest=obj["digest"],
        size=int(obj.get("size") or 0),
        annotations=dict(obj.get("annotations") or {}),
        platform=Platform.from_json(obj.get("platform")),
    )


def is_attestation(desc: Descriptor) -> bool:
    """BuildKit's attestation manifests (SBOM, provenance) sit in indexes as platform unknown/unknown."""
    if desc.annotations.get("vnd.docker.reference.type") == "attestation-manifest":
        return True
    return bool(desc.platform and desc.platform.os == "unknown" and desc.platform.architecture == "unknown")
