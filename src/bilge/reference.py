"""Parse image references: skopeo's transport names, and bare paths sniffed by content."""

from __future__ import annotations

import gzip
import os
import tarfile
from dataclasses import dataclass

from bilge.errors import BilgeError, NotAnImageError

TRANSPORTS = ("docker-archive", "oci-archive", "oci", "docker", "docker-daemon")


@dataclass(frozen=True)
class Reference:
    transport: str  # docker-archive | oci-archive | oci | docker | docker-daemon
    path: str  # file or directory (or registry name for docker://, image name for docker-daemon:)
    tag: str | None = None  # docker-archive: a RepoTag; oci/oci-archive: a ref name
    index: int | None = None  # docker-archive: ":@N"
    original: str = ""

    def __str__(self) -> str:
        return self.original or f"{self.transport}:{self.path}"


def _split_path(rest: str) -> tuple[str, str | None]:
    """Split "PATH[:SUFFIX]" where PATH itself may contain colons: the longest existing prefix wins."""
    if os.path.exists(rest) or ":" not in rest:
        return rest, None
    positions = [i for i, ch in enumerate(rest) if ch == ":"]
    for pos in positions:  # shortest existing path first leaves the longest suffix (tag may hold ':')
        if os.path.exists(rest[:pos]):
            return rest[:pos], rest[pos + 1 :] or None
    return rest, None


def parse(text: str) -> Reference:
    """Parse a reference string. Bare paths are sniffed (see :func:`sniff`)."""
    if not text:
        raise BilgeError("empty image reference")
    if text.startswith("docker://"):
        return Reference("docker", text[len("docker://") :], original=text)
    transport, sep, rest = text.partition(":")
    if sep and transport in TRANSPORTS and transport != "docker":
        if transport == "docker-daemon":
            return Reference("docker-daemon", rest, original=text)
        path, suffix = _split_path(rest)
        if transport == "docker-archive" and suffix and suffix.startswith("@"):
            try:
                return Reference(transport, path, index=int(suffix[1:]), original=text)
            except ValueError:
                raise BilgeError(f"invalid image index {suffix!r} in {text!r}: expected ':@N'") from None
        return Reference(transport, path, tag=suffix, original=text)
    path, suffix = _split_path(text)
    if not os.path.exists(path):
        raise BilgeError(f"{text}: no such file or directory (and not a transport:reference such as "
                         "docker-archive:PATH, oci:DIR, oci-archive:PATH)")
    transport = sniff(path)
    index = None
    tag = suffix
    if suffix and suffix.startswith("@") and transport == "docker-archive":
        try:
            index, tag = int(suffix[1:]), None
        except ValueError:
            raise BilgeError(f"invalid image index {suffix!r} in {text!r}: expected ':@N'") from None
    return Reference(transport, path, tag=tag, index=index, original=text)


def sniff(path: str) -> str:
    """Decide the transport of a local path by looking at its content."""
    if os.path.isdir(path):
        if os.path.exists(os.path.join(path, "index.json")) or os.path.exists(os.path.join(path, "oci-layout")):
            return "oci"
        if os.path.exists(os.path.join(path, "manifest.json")):
            raise NotAnImageError(f"{path}: an extracted docker save directory; pass the .tar file instead")
        raise NotAnImageError(f"{path}: directory is not an OCI image layout (no index.json)")
    with open(path, "rb") as fh:
        head = fh.read(512)
    if not head:
        raise NotAnImageError(f"{path}: empty file, not an image")
    if head[:2] == b"\x1f\x8b":
        try:
            with gzip.open(path, "rb") as gz, tarfile.open(fileobj=gz, mode="r|") as tf:
                names = {_norm_member(m.name) for m in tf}
        except (OSError, EOFError, tarfile.TarError) as exc:
            raise NotAnImageError(f"{path}: gzip file that is not a readable image archive ({exc})") from None
    else:
        try:
            with tarfile.open(path, mode="r:") as tf:
                names = {_norm_member(n) for n in tf.getnames()}
        except tarfile.TarError:
            raise NotAnImageError(f"{path}: not a tar archive, OCI layout or docker save file") from None
    if "manifest.json" in names:
        return "docker-archive"
    if "index.json" in names:
        return "oci-archive"
    if not names:
        raise NotAnImageError(f"{path}: empty tar archive, not an image")
    raise NotAnImageError(f"{path}: tar archive without manifest.json or index.json — not an image "
                          "(a root filesystem tar? import it with `docker import` first)")


def _norm_member(name: str) -> str:
    while name.startswith("./"):
        name = name[2:]
    return name.strip("/")
